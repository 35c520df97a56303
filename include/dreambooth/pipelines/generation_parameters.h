// The "parameters" text AUTOMATIC1111 writes into (and reads back from) PNG files:
//   <prompt>
//   Negative prompt: <negative>
//   Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 0123456789, ...
#pragma once

#include <cstdint>
#include <string>

#include "dreambooth/schedulers/schedule.h"

namespace dreambooth::pipelines {

struct GenerationRecord {
  std::string prompt;
  std::string negative_prompt;
  int steps = 0;
  schedulers::SamplerKind sampler = schedulers::SamplerKind::Ddim;
  bool karras = false;
  double cfg = 0;
  uint64_t seed = 0;
  int width = 0;
  int height = 0;
  std::string model_hash;  // first 10 hex digits of the checkpoint's SHA-256 (may be empty)
  std::string model_name;
  int clip_skip = 0;       // diffusers' count of skipped layers (AUTOMATIC1111 shows it + 1)
  double eta = 0;
};

// AUTOMATIC1111's sampler label ("Euler a", "DPM++ 2M Karras", "PLMS", ...).
std::string a1111_sampler_name(schedulers::SamplerKind kind, bool karras);
std::string a1111_parameters(const GenerationRecord& record);

}  // namespace dreambooth::pipelines
