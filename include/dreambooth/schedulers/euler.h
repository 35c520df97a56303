// Euler and Euler ancestral in the sigma parameterisation (Karras et al. 2022, Algorithm 1 without churn;
// k-diffusion's sample_euler / sample_euler_ancestral), as diffusers' EulerDiscreteScheduler and
// EulerAncestralDiscreteScheduler. x = x0 + sigma eps; the model sees x / sqrt(sigma^2 + 1).
#pragma once

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

// x / sqrt(sigma_i^2 + 1): the model input at step i (also LMS).
at::Tensor sigma_scale_model_input(const Schedule& schedule, int i, const at::Tensor& sample);

// x0 from the model output at noise level sigma: epsilon x - sigma eps; v: x/(sigma^2+1) - sigma v/sqrt(sigma^2+1);
// sample: the output itself (also LMS).
at::Tensor sigma_denoised(PredictionType prediction, const at::Tensor& sample, const at::Tensor& model_output,
                          float sigma);

// d = (x - x0) / sigma_i;  x_next = x + d (sigma_{i+1} - sigma_i). Computed in float32, returned in the
// model output's dtype.
StepResult euler_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& model_output);

// sigma_up = sqrt(s_to^2 (s_from^2 - s_to^2) / s_from^2), sigma_down = sqrt(s_to^2 - sigma_up^2);
// x_next = x + d (sigma_down - sigma_i) + sigma_up z, z = `noise` of the sample's shape.
StepResult euler_ancestral_step(const Schedule& schedule, int i, const at::Tensor& sample,
                                const at::Tensor& model_output, const at::Tensor& noise);

// Like diffusers, draws (and does not use) one randn of the model output's shape per step, so a shared
// generator advances the same way.
at::Tensor sample_euler(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                        NoiseSource& noise, const ProgressCallback& progress);
// One randn of the model output's shape per step, after the model call.
at::Tensor sample_euler_ancestral(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule,
                                  const SamplerOptions& options, NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
