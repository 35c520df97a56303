// Types shared by every sampler. A sampler is a free function
//   Tensor sample_xxx(denoiser, x, schedule, options, noise, progress)
// that runs the whole loop; its multistep history is a local variable. Each step's math is also a pure
// function (`xxx_step`) that the loop calls and the tests check against diffusers step by step.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

#include "dreambooth/schedulers/noise_source.h"
#include "dreambooth/schedulers/schedule.h"

namespace dreambooth::schedulers {

// The model: raw output (epsilon, v or x0, per config.prediction_type) for the scaled model input at a
// timestep (a 0-dim CPU tensor in the schedule's timestep dtype). Classifier-free guidance lives inside.
using Denoiser = std::function<at::Tensor(const at::Tensor& model_input, const at::Tensor& timestep)>;

struct StepProgress {
  int step = 0;            // 0-based model evaluation index
  int total = 0;           // evaluations in the run (PNDM: steps + 1)
  double timestep = 0.0;   // the timestep just evaluated
  at::Tensor latents;      // the sample after this step
  at::Tensor denoised;     // the step's x0 prediction where the sampler forms one, else undefined
};
// Called after every step. Throwing from it (e.g. on Ctrl-C) stops the run.
using ProgressCallback = std::function<void(const StepProgress&)>;

struct SamplerOptions {
  double eta = 0.0;  // DDIM only: 0 = deterministic DDIM, 1 = DDPM-like ancestral noise
};

struct StepResult {
  at::Tensor prev_sample;
  at::Tensor pred_original_sample;  // undefined where the step does not form it
};

using SamplerFunction = at::Tensor (*)(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule,
                                       const SamplerOptions& options, NoiseSource& noise,
                                       const ProgressCallback& progress);

// Throws unless `schedule` was built for `kind` (a programming error, not a user one).
void require_kind(const Schedule& schedule, SamplerKind kind);
// Calls `progress` (if set) for step i.
void report_step(const ProgressCallback& progress, const Schedule& schedule, int i, const at::Tensor& latents,
                 const at::Tensor& denoised);

}  // namespace dreambooth::schedulers
