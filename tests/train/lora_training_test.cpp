// `train --lora` on the tiny model: only the adapters train (the base weights keep every bit, get no
// gradient and no optimizer state), the run writes OUTPUT/lora.safetensors in kohya's format with ss_*
// metadata (or PEFT keys) and no model, and an interrupted + resumed run ends with the same adapters.
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/io/image.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/dreambooth_trainer.h"
#include "dreambooth/train/optimizer.h"
#include "dreambooth/train/run_checkpoint.h"
#include "dreambooth/train/trainable_parameters.h"
#include "dreambooth/train/training_step.h"
#include "support/golden.h"
#include "support/tensor_close.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::TempDir;
using namespace dreambooth;

namespace {

// The same float32 arithmetic replayed (resume) or weights never written: equal to the bit.
constexpr double kLoraTrainBitIdentical = 0.0;

train::TrainOptions lora_options(const TempDir& dir, const std::string& output) {
  train::TrainOptions o = dreambooth::testing::tiny_train_options(dir, output, 11);
  o.lora = true;
  o.steps = 3;
  return o;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}


}  // namespace

TEST(LoraTraining, OnlyTheAdaptersTrainAndTheBaseKeepsEveryBit) {
  REQUIRE_GOLDEN();
  checkpoint::LoadOptions load;
  load.path = dreambooth::testing::golden_path("tiny-sd1");
  checkpoint::StableDiffusion model = checkpoint::load_stable_diffusion(load);
  const checkpoint::StableDiffusion pristine = checkpoint::load_stable_diffusion(load);

  train::TrainOptions options;
  options.lora = true;
  options.train_text_encoder = true;
  options.seed = 3;
  options.lr = 1e-2;
  const train::TrainableParameters trainable = train::select_trainable_parameters(options, model);
  ASSERT_EQ(trainable.method, "lora");
  ASSERT_TRUE(trainable.lora_network);
  EXPECT_TRUE(trainable.text_encoder_trains);
  // Two tensors (down, up) per adapted module, named by their kohya file keys.
  ASSERT_EQ(trainable.parameters.size(), 2 * trainable.lora_network->modules().size());
  int text_encoder_tensors = 0;
  for (const auto& p : trainable.parameters) {
    EXPECT_TRUE(starts_with(p.name, "lora_unet_") || starts_with(p.name, "lora_te_")) << p.name;
    EXPECT_TRUE(ends_with(p.name, ".lora_down.weight") || ends_with(p.name, ".lora_up.weight")) << p.name;
    EXPECT_TRUE(p.tensor.requires_grad()) << p.name;
    if (starts_with(p.name, "lora_te_")) ++text_encoder_tensors;
  }
  EXPECT_GT(text_encoder_tensors, 0);
  const std::vector<torch::nn::Module*> base_modules = {model.unet.ptr().get(), model.text_encoder.ptr().get(),
                                                        model.vae.ptr().get()};
  for (torch::nn::Module* module : base_modules)
    for (const auto& p : module->parameters()) EXPECT_FALSE(p.requires_grad());

  // Three optimizer steps on the golden step's inputs.
  io::SafetensorsReader g(dreambooth::testing::golden_path("tiny-sd1/golden/dreambooth_step_te.safetensors"));
  const schedulers::NoiseSchedule schedule = schedulers::make_noise_schedule(
      schedulers::SchedulerConfig::from_json(model.description.scheduler, "tiny-sd1 scheduler"));
  const train::StepModels models = train::step_models_of(model, schedule);
  const auto [batch, noise] = dreambooth::testing::golden_step_inputs(g);
  auto optimizer = train::make_adamw(trainable, options);
  train::set_training_mode(model, trainable, true);
  std::vector<double> losses;
  for (int step = 0; step < 3; ++step) {
    optimizer->zero_grad();
    const train::StepLosses l = train::step_loss(models, batch, noise, {});
    l.loss.backward();
    losses.push_back(l.loss.item<double>());
    optimizer->step();
  }
  std::printf("[lora] losses %.6f %.6f %.6f\n", losses[0], losses[1], losses[2]);
  for (double loss : losses) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NE(losses[2], losses[0]);  // the adapters changed the model

  // Optimizer state exists for exactly the adapter tensors (exp_avg, exp_avg_sq, step each).
  const auto state = train::optimizer_state_tensors(*optimizer, trainable);
  EXPECT_EQ(state.size(), 3 * trainable.parameters.size());
  for (const auto& t : state) EXPECT_TRUE(starts_with(t.name, "lora_")) << t.name;
  EXPECT_EQ(optimizer->param_groups().front().params().size(), trainable.parameters.size());
  // The ups moved away from zero.
  double largest_up = 0;
  for (const auto& p : trainable.parameters)
    if (ends_with(p.name, ".lora_up.weight")) largest_up = std::max(largest_up, p.tensor.abs().max().item<double>());
  EXPECT_GT(largest_up, 0.0);

  // No base weight has a gradient buffer, and every one holds exactly its loaded value.
  auto expect_untouched = [](torch::nn::Module& trained, torch::nn::Module& original, const std::string& what) {
    const auto after = trained.named_parameters();
    const auto before = original.named_parameters();
    ASSERT_EQ(after.size(), before.size()) << what;
    double worst = 0;
    for (const auto& item : after) {
      EXPECT_FALSE(item.value().grad().defined()) << what << " " << item.key();
      worst = std::max(worst, dreambooth::testing::max_abs_diff(item.value(), before[item.key()]));
    }
    std::printf("[lora] %s: %zu base tensors, max |trained - loaded| = %g\n", what.c_str(), after.size(), worst);
    EXPECT_EQ(worst, kLoraTrainBitIdentical) << what;
  };
  expect_untouched(*model.unet, *pristine.unet, "unet");
  expect_untouched(*model.text_encoder, *pristine.text_encoder, "text encoder");
  expect_untouched(*model.vae, *pristine.vae, "vae");
}

TEST(LoraTraining, ShortRunWritesAKohyaLoraWithMetadataAndNoModel) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = lora_options(dir, "run");
  o.checkpoint_every = 3;  // a checkpoint at the end: its optimizer state shows what trained
  o.gradient_checkpointing = true;
  o.cache_latents = true;
  const train::TrainResult result = train::train_dreambooth(o);
  EXPECT_EQ(result.steps, 3);
  EXPECT_EQ(result.lora_path, dir / "run" / "lora.safetensors");
  EXPECT_TRUE(result.model_path.empty());
  EXPECT_FALSE(fs::exists(dir / "run" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "run" / "diffusers"));

  // options.json: the LoRA learning rate default and the LoRA settings.
  std::ifstream options_file(dir / "run" / "options.json");
  const nlohmann::json options = nlohmann::json::parse(options_file);
  EXPECT_EQ(options.at("lr"), train::kDefaultLoraLr);
  EXPECT_EQ(options.at("lora"), true);
  EXPECT_EQ(options.at("lora_rank"), 4);
  EXPECT_EQ(options.at("lora_targets"), "attn");
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const nlohmann::json m = nlohmann::json::parse(line);
    EXPECT_TRUE(m.at("loss").is_number() && std::isfinite(m.at("loss").get<double>())) << line;
  }
  EXPECT_EQ(lines, 3);

  // kohya keys: down/up/alpha per UNet attention projection, nothing of the text encoder; fp32 as asked.
  io::SafetensorsReader file(result.lora_path);
  int downs = 0, ups = 0, alphas = 0;
  for (const auto& e : file.entries()) {
    EXPECT_TRUE(starts_with(e.name, "lora_unet_")) << e.name;
    if (ends_with(e.name, ".lora_down.weight")) ++downs;
    if (ends_with(e.name, ".lora_up.weight")) ++ups;
    if (ends_with(e.name, ".alpha")) ++alphas;
    EXPECT_EQ(e.scalar_type, c10::kFloat) << e.name;
  }
  EXPECT_GT(downs, 0);
  EXPECT_EQ(ups, downs);
  EXPECT_EQ(alphas, downs);
  EXPECT_TRUE(file.contains("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  EXPECT_TRUE(file.contains("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0.lora_up.weight"));
  const io::Metadata& meta = file.metadata();
  EXPECT_EQ(meta.at("ss_network_module"), "networks.lora");
  EXPECT_EQ(meta.at("ss_network_dim"), "4");
  EXPECT_EQ(meta.at("ss_base_model_version"), "sd_v1");
  EXPECT_EQ(meta.at("ss_steps"), "3");
  EXPECT_EQ(meta.at("ss_resolution"), "(64, 64)");
  EXPECT_NE(meta.at("ss_tag_frequency").find("sks dog"), std::string::npos) << meta.at("ss_tag_frequency");
  EXPECT_EQ(meta.at("ss_sd_model_name"), "tiny-sd1");  // a diffusers folder: no file hash
  EXPECT_EQ(meta.count("ss_new_sd_model_hash"), 0u);

  // It trained: some up weight is non-zero; the checkpoint's optimizer state covers exactly the adapters.
  const lora::LoraWeights weights = lora::load_lora_file(result.lora_path);
  double largest_up = 0;
  for (const auto& m : weights.modules) largest_up = std::max(largest_up, m.up.abs().max().item<double>());
  EXPECT_GT(largest_up, 0.0);
  const auto checkpoints = train::list_checkpoints(dir / "run");
  ASSERT_EQ(checkpoints.size(), 1u);
  const auto trained = dreambooth::testing::read_all_tensors(checkpoints.front().second / "weights.safetensors");
  const auto state = dreambooth::testing::read_all_tensors(checkpoints.front().second / "optimizer.safetensors");
  EXPECT_EQ(trained.size(), static_cast<size_t>(downs + ups));
  EXPECT_EQ(state.size(), 3 * trained.size());
  for (const auto& [name, tensor] : trained) EXPECT_TRUE(file.contains(name)) << name;
}

TEST(LoraTraining, TextEncoderAdaptersAndPeftKeys) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = lora_options(dir, "kohya");
  o.steps = 2;
  o.train_text_encoder = true;
  o.lora_targets = lora::LoraTargets::AttentionFeedForward;
  train::train_dreambooth(o);
  const lora::LoraWeights kohya = lora::load_lora_file(dir / "kohya" / "lora.safetensors");
  int text_encoder_modules = 0;
  for (const auto& m : kohya.modules) {
    if (starts_with(m.name, "lora_te_")) ++text_encoder_modules;
    EXPECT_EQ(m.naming, lora::LoraFormat::Kohya);
  }
  EXPECT_GT(text_encoder_modules, 0);
  io::SafetensorsReader kohya_file(dir / "kohya" / "lora.safetensors");
  EXPECT_TRUE(kohya_file.contains("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"));
  EXPECT_TRUE(kohya_file.contains("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"));
  EXPECT_EQ(kohya_file.metadata().at("ss_network_train_unet_only"), "False");

  o.output = (dir / "peft").string();
  o.lora_format = lora::LoraFormat::Diffusers;
  o.save_dtype = train::SaveDtype::Fp16;
  train::train_dreambooth(o);
  const lora::LoraWeights peft = lora::load_lora_file(dir / "peft" / "lora.safetensors");
  EXPECT_EQ(peft.format, lora::LoraFormat::Diffusers);
  EXPECT_EQ(peft.modules.size(), kohya.modules.size());
  io::SafetensorsReader peft_file(dir / "peft" / "lora.safetensors");
  for (const auto& e : peft_file.entries()) {
    EXPECT_TRUE(starts_with(e.name, "unet.") || starts_with(e.name, "text_encoder.")) << e.name;
    EXPECT_EQ(e.scalar_type, c10::kHalf) << e.name;
  }
}

TEST(LoraTraining, ResumedRunEndsWithTheSameAdaptersAsAnUninterruptedOne) {
  REQUIRE_GOLDEN();
  dreambooth::testing::InterruptCleaner cleaner;
  TempDir dir;
  train::TrainOptions o = lora_options(dir, "a");
  o.steps = 5;
  dreambooth::testing::use_everything_a_resume_restores(o, dir);
  o.train_text_encoder = true;
  o.lora_dropout = 0.25;  // dropout masks: the device generator's state must be restored too
  train::train_dreambooth(o);

  o.output = (dir / "b").string();
  dreambooth::testing::run_interrupted_after(o, 3);
  EXPECT_FALSE(fs::exists(dir / "b" / "lora.safetensors"));
  const auto checkpoints = train::list_checkpoints(dir / "b");
  ASSERT_FALSE(checkpoints.empty());
  EXPECT_EQ(checkpoints.back().first, 3);
  io::SafetensorsReader saved(checkpoints.back().second / "weights.safetensors");
  for (const auto& e : saved.entries()) EXPECT_TRUE(starts_with(e.name, "lora_")) << e.name;

  // A different rank cannot resume this run.
  train::TrainOptions other = o;
  other.resume = "latest";
  other.lora_rank = 8;
  try {
    train::train_dreambooth(other);
    FAIL() << "resumed with another rank";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("lora_rank"), std::string::npos) << e.what();
  }

  o.resume = "latest";
  const train::TrainResult resumed = train::train_dreambooth(o);
  EXPECT_EQ(resumed.steps, 5);
  const double worst = dreambooth::testing::max_abs_diff_between_files(
      dir / "a" / "lora.safetensors", dir / "b" / "lora.safetensors", "lora resume: uninterrupted vs resumed");
  EXPECT_EQ(worst, kLoraTrainBitIdentical);
}
