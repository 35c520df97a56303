// The "parameters" PNG text in AUTOMATIC1111's infotext layout, with and without LoRAs.
#include <gtest/gtest.h>

#include "dreambooth/pipelines/generation_parameters.h"

using namespace dreambooth;

namespace {

pipelines::GenerationRecord a_record() {
  pipelines::GenerationRecord r;
  r.prompt = "a photo of sks dog";
  r.negative_prompt = "blurry";
  r.steps = 25;
  r.sampler = schedulers::SamplerKind::DpmSolverMultistep;
  r.karras = true;
  r.cfg = 7.5;
  r.seed = 42;
  r.width = 512;
  r.height = 768;
  r.model_hash = "0123456789";
  r.model_name = "sd15";
  return r;
}

}  // namespace

TEST(GenerationParameters, Automatic1111Layout) {
  EXPECT_EQ(pipelines::a1111_parameters(a_record()),
            "a photo of sks dog\nNegative prompt: blurry\nSteps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, "
            "Seed: 42, Size: 512x768, Model hash: 0123456789, Model: sd15, Version: dreambooth " DREAMBOOTH_VERSION);
}

TEST(GenerationParameters, LorasAreTaggedInThePromptAndListedByHash) {
  pipelines::GenerationRecord r = a_record();
  r.negative_prompt.clear();
  r.clip_skip = 1;
  r.loras = {{"sks_dog", 0.8, "0123456789ab"}, {"style", 1.0, ""}, {"detail", -0.5, "ba7816bf8f01"}};
  EXPECT_EQ(pipelines::a1111_parameters(r),
            "a photo of sks dog <lora:sks_dog:0.8> <lora:style:1> <lora:detail:-0.5>\nSteps: 25, Sampler: DPM++ 2M "
            "Karras, CFG scale: 7.5, Seed: 42, Size: 512x768, Model hash: 0123456789, Model: sd15, Clip skip: 2, "
            "Lora hashes: \"sks_dog: 0123456789ab, detail: ba7816bf8f01\", Version: dreambooth " DREAMBOOTH_VERSION);
}
