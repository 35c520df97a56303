// Matching keys against the key tables, and the per-tensor plan that loading, saving and converting
// share: which stored tensor holds which diffusers tensor(s), with which shapes and transform.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dreambooth/checkpoint/key_tables.h"

namespace dreambooth::checkpoint {

struct MappedKey {
  std::string key;
  Transform transform = Transform::None;
  int part = -1;  // SplitQkv: which third of the fused tensor (0 = q, 1 = k, 2 = v); -1 otherwise
};

// Rows indexed from both sides. A key matches the row with the longest prefix that equals the key or
// is followed by '.' in it (whole dotted prefixes, never substrings).
class KeyMap {
 public:
  explicit KeyMap(std::vector<PrefixRow> rows);

  // An LDM key -> the diffusers key(s) it holds: one, or q, k, v for a fused OpenCLIP in_proj tensor.
  // Empty when no row matches.
  std::vector<MappedKey> to_diffusers(const std::string& ldm_key) const;
  // A diffusers key -> the LDM key holding it; nullopt when no row matches.
  std::optional<MappedKey> to_ldm(const std::string& diffusers_key) const;

  const std::vector<PrefixRow>& rows() const { return rows_; }

 private:
  std::vector<PrefixRow> rows_;
  std::unordered_map<std::string, size_t> by_ldm_;
  std::unordered_map<std::string, size_t> by_diffusers_;
};

// Key-set mapping (both directions): every key that matches a row, and the ones that match none.
struct MappedKeySet {
  std::map<std::string, std::vector<MappedKey>> mapped;
  std::vector<std::string> unmatched;
};
MappedKeySet map_ldm_keys(const KeyMap& map, const std::vector<std::string>& ldm_keys);
MappedKeySet map_diffusers_keys(const KeyMap& map, const std::vector<std::string>& diffusers_keys);

// One tensor as a file stores it, and the diffusers tensor(s) it holds.
struct StoredTensor {
  std::string key;             // name in the file
  std::vector<int64_t> shape;  // the shape the file should have
  Transform transform = Transform::None;
  std::vector<std::string> diffusers_keys;  // one, or q, k, v for SplitQkv
  std::vector<int64_t> diffusers_shape;     // shape of each diffusers tensor
};
using ComponentPlan = std::vector<StoredTensor>;

// Single file: the component's expected tensors grouped by the LDM key that holds them (table order).
// A spec no row covers is a bug in the tables (runtime error).
ComponentPlan single_file_plan(const std::vector<TensorSpec>& expected, const KeyMap& map);
// Diffusers: every tensor stored under its own name.
ComponentPlan diffusers_plan(const std::vector<TensorSpec>& expected);

// The stored shape for a diffusers shape under a transform (ConvToLinear: [C, C] -> [C, C, 1, 1]).
std::vector<int64_t> stored_shape(Transform transform, const std::vector<int64_t>& diffusers_shape, size_t parts);
// Whether a file's shape is acceptable: the planned shape, or for ConvToLinear also the Linear shape
// (some converters already store the VAE attention as [C, C]).
bool stored_shape_fits(const StoredTensor& planned, const std::vector<int64_t>& actual);
// Stored tensor -> its diffusers tensors (views: reshape or split, no copy).
std::vector<at::Tensor> split_stored(const StoredTensor& planned, const at::Tensor& stored);
// Diffusers tensors -> the stored tensor (a view for ConvToLinear, a concatenation for SplitQkv).
at::Tensor join_stored(const StoredTensor& planned, const std::vector<at::Tensor>& parts);

// Which component an LDM key belongs to, by its root; nullopt for keys outside the three roots.
std::optional<Component> ldm_component_of(const std::string& ldm_key);

// Keys real single files carry that the three models do not use, accepted silently and kept as
// "extras": the DDPM schedule buffers (betas, alphas_cumprod, ...), EMA bookkeeping (model_ema.*),
// the SD1 text position_ids buffer, and for SD2 the OpenCLIP parts diffusers drops (resblocks from
// `text_layers` on, text_projection, logit_scale).
bool is_single_file_extra(const std::string& ldm_key, Family family, int text_layers);
// Diffusers-side buffers older exports carry (text_model.embeddings.position_ids).
bool is_diffusers_extra(Component component, const std::string& key);

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace dreambooth::checkpoint
