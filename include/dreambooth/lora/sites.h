// Where LoRA modules can sit: every Linear and Conv2d of a model's UNet and text encoder, with the names
// LoRA files give them, and which of them `--lora-targets` selects for training.
//
// Names (diffusers/transformers module paths inside the component):
//   UNet          down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q
//   text encoder  text_model.encoder.layers.0.self_attn.q_proj
// Kohya names: "lora_unet_" / "lora_te_" + the path with '.' -> '_':
//   lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q
//   lora_te_text_model_encoder_layers_0_self_attn_q_proj
// Because '_' is ambiguous, kohya names are resolved by looking them up in the table of the actual model's
// modules, never by guessing which '_' were dots. UNet modules also answer to the kohya name of their
// original (LDM) path, e.g. lora_unet_input_blocks_1_1_proj_in (some SD1 LoRAs use those), through the
// checkpoint key tables.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/checkpoint/types.h"
#include "dreambooth/lora/adapter.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/layers.h"
#include "dreambooth/models/unet_2d_condition.h"

namespace dreambooth::lora {

inline constexpr const char* kKohyaUnetPrefix = "lora_unet_";
inline constexpr const char* kKohyaTextEncoderPrefix = "lora_te_";

// Which layers `--lora-targets` trains:
//   Attention             UNet to_q, to_k, to_v, to_out.0 of every attn1/attn2; text encoder q/k/v/out_proj
//   AttentionFeedForward  + UNet ff.net.0.proj, ff.net.2; text encoder mlp.fc1, mlp.fc2
//   AllLinear             + UNet proj_in, proj_out (1x1 convs in SD1, Linear in SD2): every Linear of the
//                         Transformer2D blocks, i.e. kohya's standard LoRA set
enum class LoraTargets { Attention, AttentionFeedForward, AllLinear };

struct LoraTargetsInfo {
  const char* name;  // the --lora-targets value
  LoraTargets targets;
  const char* help;
};
inline constexpr LoraTargetsInfo kLoraTargets[] = {
    {"attn", LoraTargets::Attention, "attention projections (to_q, to_k, to_v, to_out.0; q/k/v/out_proj)"},
    {"attn+ff", LoraTargets::AttentionFeedForward, "attention + feed-forward (ff.net.0.proj, ff.net.2; mlp.fc1/fc2)"},
    {"all-linear", LoraTargets::AllLinear, "attention + feed-forward + proj_in/proj_out (kohya's default set)"},
};
const char* lora_targets_name(LoraTargets targets);
// Usage error naming `source` (the flag) for anything but the names above.
LoraTargets parse_lora_targets(const std::string& name, const std::string& source);

// Whether `targets` selects the module at `path` of a component (UNet or text encoder).
bool is_lora_target(checkpoint::Component component, const std::string& path, LoraTargets targets);

// "lora_unet_" / "lora_te_" + path with '.' -> '_'. Only UNet and text encoder.
std::string kohya_name(checkpoint::Component component, const std::string& path);

// One Linear or Conv2d a LoRA module can attach to.
struct LoraSite {
  checkpoint::Component component = checkpoint::Component::Unet;
  std::string path;        // module path inside the component
  std::string kohya_name;  // lora_unet_... / lora_te_...
  LayerShape shape;
  std::shared_ptr<models::LinearImpl> linear;  // exactly one of linear / conv is set
  std::shared_ptr<models::Conv2dImpl> conv;

  at::Tensor& weight() const;
  std::shared_ptr<models::LayerAdapter>& adapter() const;  // the layer's hook
};

class LoraSiteTable {
 public:
  // Null modules contribute nothing (a model loaded without its text encoder).
  LoraSiteTable(const models::UNet2DConditionModel& unet, const models::ClipTextModel& text_encoder);
  explicit LoraSiteTable(const checkpoint::StableDiffusion& model);

  // Model order: UNet first, then the text encoder.
  const std::vector<LoraSite>& sites() const { return sites_; }
  const LoraSite* find(checkpoint::Component component, const std::string& path) const;
  // A kohya name: the diffusers-path form or (UNet) the LDM-path form.
  const LoraSite* find_kohya(const std::string& name) const;
  bool has(checkpoint::Component component) const;

 private:
  void add(checkpoint::Component component, torch::nn::Module& root);

  std::vector<LoraSite> sites_;
  std::unordered_map<std::string, size_t> by_path_[2];  // [0] UNet, [1] text encoder
  std::unordered_map<std::string, size_t> by_kohya_;
  bool has_[2] = {false, false};
};

}  // namespace dreambooth::lora
