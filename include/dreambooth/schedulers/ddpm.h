// DDPM ancestral sampling (Ho, Jain, Abbeel 2020), as diffusers' DDPMScheduler.
#pragma once

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

// Posterior q(x_prev | x_t, x0) mean (eq. 7) plus sigma z, from t = schedule.timesteps[i] to t - T // N;
// a_prev = 1 past the first timestep. sigma^2 follows config.variance_type (fixed_small:
// (1 - a_prev)/(1 - a_t) beta_t, fixed_large: beta_t with beta_t = 1 - a_t/a_prev). `variance_noise` z is
// used when t > 0.
StepResult ddpm_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& model_output,
                     const at::Tensor& variance_noise);

// Draws one randn of the model output's shape per step with t > 0, after the model call.
at::Tensor sample_ddpm(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
