#include "dreambooth/lora/sites.h"

#include <torch/torch.h>

#include "dreambooth/checkpoint/key_map.h"
#include "dreambooth/checkpoint/key_tables.h"
#include "dreambooth/core/error.h"

namespace dreambooth::lora {

using checkpoint::Component;

namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t dot = path.find('.', begin);
    parts.push_back(path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) return parts;
    begin = dot + 1;
  }
}

// parts ends with `tail` (whole components).
bool ends_with_parts(const std::vector<std::string>& parts, std::initializer_list<const char*> tail) {
  if (parts.size() < tail.size()) return false;
  size_t i = parts.size() - tail.size();
  for (const char* t : tail)
    if (parts[i++] != t) return false;
  return true;
}

bool is_one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

int component_slot(Component component) {
  TORCH_CHECK(component != Component::Vae, "LoRA sites are UNet or text encoder modules");
  return component == Component::Unet ? 0 : 1;
}

}  // namespace

const char* lora_targets_name(LoraTargets targets) {
  for (const auto& info : kLoraTargets)
    if (info.targets == targets) return info.name;
  return "?";
}

LoraTargets parse_lora_targets(const std::string& name, const std::string& source) {
  std::string known;
  for (const auto& info : kLoraTargets) {
    if (name == info.name) return info.targets;
    known += known.empty() ? info.name : std::string(" | ") + info.name;
  }
  throw usage_error(source + ": unknown LoRA targets '" + name + "'", "use " + known);
}

bool is_lora_target(Component component, const std::string& path, LoraTargets targets) {
  const std::vector<std::string> parts = split_path(path);
  const size_t n = parts.size();
  const bool with_ff = targets != LoraTargets::Attention;
  if (component == Component::Unet) {
    if (n >= 2 && is_one_of(parts[n - 1], {"to_q", "to_k", "to_v"}) && is_one_of(parts[n - 2], {"attn1", "attn2"}))
      return true;
    if (ends_with_parts(parts, {"attn1", "to_out", "0"}) || ends_with_parts(parts, {"attn2", "to_out", "0"}))
      return true;
    if (with_ff && (ends_with_parts(parts, {"ff", "net", "0", "proj"}) || ends_with_parts(parts, {"ff", "net", "2"})))
      return true;
    if (targets == LoraTargets::AllLinear && n >= 3 && is_one_of(parts[n - 1], {"proj_in", "proj_out"}) &&
        parts[n - 3] == "attentions")
      return true;
    return false;
  }
  if (component == Component::TextEncoder) {
    if (n >= 2 && parts[n - 2] == "self_attn" && is_one_of(parts[n - 1], {"q_proj", "k_proj", "v_proj", "out_proj"}))
      return true;
    if (with_ff && n >= 2 && parts[n - 2] == "mlp" && is_one_of(parts[n - 1], {"fc1", "fc2"})) return true;
  }
  return false;
}

std::string kohya_name(Component component, const std::string& path) {
  std::string name = component == Component::Unet ? kKohyaUnetPrefix : kKohyaTextEncoderPrefix;
  component_slot(component);
  for (char c : path) name += c == '.' ? '_' : c;
  return name;
}

at::Tensor& LoraSite::weight() const { return linear ? linear->weight : conv->weight; }

std::shared_ptr<models::LayerAdapter>& LoraSite::adapter() const { return linear ? linear->adapter : conv->adapter; }

LoraSiteTable::LoraSiteTable(const models::UNet2DConditionModel& unet, const models::ClipTextModel& text_encoder) {
  if (unet) {
    add(Component::Unet, *unet.ptr());
    // The LDM-path aliases of the UNet modules (input_blocks.1.1.proj_in for down_blocks.0.attentions.0.proj_in).
    const checkpoint::KeyMap map(checkpoint::unet_rows(unet->config()));
    const std::string root = std::string(checkpoint::kLdmUnetRoot) + ".";
    const std::string weight = ".weight";
    for (size_t i = 0; i < sites_.size(); ++i) {
      if (sites_[i].component != Component::Unet) continue;
      auto mapped = map.to_ldm(sites_[i].path + weight);
      if (!mapped || mapped->transform != checkpoint::Transform::None) continue;
      const std::string& key = mapped->key;
      if (!checkpoint::starts_with(key, root) || key.size() < root.size() + weight.size() ||
          key.compare(key.size() - weight.size(), weight.size(), weight) != 0)
        continue;
      const std::string ldm_path = key.substr(root.size(), key.size() - root.size() - weight.size());
      by_kohya_.emplace(kohya_name(Component::Unet, ldm_path), i);  // never replaces a diffusers-path name
    }
  }
  if (text_encoder) add(Component::TextEncoder, *text_encoder.ptr());
}

LoraSiteTable::LoraSiteTable(const checkpoint::StableDiffusion& model) : LoraSiteTable(model.unet, model.text_encoder) {}

void LoraSiteTable::add(Component component, torch::nn::Module& root) {
  has_[component_slot(component)] = true;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    LoraSite site;
    site.component = component;
    site.path = item.key();
    if (auto linear = std::dynamic_pointer_cast<models::LinearImpl>(item.value())) {
      site.shape = layer_shape(*linear);
      site.linear = std::move(linear);
    } else if (auto conv = std::dynamic_pointer_cast<models::Conv2dImpl>(item.value())) {
      site.shape = layer_shape(*conv);
      site.conv = std::move(conv);
    } else {
      continue;
    }
    site.kohya_name = kohya_name(component, site.path);
    const size_t index = sites_.size();
    by_path_[component_slot(component)].emplace(site.path, index);
    TORCH_CHECK(by_kohya_.emplace(site.kohya_name, index).second, "two modules share the kohya name ", site.kohya_name);
    sites_.push_back(std::move(site));
  }
}

const LoraSite* LoraSiteTable::find(Component component, const std::string& path) const {
  if (component == Component::Vae) return nullptr;
  const auto& index = by_path_[component_slot(component)];
  auto it = index.find(path);
  return it == index.end() ? nullptr : &sites_[it->second];
}

const LoraSite* LoraSiteTable::find_kohya(const std::string& name) const {
  auto it = by_kohya_.find(name);
  return it == by_kohya_.end() ? nullptr : &sites_[it->second];
}

bool LoraSiteTable::has(Component component) const {
  return component != Component::Vae && has_[component_slot(component)];
}

}  // namespace dreambooth::lora
