// Loading into and saving from the real modules.
#include "dreambooth/checkpoint/stable_diffusion.h"

#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_test_util.h"
#include "dreambooth/checkpoint/presets.h"
#include "dreambooth/core/error.h"
#include "dreambooth/models/layers.h"
#include "dreambooth/models/parameters.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth::checkpoint;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::golden_path;
using dreambooth::testing::kExact;
using dreambooth::testing::TempDir;

namespace {

std::map<std::string, std::vector<int64_t>> table_shapes(const ModelDescription& d, Component c) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& spec : component_tensors(d, c)) out[spec.key] = spec.shape;
  return out;
}

// The modules (built on the meta device: no memory) register exactly the tensors the tables describe.
void expect_tables_match_modules(const ModelDescription& d) {
  dreambooth::models::MetaParameterScope meta;
  EXPECT_EQ(dreambooth::models::parameter_shapes(*dreambooth::models::UNet2DConditionModel(d.unet)),
            table_shapes(d, Component::Unet));
  EXPECT_EQ(dreambooth::models::parameter_shapes(*dreambooth::models::AutoencoderKL(d.vae)),
            table_shapes(d, Component::Vae));
  EXPECT_EQ(dreambooth::models::parameter_shapes(*dreambooth::models::ClipTextModel(d.text_encoder)),
            table_shapes(d, Component::TextEncoder));
}

void expect_same_parameters(const StableDiffusion& a, const StableDiffusion& b, c10::ScalarType dtype) {
  auto ta = model_tensors(a);
  auto tb = model_tensors(b);
  for (Component c : kAllComponents) {
    ASSERT_EQ(ta[c].size(), tb[c].size()) << component_name(c);
    for (const auto& [key, tensor] : ta[c]) {
      ASSERT_TRUE(tb[c].count(key)) << key;
      EXPECT_EQ(tensor.scalar_type(), dtype) << key;
      EXPECT_TENSOR_CLOSE(tensor, tb[c].at(key), kExact, key);
    }
  }
}

}  // namespace

TEST(StableDiffusion, KeyTablesMatchModules) {
  for (Preset p : {Preset::Tiny, Preset::Sd15, Preset::Sd21}) expect_tables_match_modules(preset_description(p));
}

TEST(StableDiffusion, GoldenLayoutsLoadIdenticalParameters) {
  REQUIRE_GOLDEN();
  LoadOptions single;
  single.path = golden_path("tiny-sd1/tiny-sd1.safetensors");
  LoadOptions folder;
  folder.path = golden_path("tiny-sd1");
  StableDiffusion a = load_stable_diffusion(single);
  StableDiffusion b = load_stable_diffusion(folder);
  expect_same_parameters(a, b, c10::kFloat);
  // And they hold the golden diffusers tensors.
  auto golden = dreambooth::testing::read_all(golden_path("tiny-sd1/vae/diffusion_pytorch_model.safetensors"));
  auto vae = model_tensors(a).vae;
  for (const auto& [key, tensor] : golden) EXPECT_TENSOR_CLOSE(vae.at(key), tensor, kExact, key);
}

TEST(StableDiffusion, LoadsInHalfAndSavesBothLayoutsExactly) {
  REQUIRE_GOLDEN();
  TempDir dir;
  LoadOptions options;
  options.path = golden_path("tiny-sd1/tiny-sd1.safetensors");
  options.dtype = c10::kHalf;
  StableDiffusion half = load_stable_diffusion(options);
  auto golden_unet = dreambooth::testing::read_all(golden_path("tiny-sd1/unet/diffusion_pytorch_model.safetensors"));
  auto unet = model_tensors(half).unet;
  for (const auto& [key, tensor] : golden_unet) EXPECT_TENSOR_CLOSE(unet.at(key), tensor.to(c10::kHalf), kExact, key);

  save_single_file(half, dir / "half.safetensors");
  save_diffusers(half, dir / "half");
  LoadOptions again;
  again.dtype = c10::kHalf;
  again.path = dir / "half.safetensors";
  expect_same_parameters(load_stable_diffusion(again), half, c10::kHalf);
  again.path = dir / "half";
  expect_same_parameters(load_stable_diffusion(again), half, c10::kHalf);
  EXPECT_EQ(describe_checkpoint(dir / "half").description.stored_dtype.unet, c10::kHalf);
}

TEST(StableDiffusion, LoadsOnlyTheRequestedComponents) {
  REQUIRE_GOLDEN();
  LoadOptions options;
  options.path = golden_path("tiny-sd1/tiny-sd1.safetensors");
  options.components = ComponentSet::only(Component::TextEncoder);
  StableDiffusion model = load_stable_diffusion(options);
  EXPECT_FALSE(model.unet);
  EXPECT_FALSE(model.vae);
  ASSERT_TRUE(model.text_encoder);
  TempDir dir;
  EXPECT_THROW(save_single_file(model, dir / "x.safetensors"), Error);
}

TEST(StableDiffusion, TinyPresetRoundTripsAndDescribes) {
  TempDir dir;
  StableDiffusion model = create_preset_model(Preset::Tiny, 123);
  save_single_file(model, dir / "tiny.safetensors");
  save_diffusers(model, dir / "tiny");
  for (const fs::path& path : {dir / "tiny.safetensors", dir / "tiny"}) {
    CheckpointInfo info = describe_checkpoint(path);
    EXPECT_EQ(info.description.unet.to_json(), model.description.unet.to_json());
    EXPECT_EQ(info.description.text_encoder.to_json(), model.description.text_encoder.to_json());
    EXPECT_EQ(info.parameter_count.unet, dreambooth::models::count_parameters(*model.unet));
    EXPECT_EQ(info.parameter_count.vae, dreambooth::models::count_parameters(*model.vae));
    EXPECT_EQ(info.parameter_count.text_encoder, dreambooth::models::count_parameters(*model.text_encoder));
    LoadOptions options;
    options.path = path;
    expect_same_parameters(load_stable_diffusion(options), model, c10::kFloat);
  }
  // The same seed gives the same model.
  expect_same_parameters(create_preset_model(Preset::Tiny, 123), model, c10::kFloat);
}

TEST(StableDiffusion, Sd21PresetDescription) {
  const ModelDescription d = preset_description(Preset::Sd21);
  EXPECT_EQ(d.prediction_type, PredictionType::VPrediction);
  EXPECT_EQ(d.scheduler["_class_name"], "DDIMScheduler");
  EXPECT_EQ(d.scheduler["prediction_type"], "v_prediction");
  EXPECT_TRUE(d.unet.upcast_attention);
  EXPECT_EQ(component_parameter_count(d, Component::TextEncoder), 340387840);
}
