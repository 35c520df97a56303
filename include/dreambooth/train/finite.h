// Whether a tensor holds only finite values: the guard before an optimizer step and before a model is
// written. One pass over the tensor and no full-size temporary (isfinite(t).all() allocates a bool per
// element: over SD1.5's 4.3 GB of weights that took ~6 s on the CPU).
#pragma once

#include <ATen/core/Tensor.h>

namespace dreambooth::train {

// True for non-floating-point and empty tensors.
bool all_finite(const at::Tensor& tensor);

}  // namespace dreambooth::train
