// Per-image random streams: image i of a run draws from its own CPU generator seeded with seed + i, in
// the reference pipeline's shapes and order, so a batch gives the same pictures as one-by-one runs.
#pragma once

#include <cstdint>
#include <vector>

#include "dreambooth/schedulers/noise_source.h"

namespace dreambooth::pipelines {

class PerImageNoise : public schedulers::NoiseSource {
 public:
  explicit PerImageNoise(const std::vector<uint64_t>& seeds);
  // shape[0] must equal the number of seeds: row i comes from generator i, drawn as shape [1, ...].
  at::Tensor randn(c10::IntArrayRef shape, c10::ScalarType dtype = c10::kFloat,
                   c10::Device device = c10::kCPU) override;
  size_t size() const { return sources_.size(); }

 private:
  std::vector<schedulers::SeededNoiseSource> sources_;
};

}  // namespace dreambooth::pipelines
