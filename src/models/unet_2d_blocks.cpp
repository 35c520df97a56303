#include "dreambooth/models/unet_2d_blocks.h"

#include <torch/torch.h>

namespace dreambooth::models {

namespace {
TransformerConfig with_channels(TransformerConfig config, int64_t channels) {
  config.channels = channels;
  return config;
}
}  // namespace

DownBlock2DImpl::DownBlock2DImpl(const DownBlockOptions& o) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (o.attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    resnets->push_back(ResnetBlock2D(ResnetBlockOptions{i == 0 ? o.in_channels : o.out_channels, o.out_channels,
                                                        o.temb_channels, o.groups, o.eps}));
    if (o.attention) attentions->push_back(Transformer2DModel(with_channels(*o.attention, o.out_channels)));
  }
  if (o.add_downsample) {
    downsamplers = register_module("downsamplers",
                                   torch::nn::ModuleList(Downsample2D(o.out_channels, o.downsample_padding)));
  }
}

at::Tensor DownBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context,
                                    std::vector<at::Tensor>* skips) {
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    h = resnets->ptr<ResnetBlock2DImpl>(i)->forward(h, temb);
    if (attentions) h = attentions->ptr<Transformer2DModelImpl>(i)->forward(h, context);
    if (skips) skips->push_back(h);
  }
  if (downsamplers) {
    h = downsamplers->ptr<Downsample2DImpl>(0)->forward(h);
    if (skips) skips->push_back(h);
  }
  return h;
}

UpBlock2DImpl::UpBlock2DImpl(const UpBlockOptions& o) : uses_skips_(!o.skip_channels.empty()) {
  TORCH_CHECK(!uses_skips_ || static_cast<int64_t>(o.skip_channels.size()) == o.num_layers,
              "UpBlock2D: one skip channel count per resnet");
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (o.attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    const int64_t in = (i == 0 ? o.in_channels : o.out_channels) + (uses_skips_ ? o.skip_channels[i] : 0);
    resnets->push_back(ResnetBlock2D(ResnetBlockOptions{in, o.out_channels, o.temb_channels, o.groups, o.eps}));
    if (o.attention) attentions->push_back(Transformer2DModel(with_channels(*o.attention, o.out_channels)));
  }
  if (o.add_upsample) upsamplers = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(o.out_channels)));
}

at::Tensor UpBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context,
                                  std::vector<at::Tensor>* skips, at::IntArrayRef upsample_size) {
  TORCH_CHECK(!uses_skips_ || (skips && skips->size() >= resnets->size()), "UpBlock2D: too few skip tensors");
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    if (uses_skips_) {
      // [B, C, H, W] + [B, Cskip, H, W] -> [B, C + Cskip, H, W]
      h = torch::cat({h, skips->back()}, 1);
      skips->pop_back();
    }
    h = resnets->ptr<ResnetBlock2DImpl>(i)->forward(h, temb);
    if (attentions) h = attentions->ptr<Transformer2DModelImpl>(i)->forward(h, context);
  }
  if (upsamplers) h = upsamplers->ptr<Upsample2DImpl>(0)->forward(h, upsample_size);
  return h;
}

UNetMidBlock2DCrossAttnImpl::UNetMidBlock2DCrossAttnImpl(const MidBlockOptions& o) {
  const ResnetBlockOptions resnet{o.channels, o.channels, o.temb_channels, o.groups, o.eps, o.output_scale_factor};
  resnets = register_module("resnets", torch::nn::ModuleList(ResnetBlock2D(resnet), ResnetBlock2D(resnet)));
  attentions = register_module("attentions",
                               torch::nn::ModuleList(Transformer2DModel(with_channels(o.attention, o.channels))));
}

at::Tensor UNetMidBlock2DCrossAttnImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                                const at::Tensor& context) {
  at::Tensor h = resnets->ptr<ResnetBlock2DImpl>(0)->forward(x, temb);
  h = attentions->ptr<Transformer2DModelImpl>(0)->forward(h, context);
  return resnets->ptr<ResnetBlock2DImpl>(1)->forward(h, temb);
}

}  // namespace dreambooth::models
