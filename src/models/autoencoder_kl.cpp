#include "dreambooth/models/autoencoder_kl.h"

#include <torch/torch.h>

#include "dreambooth/models/inference_ops.h"

namespace dreambooth::models {

namespace {
constexpr double kVaeEps = 1e-6;  // every GroupNorm of the VAE
}  // namespace

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups) {
  const ResnetBlockOptions resnet{channels, channels, /*temb_channels=*/0, groups, kVaeEps};
  resnets = register_module("resnets", torch::nn::ModuleList(ResnetBlock2D(resnet), ResnetBlock2D(resnet)));
  AttentionConfig attn;
  attn.query_dim = channels;
  attn.heads = 1;
  attn.head_dim = channels;
  attn.qkv_bias = true;
  attn.norm_groups = groups;
  attn.norm_eps = kVaeEps;
  attentions = register_module("attentions", torch::nn::ModuleList(Attention(attn)));
}

at::Tensor VaeMidBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = resnets->ptr<ResnetBlock2DImpl>(0)->forward(x);
  h = attentions->ptr<AttentionImpl>(0)->forward_image(h);
  return resnets->ptr<ResnetBlock2DImpl>(1)->forward(h);
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& config) {
  const std::vector<int>& channels = config.block_out_channels;
  const int n = config.num_blocks();
  conv_in = register_module("conv_in", Conv2d(config.in_channels, channels[0], 3, 1, 1));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  for (int i = 0; i < n; ++i) {
    DownBlockOptions o;
    o.in_channels = channels[std::max(i - 1, 0)];
    o.out_channels = channels[i];
    o.num_layers = config.layers_per_block;
    o.groups = config.norm_num_groups;
    o.eps = kVaeEps;
    o.add_downsample = i + 1 < n;
    o.downsample_padding = DownsamplePadding::BottomRight;
    down_blocks->push_back(DownBlock2D(o));
  }
  mid_block = register_module("mid_block", VaeMidBlock(channels.back(), config.norm_num_groups));
  conv_norm_out = register_module("conv_norm_out", GroupNorm(config.norm_num_groups, channels.back(), kVaeEps));
  conv_out = register_module("conv_out", Conv2d(channels.back(), 2 * config.latent_channels, 3, 1, 1));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& image) {
  // --- in: [B, 3, H, W] -> [B, C0, H, W]
  at::Tensor h = conv_in(image);
  // --- down: halve the resolution after every block but the last
  for (size_t i = 0; i < down_blocks->size(); ++i) h = down_blocks->ptr<DownBlock2DImpl>(i)->forward(h);
  // --- mid, out: [B, Clast, h, w] -> [B, 2*latent, h, w]
  h = mid_block(h);
  h = silu_of_fresh(conv_norm_out(h));
  return conv_out(h);
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& config) {
  const std::vector<int>& channels = config.block_out_channels;
  const int n = config.num_blocks();
  conv_in = register_module("conv_in", Conv2d(config.latent_channels, channels.back(), 3, 1, 1));
  mid_block = register_module("mid_block", VaeMidBlock(channels.back(), config.norm_num_groups));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  for (int i = 0; i < n; ++i) {
    const int mirror = n - 1 - i;
    UpBlockOptions o;
    o.in_channels = channels[std::min(mirror + 1, n - 1)];
    o.out_channels = channels[mirror];
    o.num_layers = config.layers_per_block + 1;
    o.groups = config.norm_num_groups;
    o.eps = kVaeEps;
    o.add_upsample = i + 1 < n;
    up_blocks->push_back(UpBlock2D(o));
  }
  conv_norm_out = register_module("conv_norm_out", GroupNorm(config.norm_num_groups, channels[0], kVaeEps));
  conv_out = register_module("conv_out", Conv2d(channels[0], config.out_channels, 3, 1, 1));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z) {
  // --- in, mid: [B, latent, h, w] -> [B, Clast, h, w]
  at::Tensor h = mid_block(conv_in(z));
  // --- up: double the resolution after every block but the last
  for (size_t i = 0; i < up_blocks->size(); ++i) h = up_blocks->ptr<UpBlock2DImpl>(i)->forward(h);
  // --- out: [B, C0, H, W] -> [B, 3, H, W]; h is dropped before the convolution allocates its output
  h = silu_of_fresh(conv_norm_out(h));
  return conv_out(h);
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : config_(config) {
  config.validate();
  const int64_t latent = config.latent_channels;
  encoder = register_module("encoder", VaeEncoder(config));
  decoder = register_module("decoder", VaeDecoder(config));
  quant_conv = register_module("quant_conv", Conv2d(2 * latent, 2 * latent, 1));
  post_quant_conv = register_module("post_quant_conv", Conv2d(latent, latent, 1));
}

void AutoencoderKLImpl::release_encoder() {
  if (!encoder) return;
  unregister_module("encoder");
  unregister_module("quant_conv");
  encoder = nullptr;
  quant_conv = nullptr;
}

LatentDistribution AutoencoderKLImpl::encode(const at::Tensor& image) {
  TORCH_CHECK(encoder, "AutoencoderKL: the encoder was released (decode-only)");
  LatentDistribution d;
  d.moments = quant_conv(encoder(image));
  // [B, 2*latent, h, w] -> 2 x [B, latent, h, w]
  auto halves = d.moments.chunk(2, 1);
  d.mean = halves[0];
  d.logvar = halves[1].clamp(-30.0, 20.0);
  d.std = torch::exp(0.5 * d.logvar);
  return d;
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z) { return decoder(post_quant_conv(z)); }

}  // namespace dreambooth::models
