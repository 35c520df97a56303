#include "dreambooth/schedulers/schedule.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {
namespace {

// numpy helpers, reproduced to the bit for the arguments set_timesteps uses. Rounding is numpy's
// round-half-to-even (std::nearbyint in the default rounding mode).

// np.linspace(start, stop, num): start + i * ((stop - start) / (num - 1)), last value = stop.
std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> y(num);
  const double step = num > 1 ? (stop - start) / (num - 1) : 0.0;
  for (int i = 0; i < num; ++i) y[i] = i * step + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

// np.arange(start, stop, step) for a float step: ceil((stop - start) / step) values start + i * delta,
// delta = (start + step) - start.
std::vector<double> np_arange(double start, double stop, double step) {
  const double length = std::ceil((stop - start) / step);
  const double delta = (start + step) - start;
  std::vector<double> y;
  for (int64_t i = 0; i < static_cast<int64_t>(length); ++i) y.push_back(start + static_cast<double>(i) * delta);
  return y;
}

std::vector<double> np_round(std::vector<double> v) {
  for (double& x : v) x = std::nearbyint(x);
  return v;
}

std::vector<double> reversed(std::vector<double> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

double to_float32(double x) { return static_cast<double>(static_cast<float>(x)); }

std::vector<double> to_float32(std::vector<double> v) {
  for (double& x : v) x = to_float32(x);
  return v;
}

// np.interp(x, arange(len(fp)), fp) for x in [0, len(fp) - 1], in double.
double np_interp_index(double x, const std::vector<float>& fp) {
  const int last = static_cast<int>(fp.size()) - 1;
  if (x <= 0.0) return fp[0];
  if (x >= last) return fp[last];
  const int j = static_cast<int>(std::floor(x));
  if (x == j) return fp[j];
  const double slope = static_cast<double>(fp[j + 1]) - fp[j];  // over a unit step of xp
  return slope * (x - j) + fp[j];
}

// Karras et al. 2022, eq. 5: rho = 7 ramp between sigma_max and sigma_min, in double.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n) {
  constexpr double rho = 7.0;
  const std::vector<double> ramp = np_linspace(0.0, 1.0, n);
  const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
  std::vector<double> sigmas(n);
  for (int i = 0; i < n; ++i) sigmas[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
  return sigmas;
}

// diffusers _sigma_to_t: the fractional training timestep whose log-sigma matches, by linear
// interpolation in the (float32) log-sigma table.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  int low = 0;  // the last index with log_sigmas[i] <= log_sigma (0 if none), at most n - 2
  for (int i = 0; i < n; ++i)
    if (log_sigma - log_sigmas[i] >= 0) low = i;
  low = std::min(low, n - 2);
  // numpy subtracts the two float32 table entries in float32.
  const double gap = log_sigmas[low] - log_sigmas[low + 1];
  const double w = std::clamp((log_sigmas[low] - log_sigma) / gap, 0.0, 1.0);
  return (1.0 - w) * low + w * (low + 1);
}

// np.log of a float32 array: the float32 log, taken here as the correctly rounded one.
std::vector<float> log_float32(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(std::log(static_cast<double>(x[i])));
  return y;
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// ---- per-sampler set_timesteps ----

// DDIM, DDPM and PNDM's base grid (integers, descending for DDIM/DDPM).
std::vector<double> integer_timesteps(TimestepSpacing spacing, int T, int n, int steps_offset) {
  switch (spacing) {
    case TimestepSpacing::Linspace:
      return reversed(np_round(np_linspace(0, T - 1, n)));
    case TimestepSpacing::Leading: {
      std::vector<double> ts(n);
      const int ratio = T / n;
      for (int i = 0; i < n; ++i) ts[i] = static_cast<double>(i * ratio + steps_offset);
      return reversed(ts);
    }
    case TimestepSpacing::Trailing: {
      std::vector<double> ts = np_round(np_arange(T, 0, -static_cast<double>(T) / n));
      for (double& t : ts) t -= 1;
      return ts;
    }
  }
  return {};
}

// Euler / Euler ancestral / LMS timesteps (float32 values, descending): the integer grid, except that
// "linspace" is not rounded.
std::vector<double> sigma_sampler_timesteps(TimestepSpacing spacing, int T, int n, int steps_offset) {
  if (spacing == TimestepSpacing::Linspace) return reversed(to_float32(np_linspace(0, T - 1, n)));
  return integer_timesteps(spacing, T, n, steps_offset);
}

// Euler (discrete), Euler ancestral and LMS: sigmas interpolated at the timesteps (or Karras), then 0.
void set_sigma_sampler_timesteps(Schedule& s, TimestepSpacing spacing, bool karras, int n) {
  const SchedulerConfig& c = s.config;
  std::vector<float> table = to_vector(s.noise.sigmas());
  if (s.kind == SamplerKind::Euler && c.rescale_betas_zero_snr) {
    // diffusers sets alphas_cumprod[-1] = 2**-24 so the last sigma stays finite.
    std::vector<float> acp = s.noise.alphas_cumprod_values();
    acp.back() = std::ldexp(1.0f, -24);
    for (size_t i = 0; i < acp.size(); ++i) table[i] = std::sqrt((1.0f - acp[i]) / acp[i]);
  }
  const std::vector<float> log_table = log_float32(table);

  std::vector<double> timesteps = sigma_sampler_timesteps(spacing, c.num_train_timesteps, n, c.steps_offset);
  std::vector<double> sigmas;
  for (double t : timesteps) sigmas.push_back(np_interp_index(t, table));
  if (karras) {
    double sigma_min = sigmas.back();
    double sigma_max = sigmas.front();
    if (s.kind == SamplerKind::Euler) {
      sigma_min = c.sigma_min.value_or(sigma_min);
      sigma_max = c.sigma_max.value_or(sigma_max);
    }
    sigmas = karras_sigmas(sigma_min, sigma_max, n);
    timesteps.clear();
    for (double sigma : sigmas) timesteps.push_back(sigma_to_t(sigma, log_table));
    // Euler stores the Karras timesteps as float32, LMS keeps numpy's float64.
    if (s.kind == SamplerKind::Lms) s.timestep_dtype = TimestepDtype::Float64;
    else timesteps = to_float32(timesteps);
  }
  s.timesteps = timesteps;
  for (double sigma : sigmas) s.sigmas.push_back(static_cast<float>(sigma));
  s.sigmas.push_back(0.0f);

  const float max_sigma = *std::max_element(s.sigmas.begin(), s.sigmas.end());
  s.init_noise_sigma = spacing == TimestepSpacing::Leading ? std::sqrt(max_sigma * max_sigma + 1.0f) : max_sigma;
}

void set_dpm_solver_timesteps(Schedule& s, TimestepSpacing spacing, bool karras, int n) {
  const SchedulerConfig& c = s.config;
  const int T = c.num_train_timesteps;
  const std::vector<float>& acp = s.noise.alphas_cumprod_values();
  // Timesteps whose log-SNR lambda falls below lambda_min_clipped are cut from the top.
  int clipped = 0;
  for (float a : acp) {
    const float lambda = std::log(std::sqrt(a)) - std::log(std::sqrt(1.0f - a));
    if (lambda < c.lambda_min_clipped) ++clipped;
  }
  const int last_timestep = T - clipped;

  std::vector<double> timesteps;
  switch (spacing) {
    case TimestepSpacing::Linspace:
      timesteps = reversed(np_round(np_linspace(0, last_timestep - 1, n + 1)));
      timesteps.pop_back();
      break;
    case TimestepSpacing::Leading: {
      const int ratio = last_timestep / (n + 1);
      for (int i = n; i >= 1; --i) timesteps.push_back(static_cast<double>(i * ratio + c.steps_offset));
      break;
    }
    case TimestepSpacing::Trailing:
      timesteps = np_round(np_arange(last_timestep, 0, -static_cast<double>(T) / n));
      for (double& t : timesteps) t -= 1;
      break;
  }

  const std::vector<float> table = to_vector(s.noise.sigmas());
  const std::vector<float> log_table = log_float32(table);
  std::vector<double> sigmas;
  if (karras) {
    sigmas = karras_sigmas(table.front(), table.back(), n);
    timesteps.clear();
    for (double sigma : sigmas) timesteps.push_back(std::nearbyint(sigma_to_t(sigma, log_table)));
    sigmas.push_back(sigmas.back());
  } else {
    for (double t : timesteps) sigmas.push_back(np_interp_index(t, table));
    sigmas.push_back(std::sqrt((1.0f - acp[0]) / acp[0]));
  }
  if (c.final_sigmas_type == FinalSigmasType::Zero) sigmas.back() = 0.0;
  for (double sigma : sigmas) s.sigmas.push_back(static_cast<float>(sigma));

  // Rounded Karras timesteps can repeat (50 steps: ..., 2, 1, 1, 0); diffusers 0.25.1 keeps them.
  s.timesteps = timesteps;
}

void set_pndm_timesteps(Schedule& s, TimestepSpacing spacing, int n) {
  const SchedulerConfig& c = s.config;
  // Ascending base grid.
  const std::vector<double> base = reversed(integer_timesteps(spacing, c.num_train_timesteps, n, c.steps_offset));
  // PLMS order: [t_0 .. t_{n-2}, t_{n-2}, t_{n-1}] reversed, i.e. the second-highest timestep twice.
  std::vector<double> plms(base.begin(), base.end() - 1);
  if (n >= 2) plms.push_back(base[n - 2]);
  plms.push_back(base[n - 1]);
  s.timesteps = reversed(plms);
}

void check_supported(const Schedule& s) {
  const SchedulerConfig& c = s.config;
  const std::string name = diffusers_class_name(s.kind);
  auto unsupported = [&](const std::string& what, const std::string& hint) {
    throw model_error("scheduler config", what + " is not supported by " + name, hint);
  };
  if (c.rescale_betas_zero_snr && s.kind != SamplerKind::Ddim && s.kind != SamplerKind::Ddpm &&
      s.kind != SamplerKind::Euler)
    unsupported("rescale_betas_zero_snr", "diffusers 0.25.1 supports it in DDIM, DDPM and Euler");
  switch (s.kind) {
    case SamplerKind::Pndm:
      if (!c.skip_prk_steps.value_or(false))
        unsupported("skip_prk_steps=false (Runge-Kutta warm-up)", "set skip_prk_steps or choose another sampler");
      if (c.prediction_type == PredictionType::Sample)
        unsupported("prediction_type 'sample'", "PNDM takes epsilon or v_prediction");
      break;
    case SamplerKind::DpmSolverMultistep:
      if (c.algorithm_type != AlgorithmType::DpmSolverPlusPlus)
        unsupported(std::string("algorithm_type '") + to_string(c.algorithm_type) + "'", "use dpmsolver++");
      if (c.solver_order > 2) unsupported("solver_order 3", "use solver_order 1 or 2");
      if (c.variance_type) unsupported("variance_type (learned variance)", "use a config without variance_type");
      break;
    case SamplerKind::Ddpm:
      if (c.variance_type == VarianceType::Learned || c.variance_type == VarianceType::LearnedRange ||
          c.variance_type == VarianceType::FixedLargeLog)
        unsupported(std::string("variance_type '") + to_string(*c.variance_type) + "'",
                    "use fixed_small, fixed_small_log or fixed_large");
      break;
    default:
      break;
  }
}

}  // namespace

const char* diffusers_class_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::Ddim: return "DDIMScheduler";
    case SamplerKind::Pndm: return "PNDMScheduler";
    case SamplerKind::Euler: return "EulerDiscreteScheduler";
    case SamplerKind::EulerAncestral: return "EulerAncestralDiscreteScheduler";
    case SamplerKind::DpmSolverMultistep: return "DPMSolverMultistepScheduler";
    case SamplerKind::Ddpm: return "DDPMScheduler";
    case SamplerKind::Lms: return "LMSDiscreteScheduler";
  }
  return "?";
}

bool supports_karras(SamplerKind kind) {
  return kind == SamplerKind::Euler || kind == SamplerKind::DpmSolverMultistep || kind == SamplerKind::Lms;
}

at::Tensor Schedule::timestep(int i) const {
  const double t = timesteps.at(i);
  switch (timestep_dtype) {
    case TimestepDtype::Int64: return torch::scalar_tensor(static_cast<int64_t>(t), torch::kInt64);
    case TimestepDtype::Float32: return torch::scalar_tensor(t, torch::kFloat32);
    case TimestepDtype::Float64: return torch::scalar_tensor(t, torch::kFloat64);
  }
  return {};
}

at::Tensor Schedule::timesteps_tensor() const {
  const at::Tensor t = torch::tensor(timesteps, torch::kFloat64);
  switch (timestep_dtype) {
    case TimestepDtype::Int64: return t.to(torch::kInt64);
    case TimestepDtype::Float32: return t.to(torch::kFloat32);
    case TimestepDtype::Float64: return t;
  }
  return t;
}

int64_t Schedule::previous_timestep(int64_t t) const {
  return t - config.num_train_timesteps / num_inference_steps;
}

Schedule make_schedule(const SchedulerConfig& config, SamplerKind kind, int steps, const ScheduleOptions& options) {
  if (steps < 1 || steps > config.num_train_timesteps)
    throw usage_error("--steps " + std::to_string(steps) + " is out of range",
                      "use 1.." + std::to_string(config.num_train_timesteps));
  if (options.karras.value_or(false) && !supports_karras(kind))
    throw usage_error(std::string("Karras sigmas are not supported by ") + diffusers_class_name(kind),
                      "supported by Euler, DPM-Solver++ and LMS");

  Schedule s(kind, config.with_class_defaults(diffusers_class_name(kind)), make_noise_schedule(config));
  const bool karras = supports_karras(kind) && options.karras.value_or(config.use_karras_sigmas);
  s.config.use_karras_sigmas = karras;
  s.num_inference_steps = steps;
  check_supported(s);
  const TimestepSpacing spacing = s.config.timestep_spacing.value_or(TimestepSpacing::Leading);

  switch (kind) {
    case SamplerKind::Ddim:
    case SamplerKind::Ddpm:
      s.timesteps = integer_timesteps(spacing, config.num_train_timesteps, steps, config.steps_offset);
      s.timestep_dtype = TimestepDtype::Int64;
      break;
    case SamplerKind::Pndm:
      set_pndm_timesteps(s, spacing, steps);
      s.timestep_dtype = TimestepDtype::Int64;
      break;
    case SamplerKind::Euler:
    case SamplerKind::EulerAncestral:
    case SamplerKind::Lms:
      s.timestep_dtype = TimestepDtype::Float32;
      set_sigma_sampler_timesteps(s, spacing, karras, steps);
      break;
    case SamplerKind::DpmSolverMultistep:
      s.timestep_dtype = TimestepDtype::Int64;
      set_dpm_solver_timesteps(s, spacing, karras, steps);
      break;
  }
  return s;
}

at::Tensor scale_initial_noise(const Schedule& schedule, const at::Tensor& noise) {
  return noise * schedule.init_noise_sigma;
}

}  // namespace dreambooth::schedulers
