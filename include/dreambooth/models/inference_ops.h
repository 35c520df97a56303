// In-place versions of the activation and residual steps, for when autograd records nothing (sampling,
// VAE encoding for cached latents, class images). Each saves one full-size temporary: at 512x512 the
// VAE decoder's last blocks hold 128-256 MB tensors, and the C++ temporaries of a nested call like
// conv(silu(norm(x))) would otherwise all be alive while the convolution runs. The results are identical:
// the same kernels run, only their output buffer differs.
#pragma once

#include <ATen/core/Tensor.h>

namespace dreambooth::models {

// True while autograd may record: then every step must keep its input (silu's backward reads it).
bool autograd_records();

// silu(x); `fresh` must be a temporary nobody else holds (e.g. a norm's output).
at::Tensor silu_of_fresh(at::Tensor fresh);

// fresh + other (same result as other + fresh); `fresh` as above.
at::Tensor add_to_fresh(at::Tensor fresh, const at::Tensor& other);

}  // namespace dreambooth::models
