#include "dreambooth/core/torch_compat.h"

#include <torch/torch.h>

namespace dreambooth {

std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace dreambooth
