// The site table: which layers each --lora-targets selects, and kohya names (both path forms) mapping
// back to the right modules.
#include "dreambooth/lora/sites.h"

#include <set>

#include <gtest/gtest.h>

#include "dreambooth/checkpoint/presets.h"
#include "dreambooth/models/layers.h"

using namespace dreambooth::lora;
using dreambooth::checkpoint::Component;
using dreambooth::checkpoint::Preset;

namespace {

struct TargetCount {
  size_t unet = 0;
  size_t text_encoder = 0;
};

TargetCount count_targets(const LoraSiteTable& table, LoraTargets targets) {
  TargetCount n;
  for (const auto& site : table.sites())
    if (is_lora_target(site.component, site.path, targets)) ++(site.component == Component::Unet ? n.unet : n.text_encoder);
  return n;
}

// Real-size modules on the meta device: names and shapes, no memory.
struct MetaModel {
  explicit MetaModel(Preset preset) {
    dreambooth::models::MetaParameterScope meta;
    const auto d = dreambooth::checkpoint::preset_description(preset);
    unet = dreambooth::models::UNet2DConditionModel(d.unet);
    text_encoder = dreambooth::models::ClipTextModel(d.text_encoder);
  }
  dreambooth::models::UNet2DConditionModel unet{nullptr};
  dreambooth::models::ClipTextModel text_encoder{nullptr};
};

}  // namespace

// kohya's sd-scripts report 192 UNet and 72 (SD1) / 138 (SD2, 23 layers) text-encoder modules for a
// standard LoRA: our all-linear set is the same set.
TEST(LoraSites, TargetCountsMatchKohyaForRealModels) {
  MetaModel sd15(Preset::Sd15), sd21(Preset::Sd21);
  const LoraSiteTable t15(sd15.unet, sd15.text_encoder), t21(sd21.unet, sd21.text_encoder);
  const TargetCount all15 = count_targets(t15, LoraTargets::AllLinear);
  EXPECT_EQ(all15.unet, 192u);
  EXPECT_EQ(all15.text_encoder, 72u);
  const TargetCount all21 = count_targets(t21, LoraTargets::AllLinear);
  EXPECT_EQ(all21.unet, 192u);
  EXPECT_EQ(all21.text_encoder, 138u);
  // 16 transformer blocks x 2 attentions x 4 projections; 12 layers x 4 projections.
  const TargetCount attn = count_targets(t15, LoraTargets::Attention);
  EXPECT_EQ(attn.unet, 128u);
  EXPECT_EQ(attn.text_encoder, 48u);
  const TargetCount ff = count_targets(t15, LoraTargets::AttentionFeedForward);
  EXPECT_EQ(ff.unet, 160u);
  EXPECT_EQ(ff.text_encoder, 72u);
}

TEST(LoraSites, TargetsAreTheNamedProjections) {
  MetaModel tiny(Preset::Tiny);
  const LoraSiteTable table(tiny.unet, tiny.text_encoder);
  std::set<std::string> attn, all;
  for (const auto& site : table.sites()) {
    if (is_lora_target(site.component, site.path, LoraTargets::Attention)) attn.insert(site.path);
    if (is_lora_target(site.component, site.path, LoraTargets::AllLinear)) all.insert(site.path);
  }
  const std::string block = "down_blocks.0.attentions.0.transformer_blocks.0.";
  for (const char* p : {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k"})
    EXPECT_TRUE(attn.count(block + p)) << p;
  EXPECT_FALSE(attn.count(block + "ff.net.0.proj"));
  EXPECT_TRUE(all.count(block + "ff.net.0.proj"));
  EXPECT_TRUE(all.count(block + "ff.net.2"));
  EXPECT_TRUE(all.count("down_blocks.0.attentions.0.proj_in"));
  EXPECT_TRUE(all.count("mid_block.attentions.0.proj_out"));
  EXPECT_TRUE(attn.count("text_model.encoder.layers.2.self_attn.out_proj"));
  EXPECT_TRUE(all.count("text_model.encoder.layers.2.mlp.fc1"));
  // Never: resnets, time embedding, conv_in/out.
  for (const char* p : {"conv_in", "time_embedding.linear_1", "down_blocks.0.resnets.0.time_emb_proj",
                        "down_blocks.0.resnets.0.conv1"}) {
    EXPECT_TRUE(table.find(Component::Unet, p)) << p;
    EXPECT_FALSE(all.count(p)) << p;
  }
}

TEST(LoraSites, EveryKohyaNameMapsBackToItsModule) {
  for (Preset preset : {Preset::Tiny, Preset::Sd15, Preset::Sd21}) {
    MetaModel m(preset);
    const LoraSiteTable table(m.unet, m.text_encoder);
    for (const auto& site : table.sites()) {
      const LoraSite* found = table.find_kohya(site.kohya_name);
      ASSERT_TRUE(found) << site.kohya_name;
      EXPECT_EQ(found->path, site.path);
      EXPECT_EQ(found->component, site.component);
      EXPECT_EQ(found->kohya_name, kohya_name(site.component, site.path));
    }
  }
}

TEST(LoraSites, LdmStyleKohyaNamesResolveThroughTheKeyTables) {
  MetaModel sd15(Preset::Sd15);
  const LoraSiteTable table(sd15.unet, sd15.text_encoder);
  const std::pair<const char*, const char*> cases[] = {
      {"lora_unet_input_blocks_1_1_proj_in", "down_blocks.0.attentions.0.proj_in"},
      {"lora_unet_input_blocks_8_1_transformer_blocks_0_attn2_to_k",
       "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k"},
      {"lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj",
       "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj"},
      {"lora_unet_output_blocks_3_1_transformer_blocks_0_attn1_to_out_0",
       "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0"},
      {"lora_unet_output_blocks_11_1_proj_out", "up_blocks.3.attentions.2.proj_out"},
  };
  for (const auto& [name, path] : cases) {
    const LoraSite* site = table.find_kohya(name);
    ASSERT_TRUE(site) << name;
    EXPECT_EQ(site->path, path) << name;
    EXPECT_EQ(site->component, Component::Unet);
  }
  EXPECT_FALSE(table.find_kohya("lora_unet_input_blocks_1_1_proj_inx"));
  EXPECT_FALSE(table.find_kohya("lora_te1_text_model_encoder_layers_0_self_attn_q_proj"));
}

TEST(LoraSites, ModelsWithoutATextEncoder) {
  MetaModel tiny(Preset::Tiny);
  const LoraSiteTable table(tiny.unet, dreambooth::models::ClipTextModel(nullptr));
  EXPECT_TRUE(table.has(Component::Unet));
  EXPECT_FALSE(table.has(Component::TextEncoder));
  EXPECT_FALSE(table.find_kohya("lora_te_text_model_encoder_layers_0_self_attn_q_proj"));
}
