#include "dreambooth/checkpoint/key_map.h"

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::checkpoint {
namespace {

// OpenCLIP's fused parameter names and the q/k/v tails they hold, in split order.
struct FusedTail {
  const char* ldm;
  const char* parts[3];
};
constexpr FusedTail kFusedTails[] = {
    {"in_proj_weight", {"q_proj.weight", "k_proj.weight", "v_proj.weight"}},
    {"in_proj_bias", {"q_proj.bias", "k_proj.bias", "v_proj.bias"}},
};

// The row whose prefix is the longest whole dotted prefix of `key`; `tail` gets the rest.
const PrefixRow* longest_match(const std::vector<PrefixRow>& rows, const std::unordered_map<std::string, size_t>& index,
                               const std::string& key, std::string& tail) {
  std::string::size_type end = key.size();
  while (true) {
    auto it = index.find(key.substr(0, end));
    if (it != index.end()) {
      tail = end == key.size() ? "" : key.substr(end + 1);
      return &rows[it->second];
    }
    if (end == 0) return nullptr;
    end = key.rfind('.', end - 1);
    if (end == std::string::npos) return nullptr;
  }
}

const char* const kDdpmBuffers[] = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
};

}  // namespace

KeyMap::KeyMap(std::vector<PrefixRow> rows) : rows_(std::move(rows)) {
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (!by_ldm_.emplace(rows_[i].ldm, i).second || !by_diffusers_.emplace(rows_[i].diffusers, i).second)
      throw Error(ErrorKind::Runtime,
                  "key table has two rows for '" + rows_[i].ldm + "' / '" + rows_[i].diffusers + "'");
  }
}

std::vector<MappedKey> KeyMap::to_diffusers(const std::string& ldm_key) const {
  std::string tail;
  const PrefixRow* row = longest_match(rows_, by_ldm_, ldm_key, tail);
  if (!row) return {};
  if (row->transform != Transform::SplitQkv) return {{join_key(row->diffusers, tail), row->transform, -1}};
  for (const auto& fused : kFusedTails)
    if (tail == fused.ldm) {
      std::vector<MappedKey> out;
      for (int p = 0; p < 3; ++p) out.push_back({join_key(row->diffusers, fused.parts[p]), Transform::SplitQkv, p});
      return out;
    }
  return {};
}

std::optional<MappedKey> KeyMap::to_ldm(const std::string& diffusers_key) const {
  std::string tail;
  const PrefixRow* row = longest_match(rows_, by_diffusers_, diffusers_key, tail);
  if (!row) return std::nullopt;
  if (row->transform != Transform::SplitQkv) return MappedKey{join_key(row->ldm, tail), row->transform, -1};
  for (const auto& fused : kFusedTails)
    for (int p = 0; p < 3; ++p)
      if (tail == fused.parts[p]) return MappedKey{join_key(row->ldm, fused.ldm), Transform::SplitQkv, p};
  return std::nullopt;
}

MappedKeySet map_ldm_keys(const KeyMap& map, const std::vector<std::string>& ldm_keys) {
  MappedKeySet out;
  for (const auto& key : ldm_keys) {
    auto mapped = map.to_diffusers(key);
    if (mapped.empty())
      out.unmatched.push_back(key);
    else
      out.mapped[key] = std::move(mapped);
  }
  return out;
}

MappedKeySet map_diffusers_keys(const KeyMap& map, const std::vector<std::string>& diffusers_keys) {
  MappedKeySet out;
  for (const auto& key : diffusers_keys) {
    auto mapped = map.to_ldm(key);
    if (!mapped)
      out.unmatched.push_back(key);
    else
      out.mapped[key] = {*mapped};
  }
  return out;
}

std::vector<int64_t> stored_shape(Transform transform, const std::vector<int64_t>& diffusers_shape, size_t parts) {
  std::vector<int64_t> shape = diffusers_shape;
  switch (transform) {
    case Transform::None:
      break;
    case Transform::ConvToLinear:
      if (shape.size() == 2) shape.insert(shape.end(), {1, 1});
      break;
    case Transform::SplitQkv:
      shape.at(0) *= static_cast<int64_t>(parts);
      break;
  }
  return shape;
}

ComponentPlan single_file_plan(const std::vector<TensorSpec>& expected, const KeyMap& map) {
  ComponentPlan plan;
  std::map<std::string, size_t> by_key;
  for (const auto& spec : expected) {
    auto mapped = map.to_ldm(spec.key);
    if (!mapped) throw Error(ErrorKind::Runtime, "key table has no row for diffusers key '" + spec.key + "'");
    auto it = by_key.find(mapped->key);
    if (it == by_key.end()) {
      it = by_key.emplace(mapped->key, plan.size()).first;
      StoredTensor stored;
      stored.key = mapped->key;
      stored.transform = mapped->transform;
      stored.diffusers_shape = spec.shape;
      stored.diffusers_keys.resize(mapped->transform == Transform::SplitQkv ? 3 : 1);
      plan.push_back(std::move(stored));
    }
    StoredTensor& stored = plan[it->second];
    if (stored.diffusers_shape != spec.shape)
      throw Error(ErrorKind::Runtime, "fused tensor '" + stored.key + "' has parts of different shapes");
    stored.diffusers_keys.at(mapped->part < 0 ? 0 : mapped->part) = spec.key;
  }
  for (auto& stored : plan) {
    for (const auto& key : stored.diffusers_keys)
      if (key.empty()) throw Error(ErrorKind::Runtime, "fused tensor '" + stored.key + "' is missing a q/k/v part");
    stored.shape = checkpoint::stored_shape(stored.transform, stored.diffusers_shape, stored.diffusers_keys.size());
  }
  return plan;
}

ComponentPlan diffusers_plan(const std::vector<TensorSpec>& expected) {
  ComponentPlan plan;
  plan.reserve(expected.size());
  for (const auto& spec : expected) plan.push_back({spec.key, spec.shape, Transform::None, {spec.key}, spec.shape});
  return plan;
}

bool stored_shape_fits(const StoredTensor& planned, const std::vector<int64_t>& actual) {
  if (actual == planned.shape) return true;
  return planned.transform == Transform::ConvToLinear && actual == planned.diffusers_shape;
}

std::vector<at::Tensor> split_stored(const StoredTensor& planned, const at::Tensor& stored) {
  switch (planned.transform) {
    case Transform::None:
      return {stored};
    case Transform::ConvToLinear:
      return {stored.reshape(planned.diffusers_shape)};  // [C, C, 1, 1] -> [C, C]: a view
    case Transform::SplitQkv: {
      std::vector<at::Tensor> parts = stored.chunk(3, 0);  // [3C, ...] -> 3 x [C, ...]: views
      return parts;
    }
  }
  return {};
}

at::Tensor join_stored(const StoredTensor& planned, const std::vector<at::Tensor>& parts) {
  switch (planned.transform) {
    case Transform::None:
      return parts.at(0);
    case Transform::ConvToLinear:
      return parts.at(0).reshape(planned.shape);
    case Transform::SplitQkv:
      return torch::cat(parts, 0);
  }
  return {};
}

std::optional<Component> ldm_component_of(const std::string& key) {
  if (starts_with(key, std::string(kLdmUnetRoot) + ".")) return Component::Unet;
  if (starts_with(key, std::string(kLdmVaeRoot) + ".")) return Component::Vae;
  if (starts_with(key, "cond_stage_model.")) return Component::TextEncoder;
  return std::nullopt;
}

bool is_single_file_extra(const std::string& key, Family family, int text_layers) {
  for (const char* name : kDdpmBuffers)
    if (key == name) return true;
  if (starts_with(key, "model_ema.")) return true;
  if (family == Family::Sd1) return key == std::string(kLdmSd1TextRoot) + ".text_model.embeddings.position_ids";
  const std::string root = kLdmSd2TextRoot;
  if (key == root + ".text_projection" || key == root + ".logit_scale") return true;
  const std::string blocks = root + ".transformer.resblocks.";
  if (!starts_with(key, blocks)) return false;
  const std::string rest = key.substr(blocks.size());
  const auto dot = rest.find('.');
  const std::string index = rest.substr(0, dot);
  if (index.empty() || index.size() > 6 || index.find_first_not_of("0123456789") != std::string::npos ||
      dot == std::string::npos)
    return false;
  return std::stoll(index) >= text_layers;
}

bool is_diffusers_extra(Component component, const std::string& key) {
  return component == Component::TextEncoder && key == "text_model.embeddings.position_ids";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace dreambooth::checkpoint
