// load_lora_file: kohya and diffusers/PEFT key forms -> one LoraModuleWeights per module.
#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/lora/lora_file.h"

namespace fs = std::filesystem;

namespace dreambooth::lora {

using checkpoint::Component;

namespace {

enum class Factor { Down, Up, Alpha };

// One key, understood.
struct ParsedLoraKey {
  LoraFormat naming;
  std::optional<Component> component;
  std::string name;  // kohya name, or module path inside the component
  Factor factor;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool begins_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::optional<ParsedLoraKey> parse_kohya_key(const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos || !begins_with(key, "lora_")) return std::nullopt;
  const std::string name = key.substr(0, dot);
  const std::string tail = key.substr(dot + 1);
  Factor factor;
  if (tail == "lora_down.weight")
    factor = Factor::Down;
  else if (tail == "lora_up.weight")
    factor = Factor::Up;
  else if (tail == "alpha")
    factor = Factor::Alpha;
  else
    return std::nullopt;
  std::optional<Component> component;
  if (begins_with(name, kKohyaUnetPrefix))
    component = Component::Unet;
  else if (begins_with(name, kKohyaTextEncoderPrefix))
    component = Component::TextEncoder;  // (SDXL's lora_te1_/lora_te2_ stay unassigned)
  return ParsedLoraKey{LoraFormat::Kohya, component, name, factor};
}

// The component a diffusers module path belongs to, and the path inside it.
void split_diffusers_prefix(const std::string& path, std::optional<Component>& component, std::string& inner) {
  for (const auto& [prefix, c] : {std::pair<const char*, Component>{"unet.", Component::Unet},
                                  std::pair<const char*, Component>{"text_encoder.", Component::TextEncoder}}) {
    if (begins_with(path, prefix)) {
      component = c;
      inner = path.substr(std::char_traits<char>::length(prefix));
      return;
    }
  }
  inner = path;
  // The oldest attention-processor files carry bare UNet paths.
  for (const char* root : {"down_blocks.", "mid_block.", "up_blocks."})
    if (begins_with(path, root)) component = Component::Unet;
}

// "<attention>[.processor].to_q_lora" -> the projection's module path for the component.
std::optional<std::string> processor_module(const std::string& stem, std::optional<Component> component) {
  const size_t dot = stem.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string projection = stem.substr(dot + 1);
  std::string attention = stem.substr(0, dot);
  if (ends_with(attention, ".processor")) attention.resize(attention.size() - std::string(".processor").size());
  const bool text = component == Component::TextEncoder;
  static const std::pair<const char*, const char*> unet_names[] = {
      {"to_q_lora", "to_q"}, {"to_k_lora", "to_k"}, {"to_v_lora", "to_v"}, {"to_out_lora", "to_out.0"}};
  static const std::pair<const char*, const char*> text_names[] = {
      {"to_q_lora", "q_proj"}, {"to_k_lora", "k_proj"}, {"to_v_lora", "v_proj"}, {"to_out_lora", "out_proj"}};
  const auto* names = text ? text_names : unet_names;
  for (size_t i = 0; i < 4; ++i)
    if (projection == names[i].first) return attention + "." + names[i].second;
  return std::nullopt;
}

std::optional<ParsedLoraKey> parse_diffusers_key(const std::string& key) {
  static const std::pair<const char*, Factor> suffixes[] = {
      {".lora_A.weight", Factor::Down},
      {".lora_B.weight", Factor::Up},
      {".lora.down.weight", Factor::Down},
      {".lora.up.weight", Factor::Up},
      {".lora_linear_layer.down.weight", Factor::Down},
      {".lora_linear_layer.up.weight", Factor::Up},
      {".lora_down.weight", Factor::Down},  // kohya's tails on diffusers paths (some converters)
      {".lora_up.weight", Factor::Up},
      {".alpha", Factor::Alpha},
  };
  for (const auto& [suffix, factor] : suffixes) {
    if (!ends_with(key, suffix)) continue;
    ParsedLoraKey parsed{LoraFormat::Diffusers, std::nullopt, "", factor};
    split_diffusers_prefix(key.substr(0, key.size() - std::char_traits<char>::length(suffix)), parsed.component,
                           parsed.name);
    if (parsed.name.empty()) return std::nullopt;
    return parsed;
  }
  // Attention processors: <attention>[.processor].to_q_lora.down.weight
  for (const auto& [suffix, factor] : {std::pair<const char*, Factor>{".down.weight", Factor::Down},
                                       std::pair<const char*, Factor>{".up.weight", Factor::Up}}) {
    if (!ends_with(key, suffix)) continue;
    ParsedLoraKey parsed{LoraFormat::Diffusers, std::nullopt, "", factor};
    std::string stem;
    split_diffusers_prefix(key.substr(0, key.size() - std::char_traits<char>::length(suffix)), parsed.component, stem);
    auto module = processor_module(stem, parsed.component);
    if (!module) return std::nullopt;
    parsed.name = *module;
    return parsed;
  }
  return std::nullopt;
}

// diffusers' `lora_adapter_metadata`: {"unet.lora_alpha": a, ...} or {"unet": {"lora_alpha": a}} or, for one
// model, {"lora_alpha": a}.
std::optional<double> adapter_metadata_alpha(const nlohmann::json& meta, Component component,
                                             const fs::path& path) {
  const std::string prefix = checkpoint::component_name(component);
  const nlohmann::json* config = nullptr;
  nlohmann::json flat = nlohmann::json::object();
  if (meta.contains(prefix) && meta[prefix].is_object()) {
    config = &meta[prefix];
  } else {
    for (const auto& [key, value] : meta.items())
      if (begins_with(key, prefix + ".")) flat[key.substr(prefix.size() + 1)] = value;
    config = flat.empty() ? &meta : &flat;
  }
  if (!config->contains("lora_alpha") || !(*config)["lora_alpha"].is_number()) return std::nullopt;
  for (const char* pattern : {"alpha_pattern", "rank_pattern"})
    if (config->contains(pattern) && (*config)[pattern].is_object() && !(*config)[pattern].empty())
      spdlog::warn("{}: lora_adapter_metadata has a {} for the {}; per-module patterns are ignored (lora_alpha {} "
                   "used for every module)",
                   path.string(), pattern, prefix, (*config)["lora_alpha"].get<double>());
  return (*config)["lora_alpha"].get<double>();
}

}  // namespace

const char* lora_format_name(LoraFormat format) { return format == LoraFormat::Kohya ? "kohya" : "diffusers"; }

LoraFormat parse_lora_format(const std::string& name, const std::string& source) {
  if (name == "kohya") return LoraFormat::Kohya;
  if (name == "diffusers" || name == "peft") return LoraFormat::Diffusers;
  throw usage_error(source + ": unknown LoRA format '" + name + "'", "use kohya | diffusers");
}

double LoraModuleWeights::scale() const { return alpha ? *alpha / static_cast<double>(rank()) : 1.0; }

LoraWeights load_lora_file(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* pickle : {".pt", ".pth", ".ckpt", ".bin"})
    if (extension == pickle)
      throw input_error(path.string(), "pickle LoRA files are not read (they can run code)",
                        "convert it to .safetensors first");
  if (!fs::exists(path)) throw input_error(path.string(), "no such LoRA file");

  io::SafetensorsReader reader(path);
  LoraWeights weights;
  weights.path = path;
  weights.metadata = reader.metadata();

  std::vector<std::pair<ParsedLoraKey, std::string>> parsed;
  for (const auto& entry : reader.entries()) {
    auto key = parse_kohya_key(entry.name);
    if (!key) key = parse_diffusers_key(entry.name);
    if (key)
      parsed.emplace_back(*key, entry.name);
    else
      weights.unrecognised_keys.push_back(entry.name);
  }

  // Group by module, in file order.
  std::unordered_map<std::string, size_t> index;
  std::vector<LoraModuleWeights> modules;
  for (const auto& [key, file_key] : parsed) {
    const std::string id = std::string(lora_format_name(key.naming)) + "|" +
                           (key.component ? checkpoint::component_name(*key.component) : "-") + "|" + key.name;
    auto [it, inserted] = index.emplace(id, modules.size());
    if (inserted) {
      LoraModuleWeights m;
      m.naming = key.naming;
      m.name = key.name;
      m.component = key.component;
      modules.push_back(std::move(m));
    }
    LoraModuleWeights& m = modules[it->second];
    m.keys.push_back(file_key);
    auto duplicate = [&] {
      return input_error(path.string(), "module " + key.name + " has two tensors for the same factor (" + file_key + ")",
                         "the file mixes key conventions");
    };
    switch (key.factor) {
      case Factor::Down:
        if (m.down.defined()) throw duplicate();
        m.down = reader.view(file_key);
        break;
      case Factor::Up:
        if (m.up.defined()) throw duplicate();
        m.up = reader.view(file_key);
        break;
      case Factor::Alpha: {
        if (m.alpha) throw duplicate();
        const at::Tensor alpha = reader.load(file_key, torch::kDouble);
        if (alpha.numel() != 1)
          throw input_error(path.string(), file_key + " has " + std::to_string(alpha.numel()) + " values",
                            "a LoRA alpha is one number");
        m.alpha = alpha.reshape({}).item<double>();
        break;
      }
    }
  }

  // diffusers' adapter config supplies alphas where the keys do not.
  std::optional<nlohmann::json> adapter_meta;
  if (auto it = weights.metadata.find("lora_adapter_metadata"); it != weights.metadata.end()) {
    try {
      adapter_meta = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      spdlog::warn("{}: lora_adapter_metadata is not JSON; alphas default to the rank", path.string());
    }
  }

  size_t kohya = 0;
  for (auto& m : modules) {
    if (!m.down.defined() || !m.up.defined()) {
      // An alpha alone or half a pair cannot be placed.
      for (auto& k : m.keys) weights.unrecognised_keys.push_back(k);
      continue;
    }
    if (m.down.dim() < 2 || m.up.dim() < 2 || m.down.size(0) != m.up.size(1))
      throw input_error(path.string(),
                        "LoRA module " + m.name + ": down " + checkpoint::shape_string(m.down.sizes().vec()) +
                            " and up " + checkpoint::shape_string(m.up.sizes().vec()) + " disagree on the rank",
                        "the file is corrupt or not a LoRA");
    if (!m.alpha && m.naming == LoraFormat::Diffusers && m.component && adapter_meta && adapter_meta->is_object())
      m.alpha = adapter_metadata_alpha(*adapter_meta, *m.component, path);
    if (m.naming == LoraFormat::Kohya) ++kohya;
    weights.modules.push_back(std::move(m));
  }
  if (weights.modules.empty())
    throw input_error(path.string(), "no LoRA tensors found (" + std::to_string(reader.entries().size()) + " tensors)",
                      "expected kohya (lora_unet_*.lora_down.weight) or diffusers/PEFT (unet.*.lora_A.weight) keys");
  weights.format = 2 * kohya >= weights.modules.size() ? LoraFormat::Kohya : LoraFormat::Diffusers;
  return weights;
}

}  // namespace dreambooth::lora
