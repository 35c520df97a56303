// The command line as scripts see it: exit codes, one-line errors, machine-readable output, files.
#include <fstream>

#include <gtest/gtest.h>

#include "dreambooth/io/image.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::testing::golden_path;
using dreambooth::testing::run_cli;
using dreambooth::testing::TempDir;

namespace {

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// A tiny model made by `init`, shared by the tests of this file (building it takes a second).
const fs::path& tiny_model() {
  static TempDir dir;
  static fs::path model = [] {
    fs::path p = dir / "tiny.safetensors";
    auto r = run_cli({"init", "--preset", "tiny", "--out", p.string(), "--quiet"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return p;
  }();
  return model;
}

}  // namespace

TEST(Cli, HelpListsCommandsAndExitCodes) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* command : {"info", "init", "convert", "sample"}) EXPECT_NE(r.out.find(command), std::string::npos);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  auto sample_help = run_cli({"sample", "--help"});
  EXPECT_NE(sample_help.out.find("dpmpp_2m"), std::string::npos) << "sampler list missing from --help";
}

TEST(Cli, BadFlagsAreUsageErrors) {
  auto unknown = run_cli({"sample", "--model", "x", "--prompt", "p", "--no-such-flag"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(count_lines(unknown.err), 1) << unknown.err;
  auto no_command = run_cli({});
  EXPECT_EQ(no_command.exit_code, 2);
}

TEST(Cli, InitThenInfoDescribesTheTinyModel) {
  auto r = run_cli({"info", tiny_model().string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("family"), "sd1");
  EXPECT_EQ(j.at("layout"), "single-file");
  EXPECT_EQ(j.at("prediction_type"), "epsilon");
  EXPECT_GT(j.at("parameters").at("unet").get<int64_t>(), 1000000);
  EXPECT_EQ(j.at("tokenizer").at("source"), "beside the model");
  EXPECT_EQ(count_lines(r.out), 1);
}

TEST(Cli, InitCopiesAGivenTokenizerInsteadOfTrainingOne) {
  REQUIRE_GOLDEN();
  TempDir dir;
  const fs::path model = dir / "clip.safetensors";
  auto r = run_cli({"init", "--preset", "tiny", "--out", model.string(), "--tokenizer",
                    golden_path("tokenizer").string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path tokenizer = dir / "clip.tokenizer";
  EXPECT_TRUE(fs::exists(tokenizer / "vocab.json"));
  EXPECT_TRUE(fs::exists(tokenizer / "merges.txt"));
  EXPECT_EQ(fs::file_size(tokenizer / "vocab.json"), fs::file_size(golden_path("tokenizer/vocab.json")));

  auto missing = run_cli({"init", "--preset", "tiny", "--out", (dir / "other.safetensors").string(), "--tokenizer",
                          (dir / "no-such-tokenizer").string(), "--quiet"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_EQ(count_lines(missing.err), 1) << missing.err;
  EXPECT_NE(missing.err.find("no-such-tokenizer"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir / "other.safetensors"));
}

TEST(Cli, InfoOnGoldenModelsInBothLayouts) {
  REQUIRE_GOLDEN();
  for (const char* path : {"tiny-sd1", "tiny-sd1/tiny-sd1.safetensors"}) {
    auto r = run_cli({"info", golden_path(path).string(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("family"), "sd1") << path;
    // The counts of the golden diffusers files (checked key by key in the model tests).
    EXPECT_EQ(j.at("parameters").at("unet").get<int64_t>(), 1106212) << path;
    EXPECT_EQ(j.at("parameters").at("vae").get<int64_t>(), 1028935) << path;
    EXPECT_EQ(j.at("parameters").at("text_encoder").get<int64_t>(), 1603951) << path;
  }
}

TEST(Cli, ConvertRoundTripIsByteExact) {
  REQUIRE_GOLDEN();
  TempDir dir;
  auto to_diffusers = run_cli({"convert", golden_path("tiny-sd1/tiny-sd1.safetensors").string(),
                               (dir / "diffusers").string(), "--layout", "diffusers", "--quiet"});
  ASSERT_EQ(to_diffusers.exit_code, 0) << to_diffusers.err;
  auto back = run_cli({"convert", (dir / "diffusers").string(), (dir / "back.safetensors").string(), "--layout",
                       "single", "--quiet"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  auto again = run_cli({"convert", (dir / "back.safetensors").string(), (dir / "again").string(), "--layout",
                        "diffusers", "--quiet"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  // Same tensors in both single files and in both diffusers folders (our metadata may differ from the source).
  for (const char* file : {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                           "text_encoder/model.safetensors"}) {
    std::ifstream a(dir / "diffusers" / file, std::ios::binary), b(dir / "again" / file, std::ios::binary);
    std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_FALSE(sa.empty());
    EXPECT_EQ(sa == sb, true) << file;
  }
  auto exists = run_cli({"convert", (dir / "diffusers").string(), (dir / "back.safetensors").string(), "--layout",
                         "single"});
  EXPECT_EQ(exists.exit_code, 5) << "existing output without --overwrite";
}

TEST(Cli, MissingOrCorruptModelIsAnInputError) {
  TempDir dir;
  auto missing = run_cli({"info", (dir / "nope.safetensors").string()});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("nope.safetensors"), std::string::npos);
  EXPECT_EQ(count_lines(missing.err), 1) << missing.err;
  std::ofstream(dir / "bad.safetensors") << "garbage that is not a checkpoint";
  auto corrupt = run_cli({"sample", "--model", (dir / "bad.safetensors").string(), "--prompt", "x"});
  EXPECT_EQ(corrupt.exit_code, 3);
  EXPECT_EQ(count_lines(corrupt.err), 1) << corrupt.err;
}

TEST(Cli, SampleValidatesBeforeWorking) {
  const std::string model = tiny_model().string();
  TempDir out;
  auto bad_size = run_cli({"sample", "--model", model, "--prompt", "x", "--width", "63", "--out", out.path().string()});
  EXPECT_EQ(bad_size.exit_code, 2);
  EXPECT_NE(bad_size.err.find("multiples of 8"), std::string::npos) << bad_size.err;
  auto bad_sampler = run_cli({"sample", "--model", model, "--prompt", "x", "--scheduler", "heun9"});
  EXPECT_EQ(bad_sampler.exit_code, 2);
  EXPECT_NE(bad_sampler.err.find("euler_a"), std::string::npos) << "valid names not listed: " << bad_sampler.err;
  auto no_prompt = run_cli({"sample", "--model", model});
  EXPECT_EQ(no_prompt.exit_code, 2);
  auto karras_ddim = run_cli({"sample", "--model", model, "--prompt", "x", "--scheduler", "ddim", "--karras"});
  EXPECT_EQ(karras_ddim.exit_code, 2);
}

TEST(Cli, SampleWritesNamedPngsWithParametersAndJsonLines) {
  const std::string model = tiny_model().string();
  TempDir out;
  std::vector<std::string> args = {"sample", "--model", model, "--prompt", "a photo of sks dog", "--negative-prompt",
                                   "blurry", "--steps", "3", "--seed", "100", "--count", "3", "--batch-size", "2",
                                   "--scheduler", "euler_a", "--out", out.path().string(), "--json", "--quiet"};
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 3);
  EXPECT_TRUE(r.err.empty()) << r.err;
  for (int i = 0; i < 3; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d-%d.png", i, 100 + i);
    ASSERT_TRUE(fs::exists(out / name)) << name;
  }
  auto text = io::read_png_text(out / "00001-101.png");
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0].first, "parameters");
  EXPECT_NE(text[0].second.find("a photo of sks dog\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, CFG scale: "
                                "7.5, Seed: 101, Size: 64x64, Model hash: "),
            std::string::npos)
      << text[0].second;

  // A batch of two gives the same pictures as one-by-one runs with the same seeds.
  TempDir single;
  std::vector<std::string> one = {"sample", "--model", model, "--prompt", "a photo of sks dog", "--negative-prompt", "blurry", "--steps", "3",
         "--seed", "101", "--scheduler", "euler_a", "--out", single.path().string(), "--quiet"};
  ASSERT_EQ(run_cli(one).exit_code, 0);
  // Batched convolutions round differently in the last float bit, so allow isolated 1-level flips.
  const auto batched = io::load_image(out / "00001-101.png").pixels;
  const auto alone = io::load_image(single / "00000-101.png").pixels;
  ASSERT_EQ(batched.size(), alone.size());
  int worst = 0;
  for (size_t i = 0; i < batched.size(); ++i) worst = std::max(worst, std::abs(int(batched[i]) - int(alone[i])));
  EXPECT_LE(worst, 1);

  // Nothing is overwritten without --overwrite.
  auto again = run_cli(args);
  EXPECT_EQ(again.exit_code, 5);
  args.push_back("--overwrite");
  EXPECT_EQ(run_cli(args).exit_code, 0);
}
