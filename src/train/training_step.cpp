#include "dreambooth/train/training_step.h"

#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/train/mixed_precision.h"

namespace dreambooth::train {
namespace {

c10::Device device_of(const torch::nn::Module& module) { return module.parameters().front().device(); }
c10::ScalarType dtype_of(const torch::nn::Module& module) { return module.parameters().front().scalar_type(); }

// Per-example weights of the instance term: min(snr, gamma) / snr, + 1 for v-prediction.
at::Tensor min_snr_weights(const schedulers::NoiseSchedule& schedule, const at::Tensor& timesteps, double gamma,
                           checkpoint::PredictionType prediction_type) {
  const at::Tensor snr = schedule.snr(timesteps);
  at::Tensor weights = torch::minimum(snr, torch::full_like(snr, gamma)) / snr;
  if (prediction_type == checkpoint::PredictionType::VPrediction) weights = weights + 1;
  return weights;
}

}  // namespace

StepNoise draw_step_noise(at::Generator& generator, at::IntArrayRef latent_shape, int num_train_timesteps,
                          double offset_noise) {
  StepNoise out;
  const auto options = torch::TensorOptions().dtype(torch::kFloat);
  out.posterior_eps = torch::randn(latent_shape, generator, options);
  out.noise = torch::randn(latent_shape, generator, options);
  if (offset_noise > 0) {
    // [N, C, 1, 1] broadcast over the pixels: a per-channel shift of the noise.
    out.noise = out.noise + offset_noise * torch::randn({latent_shape[0], latent_shape[1], 1, 1}, generator, options);
  }
  out.timesteps = torch::randint(0, num_train_timesteps, {latent_shape[0]}, generator, torch::kLong);
  return out;
}

StepModels step_models_of(const checkpoint::StableDiffusion& model, const schedulers::NoiseSchedule& schedule,
                          MixedPrecision mixed_precision) {
  StepModels models;
  models.unet = model.unet;
  models.vae = model.vae;
  models.text_encoder = model.text_encoder;
  models.noise_schedule = &schedule;
  models.prediction_type = model.description.prediction_type;
  models.scaling_factor = model.description.vae.scaling_factor;
  models.mixed_precision = mixed_precision;
  return models;
}

StepLosses step_loss(const StepModels& models, const StepBatch& batch, const StepNoise& noise,
                     const LossOptions& options, StepRecord* record) {
  if (!models.unet || !models.noise_schedule) throw Error(ErrorKind::Runtime, "step_loss: no UNet or noise schedule");
  const c10::Device device = device_of(*models.unet);

  // --- latents: the VAE posterior (computed here or cached) sampled with the given eps, then scaled
  at::Tensor mean = batch.latent_mean;
  at::Tensor std = batch.latent_std;
  if (!mean.defined()) {
    if (!models.vae) throw Error(ErrorKind::Runtime, "step_loss: pixel values given but no VAE");
    torch::NoGradGuard no_grad;
    const models::LatentDistribution posterior =
        models.vae->encode(batch.pixel_values.to(device_of(*models.vae), dtype_of(*models.vae)));
    mean = posterior.mean;
    std = posterior.std;
  }
  const at::Tensor latents = (mean.to(device, torch::kFloat) + std.to(device, torch::kFloat) *
                                                                    noise.posterior_eps.to(device, torch::kFloat));
  const at::Tensor model_input = latents * models.scaling_factor;  // [N, C, h, w]
  const at::Tensor timesteps = noise.timesteps.to(device, torch::kLong);
  const at::Tensor eps = noise.noise.to(device, torch::kFloat);
  const at::Tensor noisy = models.noise_schedule->add_noise(model_input, eps, timesteps);

  // --- conditioning, then the UNet (autocast regions on CUDA with mixed precision)
  at::Tensor model_pred;
  at::Tensor encoder_hidden_states = batch.encoder_hidden_states;
  {
    AutocastScope autocast(models.mixed_precision, device);
    if (encoder_hidden_states.defined()) {
      encoder_hidden_states = encoder_hidden_states.to(device);
    } else {
      if (!models.text_encoder) throw Error(ErrorKind::Runtime, "step_loss: input ids given but no text encoder");
      encoder_hidden_states = models.text_encoder->encode_prompt(batch.input_ids.to(device, torch::kLong));
    }
    const c10::ScalarType unet_dtype = dtype_of(*models.unet);
    model_pred = models.unet->forward(noisy.to(unet_dtype), timesteps, encoder_hidden_states.to(unet_dtype));
  }
  const at::Tensor target = models.prediction_type == checkpoint::PredictionType::VPrediction
                                ? models.noise_schedule->get_velocity(model_input, eps, timesteps)
                                : eps;
  if (record) *record = {model_input, noisy, encoder_hidden_states, model_pred, target};

  // --- loss in float32: instance rows first, class rows after
  const int64_t n = model_pred.size(0);
  const int64_t ni = batch.num_instance > 0 ? batch.num_instance : n;
  const at::Tensor pred = model_pred.to(torch::kFloat);
  const at::Tensor tgt = target.to(torch::kFloat);
  const at::Tensor pred_instance = pred.slice(0, 0, ni);
  const at::Tensor target_instance = tgt.slice(0, 0, ni);

  StepLosses out;
  at::Tensor instance_loss;
  if (!options.snr_gamma) {
    instance_loss = torch::mse_loss(pred_instance, target_instance, at::Reduction::Mean);
  } else {
    const at::Tensor weights =
        min_snr_weights(*models.noise_schedule, timesteps.slice(0, 0, ni), *options.snr_gamma, models.prediction_type);
    const at::Tensor per_example = torch::mse_loss(pred_instance, target_instance, at::Reduction::None)
                                       .mean(std::vector<int64_t>{1, 2, 3});  // [ni]
    instance_loss = (per_example * weights).mean();
  }
  out.loss = instance_loss;
  out.instance_loss = instance_loss.detach();
  if (ni < n) {
    const at::Tensor prior_loss = torch::mse_loss(pred.slice(0, ni), tgt.slice(0, ni), at::Reduction::Mean);
    out.loss = instance_loss + options.prior_loss_weight * prior_loss;
    out.prior_loss = prior_loss.detach();
  }
  return out;
}

}  // namespace dreambooth::train
