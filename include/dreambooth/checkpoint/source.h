// Opening a checkpoint of either layout: its description, and per component the checked, bound plan
// over the weight files. Only headers and configs are read; no tensor data is touched.
//
// A path that is a directory is a diffusers folder (model_index.json); a `.safetensors` file is a single
// file. Pickle checkpoints (.ckpt, .pt, .pth, .bin) are refused with a hint to convert them.
//
// Single file: the description comes from our `__metadata__` "dreambooth.config" when present (exact),
// else from tensor shapes and the `<stem>.yaml` beside the file (see detect.h).
// Diffusers folder: model_index.json, each component's config.json, scheduler/scheduler_config.json;
// weights `diffusion_pytorch_model[.fp16].safetensors` / `model[.fp16].safetensors` or a sharded
// `*.safetensors.index.json`; the family from the text encoder config (hidden 1024 or gelu -> sd2).
// An `ldm_extras.safetensors` beside model_index.json holds single-file tensors the models do not use
// (see writer.h), so LDM -> diffusers -> LDM keeps them.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/strict_load.h"
#include "dreambooth/checkpoint/weight_files.h"

namespace dreambooth::checkpoint {

struct OpenOptions {
  std::optional<PredictionType> prediction_type;  // wins over metadata, yaml and scheduler config
  ComponentSet components;                        // which components to check and bind
  bool prefer_fp16_variant = false;               // diffusers: take `*.fp16.safetensors` when both exist
};

struct ComponentSource {
  WeightFiles files;
  ComponentPlan plan;  // bound: keys as stored, all present with fitting shapes
};

struct CheckpointSource {
  ModelDescription description;
  PerComponent<ComponentSource> components;  // empty for components not requested
  // Single-file tensors the models do not use (LDM names), kept for writing single files again.
  WeightFiles extras_files;
  std::vector<std::string> extra_keys;
};

// Throws input errors (missing/unreadable/corrupt files, pickles) and one model error listing every key
// problem (unsupported variants, missing/unexpected/mis-shaped keys).
CheckpointSource open_checkpoint(const std::filesystem::path& path, const OpenOptions& options = {});

// Tensors of one component by diffusers name.
using TensorMap = std::map<std::string, at::Tensor>;

// Zero-copy views of a bound component in diffusers naming (split/reshaped views of the stored tensors,
// stored dtype), and of the extras under their single-file names.
TensorMap component_views(const CheckpointSource& source, Component component);
std::vector<io::NamedTensor> extra_views(const CheckpointSource& source);

// The layout a path has (directory -> diffusers); input errors for missing paths and pickles.
Layout layout_of(const std::filesystem::path& path);

}  // namespace dreambooth::checkpoint
