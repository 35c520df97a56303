#include "dreambooth/schedulers/pndm.h"

#include <cmath>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {

at::Tensor pndm_transfer(const Schedule& s, const at::Tensor& sample, int64_t t, int64_t prev_t,
                         const at::Tensor& model_output) {
  const float final_alpha = s.config.set_alpha_to_one.value_or(false) ? 1.0f : s.noise.alpha_cumprod(0);
  const float alpha_prod_t = s.noise.alpha_cumprod(t);
  const float alpha_prod_t_prev = prev_t >= 0 ? s.noise.alpha_cumprod(prev_t) : final_alpha;
  const float beta_prod_t = 1.0f - alpha_prod_t;
  const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;

  at::Tensor eps = model_output;
  if (s.config.prediction_type == PredictionType::VPrediction)
    eps = model_output * std::sqrt(alpha_prod_t) + sample * std::sqrt(beta_prod_t);

  const float sample_coeff = std::sqrt(alpha_prod_t_prev / alpha_prod_t);
  const float denom =
      alpha_prod_t * std::sqrt(beta_prod_t_prev) + std::sqrt(alpha_prod_t * beta_prod_t * alpha_prod_t_prev);
  return sample * sample_coeff - eps * (alpha_prod_t_prev - alpha_prod_t) / denom;
}

PndmStepResult pndm_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output,
                         const PlmsHistory& history) {
  const int64_t ratio = s.config.num_train_timesteps / s.num_inference_steps;
  auto t = static_cast<int64_t>(s.timesteps.at(i));
  int64_t prev_t = t - ratio;
  PlmsHistory h = history;
  std::vector<at::Tensor>& ets = h.model_outputs;
  if (i != 1) {
    if (ets.size() > 3) ets.erase(ets.begin(), ets.end() - 3);
    ets.push_back(model_output);
  } else {
    // The repeated timestep: redo the first step t0 -> t1 from x_t0.
    prev_t = t;
    t = t + ratio;
  }

  at::Tensor x = sample;
  at::Tensor eps;
  const size_t n = ets.size();
  if (n == 1 && i == 0) {
    eps = model_output;
    h.first_sample = sample;
  } else if (n == 1 && i == 1) {
    eps = (model_output + ets[0]) / 2;
    x = h.first_sample;
    h.first_sample = at::Tensor();
  } else if (n == 2) {
    eps = (ets[1] * 3 - ets[0]) / 2;
  } else if (n == 3) {
    eps = (ets[2] * 23 - ets[1] * 16 + ets[0] * 5) / 12;
  } else {
    eps = (ets[3] * 55 - ets[2] * 59 + ets[1] * 37 - ets[0] * 9) * (1.0 / 24.0);
  }
  return {pndm_transfer(s, x, t, prev_t, eps), h};
}

at::Tensor sample_pndm(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                       NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::Pndm);
  PlmsHistory history;
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(x, schedule.timestep(i));
    PndmStepResult r = pndm_step(schedule, i, x, out, history);
    x = r.prev_sample;
    history = std::move(r.history);
    report_step(progress, schedule, i, x, at::Tensor());
  }
  return x;
}

}  // namespace dreambooth::schedulers
