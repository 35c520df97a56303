// `dreambooth convert`: rewrite a checkpoint in the other (or the same) layout without building models.
// Tensors stream from the memory-mapped input to the output one at a time; with no dtype given each
// tensor keeps its stored dtype, so LDM -> diffusers -> LDM reproduces every tensor bit for bit
// (extras included, see writer.h).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/description.h"

namespace dreambooth::checkpoint {

struct ConvertOptions {
  std::filesystem::path input;
  std::filesystem::path output;
  Layout layout = Layout::Diffusers;
  std::optional<c10::ScalarType> dtype;           // float32 | float16 | bfloat16; nullopt keeps stored dtypes
  std::optional<PredictionType> prediction_type;  // overrides the detected one (recorded in the output)
  bool overwrite = false;
  // Diffusers output: called with the finished temporary folder (tokenizer files). When unset and the
  // input is a diffusers folder, its tokenizer/ folder is copied.
  std::function<void(const std::filesystem::path& folder)> add_files;
};

// Returns the description of what was written.
ModelDescription convert_checkpoint(const ConvertOptions& options);
ModelDescription convert_checkpoint(const std::filesystem::path& input, const std::filesystem::path& output,
                                    Layout layout, std::optional<c10::ScalarType> dtype = std::nullopt);

}  // namespace dreambooth::checkpoint
