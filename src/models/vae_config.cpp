#include "dreambooth/models/vae_config.h"

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"

namespace dreambooth::models {

VaeConfig VaeConfig::sd15() { return VaeConfig{}; }

VaeConfig VaeConfig::tiny() {
  VaeConfig c;
  c.block_out_channels = {32, 32, 64, 64};
  c.layers_per_block = 1;
  c.sample_size = 64;
  return c;
}

VaeConfig VaeConfig::from_json(const nlohmann::json& json, const std::string& source) {
  VaeConfig c;
  ConfigReader r(json, source);
  r.ignore_prefix("_");
  r.read("in_channels", c.in_channels);
  r.read("out_channels", c.out_channels);
  r.read("down_block_types", c.down_block_types);
  r.read("up_block_types", c.up_block_types);
  r.read("block_out_channels", c.block_out_channels);
  r.read("layers_per_block", c.layers_per_block);
  r.read("act_fn", c.act_fn);
  r.read("latent_channels", c.latent_channels);
  r.read("norm_num_groups", c.norm_num_groups);
  r.read("sample_size", c.sample_size);
  r.read("scaling_factor", c.scaling_factor);
  r.read("force_upcast", c.force_upcast);
  r.require_value("latents_mean", nullptr);
  r.require_value("latents_std", nullptr);
  r.require_value("use_quant_conv", true);
  r.require_value("use_post_quant_conv", true);
  r.require_value("mid_block_add_attention", true);
  r.warn_unknown();
  c.validate(source);
  return c;
}

nlohmann::json VaeConfig::to_json() const {
  return {
      {"_class_name", "AutoencoderKL"},
      {"_diffusers_version", "0.25.1"},
      {"in_channels", in_channels},
      {"out_channels", out_channels},
      {"down_block_types", down_block_types},
      {"up_block_types", up_block_types},
      {"block_out_channels", block_out_channels},
      {"layers_per_block", layers_per_block},
      {"act_fn", act_fn},
      {"latent_channels", latent_channels},
      {"norm_num_groups", norm_num_groups},
      {"sample_size", sample_size},
      {"scaling_factor", scaling_factor},
      {"force_upcast", force_upcast},
  };
}

void VaeConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) { throw model_error(source, what); };
  const int n = num_blocks();
  if (n < 1) fail("block_out_channels is empty");
  if (static_cast<int>(down_block_types.size()) != n || static_cast<int>(up_block_types.size()) != n)
    fail("down_block_types, up_block_types and block_out_channels must have the same length");
  for (const auto& t : down_block_types)
    if (t != "DownEncoderBlock2D") fail("unsupported VAE down block type '" + t + "'");
  for (const auto& t : up_block_types)
    if (t != "UpDecoderBlock2D") fail("unsupported VAE up block type '" + t + "'");
  for (int ch : block_out_channels)
    if (ch <= 0 || ch % norm_num_groups != 0) fail("block_out_channels must be positive multiples of norm_num_groups");
  if (layers_per_block < 1) fail("layers_per_block must be >= 1");
  if (latent_channels < 1) fail("latent_channels must be >= 1");
  if (act_fn != "silu") fail("act_fn '" + act_fn + "' is not supported (silu)");
}

}  // namespace dreambooth::models
