// PNDM with skip_prk_steps, i.e. PLMS (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on
// Manifolds"), as diffusers' PNDMScheduler.
//
// The schedule has N + 1 evaluations with the second timestep repeated. Evaluation 0 takes an Euler-like
// step t0 -> t1 and remembers x_t0; evaluation 1 (t1 again) restarts from x_t0 with the mean of both
// outputs (a Heun-like step) and is not kept; later evaluations use Adams-Bashforth on the last 2, 3 and
// then 4 stored outputs: (3, -1)/2, (23, -16, 5)/12, (55, -59, 37, -9)/24.
#pragma once

#include <vector>

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

struct PlmsHistory {
  std::vector<at::Tensor> model_outputs;  // the stored outputs ("ets"), oldest first, at most 4
  at::Tensor first_sample;                // x_t0, held between evaluations 0 and 1
};

struct PndmStepResult {
  at::Tensor prev_sample;
  PlmsHistory history;  // pass to the next step
};

// The transfer of eq. 11 from x_t to x_prev with noise estimate `eps` (a v output is converted first):
//   x_prev = sqrt(a_prev/a_t) x_t - (a_prev - a_t) eps / (a_t sqrt(1 - a_prev) + sqrt(a_t (1 - a_t) a_prev)).
at::Tensor pndm_transfer(const Schedule& schedule, const at::Tensor& sample, int64_t t, int64_t prev_t,
                         const at::Tensor& model_output);

// Evaluation i of the PLMS scheme; `history` is what step i - 1 returned (empty for i = 0).
PndmStepResult pndm_step(const Schedule& schedule, int i, const at::Tensor& sample, const at::Tensor& model_output,
                         const PlmsHistory& history);

at::Tensor sample_pndm(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress);

}  // namespace dreambooth::schedulers
