// Opening a model the way every command does: resolve the path (a single file, a diffusers folder, or
// a `train` output folder), load the components on a device in a dtype, and find its tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/text/tokenizer.h"
#include "dreambooth/text/tokenizer_search.h"

namespace dreambooth::pipelines {

struct ModelRequest {
  std::filesystem::path path;
  std::optional<std::filesystem::path> tokenizer;  // --tokenizer
  std::optional<checkpoint::PredictionType> prediction_type;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  checkpoint::ComponentSet components;
  bool need_tokenizer = true;
};

struct LoadedModel {
  checkpoint::StableDiffusion sd;
  std::shared_ptr<text::Tokenizer> tokenizer;  // null when not requested
  text::FoundTokenizer tokenizer_source;
  std::filesystem::path resolved_path;  // the file or folder actually read
};

// A folder with model_index.json is a diffusers model; a folder with model.safetensors (what `train`
// writes) is that file; otherwise the path itself. Input error naming the path when nothing is there.
std::filesystem::path resolve_model_path(const std::filesystem::path& path);

// "auto" | "fp32" | "fp16" | "bf16": auto is fp16 on CUDA and fp32 on the CPU. fp16 on the CPU is a usage
// error (LibTorch has no fast CPU fp16 kernels).
c10::ScalarType resolve_dtype(const std::string& spec, c10::Device device);

// Loads everything requested. The VAE is kept in float32 when the model runs in fp16 and the VAE config
// asks for it (force_upcast, as diffusers does: the SD VAE overflows in fp16).
LoadedModel load_model(const ModelRequest& request);

std::shared_ptr<text::Tokenizer> load_model_tokenizer(const std::filesystem::path& model_path, bool diffusers_folder,
                                                      checkpoint::Family family,
                                                      const std::optional<std::filesystem::path>& explicit_path,
                                                      text::FoundTokenizer* found = nullptr);

}  // namespace dreambooth::pipelines
