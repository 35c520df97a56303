// init_random_weights: deterministic per seed, the reference initialisers' ranges, meta modules skipped.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/init.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "support/tensor_close.h"

namespace dm = dreambooth::models;

TEST(InitRandomWeights, DeterministicPerSeed) {
  dm::UNet2DConditionModel a(dm::UNetConfig::tiny()), b(dm::UNetConfig::tiny()), c(dm::UNetConfig::tiny());
  dm::init_random_weights(*a, 7);
  dm::init_random_weights(*b, 7);
  dm::init_random_weights(*c, 8);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  int differing = 0;
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    differing += !torch::equal(item.value(), pc[item.key()]);
  }
  // Every weight and bias of a Linear/Conv2d differs with another seed; norm affines (1, 0) do not.
  EXPECT_GT(differing, static_cast<int>(pa.size()) / 2);
}

TEST(InitRandomWeights, ReferenceRanges) {
  dm::UNet2DConditionModel unet(dm::UNetConfig::tiny());
  dm::init_random_weights(*unet, 1);
  // kaiming-uniform(a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias likewise.
  const at::Tensor conv = unet->down_blocks[0]->as<dm::DownBlock2DImpl>()->resnets[0]->as<dm::ResnetBlock2DImpl>()
                              ->conv1->weight;  // [32, 32, 3, 3]: fan_in 288
  const double bound = 1.0 / std::sqrt(288.0);
  EXPECT_LE(conv.abs().max().item<double>(), bound);
  EXPECT_GT(conv.abs().max().item<double>(), 0.95 * bound);
  EXPECT_NEAR(conv.mean().item<double>(), 0.0, 0.1 * bound);
  EXPECT_TRUE(torch::equal(unet->conv_norm_out->weight, torch::ones({32})));
  EXPECT_TRUE(torch::equal(unet->conv_norm_out->bias, torch::zeros({32})));

  dm::ClipTextModel text(dm::ClipTextConfig::tiny());
  dm::init_random_weights(*text, 1);
  const at::Tensor tokens = text->text_model->embeddings->token_embedding->weight;
  EXPECT_NEAR(tokens.std().item<double>(), 0.02, 0.001);
  EXPECT_TRUE(torch::equal(text->text_model->final_layer_norm->weight, torch::ones({32})));
  for (const auto& p : text->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

TEST(InitRandomWeights, SkipsMetaModules) {
  dm::MetaParameterScope meta;
  dm::ClipTextModel text(dm::ClipTextConfig::tiny());
  EXPECT_NO_THROW(dm::init_random_weights(*text, 3));
}
