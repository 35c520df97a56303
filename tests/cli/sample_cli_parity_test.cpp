// `dreambooth sample` run exactly as a user would, against the PNGs diffusers wrote for the same seed,
// prompt, scheduler and settings (../shared/golden/cli/cases.json).
#include <fstream>

#include <gtest/gtest.h>

#include "dreambooth/io/image.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::testing::golden_path;
using dreambooth::testing::run_cli;
using dreambooth::testing::TempDir;

// The reference's own fp32 runs on different thread counts differ by a few single-level flips.
constexpr double kMaxMeanAbsLevels = 0.05;
constexpr int kMaxPixelLevels = 2;

TEST(SampleCliParity, EverySeededCaseReproducesTheReferencePng) {
  REQUIRE_GOLDEN();
  std::ifstream in(golden_path("cli/cases.json"));
  const nlohmann::json cases = nlohmann::json::parse(in);
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    TempDir out;
    std::vector<std::string> args = {"sample", "--model", golden_path(c.at("model").get<std::string>()).string(),
                                     "--out", out.path().string(), "--json", "--quiet"};
    for (const auto& a : c.at("args")) args.push_back(a.get<std::string>());
    auto result = run_cli(args);
    ASSERT_EQ(result.exit_code, 0) << name << ": " << result.err;
    const nlohmann::json line = nlohmann::json::parse(result.out.substr(0, result.out.find('\n')));
    io::Image ours = io::load_image(line.at("path").get<std::string>());
    io::Image reference = io::load_image(golden_path("cli/" + c.at("png").get<std::string>()));
    ASSERT_EQ(ours.width, reference.width) << name;
    ASSERT_EQ(ours.height, reference.height) << name;
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < ours.pixels.size(); ++i) {
      int d = std::abs(int(ours.pixels[i]) - int(reference.pixels[i]));
      sum += d;
      worst = std::max(worst, d);
    }
    const double mean = sum / ours.pixels.size();
    std::printf("[close] %s mean_abs_levels=%.5f max_levels=%d\n", name.c_str(), mean, worst);
    EXPECT_LT(mean, kMaxMeanAbsLevels) << name;
    EXPECT_LE(worst, kMaxPixelLevels) << name;
    EXPECT_EQ(line.at("seed").get<uint64_t>(), std::stoull(c.at("args")[3].get<std::string>())) << name;
  }
}
