// LoRA files: kohya and diffusers/PEFT round trips, reading the key forms other tools write, and the
// errors and warnings for LoRAs that do not fit.
#include "dreambooth/lora/lora_file.h"

#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/lora/apply.h"
#include "lora/lora_test_util.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth::lora;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::checkpoint::Component;
using dreambooth::io::NamedTensor;
using namespace dreambooth::testing;

namespace {

LoraConfig all_linear_config(uint64_t seed) {
  LoraConfig config;
  config.rank = 4;
  config.alpha = 2.0;
  config.targets = LoraTargets::AllLinear;
  config.text_encoder = true;
  config.seed = seed;
  return config;
}

std::string stored_name(Component c, const std::string& path) {
  return std::string(c == Component::Unet ? "unet." : "text_encoder.") + path + ".weight";
}

// Kohya round trip for one model shape: file keys and shapes, names back to the same modules, and applying
// the file to a fresh copy of the base equals merging the network.
void check_kohya_round_trip(const std::function<dreambooth::checkpoint::StableDiffusion()>& make_base, bool conv_proj) {
  TempDir dir;
  auto model = make_base();
  LoraNetwork network = inject_lora(model, all_linear_config(9));
  randomize_lora_up(network, 10);
  const fs::path file = dir / "lora.safetensors";
  save_lora(network, file);

  // The file as kohya writes it.
  dreambooth::io::SafetensorsReader reader(file);
  std::set<std::string> keys;
  for (const auto& e : reader.entries()) keys.insert(e.name);
  EXPECT_EQ(keys.size(), network->modules().size() * 3);
  for (const auto& m : network->modules()) {
    const std::string& name = m.site.kohya_name;
    ASSERT_TRUE(keys.count(name + ".lora_down.weight") && keys.count(name + ".lora_up.weight") &&
                keys.count(name + ".alpha"))
        << name;
    EXPECT_TRUE(reader.at(name + ".alpha").shape.empty()) << "alpha is 0-d";
    EXPECT_EQ(reader.at(name + ".alpha").dtype, "F32");
    EXPECT_EQ(reader.at(name + ".lora_down.weight").shape, m.site.shape.down_shape(4)) << name;
    EXPECT_EQ(reader.at(name + ".lora_up.weight").shape, m.site.shape.up_shape(4)) << name;
  }
  const std::string proj_in = "lora_unet_down_blocks_0_attentions_0_proj_in";
  ASSERT_TRUE(keys.count(proj_in + ".lora_down.weight"));
  const auto down_shape = reader.at(proj_in + ".lora_down.weight").shape;
  const auto up_shape = reader.at(proj_in + ".lora_up.weight").shape;
  if (conv_proj) {
    EXPECT_EQ(down_shape, (std::vector<int64_t>{4, 32, 1, 1}));
    EXPECT_EQ(up_shape, (std::vector<int64_t>{32, 4, 1, 1}));
  } else {
    EXPECT_EQ(down_shape, (std::vector<int64_t>{4, 32}));
    EXPECT_EQ(up_shape, (std::vector<int64_t>{32, 4}));
  }

  // Names back to modules, factors unchanged.
  const LoraWeights weights = load_lora_file(file);
  EXPECT_EQ(weights.format, LoraFormat::Kohya);
  EXPECT_TRUE(weights.unrecognised_keys.empty());
  ASSERT_EQ(weights.modules.size(), network->modules().size());
  auto fresh = make_base();
  const LoraSiteTable table(fresh);
  for (const auto& w : weights.modules) {
    const LoraSite* site = table.find_kohya(w.name);
    ASSERT_TRUE(site) << w.name;
    ASSERT_TRUE(w.component.has_value());
    const LoraModule* m = network->find(site->component, site->path);
    ASSERT_TRUE(m) << w.name << " mapped to " << site->path << ", which has no adapter";
    EXPECT_EQ(m->site.kohya_name, w.name);
    EXPECT_EQ(*w.component, m->site.component);
    EXPECT_TENSOR_CLOSE(w.down, m->adapter->down, kLoraBitIdentical, w.name + " down");
    EXPECT_TENSOR_CLOSE(w.up, m->adapter->up, kLoraBitIdentical, w.name + " up");
    EXPECT_DOUBLE_EQ(w.scale(), 0.5);
  }

  // Applying the file = merging the network.
  const LoraApplyReport report = apply_lora(fresh, weights, 0.9);
  EXPECT_EQ(report.applied, network->modules().size());
  EXPECT_TRUE(report.unplaced.empty());
  network->set_multiplier(0.9);
  network->merge_into_base();
  const auto expected = lora_model_weights(model);
  for (const auto& [key, tensor] : lora_model_weights(fresh))
    EXPECT_TENSOR_CLOSE(tensor, expected.at(key), kLoraBitIdentical, key);
}

void write_file(const fs::path& path, const std::vector<NamedTensor>& tensors,
                const dreambooth::io::Metadata& metadata = {}) {
  dreambooth::io::write_safetensors(path, tensors, metadata);
}

// Captures what is logged while alive.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

template <typename F>
Error expect_error(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error(ErrorKind::Runtime, "");
}

}  // namespace

TEST(LoraFile, KohyaRoundTripSd1GoldenWithConvProjections) {
  REQUIRE_GOLDEN();
  check_kohya_round_trip([] { return golden_tiny_model(); }, /*conv_proj=*/true);
}

TEST(LoraFile, KohyaRoundTripSd2ShapedWithLinearProjections) {
  check_kohya_round_trip([] { return tiny_model(TinyShape::Sd2, 3); }, /*conv_proj=*/false);
}

TEST(LoraFile, DiffusersRoundTripFoldsAlphaIntoB) {
  TempDir dir;
  auto model = tiny_model(TinyShape::Sd1, 3);
  LoraNetwork network = inject_lora(model, all_linear_config(4));
  randomize_lora_up(network, 5);
  LoraSaveOptions options;
  options.format = LoraFormat::Diffusers;
  save_lora(network, dir / "peft.safetensors", options);

  dreambooth::io::SafetensorsReader reader(dir / "peft.safetensors");
  EXPECT_TRUE(reader.contains("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"));
  EXPECT_TRUE(reader.contains("unet.down_blocks.0.attentions.0.proj_in.lora_B.weight"));
  EXPECT_TRUE(reader.contains("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_EQ(reader.entries().size(), network->modules().size() * 2);  // no alpha keys

  const LoraWeights weights = load_lora_file(dir / "peft.safetensors");
  EXPECT_EQ(weights.format, LoraFormat::Diffusers);
  for (const auto& w : weights.modules) EXPECT_FALSE(w.alpha.has_value());
  auto fresh = tiny_model(TinyShape::Sd1, 3);
  EXPECT_EQ(apply_lora(fresh, weights, 1.0).applied, network->modules().size());
  network->merge_into_base();
  const auto expected = lora_model_weights(model);
  for (const auto& [key, tensor] : lora_model_weights(fresh))
    EXPECT_TENSOR_CLOSE(tensor, expected.at(key), kLoraFloatRounding, key);
}

TEST(LoraFile, ReadsEveryDiffusersKeyForm) {
  TempDir dir;
  auto model = tiny_model(TinyShape::Sd1, 6);
  const auto before = lora_model_weights(model);
  torch::manual_seed(8);
  const std::string attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1";
  const std::string attn2 = "up_blocks.1.attentions.2.transformer_blocks.0.attn2";
  const std::string layer0 = "text_model.encoder.layers.0.self_attn";
  const std::string layer1 = "text_model.encoder.layers.1.self_attn";
  struct Case {
    std::string down_key, up_key;
    Component component;
    std::string module;
    std::vector<int64_t> down_shape, up_shape;
    double scale;
  };
  const std::vector<Case> cases = {
      // PEFT (diffusers >= 0.24)
      {"unet." + attn + ".to_q.lora_A.weight", "unet." + attn + ".to_q.lora_B.weight", Component::Unet,
       attn + ".to_q", {2, 32}, {32, 2}, 1.0},
      // PEFT on SD1's 1x1 conv proj_in, with an alpha key
      {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight",
       Component::Unet, "down_blocks.0.attentions.0.proj_in", {2, 32, 1, 1}, {32, 2, 1, 1}, 3.0 / 2.0},
      // LoRACompatibleLinear
      {"unet." + attn2 + ".to_k.lora.down.weight", "unet." + attn2 + ".to_k.lora.up.weight", Component::Unet,
       attn2 + ".to_k", {2, 32}, {32, 2}, 1.0},
      // attention processors, with and without the "unet." prefix
      {"unet." + attn + ".processor.to_out_lora.down.weight", "unet." + attn + ".processor.to_out_lora.up.weight",
       Component::Unet, attn + ".to_out.0", {2, 32}, {32, 2}, 1.0},
      {attn2 + ".processor.to_v_lora.down.weight", attn2 + ".processor.to_v_lora.up.weight", Component::Unet,
       attn2 + ".to_v", {2, 32}, {32, 2}, 1.0},
      // text encoder: PEFT, lora_linear_layer, attention-processor names
      {"text_encoder." + layer0 + ".k_proj.lora_A.weight", "text_encoder." + layer0 + ".k_proj.lora_B.weight",
       Component::TextEncoder, layer0 + ".k_proj", {2, 32}, {32, 2}, 1.0},
      {"text_encoder." + layer0 + ".q_proj.lora_linear_layer.down.weight",
       "text_encoder." + layer0 + ".q_proj.lora_linear_layer.up.weight", Component::TextEncoder, layer0 + ".q_proj",
       {2, 32}, {32, 2}, 1.0},
      {"text_encoder." + layer1 + ".to_out_lora.down.weight", "text_encoder." + layer1 + ".to_out_lora.up.weight",
       Component::TextEncoder, layer1 + ".out_proj", {2, 32}, {32, 2}, 1.0},
  };
  std::vector<NamedTensor> tensors;
  std::vector<std::pair<at::Tensor, at::Tensor>> factors;
  for (const auto& c : cases) {
    factors.emplace_back(torch::randn(c.down_shape), torch::randn(c.up_shape));
    tensors.push_back({c.down_key, factors.back().first});
    tensors.push_back({c.up_key, factors.back().second});
  }
  tensors.push_back({"unet.down_blocks.0.attentions.0.proj_in.alpha", torch::tensor({3.0f})});  // [1]-shaped alpha
  write_file(dir / "forms.safetensors", tensors);

  const LoraWeights weights = load_lora_file(dir / "forms.safetensors");
  EXPECT_EQ(weights.format, LoraFormat::Diffusers);
  EXPECT_TRUE(weights.unrecognised_keys.empty());
  const LoraApplyReport report = apply_lora(model, weights, 0.5);
  EXPECT_EQ(report.applied, cases.size());
  EXPECT_TRUE(report.unplaced.empty());

  std::set<std::string> changed;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const std::string key = stored_name(c.component, c.module);
    changed.insert(key);
    const at::Tensor& w0 = before.at(key);
    const at::Tensor product = torch::mm(factors[i].second.flatten(1), factors[i].first.flatten(1)).reshape(w0.sizes());
    EXPECT_TENSOR_CLOSE(lora_model_weights(model).at(key), w0 + 0.5 * c.scale * product, kLoraFloatRounding, key);
  }
  for (const auto& [key, tensor] : lora_model_weights(model)) {
    if (!changed.count(key)) {
      EXPECT_TENSOR_CLOSE(tensor, before.at(key), kLoraBitIdentical, key);
    }
  }
}

TEST(LoraFile, DiffusersAdapterMetadataGivesTheAlpha) {
  TempDir dir;
  torch::manual_seed(2);
  const std::string q = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  write_file(dir / "peft.safetensors", {{q + ".lora_A.weight", torch::randn({4, 32})}, {q + ".lora_B.weight", torch::randn({32, 4})}},
             {{"lora_adapter_metadata", R"({"unet.r": 4, "unet.lora_alpha": 8})"}});
  const LoraWeights weights = load_lora_file(dir / "peft.safetensors");
  ASSERT_EQ(weights.modules.size(), 1u);
  EXPECT_DOUBLE_EQ(weights.modules[0].scale(), 2.0);
}

TEST(LoraFile, KohyaLdmStyleNamesApplyToTheRightModules) {
  TempDir dir;
  auto model = tiny_model(TinyShape::Sd1, 7);
  const auto before = lora_model_weights(model);
  torch::manual_seed(3);
  const at::Tensor down1 = torch::randn({2, 32, 1, 1}), up1 = torch::randn({32, 2, 1, 1});
  const at::Tensor down2 = torch::randn({2, 64}), up2 = torch::randn({64, 2});
  write_file(dir / "ldm.safetensors",
             {{"lora_unet_input_blocks_1_1_proj_in.lora_down.weight", down1},
              {"lora_unet_input_blocks_1_1_proj_in.lora_up.weight", up1},
              {"lora_unet_input_blocks_1_1_proj_in.alpha", torch::tensor(1.0f)},
              {"lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q.lora_down.weight", down2},
              {"lora_unet_middle_block_1_transformer_blocks_0_attn1_to_q.lora_up.weight", up2}});
  const LoraApplyReport report = apply_lora(model, load_lora_file(dir / "ldm.safetensors"), 1.0);
  EXPECT_EQ(report.applied, 2u);
  const auto after = lora_model_weights(model);
  const std::string proj_in = "unet.down_blocks.0.attentions.0.proj_in.weight";
  const std::string to_q = "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight";
  EXPECT_TENSOR_CLOSE(after.at(proj_in),
                      before.at(proj_in) + 0.5 * torch::mm(up1.flatten(1), down1.flatten(1)).view({32, 32, 1, 1}),
                      kLoraFloatRounding, "proj_in via input_blocks_1_1");
  EXPECT_TENSOR_CLOSE(after.at(to_q), before.at(to_q) + torch::mm(up2, down2), kLoraFloatRounding,
                      "to_q via middle_block_1 (no alpha: scale 1)");
}

TEST(LoraFile, WrongFamilyIsAModelErrorAndChangesNothing) {
  TempDir dir;
  auto other = tiny_model(TinyShape::OtherWidth, 1);
  LoraNetwork network = inject_lora(other, all_linear_config(1));
  randomize_lora_up(network, 1);
  LoraSaveOptions options;
  LoraTrainingInfo sd2_info;
  sd2_info.family = dreambooth::checkpoint::Family::Sd2;
  options.metadata = kohya_metadata(network, sd2_info);
  save_lora(network, dir / "sd2.safetensors", options);

  auto model = tiny_model(TinyShape::Sd1, 2);
  const auto before = lora_model_weights(model);
  const LoraWeights weights = load_lora_file(dir / "sd2.safetensors");
  const Error e = expect_error([&] { apply_lora(model, weights, 1.0); }, ErrorKind::Model);
  const std::string message = e.what();
  EXPECT_NE(message.find("sd2.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("other shapes"), std::string::npos) << message;
  EXPECT_NE(message.find("attn2_to_k"), std::string::npos) << message;
  EXPECT_NE(message.find("sd_v2"), std::string::npos) << message;
  for (const auto& [key, tensor] : lora_model_weights(model)) EXPECT_TENSOR_CLOSE(tensor, before.at(key), kLoraBitIdentical, key);
}

TEST(LoraFile, ALoraOfAnotherArchitectureIsAModelError) {
  TempDir dir;
  torch::manual_seed(1);
  // SDXL kohya names: two text encoders; nothing here exists in an SD1 model.
  write_file(dir / "sdxl.safetensors",
             {{"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", torch::randn({4, 768})},
              {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", torch::randn({768, 4})},
              {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", torch::randn({4, 1280})},
              {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", torch::randn({1280, 4})}});
  auto model = tiny_model(TinyShape::Sd1, 2);
  const Error e = expect_error([&] { apply_lora(model, load_lora_file(dir / "sdxl.safetensors"), 1.0); }, ErrorKind::Model);
  EXPECT_NE(std::string(e.what()).find("lora_te1_text_model_encoder_layers_0_self_attn_q_proj"), std::string::npos);
}

TEST(LoraFile, UnknownKeysAreReportedAndLoggedAsOneWarning) {
  TempDir dir;
  torch::manual_seed(1);
  const std::string q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
  write_file(dir / "mixed.safetensors",
             {{q + ".lora_down.weight", torch::randn({2, 32})},
              {q + ".lora_up.weight", torch::randn({32, 2})},
              {"lora_unet_no_such_module.lora_down.weight", torch::randn({2, 32})},
              {"lora_unet_no_such_module.lora_up.weight", torch::randn({32, 2})},
              {"lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a", torch::randn({2, 2})},
              {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", torch::randn({2, 32})}});
  const LoraWeights weights = load_lora_file(dir / "mixed.safetensors");
  auto model = tiny_model(TinyShape::Sd1, 2);
  LogCapture log;
  const LoraApplyReport report = apply_lora(model, weights, 1.0);
  EXPECT_EQ(report.applied, 1u);
  const std::set<std::string> unplaced(report.unplaced.begin(), report.unplaced.end());
  EXPECT_EQ(unplaced, (std::set<std::string>{"lora_unet_no_such_module.lora_down.weight",
                                             "lora_unet_no_such_module.lora_up.weight",
                                             "lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a",
                                             "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"}));
  const std::string logged = log.text();
  EXPECT_NE(logged.find("4 LoRA key(s)"), std::string::npos) << logged;
  for (const auto& key : unplaced) EXPECT_NE(logged.find(key), std::string::npos) << key;
}

TEST(LoraFile, UnreadableFilesAreInputErrors) {
  TempDir dir;
  std::ofstream(dir / "old.ckpt") << "pickle";
  const Error pickle = expect_error([&] { load_lora_file(dir / "old.ckpt"); }, ErrorKind::Input);
  EXPECT_NE(std::string(pickle.what()).find("safetensors"), std::string::npos);
  expect_error([&] { load_lora_file(dir / "missing.safetensors"); }, ErrorKind::Input);
  write_file(dir / "model.safetensors", {{"conv_in.weight", torch::zeros({4, 4, 3, 3})}});
  expect_error([&] { load_lora_file(dir / "model.safetensors"); }, ErrorKind::Input);
  write_file(dir / "rank.safetensors", {{"lora_unet_x.lora_down.weight", torch::zeros({4, 32})},
                                        {"lora_unet_x.lora_up.weight", torch::zeros({32, 2})}});
  expect_error([&] { load_lora_file(dir / "rank.safetensors"); }, ErrorKind::Input);
}

TEST(LoraFile, KohyaMetadataIsWrittenAsStrings) {
  TempDir dir;
  auto model = tiny_model(TinyShape::Sd1, 2);
  LoraConfig config = all_linear_config(1);
  config.rank = 8;
  config.alpha = 4.0;
  LoraNetwork network = inject_lora(model, config);
  LoraTrainingInfo info;
  info.base_model_name = "v1-5-pruned-emaonly.safetensors";
  info.base_model_hash = "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa";
  info.identifier = "sks";
  info.class_name = "dog";
  info.steps = 400;
  LoraSaveOptions options;
  options.metadata = kohya_metadata(network, info);
  options.dtype = c10::kHalf;
  save_lora(network, dir / "lora.safetensors", options);
  dreambooth::io::SafetensorsReader reader(dir / "lora.safetensors");
  const auto& m = reader.metadata();
  EXPECT_EQ(m.at("ss_network_module"), "networks.lora");
  EXPECT_EQ(m.at("ss_network_dim"), "8");
  EXPECT_EQ(m.at("ss_network_alpha"), "4.0");
  EXPECT_EQ(m.at("ss_base_model_version"), "sd_v1");
  EXPECT_EQ(m.at("ss_v2"), "False");
  EXPECT_EQ(m.at("ss_sd_model_name"), info.base_model_name);
  EXPECT_EQ(m.at("ss_new_sd_model_hash"), info.base_model_hash);
  EXPECT_EQ(m.at("ss_max_train_steps"), "400");
  EXPECT_NE(m.at("ss_training_comment").find("sks dog"), std::string::npos);
  EXPECT_EQ(m.at("format"), "pt");
  EXPECT_EQ(nlohmann::json::parse(m.at("dreambooth.lora")).at("class"), "dog");
  EXPECT_EQ(reader.at("lora_unet_mid_block_attentions_0_proj_in.lora_down.weight").dtype, "F16");
  EXPECT_EQ(load_lora_file(dir / "lora.safetensors").modules.front().scale(), 0.5);
}
