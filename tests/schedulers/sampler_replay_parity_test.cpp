// The pipeline_{ddim,euler,dpmpp2m} golden cases with the UNet replaced by its recorded outputs: the
// sampler loop (scaling, timesteps, classifier-free guidance in the denoiser, steps) must reproduce the
// recorded UNet inputs and per-step latents.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/schedulers/registry.h"
#include "schedulers/scheduler_golden.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace dreambooth::testing {
namespace {

using namespace dreambooth::schedulers;

void replay_pipeline(const std::string& case_name, const std::string& class_name) {
  const nlohmann::json& c = golden_case(case_name);
  const nlohmann::json& params = c.at("params");
  io::SafetensorsReader golden(golden_path("tiny-sd1/golden/" + c.at("file").get<std::string>()));
  auto tensor = [&](const std::string& name) { return golden.load(name, torch::kFloat32); };

  nlohmann::json config_json = params.at("scheduler_config");
  config_json["_class_name"] = class_name;
  const SchedulerConfig config = SchedulerConfig::from_json(config_json, case_name + " scheduler_config");
  const SamplerInfo& sampler = sampler_for_class(class_name);
  const int steps = params.at("steps").get<int>();
  const double guidance = params.at("guidance_scale").get<double>();
  const Schedule schedule = make_schedule(config, sampler.kind, steps);

  const auto expected_timesteps = params.at("timesteps").get<std::vector<double>>();
  ASSERT_EQ(schedule.size(), static_cast<int>(expected_timesteps.size()));
  for (int i = 0; i < schedule.size(); ++i) EXPECT_EQ(schedule.timesteps[i], expected_timesteps[i]) << "step " << i;
  EXPECT_FLOAT_EQ(schedule.init_noise_sigma, params.at("init_noise_sigma").get<float>());

  int calls = 0;
  const Denoiser guided = [&](const at::Tensor& model_input, const at::Tensor& timestep) {
    const std::string i = std::to_string(calls++);
    const at::Tensor batch = torch::cat({model_input, model_input});  // [uncond, cond]
    EXPECT_TENSOR_CLOSE(batch, tensor("step.unet_input." + i), golden_atol(case_name, "step.unet_input." + i),
                        case_name + " unet_input." + i);
    EXPECT_EQ(timestep.item<double>(), tensor("step.timestep." + i)[0].item<double>()) << "call " << i;
    const auto out = tensor("step.unet_output." + i).chunk(2);
    return out[0] + (out[1] - out[0]) * guidance;
  };
  const ProgressCallback check_latents = [&](const StepProgress& p) {
    const std::string name = "step.latents." + std::to_string(p.step);
    EXPECT_TENSOR_CLOSE(p.latents, tensor(name), golden_atol(case_name, name), case_name + " " + name);
  };
  SeededNoiseSource noise(0);  // only Euler draws (and discards) noise here
  const at::Tensor latents = scale_initial_noise(schedule, tensor("input.latents"));
  const at::Tensor out = sampler.function(guided, latents, schedule, SamplerOptions{}, noise, check_latents);
  EXPECT_EQ(calls, steps);
  EXPECT_TENSOR_CLOSE(out, tensor("output.latents"), golden_atol(case_name, "output.latents"),
                      case_name + " output.latents");
}

TEST(SamplerReplayParity, PipelineDdim) {
  REQUIRE_GOLDEN();
  replay_pipeline("pipeline_ddim", "DDIMScheduler");
}

TEST(SamplerReplayParity, PipelineEuler) {
  REQUIRE_GOLDEN();
  replay_pipeline("pipeline_euler", "EulerDiscreteScheduler");
}

TEST(SamplerReplayParity, PipelineDpmpp2m) {
  REQUIRE_GOLDEN();
  replay_pipeline("pipeline_dpmpp2m", "DPMSolverMultistepScheduler");
}

}  // namespace
}  // namespace dreambooth::testing
