// Whole training runs on the tiny model (64x64, a few steps): the loss falls, a resumed run ends with the
// same weights as an uninterrupted one, interrupts leave a checkpoint, NaN stops the run, outputs load.
#include <fstream>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/io/image.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/text/tokenizer.h"
#include "dreambooth/train/class_images.h"
#include "dreambooth/train/dreambooth_trainer.h"
#include "dreambooth/train/identifier.h"
#include "dreambooth/train/image_transforms.h"
#include "dreambooth/train/run_checkpoint.h"
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

train::TrainOptions tiny_options(const TempDir& dir, const std::string& output) {
  train::TrainOptions o = dreambooth::testing::tiny_train_options(dir, output, 7);
  o.lr = 1e-4;
  return o;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The instance loss of a model on fixed inputs: the subject images' center crops, 8 timesteps across the
// schedule, fixed noise. Lower is better; independent of the run's random draws.
double fixed_instance_loss(const fs::path& model_path, const fs::path& subject) {
  checkpoint::LoadOptions load;
  load.path = model_path;
  checkpoint::StableDiffusion model = checkpoint::load_stable_diffusion(load);
  const auto tokenizer = text::load_tokenizer(dreambooth::testing::golden_path("tiny-sd1/tokenizer"));
  const schedulers::NoiseSchedule schedule = schedulers::make_noise_schedule(
      schedulers::SchedulerConfig::from_json(model.description.scheduler, "scheduler"));
  const train::StepModels models = train::step_models_of(model, schedule);
  std::vector<at::Tensor> pixels;
  for (const char* name : {"photo0.png", "photo1.png"}) {
    const io::Image image = train::resize_shorter_side(io::load_image(subject / name), 64);
    pixels.push_back(train::image_to_tensor(train::crop(image, train::center_crop_box(image.width, image.height, 64))));
  }
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(1234);
  double total = 0;
  for (int64_t t : {50, 150, 300, 450, 600, 750, 850, 950}) {
    train::StepBatch batch;
    batch.pixel_values = torch::stack(pixels);
    batch.input_ids = tokenizer->encode_batch({"a photo of sks dog", "a photo of sks dog"});
    batch.num_instance = 2;
    train::StepNoise noise;
    noise.posterior_eps = torch::randn({2, 4, 8, 8}, generator);
    noise.noise = torch::randn({2, 4, 8, 8}, generator);
    noise.timesteps = torch::full({2}, t, torch::kLong);
    total += train::step_loss(models, batch, noise, {}).loss.item<double>();
  }
  return total / 8;
}


}  // namespace

TEST(Trainer, InstanceLossFallsAndTheOutputLoads) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "run");
  o.steps = 12;
  o.lr = 1e-3;
  o.batch_size = 2;
  o.center_crop = true;
  const train::TrainResult result = train::train_dreambooth(o);
  EXPECT_EQ(result.steps, 12);
  EXPECT_EQ(result.model_path, dir / "run" / "model.safetensors");

  const double before = fixed_instance_loss(dreambooth::testing::golden_path("tiny-sd1"), dir / "subject");
  const double after = fixed_instance_loss(result.model_path, dir / "subject");
  std::printf("[loss] fixed instance loss before %.4f after %.4f\n", before, after);
  EXPECT_LT(after, 0.8 * before);

  // The run folder: options, one metrics line per step, loss curve, tokenizer; `sample --model OUTPUT` loads it.
  const nlohmann::json options = nlohmann::json::parse(read_text(dir / "run" / "options.json"));
  EXPECT_EQ(options.at("steps"), 12);
  EXPECT_EQ(options.at("seed"), 7);
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines)
    EXPECT_EQ(nlohmann::json::parse(line).at("step"), lines + 1);
  EXPECT_EQ(lines, 12);
  const io::Image plot = io::load_image(dir / "run" / "loss.png");
  EXPECT_EQ(plot.width, 800);
  pipelines::ModelRequest request;
  request.path = dir / "run";
  const pipelines::LoadedModel loaded = pipelines::load_model(request);
  EXPECT_EQ(loaded.resolved_path, dir / "run" / "model.safetensors");
  EXPECT_EQ(loaded.tokenizer_source.path, dir / "run" / "tokenizer");
}

TEST(Trainer, ResumedRunEndsWithTheSameWeightsAsAnUninterruptedOne) {
  REQUIRE_GOLDEN();
  dreambooth::testing::InterruptCleaner cleaner;
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "a");
  o.steps = 6;
  dreambooth::testing::use_everything_a_resume_restores(o, dir);
  o.keep_checkpoints = 2;
  train::train_dreambooth(o);
  EXPECT_EQ(train::count_class_images(dir / "class"), 2);

  // The same run, interrupted after step 3 (Ctrl-C): a checkpoint of step 3, then resumed.
  o.output = (dir / "b").string();
  dreambooth::testing::run_interrupted_after(o, 3);
  EXPECT_FALSE(fs::exists(dir / "b" / "model.safetensors"));
  const auto checkpoints = train::list_checkpoints(dir / "b");
  ASSERT_EQ(checkpoints.size(), 2u);  // step 2, step 3 (--keep-checkpoints 2)
  EXPECT_EQ(checkpoints.back().first, 3);

  o.resume = "latest";
  const train::TrainResult resumed = train::train_dreambooth(o);
  EXPECT_EQ(resumed.steps, 6);

  const double worst = dreambooth::testing::max_abs_diff_between_files(
      dir / "a" / "model.safetensors", dir / "b" / "model.safetensors", "resume: uninterrupted vs resumed");
  EXPECT_EQ(worst, 0.0);
  // The metrics of the resumed run continue the first one's.
  std::ifstream metrics(dir / "b" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 6);
}

TEST(Trainer, EightBitAdamResumesBitForBit) {
  REQUIRE_GOLDEN();
  dreambooth::testing::InterruptCleaner cleaner;
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "a");
  o.use_8bit_adam = true;
  o.steps = 4;
  o.checkpoint_every = 2;
  train::train_dreambooth(o);

  o.output = (dir / "b").string();
  dreambooth::testing::run_interrupted_after(o, 2);
  // The checkpoint holds 8-bit moments (codes + block absmax) for the big tensors.
  io::SafetensorsReader state(dir / "b" / "checkpoints" / "step-000002" / "optimizer.safetensors");
  int quantized = 0;
  for (const auto& e : state.entries()) quantized += e.name.size() > 6 && e.name.rfind(".codes") == e.name.size() - 6;
  EXPECT_GT(quantized, 0);
  o.resume = "latest";
  EXPECT_EQ(train::train_dreambooth(o).steps, 4);

  const double worst = dreambooth::testing::max_abs_diff_between_files(
      dir / "a" / "model.safetensors", dir / "b" / "model.safetensors", "resume 8-bit: uninterrupted vs resumed");
  EXPECT_EQ(worst, 0.0);
  // The first metrics line records the optimizer state size; the losses are finite.
  std::ifstream metrics(dir / "a" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_TRUE(std::isfinite(j.at("loss").get<double>()));
    EXPECT_EQ(j.contains("optimizer_state_bytes"), lines == 0) << line;
    if (lines == 0) {
      EXPECT_GT(j.at("optimizer_state_bytes").get<int64_t>(), 0);
    }
  }
  EXPECT_EQ(lines, 4);
}

TEST(Trainer, EarlierRunNeedsResumeOrOverwrite) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "run");
  o.steps = 1;
  o.token = train::kAutoToken;
  const train::TrainResult first = train::train_dreambooth(o);
  // --token auto picked a rare single-token word and recorded it.
  const auto tokenizer = text::load_tokenizer(dreambooth::testing::golden_path("tokenizer"));
  EXPECT_TRUE(train::check_identifier(*tokenizer, first.token).rare) << first.token;
  EXPECT_EQ(nlohmann::json::parse(read_text(dir / "run" / "options.json")).at("token"), first.token);
  try {
    train::train_dreambooth(o);
    FAIL() << "a second run overwrote the first";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos);
  }
  o.overwrite = true;
  EXPECT_EQ(train::train_dreambooth(o).token, first.token);  // same seed, same choice
}

TEST(Trainer, NonFiniteLossStopsWithoutWritingAModel) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "run");
  o.steps = 5;
  o.lr = 1e30;  // the first update blows the weights up
  o.max_grad_norm = 0;
  try {
    train::train_dreambooth(o);
    FAIL() << "training went on with a non-finite loss";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Numerical);
    std::printf("[nan] %s\n", e.what());
  }
  EXPECT_FALSE(fs::exists(dir / "run" / "model.safetensors"));
}

TEST(Trainer, MemorySaversTrainTheTextEncoderToo) {
  REQUIRE_GOLDEN();
  TempDir dir;
  train::TrainOptions o = tiny_options(dir, "run");
  o.steps = 2;
  o.cache_latents = true;           // VAE freed, reloaded for saving
  o.gradient_checkpointing = true;
  o.train_text_encoder = true;
  o.snr_gamma = 5.0;
  o.offset_noise = 0.1;
  o.flip = true;
  o.save_format = train::SaveFormat::Both;
  train::train_dreambooth(o);
  // The text encoder moved; the VAE did not.
  const auto trained = dreambooth::testing::read_all_tensors(dir / "run" / "model.safetensors");
  io::SafetensorsReader original(dreambooth::testing::golden_path("tiny-sd1/tiny-sd1.safetensors"));
  const std::string te_key = "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight";
  const std::string vae_key = "first_stage_model.encoder.conv_in.weight";
  EXPECT_GT(dreambooth::testing::max_abs_diff(trained.at(te_key), original.load(te_key, c10::kFloat)), 0.0);
  EXPECT_EQ(dreambooth::testing::max_abs_diff(trained.at(vae_key), original.load(vae_key, c10::kFloat)), 0.0);
  EXPECT_TRUE(fs::exists(dir / "run" / "diffusers" / "model_index.json"));
  EXPECT_TRUE(fs::exists(dir / "run" / "diffusers" / "tokenizer" / "vocab.json"));
}

TEST(ClassImages, GeneratedOnceWithSeedsRecorded) {
  REQUIRE_GOLDEN();
  TempDir dir;
  pipelines::ModelRequest request;
  request.path = dreambooth::testing::golden_path("tiny-sd1");
  const pipelines::LoadedModel loaded = pipelines::load_model(request);
  train::ClassImageSettings s;
  s.folder = dir / "class";
  s.prompt = "a photo of dog";
  s.count = 3;
  s.resolution = 64;
  s.steps = 2;
  s.batch_size = 2;
  s.seed = 100;
  s.quiet = true;
  auto report = train::ensure_class_images(loaded.sd, *loaded.tokenizer, s);
  EXPECT_EQ(report.existing, 0);
  EXPECT_EQ(report.generated, 3);
  const nlohmann::json manifest = nlohmann::json::parse(read_text(dir / "class" / "manifest.json"));
  ASSERT_EQ(manifest.at("images").size(), 3u);
  EXPECT_EQ(manifest["images"][2].at("seed"), 102);
  const std::string file = manifest["images"][2].at("file");
  const auto text = io::read_png_text(dir / "class" / file);
  ASSERT_FALSE(text.empty());
  EXPECT_NE(text[0].second.find("Seed: 102"), std::string::npos);
  EXPECT_NE(text[0].second.find("DPM++ 2M"), std::string::npos);

  // A rerun finds them; one more continues the seed sequence; the user's own images count as they are.
  report = train::ensure_class_images(loaded.sd, *loaded.tokenizer, s);
  EXPECT_EQ(report.existing, 3);
  EXPECT_EQ(report.generated, 0);
  io::save_png(dir / "class" / "mine.png", io::Image{64, 64, std::vector<uint8_t>(64 * 64 * 3, 128)});
  s.count = 5;
  report = train::ensure_class_images(loaded.sd, *loaded.tokenizer, s);
  EXPECT_EQ(report.existing, 4);
  EXPECT_EQ(report.generated, 1);
  EXPECT_EQ(nlohmann::json::parse(read_text(dir / "class" / "manifest.json"))["images"][3].at("seed"), 103);
}
