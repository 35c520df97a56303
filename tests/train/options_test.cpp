// Train options: JSON presets (strict reading), round trip, validation, prompt templates.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"
#include "dreambooth/train/options.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using namespace dreambooth::train;

namespace {

TrainOptions minimal_options() {
  TrainOptions o;
  o.model = "m";
  o.subject = "s";
  o.class_noun = "dog";
  o.output = "out";
  return o;
}

ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Runtime;
}

}  // namespace

TEST(TrainOptions, DefaultsAreTheReferenceRecipe) {
  const TrainOptions o;
  EXPECT_EQ(o.steps, 800);
  EXPECT_DOUBLE_EQ(o.lr, 5e-6);
  EXPECT_EQ(o.lr_scheduler, LrSchedulerKind::Constant);
  EXPECT_EQ(o.batch_size, 1);
  EXPECT_DOUBLE_EQ(o.adam_beta1, 0.9);
  EXPECT_DOUBLE_EQ(o.adam_beta2, 0.999);
  EXPECT_DOUBLE_EQ(o.adam_weight_decay, 1e-2);
  EXPECT_DOUBLE_EQ(o.adam_epsilon, 1e-8);
  EXPECT_DOUBLE_EQ(o.max_grad_norm, 1.0);
  EXPECT_EQ(o.resolution, 512);
  EXPECT_TRUE(o.prior_preservation);
  EXPECT_DOUBLE_EQ(o.prior_loss_weight, 1.0);
  EXPECT_EQ(o.num_class_images, 200);
  EXPECT_EQ(o.class_sampler, "dpmpp_2m");
  EXPECT_EQ(o.class_steps, 25);
  EXPECT_DOUBLE_EQ(o.class_cfg, 7.5);
  EXPECT_EQ(o.save_dtype, SaveDtype::Fp16);
}

TEST(TrainOptions, JsonRoundTripKeepsEveryField) {
  TrainOptions o = minimal_options();
  o.steps = 123;
  o.lr_scheduler = LrSchedulerKind::CosineWithRestarts;
  o.mixed_precision = MixedPrecision::Bf16;
  o.save_format = SaveFormat::Both;
  o.seed = 42;
  o.snr_gamma = 5.0;
  o.prior_preservation = false;
  o.flip = true;
  const nlohmann::json j = options_to_json(o);
  const TrainOptions back = options_from_json(j, "test");
  EXPECT_EQ(options_to_json(back), j);
  EXPECT_EQ(back.seed, std::optional<uint64_t>(42));
  EXPECT_EQ(back.lr_scheduler, LrSchedulerKind::CosineWithRestarts);
}

TEST(TrainOptions, PresetOverridesOnlyItsKeys) {
  TrainOptions base = minimal_options();
  base.steps = 10;
  const TrainOptions o = options_from_json({{"lr", 2e-6}, {"train_text_encoder", true}}, "preset", base);
  EXPECT_DOUBLE_EQ(o.lr, 2e-6);
  EXPECT_TRUE(o.train_text_encoder);
  EXPECT_EQ(o.steps, 10);
  EXPECT_EQ(o.model, "m");
}

TEST(TrainOptions, WrongTypesAndUnknownEnumNamesAreErrors) {
  EXPECT_EQ(kind_of([] { options_from_json({{"steps", "many"}}, "p.json"); }), ErrorKind::Input);
  EXPECT_EQ(kind_of([] { options_from_json({{"lr_scheduler", "step"}}, "p.json"); }), ErrorKind::Usage);
  EXPECT_EQ(kind_of([] { options_from_json(nlohmann::json::array(), "p.json"); }), ErrorKind::Input);
  // Unknown keys only warn.
  EXPECT_NO_THROW(options_from_json({{"not_an_option", 1}}, "p.json"));
}

TEST(TrainOptions, ValidationNamesTheFlag) {
  EXPECT_NO_THROW(validate_options(minimal_options()));
  auto message = [](TrainOptions o) {
    try {
      validate_options(o);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage);
      return std::string(e.what());
    }
    return std::string();
  };
  TrainOptions o = minimal_options();
  o.steps = 0;
  EXPECT_NE(message(o).find("--steps"), std::string::npos);
  o = minimal_options();
  o.resolution = 500;
  EXPECT_NE(message(o).find("--resolution"), std::string::npos);
  o = minimal_options();
  o.use_8bit_adam = true;
  EXPECT_NE(message(o).find("--use-8bit-adam"), std::string::npos);
  o = minimal_options();
  o.subject.clear();
  EXPECT_NE(message(o).find("--subject"), std::string::npos);
  o = minimal_options();
  o.token = "two words";
  EXPECT_NE(message(o).find("--token"), std::string::npos);
}

TEST(TrainOptions, PromptTemplates) {
  EXPECT_EQ(expand_prompt("a photo of {token} {class}", "sks", "dog"), "a photo of sks dog");
  EXPECT_EQ(expand_prompt("{class}s like {token}{token}", "xy", "cat"), "cats like xyxy");
  EXPECT_EQ(expand_prompt("no fields {tok}", "a", "b"), "no fields {tok}");
}

TEST(TrainOptions, ShippedPresetsUseOnlyKnownKeys) {
  const fs::path folder = dreambooth::testing::source_dir() / "configs";
  int presets = 0;
  for (const char* name : {"object.json", "face.json", "low-memory.json"}) {
    std::ifstream in(folder / name);
    ASSERT_TRUE(in) << (folder / name);
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json preset = dreambooth::parse_python_json(text.str(), name);
    const TrainOptions o = options_from_json(preset, name, minimal_options());
    const nlohmann::json resolved = options_to_json(o);
    for (const auto& [key, value] : preset.items()) {
      if (key == "_comment") continue;
      ASSERT_TRUE(resolved.contains(key)) << name << ": unknown key " << key;
      EXPECT_EQ(resolved[key], value) << name << ": " << key;
    }
    EXPECT_NO_THROW(validate_options(o)) << name;
    ++presets;
  }
  EXPECT_EQ(presets, 3);
}
