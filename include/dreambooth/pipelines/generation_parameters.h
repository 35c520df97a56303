// The "parameters" text AUTOMATIC1111 writes into (and reads back from) PNG files:
//   <prompt>
//   Negative prompt: <negative>
//   Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 0123456789, ...
// LoRAs applied at load time appear as AUTOMATIC1111 writes them: `<lora:NAME:MULTIPLIER>` after the prompt
// (which A1111's "PNG Info" / "send to txt2img" re-applies) and `Lora hashes: "NAME: HASH, ..."`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dreambooth/schedulers/schedule.h"

namespace dreambooth::pipelines {

struct LoraUse {
  std::string name;  // the file's stem, the name A1111 lists it by
  double multiplier = 1.0;
  std::string hash;  // first 12 hex digits of the safetensors data hash (may be empty)
};

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
  std::vector<LoraUse> loras;
};

// AUTOMATIC1111's sampler label ("Euler a", "DPM++ 2M Karras", "PLMS", ...).
std::string a1111_sampler_name(schedulers::SamplerKind kind, bool karras);
std::string a1111_parameters(const GenerationRecord& record);

}  // namespace dreambooth::pipelines
