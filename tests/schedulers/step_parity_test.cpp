// Every step_by_step case of schedulers.json: each step's pure function from the stored inputs, then the
// whole sampler loop replaying the stored model outputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/schedulers/ddim.h"
#include "dreambooth/schedulers/dpm_solver.h"
#include "dreambooth/schedulers/euler.h"
#include "dreambooth/schedulers/pndm.h"
#include "dreambooth/schedulers/registry.h"
#include "schedulers/scheduler_golden.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace dreambooth::testing {
namespace {

using namespace dreambooth::schedulers;

// The reference's float32 step, reproduced operation by operation (measured: bit-identical). The
// tolerance allows a few float32 ulps on samples of magnitude <= ~60 (one ulp: 3.8e-6) for LibTorch
// kernels that round differently on another CPU.
constexpr double kStepAtol = 2e-5;
// The replayed loop feeds its own previous output back in, so such differences may add up over 25 steps.
constexpr double kLoopAtol = 5e-5;
// Euler Karras timesteps come from numpy's float32 log table, whose SIMD log differs from a correctly
// rounded one in the last bit for some entries: 1 float32 ulp (6.1e-5) at t ~ 1000 (see
// schedule_parity_test). The steps use the sigmas, which are exact.
constexpr double kFloatTimestepAtol = 2e-4;

at::Tensor scaled_input(const Schedule& s, int i, const at::Tensor& sample) {
  if (s.kind == SamplerKind::Euler || s.kind == SamplerKind::EulerAncestral || s.kind == SamplerKind::Lms)
    return sigma_scale_model_input(s, i, sample);
  return sample;
}

void check_steps(const nlohmann::json& c, const Schedule& s) {
  const auto& steps = c.at("steps_data");
  ASSERT_EQ(static_cast<int>(steps.size()), s.size());
  PlmsHistory plms;
  for (int i = 0; i < s.size(); ++i) {
    const auto& st = steps[i];
    const std::string label = case_label(c) + " step " + std::to_string(i);
    ASSERT_EQ(st.at("i").get<int>(), i);
    EXPECT_NEAR(st.at("t").get<double>(), s.timesteps[i], kFloatTimestepAtol);
    const at::Tensor sample = json_tensor(st.at("sample"));
    const at::Tensor model_output = json_tensor(st.at("model_output"));
    const at::Tensor expected_prev = json_tensor(st.at("prev_sample"));
    EXPECT_TENSOR_CLOSE(scaled_input(s, i, sample), json_tensor(st.at("scaled_model_input")), kStepAtol,
                        label + " scaled_model_input");
    switch (s.kind) {
      case SamplerKind::Ddim: {
        const StepResult r = ddim_step(s, i, sample, model_output);
        EXPECT_TENSOR_CLOSE(r.prev_sample, expected_prev, kStepAtol, label + " prev_sample");
        EXPECT_TENSOR_CLOSE(r.pred_original_sample, json_tensor(st.at("pred_original_sample")), kStepAtol,
                            label + " pred_original_sample");
        break;
      }
      case SamplerKind::Euler: {
        const StepResult r = euler_step(s, i, sample, model_output);
        EXPECT_TENSOR_CLOSE(r.prev_sample, expected_prev, kStepAtol, label + " prev_sample");
        EXPECT_TENSOR_CLOSE(r.pred_original_sample, json_tensor(st.at("pred_original_sample")), kStepAtol,
                            label + " pred_original_sample");
        break;
      }
      case SamplerKind::DpmSolverMultistep: {
        const at::Tensor x0 = dpm_solver_data_prediction(s, i, sample, model_output);
        at::Tensor previous_x0;
        if (i > 0)
          previous_x0 = dpm_solver_data_prediction(s, i - 1, json_tensor(steps[i - 1].at("sample")),
                                                   json_tensor(steps[i - 1].at("model_output")));
        EXPECT_TENSOR_CLOSE(dpm_solver_step(s, i, sample, x0, previous_x0), expected_prev, kStepAtol,
                            label + " prev_sample");
        break;
      }
      case SamplerKind::Pndm: {
        PndmStepResult r = pndm_step(s, i, sample, model_output, plms);
        EXPECT_TENSOR_CLOSE(r.prev_sample, expected_prev, kStepAtol, label + " prev_sample");
        plms = std::move(r.history);
        break;
      }
      default:
        FAIL() << "no step check for " << c.at("scheduler");
    }
  }
}

void check_replay(const nlohmann::json& c, const Schedule& s) {
  const auto& steps = c.at("steps_data");
  int calls = 0;
  const Denoiser replay = [&](const at::Tensor& model_input, const at::Tensor& timestep) {
    const auto& st = steps.at(calls);
    const std::string label = case_label(c) + " call " + std::to_string(calls);
    EXPECT_TENSOR_CLOSE(model_input, json_tensor(st.at("scaled_model_input")), kLoopAtol, label + " model input");
    EXPECT_NEAR(timestep.item<double>(), st.at("t").get<double>(), kFloatTimestepAtol) << label;
    ++calls;
    return json_tensor(st.at("model_output"));
  };
  int reported = 0;
  const ProgressCallback check_latents = [&](const StepProgress& p) {
    EXPECT_EQ(p.step, reported);
    EXPECT_EQ(p.total, s.size());
    EXPECT_TENSOR_CLOSE(p.latents, json_tensor(steps.at(p.step).at("prev_sample")), kLoopAtol,
                        case_label(c) + " loop step " + std::to_string(p.step));
    ++reported;
  };
  SeededNoiseSource noise(0);
  const at::Tensor out = sampler_info(s.kind).function(replay, json_tensor(c.at("initial_sample")), s,
                                                       SamplerOptions{}, noise, check_latents);
  EXPECT_EQ(calls, s.size());
  EXPECT_EQ(reported, s.size());
  EXPECT_TENSOR_CLOSE(out, json_tensor(c.at("final_sample")), kLoopAtol, case_label(c) + " final_sample");
}

int check_cases(const std::string& class_name) {
  int checked = 0;
  for (const auto& c : schedulers_json().at("step_by_step")) {
    if (c.at("scheduler") != class_name) continue;
    SCOPED_TRACE(case_label(c));
    const Schedule s = make_schedule(case_config(c), case_kind(c), c.at("steps").get<int>());
    EXPECT_TENSOR_CLOSE(s.timesteps_tensor().to(torch::kFloat64), json_vector(c.at("timesteps")),
                        kFloatTimestepAtol, case_label(c) + " timesteps");
    if (c.contains("sigmas")) {
      const at::Tensor sigmas = torch::tensor(std::vector<double>(s.sigmas.begin(), s.sigmas.end()), torch::kFloat64);
      EXPECT_TENSOR_CLOSE(sigmas, json_vector(c.at("sigmas")), 0.0, case_label(c) + " sigmas");
    }
    EXPECT_FLOAT_EQ(s.init_noise_sigma, c.at("init_noise_sigma").get<float>());
    check_steps(c, s);
    check_replay(c, s);
    ++checked;
  }
  return checked;
}

TEST(StepParity, DDIMScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_cases("DDIMScheduler"), 4);
}

TEST(StepParity, EulerDiscreteScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_cases("EulerDiscreteScheduler"), 8);
}

TEST(StepParity, DPMSolverMultistepScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_cases("DPMSolverMultistepScheduler"), 8);
}

TEST(StepParity, PNDMScheduler) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(check_cases("PNDMScheduler"), 2);
}

TEST(StepParity, EveryCaseHasATest) {
  REQUIRE_GOLDEN();
  EXPECT_EQ(schedulers_json().at("step_by_step").size(), 22u);
}

}  // namespace
}  // namespace dreambooth::testing
