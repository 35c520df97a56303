#include "dreambooth/checkpoint/types.h"

#include "dreambooth/core/error.h"

namespace dreambooth::checkpoint {

bool ComponentSet::contains(Component c) const {
  return c == Component::Unet ? unet : c == Component::Vae ? vae : text_encoder;
}

ComponentSet ComponentSet::only(Component c) {
  ComponentSet set{false, false, false};
  (c == Component::Unet ? set.unet : c == Component::Vae ? set.vae : set.text_encoder) = true;
  return set;
}

const char* family_name(Family family) { return family == Family::Sd1 ? "sd1" : "sd2"; }

const char* layout_name(Layout layout) { return layout == Layout::SingleFile ? "single" : "diffusers"; }

const char* prediction_type_name(PredictionType type) {
  return type == PredictionType::Epsilon ? "epsilon" : "v_prediction";
}

const char* component_name(Component component) {
  switch (component) {
    case Component::Unet:
      return "unet";
    case Component::Vae:
      return "vae";
    case Component::TextEncoder:
      return "text_encoder";
  }
  return "?";
}

Family parse_family(const std::string& name, const std::string& source) {
  if (name == "sd1") return Family::Sd1;
  if (name == "sd2") return Family::Sd2;
  throw model_error(source, "unknown model family '" + name + "'", "expected sd1 or sd2");
}

PredictionType parse_prediction_type(const std::string& name, const std::string& source) {
  if (name == "epsilon") return PredictionType::Epsilon;
  if (name == "v_prediction") return PredictionType::VPrediction;
  throw model_error(source, "unsupported prediction_type '" + name + "'", "expected epsilon or v_prediction");
}

}  // namespace dreambooth::checkpoint
