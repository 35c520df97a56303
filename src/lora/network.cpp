#include "dreambooth/lora/network.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/models/init.h"

namespace dreambooth::lora {

using checkpoint::Component;

void LoraConfig::validate() const {
  if (rank < 1) throw usage_error("--lora-rank must be >= 1 (got " + std::to_string(rank) + ")");
  if (alpha && !(*alpha > 0.0)) throw usage_error("--lora-alpha must be > 0", "the default is the rank");
  if (!(dropout >= 0.0 && dropout < 1.0)) throw usage_error("--lora-dropout must be in [0, 1)");
  if (!unet && !text_encoder) throw usage_error("LoRA needs the UNet or the text encoder as a target");
}

LoraNetworkImpl::LoraNetworkImpl(const LoraConfig& config, std::vector<LoraModule> modules)
    : config_(config), modules_(std::move(modules)) {
  for (auto& m : modules_) m.adapter = register_module(m.site.kohya_name, m.adapter);
}

const LoraModule* LoraNetworkImpl::find(Component component, const std::string& path) const {
  for (const auto& m : modules_)
    if (m.site.component == component && m.site.path == path) return &m;
  return nullptr;
}

void LoraNetworkImpl::attach() {
  for (auto& m : modules_) {
    auto& slot = m.site.adapter();
    TORCH_CHECK(!slot || slot == m.adapter.ptr(), "layer ", m.site.path, " already has another adapter");
    slot = m.adapter.ptr();
  }
  attached_ = true;
}

void LoraNetworkImpl::detach() {
  for (auto& m : modules_)
    if (m.site.adapter() == m.adapter.ptr()) m.site.adapter().reset();
  attached_ = false;
}

void LoraNetworkImpl::merge_into_base() {
  torch::NoGradGuard no_grad;
  for (auto& m : modules_) {
    at::Tensor& weight = m.site.weight();
    const at::Tensor delta = m.adapter->weight_delta().to(weight.device());
    if (weight.scalar_type() == torch::kFloat)
      weight.add_(delta);
    else
      weight.copy_(weight.to(torch::kFloat).add_(delta));
  }
  detach();
}

void LoraNetworkImpl::set_multiplier(double multiplier) {
  for (auto& m : modules_) m.adapter->set_multiplier(multiplier);
}

LoraNetwork inject_lora(const models::UNet2DConditionModel& unet, const models::ClipTextModel& text_encoder,
                        const LoraConfig& config) {
  config.validate();
  if (config.unet && !unet) throw usage_error("LoRA on the UNet needs the UNet loaded");
  if (config.text_encoder && !text_encoder)
    throw usage_error("LoRA on the text encoder needs the text encoder loaded");
  const LoraSiteTable table(config.unet ? unet : models::UNet2DConditionModel(nullptr),
                            config.text_encoder ? text_encoder : models::ClipTextModel(nullptr));
  LoraAdapterOptions options;
  options.rank = config.rank;
  options.alpha = config.alpha_value();
  options.dropout = config.dropout;

  std::vector<LoraModule> modules;
  for (const LoraSite& site : table.sites()) {
    if (!is_lora_target(site.component, site.path, config.targets)) continue;
    const at::Tensor& weight = site.weight();
    const auto tensor_options = weight.options().dtype(config.dtype.value_or(weight.scalar_type())).requires_grad(false);
    LoraAdapter adapter(site.shape, options, tensor_options);
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(models::named_seed(config.seed, site.kohya_name));
    adapter->reset_parameters(config.init, generator);
    modules.push_back(LoraModule{site, adapter});
  }
  if (modules.empty()) throw usage_error("--lora-targets selects no layer of this model");
  LoraNetwork network(config, std::move(modules));
  network->attach();
  return network;
}

LoraNetwork inject_lora(const checkpoint::StableDiffusion& model, const LoraConfig& config) {
  return inject_lora(model.unet, model.text_encoder, config);
}

}  // namespace dreambooth::lora
