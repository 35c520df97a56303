// A sampling schedule: what diffusers' `scheduler.set_timesteps(N)` computes, as an immutable value built
// by one function (timesteps, sigmas, init_noise_sigma and the training tables they come from).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/schedulers/scheduler_config.h"

namespace dreambooth::schedulers {

enum class SamplerKind { Ddim, Pndm, Euler, EulerAncestral, DpmSolverMultistep, Ddpm, Lms };

// "DDIMScheduler", ... : the diffusers class whose semantics a kind reproduces.
const char* diffusers_class_name(SamplerKind kind);
// Whether the diffusers 0.25.1 class accepts use_karras_sigmas (Euler, DPM-Solver, LMS).
bool supports_karras(SamplerKind kind);

// The dtype diffusers gives `scheduler.timesteps`, which is what the UNet receives.
enum class TimestepDtype { Int64, Float32, Float64 };

struct ScheduleOptions {
  // Karras sigmas: unset = the config's use_karras_sigmas (where the sampler supports it). true for a
  // sampler without Karras support is a usage error.
  std::optional<bool> karras;
};

struct Schedule {
  Schedule(SamplerKind kind, SchedulerConfig config, NoiseSchedule noise)
      : kind(kind), config(std::move(config)), noise(std::move(noise)) {}

  SamplerKind kind;
  // The config resolved for this sampler: class-dependent defaults filled in, use_karras_sigmas as used.
  SchedulerConfig config;
  NoiseSchedule noise;
  int num_inference_steps = 0;  // N as asked
  // One value per model evaluation (PNDM: N + 1). Exact in `timestep_dtype`.
  std::vector<double> timesteps;
  TimestepDtype timestep_dtype = TimestepDtype::Int64;
  // Sigma-based samplers (Euler, Euler ancestral, LMS, DPM-Solver): the float32 noise levels, one more than
  // the evaluations (the last is the target of the last step). Empty for DDIM, PNDM and DDPM.
  std::vector<float> sigmas;
  // The latents are drawn as N(0, 1) and multiplied by this (float32) before the first step.
  float init_noise_sigma = 1.0f;

  int size() const { return static_cast<int>(timesteps.size()); }
  // Timestep i as a 0-dim CPU tensor of `timestep_dtype` (what the denoiser / UNet receives).
  at::Tensor timestep(int i) const;
  // All timesteps as a 1-D CPU tensor of `timestep_dtype`.
  at::Tensor timesteps_tensor() const;
  // diffusers' DDIM/PNDM/DDPM previous-timestep rule: t - num_train_timesteps // N.
  int64_t previous_timestep(int64_t t) const;
};

// Builds the schedule of `kind` for `steps` inference steps (>= 1). Throws a usage error for a bad step
// count or an option the sampler does not support, a model error for config values it does not implement.
Schedule make_schedule(const SchedulerConfig& config, SamplerKind kind, int steps,
                       const ScheduleOptions& options = {});

// noise * init_noise_sigma: the first latents of a text-to-image run from N(0, 1) noise.
at::Tensor scale_initial_noise(const Schedule& schedule, const at::Tensor& noise);

}  // namespace dreambooth::schedulers
