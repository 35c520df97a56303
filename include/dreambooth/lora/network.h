// A set of LoRA adapters injected into a model for training (or run-time application).
//
// How `dreambooth train --lora` uses it (train::select_trainable_parameters, after freezing every base weight):
//
//   lora::LoraConfig config;                      // from --lora-rank/--lora-alpha/--lora-dropout/--lora-targets
//   config.text_encoder = options.train_text_encoder;
//   config.seed = *options.seed;                  // down's initial values
//   config.dtype = c10::kFloat;                   // adapters train in float32 whatever the base's dtype
//   lora::LoraNetwork network = lora::inject_lora(model, config);  // attached: the model now runs with them
//   for (auto& p : network->named_parameters()) trainable.parameters.push_back({p.key(), p.value()});
//   trainable.train_modules = {network.ptr()};    // dropout on while training; the base modules stay in eval
//   trainable.text_encoder_trains = config.text_encoder;
//   ...
//   lora::save_lora(network, OUTPUT / "lora.safetensors", {format, c10::kHalf, lora::kohya_metadata(network, info)});
//
// Every adapter is a registered child named by its kohya module name, so `network->named_parameters()`
// yields exactly kohya's file keys ("lora_unet_..._to_q.lora_down.weight", "....lora_up.weight"), stable
// across runs: run checkpoints and resume can key the tensors and their optimizer state by these names
// (inject with the same config, then overwrite the tensors from the checkpoint). Injection does not touch
// the base weights or their requires_grad flags (freezing them is the trainer's decision). Validation
// images sampled while the network is attached (in eval mode) use the adapters.
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
