// Gradient checkpointing: run a piece of a model without keeping its activations, and recompute them
// during the backward pass (torch.utils.checkpoint). Memory for activations drops to the inputs and
// outputs of each checkpointed piece, at the price of a second forward pass.
//
// The piece is a function of tensors. Its gradients flow to the `inputs` and to the `parameters` it
// reads (passed explicitly, so a piece whose inputs need no gradient, e.g. the first UNet block when
// only adapters train, still trains its own weights). The recomputation runs with the autocast state
// of the forward pass. The pieces of our models draw no random numbers, so no RNG state is replayed.
#pragma once

#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace dreambooth::models {

using CheckpointedFunction = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs)>;

// Runs `function(inputs)` now without recording a graph; the backward pass reruns it to get the
// gradients of `inputs` and `parameters`. Every input must be defined. The outputs must be distinct
// tensors (no output repeated, no input returned as is). Without grad mode, or when neither an input nor
// a parameter requires a gradient, this is a plain call.
std::vector<at::Tensor> checkpoint(const CheckpointedFunction& function, const std::vector<at::Tensor>& inputs,
                                   const std::vector<at::Tensor>& parameters);

// The parameters of `module` that require a gradient, and those of the adapters attached to its layers
// (what `checkpoint` needs to know).
std::vector<at::Tensor> trainable_parameters_of(const torch::nn::Module& module);

}  // namespace dreambooth::models
