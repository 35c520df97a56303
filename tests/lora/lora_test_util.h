// Models and inputs shared by the LoRA tests.
#pragma once

#include <string>

#include <torch/torch.h>

#include "dreambooth/checkpoint/presets.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/lora/network.h"
#include "dreambooth/models/init.h"
#include "support/golden.h"

namespace dreambooth::testing {

// Bit-identical: adding an exactly-zero update, or the same float32 arithmetic done twice, must not change
// a single bit.
inline constexpr double kLoraBitIdentical = 0.0;
// Merges and formulas computed by two float32 routes (e.g. folded alpha vs scaled product) differ by float32
// rounding of values of magnitude ~1.
inline constexpr double kLoraFloatRounding = 1e-6;
// Runtime adapters vs merged weights through the whole tiny UNet (~20 layers, outputs ~1): the same math
// with the LoRA product associated differently, float32 rounding compounded through the layers.
inline constexpr double kRuntimeVsMerged = 1e-5;

// The golden tiny-sd1 model (diffusers folder), float32 on the CPU.
inline checkpoint::StableDiffusion golden_tiny_model() {
  checkpoint::LoadOptions options;
  options.path = golden_path("tiny-sd1");
  return checkpoint::load_stable_diffusion(options);
}

enum class TinyShape {
  Sd1,         // the tiny preset: 1x1 conv proj_in/proj_out, cross-attention width 32
  Sd2,         // SD2-shaped: Linear proj_in/proj_out, per-block heads, gelu text encoder
  OtherWidth,  // another family: cross-attention and text width 48
};

// Random weights (deterministic for the seed), UNet and text encoder only.
inline checkpoint::StableDiffusion tiny_model(TinyShape shape, uint64_t seed) {
  checkpoint::StableDiffusion model;
  model.description = checkpoint::preset_description(checkpoint::Preset::Tiny);
  checkpoint::ModelDescription& d = model.description;
  if (shape == TinyShape::Sd2) {
    d.family = checkpoint::Family::Sd2;
    d.unet.use_linear_projection = true;
    d.unet.attention_head_dim = {2, 4};
    d.text_encoder.hidden_act = "gelu";
  } else if (shape == TinyShape::OtherWidth) {
    d.unet.cross_attention_dim = 48;
    d.text_encoder.hidden_size = 48;
  }
  model.unet = models::UNet2DConditionModel(d.unet);
  model.text_encoder = models::ClipTextModel(d.text_encoder);
  models::init_random_weights(*model.unet, seed);
  models::init_random_weights(*model.text_encoder, seed + 1);
  return model;
}

// Fills every adapter's up with seeded noise (a fresh adapter's up is zero, a no-op).
inline void randomize_lora_up(const lora::LoraNetwork& network, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (const auto& m : network->modules()) m.adapter->up.copy_(torch::randn(m.adapter->up.sizes()) * 0.1);
}

struct UNetInputs {
  at::Tensor sample, timestep, context;
};
inline UNetInputs tiny_unet_inputs(int64_t context_width = 32) {
  torch::manual_seed(1234);
  return {torch::randn({2, 4, 8, 8}), torch::tensor({999, 10}, torch::kLong), torch::randn({2, 77, context_width})};
}
inline at::Tensor run_unet(const checkpoint::StableDiffusion& model, const UNetInputs& in) {
  torch::NoGradGuard no_grad;
  return model.unet->forward(in.sample, in.timestep, in.context);
}
inline at::Tensor tiny_ids() {
  return torch::tensor({49406, 320, 1125, 539, 2368, 49407}, torch::kLong).unsqueeze(0);
}
inline at::Tensor run_text_encoder(const checkpoint::StableDiffusion& model) {
  torch::NoGradGuard no_grad;
  return model.text_encoder->forward(tiny_ids()).last_hidden_state;
}

// Every UNet and text-encoder parameter by component-qualified name (copies).
inline std::map<std::string, at::Tensor> lora_model_weights(const checkpoint::StableDiffusion& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.unet->named_parameters()) out["unet." + item.key()] = item.value().detach().clone();
  for (const auto& item : model.text_encoder->named_parameters())
    out["text_encoder." + item.key()] = item.value().detach().clone();
  return out;
}

}  // namespace dreambooth::testing
