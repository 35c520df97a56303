// Behaviour of the model forwards beyond the golden cases: timestep forms, odd sizes, gradients, clip skip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/models/autoencoder_kl.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/init.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "support/tensor_close.h"

namespace dm = dreambooth::models;

namespace {
// Same computation, different broadcasting of the same values: equal up to float32 rounding.
constexpr double kSameComputation = 1e-6;
// Same math through different kernels (1x1 conv vs GEMM): float32 rounding differences compounded
// through the ~20 layers of the tiny UNet, outputs of magnitude ~1.
constexpr double kDifferentKernels = 1e-5;

dm::UNet2DConditionModel tiny_unet() {
  dm::UNet2DConditionModel unet(dm::UNetConfig::tiny());
  dm::init_random_weights(*unet, 11);
  return unet;
}
}  // namespace

TEST(UNetForward, TimestepAsScalarSingletonOrBatch) {
  torch::NoGradGuard no_grad;
  dm::UNet2DConditionModel unet = tiny_unet();
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({2, 4, 8, 8});
  const at::Tensor context = torch::randn({2, 77, 32});
  const at::Tensor batch = unet(x, torch::tensor({500, 500}, torch::kLong), context);
  EXPECT_TENSOR_CLOSE(unet(x, torch::tensor(500, torch::kLong), context), batch, kSameComputation, "0-d int64");
  EXPECT_TENSOR_CLOSE(unet(x, torch::tensor({500.0f}), context), batch, kSameComputation, "[1] float");
  EXPECT_THROW(unet(x, torch::tensor({1, 2, 3}), context), c10::Error);
}

TEST(UNetForward, SizesNotDivisibleByTheDownscaleKeepTheirShape) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  dm::UNet2DConditionModel unet = tiny_unet();
  const at::Tensor out = unet(torch::randn({1, 4, 7, 9}), torch::tensor(10), torch::randn({1, 77, 32}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 7, 9}));
}

TEST(UNetForward, EveryParameterGetsAGradient) {
  torch::manual_seed(0);
  dm::UNet2DConditionModel unet = tiny_unet();
  const at::Tensor out = unet(torch::randn({2, 4, 8, 8}), torch::tensor({3, 900}), torch::randn({2, 77, 32}));
  out.pow(2).mean().backward();
  for (const auto& item : unet->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
}

// SD2's Linear proj_in/proj_out on the flattened pixels compute what SD1's 1x1 convs do with the same weights.
TEST(UNetForward, LinearProjectionEqualsConvProjection) {
  torch::NoGradGuard no_grad;
  dm::UNetConfig conv_config = dm::UNetConfig::tiny();
  conv_config.attention_head_dim = {2, 4};  // per-block heads, as SD2 configs give them
  dm::UNetConfig linear_config = conv_config;
  linear_config.use_linear_projection = true;
  linear_config.upcast_attention = true;  // a no-op in float32
  dm::UNet2DConditionModel conv_unet(conv_config), linear_unet(linear_config);
  dm::init_random_weights(*conv_unet, 4);
  auto conv_params = conv_unet->named_parameters();
  for (auto& item : linear_unet->named_parameters())
    item.value().copy_(conv_params[item.key()].reshape(item.value().sizes()));  // [C, C, 1, 1] -> [C, C]

  torch::manual_seed(1);
  const at::Tensor x = torch::randn({2, 4, 8, 8}), context = torch::randn({2, 77, 32});
  EXPECT_TENSOR_CLOSE(linear_unet(x, torch::tensor(321), context), conv_unet(x, torch::tensor(321), context),
                      kDifferentKernels, "linear vs conv projection");
}

TEST(VaeForward, RoundTripShapes) {
  torch::NoGradGuard no_grad;
  dm::AutoencoderKL vae(dm::VaeConfig::tiny());
  dm::init_random_weights(*vae, 5);
  torch::manual_seed(0);
  const dm::LatentDistribution posterior = vae->encode(torch::rand({1, 3, 64, 48}) * 2 - 1);
  EXPECT_EQ(posterior.mean.sizes(), (std::vector<int64_t>{1, 4, 8, 6}));
  EXPECT_EQ(posterior.moments.sizes(), (std::vector<int64_t>{1, 8, 8, 6}));
  EXPECT_EQ(vae->decode(posterior.mean).sizes(), (std::vector<int64_t>{1, 3, 64, 48}));
}

TEST(ClipTextForward, ClipSkipRunsFewerLayersAndChecksItsRange) {
  torch::NoGradGuard no_grad;
  dm::ClipTextModel text(dm::ClipTextConfig::tiny());
  dm::init_random_weights(*text, 2);
  torch::manual_seed(0);
  const at::Tensor ids = torch::randint(0, 49408, {2, 77}, torch::kLong);
  const dm::ClipTextOutput out = text(ids);
  for (int skip = 0; skip < 3; ++skip) {
    const at::Tensor expected = text->text_model->final_layer_norm(out.hidden_states[3 - skip]);
    EXPECT_TENSOR_CLOSE(text->encode_prompt(ids, skip), expected, 0.0, "clip_skip " + std::to_string(skip));
  }
  try {
    text->encode_prompt(ids, 3);
    ADD_FAILURE() << "clip skip 3 of 3 layers accepted";
  } catch (const dreambooth::Error& e) {
    EXPECT_EQ(e.kind(), dreambooth::ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("0 to 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(text->encode_prompt(ids, -1), dreambooth::Error);
}

TEST(ClipTextForward, PoolerFollowsTransformers436) {
  torch::NoGradGuard no_grad;
  // BOS, three tokens, then EOS/padding 49407 from position 4.
  at::Tensor ids = torch::full({1, 77}, 49407, torch::kLong);
  ids.index_put_({0, torch::indexing::Slice(0, 4)}, torch::tensor({49406, 320, 1125, 539}));
  for (int eos : {2, 1125}) {
    dm::ClipTextConfig config = dm::ClipTextConfig::tiny();
    config.eos_token_id = eos;
    dm::ClipTextModel text(config);
    dm::init_random_weights(*text, 2);
    const dm::ClipTextOutput out = text(ids);
    // eos_token_id 2 (legacy configs): the largest id (position 4); otherwise the first eos_token_id (position 2).
    const int64_t position = eos == 2 ? 4 : 2;
    EXPECT_TENSOR_CLOSE(out.pooler_output, out.last_hidden_state.select(1, position), 0.0,
                        "eos_token_id " + std::to_string(eos));
  }
}
