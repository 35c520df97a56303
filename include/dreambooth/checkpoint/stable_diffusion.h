// A loaded Stable Diffusion model: its description and the three modules, from either layout.
//
//   checkpoint::LoadOptions options;
//   options.path = "v1-5.safetensors";
//   options.dtype = c10::kHalf;
//   options.device = c10::Device("cuda");
//   checkpoint::StableDiffusion sd = checkpoint::load_stable_diffusion(options);
//   sd.unet->forward(...);
//   checkpoint::save_diffusers(sd, "out/model");
//
// Loading is strict (see strict_load.h) and streams from the memory-mapped file into the modules'
// parameters one tensor at a time, so peak memory stays near the size of the loaded model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/source.h"
#include "dreambooth/checkpoint/writer.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/autoencoder_kl.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/unet_2d_condition.h"

namespace dreambooth::checkpoint {

// The module members are shared handles (copies share the weights). They are `mutable` so that code
// holding a `const StableDiffusion&` can still run them: a forward pass does not change the bundle.
struct StableDiffusion {
  ModelDescription description;
  mutable models::UNet2DConditionModel unet{nullptr};  // null when not loaded
  mutable models::AutoencoderKL vae{nullptr};
  mutable models::ClipTextModel text_encoder{nullptr};
  // Single-file tensors the models do not use, kept so that saving a single file again writes them
  // back (see writer.h). Views of the source file; never on the device.
  std::vector<io::NamedTensor> ldm_extras;
};

struct LoadOptions {
  std::filesystem::path path;           // a .safetensors single file or a diffusers folder
  c10::ScalarType dtype = c10::kFloat;  // of the modules' parameters
  c10::Device device = c10::kCPU;
  std::optional<PredictionType> prediction_type;  // overrides the detected one
  ComponentSet components;                        // which modules to build and load
};

StableDiffusion load_stable_diffusion(const LoadOptions& options);

// Loads one component's weights into an already built module of the matching config (used by the
// loader, and by training to reload a component).
void load_component(torch::nn::Module& module, const ComponentSource& source, Component component,
                    c10::ScalarType dtype, c10::Device device);

// For `info`: what a checkpoint is, from headers and configs only (no tensor data is read).
struct CheckpointInfo {
  ModelDescription description;
  PerComponent<int64_t> parameter_count{0, 0, 0};  // what the models use (SD2 text encoder: 23 layers)
  std::vector<std::string> extra_keys;             // single-file tensors the models do not use
};
CheckpointInfo describe_checkpoint(const std::filesystem::path& path,
                                   std::optional<PredictionType> prediction_type = std::nullopt);

// The modules' parameters by diffusers name (empty map for a component that is not loaded).
PerComponent<TensorMap> model_tensors(const StableDiffusion& model);

// Writers for a loaded model (all three components must be loaded). See writer.h for the layouts;
// WriteOptions::dtype nullopt keeps the modules' dtype.
void save_single_file(const StableDiffusion& model, const std::filesystem::path& path,
                      const WriteOptions& options = {});
void save_diffusers(const StableDiffusion& model, const std::filesystem::path& folder,
                    const WriteOptions& options = {});

}  // namespace dreambooth::checkpoint
