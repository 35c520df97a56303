#include "dreambooth/schedulers/ddim.h"

#include <cmath>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {

// Scalars are float32, as diffusers computes them from its float32 alphas_cumprod tensor.
StepResult ddim_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output, double eta,
                     const at::Tensor& variance_noise) {
  const SchedulerConfig& c = s.config;
  const auto t = static_cast<int64_t>(s.timesteps.at(i));
  const int64_t prev_t = s.previous_timestep(t);
  const float alpha_prod_t = s.noise.alpha_cumprod(t);
  const float final_alpha = c.set_alpha_to_one.value_or(true) ? 1.0f : s.noise.alpha_cumprod(0);
  const float alpha_prod_t_prev = prev_t >= 0 ? s.noise.alpha_cumprod(prev_t) : final_alpha;
  const float beta_prod_t = 1.0f - alpha_prod_t;
  const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;

  at::Tensor x0, eps;
  switch (c.prediction_type) {
    case PredictionType::Epsilon:
      x0 = (sample - model_output * std::sqrt(beta_prod_t)) / std::sqrt(alpha_prod_t);
      eps = model_output;
      break;
    case PredictionType::Sample:
      x0 = model_output;
      eps = (sample - x0 * std::sqrt(alpha_prod_t)) / std::sqrt(beta_prod_t);
      break;
    case PredictionType::VPrediction:
      x0 = sample * std::sqrt(alpha_prod_t) - model_output * std::sqrt(beta_prod_t);
      eps = model_output * std::sqrt(alpha_prod_t) + sample * std::sqrt(beta_prod_t);
      break;
  }
  if (c.clip_sample.value_or(true)) x0 = x0.clamp(-c.clip_sample_range, c.clip_sample_range);

  const float variance = (beta_prod_t_prev / beta_prod_t) * (1.0f - alpha_prod_t / alpha_prod_t_prev);
  const float std_dev_t = static_cast<float>(eta) * std::sqrt(variance);
  const at::Tensor direction = eps * std::sqrt(1.0f - alpha_prod_t_prev - std_dev_t * std_dev_t);
  at::Tensor prev = x0 * std::sqrt(alpha_prod_t_prev) + direction;
  if (eta > 0) {
    if (!variance_noise.defined()) throw Error(ErrorKind::Runtime, "ddim_step: eta > 0 needs variance_noise");
    prev = prev + variance_noise * std_dev_t;
  }
  return {prev, x0};
}

at::Tensor sample_ddim(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::Ddim);
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(x, schedule.timestep(i));
    at::Tensor z;
    if (options.eta > 0) z = noise.randn(out.sizes(), out.scalar_type(), out.device());
    const StepResult r = ddim_step(schedule, i, x, out, options.eta, z);
    x = r.prev_sample;
    report_step(progress, schedule, i, x, r.pred_original_sample);
  }
  return x;
}

}  // namespace dreambooth::schedulers
