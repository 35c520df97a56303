// The one place that looks at TORCH_VERSION: the rest of the code asks these macros and helpers.
#pragma once

#include <torch/version.h>

#define DREAMBOOTH_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// scaled_dot_product_attention arrived in LibTorch 2.0.
#define DREAMBOOTH_HAS_SDPA DREAMBOOTH_TORCH_AT_LEAST(2, 0)

#include <string>

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace dreambooth {
std::string torch_version_string();
bool cuda_available();

// Autocast state of one device type (kCUDA or kCPU), across LibTorch 2.4's change to per-device calls.
bool autocast_enabled(c10::DeviceType device);
c10::ScalarType autocast_dtype(c10::DeviceType device);
void set_autocast(c10::DeviceType device, bool enabled, c10::ScalarType dtype);
}  // namespace dreambooth
