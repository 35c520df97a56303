// save_lora and kohya's ss_* metadata.
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dreambooth/lora/lora_file.h"

namespace dreambooth::lora {

using checkpoint::Component;

namespace {

// Python's str(float): "4.0", "0.5", "1e-05".
std::string python_float(double value) {
  char buffer[64];
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.1f", value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.17g", value);
    // Shortest text that reads back the same.
    for (int precision = 1; precision <= 17; ++precision) {
      char candidate[64];
      std::snprintf(candidate, sizeof candidate, "%.*g", precision, value);
      if (std::strtod(candidate, nullptr) == value) {
        std::snprintf(buffer, sizeof buffer, "%s", candidate);
        break;
      }
    }
  }
  return buffer;
}

const char* python_bool(bool value) { return value ? "True" : "False"; }

std::string diffusers_prefix(Component component) { return component == Component::Unet ? "unet." : "text_encoder."; }

}  // namespace

std::vector<io::NamedTensor> lora_tensors(const LoraNetwork& network, LoraFormat format) {
  std::vector<io::NamedTensor> out;
  for (const LoraModule& m : network->modules()) {
    const LoraAdapterImpl& adapter = *m.adapter;
    if (format == LoraFormat::Kohya) {
      out.push_back({m.site.kohya_name + ".lora_down.weight", adapter.down.detach()});
      out.push_back({m.site.kohya_name + ".lora_up.weight", adapter.up.detach()});
      out.push_back({m.site.kohya_name + ".alpha", torch::tensor(adapter.options().alpha, torch::kFloat).reshape({})});
    } else {
      // alpha/rank folded into B: readers that assume alpha = rank (no alpha key) compute the same update.
      const std::string stem = diffusers_prefix(m.site.component) + m.site.path;
      out.push_back({stem + ".lora_A.weight", adapter.down.detach()});
      out.push_back({stem + ".lora_B.weight", (adapter.up.detach().to(torch::kFloat) * adapter.scale())
                                                  .to(adapter.up.scalar_type())});
    }
  }
  return out;
}

void save_lora(const LoraNetwork& network, const std::filesystem::path& path, const LoraSaveOptions& options) {
  io::Metadata metadata = options.metadata;
  metadata["format"] = "pt";
  io::write_safetensors(path, lora_tensors(network, options.format), metadata, options.dtype);
}

io::Metadata kohya_metadata(const LoraNetwork& network, const LoraTrainingInfo& info) {
  const LoraConfig& config = network->config();
  const bool sd2 = info.family == checkpoint::Family::Sd2;
  io::Metadata m;
  m["ss_network_module"] = "networks.lora";
  m["ss_network_dim"] = std::to_string(config.rank);
  m["ss_network_alpha"] = python_float(config.alpha_value());
  m["ss_network_dropout"] = python_float(config.dropout);
  m["ss_network_args"] = nlohmann::json{{"targets", lora_targets_name(config.targets)}}.dump();
  m["ss_network_train_unet_only"] = python_bool(!config.text_encoder);
  m["ss_network_train_text_encoder_only"] = python_bool(!config.unet);
  m["ss_base_model_version"] = sd2 ? "sd_v2" : "sd_v1";
  m["ss_v2"] = python_bool(sd2);
  m["ss_v_parameterization"] = python_bool(info.v_prediction);
  if (!info.base_model_name.empty()) m["ss_sd_model_name"] = info.base_model_name;
  if (!info.base_model_hash.empty()) m["ss_new_sd_model_hash"] = info.base_model_hash;
  if (!info.legacy_model_hash.empty()) m["ss_sd_model_hash"] = info.legacy_model_hash;
  if (info.steps > 0) {
    m["ss_max_train_steps"] = std::to_string(info.steps);
    m["ss_steps"] = std::to_string(info.steps);
  }
  if (info.resolution > 0)
    m["ss_resolution"] = "(" + std::to_string(info.resolution) + ", " + std::to_string(info.resolution) + ")";
  if (info.learning_rate > 0.0) m["ss_learning_rate"] = python_float(info.learning_rate);
  if (!info.output_name.empty()) m["ss_output_name"] = info.output_name;
  if (info.training_started_at > 0) m["ss_training_started_at"] = std::to_string(info.training_started_at);
  const std::string prompt =
      info.identifier + (info.identifier.empty() || info.class_name.empty() ? "" : " ") + info.class_name;
  if (!prompt.empty()) m["ss_tag_frequency"] = nlohmann::json{{"instance", {{prompt, 1}}}}.dump();
  m["ss_training_comment"] =
      !info.comment.empty() ? info.comment
                            : "DreamBooth LoRA" + (prompt.empty() ? std::string() : " of \"" + prompt + "\"");
  nlohmann::json ours = {{"rank", config.rank},
                         {"alpha", config.alpha_value()},
                         {"dropout", config.dropout},
                         {"targets", lora_targets_name(config.targets)},
                         {"unet", config.unet},
                         {"text_encoder", config.text_encoder},
                         {"identifier", info.identifier},
                         {"class", info.class_name},
                         {"steps", info.steps},
                         {"base_model_hash", info.base_model_hash},
                         {"version", DREAMBOOTH_VERSION}};
  m["dreambooth.lora"] = ours.dump();
  return m;
}

}  // namespace dreambooth::lora
