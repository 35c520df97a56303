// Channels-last (NHWC) weights for CPU inference: oneDNN runs NHWC convolutions without reordering
// every activation to and from its blocked layout, and the transformer blocks' [B, H*W, C] views of
// an NHWC activation need no copy. Activations follow the weights' format from the first convolution on.
#pragma once

#include <torch/nn/module.h>

namespace dreambooth::models {

// Re-lays every 4-D parameter (convolution weights) out channels-last, in place (values unchanged).
void use_channels_last(torch::nn::Module& module);

}  // namespace dreambooth::models
