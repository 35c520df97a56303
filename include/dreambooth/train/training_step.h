// One DreamBooth training step, exactly as the reference computes it (train_dreambooth.py with
// --with_prior_preservation), as a function of explicit inputs so tests can inject the golden ones:
//
//   latents      = posterior.mean + posterior.std * posterior_eps     (vae.encode(x).latent_dist.sample())
//   model_input  = latents * scaling_factor
//   noisy        = sqrt(acp[t]) model_input + sqrt(1 - acp[t]) noise  (DDPM add_noise)
//   model_pred   = unet(noisy, t, text_encoder(ids))
//   target       = noise (epsilon) | sqrt(acp[t]) noise - sqrt(1 - acp[t]) model_input (v_prediction)
//   rows [0, num_instance) are the instance examples, the rest the class examples:
//   loss         = mse(instance) + prior_loss_weight * mse(prior)      (float32, mean over elements)
//
// With --snr-gamma the instance term is min-SNR weighted as train_dreambooth.py does it:
// w = min(snr, gamma) / snr (+ 1 for v-prediction), mean over each example, times its w, mean over
// examples; the weights use the instance rows' own timesteps (the reference multiplies by the whole
// batch's weights, which only broadcasts for batch size 1 and then averages in the class rows' weights).
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "dreambooth/checkpoint/types.h"
#include "dreambooth/models/autoencoder_kl.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/options.h"

namespace dreambooth::checkpoint {
struct StableDiffusion;
}

namespace dreambooth::train {

// Shared module handles (`mutable`, as in checkpoint::StableDiffusion: running them does not change the bundle).
struct StepModels {
  mutable models::UNet2DConditionModel unet{nullptr};
  mutable models::AutoencoderKL vae{nullptr};           // may be null when StepBatch carries latent statistics
  mutable models::ClipTextModel text_encoder{nullptr};  // may be null when StepBatch carries text embeddings
  const schedulers::NoiseSchedule* noise_schedule = nullptr;
  checkpoint::PredictionType prediction_type = checkpoint::PredictionType::Epsilon;
  double scaling_factor = 0.18215;
  MixedPrecision mixed_precision = MixedPrecision::No;  // autocast around the UNet/text encoder (CUDA)
};

// The step's view of a loaded model, sharing its modules (and so its null text encoder or VAE, when freed);
// `schedule` must outlive it.
StepModels step_models_of(const checkpoint::StableDiffusion& model, const schedulers::NoiseSchedule& schedule,
                          MixedPrecision mixed_precision = MixedPrecision::No);

// N examples: instance rows first, then class rows.
struct StepBatch {
  // Images: either pixel_values [N, 3, H, W] in [-1, 1] (encoded by the VAE here), or the VAE
  // posterior's mean and std [N, C, h, w] (--cache-latents).
  at::Tensor pixel_values;
  at::Tensor latent_mean;
  at::Tensor latent_std;
  // Text: either input_ids [N, L] (run through the text encoder), or encoder_hidden_states [N, L, D]
  // (cached, frozen text encoder).
  at::Tensor input_ids;
  at::Tensor encoder_hidden_states;
  int64_t num_instance = 0;  // = N without prior preservation
};

// The step's random draws, all on the CPU or the model's device.
struct StepNoise {
  at::Tensor posterior_eps;  // [N, C, h, w]
  at::Tensor noise;          // [N, C, h, w]
  at::Tensor timesteps;      // int64 [N], in [0, num_train_timesteps)
};

// Draws, in the reference's order, from `generator` on the CPU: posterior eps, noise (+ offset_noise *
// randn(N, C, 1, 1) when offset_noise > 0), timesteps uniform in [0, num_train_timesteps).
StepNoise draw_step_noise(at::Generator& generator, at::IntArrayRef latent_shape, int num_train_timesteps,
                          double offset_noise);

struct LossOptions {
  double prior_loss_weight = 1.0;  // used when the batch has class rows
  std::optional<double> snr_gamma;
};

// Tensors of the step, for tests and diagnostics.
struct StepRecord {
  at::Tensor model_input;
  at::Tensor noisy_model_input;
  at::Tensor encoder_hidden_states;
  at::Tensor model_pred;
  at::Tensor target;
};

struct StepLosses {
  at::Tensor loss;           // scalar float32 with the graph attached: call backward() on it (scaled)
  at::Tensor instance_loss;  // detached scalars
  at::Tensor prior_loss;     // undefined without class rows
};

// The forward pass and the loss (no backward, no optimizer). Gradients flow to whatever parameters of
// the UNet / text encoder require them (the trainable-parameter selection decides which).
StepLosses step_loss(const StepModels& models, const StepBatch& batch, const StepNoise& noise,
                     const LossOptions& options, StepRecord* record = nullptr);

}  // namespace dreambooth::train
