#include "dreambooth/models/unet_2d_condition.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "dreambooth/models/checkpointing.h"

namespace dreambooth::models {

at::Tensor timestep_features(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  TORCH_CHECK(timesteps.dim() == 1, "timestep_features expects [B] timesteps");
  const int64_t half = dim / 2;
  const auto options = torch::TensorOptions(timesteps.device()).dtype(torch::kFloat);
  // Same operation order as diffusers, so the float32 result is bit-identical.
  at::Tensor exponent = torch::arange(0, half, options) * -std::log(10000.0);
  exponent = exponent / (static_cast<double>(half) - freq_shift);
  // [B, 1] * [1, half] -> [B, half]
  const at::Tensor angles = timesteps.to(torch::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0);
  at::Tensor features = flip_sin_to_cos ? torch::cat({angles.cos(), angles.sin()}, -1)
                                        : torch::cat({angles.sin(), angles.cos()}, -1);
  if (dim % 2 == 1) features = torch::constant_pad_nd(features, {0, 1}, 0);  // [B, 2*half] -> [B, dim]
  return features;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t embed_dim) {
  linear_1 = register_module("linear_1", Linear(in_channels, embed_dim));
  linear_2 = register_module("linear_2", Linear(embed_dim, embed_dim));
}

at::Tensor TimestepEmbeddingImpl::forward(const at::Tensor& features) {
  return linear_2(torch::silu(linear_1(features)));
}

namespace {

TransformerConfig transformer_for_block(const UNetConfig& config, int block) {
  TransformerConfig t;
  t.heads = config.heads_for_block(block);
  t.context_dim = config.cross_attention_dim;
  t.layers = config.transformer_layers_per_block;
  t.norm_groups = config.norm_num_groups;
  t.linear_projection = config.use_linear_projection;
  t.upcast = config.upcast_attention;
  return t;  // channels are filled in by the block
}

}  // namespace

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNetConfig& config) : config_(config) {
  config.validate();
  const std::vector<int>& channels = config.block_out_channels;
  const int n = config.num_blocks();
  const int64_t temb = config.time_embed_dim();

  conv_in = register_module("conv_in", Conv2d(config.in_channels, channels[0], 3, 1, 1));
  time_embedding = register_module("time_embedding", TimestepEmbedding(channels[0], temb));

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  for (int i = 0; i < n; ++i) {
    DownBlockOptions o;
    o.in_channels = channels[std::max(i - 1, 0)];
    o.out_channels = channels[i];
    o.num_layers = config.layers_per_block;
    o.temb_channels = temb;
    o.groups = config.norm_num_groups;
    o.eps = config.norm_eps;
    if (config.down_block_has_attention(i)) o.attention = transformer_for_block(config, i);
    o.add_downsample = i + 1 < n;
    o.downsample_padding =
        config.downsample_padding == 1 ? DownsamplePadding::Symmetric : DownsamplePadding::BottomRight;
    down_blocks->push_back(DownBlock2D(o));
  }

  MidBlockOptions mid;
  mid.channels = channels.back();
  mid.temb_channels = temb;
  mid.groups = config.norm_num_groups;
  mid.eps = config.norm_eps;
  mid.output_scale_factor = config.mid_block_scale_factor;
  mid.attention = transformer_for_block(config, n - 1);
  mid_block = register_module("mid_block", UNetMidBlock2DCrossAttn(mid));

  // Up block i mirrors down block n-1-i; its resnets take the skips of that down block in reverse order:
  // the last one gets the skip that entered the down block (the previous stage's width).
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  const int up_layers = config.layers_per_block + 1;
  for (int i = 0; i < n; ++i) {
    const int mirror = n - 1 - i;
    UpBlockOptions o;
    o.in_channels = channels[std::min(mirror + 1, n - 1)];
    o.out_channels = channels[mirror];
    const int64_t skip_in = channels[std::max(mirror - 1, 0)];
    for (int j = 0; j < up_layers; ++j) o.skip_channels.push_back(j + 1 == up_layers ? skip_in : o.out_channels);
    o.num_layers = up_layers;
    o.temb_channels = temb;
    o.groups = config.norm_num_groups;
    o.eps = config.norm_eps;
    if (config.up_block_has_attention(i)) o.attention = transformer_for_block(config, mirror);
    o.add_upsample = i + 1 < n;
    up_blocks->push_back(UpBlock2D(o));
  }

  conv_norm_out = register_module("conv_norm_out", GroupNorm(config.norm_num_groups, channels[0], config.norm_eps));
  conv_out = register_module("conv_out", Conv2d(channels[0], config.out_channels, 3, 1, 1));
}

at::Tensor UNet2DConditionModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                             const at::Tensor& encoder_hidden_states,
                                             UNetIntermediates* intermediates) {
  auto record = [&](const std::string& name, const at::Tensor& t) {
    if (intermediates) (*intermediates)[name] = t;
  };
  const int64_t batch = sample.size(0);
  const int n = config_.num_blocks();

  // --- time embedding: scalar or [1] -> [B]; features [B, C0] (float32, then the model's dtype) -> [B, 4*C0]
  at::Tensor t = timestep.reshape({-1});
  if (t.size(0) == 1 && batch != 1) t = t.expand({batch});
  TORCH_CHECK(t.size(0) == batch, "UNet: ", t.size(0), " timesteps for a batch of ", batch);
  const at::Tensor t_emb = timestep_features(t, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                             config_.freq_shift)
                               .to(sample.scalar_type());
  record("t_emb", t_emb);
  const at::Tensor emb = time_embedding(t_emb);
  record("emb", emb);

  // --- conv_in: [B, Cin, H, W] -> [B, C0, H, W]
  at::Tensor h = conv_in(config_.center_input_sample ? sample * 2.0 - 1.0 : sample);
  record("conv_in", h);

  // --- down: every resnet/attention/downsampler output is kept for the up path
  std::vector<at::Tensor> skips = {h};
  const bool checkpointing = gradient_checkpointing_ && torch::GradMode::is_enabled();
  for (int i = 0; i < n; ++i) {
    auto block = down_blocks->ptr<DownBlock2DImpl>(i);
    if (checkpointing) {
      // The block's new skips; the last one is its output.
      const std::vector<at::Tensor> added = checkpoint(
          [block](const std::vector<at::Tensor>& in) {
            std::vector<at::Tensor> out;
            block->forward(in[0], in[1], in[2], &out);
            return out;
          },
          {h, emb, encoder_hidden_states}, trainable_parameters_of(*block));
      skips.insert(skips.end(), added.begin(), added.end());
      h = added.back();
    } else {
      h = block->forward(h, emb, encoder_hidden_states, &skips);
    }
    if (intermediates) record("down_blocks." + std::to_string(i), h);
  }

  // --- mid
  if (checkpointing) {
    auto mid = mid_block.ptr();
    h = checkpoint([mid](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{mid->forward(in[0], in[1], in[2])}; },
                   {h, emb, encoder_hidden_states}, trainable_parameters_of(*mid))[0];
  } else {
    h = mid_block(h, emb, encoder_hidden_states);
  }
  record("mid_block", h);

  // --- up: sizes not divisible by the total downscale upsample to the matching skip's size
  const int64_t downscale = int64_t{1} << (n - 1);
  const bool explicit_sizes = sample.size(2) % downscale != 0 || sample.size(3) % downscale != 0;
  for (int i = 0; i < n; ++i) {
    auto block = up_blocks->ptr<UpBlock2DImpl>(i);
    std::vector<int64_t> upsample_size;
    if (explicit_sizes && i + 1 < n) {
      const at::Tensor& next_skip = skips[skips.size() - block->resnets->size() - 1];
      upsample_size = {next_skip.size(2), next_skip.size(3)};
    }
    if (checkpointing) {
      // Inputs: h, emb, context, then the skips this block consumes, in stack order.
      const size_t used = block->resnets->size();
      std::vector<at::Tensor> inputs = {h, emb, encoder_hidden_states};
      inputs.insert(inputs.end(), skips.end() - static_cast<std::ptrdiff_t>(used), skips.end());
      skips.resize(skips.size() - used);
      h = checkpoint(
          [block, upsample_size](const std::vector<at::Tensor>& in) {
            std::vector<at::Tensor> own_skips(in.begin() + 3, in.end());
            return std::vector<at::Tensor>{block->forward(in[0], in[1], in[2], &own_skips, upsample_size)};
          },
          inputs, trainable_parameters_of(*block))[0];
    } else {
      h = block->forward(h, emb, encoder_hidden_states, &skips, upsample_size);
    }
    if (intermediates) record("up_blocks." + std::to_string(i), h);
  }

  // --- out: [B, C0, H, W] -> [B, out_channels, H, W]
  return conv_out(torch::silu(conv_norm_out(h)));
}

}  // namespace dreambooth::models
