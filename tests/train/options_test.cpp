// Train options: JSON presets (strict reading), round trip, validation, prompt templates.
#include <algorithm>
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
  EXPECT_DOUBLE_EQ(o.learning_rate(), 5e-6);
  EXPECT_FALSE(o.lora);
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
  EXPECT_DOUBLE_EQ(o.learning_rate(), 2e-6);
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
  o.use_8bit_adam = true;  // implemented (adamw8bit.h): accepted
  EXPECT_EQ(message(o), "");
  o = minimal_options();
  o.subject.clear();
  EXPECT_NE(message(o).find("--subject"), std::string::npos);
  o = minimal_options();
  o.token = "two words";
  EXPECT_NE(message(o).find("--token"), std::string::npos);
}

TEST(TrainOptions, LoraOptions) {
  // --lora without --lr trains at 1e-4; a preset's or the command line's lr wins.
  TrainOptions o = minimal_options();
  o.lora = true;
  EXPECT_DOUBLE_EQ(o.learning_rate(), kDefaultLoraLr);
  EXPECT_DOUBLE_EQ(options_from_json({{"lora", true}}, "preset", minimal_options()).learning_rate(), 1e-4);
  const TrainOptions preset = options_from_json({{"lr", 3e-5}}, "preset", minimal_options());
  EXPECT_DOUBLE_EQ(options_from_json({{"lora", true}}, "command line", preset).learning_rate(), 3e-5);

  o.lora_rank = 16;
  o.lora_alpha = 8.0;
  o.lora_dropout = 0.1;
  o.lora_targets = dreambooth::lora::LoraTargets::AllLinear;
  o.lora_format = dreambooth::lora::LoraFormat::Diffusers;
  const nlohmann::json j = options_to_json(o);
  EXPECT_EQ(j.at("lr"), 1e-4);
  EXPECT_EQ(j.at("lora_targets"), "all-linear");
  EXPECT_EQ(j.at("lora_format"), "diffusers");
  const TrainOptions back = options_from_json(j, "test");
  EXPECT_EQ(options_to_json(back), j);
  EXPECT_EQ(back.lora_alpha, std::optional<double>(8.0));
  EXPECT_EQ(options_to_json(minimal_options()).at("lora_alpha"), nullptr);
  EXPECT_EQ(kind_of([] { options_from_json({{"lora_targets", "everything"}}, "p.json"); }), ErrorKind::Usage);
  EXPECT_EQ(kind_of([] { options_from_json({{"lora_format", "lycoris"}}, "p.json"); }), ErrorKind::Usage);

  const dreambooth::lora::LoraConfig config = lora_config(back);
  EXPECT_EQ(config.rank, 16);
  EXPECT_DOUBLE_EQ(config.alpha_value(), 8.0);
  EXPECT_EQ(config.targets, dreambooth::lora::LoraTargets::AllLinear);
  EXPECT_FALSE(config.text_encoder);
  EXPECT_EQ(config.dtype, std::optional<c10::ScalarType>(c10::kFloat));

  auto flag_in_error = [](TrainOptions bad) {
    try {
      validate_options(bad);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage);
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NO_THROW(validate_options(o));
  TrainOptions bad = o;
  bad.lora_rank = 0;
  EXPECT_NE(flag_in_error(bad).find("--lora-rank"), std::string::npos);
  bad = o;
  bad.lora_alpha = -1.0;
  EXPECT_NE(flag_in_error(bad).find("--lora-alpha"), std::string::npos);
  bad = o;
  bad.lora_dropout = 1.0;
  EXPECT_NE(flag_in_error(bad).find("--lora-dropout"), std::string::npos);
  bad.lora = false;  // LoRA settings are not checked without --lora
  EXPECT_NO_THROW(validate_options(bad));

  const auto& invariant = resume_invariant_keys();
  for (const char* key : {"lora", "lora_rank", "lora_alpha", "lora_targets", "lora_dropout"})
    EXPECT_NE(std::find(invariant.begin(), invariant.end(), key), invariant.end()) << key;
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
