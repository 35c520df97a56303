// The resolution stages of the UNet and the VAE, configured by options: one down block class covers
// diffusers' CrossAttnDownBlock2D, DownBlock2D and DownEncoderBlock2D, one up block class covers
// CrossAttnUpBlock2D, UpBlock2D and UpDecoderBlock2D. Children: resnets.N, attentions.N,
// downsamplers.0 / upsamplers.0.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/resnet.h"
#include "dreambooth/models/transformer_2d.h"

namespace dreambooth::models {

struct DownBlockOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t num_layers = 2;
  int64_t temb_channels = 0;  // 0: no time embedding (VAE encoder)
  int64_t groups = 32;
  double eps = 1e-5;
  // Set: a Transformer2DModel after each resnet (CrossAttnDownBlock2D); its channels are out_channels.
  std::optional<TransformerConfig> attention;
  bool add_downsample = true;
  DownsamplePadding downsample_padding = DownsamplePadding::Symmetric;
};

class DownBlock2DImpl : public torch::nn::Module {
 public:
  explicit DownBlock2DImpl(const DownBlockOptions& options);
  // x [B, Cin, H, W] -> [B, Cout, H/2, W/2] (H, W without a downsampler). When `skips` is given, the output
  // of every resnet(+attention) and of the downsampler is appended to it (the UNet's skip connections).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {}, const at::Tensor& context = {},
                     std::vector<at::Tensor>* skips = nullptr);

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};    // registered only with attention
  torch::nn::ModuleList downsamplers{nullptr};  // registered only with add_downsample
};
TORCH_MODULE(DownBlock2D);

struct UpBlockOptions {
  int64_t in_channels = 0;  // channels arriving from the previous stage
  int64_t out_channels = 0;
  // Channels of the skip tensor concatenated before each resnet; empty: no skips (VAE decoder).
  std::vector<int64_t> skip_channels;
  int64_t num_layers = 3;
  int64_t temb_channels = 0;
  int64_t groups = 32;
  double eps = 1e-5;
  std::optional<TransformerConfig> attention;
  bool add_upsample = true;
};

class UpBlock2DImpl : public torch::nn::Module {
 public:
  explicit UpBlock2DImpl(const UpBlockOptions& options);
  // x [B, Cin, H, W] -> [B, Cout, 2H, 2W] (H, W without an upsampler). With skip_channels, each resnet
  // first concatenates [x, skips->back()] along channels and pops it. `upsample_size` ({H, W}) overrides
  // the doubled size (inputs not divisible by the total downscale).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {}, const at::Tensor& context = {},
                     std::vector<at::Tensor>* skips = nullptr, at::IntArrayRef upsample_size = {});

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};
  torch::nn::ModuleList upsamplers{nullptr};

 private:
  bool uses_skips_;
};
TORCH_MODULE(UpBlock2D);

struct MidBlockOptions {
  int64_t channels = 0;
  int64_t temb_channels = 0;
  int64_t groups = 32;
  double eps = 1e-5;
  double output_scale_factor = 1.0;  // mid_block_scale_factor
  TransformerConfig attention;       // channels are set to `channels`
};

// UNetMidBlock2DCrossAttn: resnets.0 -> attentions.0 (Transformer2DModel) -> resnets.1.
class UNetMidBlock2DCrossAttnImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlock2DCrossAttnImpl(const MidBlockOptions& options);
  // x [B, C, H, W] -> [B, C, H, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context);

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};
};
TORCH_MODULE(UNetMidBlock2DCrossAttn);

}  // namespace dreambooth::models
