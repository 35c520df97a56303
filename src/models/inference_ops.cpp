#include "dreambooth/models/inference_ops.h"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <c10/core/InferenceMode.h>

namespace dreambooth::models {

bool autograd_records() { return at::GradMode::is_enabled() && !c10::InferenceMode::is_enabled(); }

at::Tensor silu_of_fresh(at::Tensor fresh) {
  if (autograd_records()) return at::silu(fresh);
  return at::silu_(fresh);
}

at::Tensor add_to_fresh(at::Tensor fresh, const at::Tensor& other) {
  if (autograd_records() || fresh.sizes() != c10::IntArrayRef(at::infer_size(fresh.sizes(), other.sizes())) ||
      fresh.scalar_type() != at::result_type(fresh, other))
    return fresh + other;
  return fresh.add_(other);
}

}  // namespace dreambooth::models
