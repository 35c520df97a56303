// Applying LoRA files to a loaded model by merging them into its weights:
//
//   W' = W + multiplier * (alpha / rank) * up @ down        (per module, computed in float32)
//
// which is what kohya's merge, AUTOMATIC1111 and ComfyUI compute; sampling then runs at the base model's
// speed. Several files apply one after the other (the updates add up).
//
// Placement: kohya names through the site table (sites.h); diffusers names by component and module path.
// A module whose name is not in the model, and every key that is no LoRA factor, is reported (and logged as
// one warning listing them). A module whose shapes do not fit its layer means the LoRA belongs to another
// model (SD2 on SD1, SDXL, ...): a model error listing them, before any weight is changed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/lora/sites.h"

namespace dreambooth::lora {

struct LoraApplyReport {
  size_t applied = 0;                 // modules merged
  std::vector<std::string> unplaced;  // file keys ignored: unknown modules and unrecognised keys
};

LoraApplyReport apply_lora(const checkpoint::StableDiffusion& model, const LoraWeights& weights, double multiplier);
LoraApplyReport apply_lora(const LoraSiteTable& table, const LoraWeights& weights, double multiplier);

// "FILE" or "FILE:SCALE" (the text after the last ':' when it is a number; so "C:\x.safetensors" is a path).
struct LoraSpec {
  std::filesystem::path path;
  double multiplier = 1.0;
};
LoraSpec parse_lora_spec(const std::string& text);  // usage error for an empty path or a non-finite scale

// `--lora FILE[:SCALE]` (repeatable), in two halves so that a bad file fails before minutes of model loading:
// load_lora_specs parses and reads every file (input/usage errors), apply_loaded_loras merges them in order
// (model error for a LoRA of another family, warning for keys it cannot place) and logs what was applied.
struct LoadedLora {
  LoraSpec spec;
  LoraWeights weights;
};
std::vector<LoadedLora> load_lora_specs(const std::vector<std::string>& specs);

struct AppliedLora {
  LoraSpec spec;
  LoraFormat format = LoraFormat::Kohya;  // the file's key convention
  LoraApplyReport report;
};
std::vector<AppliedLora> apply_loaded_loras(const checkpoint::StableDiffusion& model,
                                            const std::vector<LoadedLora>& loras);

// Both halves at once.
std::vector<AppliedLora> apply_lora_specs(const checkpoint::StableDiffusion& model,
                                          const std::vector<std::string>& specs);

}  // namespace dreambooth::lora
