// Convolutional building blocks shared by the UNet and the VAE: diffusers' ResnetBlock2D, Downsample2D
// and Upsample2D (parameter names conv1/norm1/time_emb_proj/..., conv).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/layers.h"

namespace dreambooth::models {

struct ResnetBlockOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t temb_channels = 0;  // 0: no time embedding (VAE)
  int64_t groups = 32;
  double eps = 1e-5;
  double output_scale_factor = 1.0;
};

// GroupNorm -> SiLU -> conv3x3 (+ projected time embedding) -> GroupNorm -> SiLU -> conv3x3, plus the
// input (through a 1x1 conv_shortcut when the channel count changes).
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlockOptions& options);
  // x [B, Cin, H, W], temb [B, temb_channels] (undefined when temb_channels == 0) -> [B, Cout, H, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {});

  GroupNorm norm1{nullptr};
  Conv2d conv1{nullptr};
  Linear time_emb_proj{nullptr};
  GroupNorm norm2{nullptr};
  Conv2d conv2{nullptr};
  Conv2d conv_shortcut{nullptr};

 private:
  double output_scale_factor_;
};
TORCH_MODULE(ResnetBlock2D);

enum class DownsamplePadding {
  Symmetric,    // 3x3 stride-2 conv with padding 1 (UNet)
  BottomRight,  // zero-pad one row/column at the bottom/right, then 3x3 stride-2 conv without padding (VAE encoder)
};

class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, DownsamplePadding padding);
  // [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]
  at::Tensor forward(const at::Tensor& x);

  Conv2d conv{nullptr};

 private:
  DownsamplePadding padding_;
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t channels);
  // Nearest-neighbour to `size` ({H, W}; empty: twice the input) then 3x3 conv: [B, C, H, W] -> [B, C, 2H, 2W]
  at::Tensor forward(const at::Tensor& x, at::IntArrayRef size = {});

  Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

}  // namespace dreambooth::models
