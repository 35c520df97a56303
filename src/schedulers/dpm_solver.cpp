#include "dreambooth/schedulers/dpm_solver.h"

#include <cmath>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {
namespace {

// alpha_t, sigma_t and lambda_t of the VP process at k-diffusion noise level `sigma`, in float32.
struct NoiseLevel {
  float alpha;
  float sigma;
  float lambda;
};

// log and exp as diffusers evaluates them: LibTorch kernels on 0-dim float32 tensors. They may differ from
// libm in the last bit, which the step would carry into the samples.
float torch_log(float x) { return torch::scalar_tensor(x, torch::kFloat32).log().item<float>(); }
float torch_exp(float x) { return torch::scalar_tensor(x, torch::kFloat32).exp().item<float>(); }

NoiseLevel noise_level(float sigma) {
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  const float sigma_t = sigma * alpha;
  return {alpha, sigma_t, torch_log(alpha) - torch_log(sigma_t)};
}

}  // namespace

at::Tensor dpm_solver_data_prediction(const Schedule& s, int i, const at::Tensor& sample,
                                      const at::Tensor& model_output) {
  const NoiseLevel n = noise_level(s.sigmas.at(i));
  switch (s.config.prediction_type) {
    case PredictionType::Epsilon:
      return (sample - model_output * n.sigma) / n.alpha;
    case PredictionType::Sample:
      return model_output;
    case PredictionType::VPrediction:
      return sample * n.alpha - model_output * n.sigma;
  }
  return {};
}

int dpm_solver_order(const Schedule& s, int i) {
  const SchedulerConfig& c = s.config;
  const bool last = i == s.size() - 1;
  const bool lower_order_final = last && (c.euler_at_final || (c.lower_order_final && s.size() < 15) ||
                                          c.final_sigmas_type == FinalSigmasType::Zero);
  if (c.solver_order == 1 || i == 0 || lower_order_final) return 1;
  return 2;
}

at::Tensor dpm_solver_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& x0,
                           const at::Tensor& previous_x0) {
  const NoiseLevel t = noise_level(s.sigmas.at(i + 1));
  const NoiseLevel s0 = noise_level(s.sigmas.at(i));
  const float h = t.lambda - s0.lambda;
  const float x0_coeff = t.alpha * (torch_exp(-h) - 1.0f);
  if (dpm_solver_order(s, i) == 1) return sample * (t.sigma / s0.sigma) - x0 * x0_coeff;

  if (!previous_x0.defined()) throw Error(ErrorKind::Runtime, "dpm_solver_step: order 2 needs previous_x0");
  const NoiseLevel s1 = noise_level(s.sigmas.at(i - 1));
  const float h_0 = s0.lambda - s1.lambda;
  const float r0 = h_0 / h;
  const at::Tensor d1 = (x0 - previous_x0) * (1.0f / r0);
  const at::Tensor x = sample * (t.sigma / s0.sigma) - x0 * x0_coeff;
  if (s.config.solver_type == SolverType::Heun) return x + d1 * (t.alpha * ((torch_exp(-h) - 1.0f) / h + 1.0f));
  return x - d1 * (0.5f * x0_coeff);
}

at::Tensor sample_dpm_solver(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule,
                             const SamplerOptions& options, NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::DpmSolverMultistep);
  at::Tensor previous_x0;
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(x, schedule.timestep(i));
    const at::Tensor x0 = dpm_solver_data_prediction(schedule, i, x, out);
    x = dpm_solver_step(schedule, i, x, x0, previous_x0);
    previous_x0 = x0;
    report_step(progress, schedule, i, x, x0);
  }
  return x;
}

}  // namespace dreambooth::schedulers
