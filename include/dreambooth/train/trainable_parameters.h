// Which parameters a run trains: ONE decision, made by select_trainable_parameters() from the options.
// Everything downstream (the optimizer and its state, gradient clipping, checkpoints and resume) works
// off the returned value, by name, and never asks the options again.
//
// Full fine-tuning trains every UNet parameter, plus every text-encoder parameter with --train-text-encoder.
// LoRA (--lora) injects low-rank adapters (lora/network.h) and trains only them, under their kohya file keys
// ("lora_unet_..._to_q.lora_down.weight"); every base weight stays frozen (no gradient, no optimizer state).
// The loop is the same for both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/lora/network.h"
#include "dreambooth/train/options.h"

namespace dreambooth::train {

// Name prefixes that keep the components' keys apart.
inline constexpr const char* kUnetPrefix = "unet.";
inline constexpr const char* kTextEncoderPrefix = "text_encoder.";

struct TrainableParameters {
  // Unique, stable names ("unet.<diffusers key>", "text_encoder.<transformers key>") and the tensors the
  // optimizer updates (requires_grad is set on exactly these).
  std::vector<io::NamedTensor> parameters;
  // Modules put in train mode while training (every other module is in eval mode).
  std::vector<std::shared_ptr<torch::nn::Module>> train_modules;
  // Some trained tensor lives in the text encoder: its outputs cannot be cached.
  bool text_encoder_trains = false;
  std::string method = "full";  // "full" fine-tuning (the final model is the modules themselves) or "lora"
  // With --lora: the injected adapters (attached to the model's layers; what the run saves). Null otherwise.
  lora::LoraNetwork lora_network{nullptr};

  std::vector<at::Tensor> tensors() const;
  int64_t numel() const;
  const at::Tensor* find(const std::string& name) const;
};

// Freezes every parameter of the model (requires_grad false), then selects and unfreezes what the
// options train; with --lora it first injects the adapters (from lora_config(options)) into the model.
// The model's UNet (and text encoder with --train-text-encoder) must be loaded.
TrainableParameters select_trainable_parameters(const TrainOptions& options, const checkpoint::StableDiffusion& model);

// train(true) on the trained modules and eval() on every other loaded module, or eval() everywhere.
void set_training_mode(const checkpoint::StableDiffusion& model, const TrainableParameters& trainable, bool training);

}  // namespace dreambooth::train
