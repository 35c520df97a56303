// AutoencoderKL (the SD VAE), built from a VaeConfig with diffusers' parameter names:
// encoder.{conv_in, down_blocks.N, mid_block, conv_norm_out, conv_out}, quant_conv, post_quant_conv,
// decoder.{conv_in, mid_block, up_blocks.N, conv_norm_out, conv_out}. Every GroupNorm uses eps 1e-6.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/layers.h"
#include "dreambooth/models/resnet.h"
#include "dreambooth/models/transformer_2d.h"
#include "dreambooth/models/unet_2d_blocks.h"
#include "dreambooth/models/vae_config.h"

namespace dreambooth::models {

// UNetMidBlock2D without time embedding: resnets.0 -> attentions.0 (single-head self-attention over the
// pixels, with group_norm and residual) -> resnets.1.
class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, int64_t groups);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, C, H, W]

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};
};
TORCH_MODULE(VaeMidBlock);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& config);
  // image [B, in_channels, H, W] -> moments [B, 2*latent_channels, H/f, W/f]
  at::Tensor forward(const at::Tensor& image);

  Conv2d conv_in{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  VaeMidBlock mid_block{nullptr};
  GroupNorm conv_norm_out{nullptr};
  Conv2d conv_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& config);
  // z [B, latent_channels, h, w] -> image [B, out_channels, h*f, w*f]
  at::Tensor forward(const at::Tensor& z);

  Conv2d conv_in{nullptr};
  VaeMidBlock mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  GroupNorm conv_norm_out{nullptr};
  Conv2d conv_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

// The posterior q(z | image): a diagonal Gaussian. All tensors [B, latent_channels, h, w] except moments.
struct LatentDistribution {
  at::Tensor moments;  // raw quant_conv output [B, 2*latent_channels, h, w] = mean || logvar
  at::Tensor mean;
  at::Tensor logvar;   // clamped to [-30, 20]
  at::Tensor std;      // exp(logvar / 2)
  // mean + std * eps (eps ~ N(0, I), supplied by the caller so the noise source stays outside)
  at::Tensor sample(const at::Tensor& eps) const { return mean + std * eps; }
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& config);
  // image [B, 3, H, W] in [-1, 1] -> posterior over unscaled latents (multiply by scaling_factor for the UNet)
  LatentDistribution encode(const at::Tensor& image);
  // unscaled latents z [B, latent_channels, h, w] -> image [B, 3, h*f, w*f], roughly in [-1, 1]
  at::Tensor decode(const at::Tensor& z);
  // Frees the encoder and quant_conv (a third of the VAE's weights) where only decode() is needed, as in
  // sampling. encode() fails afterwards, and the module's state_dict no longer holds their keys.
  void release_encoder();

  const VaeConfig& config() const { return config_; }

  VaeEncoder encoder{nullptr};
  Conv2d quant_conv{nullptr};
  Conv2d post_quant_conv{nullptr};
  VaeDecoder decoder{nullptr};

 private:
  VaeConfig config_;
};
TORCH_MODULE(AutoencoderKL);

}  // namespace dreambooth::models
