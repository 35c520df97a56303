#include "dreambooth/lora/apply.h"

#include <cmath>
#include <cstdlib>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/checkpoint/key_map.h"
#include "dreambooth/core/error.h"

namespace dreambooth::lora {

using checkpoint::Component;

namespace {

constexpr size_t kListedNames = 20;  // names spelled out in one error or warning line

std::string listed(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kListedNames; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > kListedNames) out += ", ... (" + std::to_string(names.size() - kListedNames) + " more)";
  return out;
}

const LoraSite* place(const LoraSiteTable& table, const LoraModuleWeights& m) {
  if (!m.component) return nullptr;
  if (m.naming == LoraFormat::Kohya) {
    const LoraSite* site = table.find_kohya(m.name);
    return site && site->component == *m.component ? site : nullptr;
  }
  return table.find(*m.component, m.name);
}

std::string family_hint(const LoraWeights& weights, const std::string& model_family) {
  std::string made_for;
  for (const char* key : {"ss_base_model_version", "modelspec.architecture"})
    if (auto it = weights.metadata.find(key); it != weights.metadata.end()) {
      made_for = " (" + it->second + " per its metadata)";
      break;
    }
  return "it was made for another model family" + made_for +
         (model_family.empty() ? std::string() : "; use a LoRA trained on an " + model_family + " model");
}

LoraApplyReport apply_to_table(const LoraSiteTable& table, const LoraWeights& weights, double multiplier,
                               const std::string& model_family) {
  LoraApplyReport report;
  report.unplaced = weights.unrecognised_keys;
  std::vector<std::pair<const LoraModuleWeights*, const LoraSite*>> placed;
  std::vector<std::string> misfits;
  for (const LoraModuleWeights& m : weights.modules) {
    const LoraSite* site = place(table, m);
    if (!site) {
      report.unplaced.insert(report.unplaced.end(), m.keys.begin(), m.keys.end());
      continue;
    }
    if (!lora_tensors_fit(m.down.sizes(), m.up.sizes(), site->shape)) {
      misfits.push_back(m.name + ": down " + checkpoint::shape_string(m.down.sizes().vec()) + ", up " +
                        checkpoint::shape_string(m.up.sizes().vec()) + " for a layer of weight " +
                        checkpoint::shape_string(site->shape.weight_shape()));
      continue;
    }
    placed.emplace_back(&m, site);
  }
  const std::string file = weights.path.string();
  if (!misfits.empty())
    throw model_error(file,
                      "LoRA does not fit this model: " + std::to_string(misfits.size()) + " of " +
                          std::to_string(weights.modules.size()) + " modules have other shapes: " + listed(misfits),
                      family_hint(weights, model_family));
  if (placed.empty()) {
    std::vector<std::string> names;
    for (const auto& m : weights.modules) names.push_back(m.name);
    throw model_error(file, "none of the LoRA's " + std::to_string(weights.modules.size()) +
                                " modules is a layer of this model: " + listed(names),
                      family_hint(weights, model_family));
  }

  torch::NoGradGuard no_grad;
  for (const auto& [m, site] : placed) {
    at::Tensor& weight = site->weight();
    const at::Tensor delta = lora_weight_delta(m->down.to(weight.device()), m->up.to(weight.device()), site->shape,
                                               multiplier * m->scale());
    if (weight.scalar_type() == torch::kFloat)
      weight.add_(delta);
    else
      weight.copy_(weight.to(torch::kFloat).add_(delta));
    ++report.applied;
  }
  if (!report.unplaced.empty())
    spdlog::warn("{}: {} LoRA key(s) match no layer of this model and are ignored: {}", file, report.unplaced.size(),
                 listed(report.unplaced));
  return report;
}

}  // namespace

LoraApplyReport apply_lora(const LoraSiteTable& table, const LoraWeights& weights, double multiplier) {
  return apply_to_table(table, weights, multiplier, "");
}

LoraApplyReport apply_lora(const checkpoint::StableDiffusion& model, const LoraWeights& weights, double multiplier) {
  return apply_to_table(LoraSiteTable(model), weights, multiplier, checkpoint::family_name(model.description.family));
}

LoraSpec parse_lora_spec(const std::string& text) {
  LoraSpec spec;
  spec.path = text;
  const size_t colon = text.rfind(':');
  if (colon != std::string::npos && colon + 1 < text.size()) {
    const std::string suffix = text.substr(colon + 1);
    char* end = nullptr;
    const double value = std::strtod(suffix.c_str(), &end);
    if (end && *end == '\0') {
      if (!std::isfinite(value)) throw usage_error("--lora " + text + ": the scale must be a finite number");
      spec.path = text.substr(0, colon);
      spec.multiplier = value;
    }
  }
  if (spec.path.empty()) throw usage_error("--lora '" + text + "': no file given", "use --lora FILE[:SCALE]");
  return spec;
}

std::vector<LoadedLora> load_lora_specs(const std::vector<std::string>& specs) {
  std::vector<LoadedLora> out;
  for (const std::string& text : specs) {
    LoraSpec spec = parse_lora_spec(text);
    LoraWeights weights = load_lora_file(spec.path);
    out.push_back({std::move(spec), std::move(weights)});
  }
  return out;
}

std::vector<AppliedLora> apply_loaded_loras(const checkpoint::StableDiffusion& model,
                                            const std::vector<LoadedLora>& loras) {
  std::vector<AppliedLora> out;
  if (loras.empty()) return out;
  const LoraSiteTable table(model);
  const std::string family = checkpoint::family_name(model.description.family);
  for (const LoadedLora& lora : loras) {
    AppliedLora applied{lora.spec, lora.weights.format, apply_to_table(table, lora.weights, lora.spec.multiplier, family)};
    spdlog::info("LoRA {}: {} modules merged at scale {} ({} keys)", lora.spec.path.string(), applied.report.applied,
                 lora.spec.multiplier, lora_format_name(lora.weights.format));
    out.push_back(std::move(applied));
  }
  return out;
}

std::vector<AppliedLora> apply_lora_specs(const checkpoint::StableDiffusion& model,
                                          const std::vector<std::string>& specs) {
  return apply_loaded_loras(model, load_lora_specs(specs));
}

}  // namespace dreambooth::lora
