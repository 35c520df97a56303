// Key tables: how the original single-file (LDM) names map onto diffusers' names, generated from a
// component's config (block counts, layers per block, which levels have attention), plus the tensors
// (diffusers key + shape) each config implies.
//
// A row maps one whole dotted prefix onto another: "model.diffusion_model.input_blocks.1.0.in_layers.0"
// <-> "down_blocks.0.resnets.0.norm1". A key matches a row when it equals the row's prefix or continues it
// after a '.', never on a substring. The tail after the prefix ("weight", "bias", or a deeper path such as
// "transformer_blocks.0.attn1.to_q.weight") is carried over unchanged, except for the transform rows:
//   ConvToLinear  VAE mid-block attention: LDM 1x1 conv weight [C, C, 1, 1] <-> diffusers Linear [C, C]
//                 (biases are identical).
//   SplitQkv      OpenCLIP (SD2) fused attention: LDM `attn.in_proj_weight` [3C, C] / `attn.in_proj_bias`
//                 [3C] <-> diffusers `self_attn.{q,k,v}_proj.{weight,bias}`, split along dim 0 in q, k, v order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dreambooth/checkpoint/types.h"
#include "dreambooth/models/clip_text_config.h"
#include "dreambooth/models/unet_config.h"
#include "dreambooth/models/vae_config.h"

namespace dreambooth::checkpoint {

enum class Transform { None, ConvToLinear, SplitQkv };

struct PrefixRow {
  std::string ldm;        // full single-file prefix (root included) or full key
  std::string diffusers;  // prefix or full key inside the component (diffusers' state-dict names)
  Transform transform = Transform::None;
};

// One tensor a component's module registers, by diffusers name.
struct TensorSpec {
  std::string key;
  std::vector<int64_t> shape;
};

// Roots of the three components in a single file.
inline constexpr const char* kLdmUnetRoot = "model.diffusion_model";
inline constexpr const char* kLdmVaeRoot = "first_stage_model";
inline constexpr const char* kLdmSd1TextRoot = "cond_stage_model.transformer";
inline constexpr const char* kLdmSd2TextRoot = "cond_stage_model.model";

std::vector<PrefixRow> unet_rows(const models::UNetConfig& config);
std::vector<PrefixRow> vae_rows(const models::VaeConfig& config);
// SD1: one row (HF CLIP names under cond_stage_model.transformer). SD2: OpenCLIP names for the
// config's num_hidden_layers blocks; blocks beyond them (SD2's unused 24th) are not in the table.
std::vector<PrefixRow> text_encoder_rows(const models::ClipTextConfig& config, Family family);

// Old diffusers folders (e.g. the original SD1.5 repository) name the VAE attention
// query/key/value/proj_attn; rows from those names to the current to_q/to_k/to_v/to_out.0.
std::vector<PrefixRow> legacy_vae_attention_rows();

// The tensors each component's module holds, in diffusers naming, with the shapes the config implies.
std::vector<TensorSpec> unet_tensors(const models::UNetConfig& config);
std::vector<TensorSpec> vae_tensors(const models::VaeConfig& config);
std::vector<TensorSpec> text_encoder_tensors(const models::ClipTextConfig& config);

int64_t parameter_count(const std::vector<TensorSpec>& tensors);

// Dotted-key helpers: "a" + "." + "b" (either side may be empty), and a plain prefix test.
std::string join_key(const std::string& prefix, const std::string& tail);
bool starts_with(const std::string& text, const std::string& prefix);

}  // namespace dreambooth::checkpoint
