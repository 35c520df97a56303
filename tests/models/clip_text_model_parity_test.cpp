// CLIPTextModel against transformers 4.36 on the golden tiny-sd1 text encoder (case "text_encoder").
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/clip_text_model.h"
#include "support/golden.h"
#include "support/module_loading.h"
#include "support/tensor_close.h"
#include "support/test_device.h"

namespace dm = dreambooth::models;
using dreambooth::io::SafetensorsReader;
using dreambooth::testing::golden_atol;
using dreambooth::testing::golden_path;

namespace {

dm::ClipTextModel load_tiny_text_encoder() {
  std::ifstream in(golden_path("tiny-sd1/text_encoder/config.json"));
  const auto config = dm::ClipTextConfig::from_json(nlohmann::json::parse(in), "text_encoder/config.json");
  dm::ClipTextModel model(config);
  EXPECT_TRUE(dreambooth::testing::load_module_weights(*model, golden_path("tiny-sd1/text_encoder/model.safetensors")));
  model->eval();
  model->to(dreambooth::testing::test_device());
  return model;
}

}  // namespace

TEST(ClipTextModelParity, TextEncoderMatchesReference) {
  REQUIRE_GOLDEN();
  torch::NoGradGuard no_grad;
  dm::ClipTextModel model = load_tiny_text_encoder();
  SafetensorsReader golden(golden_path("tiny-sd1/golden/text_encoder.safetensors"));
  const at::Tensor ids = golden.load("input.input_ids", torch::kLong, dreambooth::testing::test_device());
  auto expect = [&](const at::Tensor& actual, const std::string& name) {
    const std::string key = "output." + name;
    EXPECT_TENSOR_CLOSE(actual, golden.load(key, torch::kFloat), golden_atol("text_encoder", key), key);
  };

  const dm::ClipTextOutput out = model(ids);
  expect(out.last_hidden_state, "last_hidden_state");
  ASSERT_EQ(out.hidden_states.size(), 4u);
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    expect(out.hidden_states[i], "hidden_states." + std::to_string(i));
  expect(out.hidden_states[out.hidden_states.size() - 2], "penultimate");
  expect(out.pooler_output, "pooler_output");

  expect(model->encode_prompt(ids, 1), "clip_skip1");
  expect(model->encode_prompt(ids, 0), "last_hidden_state");
}
