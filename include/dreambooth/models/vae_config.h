// AutoencoderKL configuration: diffusers' config.json fields, defaults = SD1.5/SD2 VAE.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dreambooth::models {

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                                               "DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                                             "UpDecoderBlock2D"};
  std::vector<int> block_out_channels = {128, 256, 512, 512};
  int layers_per_block = 2;
  std::string act_fn = "silu";
  int latent_channels = 4;
  int norm_num_groups = 32;
  int sample_size = 512;
  double scaling_factor = 0.18215;
  bool force_upcast = true;

  static VaeConfig sd15();
  static VaeConfig tiny();

  int num_blocks() const { return static_cast<int>(block_out_channels.size()); }
  // Pixels per latent along one side: 2^(blocks-1).
  int downscale_factor() const { return 1 << (num_blocks() - 1); }

  static VaeConfig from_json(const nlohmann::json& json, const std::string& source);
  nlohmann::json to_json() const;
  void validate(const std::string& source = "vae config") const;
};

}  // namespace dreambooth::models
