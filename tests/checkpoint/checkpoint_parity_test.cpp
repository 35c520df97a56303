// The golden tiny-sd1 model exists in both layouts (the single file made by diffusers'
// convert_diffusers_to_original_stable_diffusion.py): our tables must map one onto the other bit for bit.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_test_util.h"
#include "dreambooth/checkpoint/convert.h"
#include "dreambooth/checkpoint/source.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/checkpoint/writer.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth::checkpoint;
using dreambooth::testing::golden_path;
using dreambooth::testing::kExact;
using dreambooth::testing::TempDir;

namespace {

fs::path golden_single_file() { return golden_path("tiny-sd1/tiny-sd1.safetensors"); }
fs::path golden_folder() { return golden_path("tiny-sd1"); }

const char* weights_file(Component c) {
  return c == Component::TextEncoder ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
}

nlohmann::json golden_config(const std::string& relative) {
  std::ifstream in(golden_path("tiny-sd1/" + relative));
  return nlohmann::json::parse(in);
}

void expect_identical(const std::map<std::string, at::Tensor>& actual,
                      const std::map<std::string, at::Tensor>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (const auto& [key, tensor] : expected) {
    ASSERT_TRUE(actual.count(key)) << what << ": no " << key;
    EXPECT_EQ(actual.at(key).scalar_type(), tensor.scalar_type()) << key;
    EXPECT_TENSOR_CLOSE(actual.at(key), tensor, kExact, what + " " + key);
  }
}

}  // namespace

TEST(TinySd1Parity, SingleFileTensorsEqualDiffusersFolder) {
  REQUIRE_GOLDEN();
  CheckpointSource source = open_checkpoint(golden_single_file());
  EXPECT_TRUE(source.extra_keys.empty());
  for (Component c : kAllComponents) {
    TensorMap views = component_views(source, c);
    auto golden = dreambooth::testing::read_all(golden_folder() / component_name(c) / weights_file(c));
    expect_identical({views.begin(), views.end()}, golden, component_name(c));
  }
}

TEST(TinySd1Parity, DetectsGoldenConfigs) {
  REQUIRE_GOLDEN();
  const ModelDescription d = open_checkpoint(golden_single_file()).description;
  EXPECT_EQ(d.family, Family::Sd1);
  EXPECT_EQ(d.config_source, "shapes+yaml");  // UNet heads and sample sizes from tiny-sd1.yaml
  EXPECT_EQ(d.unet.to_json(),
            dreambooth::models::UNetConfig::from_json(golden_config("unet/config.json"), "g").to_json());
  EXPECT_EQ(d.vae.to_json(), dreambooth::models::VaeConfig::from_json(golden_config("vae/config.json"), "g").to_json());
  // 4 heads from the 8-wide rule (hidden 32 is not a multiple of 64).
  EXPECT_EQ(d.text_encoder.to_json(),
            dreambooth::models::ClipTextConfig::from_json(golden_config("text_encoder/config.json"), "g").to_json());
  EXPECT_EQ(d.scheduler, golden_config("scheduler/scheduler_config.json"));
  for (Component c : kAllComponents) EXPECT_EQ(d.stored_dtype[c], c10::kFloat);
}

TEST(TinySd1Parity, DiffusersFolderLoads) {
  REQUIRE_GOLDEN();
  CheckpointSource source = open_checkpoint(golden_folder());
  const ModelDescription& d = source.description;
  EXPECT_EQ(d.layout, Layout::Diffusers);
  EXPECT_EQ(d.family, Family::Sd1);
  EXPECT_EQ(d.prediction_type, PredictionType::Epsilon);
  EXPECT_EQ(d.scheduler, golden_config("scheduler/scheduler_config.json"));
  const ModelDescription single = open_checkpoint(golden_single_file()).description;
  EXPECT_EQ(d.unet.to_json(), single.unet.to_json());
  EXPECT_EQ(d.vae.to_json(), single.vae.to_json());
  EXPECT_EQ(d.text_encoder.to_json(), single.text_encoder.to_json());
  EXPECT_EQ(component_views(source, Component::Unet).size(), 304u);
}

TEST(TinySd1Parity, SingleToDiffusersToSingleIsExact) {
  REQUIRE_GOLDEN();
  TempDir dir;
  convert_checkpoint(golden_single_file(), dir / "diffusers", Layout::Diffusers);
  for (Component c : kAllComponents)
    expect_identical(dreambooth::testing::read_all(dir / "diffusers" / component_name(c) / weights_file(c)),
                     dreambooth::testing::read_all(golden_folder() / component_name(c) / weights_file(c)),
                     std::string("diffusers ") + component_name(c));
  convert_checkpoint(dir / "diffusers", dir / "back.safetensors", Layout::SingleFile);
  expect_identical(dreambooth::testing::read_all(dir / "back.safetensors"),
                   dreambooth::testing::read_all(golden_single_file()), "round trip");
}

TEST(TinySd1Parity, DiffusersToSingleEqualsGoldenSingleFile) {
  REQUIRE_GOLDEN();
  TempDir dir;
  convert_checkpoint(golden_folder(), dir / "tiny.safetensors", Layout::SingleFile);
  expect_identical(dreambooth::testing::read_all(dir / "tiny.safetensors"),
                   dreambooth::testing::read_all(golden_single_file()), "single file");
  // And a diffusers copy of the diffusers folder brings the tokenizer along.
  convert_checkpoint(golden_folder(), dir / "copy", Layout::Diffusers);
  EXPECT_TRUE(fs::exists(dir / "copy" / "tokenizer" / "vocab.json"));
  EXPECT_TRUE(fs::exists(dir / "copy" / "model_index.json"));
}

// End to end: models loaded from the single file reproduce the reference outputs.
TEST(TinySd1Parity, SingleFileModelsMatchTextEncoderAndVaeCases) {
  REQUIRE_GOLDEN();
  LoadOptions options;
  options.path = golden_single_file();
  options.components.unet = false;
  StableDiffusion model = load_stable_diffusion(options);
  torch::NoGradGuard no_grad;

  auto text = dreambooth::testing::read_all(golden_path("tiny-sd1/golden/text_encoder.safetensors"));
  at::Tensor hidden = model.text_encoder->forward(text.at("input.input_ids")).last_hidden_state;
  EXPECT_TENSOR_CLOSE(hidden, text.at("output.last_hidden_state"),
                      dreambooth::testing::golden_atol("text_encoder", "output.last_hidden_state"),
                      "last_hidden_state");

  auto vae = dreambooth::testing::read_all(golden_path("tiny-sd1/golden/vae.safetensors"));
  EXPECT_TENSOR_CLOSE(model.vae->decode(vae.at("input.z")), vae.at("output.decoded"),
                      dreambooth::testing::golden_atol("vae", "output.decoded"), "decoded");
}
