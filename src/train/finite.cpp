#include "dreambooth/train/finite.h"

#include <cmath>

#include <ATen/ATen.h>

namespace dreambooth::train {

bool all_finite(const at::Tensor& tensor) {
  if (!tensor.is_floating_point() || tensor.numel() == 0) return true;
  // aminmax propagates NaN into both results, and an infinity is the minimum or the maximum. Its CPU
  // kernels do not cover the 16-bit types everywhere: those take the plain test.
  const auto type = tensor.scalar_type();
  if (type == at::kHalf || type == at::kBFloat16) return at::isfinite(tensor).all().item<bool>();
  const auto [lowest, highest] = at::aminmax(tensor.detach());
  return std::isfinite(lowest.item<double>()) && std::isfinite(highest.item<double>());
}

}  // namespace dreambooth::train
