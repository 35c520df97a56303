// DDIM (Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models"), as diffusers' DDIMScheduler.
#pragma once

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

// Eq. 12 from timestep t = schedule.timesteps[i] to t - T // N:
//   x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - s^2) eps + s z,  s = eta sqrt((1 - a_prev)/(1 - a_t) (1 - a_t/a_prev)).
// The last step uses alphas_cumprod[0] (or 1 with set_alpha_to_one) as a_prev. `variance_noise` z
// (sample's shape) is needed when eta > 0.
StepResult ddim_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& model_output,
                     double eta = 0.0, const at::Tensor& variance_noise = {});

// With eta > 0 one randn of the model output's shape is drawn per step, after the model call.
at::Tensor sample_ddim(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
