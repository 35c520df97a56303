// UNet2DConditionModel configuration: diffusers' config.json fields, defaults = SD1.5.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dreambooth::models {

struct UNetConfig {
  int sample_size = 64;
  int in_channels = 4;
  int out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  int freq_shift = 0;
  std::vector<std::string> down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                               "CrossAttnDownBlock2D", "DownBlock2D"};
  std::vector<std::string> up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                             "CrossAttnUpBlock2D"};
  std::vector<int> block_out_channels = {320, 640, 1280, 1280};
  int layers_per_block = 2;
  int downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  std::string act_fn = "silu";
  int norm_num_groups = 32;
  double norm_eps = 1e-5;
  int cross_attention_dim = 768;
  // Legacy diffusers naming: for SD1/SD2 this is the number of heads (one value or one per block).
  std::vector<int> attention_head_dim = {8};
  // When present it wins over attention_head_dim (newer configs).
  std::vector<int> num_attention_heads = {};
  int transformer_layers_per_block = 1;
  bool use_linear_projection = false;
  bool upcast_attention = false;

  static UNetConfig sd15();
  static UNetConfig sd21();  // 768-v
  static UNetConfig tiny();  // the ../shared/golden tiny-sd1 UNet

  int num_blocks() const { return static_cast<int>(block_out_channels.size()); }
  // Heads of the transformer blocks in down block `i` (up block j uses heads_for_block(n-1-j)).
  int heads_for_block(int i) const;
  int time_embed_dim() const { return block_out_channels.at(0) * 4; }
  bool down_block_has_attention(int i) const;
  bool up_block_has_attention(int i) const;

  static UNetConfig from_json(const nlohmann::json& json, const std::string& source);
  nlohmann::json to_json() const;
  void validate(const std::string& source = "unet config") const;
};

}  // namespace dreambooth::models
