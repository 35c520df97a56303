// The optimizer side of a step: AdamW over the trainable parameters (torch::optim::AdamW, which
// updates exactly as PyTorch's single-tensor AdamW, or AdamW8bit with --use-8bit-adam: adamw8bit.h),
// gradient clipping as torch.nn.utils.clip_grad_norm_, and the optimizer state by parameter name (for
// checkpoints).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/train/options.h"
#include "dreambooth/train/trainable_parameters.h"

namespace dreambooth::train {

// torch::optim keys its per-parameter state by the parameter's TensorImpl: printed to a string in
// LibTorch 1.x, the pointer itself in 2.x.
using OptimizerStateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
OptimizerStateKey optimizer_state_key(const at::Tensor& parameter);

// One parameter group with the options' betas, eps and weight decay; lr from the schedule each step.
std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainableParameters& trainable, const TrainOptions& options);
// AdamW, or AdamW8bit with options.use_8bit_adam; the same hyper-parameters either way.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainableParameters& trainable,
                                                        const TrainOptions& options);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Drops the gradients of the optimizer's parameters (PyTorch's zero_grad(set_to_none=True), LibTorch 2.x's
// default). Backward then hands its gradient buffers over instead of adding them into zeroed ones (two
// passes over every weight saved), and no gradient memory is held during the forward pass. As in PyTorch,
// a parameter that receives no gradient in a step is skipped by the optimizer.
void release_gradients(torch::optim::Optimizer& optimizer);

// Bytes the two moments take once every parameter has stepped. fp32 AdamW: 2 * numel * element size;
// 8-bit: 2 * numel + 2 * 4 * ceil(numel / 256) for tensors of >= 4096 elements, 8 * numel below.
int64_t planned_optimizer_state_bytes(const std::vector<at::Tensor>& parameters, bool eight_bit);
// Bytes of the moment tensors the optimizer holds now.
int64_t optimizer_state_bytes(torch::optim::Optimizer& optimizer);

// ||(||g_1||_2, ..., ||g_n||_2)||_2 over the defined gradients, float32 (0 when there are none).
at::Tensor total_grad_norm(const std::vector<at::Tensor>& parameters);
// torch.nn.utils.clip_grad_norm_: every gradient is multiplied by clamp(max_norm / (norm + 1e-6), max=1).
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

// The optimizer state as named tensors, for every parameter that has state: "<name>.step" (int64
// scalar) and either "<name>.exp_avg", "<name>.exp_avg_sq" (AdamW: parameter dtype; AdamW8bit's small
// tensors: float32) or, for AdamW8bit's quantized moments, "<name>.exp_avg.codes" / ".exp_avg_sq.codes"
// (uint8, parameter shape) with "<name>.exp_avg.absmax" / ".exp_avg_sq.absmax" (float32 per block).
// `optimizer` is a torch::optim::AdamW or an AdamW8bit (else a usage error).
std::vector<io::NamedTensor> optimizer_state_tensors(torch::optim::Optimizer& optimizer,
                                                     const TrainableParameters& trainable);
// Restores what optimizer_state_tensors wrote, bit for bit. Strict: state for a parameter the file
// lacks, a shape mismatch, or state of the other optimizer kind (8-bit vs fp32) is an input error naming
// `reader`'s file. Parameters without any entry start fresh.
void load_optimizer_state(torch::optim::Optimizer& optimizer, const TrainableParameters& trainable,
                          const io::SafetensorsReader& reader);

}  // namespace dreambooth::train
