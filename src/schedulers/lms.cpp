#include "dreambooth/schedulers/lms.h"

#include <algorithm>

#include "dreambooth/schedulers/euler.h"

namespace dreambooth::schedulers {

double lms_coefficient(const Schedule& s, int i, int order, int k) {
  auto basis = [&](double tau) {
    double prod = 1.0;
    for (int m = 0; m < order; ++m) {
      if (m == k) continue;
      prod *= (tau - s.sigmas.at(i - m)) / (static_cast<double>(s.sigmas.at(i - k)) - s.sigmas.at(i - m));
    }
    return prod;
  };
  // 4-point Gauss-Legendre: exact for the polynomial (degree <= 3); diffusers uses scipy's quad.
  constexpr double nodes[] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
  constexpr double weights[] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
  const double a = s.sigmas.at(i);
  const double b = s.sigmas.at(i + 1);
  double sum = 0.0;
  for (int q = 0; q < 4; ++q) sum += weights[q] * basis(0.5 * (b - a) * nodes[q] + 0.5 * (a + b));
  return 0.5 * (b - a) * sum;
}

LmsStepResult lms_step(const Schedule& s, int i, const at::Tensor& sample, const at::Tensor& model_output,
                       const std::vector<at::Tensor>& derivatives, int order) {
  const float sigma = s.sigmas.at(i);
  LmsStepResult r;
  r.pred_original_sample = sigma_denoised(s.config.prediction_type, sample, model_output, sigma);
  r.derivatives = derivatives;
  r.derivatives.push_back((sample - r.pred_original_sample) / sigma);
  if (static_cast<int>(r.derivatives.size()) > order) r.derivatives.erase(r.derivatives.begin());

  const int used = std::min(i + 1, order);
  at::Tensor update;
  for (int k = 0; k < used; ++k) {
    const at::Tensor term = r.derivatives[r.derivatives.size() - 1 - k] * lms_coefficient(s, i, used, k);
    update = update.defined() ? update + term : term;
  }
  r.prev_sample = sample + update;
  return r;
}

at::Tensor sample_lms(const Denoiser& denoiser, at::Tensor x, const Schedule& schedule, const SamplerOptions& options,
                      NoiseSource& noise, const ProgressCallback& progress) {
  require_kind(schedule, SamplerKind::Lms);
  std::vector<at::Tensor> derivatives;
  for (int i = 0; i < schedule.size(); ++i) {
    const at::Tensor out = denoiser(sigma_scale_model_input(schedule, i, x), schedule.timestep(i));
    LmsStepResult r = lms_step(schedule, i, x, out, derivatives);
    x = r.prev_sample;
    derivatives = std::move(r.derivatives);
    report_step(progress, schedule, i, x, r.pred_original_sample);
  }
  return x;
}

}  // namespace dreambooth::schedulers
