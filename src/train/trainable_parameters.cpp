#include "dreambooth/train/trainable_parameters.h"

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::train {
namespace {

void freeze(torch::nn::Module* module) {
  if (!module) return;
  for (auto& p : module->parameters()) p.requires_grad_(false);
}

void add_module_parameters(TrainableParameters& out, const std::shared_ptr<torch::nn::Module>& module,
                           const std::string& prefix) {
  for (auto& item : module->named_parameters()) {
    item.value().requires_grad_(true);
    out.parameters.push_back({prefix + item.key(), item.value()});
  }
  out.train_modules.push_back(module);
}

}  // namespace

std::vector<at::Tensor> TrainableParameters::tensors() const {
  std::vector<at::Tensor> out;
  out.reserve(parameters.size());
  for (const auto& p : parameters) out.push_back(p.tensor);
  return out;
}

int64_t TrainableParameters::numel() const {
  int64_t n = 0;
  for (const auto& p : parameters) n += p.tensor.numel();
  return n;
}

const at::Tensor* TrainableParameters::find(const std::string& name) const {
  for (const auto& p : parameters)
    if (p.name == name) return &p.tensor;
  return nullptr;
}

TrainableParameters select_trainable_parameters(const TrainOptions& options, const checkpoint::StableDiffusion& model) {
  if (!model.unet) throw Error(ErrorKind::Runtime, "training needs the UNet loaded");
  freeze(model.unet.ptr().get());
  freeze(model.vae ? model.vae.ptr().get() : nullptr);
  freeze(model.text_encoder ? model.text_encoder.ptr().get() : nullptr);

  TrainableParameters out;
  if (options.train_text_encoder && !model.text_encoder)
    throw Error(ErrorKind::Runtime, "--train-text-encoder needs the text encoder loaded");
  if (options.lora) {
    const lora::LoraConfig config = lora_config(options);
    out.lora_network = lora::inject_lora(model, config);
    for (auto& item : out.lora_network->named_parameters()) {
      item.value().requires_grad_(true);
      out.parameters.push_back({item.key(), item.value()});
    }
    out.train_modules = {out.lora_network.ptr()};
    out.text_encoder_trains = config.text_encoder;
    out.method = "lora";
    return out;
  }
  out.method = "full";
  add_module_parameters(out, model.unet.ptr(), kUnetPrefix);
  if (options.train_text_encoder) {
    add_module_parameters(out, model.text_encoder.ptr(), kTextEncoderPrefix);
    out.text_encoder_trains = true;
  }
  return out;
}

void set_training_mode(const checkpoint::StableDiffusion& model, const TrainableParameters& trainable, bool training) {
  if (model.unet) model.unet->eval();
  if (model.vae) model.vae->eval();
  if (model.text_encoder) model.text_encoder->eval();
  // Adapter modules are no part of the model's modules: they are switched both ways here.
  for (const auto& module : trainable.train_modules) module->train(training);
}

}  // namespace dreambooth::train
