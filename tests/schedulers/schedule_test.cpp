// Schedule variants the reference data does not list (trailing / linspace spacing for DDIM, PNDM, DDPM and
// DPM-Solver, final sigma 0, zero-SNR Euler), worked out by hand from diffusers 0.25.1's set_timesteps.
#include "dreambooth/schedulers/schedule.h"

#include <cmath>

#include <gtest/gtest.h>

namespace dreambooth::testing {
namespace {

using namespace dreambooth::schedulers;

SchedulerConfig sd_config(TimestepSpacing spacing) {
  SchedulerConfig c = SchedulerConfig::single_file_default(false);
  c.timestep_spacing = spacing;
  return c;
}

std::vector<double> timesteps(TimestepSpacing spacing, SamplerKind kind, int steps) {
  return make_schedule(sd_config(spacing), kind, steps).timesteps;
}

TEST(Schedule, IntegerSpacings) {
  using V = std::vector<double>;
  // leading: arange(N) * (1000 // N) reversed, + steps_offset
  EXPECT_EQ(timesteps(TimestepSpacing::Leading, SamplerKind::Ddim, 4), (V{751, 501, 251, 1}));
  // trailing: round(arange(1000, 0, -1000 / N)) - 1
  EXPECT_EQ(timesteps(TimestepSpacing::Trailing, SamplerKind::Ddim, 4), (V{999, 749, 499, 249}));
  EXPECT_EQ(timesteps(TimestepSpacing::Trailing, SamplerKind::Ddpm, 3), (V{999, 666, 332}));
  // linspace: round(linspace(0, 999, N)) reversed (round half to even: 499.5 -> 500)
  EXPECT_EQ(timesteps(TimestepSpacing::Linspace, SamplerKind::Ddim, 3), (V{999, 500, 0}));
  // PNDM (PLMS): ascending grid [t0 .. t_{N-1}] -> [t_{N-1}, t_{N-2}, t_{N-2}, ..., t0]
  EXPECT_EQ(timesteps(TimestepSpacing::Leading, SamplerKind::Pndm, 1), (V{1}));
  EXPECT_EQ(timesteps(TimestepSpacing::Leading, SamplerKind::Pndm, 2), (V{501, 1, 1}));
  EXPECT_EQ(timesteps(TimestepSpacing::Trailing, SamplerKind::Pndm, 4), (V{999, 749, 749, 499, 249}));
  EXPECT_EQ(timesteps(TimestepSpacing::Linspace, SamplerKind::Pndm, 3), (V{999, 500, 500, 0}));
  // DPM-Solver: N + 1 points, the last (0) dropped; leading uses 1000 // (N + 1)
  EXPECT_EQ(timesteps(TimestepSpacing::Leading, SamplerKind::DpmSolverMultistep, 4), (V{801, 601, 401, 201}));
  EXPECT_EQ(timesteps(TimestepSpacing::Linspace, SamplerKind::DpmSolverMultistep, 4), (V{999, 749, 500, 250}));
  EXPECT_EQ(timesteps(TimestepSpacing::Trailing, SamplerKind::DpmSolverMultistep, 4), (V{999, 749, 499, 249}));
}

TEST(Schedule, SigmaSamplerSpacingsAndInitNoiseSigma) {
  const Schedule trailing = make_schedule(sd_config(TimestepSpacing::Trailing), SamplerKind::Euler, 4);
  EXPECT_EQ(trailing.timesteps, (std::vector<double>{999, 749, 499, 249}));
  EXPECT_EQ(trailing.timestep_dtype, TimestepDtype::Float32);
  ASSERT_EQ(trailing.sigmas.size(), 5u);
  EXPECT_EQ(trailing.sigmas.back(), 0.0f);
  // "trailing" and "linspace": sigma_max; "leading": sqrt(sigma_max^2 + 1).
  EXPECT_EQ(trailing.init_noise_sigma, trailing.sigmas.front());
  const Schedule leading = make_schedule(sd_config(TimestepSpacing::Leading), SamplerKind::EulerAncestral, 4);
  EXPECT_FLOAT_EQ(leading.init_noise_sigma, std::sqrt(leading.sigmas[0] * leading.sigmas[0] + 1.0f));
  const Schedule lms = make_schedule(sd_config(TimestepSpacing::Linspace), SamplerKind::Lms, 3);
  EXPECT_EQ(lms.timesteps, (std::vector<double>{999, 499.5, 0}));
}

TEST(Schedule, DpmSolverFinalSigma) {
  SchedulerConfig c = sd_config(TimestepSpacing::Linspace);
  const Schedule sigma_min = make_schedule(c, SamplerKind::DpmSolverMultistep, 10);
  ASSERT_EQ(sigma_min.sigmas.size(), 11u);
  const float acp0 = sigma_min.noise.alpha_cumprod(0);
  EXPECT_EQ(sigma_min.sigmas.back(), std::sqrt((1.0f - acp0) / acp0));
  c.final_sigmas_type = FinalSigmasType::Zero;
  EXPECT_EQ(make_schedule(c, SamplerKind::DpmSolverMultistep, 10).sigmas.back(), 0.0f);
  // Karras: the last Karras sigma (sigma_min) repeated.
  const Schedule karras = make_schedule(sd_config(TimestepSpacing::Linspace), SamplerKind::DpmSolverMultistep, 10,
                                        ScheduleOptions{true});
  EXPECT_EQ(karras.sigmas[10], karras.sigmas[9]);
  EXPECT_TRUE(karras.config.use_karras_sigmas);
}

TEST(Schedule, ZeroTerminalSnrEulerKeepsTheLastSigmaFinite) {
  SchedulerConfig c = sd_config(TimestepSpacing::Trailing);
  c.rescale_betas_zero_snr = true;
  const Schedule s = make_schedule(c, SamplerKind::Euler, 10);
  // alphas_cumprod[-1] = 2^-24 gives sigma_max = sqrt((1 - 2^-24) / 2^-24) ~ 4096.
  EXPECT_NEAR(s.sigmas.front(), 4096.0, 1.0);
  EXPECT_TRUE(std::isfinite(s.init_noise_sigma));
}

TEST(Schedule, TimestepTensorsKeepTheDtype) {
  const Schedule ddim = make_schedule(sd_config(TimestepSpacing::Leading), SamplerKind::Ddim, 4);
  EXPECT_EQ(ddim.timestep(0).scalar_type(), c10::kLong);
  EXPECT_EQ(ddim.timestep(0).dim(), 0);
  EXPECT_EQ(ddim.timestep(0).item<int64_t>(), 751);
  EXPECT_EQ(ddim.timesteps_tensor().scalar_type(), c10::kLong);
  const Schedule euler = make_schedule(sd_config(TimestepSpacing::Linspace), SamplerKind::Euler, 3);
  EXPECT_EQ(euler.timestep(1).scalar_type(), c10::kFloat);
  EXPECT_EQ(euler.timestep(1).item<double>(), 499.5);
  SchedulerConfig c = sd_config(TimestepSpacing::Linspace);
  c.use_karras_sigmas = true;
  EXPECT_EQ(make_schedule(c, SamplerKind::Lms, 5).timestep(1).scalar_type(), c10::kDouble);
  // The config's use_karras_sigmas is ignored by samplers without Karras support, as in diffusers.
  EXPECT_NO_THROW(make_schedule(c, SamplerKind::Ddim, 5));
  EXPECT_FALSE(make_schedule(c, SamplerKind::Ddim, 5).config.use_karras_sigmas);
}

}  // namespace
}  // namespace dreambooth::testing
