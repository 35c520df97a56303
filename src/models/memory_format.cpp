#include "dreambooth/models/memory_format.h"

#include <torch/torch.h>

namespace dreambooth::models {

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.parameters(/*recurse=*/true))
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace dreambooth::models
