#include "dreambooth/schedulers/scheduler_config.h"

#include <fstream>

#include <gtest/gtest.h>

#include "dreambooth/core/error.h"
#include "dreambooth/schedulers/schedule.h"
#include "support/golden.h"

namespace dreambooth::testing {
namespace {

using namespace dreambooth::schedulers;

// SD1.5's scheduler_config.json as published on the hub (before diffusers added timestep_spacing).
nlohmann::json sd15_hub_config() {
  return {{"_class_name", "PNDMScheduler"}, {"_diffusers_version", "0.6.0"}, {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"num_train_timesteps", 1000},
          {"set_alpha_to_one", false}, {"skip_prk_steps", true}, {"steps_offset", 1},
          {"trained_betas", nullptr}, {"clip_sample", false}};
}

ErrorKind error_kind_of(const nlohmann::json& json) {
  try {
    SchedulerConfig::from_json(json, "scheduler_config.json");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scheduler_config.json"), std::string::npos) << e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error for " << json.dump();
  return ErrorKind::Runtime;
}

TEST(SchedulerConfig, ReadsTheHubConfigWithPndmDefaults) {
  const SchedulerConfig c = SchedulerConfig::from_json(sd15_hub_config(), "hub");
  EXPECT_EQ(c.class_name, "PNDMScheduler");
  EXPECT_EQ(c.beta_schedule, BetaSchedule::ScaledLinear);
  EXPECT_DOUBLE_EQ(c.beta_start, 0.00085);
  EXPECT_EQ(c.steps_offset, 1);
  // Absent in the file: PNDMScheduler's own default, as pipe.scheduler.config holds it.
  ASSERT_TRUE(c.timestep_spacing.has_value());
  EXPECT_EQ(*c.timestep_spacing, TimestepSpacing::Leading);
  EXPECT_EQ(c.skip_prk_steps, std::optional<bool>(true));
  EXPECT_EQ(c.prediction_type, PredictionType::Epsilon);
}

TEST(SchedulerConfig, TargetDefaultsFillWhatTheSourceClassLacks) {
  // EulerDiscreteScheduler.from_config(pndm.config): "leading" comes from the PNDM config.
  const SchedulerConfig pndm = SchedulerConfig::from_json(sd15_hub_config(), "hub");
  EXPECT_DOUBLE_EQ(make_schedule(pndm, SamplerKind::Euler, 4).timesteps[0], 751.0);
  // EulerDiscreteScheduler.from_pretrained on the bare file without a class: Euler's "linspace".
  nlohmann::json bare = sd15_hub_config();
  bare.erase("_class_name");
  const SchedulerConfig unnamed = SchedulerConfig::from_json(bare, "hub");
  EXPECT_FALSE(unnamed.timestep_spacing.has_value());
  EXPECT_DOUBLE_EQ(make_schedule(unnamed, SamplerKind::Euler, 4).timesteps[0], 999.0);
  EXPECT_DOUBLE_EQ(make_schedule(unnamed, SamplerKind::Ddim, 4).timesteps[0], 751.0);
  // DDIM's clip_sample default (true) applies when no config said otherwise.
  nlohmann::json no_clip = bare;
  no_clip.erase("clip_sample");
  const Schedule ddim = make_schedule(SchedulerConfig::from_json(no_clip, "hub"), SamplerKind::Ddim, 4);
  EXPECT_EQ(ddim.config.clip_sample, std::optional<bool>(true));
}

TEST(SchedulerConfig, ReadsTheTinyModelConfigFile) {
  REQUIRE_GOLDEN();
  const SchedulerConfig c =
      SchedulerConfig::from_file(golden_path("tiny-sd1/scheduler/scheduler_config.json").string());
  EXPECT_EQ(c.class_name, "PNDMScheduler");
  EXPECT_EQ(*c.timestep_spacing, TimestepSpacing::Leading);
  EXPECT_EQ(*c.set_alpha_to_one, false);
}

TEST(SchedulerConfig, FromFileAcceptsPythonInfinity) {
  TempDir dir;
  const auto path = dir / "scheduler_config.json";
  std::ofstream(path) << R"({"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity,
                             "algorithm_type": "dpmsolver++", "solver_order": 2, "variance_type": null})";
  const SchedulerConfig c = SchedulerConfig::from_file(path.string());
  EXPECT_TRUE(std::isinf(c.lambda_min_clipped) && c.lambda_min_clipped < 0);
  EXPECT_EQ(*c.timestep_spacing, TimestepSpacing::Linspace);
  EXPECT_FALSE(c.variance_type.has_value());
}

TEST(SchedulerConfig, StrictReading) {
  auto with = [](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = sd15_hub_config();
    j[key] = value;
    return j;
  };
  EXPECT_EQ(error_kind_of(with("steps_offset", "1")), ErrorKind::Input);          // wrong type
  EXPECT_EQ(error_kind_of(with("clip_sample", 0)), ErrorKind::Input);             // number for bool
  EXPECT_EQ(error_kind_of(with("beta_schedule", "sigmoid")), ErrorKind::Model);   // unsupported value
  EXPECT_EQ(error_kind_of(with("thresholding", true)), ErrorKind::Model);         // not implemented
  EXPECT_EQ(error_kind_of(with("interpolation_type", "log_linear")), ErrorKind::Model);
  EXPECT_EQ(error_kind_of(with("trained_betas", nlohmann::json::array({0.1, 0.2}))), ErrorKind::Model);
  EXPECT_EQ(error_kind_of(with("steps_offset", 1000)), ErrorKind::Model);
  // Unknown keys only warn; thresholding off and bookkeeping keys are fine.
  EXPECT_NO_THROW(SchedulerConfig::from_json(with("some_future_key", 3), "x"));
  EXPECT_NO_THROW(SchedulerConfig::from_json(with("thresholding", false), "x"));
  try {
    SchedulerConfig::from_json(with("prediction_type", "eps"), "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v_prediction"), std::string::npos) << "lists the valid values";
  }
}

TEST(SchedulerConfig, JsonRoundTrip) {
  SchedulerConfig c = SchedulerConfig::from_json(sd15_hub_config(), "hub");
  c.prediction_type = PredictionType::VPrediction;
  c.use_karras_sigmas = true;
  c.variance_type = VarianceType::FixedLarge;
  c.lambda_min_clipped = -5.1;
  const SchedulerConfig back = SchedulerConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.prediction_type, PredictionType::VPrediction);
  EXPECT_EQ(back.variance_type, std::optional<VarianceType>(VarianceType::FixedLarge));
  EXPECT_DOUBLE_EQ(back.lambda_min_clipped, -5.1);
}

TEST(SchedulerConfig, SingleFileDefaults) {
  const SchedulerConfig sd1 = SchedulerConfig::single_file_default(false);
  EXPECT_EQ(sd1.class_name, "PNDMScheduler");
  EXPECT_EQ(sd1.beta_schedule, BetaSchedule::ScaledLinear);
  EXPECT_DOUBLE_EQ(sd1.beta_end, 0.012);
  EXPECT_EQ(sd1.steps_offset, 1);
  EXPECT_EQ(*sd1.timestep_spacing, TimestepSpacing::Leading);
  EXPECT_EQ(*sd1.skip_prk_steps, true);
  EXPECT_EQ(*sd1.set_alpha_to_one, false);
  EXPECT_EQ(*sd1.clip_sample, false);
  const SchedulerConfig sd2 = SchedulerConfig::single_file_default(true);
  EXPECT_EQ(sd2.class_name, "DDIMScheduler");
  EXPECT_EQ(*sd2.clip_sample, false);
  EXPECT_EQ(*sd2.set_alpha_to_one, false);
  EXPECT_NO_THROW(sd2.validate());
  // The tiny model's config file and the SD1 single-file default agree.
  EXPECT_EQ(make_schedule(sd1, SamplerKind::Pndm, 4).timesteps, (std::vector<double>{751, 501, 501, 251, 1}));
}

}  // namespace
}  // namespace dreambooth::testing
