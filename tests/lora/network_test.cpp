// inject_lora on the golden tiny model: a fresh LoRA changes nothing, merging follows the formula and
// computes what the run-time adapters compute.
#include "dreambooth/lora/network.h"

#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/lora/apply.h"
#include "dreambooth/lora/lora_file.h"
#include "lora/lora_test_util.h"
#include "support/golden.h"
#include "support/tensor_close.h"

using namespace dreambooth::lora;
using dreambooth::checkpoint::Component;
using namespace dreambooth::testing;

namespace {


LoraConfig config_for(LoraTargets targets, bool text_encoder) {
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8.0;
  config.targets = targets;
  config.text_encoder = text_encoder;
  config.seed = 42;
  return config;
}

}  // namespace

TEST(LoraNetwork, ZeroUpLeavesOutputsBitIdentical) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  const UNetInputs in = tiny_unet_inputs();
  const at::Tensor base_unet = run_unet(model, in);
  const at::Tensor base_text = run_text_encoder(model);
  for (const auto& info : kLoraTargets) {
    LoraNetwork network = inject_lora(model, config_for(info.targets, true));
    ASSERT_TRUE(network->attached());
    EXPECT_TENSOR_CLOSE(run_unet(model, in), base_unet, kLoraBitIdentical, std::string("unet ") + info.name);
    EXPECT_TENSOR_CLOSE(run_text_encoder(model), base_text, kLoraBitIdentical, std::string("text encoder ") + info.name);
    network->detach();
  }
}

TEST(LoraNetwork, ParametersAreNamedByKohyaKeys) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  // tiny: 2 + 1 + 3 transformers x 12 layers; 3 text layers x 6.
  size_t unet = 0, text = 0;
  for (const auto& m : network->modules()) ++(m.site.component == Component::Unet ? unet : text);
  EXPECT_EQ(unet, 6u * 12u);
  EXPECT_EQ(text, 3u * 6u);
  std::set<std::string> expected, actual;
  for (const auto& m : network->modules()) {
    expected.insert(m.site.kohya_name + ".lora_down.weight");
    expected.insert(m.site.kohya_name + ".lora_up.weight");
  }
  for (const auto& item : network->named_parameters()) {
    actual.insert(item.key());
    EXPECT_TRUE(item.value().requires_grad()) << item.key();
  }
  EXPECT_EQ(actual, expected);
  EXPECT_TRUE(actual.count("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  EXPECT_TRUE(actual.count("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"));
  // The base model's own parameters are untouched in name and number.
  EXPECT_EQ(model.unet->named_parameters().size(), golden_tiny_model().unet->named_parameters().size());
}

TEST(LoraNetwork, GradientsReachOnlyTheAdapters) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  for (auto& p : model.unet->parameters()) p.set_requires_grad(false);
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::Attention, false));
  randomize_lora_up(network, 1);
  const UNetInputs in = tiny_unet_inputs();
  model.unet->forward(in.sample, in.timestep, in.context).pow(2).mean().backward();
  for (const auto& item : network->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
  for (const auto& p : model.unet->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(LoraNetwork, MergedWeightsAreBasePlusScaledProduct) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  const auto before = lora_model_weights(model);
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  randomize_lora_up(network, 2);
  network->set_multiplier(0.7);
  network->merge_into_base();
  EXPECT_FALSE(network->attached());
  std::set<std::string> merged;
  for (const auto& m : network->modules()) {
    const std::string key =
        std::string(m.site.component == Component::Unet ? "unet." : "text_encoder.") + m.site.path + ".weight";
    merged.insert(key);
    // W + multiplier * (alpha / rank) * up @ down, in float64 from the factors.
    const at::Tensor up = m.adapter->up.to(torch::kDouble).flatten(1);
    const at::Tensor down = m.adapter->down.to(torch::kDouble).flatten(1);
    const at::Tensor expected =
        before.at(key).to(torch::kDouble) + 0.7 * (8.0 / 4.0) * torch::mm(up, down).reshape(before.at(key).sizes());
    EXPECT_TENSOR_CLOSE(m.site.weight().to(torch::kDouble), expected, kLoraFloatRounding, key);
  }
  for (const auto& [key, tensor] : lora_model_weights(model)) {
    if (!merged.count(key)) {
      EXPECT_TENSOR_CLOSE(tensor, before.at(key), kLoraBitIdentical, key);
    }
  }
}

TEST(LoraNetwork, MergedModelComputesWhatTheAdaptersCompute) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  const UNetInputs in = tiny_unet_inputs();
  const at::Tensor base = run_unet(model, in);
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  randomize_lora_up(network, 3);
  network->set_multiplier(0.8);
  network->eval();
  const at::Tensor runtime_unet = run_unet(model, in);
  const at::Tensor runtime_text = run_text_encoder(model);
  EXPECT_GT(max_abs_diff(runtime_unet, base), 1e-2);  // the LoRA does something
  network->merge_into_base();
  EXPECT_TENSOR_CLOSE(run_unet(model, in), runtime_unet, kRuntimeVsMerged, "unet merged vs runtime");
  EXPECT_TENSOR_CLOSE(run_text_encoder(model), runtime_text, kRuntimeVsMerged, "text encoder merged vs runtime");
}

TEST(LoraNetwork, DetachRestoresTheBaseAndAttachBringsTheAdaptersBack) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  const UNetInputs in = tiny_unet_inputs();
  const at::Tensor base = run_unet(model, in);
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::Attention, false));
  randomize_lora_up(network, 4);
  const at::Tensor with = run_unet(model, in);
  network->detach();
  EXPECT_TENSOR_CLOSE(run_unet(model, in), base, kLoraBitIdentical, "detached");
  network->attach();
  EXPECT_TENSOR_CLOSE(run_unet(model, in), with, kLoraBitIdentical, "attached again");
  network->set_multiplier(0.0);
  EXPECT_TENSOR_CLOSE(run_unet(model, in), base, kLoraBitIdentical, "multiplier 0");
}

TEST(LoraNetwork, SameSeedSameAdapters) {
  auto model = tiny_model(TinyShape::Sd1, 5);
  LoraNetwork a = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  a->detach();
  LoraNetwork b = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  auto pb = b->named_parameters();
  for (const auto& item : a->named_parameters()) EXPECT_TENSOR_CLOSE(item.value(), pb[item.key()], 0.0, item.key());
}

TEST(LoraNetwork, ConfigErrorsAreUsageErrors) {
  auto model = tiny_model(TinyShape::Sd1, 5);
  auto expect_usage = [&](LoraConfig config, const char* what) {
    try {
      inject_lora(model, config);
      ADD_FAILURE() << what;
    } catch (const dreambooth::Error& e) {
      EXPECT_EQ(e.kind(), dreambooth::ErrorKind::Usage) << what;
    }
  };
  LoraConfig c;
  c.rank = 0;
  expect_usage(c, "rank 0");
  c = LoraConfig{};
  c.alpha = -1.0;
  expect_usage(c, "negative alpha");
  c = LoraConfig{};
  c.dropout = 1.0;
  expect_usage(c, "dropout 1");
  c = LoraConfig{};
  c.unet = false;
  expect_usage(c, "no component");
  model.text_encoder = dreambooth::models::ClipTextModel(nullptr);
  c = LoraConfig{};
  c.text_encoder = true;
  expect_usage(c, "text encoder not loaded");
}

// What gradient checkpointing must be told a UNet block trains: the adapters attached inside it.
TEST(LoraNetwork, AttachedAdapterParametersAreFoundPerBlock) {
  auto model = tiny_model(TinyShape::Sd1, 5);
  EXPECT_TRUE(dreambooth::models::attached_adapter_parameters(*model.unet).empty());
  LoraNetwork network = inject_lora(model, config_for(LoraTargets::AllLinear, true));
  auto data_set = [](const std::vector<at::Tensor>& tensors) {
    std::set<const void*> out;
    for (const auto& t : tensors) out.insert(t.data_ptr());
    return out;
  };
  std::vector<at::Tensor> unet_adapters, block_adapters;
  for (const auto& m : network->modules()) {
    if (m.site.component != Component::Unet) continue;
    unet_adapters.push_back(m.adapter->down);
    unet_adapters.push_back(m.adapter->up);
    if (m.site.path.rfind("down_blocks.0.", 0) == 0) {
      block_adapters.push_back(m.adapter->down);
      block_adapters.push_back(m.adapter->up);
    }
  }
  ASSERT_FALSE(block_adapters.empty());
  EXPECT_EQ(data_set(dreambooth::models::attached_adapter_parameters(*model.unet)), data_set(unet_adapters));
  EXPECT_EQ(data_set(dreambooth::models::attached_adapter_parameters(*model.unet->down_blocks[0])),
            data_set(block_adapters));
  network->detach();
  EXPECT_TRUE(dreambooth::models::attached_adapter_parameters(*model.unet).empty());
}

// A few optimizer steps (dropout on, text encoder included), then: the merged model computes what the
// trained adapters compute at run time, and the saved file applied to a fresh base gives the same model.
TEST(LoraNetwork, AfterShortTrainingMergedEqualsRuntime) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  for (auto& p : model.unet->parameters()) p.set_requires_grad(false);
  for (auto& p : model.text_encoder->parameters()) p.set_requires_grad(false);
  LoraConfig config = config_for(LoraTargets::AllLinear, true);
  config.dropout = 0.1;
  LoraNetwork network = inject_lora(model, config);
  torch::optim::AdamW optimizer(network->parameters(), torch::optim::AdamWOptions(1e-2));
  const UNetInputs in = tiny_unet_inputs();
  network->train();
  torch::manual_seed(7);
  const at::Tensor target = torch::randn_like(in.sample);
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    const at::Tensor context = model.text_encoder->forward(tiny_ids().expand({2, -1})).last_hidden_state;
    const at::Tensor loss = torch::mse_loss(model.unet->forward(in.sample, in.timestep, context), target);
    loss.backward();
    optimizer.step();
  }
  for (const auto& m : network->modules())
    ASSERT_GT(m.adapter->up.abs().max().item<double>(), 0.0) << m.site.kohya_name << " did not train";

  network->eval();
  const at::Tensor runtime_unet = run_unet(model, in);
  const at::Tensor runtime_text = run_text_encoder(model);
  TempDir dir;
  save_lora(network, dir / "trained.safetensors");
  network->merge_into_base();
  EXPECT_TENSOR_CLOSE(run_unet(model, in), runtime_unet, kRuntimeVsMerged, "unet merged vs runtime");
  EXPECT_TENSOR_CLOSE(run_text_encoder(model), runtime_text, kRuntimeVsMerged, "text encoder merged vs runtime");

  auto fresh = golden_tiny_model();
  apply_lora(fresh, load_lora_file(dir / "trained.safetensors"), 1.0);
  const auto expected = lora_model_weights(model);
  for (const auto& [key, tensor] : lora_model_weights(fresh))
    EXPECT_TENSOR_CLOSE(tensor, expected.at(key), kLoraBitIdentical, "file applied vs merged: " + key);
}
