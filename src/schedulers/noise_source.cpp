#include "dreambooth/schedulers/noise_source.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace dreambooth::schedulers {

SeededNoiseSource::SeededNoiseSource(uint64_t seed) : generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor SeededNoiseSource::randn(c10::IntArrayRef shape, c10::ScalarType dtype, c10::Device device) {
  return torch::randn(shape, generator_, torch::TensorOptions().dtype(dtype)).to(device);
}

}  // namespace dreambooth::schedulers
