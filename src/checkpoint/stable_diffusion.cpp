#include "dreambooth/checkpoint/stable_diffusion.h"

#include <algorithm>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/core/huge_pages.h"

namespace dreambooth::checkpoint {
namespace {

TensorMap parameters_of(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out.emplace(p.key(), p.value());
  return out;
}

// Moves a module's CPU parameters (all of one dtype) into one 2 MiB-aligned block of transparent huge
// pages. Each parameter allocated on its own shares its first and last 2 MiB with other memory, so
// those parts fault in 4 KiB at a time, and on some virtual machines a first-touch fault costs ~20 us:
// for SD1.5 that was seconds of a load. The block holds no data yet (the loader fills it).
void pack_parameters_in_huge_pages(torch::nn::Module& module) {
  constexpr int64_t kAlignBytes = 64;
  std::vector<at::Tensor> parameters = module.parameters(true);
  if (parameters.empty() || !parameters[0].device().is_cpu()) return;
  const c10::ScalarType dtype = parameters[0].scalar_type();
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  std::vector<int64_t> offsets;  // in elements
  int64_t total = 0;
  for (const at::Tensor& p : parameters) {
    if (!p.device().is_cpu() || p.scalar_type() != dtype) return;
    offsets.push_back(total);
    total += (p.numel() * element + kAlignBytes - 1) / kAlignBytes * kAlignBytes / element;
  }
  // Whole huge pages, so the block's last one is a huge page too.
  const size_t used = static_cast<size_t>(total * element);
  const size_t bytes = std::max(kHugePageBytes, (used + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes);
  void* block_memory = map_huge_page_aligned(bytes);
  if (!block_memory) return;  // keep the separate allocations
  at::Tensor block = at::from_blob(
      block_memory, {total}, [bytes](void* memory) { unmap_pages(memory, bytes); },
      at::TensorOptions().dtype(dtype).device(c10::kCPU));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i)
    parameters[i].set_data(block.narrow(0, offsets[i], parameters[i].numel()).view(parameters[i].sizes()));
}

}  // namespace

void load_component(torch::nn::Module& module, const ComponentSource& source, Component component,
                    c10::ScalarType dtype, c10::Device device) {
  // The layers allocate without initialising, so this only moves empty storage; the pages are first
  // touched by the copies below.
  module.to(device, dtype);
  // The VAE keeps separate allocations: sampling on the CPU re-lays its conv weights channels-last one
  // by one (models::use_channels_last), which would leave their packed copies allocated.
  if (component != Component::Vae) pack_parameters_in_huge_pages(module);
  ParameterMap parameters;
  for (const auto& p : module.named_parameters(true)) parameters.emplace(p.key(), p.value());
  load_parameters(source.plan, source.files, parameters, component_name(component));
}

StableDiffusion load_stable_diffusion(const LoadOptions& options) {
  if (!c10::isFloatingType(options.dtype))
    throw usage_error(std::string("cannot load weights as ") + c10::toString(options.dtype),
                      "use float32, float16 or bfloat16");
  OpenOptions open;
  open.prediction_type = options.prediction_type;
  open.components = options.components;
  open.prefer_fp16_variant = options.dtype == c10::kHalf;
  CheckpointSource source = open_checkpoint(options.path, open);

  StableDiffusion model;
  model.description = source.description;
  const ModelDescription& d = model.description;
  if (options.components.unet) {
    model.unet = models::UNet2DConditionModel(d.unet);
    load_component(*model.unet, source.components.unet, Component::Unet, options.dtype, options.device);
  }
  if (options.components.vae) {
    model.vae = models::AutoencoderKL(d.vae);
    load_component(*model.vae, source.components.vae, Component::Vae, options.dtype, options.device);
  }
  if (options.components.text_encoder) {
    model.text_encoder = models::ClipTextModel(d.text_encoder);
    load_component(*model.text_encoder, source.components.text_encoder, Component::TextEncoder, options.dtype,
                   options.device);
  }
  model.ldm_extras = extra_views(source);
  return model;
}

CheckpointInfo describe_checkpoint(const std::filesystem::path& path, std::optional<PredictionType> prediction_type) {
  OpenOptions open;
  open.prediction_type = prediction_type;
  CheckpointSource source = open_checkpoint(path, open);
  CheckpointInfo info;
  info.description = source.description;
  for (Component c : kAllComponents) info.parameter_count[c] = component_parameter_count(info.description, c);
  info.extra_keys = source.extra_keys;
  return info;
}

PerComponent<TensorMap> model_tensors(const StableDiffusion& model) {
  PerComponent<TensorMap> out;
  if (model.unet) out.unet = parameters_of(*model.unet);
  if (model.vae) out.vae = parameters_of(*model.vae);
  if (model.text_encoder) out.text_encoder = parameters_of(*model.text_encoder);
  return out;
}

void save_single_file(const StableDiffusion& model, const std::filesystem::path& path, const WriteOptions& options) {
  write_single_file(model.description, model_tensors(model), model.ldm_extras, path, options);
}

void save_diffusers(const StableDiffusion& model, const std::filesystem::path& folder, const WriteOptions& options) {
  write_diffusers(model.description, model_tensors(model), model.ldm_extras, folder, options);
}

}  // namespace dreambooth::checkpoint
