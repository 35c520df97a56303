// Prepacked oneDNN convolutions (CPU inference) compute what the plain ones do, and give the dense memory back.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/layers.h"
#include "dreambooth/models/onednn_prepack.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "support/golden.h"
#include "support/module_loading.h"
#include "support/tensor_close.h"

namespace dm = dreambooth::models;
using dreambooth::testing::golden_atol;
using dreambooth::testing::golden_path;

namespace {

// oneDNN runs the same kernels either way; only the weight reorder moves. Rounding-level at most.
constexpr double kPrepackAtol = 1e-5;

}  // namespace

TEST(OnednnPrepack, ConvolutionsMatchThePlainOnesAndReleaseTheirWeights) {
  if (!dm::prepack_available())
    GTEST_SKIP() << "prepacking unavailable: this LibTorch has no oneDNN, or DREAMBOOTH_PREPACK=0";
  torch::manual_seed(3);
  for (const auto& [stride, padding, kernel] : std::vector<std::tuple<int, int, int>>{{1, 1, 3}, {2, 1, 3}, {1, 0, 1}}) {
    dm::Conv2d conv(16, 24, kernel, stride, padding);
    {
      torch::NoGradGuard no_grad;
      conv->weight.normal_(0, 0.1);
      conv->bias.normal_(0, 0.1);
    }
    const at::Tensor x = torch::randn({2, 16, 9, 9});
    c10::InferenceMode inference;
    const at::Tensor expected = conv->forward(x);
    const dm::PrepackSummary summary = dm::prepack_convolutions(*conv);
    EXPECT_EQ(summary.layers, 1);
    EXPECT_EQ(summary.bytes, 24 * 16 * kernel * kernel * 4);
    EXPECT_TENSOR_CLOSE(conv->forward(x), expected, kPrepackAtol, "prepacked conv k" + std::to_string(kernel));
    EXPECT_EQ(conv->weight.sizes(), (std::vector<int64_t>{24, 16, kernel, kernel}));  // shapes stay
    EXPECT_LE(conv->weight.storage().nbytes(), 4u);  // the dense copy is gone
    EXPECT_EQ(dm::prepack_convolutions(*conv).layers, 0);  // once only
  }
}

TEST(OnednnPrepackParity, UnetMatchesReference) {
  REQUIRE_GOLDEN();
  if (!dm::prepack_available())
    GTEST_SKIP() << "prepacking unavailable: this LibTorch has no oneDNN, or DREAMBOOTH_PREPACK=0";
  std::ifstream in(golden_path("tiny-sd1/unet/config.json"));
  dm::UNet2DConditionModel unet(dm::UNetConfig::from_json(nlohmann::json::parse(in), "unet/config.json"));
  ASSERT_TRUE(dreambooth::testing::load_module_weights(
      *unet, golden_path("tiny-sd1/unet/diffusion_pytorch_model.safetensors")));
  unet->eval();
  EXPECT_GT(dm::prepack_convolutions(*unet).layers, 10);
  c10::InferenceMode inference;
  dreambooth::io::SafetensorsReader golden(golden_path("tiny-sd1/golden/unet_tint.safetensors"));
  const at::Tensor out = unet(golden.load("input.sample", torch::kFloat), golden.view("input.timestep").clone(),
                              golden.load("input.encoder_hidden_states", torch::kFloat));
  EXPECT_TENSOR_CLOSE(out, golden.load("output.sample", torch::kFloat), golden_atol("unet_tint", "output.sample"),
                      "prepacked unet output.sample");
}
