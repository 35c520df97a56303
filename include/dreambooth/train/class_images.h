// Prior-preservation class images: the folder is filled up to the requested count with images the
// frozen model generates from the class prompt (pipelines::TextToImage, batched). Images already there,
// generated earlier or put there by the user, are used as they are and never regenerated.
//
// Generated files are named class-NNNNN-<seed>.png and carry AUTOMATIC1111 "parameters" (prompt,
// sampler, steps, CFG, seed, size); `manifest.json` in the folder lists every generated file with its
// seed and settings. Image k of the folder's history uses seed + k, so a rerun continues the sequence.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/text/tokenizer.h"

namespace dreambooth::train {

inline constexpr const char* kClassManifestFile = "manifest.json";

struct ClassImageSettings {
  std::filesystem::path folder;
  std::string prompt;
  std::string negative_prompt;  // "" = unconditional, as the reference's PromptDataset does
  int count = 200;              // wanted in the folder
  int resolution = 512;
  std::string sampler = "dpmpp_2m";
  int steps = 25;
  double cfg = 7.5;
  int batch_size = 4;
  uint64_t seed = 0;
  bool quiet = false;
};

struct ClassImageReport {
  int existing = 0;   // images found in the folder
  int generated = 0;  // images made now
};

// Number of images already in `folder` (0 when it does not exist).
int count_class_images(const std::filesystem::path& folder);

// Generates the missing images. Checks the interrupt flag after every sampler step (an interrupt keeps
// the finished images and throws ErrorKind::Interrupted).
ClassImageReport ensure_class_images(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
                                     const ClassImageSettings& settings);

}  // namespace dreambooth::train
