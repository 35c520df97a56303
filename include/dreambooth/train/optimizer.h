// The optimizer side of a step: AdamW over the trainable parameters (torch::optim::AdamW, which
// updates exactly as PyTorch's single-tensor AdamW), gradient clipping as torch.nn.utils.clip_grad_norm_,
// and the optimizer state by parameter name (for checkpoints).
#pragma once

#include <memory>
#include <vector>

#include <torch/optim/adamw.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/train/options.h"
#include "dreambooth/train/trainable_parameters.h"

namespace dreambooth::train {

// One parameter group with the options' betas, eps and weight decay; lr from the schedule each step.
std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainableParameters& trainable, const TrainOptions& options);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// ||(||g_1||_2, ..., ||g_n||_2)||_2 over the defined gradients, float32 (0 when there are none).
at::Tensor total_grad_norm(const std::vector<at::Tensor>& parameters);
// torch.nn.utils.clip_grad_norm_: every gradient is multiplied by clamp(max_norm / (norm + 1e-6), max=1).
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

// AdamW state as named tensors: "<name>.exp_avg", "<name>.exp_avg_sq" (parameter dtype) and
// "<name>.step" (int64 scalar) for every parameter that has state.
std::vector<io::NamedTensor> adamw_state_tensors(torch::optim::AdamW& optimizer, const TrainableParameters& trainable);
// Restores what adamw_state_tensors wrote. Strict: state for a parameter the file lacks, or a shape
// mismatch, is an input error naming `reader`'s file. Parameters without any entry start fresh.
void load_adamw_state(torch::optim::AdamW& optimizer, const TrainableParameters& trainable,
                      const io::SafetensorsReader& reader);

}  // namespace dreambooth::train
