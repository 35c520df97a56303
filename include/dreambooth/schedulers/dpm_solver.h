// DPM-Solver++ multistep, orders 1 and 2 (Lu et al. 2022, "DPM-Solver++", Algorithm 2), as diffusers'
// DPMSolverMultistepScheduler with algorithm_type "dpmsolver++". With alpha = 1/sqrt(sigma^2+1),
// sigma' = sigma alpha, lambda = log(alpha) - log(sigma') and h = lambda_{i+1} - lambda_i:
//   order 1: x_{i+1} = (sigma'_{i+1}/sigma'_i) x - alpha_{i+1} (e^-h - 1) D0
//   order 2: ... - 1/2 alpha_{i+1} (e^-h - 1) D1   (midpoint),  D1 = (D0 - D0_prev) h / h_prev
// where D0 is the data (x0) prediction of step i.
#pragma once

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

// The data prediction x0 from the model output at step i (diffusers' convert_model_output).
at::Tensor dpm_solver_data_prediction(const Schedule& schedule, int i, const at::Tensor& sample,
                                      const at::Tensor& model_output);

// The order step i uses: 1 for the first step, for solver_order 1, and for the last step when
// lower_order_final applies (fewer than 15 steps), euler_at_final is set or the final sigma is 0.
int dpm_solver_order(const Schedule& schedule, int i);

// One update from sigmas[i] to sigmas[i+1]; `previous_x0` (step i - 1's data prediction) is needed when
// dpm_solver_order(schedule, i) == 2.
at::Tensor dpm_solver_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& x0,
                           const at::Tensor& previous_x0);

at::Tensor sample_dpm_solver(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule,
                             const SamplerOptions& options, NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
