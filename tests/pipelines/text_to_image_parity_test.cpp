// The three golden pipeline cases: diffusers' StableDiffusionPipeline on tiny-sd1 with given latents,
// compared at every step (UNet input and output, latents, timesteps) and at the end (latents, image).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/pipelines/noise.h"
#include "dreambooth/pipelines/text_to_image.h"
#include "dreambooth/schedulers/registry.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::testing::golden_atol;
using dreambooth::testing::golden_case;
using dreambooth::testing::golden_path;

namespace {

// These samplers are deterministic given the latents, but diffusers' Euler still draws (and ignores) noise
// each step when s_churn is 0. Huge values make any noise that does reach the latents fail the comparison.
struct PoisonNoise : schedulers::NoiseSource {
  at::Tensor randn(c10::IntArrayRef shape, c10::ScalarType dtype, c10::Device device) override {
    return torch::full(shape, 1.0e3, at::TensorOptions().dtype(dtype).device(device));
  }
};

void run_pipeline_case(const std::string& case_name, const std::string& sampler_name) {
  const nlohmann::json& c = golden_case(case_name);
  const nlohmann::json& params = c.at("params");
  io::SafetensorsReader golden(golden_path("tiny-sd1/golden/" + c.at("file").get<std::string>()));

  pipelines::ModelRequest request;
  request.path = golden_path("tiny-sd1");
  pipelines::LoadedModel model = pipelines::load_model(request);
  nlohmann::json scheduler_json = params.at("scheduler_config");
  schedulers::SchedulerConfig scheduler = schedulers::SchedulerConfig::from_json(scheduler_json, case_name);
  pipelines::TextToImage pipeline(model.sd, *model.tokenizer, scheduler);

  pipelines::GenerationSettings settings;
  settings.prompt = params.at("prompt");
  settings.negative_prompt = params.at("negative_prompt");
  settings.steps = params.at("steps");
  settings.guidance_scale = params.at("guidance_scale");
  settings.width = params.at("width");
  settings.height = params.at("height");
  settings.sampler = &schedulers::find_sampler(sampler_name);

  auto atol = [&](const std::string& name) { return golden_atol(case_name, name); };
  at::Tensor embeddings = pipeline.encode_prompt(settings.prompt, settings.negative_prompt, 0, true);
  EXPECT_TENSOR_CLOSE(embeddings, golden.view("intermediate.prompt_embeds"), atol("intermediate.prompt_embeds"),
                      case_name + " prompt_embeds");

  int evaluation = 0;
  pipeline.set_unet_observer([&](const at::Tensor& input, const at::Tensor& timestep, const at::Tensor& output) {
    const std::string i = std::to_string(evaluation++);
    EXPECT_TENSOR_CLOSE(input, golden.view("step.unet_input." + i), atol("step.unet_input." + i),
                        case_name + " unet_input." + i);
    EXPECT_TENSOR_CLOSE(output, golden.view("step.unet_output." + i), atol("step.unet_output." + i),
                        case_name + " unet_output." + i);
    EXPECT_DOUBLE_EQ(timestep.item<double>(), golden.view("step.timestep." + i).item<double>()) << i;
  });
  int step = 0;
  PoisonNoise no_noise;
  at::Tensor latents = pipeline.denoise(embeddings, golden.view("input.latents"), settings, no_noise,
                                        [&](const schedulers::StepProgress& p) {
                                          const std::string i = std::to_string(step++);
                                          EXPECT_TENSOR_CLOSE(p.latents, golden.view("step.latents." + i),
                                                              atol("step.latents." + i), case_name + " latents." + i);
                                        });
  EXPECT_EQ(evaluation, settings.steps);
  EXPECT_TENSOR_CLOSE(latents, golden.view("output.latents"), atol("output.latents"), case_name + " output.latents");

  at::Tensor image = pipeline.decode(latents).permute({0, 2, 3, 1});  // NHWC like the reference
  EXPECT_TENSOR_CLOSE(image, golden.view("output.image"), atol("output.image"), case_name + " output.image");
  // uint8: rounding of values within fp32 noise of a .5 boundary may flip one level, never more.
  std::vector<io::Image> images = pipelines::to_images(pipeline.decode(latents));
  at::Tensor ours = torch::from_blob(images[0].pixels.data(), {1, 64, 64, 3}, torch::kUInt8).to(torch::kInt);
  at::Tensor reference = golden.view("output.image_uint8").to(torch::kInt);
  EXPECT_LE((ours - reference).abs().max().item<int>(), 1) << case_name;
  EXPECT_LE((ours - reference).abs().gt(0).sum().item<int>(), 2) << case_name;
}

}  // namespace

TEST(TextToImageParity, PipelineDdimMatchesReferenceAtEveryStep) {
  REQUIRE_GOLDEN();
  run_pipeline_case("pipeline_ddim", "ddim");
}

TEST(TextToImageParity, PipelineEulerMatchesReferenceAtEveryStep) {
  REQUIRE_GOLDEN();
  run_pipeline_case("pipeline_euler", "euler");
}

TEST(TextToImageParity, PipelineDpmpp2mMatchesReferenceAtEveryStep) {
  REQUIRE_GOLDEN();
  run_pipeline_case("pipeline_dpmpp2m", "dpmpp_2m");
}

TEST(PerImageNoise, BatchRowsEqualSeparateGenerators) {
  pipelines::PerImageNoise batched({7, 8, 9});
  at::Tensor rows = batched.randn({3, 4, 2, 2});
  for (int i = 0; i < 3; ++i) {
    schedulers::SeededNoiseSource single(7 + i);
    EXPECT_TRUE(torch::equal(rows[i], single.randn({1, 4, 2, 2})[0])) << i;
  }
  // The second draw continues each stream, as the reference's per-step ancestral noise does.
  at::Tensor next = batched.randn({3, 4, 2, 2});
  schedulers::SeededNoiseSource first(7);
  first.randn({1, 4, 2, 2});
  EXPECT_TRUE(torch::equal(next[0], first.randn({1, 4, 2, 2})[0]));
}
