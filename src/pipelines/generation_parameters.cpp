#include "dreambooth/pipelines/generation_parameters.h"

#include <cstdio>

namespace dreambooth::pipelines {
namespace {

struct SamplerLabel {
  schedulers::SamplerKind kind;
  const char* label;
};

constexpr SamplerLabel kLabels[] = {
    {schedulers::SamplerKind::Ddim, "DDIM"},
    {schedulers::SamplerKind::Pndm, "PLMS"},
    {schedulers::SamplerKind::Euler, "Euler"},
    {schedulers::SamplerKind::EulerAncestral, "Euler a"},
    {schedulers::SamplerKind::DpmSolverMultistep, "DPM++ 2M"},
    {schedulers::SamplerKind::Ddpm, "DDPM"},
    {schedulers::SamplerKind::Lms, "LMS"},
};

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

}  // namespace

std::string a1111_sampler_name(schedulers::SamplerKind kind, bool karras) {
  for (const auto& row : kLabels)
    if (row.kind == kind) return std::string(row.label) + (karras ? " Karras" : "");
  return "unknown";
}

std::string a1111_parameters(const GenerationRecord& r) {
  std::string text = r.prompt;
  for (const LoraUse& l : r.loras) text += " <lora:" + l.name + ":" + number(l.multiplier) + ">";
  text += "\n";
  if (!r.negative_prompt.empty()) text += "Negative prompt: " + r.negative_prompt + "\n";
  text += "Steps: " + std::to_string(r.steps) + ", Sampler: " + a1111_sampler_name(r.sampler, r.karras) +
          ", CFG scale: " + number(r.cfg) + ", Seed: " + std::to_string(r.seed) + ", Size: " +
          std::to_string(r.width) + "x" + std::to_string(r.height);
  if (!r.model_hash.empty()) text += ", Model hash: " + r.model_hash;
  if (!r.model_name.empty()) text += ", Model: " + r.model_name;
  if (r.eta != 0) text += ", Eta: " + number(r.eta);
  if (r.clip_skip > 0) text += ", Clip skip: " + std::to_string(r.clip_skip + 1);
  std::string lora_hashes;
  for (const LoraUse& l : r.loras)
    if (!l.hash.empty()) lora_hashes += (lora_hashes.empty() ? "" : ", ") + l.name + ": " + l.hash;
  if (!lora_hashes.empty()) text += ", Lora hashes: \"" + lora_hashes + "\"";
  text += ", Version: dreambooth " DREAMBOOTH_VERSION;
  return text;
}

}  // namespace dreambooth::pipelines
