#include "dreambooth/checkpoint/key_tables.h"

#include <map>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_test_util.h"
#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/key_map.h"
#include "support/tensor_close.h"

using namespace dreambooth::checkpoint;
using dreambooth::models::ClipTextConfig;
using dreambooth::models::UNetConfig;
using dreambooth::models::VaeConfig;
using dreambooth::testing::kExact;

namespace {

std::map<std::string, std::vector<int64_t>> plan_shapes(const ComponentPlan& plan) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& stored : plan) out[stored.key] = stored.shape;
  return out;
}

ModelDescription sd15() {
  ModelDescription d;
  d.family = Family::Sd1;
  return d;
}

ModelDescription sd21() {
  ModelDescription d;
  d.family = Family::Sd2;
  d.unet = UNetConfig::sd21();
  d.text_encoder = ClipTextConfig::sd21();
  return d;
}

}  // namespace

// The published parameter counts, from the tables alone (nothing allocated).
TEST(KeyTables, Sd15ParameterCounts) {
  const ModelDescription d = sd15();
  EXPECT_EQ(component_parameter_count(d, Component::Unet), 859520964);
  EXPECT_EQ(component_parameter_count(d, Component::Vae), 83653863);
  EXPECT_EQ(component_parameter_count(d, Component::TextEncoder), 123060480);
  EXPECT_EQ(component_tensors(d, Component::Unet).size(), 686u);
  EXPECT_EQ(component_tensors(d, Component::Vae).size(), 248u);
  EXPECT_EQ(component_tensors(d, Component::TextEncoder).size(), 196u);
}

TEST(KeyTables, Sd21ParameterCounts) {
  const ModelDescription d = sd21();
  EXPECT_EQ(component_parameter_count(d, Component::Unet), 865910724);
  EXPECT_EQ(component_parameter_count(d, Component::Vae), 83653863);
  EXPECT_EQ(component_parameter_count(d, Component::TextEncoder), 340387840);  // 23 of OpenCLIP's 24 blocks
}

// Full-size single-file shapes as AUTOMATIC1111/ComfyUI checkpoints store them.
TEST(KeyTables, Sd15SingleFileShapes) {
  const ModelDescription d = sd15();
  auto unet = plan_shapes(component_plan(d, Component::Unet, Layout::SingleFile));
  auto vae = plan_shapes(component_plan(d, Component::Vae, Layout::SingleFile));
  auto text = plan_shapes(component_plan(d, Component::TextEncoder, Layout::SingleFile));
  EXPECT_EQ(unet.size(), 686u);
  EXPECT_EQ(vae.size(), 248u);
  EXPECT_EQ(text.size(), 196u);
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"model.diffusion_model.input_blocks.0.0.weight", {320, 4, 3, 3}},
      {"model.diffusion_model.time_embed.0.weight", {1280, 320}},
      {"model.diffusion_model.input_blocks.1.1.proj_in.weight", {320, 320, 1, 1}},
      {"model.diffusion_model.input_blocks.3.0.op.weight", {320, 320, 3, 3}},
      {"model.diffusion_model.input_blocks.4.0.skip_connection.weight", {640, 320, 1, 1}},
      {"model.diffusion_model.input_blocks.11.0.out_layers.3.weight", {1280, 1280, 3, 3}},
      {"model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight", {1280, 768}},
      {"model.diffusion_model.output_blocks.2.1.conv.weight", {1280, 1280, 3, 3}},
      {"model.diffusion_model.output_blocks.5.2.conv.weight", {1280, 1280, 3, 3}},
      {"model.diffusion_model.output_blocks.3.0.in_layers.0.weight", {2560}},
      {"model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight", {2560, 320}},
      {"model.diffusion_model.output_blocks.11.0.skip_connection.weight", {320, 640, 1, 1}},
      {"model.diffusion_model.out.2.weight", {4, 320, 3, 3}},
      {"first_stage_model.encoder.mid.attn_1.q.weight", {512, 512, 1, 1}},
      {"first_stage_model.decoder.up.0.block.0.nin_shortcut.weight", {128, 256, 1, 1}},
      {"first_stage_model.decoder.up.3.upsample.conv.weight", {512, 512, 3, 3}},
      {"first_stage_model.encoder.down.1.block.0.nin_shortcut.weight", {256, 128, 1, 1}},
      {"first_stage_model.quant_conv.weight", {8, 8, 1, 1}},
      {"cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight", {3072, 768}},
      {"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", {77, 768}},
  };
  for (const auto& [key, shape] : expected) {
    const auto& table = key.rfind("model.diffusion_model", 0) == 0 ? unet
                        : key.rfind("first_stage", 0) == 0         ? vae
                                                                   : text;
    ASSERT_TRUE(table.count(key)) << key;
    EXPECT_EQ(table.at(key), shape) << key;
  }
  EXPECT_FALSE(unet.count("model.diffusion_model.input_blocks.12.0.in_layers.0.weight"));
  EXPECT_FALSE(unet.count("model.diffusion_model.input_blocks.10.1.proj_in.weight"));  // last level: no attention
  EXPECT_FALSE(unet.count("model.diffusion_model.output_blocks.2.1.proj_in.weight"));  // first up level: none
}

TEST(KeyTables, Sd21SingleFileShapes) {
  const ModelDescription d = sd21();
  auto unet = plan_shapes(component_plan(d, Component::Unet, Layout::SingleFile));
  auto text = plan_shapes(component_plan(d, Component::TextEncoder, Layout::SingleFile));
  EXPECT_EQ(text.size(), 4u + 23u * 12u);
  EXPECT_EQ(unet.at("model.diffusion_model.input_blocks.1.1.proj_in.weight"), (std::vector<int64_t>{320, 320}));
  EXPECT_EQ(unet.at("model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_v.weight"),
            (std::vector<int64_t>{1280, 1024}));
  EXPECT_EQ(text.at("cond_stage_model.model.transformer.resblocks.22.attn.in_proj_weight"),
            (std::vector<int64_t>{3072, 1024}));
  EXPECT_EQ(text.at("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias"), (std::vector<int64_t>{3072}));
  EXPECT_EQ(text.at("cond_stage_model.model.positional_embedding"), (std::vector<int64_t>{77, 1024}));
  EXPECT_EQ(text.at("cond_stage_model.model.token_embedding.weight"), (std::vector<int64_t>{49408, 1024}));
  EXPECT_EQ(text.at("cond_stage_model.model.transformer.resblocks.3.mlp.c_fc.weight"),
            (std::vector<int64_t>{4096, 1024}));
  EXPECT_FALSE(text.count("cond_stage_model.model.transformer.resblocks.23.ln_1.weight"));
}

TEST(KeyMap, MatchesWholeDottedPrefixesOnly) {
  const KeyMap map(unet_rows(UNetConfig::sd15()));
  auto hit = map.to_diffusers("model.diffusion_model.input_blocks.1.0.in_layers.0.weight");
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].key, "down_blocks.0.resnets.0.norm1.weight");
  // input_blocks.10 must not be read as input_blocks.1 + "0".
  hit = map.to_diffusers("model.diffusion_model.input_blocks.10.0.in_layers.2.weight");
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].key, "down_blocks.3.resnets.0.conv1.weight");
  EXPECT_TRUE(map.to_diffusers("model.diffusion_model.input_blocks.1.0.in_layers.0x.weight").empty());
  EXPECT_TRUE(map.to_diffusers("model.diffusion_model.input_blocks.1").empty());
  EXPECT_TRUE(map.to_diffusers("xmodel.diffusion_model.input_blocks.1.0.in_layers.0.weight").empty());
  // Deeper tails are carried over unchanged.
  hit = map.to_diffusers("model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn1.to_q.weight");
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].key, "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_q.weight");
  auto back = map.to_ldm("up_blocks.0.upsamplers.0.conv.bias");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, "model.diffusion_model.output_blocks.2.1.conv.bias");
  back = map.to_ldm("up_blocks.1.upsamplers.0.conv.bias");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, "model.diffusion_model.output_blocks.5.2.conv.bias");
  EXPECT_FALSE(map.to_ldm("up_blocks.3.upsamplers.0.conv.bias"));  // the last level has no upsampler
}

TEST(KeyMap, OpenClipFusedQkv) {
  const KeyMap map(text_encoder_rows(ClipTextConfig::sd21(), Family::Sd2));
  auto parts = map.to_diffusers("cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].key, "text_model.encoder.layers.5.self_attn.q_proj.weight");
  EXPECT_EQ(parts[1].key, "text_model.encoder.layers.5.self_attn.k_proj.weight");
  EXPECT_EQ(parts[2].key, "text_model.encoder.layers.5.self_attn.v_proj.weight");
  auto out_proj = map.to_diffusers("cond_stage_model.model.transformer.resblocks.5.attn.out_proj.bias");
  ASSERT_EQ(out_proj.size(), 1u);
  EXPECT_EQ(out_proj[0].key, "text_model.encoder.layers.5.self_attn.out_proj.bias");
  auto v_bias = map.to_ldm("text_model.encoder.layers.5.self_attn.v_proj.bias");
  ASSERT_TRUE(v_bias);
  EXPECT_EQ(v_bias->key, "cond_stage_model.model.transformer.resblocks.5.attn.in_proj_bias");
  EXPECT_EQ(v_bias->part, 2);
  auto pos = map.to_diffusers("cond_stage_model.model.positional_embedding");
  ASSERT_EQ(pos.size(), 1u);
  EXPECT_EQ(pos[0].key, "text_model.embeddings.position_embedding.weight");
  EXPECT_TRUE(map.to_diffusers("cond_stage_model.model.transformer.resblocks.23.ln_1.weight").empty());
  EXPECT_TRUE(map.to_diffusers("cond_stage_model.model.transformer.resblocks.5.attn.in_proj").empty());

  const auto set = map_ldm_keys(map, {"cond_stage_model.model.ln_final.weight", "cond_stage_model.model.logit_scale"});
  ASSERT_EQ(set.mapped.size(), 1u);
  EXPECT_EQ(set.mapped.at("cond_stage_model.model.ln_final.weight")[0].key, "text_model.final_layer_norm.weight");
  EXPECT_EQ(set.unmatched, std::vector<std::string>{"cond_stage_model.model.logit_scale"});
}

TEST(KeyMap, TransformsSplitAndJoinExactly) {
  StoredTensor qkv{"w", {6, 2}, Transform::SplitQkv, {"q", "k", "v"}, {2, 2}};
  at::Tensor fused = torch::arange(12, torch::kFloat).reshape({6, 2});
  auto parts = split_stored(qkv, fused);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TENSOR_CLOSE(parts[1], torch::tensor({4.f, 5.f, 6.f, 7.f}).reshape({2, 2}), kExact, "k rows");
  EXPECT_TENSOR_CLOSE(join_stored(qkv, parts), fused, kExact, "fused again");

  StoredTensor conv{"q", {3, 3, 1, 1}, Transform::ConvToLinear, {"to_q"}, {3, 3}};
  at::Tensor w = torch::randn({3, 3, 1, 1});
  auto linear = split_stored(conv, w);
  EXPECT_EQ(linear[0].sizes().vec(), (std::vector<int64_t>{3, 3}));
  EXPECT_TENSOR_CLOSE(join_stored(conv, linear), w, kExact, "conv again");
  EXPECT_TRUE(stored_shape_fits(conv, {3, 3, 1, 1}));
  EXPECT_TRUE(stored_shape_fits(conv, {3, 3}));  // some converters already store Linear shapes
  EXPECT_FALSE(stored_shape_fits(conv, {3, 3, 3, 3}));
  EXPECT_EQ(stored_shape(Transform::ConvToLinear, {5}, 1), (std::vector<int64_t>{5}));  // biases stay 1-D
}

TEST(KeyMap, ExtrasAreRecognisedByWholeName) {
  EXPECT_TRUE(is_single_file_extra("alphas_cumprod", Family::Sd1, 12));
  EXPECT_TRUE(is_single_file_extra("model_ema.decay", Family::Sd1, 12));
  EXPECT_TRUE(is_single_file_extra("cond_stage_model.transformer.text_model.embeddings.position_ids", Family::Sd1, 12));
  EXPECT_FALSE(is_single_file_extra("alphas_cumprod_x", Family::Sd1, 12));
  EXPECT_TRUE(is_single_file_extra("cond_stage_model.model.transformer.resblocks.23.ln_1.weight", Family::Sd2, 23));
  EXPECT_FALSE(is_single_file_extra("cond_stage_model.model.transformer.resblocks.22.ln_1.weight", Family::Sd2, 23));
  EXPECT_TRUE(is_single_file_extra("cond_stage_model.model.text_projection", Family::Sd2, 23));
  EXPECT_FALSE(is_single_file_extra("cond_stage_model.model.text_projection", Family::Sd1, 12));
}

TEST(KeyMap, LegacyVaeAttentionNames) {
  const KeyMap legacy(legacy_vae_attention_rows());
  auto old = legacy.to_ldm("encoder.mid_block.attentions.0.to_out.0.weight");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->key, "encoder.mid_block.attentions.0.proj_attn.weight");
  EXPECT_FALSE(legacy.to_ldm("encoder.mid_block.attentions.0.group_norm.weight"));
}
