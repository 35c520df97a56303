#include "dreambooth/schedulers/ddpm.h"

#include <algorithm>
#include <cmath>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {

StepResult ddpm_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output,
                     const at::Tensor& variance_noise) {
  const SchedulerConfig& c = s.config;
  const auto t = static_cast<int64_t>(s.timesteps.at(i));
  const int64_t prev_t = s.previous_timestep(t);
  const float alpha_prod_t = s.noise.alpha_cumprod(t);
  const float alpha_prod_t_prev = prev_t >= 0 ? s.noise.alpha_cumprod(prev_t) : 1.0f;
  const float beta_prod_t = 1.0f - alpha_prod_t;
  const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
  const float current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
  const float current_beta_t = 1.0f - current_alpha_t;

  at::Tensor x0;
  switch (c.prediction_type) {
    case PredictionType::Epsilon:
      x0 = (sample - model_output * std::sqrt(beta_prod_t)) / std::sqrt(alpha_prod_t);
      break;
    case PredictionType::Sample:
      x0 = model_output;
      break;
    case PredictionType::VPrediction:
      x0 = sample * std::sqrt(alpha_prod_t) - model_output * std::sqrt(beta_prod_t);
      break;
  }
  if (c.clip_sample.value_or(true)) x0 = x0.clamp(-c.clip_sample_range, c.clip_sample_range);

  const float x0_coeff = (std::sqrt(alpha_prod_t_prev) * current_beta_t) / beta_prod_t;
  const float sample_coeff = std::sqrt(current_alpha_t) * beta_prod_t_prev / beta_prod_t;
  at::Tensor prev = x0 * x0_coeff + sample * sample_coeff;

  if (t > 0) {
    if (!variance_noise.defined()) throw Error(ErrorKind::Runtime, "ddpm_step: t > 0 needs variance_noise");
    const float small = std::max((1.0f - alpha_prod_t_prev) / (1.0f - alpha_prod_t) * current_beta_t, 1e-20f);
    float scale = 0.0f;  // the standard deviation that multiplies z
    switch (c.variance_type.value_or(VarianceType::FixedSmall)) {
      case VarianceType::FixedSmall: scale = std::sqrt(small); break;
      case VarianceType::FixedSmallLog: scale = std::exp(0.5f * std::log(small)); break;
      case VarianceType::FixedLarge: scale = std::sqrt(current_beta_t); break;
      default: throw Error(ErrorKind::Runtime, "ddpm_step: unsupported variance_type");
    }
    prev = prev + variance_noise * scale;
  }
  return {prev, x0};
}

at::Tensor sample_ddpm(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::Ddpm);
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(x, schedule.timestep(i));
    at::Tensor z;
    if (schedule.timesteps[i] > 0) z = noise.randn(out.sizes(), out.scalar_type(), out.device());
    const StepResult r = ddpm_step(schedule, i, x, out, z);
    x = r.prev_sample;
    report_step(progress, schedule, i, x, r.pred_original_sample);
  }
  return x;
}

}  // namespace dreambooth::schedulers
