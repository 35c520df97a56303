// CLIPTextModel configuration: transformers' config.json fields, defaults = SD1.x (OpenAI ViT-L/14).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dreambooth::models {

struct ClipTextConfig {
  int vocab_size = 49408;
  int hidden_size = 768;
  int intermediate_size = 3072;
  int projection_dim = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";  // or "gelu" (SD2's OpenCLIP ViT-H)
  double layer_norm_eps = 1e-5;
  int bos_token_id = 49406;
  int eos_token_id = 49407;
  int pad_token_id = 49407;

  static ClipTextConfig sd15();
  static ClipTextConfig sd21();  // 23 of OpenCLIP's 24 layers: SD2 uses the penultimate one
  static ClipTextConfig tiny();

  int head_dim() const { return hidden_size / num_attention_heads; }

  static ClipTextConfig from_json(const nlohmann::json& json, const std::string& source);
  nlohmann::json to_json() const;
  void validate(const std::string& source = "text encoder config") const;
};

}  // namespace dreambooth::models
