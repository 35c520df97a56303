#include "operator_profile.h"

#include <cstdlib>
#include <string>

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define DREAMBOOTH_HAS_LEGACY_PROFILER 1
#endif

namespace dreambooth::cli {

struct OperatorProfile::Recording {
#ifdef DREAMBOOTH_HAS_LEGACY_PROFILER
  explicit Recording(const std::string& path) : profile(path) {}
  torch::autograd::profiler::RecordProfile profile;
#else
  explicit Recording(const std::string&) {}
#endif
};

OperatorProfile::OperatorProfile() {
  if (const char* trace = std::getenv("DREAMBOOTH_PROFILE"); trace && *trace)
    recording_ = std::make_unique<Recording>(std::string(trace));
}

OperatorProfile::~OperatorProfile() = default;

}  // namespace dreambooth::cli
