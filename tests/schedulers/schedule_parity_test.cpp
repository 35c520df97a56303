// Every set_timesteps result in schedulers.json: timesteps (values and dtype), sigmas, init_noise_sigma.
#include "dreambooth/schedulers/schedule.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "schedulers/scheduler_golden.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace dreambooth::testing {
namespace {

using schedulers::Schedule;
using schedulers::TimestepDtype;

// Integer timesteps must be equal. Sigmas and non-Karras float timesteps come out bit-identical (measured).
// Karras timesteps interpolate in numpy's float32 log-sigma table; numpy's SIMD float32 log differs from a
// correctly rounded one in the last bit for some entries, which moves a timestep by up to one float32 ulp
// (6.1e-5 at ~1000; LMS keeps float64 and differs by up to 5.6e-5).
constexpr double kFloatTimestepAtol = 2e-4;  // ~3 ulp at 1000
constexpr double kSigmaAtol = 4e-6;          // ~4 ulp at 14.6
constexpr double kExact = 0.0;

const char* dtype_name(TimestepDtype d) {
  switch (d) {
    case TimestepDtype::Int64: return "int64";
    case TimestepDtype::Float32: return "float32";
    case TimestepDtype::Float64: return "float64";
  }
  return "?";
}

// Checks every schedules[] case of one diffusers class; returns how many were checked.
int check_schedules(const std::string& class_name) {
  int checked = 0;
  for (const auto& c : schedulers_json().at("schedules")) {
    if (c.at("scheduler") != class_name) continue;
    const std::string label = case_label(c);
    SCOPED_TRACE(label);
    const Schedule s = schedulers::make_schedule(case_config(c), case_kind(c), c.at("steps").get<int>());
    EXPECT_EQ(dtype_name(s.timestep_dtype), c.at("timesteps_dtype").get<std::string>());
    const at::Tensor expected_t = json_vector(c.at("timesteps"));
    const double t_atol = s.timestep_dtype == TimestepDtype::Int64 ? kExact : kFloatTimestepAtol;
    EXPECT_TENSOR_CLOSE(s.timesteps_tensor().to(torch::kFloat64), expected_t, t_atol, label + " timesteps");
    if (c.contains("sigmas")) {
      const at::Tensor sigmas = torch::tensor(std::vector<double>(s.sigmas.begin(), s.sigmas.end()), torch::kFloat64);
      EXPECT_TENSOR_CLOSE(sigmas, json_vector(c.at("sigmas")), kSigmaAtol, label + " sigmas");
    } else {
      EXPECT_TRUE(s.sigmas.empty());
    }
    EXPECT_NEAR(s.init_noise_sigma, c.at("init_noise_sigma").get<double>(), kSigmaAtol);
    ++checked;
  }
  return checked;
}

TEST(ScheduleParity, DDIMScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("DDIMScheduler"), 4);
}

TEST(ScheduleParity, PNDMScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("PNDMScheduler"), 4);
}

TEST(ScheduleParity, EulerDiscreteScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("EulerDiscreteScheduler"), 12);
}

TEST(ScheduleParity, EulerAncestralDiscreteScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("EulerAncestralDiscreteScheduler"), 4);
}

TEST(ScheduleParity, DPMSolverMultistepScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("DPMSolverMultistepScheduler"), 12);
}

TEST(ScheduleParity, LMSDiscreteScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_schedules("LMSDiscreteScheduler"), 8);
}

TEST(ScheduleParity, EveryCaseHasATest) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(schedulers_json().at("schedules").size(), 44u);
}

}  // namespace
}  // namespace dreambooth::testing
