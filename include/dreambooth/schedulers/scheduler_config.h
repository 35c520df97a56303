// Scheduler configuration: the union of the diffusers 0.25.1 scheduler_config.json fields used by the
// samplers we implement (DDIM, PNDM, Euler, Euler ancestral, DPM-Solver multistep, DDPM, LMS).
//
// Member defaults are diffusers' constructor defaults. A few keys have a default that depends on the
// scheduler class (timestep_spacing, clip_sample, set_alpha_to_one, skip_prk_steps, variance_type); those are
// optionals: `from_json` fills them from the file's own `_class_name` (as diffusers does when it loads the
// model's scheduler), and the ones still unset take the chosen sampler's default when a schedule is built,
// which is what `XxxScheduler.from_config(pipe.scheduler.config)` does in diffusers.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dreambooth::schedulers {

enum class BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2 };
enum class PredictionType { Epsilon, VPrediction, Sample };
enum class TimestepSpacing { Leading, Trailing, Linspace };
// DPM-Solver: only the noise-free "dpmsolver++" is implemented; the others are read so a config that
// names them loads, and fail when a DPM schedule is built from it.
enum class AlgorithmType { DpmSolverPlusPlus, DpmSolver, SdeDpmSolverPlusPlus, SdeDpmSolver };
enum class SolverType { Midpoint, Heun };
// Last sigma of a DPM-Solver schedule: sigma(t=0) (diffusers 0.25.1 behaviour) or 0 (newer diffusers).
enum class FinalSigmasType { SigmaMin, Zero };
enum class VarianceType { FixedSmall, FixedSmallLog, FixedLarge, FixedLargeLog, Learned, LearnedRange };

const char* to_string(BetaSchedule v);
const char* to_string(PredictionType v);
const char* to_string(TimestepSpacing v);
const char* to_string(AlgorithmType v);
const char* to_string(SolverType v);
const char* to_string(FinalSigmasType v);
const char* to_string(VarianceType v);

struct SchedulerConfig {
  std::string class_name;  // "_class_name": "PNDMScheduler", ...; empty when absent
  int num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  BetaSchedule beta_schedule = BetaSchedule::Linear;
  std::vector<double> trained_betas;  // empty: computed from beta_schedule
  bool rescale_betas_zero_snr = false;
  PredictionType prediction_type = PredictionType::Epsilon;
  std::optional<TimestepSpacing> timestep_spacing;  // DDIM/PNDM/DDPM: leading; others: linspace
  int steps_offset = 0;
  std::optional<bool> set_alpha_to_one;  // DDIM: true; PNDM: false
  std::optional<bool> clip_sample;       // DDIM/DDPM: true
  double clip_sample_range = 1.0;
  std::optional<bool> skip_prk_steps;  // PNDM: false (and we only implement true)
  // Euler / LMS / DPM-Solver.
  bool use_karras_sigmas = false;
  std::optional<double> sigma_min;  // Euler Karras range overrides
  std::optional<double> sigma_max;
  // DPM-Solver multistep.
  int solver_order = 2;
  AlgorithmType algorithm_type = AlgorithmType::DpmSolverPlusPlus;
  SolverType solver_type = SolverType::Midpoint;
  bool lower_order_final = true;
  bool euler_at_final = false;
  FinalSigmasType final_sigmas_type = FinalSigmasType::SigmaMin;
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  std::optional<VarianceType> variance_type;  // DDPM: fixed_small; DPM: none

  // The scheduler a single-file (original LDM) checkpoint implies, as diffusers' converter builds it:
  // scaled_linear 0.00085..0.012, 1000 steps, steps_offset 1, "leading", no clipping, set_alpha_to_one false;
  // SD1 -> PNDMScheduler (skip_prk_steps), SD2 -> DDIMScheduler. prediction_type stays epsilon: a v-model
  // (SD2 768-v) has to say so (the caller sets prediction_type from the yaml or a flag).
  static SchedulerConfig single_file_default(bool sd2);

  // Strict reading: unknown keys warn, wrong types are input errors, unsupported values model errors.
  // `source` names the file in messages.
  static SchedulerConfig from_json(const nlohmann::json& json, const std::string& source);
  // Reads a scheduler_config.json; accepts Python's NaN/Infinity/-Infinity (diffusers writes
  // "lambda_min_clipped": -Infinity).
  static SchedulerConfig from_file(const std::string& path);
  // Every set field (unset optionals and the default lambda_min_clipped = -inf are left out).
  nlohmann::json to_json() const;
  // A copy whose unset class-dependent fields take the defaults of diffusers class `class_name`
  // ("DDIMScheduler", ...); unknown names change nothing.
  SchedulerConfig with_class_defaults(const std::string& class_name) const;
  void validate(const std::string& source = "scheduler config") const;
};

}  // namespace dreambooth::schedulers
