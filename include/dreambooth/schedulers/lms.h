// Linear multistep in sigma (k-diffusion's sample_lms), as diffusers' LMSDiscreteScheduler (order 4):
//   x_{i+1} = x_i + sum_k c_k d_{i-k},  c_k = integral over [sigma_i, sigma_{i+1}] of the Lagrange basis
//   polynomial of sigma_{i-k} on the nodes sigma_i .. sigma_{i-order+1}.
#pragma once

#include <vector>

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

struct LmsStepResult {
  at::Tensor prev_sample;
  at::Tensor pred_original_sample;
  std::vector<at::Tensor> derivatives;  // oldest first, at most `order`; pass to the next step
};

// The coefficient c_k of the derivative k steps back, for step i with `order` nodes.
double lms_coefficient(const Schedule& schedule, int i, int order, int k);

// `derivatives` is what step i - 1 returned (empty for i = 0). The model input is sigma_scale_model_input.
LmsStepResult lms_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& model_output,
                       const std::vector<at::Tensor>& derivatives, int order = 4);

at::Tensor sample_lms(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                      NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
