// Validation images during training: the validation prompt sampled with fixed seeds (seed, seed+1, ...)
// every --validation-every steps into OUTPUT/validation/step-NNNNNN/, so runs and steps compare
// image for image.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/text/tokenizer.h"

namespace dreambooth::train {

struct ValidationSettings {
  std::string prompt;
  int count = 2;
  int resolution = 512;
  int steps = 25;
  double cfg = 7.5;
  std::string sampler = "dpmpp_2m";
  uint64_t seed = 0;
};

std::filesystem::path validation_folder(const std::filesystem::path& output, int step);

// Generates and writes the images (the model must be in eval mode; no gradients are recorded).
void write_validation_images(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
                             const ValidationSettings& settings, const std::filesystem::path& folder);

}  // namespace dreambooth::train
