// `dreambooth merge-lora` and `dreambooth sample --lora` end to end on the golden tiny model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/io/image.h"
#include "dreambooth/lora/apply.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/pipelines/model_hash.h"
#include "lora/lora_test_util.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth::lora;
using namespace dreambooth::testing;

namespace {

LoraNetwork cli_test_network(const dreambooth::checkpoint::StableDiffusion& model, bool random_up) {
  LoraConfig config;
  config.rank = 4;
  config.alpha = 4.0;
  config.targets = LoraTargets::AttentionFeedForward;
  config.text_encoder = true;
  config.seed = 17;
  LoraNetwork network = inject_lora(model, config);
  if (random_up) randomize_lora_up(network, 18);
  return network;
}

// The decoded pixels of a PNG (its text chunks name the model, which differs between the runs compared).
at::Tensor png_pixels(const fs::path& path) {
  const dreambooth::io::Image image = dreambooth::io::load_image(path);
  std::vector<uint8_t> pixels = image.pixels;
  return torch::tensor(std::vector<int64_t>(pixels.begin(), pixels.end())).reshape({image.height, image.width, 3});
}

std::vector<std::string> sample_args(const fs::path& out, const fs::path& model = golden_path("tiny-sd1")) {
  return {"sample", "--model", model.string(), "--prompt", "a photo of sks dog", "--seed", "42", "--steps", "2",
          "--width", "64", "--height", "64", "--scheduler", "ddim", "--out", out.string(), "--quiet"};
}

const char* const kLoraPng = "00000-42.png";

std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

}  // namespace

TEST(LoraCli, MergeLoraWritesWhatApplyingComputes) {
  REQUIRE_GOLDEN();
  TempDir dir;
  auto model = golden_tiny_model();
  LoraNetwork network = cli_test_network(model, true);
  save_lora(network, dir / "a.safetensors");
  LoraSaveOptions peft;
  peft.format = LoraFormat::Diffusers;
  save_lora(network, dir / "b.safetensors", peft);

  const fs::path merged = dir / "merged.safetensors";
  const std::string lora_a = (dir / "a.safetensors").string() + ":0.5";
  const std::string lora_b = (dir / "b.safetensors").string() + ":0.3";
  const auto result = run_cli({"merge-lora", "--model", golden_path("tiny-sd1").string(), "--lora", lora_a, "--lora",
                               lora_b, "--out", merged.string(), "--json", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report.at("path"), merged.string());
  ASSERT_EQ(report.at("loras").size(), 2u);
  EXPECT_EQ(report["loras"][0].at("format"), "kohya");
  EXPECT_EQ(report["loras"][1].at("format"), "diffusers");
  EXPECT_EQ(report["loras"][1].at("scale"), 0.3);
  for (const auto& l : report["loras"]) {
    EXPECT_EQ(l.at("modules"), network->modules().size());
    EXPECT_TRUE(l.at("unplaced_keys").empty());
  }
  EXPECT_TRUE(fs::exists(dir / "merged.tokenizer" / "vocab.json")) << "the base's tokenizer travels with it";

  dreambooth::checkpoint::LoadOptions load;
  load.path = merged;
  const auto from_file = dreambooth::checkpoint::load_stable_diffusion(load);
  auto expected = golden_tiny_model();
  apply_lora(expected, load_lora_file(dir / "a.safetensors"), 0.5);
  apply_lora(expected, load_lora_file(dir / "b.safetensors"), 0.3);
  const auto a = dreambooth::checkpoint::model_tensors(from_file), b = dreambooth::checkpoint::model_tensors(expected);
  for (auto c : dreambooth::checkpoint::kAllComponents)
    for (const auto& [key, tensor] : b[c]) EXPECT_TENSOR_CLOSE(a[c].at(key), tensor, kLoraBitIdentical, key);

  // The merged file's UNet computes what the run-time adapters compute (0.5 + 0.3 of the same LoRA).
  network->set_multiplier(0.8);
  const UNetInputs in = tiny_unet_inputs();
  EXPECT_TENSOR_CLOSE(run_unet(from_file, in), run_unet(model, in), kRuntimeVsMerged, "merged file vs runtime");

  // Sampling the merged file = sampling the base with the same LoRAs applied at load time.
  const auto from_merged = run_cli(sample_args(dir / "m", merged));
  ASSERT_EQ(from_merged.exit_code, 0) << from_merged.err;
  const auto applied = run_cli(with(sample_args(dir / "l"), {"--lora", lora_a, "--lora", lora_b}));
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_TENSOR_CLOSE(png_pixels(dir / "m" / kLoraPng), png_pixels(dir / "l" / kLoraPng), kLoraBitIdentical,
                      "merge-lora then sample vs sample --lora");

  // The PNG says which LoRAs drew it, as AUTOMATIC1111 writes (and re-applies) them.
  const auto text = dreambooth::io::read_png_text(dir / "l" / kLoraPng);
  ASSERT_EQ(text.size(), 1u);
  const std::string& parameters = text[0].second;
  EXPECT_NE(parameters.find(" <lora:a:0.5> <lora:b:0.3>\n"), std::string::npos) << parameters;
  const std::string hashes =
      "Lora hashes: \"a: " + dreambooth::pipelines::safetensors_data_sha256(dir / "a.safetensors").substr(0, 12) +
      ", b: " + dreambooth::pipelines::safetensors_data_sha256(dir / "b.safetensors").substr(0, 12) + "\"";
  EXPECT_NE(parameters.find(hashes), std::string::npos) << parameters;

  // Refuses to overwrite; --out must be a single file.
  const auto again = run_cli({"merge-lora", "--model", golden_path("tiny-sd1").string(), "--lora",
                              (dir / "a.safetensors").string(), "--out", merged.string()});
  EXPECT_EQ(again.exit_code, 5) << again.err;
  const auto folder = run_cli({"merge-lora", "--model", golden_path("tiny-sd1").string(), "--lora",
                               (dir / "a.safetensors").string(), "--out", (dir / "merged").string()});
  EXPECT_EQ(folder.exit_code, 2) << folder.err;
}

TEST(LoraCli, SampleAppliesLoraFiles) {
  REQUIRE_GOLDEN();
  TempDir dir;
  auto model = golden_tiny_model();
  save_lora(cli_test_network(model, false), dir / "zero.safetensors");
  auto other = golden_tiny_model();
  save_lora(cli_test_network(other, true), dir / "random.safetensors");

  const auto base = run_cli(sample_args(dir / "base"));
  ASSERT_EQ(base.exit_code, 0) << base.err;
  const auto zero = run_cli(with(sample_args(dir / "zero"), {"--lora", (dir / "zero.safetensors").string()}));
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  const auto lora = run_cli(with(sample_args(dir / "lora"), {"--lora", (dir / "random.safetensors").string() + ":1.5"}));
  ASSERT_EQ(lora.exit_code, 0) << lora.err;
  const at::Tensor base_pixels = png_pixels(dir / "base" / kLoraPng);
  EXPECT_TENSOR_CLOSE(png_pixels(dir / "zero" / kLoraPng), base_pixels, kLoraBitIdentical, "a zero LoRA");
  EXPECT_GT(max_abs_diff(png_pixels(dir / "lora" / kLoraPng), base_pixels), 0.0) << "the LoRA had no effect";
}

TEST(LoraCli, SampleWarnsAboutUnplacedKeysAndRefusesOtherFamilies) {
  REQUIRE_GOLDEN();
  TempDir dir;
  torch::manual_seed(4);
  const std::string q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
  dreambooth::io::write_safetensors(dir / "partial.safetensors",
                                    {{q + ".lora_down.weight", torch::randn({2, 32})},
                                     {q + ".lora_up.weight", torch::randn({32, 2})},
                                     {"lora_unet_not_a_module.lora_down.weight", torch::randn({2, 32})},
                                     {"lora_unet_not_a_module.lora_up.weight", torch::randn({32, 2})}});
  const auto partial = run_cli(with(sample_args(dir / "p"), {"--lora", (dir / "partial.safetensors").string()}));
  EXPECT_EQ(partial.exit_code, 0) << partial.err;
  EXPECT_NE(partial.err.find("lora_unet_not_a_module.lora_down.weight"), std::string::npos) << partial.err;

  dreambooth::io::write_safetensors(dir / "wide.safetensors",
                                    {{q + ".lora_down.weight", torch::randn({2, 320})},
                                     {q + ".lora_up.weight", torch::randn({320, 2})}});
  const auto wide = run_cli(with(sample_args(dir / "w"), {"--lora", (dir / "wide.safetensors").string()}));
  EXPECT_EQ(wide.exit_code, 4) << wide.err;
  EXPECT_NE(wide.err.find("wide.safetensors"), std::string::npos) << wide.err;
  EXPECT_FALSE(fs::exists(dir / "w" / kLoraPng));

  // A missing LoRA file is an input error naming it.
  const auto missing = run_cli(with(sample_args(dir / "x"), {"--lora", (dir / "nope.safetensors").string() + ":0.5"}));
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_NE(missing.err.find("nope.safetensors"), std::string::npos) << missing.err;
}
