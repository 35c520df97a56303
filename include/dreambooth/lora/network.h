// A set of LoRA adapters injected into a model for training (or run-time application):
//
//   lora::LoraConfig config;
//   config.rank = 8;
//   config.targets = lora::LoraTargets::AttentionFeedForward;
//   config.text_encoder = true;
//   lora::LoraNetwork network = lora::inject_lora(model, config);  // attached: the model now runs with them
//   optimizer(network->parameters());    // the trainable parameters; the base weights are left as they are
//   lora::save_lora(*network, "out/lora.safetensors", lora::LoraFormat::Kohya, metadata);
//
// Every adapter is a registered child named by its kohya module name, so `network->named_parameters()`
// yields exactly kohya's file keys ("lora_unet_..._to_q.lora_down.weight", "....lora_up.weight"), stable
// across runs. Injection does not touch the base weights or their requires_grad flags (freezing them is
// the trainer's decision).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/lora/adapter.h"
#include "dreambooth/lora/sites.h"

namespace dreambooth::lora {

struct LoraConfig {
  int64_t rank = 4;                // --lora-rank
  std::optional<double> alpha;     // --lora-alpha; default: rank (scale 1)
  double dropout = 0.0;            // --lora-dropout, on the rank activations while training
  LoraTargets targets = LoraTargets::Attention;  // --lora-targets
  bool unet = true;
  bool text_encoder = false;       // --train-text-encoder: adapters on its attention (and MLP for attn+ff/all-linear)
  LoraInit init = LoraInit::KaimingUniform;
  uint64_t seed = 0;               // down's initial values: per module, from the seed and the module's name
  std::optional<c10::ScalarType> dtype;  // of the adapters' parameters; default: each base weight's dtype

  double alpha_value() const { return alpha ? *alpha : static_cast<double>(rank); }
  // Usage errors naming the flag: rank >= 1, alpha > 0, 0 <= dropout < 1, at least one component.
  void validate() const;
};

// One adapter and the layer it is attached to.
struct LoraModule {
  LoraSite site;
  LoraAdapter adapter{nullptr};
};

class LoraNetworkImpl : public torch::nn::Module {
 public:
  LoraNetworkImpl(const LoraConfig& config, std::vector<LoraModule> modules);

  const LoraConfig& config() const { return config_; }
  // Model order (UNet first); site.path and site.kohya_name name each one.
  const std::vector<LoraModule>& modules() const { return modules_; }
  const LoraModule* find(checkpoint::Component component, const std::string& path) const;

  // Hooks every adapter into its layer / removes them (the layers then compute the base model again).
  void attach();
  void detach();
  bool attached() const { return attached_; }

  // Adds each adapter's weight_delta() into its base weight (without autograd), then detaches: the model
  // computes what it computed with the adapters attached, at no extra cost.
  void merge_into_base();

  void set_multiplier(double multiplier);

 private:
  LoraConfig config_;
  std::vector<LoraModule> modules_;
  bool attached_ = false;
};
TORCH_MODULE(LoraNetwork);

// Creates adapters on every layer `config` selects (UNet and/or text encoder), initialised as
// config.init says (up = 0: the model's output is unchanged), on each layer's device, and attaches them.
// Usage error when config.text_encoder is set but the model has no text encoder loaded (or the same for
// the UNet).
LoraNetwork inject_lora(const models::UNet2DConditionModel& unet, const models::ClipTextModel& text_encoder,
                        const LoraConfig& config);
LoraNetwork inject_lora(const checkpoint::StableDiffusion& model, const LoraConfig& config);

}  // namespace dreambooth::lora
