// For developers: DREAMBOOTH_PROFILE=trace.json records every LibTorch operator a command runs, in the
// chrome://tracing format (LibTorch's legacy profiler; nothing where a build lacks it).
#pragma once

#include <memory>

namespace dreambooth::cli {

class OperatorProfile {
 public:
  // Starts recording when DREAMBOOTH_PROFILE names a file; the trace is written when this is destroyed.
  OperatorProfile();
  ~OperatorProfile();
  OperatorProfile(const OperatorProfile&) = delete;
  OperatorProfile& operator=(const OperatorProfile&) = delete;

 private:
  struct Recording;
  std::unique_ptr<Recording> recording_;
};

}  // namespace dreambooth::cli
