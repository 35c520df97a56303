#include "dreambooth/pipelines/text_to_image.h"

#include <chrono>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/core/process_memory.h"
#include "dreambooth/core/runtime.h"
#include "dreambooth/pipelines/noise.h"

namespace dreambooth::pipelines {
namespace {

c10::ScalarType dtype_of(const torch::nn::Module& module) { return module.parameters().front().scalar_type(); }
c10::Device device_of(const torch::nn::Module& module) { return module.parameters().front().device(); }

}  // namespace

TextToImage::TextToImage(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
                         schedulers::SchedulerConfig scheduler_config)
    : model_(model), tokenizer_(tokenizer), scheduler_config_(std::move(scheduler_config)) {
  if (!model_.unet || !model_.vae || !model_.text_encoder)
    throw Error(ErrorKind::Runtime, "text-to-image needs the UNet, the VAE and the text encoder");
}

int TextToImage::default_resolution() const {
  return model_.description.unet.sample_size * model_.description.vae.downscale_factor();
}

std::vector<int64_t> TextToImage::latent_shape(int width, int height) const {
  const int factor = model_.description.vae.downscale_factor();
  if (width <= 0 || height <= 0 || width % factor != 0 || height % factor != 0)
    throw usage_error("--width/--height " + std::to_string(width) + "x" + std::to_string(height) +
                          " must be positive multiples of " + std::to_string(factor),
                      "e.g. " + std::to_string(default_resolution()) + "x" + std::to_string(default_resolution()));
  return {1, model_.description.unet.in_channels, height / factor, width / factor};
}

at::Tensor TextToImage::run_text_encoder(const PromptKey& key) const {
  const auto& [prompt, negative_prompt, clip_skip, guidance] = key;
  if (!model_.text_encoder)
    throw Error(ErrorKind::Runtime, "the text encoder was released and this prompt was not encoded before: \"" +
                                        prompt + "\"");
  const int max_length = model_.description.text_encoder.max_position_embeddings;
  std::vector<std::string> texts;
  if (guidance) texts.push_back(negative_prompt);
  texts.push_back(prompt);
  const c10::Device device = device_of(*model_.text_encoder);
  at::Tensor ids = tokenizer_.encode_batch(texts, max_length).to(device);
  return model_.text_encoder->encode_prompt(ids, clip_skip);  // [1|2, L, D]
}

at::Tensor TextToImage::encode_prompt(const std::string& prompt, const std::string& negative_prompt, int clip_skip,
                                      bool guidance, int64_t batch) const {
  const PromptKey key{prompt, negative_prompt, clip_skip, guidance};
  auto found = remembered_prompts_.find(key);
  const at::Tensor states = found != remembered_prompts_.end() ? found->second : run_text_encoder(key);
  // [uncond x B; cond x B], the reference's order for num_images_per_prompt = B.
  return states.repeat_interleave(batch, 0);
}

double TextToImage::remember_prompt(const std::string& prompt, const std::string& negative_prompt, int clip_skip,
                                    bool guidance) {
  const PromptKey key{prompt, negative_prompt, clip_skip, guidance};
  if (remembered_prompts_.count(key)) return 0.0;
  const auto start = std::chrono::steady_clock::now();
  remembered_prompts_[key] = run_text_encoder(key);
  synchronize(device_of(*model_.text_encoder));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void TextToImage::release_text_encoder() { model_.text_encoder = nullptr; }

const schedulers::SamplerInfo& TextToImage::sampler_for(const GenerationSettings& settings) const {
  if (settings.sampler) return *settings.sampler;
  return schedulers::sampler_for_class(scheduler_config_.class_name, "the model's scheduler config");
}

schedulers::Schedule TextToImage::schedule_for(const GenerationSettings& settings) const {
  const schedulers::SamplerInfo& sampler = sampler_for(settings);
  schedulers::validate_sampler_options(sampler, settings.schedule_options, settings.sampler_options);
  return schedulers::make_schedule(scheduler_config_, sampler.kind, settings.steps, settings.schedule_options);
}

at::Tensor TextToImage::denoise(const at::Tensor& embeddings, const at::Tensor& noise,
                                const GenerationSettings& settings, schedulers::NoiseSource& noise_source,
                                const schedulers::ProgressCallback& progress) const {
  const schedulers::SamplerInfo& sampler = sampler_for(settings);
  const schedulers::Schedule schedule = schedule_for(settings);
  const bool guidance = settings.guidance_scale > 1.0;
  const c10::Device device = device_of(*model_.unet);
  const c10::ScalarType unet_dtype = dtype_of(*model_.unet);
  const at::Tensor context = embeddings.to(device, unet_dtype);
  const double scale = settings.guidance_scale;

  // Latents stay float32 between steps; only the UNet runs in its own dtype.
  schedulers::Denoiser denoiser = [&](const at::Tensor& model_input, const at::Tensor& timestep) {
    at::Tensor input = guidance ? torch::cat({model_input, model_input}, 0) : model_input;
    at::Tensor output = model_.unet->forward(input.to(device, unet_dtype), timestep.to(device), context)
                            .to(torch::kFloat);
    if (observer_) observer_(input, timestep, output);
    if (!guidance) return output;
    auto halves = output.chunk(2, 0);  // [uncond, cond]
    return halves[0] + scale * (halves[1] - halves[0]);
  };
  at::Tensor x = schedulers::scale_initial_noise(schedule, noise.to(device, torch::kFloat));
  return sampler.function(denoiser, x, schedule, settings.sampler_options, noise_source, progress);
}

at::Tensor TextToImage::decode(const at::Tensor& latents) const {
  const c10::Device device = device_of(*model_.vae);
  const c10::ScalarType vae_dtype = dtype_of(*model_.vae);
  const double scaling_factor = model_.description.vae.scaling_factor;
  at::Tensor decoded = model_.vae->decode((latents / scaling_factor).to(device, vae_dtype));
  return (decoded.to(torch::kCPU, torch::kFloat) / 2 + 0.5).clamp(0, 1);
}

std::vector<io::Image> TextToImage::generate(const GenerationSettings& settings, const std::vector<uint64_t>& seeds,
                                             const StepCallback& on_step, GenerationTimings* timings) const {
  using Clock = std::chrono::steady_clock;
  const c10::Device device = device_of(*model_.unet);
  auto since = [&](Clock::time_point start) {
    synchronize(device);
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  GenerationTimings spent;
  const int64_t batch = static_cast<int64_t>(seeds.size());
  std::vector<int64_t> shape = latent_shape(settings.width, settings.height);
  shape[0] = batch;
  const bool guidance = settings.guidance_scale > 1.0;
  auto start = Clock::now();
  at::Tensor embeddings = encode_prompt(settings.prompt, settings.negative_prompt, settings.clip_skip, guidance, batch);
  spent.text_encoder = since(start);
  // The reference draws the initial latents first, then any per-step noise, from the same generator.
  PerImageNoise noise_source(seeds);
  at::Tensor noise = noise_source.randn(shape, torch::kFloat, torch::kCPU);
  schedulers::ProgressCallback progress = [&](const schedulers::StepProgress& p) {
    spent.steps = p.step + 1;
    if (on_step) on_step(p.step + 1, p.total);
  };
  start = Clock::now();
  at::Tensor latents = denoise(embeddings, noise, settings, noise_source, progress);
  spent.denoise = since(start);
  // The decoder's full-resolution tensors are fresh mappings: give it the pages the UNet's steps freed.
  if (device.is_cpu()) return_free_memory_to_os();
  start = Clock::now();
  at::Tensor decoded = decode(latents);
  spent.vae_decode = since(start);
  if (timings) *timings = spent;
  return to_images(decoded);
}

std::vector<io::Image> to_images(const at::Tensor& images) {
  // [B, 3, H, W] -> [B, H, W, 3] uint8, (x * 255).round() like diffusers' numpy_to_pil.
  at::Tensor bytes = (images.to(torch::kCPU, torch::kFloat) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
  bytes = bytes.permute({0, 2, 3, 1}).contiguous();
  std::vector<io::Image> out;
  for (int64_t i = 0; i < bytes.size(0); ++i) {
    io::Image image;
    image.height = static_cast<int>(bytes.size(1));
    image.width = static_cast<int>(bytes.size(2));
    const uint8_t* data = bytes[i].data_ptr<uint8_t>();
    image.pixels.assign(data, data + bytes[i].numel());
    out.push_back(std::move(image));
  }
  return out;
}

}  // namespace dreambooth::pipelines
