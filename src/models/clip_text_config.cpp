#include "dreambooth/models/clip_text_config.h"

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"

namespace dreambooth::models {

ClipTextConfig ClipTextConfig::sd15() { return ClipTextConfig{}; }

ClipTextConfig ClipTextConfig::sd21() {
  ClipTextConfig c;
  c.hidden_size = 1024;
  c.intermediate_size = 4096;
  c.projection_dim = 512;
  c.num_hidden_layers = 23;
  c.num_attention_heads = 16;
  c.hidden_act = "gelu";
  c.bos_token_id = 0;
  c.eos_token_id = 2;
  c.pad_token_id = 1;
  return c;
}

ClipTextConfig ClipTextConfig::tiny() {
  ClipTextConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 37;
  c.projection_dim = 32;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.bos_token_id = 0;
  c.eos_token_id = 2;
  c.pad_token_id = 1;
  return c;
}

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& json, const std::string& source) {
  ClipTextConfig c;
  ConfigReader r(json, source);
  r.ignore_prefix("_");
  r.read("vocab_size", c.vocab_size);
  r.read("hidden_size", c.hidden_size);
  r.read("intermediate_size", c.intermediate_size);
  r.read("projection_dim", c.projection_dim);
  r.read("num_hidden_layers", c.num_hidden_layers);
  r.read("num_attention_heads", c.num_attention_heads);
  r.read("max_position_embeddings", c.max_position_embeddings);
  r.read("hidden_act", c.hidden_act);
  r.read("layer_norm_eps", c.layer_norm_eps);
  r.read("bos_token_id", c.bos_token_id);
  r.read("eos_token_id", c.eos_token_id);
  r.read("pad_token_id", c.pad_token_id);
  // transformers bookkeeping and training-only fields.
  for (const char* key : {"architectures", "model_type", "torch_dtype", "transformers_version", "attention_dropout",
                          "dropout", "initializer_factor", "initializer_range"})
    r.ignore(key);
  r.warn_unknown();
  c.validate(source);
  return c;
}

nlohmann::json ClipTextConfig::to_json() const {
  return {
      {"architectures", {"CLIPTextModel"}},
      {"model_type", "clip_text_model"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"projection_dim", projection_dim},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"max_position_embeddings", max_position_embeddings},
      {"hidden_act", hidden_act},
      {"layer_norm_eps", layer_norm_eps},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"pad_token_id", pad_token_id},
      {"attention_dropout", 0.0},
      {"dropout", 0.0},
      {"initializer_factor", 1.0},
      {"initializer_range", 0.02},
      {"torch_dtype", "float32"},
      {"transformers_version", "4.36.2"},
  };
}

void ClipTextConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) { throw model_error(source, what); };
  if (hidden_size <= 0 || num_attention_heads <= 0 || hidden_size % num_attention_heads != 0)
    fail("hidden_size " + std::to_string(hidden_size) + " does not split into " +
         std::to_string(num_attention_heads) + " heads");
  if (num_hidden_layers < 1) fail("num_hidden_layers must be >= 1");
  if (vocab_size < 1 || max_position_embeddings < 1 || intermediate_size < 1) fail("sizes must be positive");
  if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    fail("hidden_act '" + hidden_act + "' is not supported (quick_gelu, gelu)");
}

}  // namespace dreambooth::models
