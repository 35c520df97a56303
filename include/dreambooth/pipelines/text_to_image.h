// Text-to-image with a loaded Stable Diffusion model, reproducing diffusers' StableDiffusionPipeline:
// prompt encoding (negative prompt "" = unconditional), classifier-free guidance batched as
// [uncond, cond], latents drawn by a NoiseSource and scaled by init_noise_sigma, a sampler from the
// registry, VAE decode of latents / scaling_factor, image = clamp(x / 2 + 0.5, 0, 1).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/io/image.h"
#include "dreambooth/schedulers/registry.h"
#include "dreambooth/schedulers/scheduler_config.h"
#include "dreambooth/text/tokenizer.h"

namespace dreambooth::pipelines {

struct GenerationSettings {
  std::string prompt;
  std::string negative_prompt;  // "" encodes the empty prompt: plain unconditional guidance
  int width = 512;
  int height = 512;
  int steps = 50;
  double guidance_scale = 7.5;  // <= 1 turns classifier-free guidance off (one UNet pass per step)
  int clip_skip = 0;
  const schedulers::SamplerInfo* sampler = nullptr;  // null = the model's own scheduler class
  schedulers::ScheduleOptions schedule_options;
  schedulers::SamplerOptions sampler_options;
};

// Where the time of one generate() call went (wall seconds; on CUDA the UNet figure includes queued work
// only as far as the sampler waits for it).
struct GenerationTimings {
  double text_encoder = 0;
  double denoise = 0;  // the whole sampler loop
  int steps = 0;        // sampler steps taken
  double vae_decode = 0;
};

// Called after every sampler step of a batch.
using StepCallback = std::function<void(int step, int total)>;
// Sees every UNet call: its (guidance-batched) input, the timestep and the raw output. For tests and
// debugging; empty by default.
using UNetObserver = std::function<void(const at::Tensor& input, const at::Tensor& timestep, const at::Tensor& output)>;

class TextToImage {
 public:
  // The model's three components must be loaded; its VAE may be in another dtype (upcast) than the UNet.
  // The VAE's encoder may have been released.
  TextToImage(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
              schedulers::SchedulerConfig scheduler_config);

  // [uncond; cond] rows (uncond only when guidance is on), each repeated `batch` times: [(1|2)*B, L, D].
  at::Tensor encode_prompt(const std::string& prompt, const std::string& negative_prompt, int clip_skip,
                           bool guidance, int64_t batch = 1) const;

  // Encodes a prompt pair now and keeps its states, so that later generate() calls with it need no text
  // encoder. Returns the seconds the encoding took.
  double remember_prompt(const std::string& prompt, const std::string& negative_prompt, int clip_skip, bool guidance);
  // Drops this pipeline's reference to the text encoder (~0.5 GB for SD1.5 in fp32; freed once the caller
  // drops its own): only remembered prompts can be generated afterwards.
  void release_text_encoder();

  const schedulers::SamplerInfo& sampler_for(const GenerationSettings& settings) const;
  schedulers::Schedule schedule_for(const GenerationSettings& settings) const;

  // Runs the sampler from standard-normal `noise` [B, C, h, w] (multiplied by init_noise_sigma here) and
  // returns the final latents (float32). `embeddings` from encode_prompt with batch B.
  at::Tensor denoise(const at::Tensor& embeddings, const at::Tensor& noise, const GenerationSettings& settings,
                     schedulers::NoiseSource& noise_source, const schedulers::ProgressCallback& progress = {}) const;

  // Latents -> images in [0, 1], [B, 3, H, W] float32 on the CPU.
  at::Tensor decode(const at::Tensor& latents) const;

  // The whole run for one batch: image i uses its own generator seeded with seeds[i].
  std::vector<io::Image> generate(const GenerationSettings& settings, const std::vector<uint64_t>& seeds,
                                  const StepCallback& on_step = {}, GenerationTimings* timings = nullptr) const;

  void set_unet_observer(UNetObserver observer) { observer_ = std::move(observer); }

  // Width/height the model was trained at (UNet sample_size x VAE factor).
  int default_resolution() const;
  // Latent shape for one image of width x height; usage error unless both are positive multiples of 8.
  std::vector<int64_t> latent_shape(int width, int height) const;

 private:
  using PromptKey = std::tuple<std::string, std::string, int, bool>;  // prompt, negative, clip skip, guidance
  at::Tensor run_text_encoder(const PromptKey& key) const;

  checkpoint::StableDiffusion model_;  // shares the modules with the caller
  std::map<PromptKey, at::Tensor> remembered_prompts_;  // [1|2, L, D]
  const text::Tokenizer& tokenizer_;
  schedulers::SchedulerConfig scheduler_config_;
  UNetObserver observer_;
};

// [B, 3, H, W] in [0, 1] -> 8-bit RGB images, round(255 x) as the reference does.
std::vector<io::Image> to_images(const at::Tensor& images);

}  // namespace dreambooth::pipelines
