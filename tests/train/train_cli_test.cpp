// `dreambooth train` and `dreambooth tokens` as a user runs them: exit codes, Ctrl-C, sampling the result.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "dreambooth/io/image.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/train/run_checkpoint.h"
#include "support/golden.h"

extern char** environ;

namespace fs = std::filesystem;
using dreambooth::testing::run_cli;
using dreambooth::testing::TempDir;

namespace {

void write_photos(const fs::path& folder) {
  fs::create_directories(folder);
  for (int k = 0; k < 2; ++k) {
    dreambooth::io::Image image{64, 64, std::vector<uint8_t>(64 * 64 * 3)};
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>((i * (7 + k)) % 251);
    dreambooth::io::save_png(folder / ("p" + std::to_string(k) + ".png"), image);
  }
}

std::vector<std::string> train_args(const TempDir& dir, const std::string& output, const std::string& steps) {
  return {"train",        "--model",      dreambooth::testing::golden_path("tiny-sd1").string(),
          "--subject",    (dir / "subject").string(),
          "--class",      "dog",          "--output",       (dir / output).string(),
          "--token",      "sks",          "--resolution",   "64",
          "--steps",      steps,          "--seed",         "1",
          "--device",     "cpu",          "--no-prior-preservation", "--quiet"};
}

}  // namespace

TEST(TrainCli, BadSubjectFolderIsAnInputError) {
  REQUIRE_GOLDEN();
  TempDir dir;
  auto args = train_args(dir, "out", "1");
  const auto result = run_cli(args);  // no subject folder yet
  EXPECT_EQ(result.exit_code, 3) << result.err;
  EXPECT_NE(result.err.find((dir / "subject").string()), std::string::npos) << result.err;
  fs::create_directories(dir / "subject");
  std::ofstream(dir / "subject" / "readme.txt") << "not a photo";
  const auto bad = run_cli(args);
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_NE(bad.err.find("readme.txt"), std::string::npos) << bad.err;
}

TEST(TrainCli, InvalidFlagsAreUsageErrors) {
  REQUIRE_GOLDEN();
  TempDir dir;
  write_photos(dir / "subject");
  auto scheduler = train_args(dir, "out", "1");
  scheduler.insert(scheduler.end(), {"--lr-scheduler", "step"});
  EXPECT_EQ(run_cli(scheduler).exit_code, 2);
  auto mixed = train_args(dir, "out", "1");
  mixed.insert(mixed.end(), {"--mixed-precision", "fp16"});  // on the CPU
  EXPECT_EQ(run_cli(mixed).exit_code, 2);
}

TEST(TrainCli, TrainedModelSamplesAndPresetsApply) {
  REQUIRE_GOLDEN();
  TempDir dir;
  write_photos(dir / "subject");
  auto args = train_args(dir, "out", "2");
  args.insert(args.end(), {"--config", "low-memory", "--json", "--validation-prompt", "a photo of sks dog",
                           "--validation-every", "2", "--validation-images", "1", "--validation-steps", "2"});
  const auto trained = run_cli(args);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const nlohmann::json result = nlohmann::json::parse(trained.out);
  EXPECT_EQ(result.at("steps"), 2);  // the flag wins over the preset's 400
  EXPECT_EQ(result.at("token"), "sks");
  std::ifstream options_file(dir / "out" / "options.json");
  const nlohmann::json options = nlohmann::json::parse(options_file);
  EXPECT_EQ(options.at("gradient_checkpointing"), true);  // from the preset
  EXPECT_EQ(options.at("cache_latents"), true);
  // One metrics line per step, the loss curve, the validation image of step 2 (seed 1 = the run's).
  std::ifstream metrics(dir / "out" / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines)
    EXPECT_EQ(nlohmann::json::parse(line).at("step"), lines + 1);
  EXPECT_EQ(lines, 2);
  EXPECT_EQ(dreambooth::io::load_image(dir / "out" / "loss.png").width, 800);
  EXPECT_EQ(dreambooth::io::load_image(dir / "out" / "validation" / "step-000002" / "00-1.png").width, 64);

  const auto info = run_cli({"info", (dir / "out" / "model.safetensors").string(), "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("sd1"), std::string::npos) << info.out;

  const auto sampled = run_cli({"sample", "--model", (dir / "out").string(), "--prompt", "a photo of sks dog", "--steps",
                                "2", "-W", "64", "-H", "64", "--seed", "3", "--out", (dir / "samples").string(),
                                "--quiet"});
  ASSERT_EQ(sampled.exit_code, 0) << sampled.err;
  EXPECT_TRUE(fs::exists(dir / "samples" / "00000-3.png"));
}

TEST(TrainCli, LoraRunSamplesOnTheBaseAndMerges) {
  REQUIRE_GOLDEN();
  TempDir dir;
  write_photos(dir / "subject");
  const std::string base = dreambooth::testing::golden_path("tiny-sd1/tiny-sd1.safetensors").string();
  auto args = train_args(dir, "out", "2");
  args[2] = base;  // --model: the single file (its SHA-256 goes into the metadata)
  args.insert(args.end(), {"--lora", "--lora-rank", "2", "--lora-alpha", "1", "--lora-targets", "attn+ff",
                           "--save-dtype", "fp32"});
  auto as_json = args;
  as_json.push_back("--json");
  const std::string hash_cache = "DREAMBOOTH_CACHE=" + (dir / "cache").string();  // not the user's cache
  const auto trained = run_cli(as_json, hash_cache);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const nlohmann::json result = nlohmann::json::parse(trained.out);
  const fs::path lora = dir / "out" / "lora.safetensors";
  EXPECT_EQ(result.at("lora"), lora.string());
  EXPECT_TRUE(fs::equivalent(result.at("base_model").get<std::string>(), base)) << result.dump();
  EXPECT_FALSE(result.contains("model"));
  EXPECT_EQ(result.at("steps"), 2);
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));
  dreambooth::io::SafetensorsReader file(lora);
  EXPECT_EQ(file.metadata().at("ss_network_dim"), "2");
  EXPECT_EQ(file.metadata().at("ss_network_alpha"), "1.0");
  EXPECT_EQ(file.metadata().at("ss_new_sd_model_hash").size(), 64u);
  EXPECT_EQ(file.metadata().at("ss_sd_model_name"), "tiny-sd1.safetensors");
  EXPECT_TRUE(file.contains("lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_2.alpha"));

  // Without --json, stdout names the LoRA file; --overwrite starts over in the same folder.
  args.push_back("--overwrite");
  const auto plain = run_cli(args, hash_cache);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, lora.string() + "\n");

  const auto sampled = run_cli({"sample", "--model", base, "--lora", lora.string() + ":0.8", "--prompt",
                                "a photo of sks dog", "--steps", "2", "-W", "64", "-H", "64", "--seed", "3", "--out",
                                (dir / "samples").string(), "--quiet"});
  ASSERT_EQ(sampled.exit_code, 0) << sampled.err;
  EXPECT_TRUE(fs::exists(dir / "samples" / "00000-3.png"));
  EXPECT_EQ(sampled.err.find("match no layer"), std::string::npos) << sampled.err;  // every key placed

  const fs::path merged = dir / "merged.safetensors";
  const auto merge = run_cli({"merge-lora", "--model", base, "--lora", lora.string(), "--out", merged.string(),
                              "--json", "--quiet"});
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  const nlohmann::json report = nlohmann::json::parse(merge.out);
  ASSERT_EQ(report.at("loras").size(), 1u);
  const auto info = run_cli({"info", merged.string(), "--load", "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("sd1"), std::string::npos) << info.out;

  // LoRA flags are checked like the others.
  auto bad_rank = train_args(dir, "bad", "1");
  bad_rank.insert(bad_rank.end(), {"--lora", "--lora-rank", "0"});
  const auto rank = run_cli(bad_rank);
  EXPECT_EQ(rank.exit_code, 2);
  EXPECT_NE(rank.err.find("--lora-rank"), std::string::npos) << rank.err;
  auto bad_targets = train_args(dir, "bad", "1");
  bad_targets.insert(bad_targets.end(), {"--lora", "--lora-targets", "everything"});
  EXPECT_EQ(run_cli(bad_targets).exit_code, 2);
}

TEST(TrainCli, EightBitAdamTrainsFullAndLora) {
  REQUIRE_GOLDEN();
  TempDir dir;
  write_photos(dir / "subject");
  // Full fine-tuning, then LoRA at rank 64 (its 64x64 adapters reach 8-bit moments' 4096 elements).
  for (const bool lora : {false, true}) {
    auto args = train_args(dir, lora ? "lora" : "full", "2");
    args.push_back("--use-8bit-adam");
    args.erase(std::find(args.begin(), args.end(), "--quiet"));  // the log line is at info level
    if (lora) args.insert(args.end(), {"--lora", "--lora-rank", "64", "--checkpoint-every", "2"});
    const auto trained = run_cli(args);
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
    EXPECT_NE(trained.err.find("MiB (8-bit)"), std::string::npos) << trained.err;
    std::ifstream metrics(dir / (lora ? "lora" : "full") / "metrics.jsonl");
    int lines = 0;
    for (std::string line; std::getline(metrics, line); ++lines) {
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_TRUE(std::isfinite(j.at("loss").get<double>())) << line;
      if (lines == 0) {
        EXPECT_GT(j.at("optimizer_state_bytes").get<int64_t>(), 0) << line;
      }
    }
    EXPECT_EQ(lines, 2);
    std::ifstream options_file(dir / (lora ? "lora" : "full") / "options.json");
    EXPECT_EQ(nlohmann::json::parse(options_file).at("use_8bit_adam"), true);
  }
  dreambooth::io::SafetensorsReader state(dir / "lora" / "checkpoints" / "step-000002" / "optimizer.safetensors");
  int quantized = 0;
  for (const auto& e : state.entries()) quantized += e.name.size() > 6 && e.name.rfind(".codes") == e.name.size() - 6;
  EXPECT_GT(quantized, 0);
}

TEST(TrainCli, TokensSuggestsRareWords) {
  REQUIRE_GOLDEN();
  const auto result = run_cli({"tokens", "--model", dreambooth::testing::golden_path("tiny-sd1").string(), "--suggest",
                               "5", "--check", "dog"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  int lines = 0;
  for (size_t p = 0; (p = result.out.find('\n', p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 6);
  EXPECT_NE(result.out.find("dog\t1929\t"), std::string::npos) << result.out;
  EXPECT_EQ(run_cli({"tokens", "--suggest", "5"}).exit_code, 2);
}

TEST(TrainCli, SigintFinishesTheStepWritesACheckpointAndExits130) {
  REQUIRE_GOLDEN();
  TempDir dir;
  write_photos(dir / "subject");
  std::vector<std::string> args = train_args(dir, "out", "100000");
  args.insert(args.begin(), dreambooth::testing::dreambooth_binary().string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  const std::string err_path = (dir / "stderr.txt").string();
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);

  // Wait until a step has finished, then Ctrl-C.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool stepped = false;
  while (!stepped && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream metrics(dir / "out" / "metrics.jsonl");
    std::string line;
    stepped = static_cast<bool>(std::getline(metrics, line));
  }
  ASSERT_TRUE(stepped) << "no training step within the time limit";
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream err_file(err_path);
  const std::string err((std::istreambuf_iterator<char>(err_file)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));

  // The checkpoint is complete, and the run continues from it.
  const auto checkpoints = dreambooth::train::list_checkpoints(dir / "out");
  ASSERT_EQ(checkpoints.size(), 1u) << err;
  const int step = checkpoints.front().first;
  EXPECT_GE(step, 1);
  dreambooth::io::SafetensorsReader weights(checkpoints.front().second / "weights.safetensors");
  EXPECT_TRUE(weights.contains("unet.conv_in.weight"));
  auto resume = train_args(dir, "out", std::to_string(step + 1));
  resume.insert(resume.end(), {"--resume", "latest"});
  const auto resumed = run_cli(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "model.safetensors"));
}
