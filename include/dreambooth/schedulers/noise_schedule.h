// The training noise schedule: betas, alphas and their cumulative product, float32 exactly as diffusers
// computes them, and the training helpers that read them (add_noise, v-prediction targets, SNR).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dreambooth/schedulers/scheduler_config.h"

namespace dreambooth::schedulers {

// An immutable value: the tensors are float32, CPU, length num_train_timesteps, and never written after
// construction (do not modify them in place).
class NoiseSchedule {
 public:
  // alphas = 1 - betas, alphas_cumprod = cumprod(alphas), both float32.
  explicit NoiseSchedule(at::Tensor betas);

  int num_train_timesteps() const { return static_cast<int>(alphas_cumprod_values_.size()); }
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas() const { return alphas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // alphas_cumprod[t] as the float32 value diffusers reads.
  float alpha_cumprod(int64_t t) const;
  const std::vector<float>& alphas_cumprod_values() const { return alphas_cumprod_values_; }

  // sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise, per batch element (timesteps: int64, shape [B]).
  at::Tensor add_noise(const at::Tensor& original, const at::Tensor& noise, const at::Tensor& timesteps) const;
  // The v-prediction target sqrt(acp[t]) noise - sqrt(1 - acp[t]) x0.
  at::Tensor get_velocity(const at::Tensor& sample, const at::Tensor& noise, const at::Tensor& timesteps) const;
  // (sqrt(acp) / sqrt(1 - acp))^2 at `timesteps`, float32, on the timesteps' device (diffusers
  // training_utils.compute_snr, for min-SNR loss weighting).
  at::Tensor snr(const at::Tensor& timesteps) const;
  // The k-diffusion noise level sqrt((1 - acp) / acp) for every training timestep, float32.
  at::Tensor sigmas() const;

 private:
  at::Tensor betas_;
  at::Tensor alphas_;
  at::Tensor alphas_cumprod_;
  std::vector<float> alphas_cumprod_values_;
};

// The one constructor from a config: beta_schedule (or trained_betas), then rescale_betas_zero_snr.
NoiseSchedule make_noise_schedule(const SchedulerConfig& config);

}  // namespace dreambooth::schedulers
