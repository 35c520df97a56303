// UNet2DConditionModel against diffusers 0.25.1 on the golden tiny-sd1 UNet, every intermediate included.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "support/golden.h"
#include "support/module_loading.h"
#include "support/tensor_close.h"
#include "support/test_device.h"

namespace dm = dreambooth::models;
using dreambooth::io::SafetensorsReader;
using dreambooth::testing::golden_atol;
using dreambooth::testing::golden_path;

namespace {

dm::UNet2DConditionModel load_tiny_unet() {
  std::ifstream in(golden_path("tiny-sd1/unet/config.json"));
  const auto config = dm::UNetConfig::from_json(nlohmann::json::parse(in), "unet/config.json");
  dm::UNet2DConditionModel unet(config);
  EXPECT_TRUE(dreambooth::testing::load_module_weights(
      *unet, golden_path("tiny-sd1/unet/diffusion_pytorch_model.safetensors")));
  unet->eval();
  unet->to(dreambooth::testing::test_device());
  return unet;
}

void check_case(const std::string& case_name) {
  torch::NoGradGuard no_grad;
  dm::UNet2DConditionModel unet = load_tiny_unet();
  SafetensorsReader golden(golden_path("tiny-sd1/golden/" + case_name + ".safetensors"));
  const c10::Device device = dreambooth::testing::test_device();
  const at::Tensor timestep = golden.view("input.timestep").to(device);  // keeps its dtype: int64 or float32
  dm::UNetIntermediates intermediates;
  const at::Tensor out = unet(golden.load("input.sample", torch::kFloat, device), timestep,
                              golden.load("input.encoder_hidden_states", torch::kFloat, device), &intermediates);
  EXPECT_TENSOR_CLOSE(out, golden.load("output.sample", torch::kFloat), golden_atol(case_name, "output.sample"),
                      "output.sample");

  int compared = 0;
  for (const auto& entry : golden.entries()) {
    const std::string prefix = "intermediate.";
    if (entry.name.rfind(prefix, 0) != 0) continue;
    const std::string name = entry.name.substr(prefix.size());
    ASSERT_TRUE(intermediates.count(name)) << "not recorded: " << name;
    EXPECT_TENSOR_CLOSE(intermediates.at(name), golden.load(entry.name, torch::kFloat),
                        golden_atol(case_name, entry.name), entry.name);
    ++compared;
  }
  EXPECT_EQ(compared, 8);  // t_emb, emb, conv_in, down_blocks.0-1, mid_block, up_blocks.0-1
}

}  // namespace

TEST(UNetParity, UnetTintMatchesReference) {
  REQUIRE_GOLDEN();
  check_case("unet_tint");
}

TEST(UNetParity, UnetTfloatMatchesReference) {
  REQUIRE_GOLDEN();
  check_case("unet_tfloat");
}
