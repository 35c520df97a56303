// The one place that looks at TORCH_VERSION: the rest of the code asks these macros and helpers.
#pragma once

#include <torch/version.h>

#define DREAMBOOTH_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// scaled_dot_product_attention arrived in LibTorch 2.0.
#define DREAMBOOTH_HAS_SDPA DREAMBOOTH_TORCH_AT_LEAST(2, 0)

#include <string>

namespace dreambooth {
std::string torch_version_string();
bool cuda_available();
}  // namespace dreambooth
