// UNet2DConditionModel (SD1.x / SD2.x), built from a UNetConfig with diffusers' parameter names:
// conv_in, time_embedding.linear_{1,2}, down_blocks.N, mid_block, up_blocks.N, conv_norm_out, conv_out.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/layers.h"
#include "dreambooth/models/unet_2d_blocks.h"
#include "dreambooth/models/unet_config.h"

namespace dreambooth::models {

// Sinusoidal timestep features as diffusers computes them, always in float32:
// freq_k = exp(-ln(10000) * k / (dim/2 - freq_shift)), features = [sin(t freq), cos(t freq)], swapped to
// [cos, sin] with flip_sin_to_cos. timesteps [B] (any numeric dtype) -> [B, dim] float32.
at::Tensor timestep_features(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

// linear_2(silu(linear_1(features)))
class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t embed_dim);
  at::Tensor forward(const at::Tensor& features);  // [B, in] -> [B, embed_dim]

  Linear linear_1{nullptr};
  Linear linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// Optional record of intermediate tensors, keyed as the golden cases name them: "t_emb", "emb",
// "conv_in", "down_blocks.<i>", "mid_block", "up_blocks.<i>". Recording keeps references, no copies.
using UNetIntermediates = std::map<std::string, at::Tensor>;

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(const UNetConfig& config);

  // sample [B, in_channels, H, W]; timestep: 0-d (broadcast to the batch), [1] or [B], int64 or float;
  // encoder_hidden_states [B, L, cross_attention_dim] -> noise (or v) prediction [B, out_channels, H, W].
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& encoder_hidden_states,
                     UNetIntermediates* intermediates = nullptr);

  const UNetConfig& config() const { return config_; }

  // Gradient checkpointing (models/checkpointing.h): while on and grad mode is enabled, every down
  // block, the mid block and every up block recompute their activations in the backward pass.
  void set_gradient_checkpointing(bool enabled) { gradient_checkpointing_ = enabled; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  Conv2d conv_in{nullptr};
  TimestepEmbedding time_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  UNetMidBlock2DCrossAttn mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  GroupNorm conv_norm_out{nullptr};
  Conv2d conv_out{nullptr};

 private:
  UNetConfig config_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(UNet2DConditionModel);

}  // namespace dreambooth::models
