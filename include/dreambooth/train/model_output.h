// What a finished run leaves in OUTPUT: the trained model in the original single-file layout
// (OUTPUT/model.safetensors, loadable by `sample`, `info`, AUTOMATIC1111 and ComfyUI) and/or a diffusers
// folder (OUTPUT/diffusers/), and the tokenizer beside them (OUTPUT/tokenizer/, found by the tokenizer
// search), so `dreambooth sample --model OUTPUT` works. A --lora run leaves only the adapters,
// OUTPUT/lora.safetensors (`dreambooth sample --model BASE --lora OUTPUT/lora.safetensors`).
#pragma once

#include <filesystem>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/lora/network.h"
#include "dreambooth/train/options.h"

namespace dreambooth::train {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kDiffusersFolder = "diffusers";
inline constexpr const char* kTokenizerFolder = "tokenizer";
inline constexpr const char* kLoraFile = "lora.safetensors";

// Copies a tokenizer (a CLIP folder's files, or a SentencePiece .model file) into `destination`
// (a folder, replaced atomically).
void copy_tokenizer(const std::filesystem::path& source, const std::filesystem::path& destination);

// Writes the model (all three components loaded) per --save-format / --save-dtype, and the tokenizer.
// Refuses (numerical error) to write weights that hold NaN/Inf. Returns the main model path.
std::filesystem::path save_trained_model(const checkpoint::StableDiffusion& model, const TrainOptions& options,
                                         const std::filesystem::path& tokenizer_source);

// Writes OUTPUT/lora.safetensors: --lora-format keys (kohya: with kohya's ss_* metadata from `info`),
// tensors in --save-dtype. Refuses (numerical error) adapters that hold NaN/Inf. Returns the path.
std::filesystem::path save_trained_lora(const lora::LoraNetwork& network, const TrainOptions& options,
                                        const lora::LoraTrainingInfo& info);

// True when every floating-point parameter of the loaded components is finite.
bool model_weights_finite(const checkpoint::StableDiffusion& model);

}  // namespace dreambooth::train
