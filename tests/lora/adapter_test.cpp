// LoraAdapter math, the merge formula for each layer kind, and the small parsers.
#include "dreambooth/lora/adapter.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/lora/apply.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/lora/sites.h"
#include "lora/lora_test_util.h"
#include "support/tensor_close.h"

using namespace dreambooth::lora;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::kLoraBitIdentical;
using dreambooth::testing::kLoraFloatRounding;

namespace {

LoraAdapter random_adapter(const LayerShape& shape, int64_t rank, double alpha, double multiplier) {
  LoraAdapterOptions options;
  options.rank = rank;
  options.alpha = alpha;
  options.multiplier = multiplier;
  LoraAdapter adapter(shape, options);
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  adapter->down.copy_(torch::randn(adapter->down.sizes()));
  adapter->up.copy_(torch::randn(adapter->up.sizes()));
  return adapter;
}

}  // namespace

TEST(LoraAdapter, LinearDeltaIsScaledLowRankProduct) {
  torch::NoGradGuard no_grad;
  LoraAdapter adapter = random_adapter(LayerShape{6, 5}, 3, 6.0, 0.5);
  EXPECT_EQ(adapter->down.sizes(), (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(adapter->up.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_DOUBLE_EQ(adapter->scale(), 2.0);
  const at::Tensor expected_weight = 0.5 * 2.0 * torch::mm(adapter->up, adapter->down);
  EXPECT_TENSOR_CLOSE(adapter->weight_delta(), expected_weight, kLoraFloatRounding, "weight_delta");
  const at::Tensor x = torch::randn({2, 3, 6});
  EXPECT_TENSOR_CLOSE(adapter->delta(x), torch::linear(x, expected_weight), kLoraFloatRounding, "delta(x)");
}

TEST(LoraAdapter, ConvDeltaEqualsConvolutionWithMergedWeight) {
  torch::NoGradGuard no_grad;
  for (const LayerShape& shape : {LayerShape{4, 6, 1, 1, 0}, LayerShape{4, 6, 3, 2, 1}}) {
    LoraAdapter adapter = random_adapter(shape, 2, 1.0, 1.0);
    EXPECT_EQ(adapter->down.sizes(), (std::vector<int64_t>{2, 4, shape.kernel, shape.kernel}));
    EXPECT_EQ(adapter->up.sizes(), (std::vector<int64_t>{6, 2, 1, 1}));
    const at::Tensor x = torch::randn({2, 4, 7, 7});
    const at::Tensor merged = torch::conv2d(x, adapter->weight_delta(), {}, shape.stride, shape.padding);
    EXPECT_TENSOR_CLOSE(adapter->delta(x), merged, kLoraFloatRounding, "kernel " + std::to_string(shape.kernel));
  }
}

TEST(LoraAdapter, HookAddsDeltaToTheLayerAndDetachRestoresIt) {
  torch::NoGradGuard no_grad;
  dreambooth::models::Linear linear(6, 5);
  linear->weight.copy_(torch::randn({5, 6}));
  linear->bias.copy_(torch::randn({5}));
  const at::Tensor x = torch::randn({4, 6});
  const at::Tensor base = linear(x);
  LoraAdapter adapter = random_adapter(layer_shape(*linear), 2, 2.0, 1.0);
  linear->adapter = adapter.ptr();
  EXPECT_TENSOR_CLOSE(linear(x), base + adapter->delta(x), kLoraFloatRounding, "with adapter");
  linear->adapter.reset();
  EXPECT_TENSOR_CLOSE(linear(x), base, 0.0, "detached");
  EXPECT_EQ(linear->named_parameters().size(), 2u);  // the adapter is no child of the layer
}

TEST(LoraAdapter, DropoutOnlyWhileTraining) {
  torch::NoGradGuard no_grad;
  LoraAdapterOptions options;
  options.rank = 8;
  options.dropout = 0.5;
  LoraAdapter adapter(LayerShape{16, 16}, options);
  options.dropout = 0.0;
  LoraAdapter plain(LayerShape{16, 16}, options);
  torch::manual_seed(5);
  adapter->down.copy_(torch::randn(adapter->down.sizes()));
  adapter->up.copy_(torch::randn(adapter->up.sizes()));
  plain->down.copy_(adapter->down);
  plain->up.copy_(adapter->up);
  const at::Tensor x = torch::randn({4, 16});
  const at::Tensor expected = plain->delta(x);
  adapter->eval();
  EXPECT_TENSOR_CLOSE(adapter->delta(x), expected, kLoraBitIdentical, "eval: no dropout");
  adapter->train();
  EXPECT_GT(dreambooth::testing::max_abs_diff(adapter->delta(x), expected), 1e-3);
}

TEST(LoraAdapter, InitialisationIsSeededWithZeroUp) {
  LoraAdapterOptions options;
  options.rank = 4;
  LoraAdapter a(LayerShape{64, 32}, options), b(LayerShape{64, 32}, options);
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(7), g2 = at::make_generator<at::CPUGeneratorImpl>(7);
  a->reset_parameters(LoraInit::KaimingUniform, g1);
  b->reset_parameters(LoraInit::KaimingUniform, g2);
  EXPECT_TENSOR_CLOSE(a->down, b->down, 0.0, "same seed");
  EXPECT_EQ(a->up.abs().max().item<float>(), 0.0f);
  EXPECT_LE(a->down.abs().max().item<double>(), 1.0 / 8.0);  // uniform(+-1/sqrt(64))
  EXPECT_GT(a->down.abs().max().item<double>(), 0.1);
  a->reset_parameters(LoraInit::Normal, g1);
  EXPECT_NEAR(a->down.std().item<double>(), 0.25, 0.05);  // normal(0, 1/rank)
}

TEST(LoraAdapter, FactorShapesMustFitTheLayer) {
  const LayerShape linear{8, 6}, conv1{8, 6, 1}, conv3{8, 6, 3, 1, 1};
  EXPECT_TRUE(lora_tensors_fit({4, 8}, {6, 4}, linear));
  EXPECT_TRUE(lora_tensors_fit({4, 8, 1, 1}, {6, 4, 1, 1}, linear));  // conv-shaped factors on a Linear
  EXPECT_TRUE(lora_tensors_fit({4, 8}, {6, 4}, conv1));               // linear-shaped factors on a 1x1 conv
  EXPECT_TRUE(lora_tensors_fit({4, 8, 3, 3}, {6, 4, 1, 1}, conv3));
  EXPECT_FALSE(lora_tensors_fit({4, 8}, {6, 4}, conv3));
  EXPECT_FALSE(lora_tensors_fit({4, 9}, {6, 4}, linear));  // in
  EXPECT_FALSE(lora_tensors_fit({4, 8}, {7, 4}, linear));  // out
  EXPECT_FALSE(lora_tensors_fit({4, 8}, {6, 3}, linear));  // rank
}

TEST(LoraSpec, FileWithOptionalScale) {
  EXPECT_EQ(parse_lora_spec("a.safetensors").path, "a.safetensors");
  EXPECT_EQ(parse_lora_spec("a.safetensors").multiplier, 1.0);
  LoraSpec s = parse_lora_spec("dir/a.safetensors:0.75");
  EXPECT_EQ(s.path, "dir/a.safetensors");
  EXPECT_EQ(s.multiplier, 0.75);
  EXPECT_EQ(parse_lora_spec("x.safetensors:-1").multiplier, -1.0);
  EXPECT_EQ(parse_lora_spec("C:\\loras\\x.safetensors").path, "C:\\loras\\x.safetensors");
  EXPECT_EQ(parse_lora_spec("a:b.safetensors").path, "a:b.safetensors");
  for (const char* bad : {"", ":0.5", "a.safetensors:inf", "a.safetensors:nan"}) {
    try {
      parse_lora_spec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage) << bad;
    }
  }
}

TEST(LoraNames, TargetsAndFormatsParse) {
  EXPECT_EQ(parse_lora_targets("attn", "--lora-targets"), LoraTargets::Attention);
  EXPECT_EQ(parse_lora_targets("attn+ff", "--lora-targets"), LoraTargets::AttentionFeedForward);
  EXPECT_EQ(parse_lora_targets("all-linear", "--lora-targets"), LoraTargets::AllLinear);
  for (const auto& info : kLoraTargets) EXPECT_EQ(parse_lora_targets(lora_targets_name(info.targets), "x"), info.targets);
  EXPECT_EQ(parse_lora_format("kohya", "--lora-format"), LoraFormat::Kohya);
  EXPECT_EQ(parse_lora_format("diffusers", "--lora-format"), LoraFormat::Diffusers);
  try {
    parse_lora_targets("everything", "--lora-targets");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("--lora-targets"), std::string::npos);
  }
  EXPECT_THROW(parse_lora_format("lycoris", "--lora-format"), Error);
}

TEST(LoraNames, KohyaNamesReplaceDotsWithUnderscores) {
  using dreambooth::checkpoint::Component;
  EXPECT_EQ(kohya_name(Component::Unet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q");
  EXPECT_EQ(kohya_name(Component::Unet, "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_out.0"),
            "lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_attn2_to_out_0");
  EXPECT_EQ(kohya_name(Component::TextEncoder, "text_model.encoder.layers.0.self_attn.q_proj"),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj");
}
