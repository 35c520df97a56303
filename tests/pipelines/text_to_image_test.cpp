// What `sample` does to save memory: prompts encoded up front so the text encoder can go, and a VAE
// without its encoder. The images must not change.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/pipelines/text_to_image.h"
#include "support/golden.h"

using namespace dreambooth;
using dreambooth::testing::golden_path;

namespace {

pipelines::GenerationSettings two_step_settings(const std::string& prompt) {
  pipelines::GenerationSettings settings;
  settings.prompt = prompt;
  settings.negative_prompt = "blurry";
  settings.steps = 2;
  settings.width = 64;
  settings.height = 64;
  settings.sampler = &schedulers::find_sampler("ddim");
  return settings;
}

}  // namespace

TEST(TextToImage, RememberedPromptsNeedNoTextEncoder) {
  pipelines::ModelRequest request;
  request.path = golden_path("tiny-sd1");
  pipelines::LoadedModel model = pipelines::load_model(request);
  const schedulers::SchedulerConfig scheduler =
      schedulers::SchedulerConfig::from_json(model.sd.description.scheduler, "tiny-sd1");
  c10::InferenceMode inference;
  const pipelines::GenerationSettings settings = two_step_settings("a photo of a dog");

  pipelines::TextToImage with_encoder(model.sd, *model.tokenizer, scheduler);
  const at::Tensor states = with_encoder.encode_prompt(settings.prompt, settings.negative_prompt, 0, true, 2);
  const std::vector<io::Image> expected = with_encoder.generate(settings, {5, 6});

  pipelines::TextToImage without(model.sd, *model.tokenizer, scheduler);
  EXPECT_GE(without.remember_prompt(settings.prompt, settings.negative_prompt, 0, true), 0.0);
  without.release_text_encoder();
  EXPECT_TRUE(torch::equal(without.encode_prompt(settings.prompt, settings.negative_prompt, 0, true, 2), states));
  const std::vector<io::Image> images = without.generate(settings, {5, 6});
  ASSERT_EQ(images.size(), expected.size());
  for (size_t i = 0; i < images.size(); ++i) EXPECT_EQ(images[i].pixels, expected[i].pixels) << i;

  // A prompt it was not given before has nothing to run on.
  EXPECT_THROW(without.generate(two_step_settings("a photo of a cat"), {5}), Error);
  // Remembering is per (prompt, negative prompt, clip skip, guidance).
  EXPECT_THROW(without.encode_prompt(settings.prompt, settings.negative_prompt, 1, true), Error);
}

TEST(TextToImage, DecodesTheSameWithoutTheVaeEncoder) {
  pipelines::ModelRequest request;
  request.path = golden_path("tiny-sd1");
  pipelines::LoadedModel model = pipelines::load_model(request);
  c10::InferenceMode inference;
  torch::manual_seed(3);
  const at::Tensor latents = torch::randn({1, 4, 8, 8});
  const at::Tensor image = torch::randn({1, 3, 64, 64});
  ASSERT_NO_THROW(model.sd.vae->encode(image));
  const at::Tensor expected = model.sd.vae->decode(latents);
  const size_t parameters = model.sd.vae->parameters().size();

  model.sd.vae->release_encoder();
  EXPECT_TRUE(torch::equal(model.sd.vae->decode(latents), expected));
  EXPECT_LT(model.sd.vae->parameters().size(), parameters);
  for (const auto& item : model.sd.vae->named_parameters())
    EXPECT_TRUE(item.key().rfind("decoder.", 0) == 0 || item.key().rfind("post_quant_conv.", 0) == 0) << item.key();
  EXPECT_ANY_THROW(model.sd.vae->encode(image));
}
