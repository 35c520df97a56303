#include "dreambooth/pipelines/noise.h"

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::pipelines {

PerImageNoise::PerImageNoise(const std::vector<uint64_t>& seeds) {
  sources_.reserve(seeds.size());
  for (uint64_t seed : seeds) sources_.emplace_back(seed);
}

at::Tensor PerImageNoise::randn(c10::IntArrayRef shape, c10::ScalarType dtype, c10::Device device) {
  if (shape.empty() || shape[0] != static_cast<int64_t>(sources_.size()))
    throw Error(ErrorKind::Runtime, "PerImageNoise: batch of " + std::to_string(shape.empty() ? 0 : shape[0]) +
                                        " for " + std::to_string(sources_.size()) + " seeds");
  std::vector<int64_t> one(shape.begin(), shape.end());
  one[0] = 1;
  std::vector<at::Tensor> rows;
  rows.reserve(sources_.size());
  for (auto& source : sources_) rows.push_back(source.randn(one, dtype, device));
  return torch::cat(rows, 0);
}

}  // namespace dreambooth::pipelines
