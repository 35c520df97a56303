// The small vocabulary every checkpoint file shares: model family, file layout, prediction type and
// the three weight-carrying components of a Stable Diffusion pipeline.
#pragma once

#include <array>
#include <string>

namespace dreambooth::checkpoint {

// SD1.x (OpenAI CLIP ViT-L text encoder, HF key names in single files) or SD2.x (OpenCLIP ViT-H,
// `cond_stage_model.model.*` with fused q/k/v in single files).
enum class Family { Sd1, Sd2 };

// Diffusers' folder (model_index.json + one folder per component) or the original single-file
// CompVis/LDM layout (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`).
enum class Layout { SingleFile, Diffusers };

// What the UNet predicts. Scheduler configs spell these "epsilon" and "v_prediction".
enum class PredictionType { Epsilon, VPrediction };

enum class Component { Unet, Vae, TextEncoder };
inline constexpr std::array<Component, 3> kAllComponents = {Component::Unet, Component::Vae, Component::TextEncoder};

// Which components to load. Default: all three.
struct ComponentSet {
  bool unet = true;
  bool vae = true;
  bool text_encoder = true;
  bool contains(Component c) const;
  static ComponentSet all() { return {}; }
  static ComponentSet only(Component c);
};

// One value per component, addressable by the enum.
template <typename T>
struct PerComponent {
  T unet{};
  T vae{};
  T text_encoder{};
  T& operator[](Component c) { return c == Component::Unet ? unet : c == Component::Vae ? vae : text_encoder; }
  const T& operator[](Component c) const {
    return c == Component::Unet ? unet : c == Component::Vae ? vae : text_encoder;
  }
};

// Stable names: "sd1"/"sd2", "single"/"diffusers", "epsilon"/"v_prediction", "unet"/"vae"/"text_encoder"
// (the component names are also diffusers' folder names).
const char* family_name(Family family);
const char* layout_name(Layout layout);
const char* prediction_type_name(PredictionType type);
const char* component_name(Component component);

// Parse the names above; `source` names the file or flag in the model error thrown for anything else.
Family parse_family(const std::string& name, const std::string& source);
PredictionType parse_prediction_type(const std::string& name, const std::string& source);

}  // namespace dreambooth::checkpoint
