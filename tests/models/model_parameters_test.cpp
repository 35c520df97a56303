// The three models yield exactly the parameter names and shapes of the diffusers/transformers files, and
// the real SD1.5 / SD2.1 configurations the published parameter counts (built on the meta device).
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/autoencoder_kl.h"
#include "dreambooth/models/clip_text_model.h"
#include "dreambooth/models/parameters.h"
#include "dreambooth/models/unet_2d_condition.h"
#include "support/golden.h"

namespace dm = dreambooth::models;
using dreambooth::testing::golden_path;
using Shapes = std::map<std::string, std::vector<int64_t>>;

namespace {

nlohmann::json read_json(const std::string& relative) {
  std::ifstream in(golden_path(relative));
  return nlohmann::json::parse(in);
}

Shapes file_shapes(const std::string& relative) {
  dreambooth::io::SafetensorsReader reader(golden_path(relative));
  Shapes shapes;
  for (const auto& e : reader.entries()) shapes[e.name] = e.shape;
  return shapes;
}

// Reports every difference, not just the first.
void expect_same_shapes(const Shapes& actual, const Shapes& expected) {
  for (const auto& [name, shape] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      ADD_FAILURE() << "missing parameter " << name;
    } else {
      EXPECT_EQ(it->second, shape) << name;
    }
  }
  for (const auto& [name, shape] : actual)
    if (!expected.count(name)) ADD_FAILURE() << "unexpected parameter " << name;
}

}  // namespace

TEST(ModelParameters, TinyTextEncoderKeysMatchTransformersFile) {
  REQUIRE_GOLDEN();
  dm::MetaParameterScope meta;
  dm::ClipTextModel model(dm::ClipTextConfig::from_json(read_json("tiny-sd1/text_encoder/config.json"), "config"));
  expect_same_shapes(dm::parameter_shapes(*model), file_shapes("tiny-sd1/text_encoder/model.safetensors"));
  EXPECT_EQ(model->named_buffers().size(), 0u);
}

TEST(ModelParameters, TinyUNetKeysMatchDiffusersFile) {
  REQUIRE_GOLDEN();
  dm::MetaParameterScope meta;
  dm::UNet2DConditionModel unet(dm::UNetConfig::from_json(read_json("tiny-sd1/unet/config.json"), "config"));
  expect_same_shapes(dm::parameter_shapes(*unet), file_shapes("tiny-sd1/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(unet->named_buffers().size(), 0u);
}

TEST(ModelParameters, TinyVaeKeysMatchDiffusersFile) {
  REQUIRE_GOLDEN();
  dm::MetaParameterScope meta;
  dm::AutoencoderKL vae(dm::VaeConfig::from_json(read_json("tiny-sd1/vae/config.json"), "config"));
  expect_same_shapes(dm::parameter_shapes(*vae), file_shapes("tiny-sd1/vae/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(vae->named_buffers().size(), 0u);
}

TEST(ModelParameters, MetaScopeAllocatesNoMemoryAndEnds) {
  {
    dm::MetaParameterScope meta;
    dm::UNet2DConditionModel unet(dm::UNetConfig::sd15());
    for (const auto& p : unet->parameters()) ASSERT_TRUE(p.is_meta());
  }
  dm::Linear after(2, 3);
  EXPECT_FALSE(after->weight.is_meta());
}

TEST(ModelParameters, Sd15CountsAndShapes) {
  dm::MetaParameterScope meta;
  dm::UNet2DConditionModel unet(dm::UNetConfig::sd15());
  dm::AutoencoderKL vae(dm::VaeConfig::sd15());
  dm::ClipTextModel text(dm::ClipTextConfig::sd15());
  EXPECT_EQ(dm::count_parameters(*unet), 859520964);
  EXPECT_EQ(dm::count_parameters(*vae), 83653863);
  EXPECT_EQ(dm::count_parameters(*text), 123060480);

  const Shapes unet_shapes = dm::parameter_shapes(*unet);
  EXPECT_EQ(unet_shapes.size(), 686u);
  EXPECT_EQ(unet_shapes.at("down_blocks.0.attentions.0.proj_in.weight"), (std::vector<int64_t>{320, 320, 1, 1}));
  EXPECT_EQ(unet_shapes.at("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"),
            (std::vector<int64_t>{320, 768}));
  EXPECT_EQ(unet_shapes.at("down_blocks.2.attentions.1.transformer_blocks.0.ff.net.0.proj.weight"),
            (std::vector<int64_t>{10240, 1280}));
  EXPECT_EQ(unet_shapes.at("up_blocks.0.resnets.2.conv1.weight"), (std::vector<int64_t>{1280, 2560, 3, 3}));
  EXPECT_EQ(unet_shapes.at("up_blocks.3.resnets.0.conv_shortcut.weight"), (std::vector<int64_t>{320, 960, 1, 1}));
  EXPECT_EQ(unet_shapes.at("time_embedding.linear_1.weight"), (std::vector<int64_t>{1280, 320}));
  EXPECT_EQ(unet_shapes.count("down_blocks.3.downsamplers.0.conv.weight"), 0u);
  EXPECT_EQ(unet_shapes.count("up_blocks.3.upsamplers.0.conv.weight"), 0u);

  const Shapes vae_shapes = dm::parameter_shapes(*vae);
  EXPECT_EQ(vae_shapes.at("decoder.up_blocks.3.resnets.0.conv_shortcut.weight"),
            (std::vector<int64_t>{128, 256, 1, 1}));
  EXPECT_EQ(vae_shapes.at("encoder.mid_block.attentions.0.to_q.weight"), (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(dm::parameter_shapes(*text).at("text_model.encoder.layers.11.mlp.fc1.weight"),
            (std::vector<int64_t>{3072, 768}));
}

TEST(ModelParameters, Sd21CountsAndShapes) {
  dm::MetaParameterScope meta;
  dm::UNet2DConditionModel unet(dm::UNetConfig::sd21());
  dm::AutoencoderKL vae(dm::VaeConfig::sd15());
  dm::ClipTextModel text(dm::ClipTextConfig::sd21());
  EXPECT_EQ(dm::count_parameters(*unet), 865910724);
  EXPECT_EQ(dm::count_parameters(*vae), 83653863);
  EXPECT_EQ(dm::count_parameters(*text), 340387840);

  const Shapes unet_shapes = dm::parameter_shapes(*unet);
  // use_linear_projection: proj_in/proj_out are Linear [C, C].
  EXPECT_EQ(unet_shapes.at("down_blocks.0.attentions.0.proj_in.weight"), (std::vector<int64_t>{320, 320}));
  EXPECT_EQ(unet_shapes.at("mid_block.attentions.0.proj_out.weight"), (std::vector<int64_t>{1280, 1280}));
  EXPECT_EQ(unet_shapes.at("up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_v.weight"),
            (std::vector<int64_t>{1280, 1024}));
  EXPECT_EQ(dm::parameter_shapes(*text).count("text_model.encoder.layers.22.self_attn.q_proj.weight"), 1u);
  EXPECT_EQ(dm::parameter_shapes(*text).count("text_model.encoder.layers.23.self_attn.q_proj.weight"), 0u);
}
