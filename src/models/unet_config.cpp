#include "dreambooth/models/unet_config.h"

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"

namespace dreambooth::models {

UNetConfig UNetConfig::sd15() { return UNetConfig{}; }

UNetConfig UNetConfig::sd21() {
  UNetConfig c;
  c.sample_size = 96;
  c.cross_attention_dim = 1024;
  c.attention_head_dim = {5, 10, 20, 20};
  c.use_linear_projection = true;
  c.upcast_attention = true;
  return c;
}

UNetConfig UNetConfig::tiny() {
  UNetConfig c;
  c.sample_size = 8;
  c.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  c.block_out_channels = {32, 64};
  c.cross_attention_dim = 32;
  c.attention_head_dim = {8};
  return c;
}

int UNetConfig::heads_for_block(int i) const {
  const std::vector<int>& heads = num_attention_heads.empty() ? attention_head_dim : num_attention_heads;
  return heads.size() == 1 ? heads[0] : heads.at(i);
}

bool UNetConfig::down_block_has_attention(int i) const { return down_block_types.at(i) == "CrossAttnDownBlock2D"; }
bool UNetConfig::up_block_has_attention(int i) const { return up_block_types.at(i) == "CrossAttnUpBlock2D"; }

UNetConfig UNetConfig::from_json(const nlohmann::json& json, const std::string& source) {
  UNetConfig c;
  ConfigReader r(json, source);
  r.ignore_prefix("_");
  r.read("sample_size", c.sample_size);
  r.read("in_channels", c.in_channels);
  r.read("out_channels", c.out_channels);
  r.read("center_input_sample", c.center_input_sample);
  r.read("flip_sin_to_cos", c.flip_sin_to_cos);
  r.read("freq_shift", c.freq_shift);
  r.read("down_block_types", c.down_block_types);
  r.read("up_block_types", c.up_block_types);
  r.read("block_out_channels", c.block_out_channels);
  r.read("layers_per_block", c.layers_per_block);
  r.read("downsample_padding", c.downsample_padding);
  r.read("mid_block_scale_factor", c.mid_block_scale_factor);
  r.read("act_fn", c.act_fn);
  r.read("norm_num_groups", c.norm_num_groups);
  r.read("norm_eps", c.norm_eps);
  r.read("cross_attention_dim", c.cross_attention_dim);
  r.read_int_or_list("attention_head_dim", c.attention_head_dim);
  r.read_int_or_list("num_attention_heads", c.num_attention_heads);
  r.read("transformer_layers_per_block", c.transformer_layers_per_block);
  r.read("use_linear_projection", c.use_linear_projection);
  r.read("upcast_attention", c.upcast_attention);
  // Features of later UNets (SDXL, class-conditioned, ...): accepted only at their SD1/SD2 values.
  r.require_value("mid_block_type", "UNetMidBlock2DCrossAttn");
  r.require_value("addition_embed_type", nullptr);
  r.require_value("addition_time_embed_dim", nullptr);
  r.require_value("attention_type", "default");
  r.require_value("class_embed_type", nullptr);
  r.require_value("class_embeddings_concat", false);
  r.require_value("conv_in_kernel", 3);
  r.require_value("conv_out_kernel", 3);
  r.require_value("cross_attention_norm", nullptr);
  r.require_value("dual_cross_attention", false);
  r.require_value("encoder_hid_dim", nullptr);
  r.require_value("encoder_hid_dim_type", nullptr);
  r.require_value("mid_block_only_cross_attention", nullptr);
  r.require_value("num_class_embeds", nullptr);
  r.require_value("only_cross_attention", false);
  r.require_value("projection_class_embeddings_input_dim", nullptr);
  r.require_value("resnet_out_scale_factor", 1.0);
  r.require_value("resnet_skip_time_act", false);
  r.require_value("resnet_time_scale_shift", "default");
  r.require_value("reverse_transformer_layers_per_block", nullptr);
  r.require_value("time_cond_proj_dim", nullptr);
  r.require_value("time_embedding_act_fn", nullptr);
  r.require_value("time_embedding_dim", nullptr);
  r.require_value("time_embedding_type", "positional");
  r.require_value("timestep_post_act", nullptr);
  r.ignore("addition_embed_type_num_heads");  // only used with addition_embed_type
  r.ignore("dropout");                        // training-time only; SD checkpoints use 0
  r.warn_unknown();
  c.validate(source);
  return c;
}

nlohmann::json UNetConfig::to_json() const {
  nlohmann::json j = {
      {"_class_name", "UNet2DConditionModel"},
      {"_diffusers_version", "0.25.1"},
      {"sample_size", sample_size},
      {"in_channels", in_channels},
      {"out_channels", out_channels},
      {"center_input_sample", center_input_sample},
      {"flip_sin_to_cos", flip_sin_to_cos},
      {"freq_shift", freq_shift},
      {"down_block_types", down_block_types},
      {"mid_block_type", "UNetMidBlock2DCrossAttn"},
      {"up_block_types", up_block_types},
      {"block_out_channels", block_out_channels},
      {"layers_per_block", layers_per_block},
      {"downsample_padding", downsample_padding},
      {"mid_block_scale_factor", mid_block_scale_factor},
      {"act_fn", act_fn},
      {"norm_num_groups", norm_num_groups},
      {"norm_eps", norm_eps},
      {"cross_attention_dim", cross_attention_dim},
      {"transformer_layers_per_block", transformer_layers_per_block},
      {"use_linear_projection", use_linear_projection},
      {"upcast_attention", upcast_attention},
  };
  j["attention_head_dim"] = attention_head_dim.size() == 1 ? nlohmann::json(attention_head_dim[0])
                                                            : nlohmann::json(attention_head_dim);
  if (!num_attention_heads.empty())
    j["num_attention_heads"] = num_attention_heads.size() == 1 ? nlohmann::json(num_attention_heads[0])
                                                               : nlohmann::json(num_attention_heads);
  return j;
}

void UNetConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) { throw model_error(source, what); };
  const int n = num_blocks();
  if (n < 1) fail("block_out_channels is empty");
  if (static_cast<int>(down_block_types.size()) != n || static_cast<int>(up_block_types.size()) != n)
    fail("down_block_types, up_block_types and block_out_channels must have the same length");
  for (const auto& t : down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") fail("unsupported down block type '" + t + "'");
  for (const auto& t : up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") fail("unsupported up block type '" + t + "'");
  for (int ch : block_out_channels)
    if (ch <= 0 || ch % norm_num_groups != 0) fail("block_out_channels must be positive multiples of norm_num_groups");
  const auto& heads = num_attention_heads.empty() ? attention_head_dim : num_attention_heads;
  if (heads.size() != 1 && static_cast<int>(heads.size()) != n)
    fail("attention_head_dim/num_attention_heads needs one value or one per block");
  for (int i = 0; i < n; ++i) {
    int h = heads_for_block(i);
    if (h <= 0 || block_out_channels[i] % h != 0)
      fail("block " + std::to_string(i) + ": " + std::to_string(block_out_channels[i]) +
           " channels do not split into " + std::to_string(h) + " heads");
  }
  if (layers_per_block < 1) fail("layers_per_block must be >= 1");
  if (downsample_padding != 0 && downsample_padding != 1) fail("downsample_padding must be 0 or 1");
  if (transformer_layers_per_block < 1) fail("transformer_layers_per_block must be >= 1");
  if (act_fn != "silu") fail("act_fn '" + act_fn + "' is not supported (silu)");
  if (cross_attention_dim <= 0) fail("cross_attention_dim must be positive");
}

}  // namespace dreambooth::models
