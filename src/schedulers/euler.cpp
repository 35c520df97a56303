#include "dreambooth/schedulers/euler.h"

#include <cmath>

#include <torch/torch.h>

namespace dreambooth::schedulers {

at::Tensor sigma_scale_model_input(const Schedule& s, int i, const at::Tensor& sample) {
  const float sigma = s.sigmas.at(i);
  return sample / std::sqrt(sigma * sigma + 1.0f);
}

at::Tensor sigma_denoised(PredictionType prediction, const at::Tensor& sample, const at::Tensor& model_output,
                          float sigma) {
  switch (prediction) {
    case PredictionType::Epsilon:
      return sample - model_output * sigma;
    case PredictionType::VPrediction:
      return model_output * (-sigma / std::sqrt(sigma * sigma + 1.0f)) + sample / (sigma * sigma + 1.0f);
    case PredictionType::Sample:
      return model_output;
  }
  return {};
}

StepResult euler_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output) {
  const float sigma = s.sigmas.at(i);
  const float sigma_next = s.sigmas.at(i + 1);
  const at::Tensor x = sample.to(torch::kFloat32);
  const at::Tensor x0 = sigma_denoised(s.config.prediction_type, x, model_output, sigma);
  const at::Tensor derivative = (x - x0) / sigma;
  const at::Tensor prev = x + derivative * (sigma_next - sigma);
  return {prev.to(model_output.scalar_type()), x0};
}

StepResult euler_ancestral_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output,
                                const at::Tensor& noise) {
  const float sigma_from = s.sigmas.at(i);
  const float sigma_to = s.sigmas.at(i + 1);
  const float sigma_up =
      std::sqrt(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) / (sigma_from * sigma_from));
  const float sigma_down = std::sqrt(sigma_to * sigma_to - sigma_up * sigma_up);
  const at::Tensor x = sample.to(torch::kFloat32);
  const at::Tensor x0 = sigma_denoised(s.config.prediction_type, x, model_output, sigma_from);
  const at::Tensor derivative = (x - x0) / sigma_from;
  at::Tensor prev = x + derivative * (sigma_down - sigma_from);
  prev = prev + noise * sigma_up;
  return {prev.to(model_output.scalar_type()), x0};
}

at::Tensor sample_euler(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                        NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::Euler);
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(sigma_scale_model_input(schedule, i, x), schedule.timestep(i));
    (void)noise.randn(out.sizes(), out.scalar_type(), out.device());  // s_churn = 0: drawn, unused
    const StepResult r = euler_step(schedule, i, x, out);
    x = r.prev_sample;
    report_step(progress, schedule, i, x, r.pred_original_sample);
  }
  return x;
}

at::Tensor sample_euler_ancestral(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule,
                                  const SamplerOptions& options, NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::EulerAncestral);
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(sigma_scale_model_input(schedule, i, x), schedule.timestep(i));
    const at::Tensor z = noise.randn(out.sizes(), out.scalar_type(), out.device());
    const StepResult r = euler_ancestral_step(schedule, i, x, out, z);
    x = r.prev_sample;
    report_step(progress, schedule, i, x, r.pred_original_sample);
  }
  return x;
}

}  // namespace dreambooth::schedulers
