#include "dreambooth/checkpoint/description.h"

#include <cmath>

#include "dreambooth/core/error.h"
#include "dreambooth/schedulers/scheduler_config.h"

namespace dreambooth::checkpoint {

nlohmann::json single_file_scheduler_config(Family family, PredictionType prediction_type) {
  nlohmann::json config = {
      {"_class_name", family == Family::Sd1 ? "PNDMScheduler" : "DDIMScheduler"},
      {"_diffusers_version", "0.25.1"},
      {"beta_start", 0.00085},
      {"beta_end", 0.012},
      {"beta_schedule", "scaled_linear"},
      {"num_train_timesteps", 1000},
      {"steps_offset", 1},
      {"timestep_spacing", "leading"},
      {"set_alpha_to_one", false},
      {"clip_sample", false},
      {"trained_betas", nullptr},
      {"prediction_type", prediction_type_name(prediction_type)},
  };
  if (family == Family::Sd1) config["skip_prk_steps"] = true;
  return config;
}

namespace {

// A string no config holds: a NUL byte cannot appear in a JSON file's text unescaped.
const std::string kNonFiniteMarker = std::string(1, '\0') + "dreambooth-non-finite:";

nlohmann::json mark_non_finite(const nlohmann::json& json) {
  if (json.is_number_float() && !std::isfinite(json.get<double>())) {
    const double x = json.get<double>();
    return kNonFiniteMarker + (std::isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
  }
  if (json.is_object() || json.is_array()) {
    nlohmann::json out = json;
    for (auto it = out.begin(); it != out.end(); ++it) *it = mark_non_finite(*it);
    return out;
  }
  return json;
}

}  // namespace

std::string dump_python_json(const nlohmann::json& json, int indent) {
  std::string text = mark_non_finite(json).dump(indent);
  const std::string quoted_marker = "\"\\u0000dreambooth-non-finite:";
  for (auto at = text.find(quoted_marker); at != std::string::npos; at = text.find(quoted_marker, at)) {
    const auto end = text.find('"', at + quoted_marker.size());
    const std::string token = text.substr(at + quoted_marker.size(), end - at - quoted_marker.size());
    text.replace(at, end + 1 - at, token);
  }
  return text;
}

void set_prediction_type(ModelDescription& description, PredictionType type) {
  description.prediction_type = type;
  if (description.scheduler.is_object()) description.scheduler["prediction_type"] = prediction_type_name(type);
}

nlohmann::json description_to_metadata(const ModelDescription& d) {
  return {
      {"format", kConfigMetadataFormat},
      {"family", family_name(d.family)},
      {"prediction_type", prediction_type_name(d.prediction_type)},
      {"unet", d.unet.to_json()},
      {"vae", d.vae.to_json()},
      {"text_encoder", d.text_encoder.to_json()},
      {"scheduler", d.scheduler},
  };
}

ModelDescription description_from_metadata(const nlohmann::json& metadata, const std::string& source) {
  const std::string where = source + " " + kConfigMetadataKey;
  auto fail = [&](const std::string& what) {
    return model_error(where, what, "the metadata was not written by this program or is damaged");
  };
  if (!metadata.is_object()) throw fail("is not a JSON object");
  if (!metadata.contains("format") || !metadata["format"].is_number_integer()) throw fail("has no integer \"format\"");
  if (metadata["format"].get<int>() != kConfigMetadataFormat)
    throw fail("has format " + metadata["format"].dump() + ", this build reads format " +
               std::to_string(kConfigMetadataFormat));
  for (const char* key : {"family", "prediction_type"})
    if (!metadata.contains(key) || !metadata[key].is_string()) throw fail(std::string("has no string \"") + key + "\"");
  for (const char* key : {"unet", "vae", "text_encoder", "scheduler"})
    if (!metadata.contains(key) || !metadata[key].is_object()) throw fail(std::string("has no object \"") + key + "\"");

  ModelDescription d;
  d.family = parse_family(metadata["family"].get<std::string>(), where);
  d.prediction_type = parse_prediction_type(metadata["prediction_type"].get<std::string>(), where);
  d.unet = models::UNetConfig::from_json(metadata["unet"], where + " unet");
  d.vae = models::VaeConfig::from_json(metadata["vae"], where + " vae");
  d.text_encoder = models::ClipTextConfig::from_json(metadata["text_encoder"], where + " text_encoder");
  d.scheduler = metadata["scheduler"];
  schedulers::SchedulerConfig::from_json(d.scheduler, where + " scheduler");  // strict check
  d.config_source = "metadata";
  return d;
}

void check_supported(const ModelDescription& d, const std::string& source) {
  const int in = d.unet.in_channels;
  if (in != d.vae.latent_channels) {
    const std::string what = in == 9   ? "an inpainting UNet (9 input channels)"
                             : in == 5 ? "a depth-conditioned UNet (5 input channels)"
                             : in == 8 ? "an instruct-pix2pix UNet (8 input channels)"
                                       : "a UNet with " + std::to_string(in) + " input channels";
    throw model_error(source, "holds " + what + " over " + std::to_string(d.vae.latent_channels) + " latent channels",
                      "only text-to-image Stable Diffusion 1.x/2.x models are supported");
  }
  if (d.unet.out_channels != d.vae.latent_channels)
    throw model_error(source,
                      "the UNet predicts " + std::to_string(d.unet.out_channels) + " channels for " +
                          std::to_string(d.vae.latent_channels) + " latent channels",
                      "only text-to-image Stable Diffusion 1.x/2.x models are supported");
  if (d.unet.cross_attention_dim != d.text_encoder.hidden_size)
    throw model_error(source,
                      "the UNet attends to " + std::to_string(d.unet.cross_attention_dim) +
                          "-wide text features but the text encoder is " + std::to_string(d.text_encoder.hidden_size) +
                          " wide",
                      "the checkpoint mixes components of different models");
}

std::vector<TensorSpec> component_tensors(const ModelDescription& d, Component component) {
  switch (component) {
    case Component::Unet:
      return unet_tensors(d.unet);
    case Component::Vae:
      return vae_tensors(d.vae);
    case Component::TextEncoder:
      return text_encoder_tensors(d.text_encoder);
  }
  return {};
}

KeyMap component_key_map(const ModelDescription& d, Component component) {
  switch (component) {
    case Component::Unet:
      return KeyMap(unet_rows(d.unet));
    case Component::Vae:
      return KeyMap(vae_rows(d.vae));
    case Component::TextEncoder:
      return KeyMap(text_encoder_rows(d.text_encoder, d.family));
  }
  throw Error(ErrorKind::Runtime, "unknown component");
}

ComponentPlan component_plan(const ModelDescription& d, Component component, Layout layout) {
  if (layout == Layout::Diffusers) return diffusers_plan(component_tensors(d, component));
  return single_file_plan(component_tensors(d, component), component_key_map(d, component));
}

int64_t component_parameter_count(const ModelDescription& d, Component component) {
  return parameter_count(component_tensors(d, component));
}

}  // namespace dreambooth::checkpoint
