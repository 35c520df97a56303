// Model presets for `dreambooth init --preset tiny|sd15|sd21`: a description from the configs' own
// presets, and a model with random weights (models::init_random_weights) ready to be saved in either
// layout.
//   tiny  the golden tiny-sd1 configs (UNet 32/64 channels, text hidden 32), epsilon, PNDM
//   sd15  Stable Diffusion 1.5 shapes, epsilon, PNDM
//   sd21  Stable Diffusion 2.1 (768-v) shapes, v-prediction, DDIM, upcast attention
#pragma once

#include <cstdint>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/stable_diffusion.h"

namespace dreambooth::checkpoint {

enum class Preset { Tiny, Sd15, Sd21 };

struct PresetInfo {
  const char* name;  // the --preset value
  Preset preset;
  const char* help;
};
// The registry the CLI validates --preset against and prints in --help.
inline constexpr PresetInfo kPresets[] = {
    {"tiny", Preset::Tiny, "the tiny-sd1 test model (a few MB)"},
    {"sd15", Preset::Sd15, "Stable Diffusion 1.5 shapes (epsilon)"},
    {"sd21", Preset::Sd21, "Stable Diffusion 2.1 768-v shapes (v-prediction)"},
};

ModelDescription preset_description(Preset preset);

// All three modules on the CPU in float32, randomly initialised (deterministic for a seed).
StableDiffusion create_preset_model(Preset preset, uint64_t seed);

}  // namespace dreambooth::checkpoint
