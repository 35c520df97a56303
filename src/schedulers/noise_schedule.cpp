#include "dreambooth/schedulers/noise_schedule.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {
namespace {

// betas_for_alpha_bar(T, max_beta=0.999, "cosine"), computed in double then stored as float32.
at::Tensor squaredcos_cap_v2_betas(int num_train_timesteps) {
  constexpr double kPi = 3.141592653589793;  // math.pi
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * kPi / 2.0);
    return c * c;
  };
  std::vector<double> betas(num_train_timesteps);
  for (int i = 0; i < num_train_timesteps; ++i) {
    const double t1 = static_cast<double>(i) / num_train_timesteps;
    const double t2 = static_cast<double>(i + 1) / num_train_timesteps;
    betas[i] = std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999);
  }
  return torch::tensor(betas, torch::kFloat64).to(torch::kFloat32);
}

// Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1: shift and
// scale sqrt(acp) so the last timestep has zero SNR, in float32 as diffusers does.
at::Tensor rescale_zero_terminal_snr(const at::Tensor& betas) {
  at::Tensor alphas_bar_sqrt = torch::cumprod(1.0 - betas, 0).sqrt();
  const at::Tensor first = alphas_bar_sqrt[0].clone();
  const at::Tensor last = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last));
  const at::Tensor alphas_bar = alphas_bar_sqrt.pow(2);
  const at::Tensor alphas = torch::cat({alphas_bar.slice(0, 0, 1), alphas_bar.slice(0, 1) / alphas_bar.slice(0, 0, -1)});
  return 1 - alphas;
}

// acp[timesteps] gathered on `like`'s device and dtype, shaped [B, 1, 1, ...] to broadcast over `like`.
at::Tensor gather_broadcast(const at::Tensor& values, const at::Tensor& timesteps, const at::Tensor& like) {
  at::Tensor v = values.to(like.device(), like.scalar_type()).index({timesteps.to(like.device())}).flatten();
  while (v.dim() < like.dim()) v = v.unsqueeze(-1);
  return v;
}

}  // namespace

NoiseSchedule::NoiseSchedule(at::Tensor betas) : betas_(std::move(betas)) {
  if (betas_.dim() != 1 || betas_.scalar_type() != torch::kFloat32)
    throw Error(ErrorKind::Runtime, "NoiseSchedule: betas must be a 1-D float32 tensor");
  betas_ = betas_.to(torch::kCPU).contiguous();
  alphas_ = 1.0 - betas_;
  alphas_cumprod_ = torch::cumprod(alphas_, 0);
  const float* p = alphas_cumprod_.data_ptr<float>();
  alphas_cumprod_values_.assign(p, p + alphas_cumprod_.numel());
}

float NoiseSchedule::alpha_cumprod(int64_t t) const {
  if (t < 0 || t >= static_cast<int64_t>(alphas_cumprod_values_.size()))
    throw Error(ErrorKind::Runtime, "NoiseSchedule: timestep " + std::to_string(t) + " out of range");
  return alphas_cumprod_values_[t];
}

at::Tensor NoiseSchedule::add_noise(const at::Tensor& original, const at::Tensor& noise,
                                    const at::Tensor& timesteps) const {
  const at::Tensor acp = gather_broadcast(alphas_cumprod_, timesteps, original);
  const at::Tensor sqrt_alpha_prod = acp.pow(0.5);
  const at::Tensor sqrt_one_minus_alpha_prod = (1 - acp).pow(0.5);
  return sqrt_alpha_prod * original + sqrt_one_minus_alpha_prod * noise;
}

at::Tensor NoiseSchedule::get_velocity(const at::Tensor& sample, const at::Tensor& noise,
                                       const at::Tensor& timesteps) const {
  const at::Tensor acp = gather_broadcast(alphas_cumprod_, timesteps, sample);
  const at::Tensor sqrt_alpha_prod = acp.pow(0.5);
  const at::Tensor sqrt_one_minus_alpha_prod = (1 - acp).pow(0.5);
  return sqrt_alpha_prod * noise - sqrt_one_minus_alpha_prod * sample;
}

at::Tensor NoiseSchedule::snr(const at::Tensor& timesteps) const {
  const at::Tensor alpha = alphas_cumprod_.pow(0.5).to(timesteps.device()).index({timesteps}).to(torch::kFloat32);
  const at::Tensor sigma = (1.0 - alphas_cumprod_).pow(0.5).to(timesteps.device()).index({timesteps}).to(torch::kFloat32);
  return (alpha / sigma).pow(2);
}

at::Tensor NoiseSchedule::sigmas() const { return ((1 - alphas_cumprod_) / alphas_cumprod_).pow(0.5); }

NoiseSchedule make_noise_schedule(const SchedulerConfig& config) {
  const int n = config.num_train_timesteps;
  at::Tensor betas;
  if (!config.trained_betas.empty()) {
    betas = torch::tensor(config.trained_betas, torch::kFloat64).to(torch::kFloat32);
  } else {
    switch (config.beta_schedule) {
      case BetaSchedule::Linear:
        betas = torch::linspace(config.beta_start, config.beta_end, n, torch::kFloat32);
        break;
      case BetaSchedule::ScaledLinear:
        betas = torch::linspace(std::sqrt(config.beta_start), std::sqrt(config.beta_end), n, torch::kFloat32).pow(2);
        break;
      case BetaSchedule::SquaredCosCapV2:
        betas = squaredcos_cap_v2_betas(n);
        break;
    }
  }
  if (config.rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  return NoiseSchedule(betas);
}

}  // namespace dreambooth::schedulers
