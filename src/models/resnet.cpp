#include "dreambooth/models/resnet.h"

#include <torch/torch.h>

#include "dreambooth/models/inference_ops.h"

namespace dreambooth::models {

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlockOptions& o) : output_scale_factor_(o.output_scale_factor) {
  norm1 = register_module("norm1", GroupNorm(o.groups, o.in_channels, o.eps));
  conv1 = register_module("conv1", Conv2d(o.in_channels, o.out_channels, 3, 1, 1));
  if (o.temb_channels > 0) time_emb_proj = register_module("time_emb_proj", Linear(o.temb_channels, o.out_channels));
  norm2 = register_module("norm2", GroupNorm(o.groups, o.out_channels, o.eps));
  conv2 = register_module("conv2", Conv2d(o.out_channels, o.out_channels, 3, 1, 1));
  if (o.in_channels != o.out_channels)
    conv_shortcut = register_module("conv_shortcut", Conv2d(o.in_channels, o.out_channels, 1));
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  // Each intermediate is dropped as soon as the next exists (see inference_ops.h).
  at::Tensor h = silu_of_fresh(norm1(x));
  h = conv1(h);
  if (time_emb_proj) {
    // [B, Cout] -> [B, Cout, 1, 1], broadcast over the image
    h = add_to_fresh(std::move(h), time_emb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1));
  }
  h = silu_of_fresh(norm2(h));
  h = conv2(h);  // dropout p=0 in every SD model
  h = add_to_fresh(std::move(h), conv_shortcut ? conv_shortcut(x) : x);
  if (output_scale_factor_ == 1.0) return h;
  return autograd_records() ? h / output_scale_factor_ : h.div_(output_scale_factor_);
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, DownsamplePadding padding) : padding_(padding) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 2, padding == DownsamplePadding::Symmetric ? 1 : 0));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  if (padding_ == DownsamplePadding::Symmetric) return conv(x);
  // (left, right, top, bottom) = (0, 1, 0, 1)
  return conv(torch::constant_pad_nd(x, {0, 1, 0, 1}, 0));
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 1, 1));
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x, at::IntArrayRef size) {
  // Nearest upsampling has no bfloat16 kernel in LibTorch 1.13: go through float32 as diffusers does.
  const bool via_float = x.scalar_type() == at::kBFloat16;
  const at::Tensor input = via_float ? x.to(at::kFloat) : x;
  at::Tensor up = size.empty() ? at::upsample_nearest2d(input, {2 * x.size(2), 2 * x.size(3)}, 2.0, 2.0)
                               : at::upsample_nearest2d(input, size);
  return conv(via_float ? up.to(at::kBFloat16) : up);
}

}  // namespace dreambooth::models
