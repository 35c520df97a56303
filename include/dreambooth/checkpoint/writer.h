// Writing a model's tensors in either layout. Every write is atomic: a single file goes to a temporary
// sibling and is renamed into place; a diffusers folder is written as a temporary sibling folder and
// renamed into place as a whole.
//
// Single file (LDM layout): the three components through their key tables (fused OpenCLIP q/k/v and 1x1
// VAE attention convolutions restored), the extras, and `__metadata__` {"format": "pt",
// "dreambooth.config": <description_to_metadata>} so the file reloads exactly.
// Extras are single-file tensors the models do not use (DDPM schedule buffers, SD1 position_ids, SD2's
// 24th OpenCLIP block, text_projection, logit_scale): written back exactly as they were read. When a
// model has none (a preset, or a diffusers model that never was a single file) nothing is invented: an
// SD2 file then holds the 23 blocks diffusers uses and no text_projection/logit_scale, like diffusers'
// own converter writes; AUTOMATIC1111 and ComfyUI load such files (the missing block is the unused one).
//
// Diffusers folder: model_index.json, unet/vae/text_encoder config.json + weights
// (diffusion_pytorch_model.safetensors / model.safetensors), scheduler/scheduler_config.json, and the
// extras (if any) in `ldm_extras.safetensors` beside model_index.json (diffusers ignores it; we restore
// them when converting back). Tokenizer files are the caller's: `add_files` is called with the finished
// temporary folder before it is renamed into place.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/source.h"
#include "dreambooth/io/safetensors.h"

namespace dreambooth::checkpoint {

struct WriteOptions {
  // Floating-point tensors are converted to it (float32, float16 or bfloat16) while being written;
  // nullopt keeps each tensor's dtype (a bitwise copy).
  std::optional<c10::ScalarType> dtype;
  bool overwrite = false;  // replace an existing file/folder (atomically) instead of an output error
  std::function<void(const std::filesystem::path& folder)> add_files;  // diffusers only
};

void write_single_file(const ModelDescription& description, const PerComponent<TensorMap>& tensors,
                       const std::vector<io::NamedTensor>& extras, const std::filesystem::path& path,
                       const WriteOptions& options);

void write_diffusers(const ModelDescription& description, const PerComponent<TensorMap>& tensors,
                     const std::vector<io::NamedTensor>& extras, const std::filesystem::path& folder,
                     const WriteOptions& options);

// The file name of the extras inside a diffusers folder.
inline constexpr const char* kLdmExtrasFile = "ldm_extras.safetensors";

}  // namespace dreambooth::checkpoint
