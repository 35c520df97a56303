// Where samplers get their random numbers. Noise only comes from this argument, so tests can inject it.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

namespace dreambooth::schedulers {

class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // Standard normal samples of `shape` in `dtype`, moved to `device`.
  virtual at::Tensor randn(c10::IntArrayRef shape, c10::ScalarType dtype = c10::kFloat,
                           c10::Device device = c10::kCPU) = 0;
};

// torch.Generator("cpu").manual_seed(seed) + torch.randn(shape, generator=g, dtype=dtype).to(device): the
// numbers are drawn on the CPU in the requested dtype (as diffusers' randn_tensor does with a CPU generator),
// so a seed gives the same noise on every device.
class SeededNoiseSource : public NoiseSource {
 public:
  explicit SeededNoiseSource(uint64_t seed);
  at::Tensor randn(c10::IntArrayRef shape, c10::ScalarType dtype = c10::kFloat,
                   c10::Device device = c10::kCPU) override;

 private:
  at::Generator generator_;
};

}  // namespace dreambooth::schedulers
