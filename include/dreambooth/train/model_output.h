// What a finished run leaves in OUTPUT: the trained model in the original single-file layout
// (OUTPUT/model.safetensors, loadable by `sample`, `info`, AUTOMATIC1111 and ComfyUI) and/or a diffusers
// folder (OUTPUT/diffusers/), and the tokenizer beside them (OUTPUT/tokenizer/, found by the tokenizer
// search), so `dreambooth sample --model OUTPUT` works.
#pragma once

#include <filesystem>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/train/options.h"

namespace dreambooth::train {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kDiffusersFolder = "diffusers";
inline constexpr const char* kTokenizerFolder = "tokenizer";

// Copies a tokenizer (a CLIP folder's files, or a SentencePiece .model file) into `destination`
// (a folder, replaced atomically).
void copy_tokenizer(const std::filesystem::path& source, const std::filesystem::path& destination);

// Writes the model (all three components loaded) per --save-format / --save-dtype, and the tokenizer.
// Refuses (numerical error) to write weights that hold NaN/Inf. Returns the main model path.
std::filesystem::path save_trained_model(const checkpoint::StableDiffusion& model, const TrainOptions& options,
                                         const std::filesystem::path& tokenizer_source);

// True when every floating-point parameter of the loaded components is finite.
bool model_weights_finite(const checkpoint::StableDiffusion& model);

}  // namespace dreambooth::train
