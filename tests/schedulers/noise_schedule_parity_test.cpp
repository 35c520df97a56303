// schedulers.json "ddpm" tables and "add_noise" cases: the training noise schedule and its helpers.
#include "dreambooth/schedulers/noise_schedule.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "schedulers/scheduler_golden.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace dreambooth::testing {
namespace {

using schedulers::NoiseSchedule;

// Same float32 LibTorch operations as the reference (linspace, pow, cumprod): bit-identical.
constexpr double kBitExact = 0.0;
// add_noise / get_velocity: the same LibTorch float32 operations as diffusers (measured: bit-identical);
// one float32 rounding of slack on values of magnitude <= ~4.
constexpr double kNoiseAtol = 1e-6;

NoiseSchedule base_schedule() {
  nlohmann::json config = schedulers_json().at("base_config");
  config["_class_name"] = "PNDMScheduler";
  return schedulers::make_noise_schedule(schedulers::SchedulerConfig::from_json(config, "schedulers.json base_config"));
}

TEST(NoiseScheduleParity, DdpmTablesAreBitIdentical) {
  REQUIRE_GOLDEN();
  const NoiseSchedule noise = base_schedule();
  const auto& ddpm = schedulers_json().at("ddpm");
  ASSERT_EQ(noise.num_train_timesteps(), 1000);
  EXPECT_EQ(noise.betas().scalar_type(), torch::kFloat32);
  EXPECT_EQ(noise.alphas_cumprod().scalar_type(), torch::kFloat32);
  // The JSON holds the float32 values as doubles: converting back to float32 is exact.
  EXPECT_TENSOR_CLOSE(noise.betas(), json_vector(ddpm.at("betas")).to(torch::kFloat32), kBitExact, "betas");
  EXPECT_TENSOR_CLOSE(noise.alphas_cumprod(), json_vector(ddpm.at("alphas_cumprod")).to(torch::kFloat32), kBitExact,
                      "alphas_cumprod");
  EXPECT_EQ(noise.alpha_cumprod(999), noise.alphas_cumprod()[999].item<float>());
}

TEST(NoiseScheduleParity, AddNoiseAndVelocity) {
  REQUIRE_GOLDEN();
  const NoiseSchedule noise = base_schedule();
  int checked = 0;
  for (const auto& c : schedulers_json().at("add_noise")) {
    const at::Tensor timesteps = torch::tensor(c.at("timesteps").get<std::vector<int64_t>>(), torch::kInt64);
    const at::Tensor x0 = json_tensor(c.at("original"));
    const at::Tensor eps = json_tensor(c.at("noise"));
    EXPECT_TENSOR_CLOSE(noise.add_noise(x0, eps, timesteps), json_tensor(c.at("noisy")), kNoiseAtol, "add_noise");
    EXPECT_TENSOR_CLOSE(noise.get_velocity(x0, eps, timesteps), json_tensor(c.at("velocity")), kNoiseAtol,
                        "get_velocity");
    ++checked;
  }
  EXPECT_EQ(checked, 1);
}

TEST(NoiseSchedule, SnrMatchesItsDefinition) {
  const NoiseSchedule noise = schedulers::make_noise_schedule(schedulers::SchedulerConfig::single_file_default(false));
  const at::Tensor t = torch::tensor({0, 500, 999}, torch::kInt64);
  const at::Tensor acp = noise.alphas_cumprod().to(torch::kFloat64).index({t});
  EXPECT_TENSOR_CLOSE(noise.snr(t).to(torch::kFloat64), acp / (1 - acp), 1e-3, "snr");
  // SNR falls with t.
  EXPECT_GT(noise.snr(t)[0].item<float>(), noise.snr(t)[2].item<float>());
}

TEST(NoiseSchedule, ZeroTerminalSnrRescale) {
  auto config = schedulers::SchedulerConfig::single_file_default(true);
  config.rescale_betas_zero_snr = true;
  const NoiseSchedule noise = schedulers::make_noise_schedule(config);
  EXPECT_NEAR(noise.alpha_cumprod(999), 0.0, 1e-12);
  const NoiseSchedule plain = schedulers::make_noise_schedule(schedulers::SchedulerConfig::single_file_default(true));
  // The first timestep keeps its alpha_cumprod.
  EXPECT_NEAR(noise.alpha_cumprod(0), plain.alpha_cumprod(0), 1e-6);
}

TEST(NoiseSchedule, LinearAndCosineSchedules) {
  schedulers::SchedulerConfig config;  // diffusers defaults: linear 1e-4 .. 0.02
  const NoiseSchedule linear = schedulers::make_noise_schedule(config);
  EXPECT_FLOAT_EQ(linear.betas()[0].item<float>(), 1e-4f);
  EXPECT_FLOAT_EQ(linear.betas()[999].item<float>(), 0.02f);
  config.beta_schedule = schedulers::BetaSchedule::SquaredCosCapV2;
  const NoiseSchedule cosine = schedulers::make_noise_schedule(config);
  EXPECT_LE(cosine.betas().max().item<float>(), 0.999f);
  EXPECT_GT(cosine.alpha_cumprod(0), 0.9999f);
}

}  // namespace
}  // namespace dreambooth::testing
