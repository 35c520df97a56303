// What a checkpoint is, independent of where its weights live: family, layout, prediction type, the
// three component configs, the scheduler config, and the stored dtypes. Detection fills it from a file;
// presets build it from configs; every writer records it (single files in `__metadata__`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "dreambooth/checkpoint/key_map.h"
#include "dreambooth/checkpoint/types.h"
#include "dreambooth/models/clip_text_config.h"
#include "dreambooth/models/unet_config.h"
#include "dreambooth/models/vae_config.h"

namespace dreambooth::checkpoint {

// The `__metadata__` key our single files carry: JSON with the configs, family and prediction type.
inline constexpr const char* kConfigMetadataKey = "dreambooth.config";
inline constexpr int kConfigMetadataFormat = 1;

struct ModelDescription {
  Family family = Family::Sd1;
  Layout layout = Layout::SingleFile;
  std::filesystem::path source;  // the file or folder it was read from (empty for presets)
  PredictionType prediction_type = PredictionType::Epsilon;
  models::UNetConfig unet;
  models::VaeConfig vae;
  models::ClipTextConfig text_encoder;
  nlohmann::json scheduler;  // diffusers scheduler_config.json
  PerComponent<c10::ScalarType> stored_dtype{c10::kFloat, c10::kFloat, c10::kFloat};
  // Where the configs came from: "metadata", "shapes", "shapes+yaml" (single files), "config.json"
  // (diffusers folders), "preset".
  std::string config_source;
};

// Scheduler config for a single file, as diffusers builds it: scaled_linear 0.00085-0.012, 1000 steps,
// steps_offset 1, "leading" spacing, no alpha-to-one, no clipping; SD1 PNDM (skip_prk_steps), SD2 DDIM.
nlohmann::json single_file_scheduler_config(Family family, PredictionType prediction_type);

// JSON text as Python's json module writes it: non-finite numbers become NaN / Infinity / -Infinity
// instead of nlohmann's null (diffusers writes and needs "lambda_min_clipped": -Infinity). The reader is
// core's parse_python_json.
std::string dump_python_json(const nlohmann::json& json, int indent = -1);

// Sets the prediction type and the scheduler config's "prediction_type" together.
void set_prediction_type(ModelDescription& description, PredictionType type);

// The dreambooth.config JSON, and back. Reading is strict: missing parts are a model error naming `source`.
nlohmann::json description_to_metadata(const ModelDescription& description);
ModelDescription description_from_metadata(const nlohmann::json& metadata, const std::string& source);

// Model-level checks every layout shares: a text-to-image UNet over the VAE's latents (inpainting,
// depth and pix2pix UNets are refused by name), attending to the text encoder's width.
void check_supported(const ModelDescription& description, const std::string& source);

// Per component: the tensors the model holds (diffusers names), the LDM key map, the storage plan.
std::vector<TensorSpec> component_tensors(const ModelDescription& description, Component component);
KeyMap component_key_map(const ModelDescription& description, Component component);
ComponentPlan component_plan(const ModelDescription& description, Component component, Layout layout);
int64_t component_parameter_count(const ModelDescription& description, Component component);

}  // namespace dreambooth::checkpoint
