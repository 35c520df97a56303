// Single files written as other tools write them (no metadata), built from random weights through the
// key tables: SD2 OpenCLIP layout, round trips, strict key errors, corrupt files.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoint/checkpoint_test_util.h"
#include "dreambooth/checkpoint/convert.h"
#include "dreambooth/checkpoint/source.h"
#include "dreambooth/checkpoint/strict_load.h"
#include "dreambooth/checkpoint/writer.h"
#include "dreambooth/core/error.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using namespace dreambooth::checkpoint;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::io::NamedTensor;
using dreambooth::testing::kExact;
using dreambooth::testing::TempDir;

namespace {

// SD2.1-shaped but small: OpenCLIP text encoder (gelu, 64-wide heads), linear projections,
// 64-channel UNet heads, attention on every level but the last.
ModelDescription small_sd2() {
  ModelDescription d;
  d.family = Family::Sd2;
  d.unet = dreambooth::models::UNetConfig::sd21();
  d.unet.block_out_channels = {64, 128};
  d.unet.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  d.unet.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  d.unet.attention_head_dim = {1, 2};
  d.unet.layers_per_block = 1;
  d.unet.cross_attention_dim = 64;
  d.unet.upcast_attention = false;
  d.unet.sample_size = 64;
  d.vae = dreambooth::models::VaeConfig::tiny();
  d.vae.sample_size = 512;
  d.text_encoder = dreambooth::models::ClipTextConfig::sd21();
  d.text_encoder.hidden_size = 64;
  d.text_encoder.intermediate_size = 96;
  d.text_encoder.num_attention_heads = 1;
  d.text_encoder.num_hidden_layers = 2;
  d.text_encoder.vocab_size = 1000;
  d.text_encoder.projection_dim = 64;
  d.scheduler = single_file_scheduler_config(Family::Sd2, PredictionType::Epsilon);
  return d;
}

ModelDescription small_sd1() {
  ModelDescription d;
  d.unet = dreambooth::models::UNetConfig::tiny();
  d.vae = dreambooth::models::VaeConfig::tiny();
  d.vae.sample_size = 512;
  d.unet.sample_size = 64;
  d.text_encoder = dreambooth::models::ClipTextConfig::tiny();
  d.text_encoder.vocab_size = 1000;
  d.text_encoder.projection_dim = 32;
  d.scheduler = single_file_scheduler_config(Family::Sd1, PredictionType::Epsilon);
  return d;
}

// The unused OpenCLIP parts a real SD2 file carries: one more block, the projection, the logit scale.
std::vector<NamedTensor> sd2_extras(const ModelDescription& d) {
  const int64_t h = d.text_encoder.hidden_size;
  const std::string block =
      "cond_stage_model.model.transformer.resblocks." + std::to_string(d.text_encoder.num_hidden_layers);
  return {
      {block + ".attn.in_proj_weight", torch::randn({3 * h, h})},
      {block + ".attn.in_proj_bias", torch::randn({3 * h})},
      {block + ".ln_1.weight", torch::randn({h})},
      {"cond_stage_model.model.text_projection", torch::randn({h, h})},
      {"cond_stage_model.model.logit_scale", torch::tensor(4.6f)},
      {"alphas_cumprod", torch::rand({1000})},
  };
}

void expect_same_files(const fs::path& actual, const fs::path& expected) {
  auto a = dreambooth::testing::read_all(actual);
  auto e = dreambooth::testing::read_all(expected);
  ASSERT_EQ(a.size(), e.size());
  for (const auto& [key, tensor] : e) {
    ASSERT_TRUE(a.count(key)) << key;
    EXPECT_EQ(a[key].scalar_type(), tensor.scalar_type()) << key;
    EXPECT_TENSOR_CLOSE(a[key], tensor, kExact, key);
  }
}

Error open_error(const fs::path& path) {
  try {
    open_checkpoint(path);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "opening " << path << " did not fail";
  return Error(ErrorKind::Runtime, "");
}

}  // namespace

TEST(SingleFileSd2, DetectedWithOpenClipSplit) {
  TempDir dir;
  const ModelDescription truth = small_sd2();
  auto weights = dreambooth::testing::random_model_tensors(truth, 7);
  auto file = dreambooth::testing::ldm_tensors(truth, weights);
  for (auto& extra : sd2_extras(truth)) file.push_back(extra);
  dreambooth::io::write_safetensors(dir / "sd2.safetensors", file);

  CheckpointSource source = open_checkpoint(dir / "sd2.safetensors");
  const ModelDescription& d = source.description;
  EXPECT_EQ(d.family, Family::Sd2);
  EXPECT_EQ(d.layout, Layout::SingleFile);
  EXPECT_EQ(d.text_encoder.num_hidden_layers, 2);  // 3 stored blocks, the last one unused
  EXPECT_EQ(d.text_encoder.hidden_act, "gelu");
  EXPECT_EQ(d.text_encoder.num_attention_heads, 1);
  EXPECT_TRUE(d.unet.use_linear_projection);
  EXPECT_EQ(d.unet.attention_head_dim, (std::vector<int>{1, 2}));
  EXPECT_EQ(d.unet.to_json(), truth.unet.to_json());
  EXPECT_EQ(d.vae.to_json(), truth.vae.to_json());
  EXPECT_EQ(d.text_encoder.to_json(), truth.text_encoder.to_json());
  EXPECT_EQ(d.scheduler, truth.scheduler);
  EXPECT_EQ(source.extra_keys.size(), 6u);

  // The fused in_proj tensors split into exactly the q, k, v they were built from.
  for (Component c : kAllComponents) {
    TensorMap views = component_views(source, c);
    ASSERT_EQ(views.size(), weights[c].size()) << component_name(c);
    for (const auto& [key, tensor] : weights[c]) EXPECT_TENSOR_CLOSE(views.at(key), tensor, kExact, key);
  }
}

TEST(SingleFileSd2, RoundTripThroughDiffusersIsExact) {
  TempDir dir;
  const ModelDescription truth = small_sd2();
  auto file = dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 8));
  for (auto& extra : sd2_extras(truth)) file.push_back(extra);
  dreambooth::io::write_safetensors(dir / "in.safetensors", file);

  convert_checkpoint(dir / "in.safetensors", dir / "diffusers", Layout::Diffusers);
  EXPECT_TRUE(fs::exists(dir / "diffusers" / kLdmExtrasFile));
  convert_checkpoint(dir / "diffusers", dir / "out.safetensors", Layout::SingleFile);
  expect_same_files(dir / "out.safetensors", dir / "in.safetensors");

  // The written file carries its description and reloads to the same one.
  CheckpointSource again = open_checkpoint(dir / "out.safetensors");
  EXPECT_EQ(again.description.config_source, "metadata");
  EXPECT_EQ(again.description.text_encoder.to_json(), truth.text_encoder.to_json());
  EXPECT_EQ(again.description.unet.to_json(), truth.unet.to_json());
}

TEST(SingleFileSd2, WithoutOpenClipExtrasEveryBlockIsUsed) {
  TempDir dir;
  const ModelDescription truth = small_sd2();
  dreambooth::io::write_safetensors(
      dir / "sd2.safetensors",
      dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 9)));
  CheckpointSource source = open_checkpoint(dir / "sd2.safetensors");
  EXPECT_EQ(source.description.text_encoder.num_hidden_layers, 2);
  EXPECT_TRUE(source.extra_keys.empty());
}

TEST(SingleFileSd2, LoadsIntoParametersThroughSmallReadBuffers) {
  // 4 KiB reads: most tensors straddle chunks, and the fused in_proj tensors straddle their q/k/v parts.
  TempDir dir;
  const ModelDescription truth = small_sd2();
  auto weights = dreambooth::testing::random_model_tensors(truth, 13);
  std::vector<NamedTensor> file;
  for (auto& t : dreambooth::testing::ldm_tensors(truth, weights)) file.push_back({t.name, t.tensor.to(c10::kHalf)});
  for (auto& extra : sd2_extras(truth)) file.push_back(extra);  // float32 tensors the plan skips
  dreambooth::io::write_safetensors(dir / "sd2-half.safetensors", file);

  CheckpointSource source = open_checkpoint(dir / "sd2-half.safetensors");
  ReadBuffers small;
  small.chunk_bytes = 4096;
  small.count = 3;
  for (Component c : kAllComponents) {
    ParameterMap parameters;
    for (const auto& [key, tensor] : weights[c]) parameters.emplace(key, torch::full_like(tensor, -1.0f));
    load_parameters(source.components[c].plan, source.components[c].files, parameters, component_name(c), small);
    for (const auto& [key, tensor] : weights[c])
      EXPECT_TENSOR_CLOSE(parameters.at(key), tensor.to(c10::kHalf).to(c10::kFloat), kExact, key);
  }
}

TEST(SingleFileSd1, Fp16ConversionAndPredictionOverride) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  auto weights = dreambooth::testing::random_model_tensors(truth, 10);
  dreambooth::io::write_safetensors(dir / "sd1.safetensors", dreambooth::testing::ldm_tensors(truth, weights));

  ConvertOptions options;
  options.input = dir / "sd1.safetensors";
  options.output = dir / "half.safetensors";
  options.layout = Layout::SingleFile;
  options.dtype = c10::kHalf;
  options.prediction_type = PredictionType::VPrediction;
  convert_checkpoint(options);
  CheckpointSource half = open_checkpoint(dir / "half.safetensors");
  EXPECT_EQ(half.description.prediction_type, PredictionType::VPrediction);
  EXPECT_EQ(half.description.scheduler["prediction_type"], "v_prediction");
  for (Component c : kAllComponents) {
    EXPECT_EQ(half.description.stored_dtype[c], c10::kHalf);
    TensorMap views = component_views(half, c);
    for (const auto& [key, tensor] : weights[c]) {
      ASSERT_EQ(views.at(key).scalar_type(), c10::kHalf);
      EXPECT_TENSOR_CLOSE(views.at(key), tensor.to(c10::kHalf), kExact, key);
    }
  }
  // Existing outputs are not replaced unless asked.
  EXPECT_THROW(convert_checkpoint(options), Error);
  options.overwrite = true;
  EXPECT_NO_THROW(convert_checkpoint(options));
}

TEST(StrictKeys, OneErrorListsEveryMissingUnexpectedAndMisshapedKey) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  auto file = dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 11));
  const std::string dropped = "model.diffusion_model.input_blocks.1.1.proj_in.bias";
  const std::string reshaped = "first_stage_model.decoder.conv_in.weight";
  std::vector<NamedTensor> broken;
  for (auto& t : file) {
    if (t.name == dropped) continue;
    if (t.name == reshaped) t.tensor = torch::zeros({64, 4, 1, 1});
    broken.push_back(t);
  }
  broken.push_back({"model.diffusion_model.lora_up.weight", torch::zeros({2})});
  broken.push_back({"something_else", torch::zeros({2})});
  broken.push_back({"alphas_cumprod", torch::zeros({1000})});  // benign: accepted silently
  dreambooth::io::write_safetensors(dir / "broken.safetensors", broken);

  Error e = open_error(dir / "broken.safetensors");
  const std::string message = e.what();
  EXPECT_EQ(e.kind(), ErrorKind::Model) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_NE(message.find("broken.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("1 missing: " + dropped), std::string::npos) << message;
  EXPECT_NE(message.find("2 unexpected: "), std::string::npos) << message;
  EXPECT_NE(message.find("model.diffusion_model.lora_up.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("something_else"), std::string::npos) << message;
  EXPECT_NE(message.find("1 mis-shaped: " + reshaped + " [64, 4, 1, 1] (expected [64, 4, 3, 3])"), std::string::npos)
      << message;
  EXPECT_EQ(message.find("alphas_cumprod"), std::string::npos) << message;

  // Loading only the UNet ignores the VAE's problem.
  OpenOptions unet_only;
  unet_only.components = ComponentSet::only(Component::Unet);
  try {
    open_checkpoint(dir / "broken.safetensors", unet_only);
    ADD_FAILURE() << "no error";
  } catch (const Error& only) {
    EXPECT_EQ(std::string(only.what()).find(reshaped), std::string::npos) << only.what();
  }
}

TEST(StrictKeys, CorruptAndTruncatedFilesAreInputErrorsNamingTheFile) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  dreambooth::io::write_safetensors(
      dir / "good.safetensors",
      dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 12)));
  const auto size = fs::file_size(dir / "good.safetensors");
  fs::copy_file(dir / "good.safetensors", dir / "truncated.safetensors");
  fs::resize_file(dir / "truncated.safetensors", size - 100);
  {
    std::ofstream garbage(dir / "garbage.safetensors", std::ios::binary);
    garbage << "this is not a checkpoint at all, just some text";
  }
  {
    std::ofstream pickle(dir / "model.ckpt", std::ios::binary);
    pickle << "PK";
  }
  for (const char* name : {"truncated.safetensors", "garbage.safetensors", "model.ckpt", "missing.safetensors"}) {
    Error e = open_error(dir / name);
    EXPECT_EQ(e.kind(), ErrorKind::Input) << name << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  EXPECT_NE(std::string(open_error(dir / "model.ckpt").what()).find("safetensors"), std::string::npos);
}

TEST(DiffusersFolder, MissingOrPickleWeightsAreInputErrors) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  dreambooth::io::write_safetensors(
      dir / "sd1.safetensors",
      dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 13)));
  convert_checkpoint(dir / "sd1.safetensors", dir / "model", Layout::Diffusers);
  EXPECT_NO_THROW(open_checkpoint(dir / "model"));
  EXPECT_FALSE(fs::exists(dir / "model" / kLdmExtrasFile));  // the source had no extras

  fs::rename(dir / "model" / "vae" / "diffusion_pytorch_model.safetensors",
             dir / "model" / "vae" / "diffusion_pytorch_model.bin");
  Error pickle = open_error(dir / "model");
  EXPECT_EQ(pickle.kind(), ErrorKind::Input);
  EXPECT_NE(std::string(pickle.what()).find("diffusion_pytorch_model.bin"), std::string::npos) << pickle.what();
  fs::remove(dir / "model" / "vae" / "diffusion_pytorch_model.bin");
  Error missing = open_error(dir / "model");
  EXPECT_EQ(missing.kind(), ErrorKind::Input);
  EXPECT_NE(std::string(missing.what()).find("vae"), std::string::npos) << missing.what();
}

TEST(DiffusersFolder, Fp16VariantShardsAndLegacyVaeNames) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  auto weights = dreambooth::testing::random_model_tensors(truth, 14);
  dreambooth::io::write_safetensors(dir / "sd1.safetensors", dreambooth::testing::ldm_tensors(truth, weights));
  convert_checkpoint(dir / "sd1.safetensors", dir / "model", Layout::Diffusers);
  const fs::path vae = dir / "model" / "vae";
  const fs::path unet = dir / "model" / "unet";

  // VAE: fp16 variant only, with the old attention names.
  auto vae_tensors = dreambooth::testing::read_all(vae / "diffusion_pytorch_model.safetensors");
  std::vector<NamedTensor> renamed;
  for (auto& [key, t] : vae_tensors) {
    std::string name = key;
    for (auto [from, to] :
         {std::pair{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}})
      if (auto at = name.find(from); at != std::string::npos) name.replace(at, std::string(from).size(), to);
    renamed.push_back({name, t.to(c10::kHalf)});
  }
  fs::remove(vae / "diffusion_pytorch_model.safetensors");
  dreambooth::io::write_safetensors(vae / "diffusion_pytorch_model.fp16.safetensors", renamed);

  // UNet: two shards and an index.
  auto unet_tensors = dreambooth::testing::read_all(unet / "diffusion_pytorch_model.safetensors");
  std::vector<NamedTensor> first, second;
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  for (auto& [key, t] : unet_tensors) {
    const bool a = key < "mid";
    (a ? first : second).push_back({key, t});
    index["weight_map"][key] = a ? "part-1.safetensors" : "part-2.safetensors";
  }
  fs::remove(unet / "diffusion_pytorch_model.safetensors");
  dreambooth::io::write_safetensors(unet / "part-1.safetensors", first);
  dreambooth::io::write_safetensors(unet / "part-2.safetensors", second);
  std::ofstream(unet / "diffusion_pytorch_model.safetensors.index.json") << index.dump();

  CheckpointSource source = open_checkpoint(dir / "model");
  EXPECT_EQ(source.description.stored_dtype.vae, c10::kHalf);
  EXPECT_EQ(source.components.unet.files.readers().size(), 2u);
  for (Component c : {Component::Unet, Component::Vae}) {
    TensorMap views = component_views(source, c);
    ASSERT_EQ(views.size(), weights[c].size());
    for (const auto& [key, tensor] : weights[c])
      EXPECT_TENSOR_CLOSE(views.at(key), c == Component::Vae ? tensor.to(c10::kHalf) : tensor, kExact, key);
  }
}

// `info` on full-size files reads only the header: SD1.5 and SD2.1 (with OpenCLIP's unused extras).
TEST(FullSize, DescribeSd15AndSd21FromHeadersOnly) {
  TempDir dir;
  ModelDescription sd15;
  dreambooth::testing::write_sparse_single_file(dir / "sd15.safetensors", dreambooth::testing::ldm_entries(sd15));
  CheckpointSource a = open_checkpoint(dir / "sd15.safetensors");
  EXPECT_EQ(a.description.family, Family::Sd1);
  EXPECT_EQ(a.description.unet.to_json(), sd15.unet.to_json());
  EXPECT_EQ(a.description.vae.to_json(), sd15.vae.to_json());
  EXPECT_EQ(component_parameter_count(a.description, Component::Unet), 859520964);
  EXPECT_EQ(component_parameter_count(a.description, Component::Vae), 83653863);
  EXPECT_EQ(component_parameter_count(a.description, Component::TextEncoder), 123060480);
  for (Component c : kAllComponents) EXPECT_EQ(a.description.stored_dtype[c], c10::kHalf);

  ModelDescription sd21;
  sd21.family = Family::Sd2;
  sd21.unet = dreambooth::models::UNetConfig::sd21();
  sd21.text_encoder = dreambooth::models::ClipTextConfig::sd21();
  auto entries = dreambooth::testing::ldm_entries(sd21);
  ModelDescription open_clip = sd21;  // the 24-block OpenCLIP dump a real SD2 file holds
  open_clip.text_encoder.num_hidden_layers = 24;
  for (const auto& e : dreambooth::testing::ldm_entries(open_clip))
    if (e.name.find("resblocks.23.") != std::string::npos) entries.push_back(e);
  dreambooth::io::SafetensorsEntry projection;
  projection.name = "cond_stage_model.model.text_projection";
  projection.shape = {1024, 1024};
  entries.push_back(projection);
  dreambooth::io::SafetensorsEntry scale;
  scale.name = "cond_stage_model.model.logit_scale";
  entries.push_back(scale);
  dreambooth::testing::write_sparse_single_file(dir / "sd21.safetensors", entries);
  std::ofstream(dir / "sd21.yaml") << "model:\n  params:\n    parameterization: \"v\"\n"
                                      "    unet_config:\n      params:\n        num_head_channels: 64\n";
  CheckpointSource b = open_checkpoint(dir / "sd21.safetensors");
  EXPECT_EQ(b.description.family, Family::Sd2);
  EXPECT_EQ(b.description.prediction_type, PredictionType::VPrediction);
  EXPECT_EQ(b.description.unet.to_json(), sd21.unet.to_json());
  EXPECT_EQ(b.description.text_encoder.to_json(), sd21.text_encoder.to_json());
  EXPECT_EQ(component_parameter_count(b.description, Component::TextEncoder), 340387840);
  EXPECT_EQ(b.extra_keys.size(), 12u + 2u);
}

// diffusers writes "lambda_min_clipped": -Infinity (Python's json); it must survive both layouts.
TEST(DiffusersFolder, PythonJsonSchedulerConfigRoundTrips) {
  TempDir dir;
  const ModelDescription truth = small_sd1();
  dreambooth::io::write_safetensors(
      dir / "sd1.safetensors",
      dreambooth::testing::ldm_tensors(truth, dreambooth::testing::random_model_tensors(truth, 15)));
  convert_checkpoint(dir / "sd1.safetensors", dir / "model", Layout::Diffusers);
  std::ofstream(dir / "model" / "scheduler" / "scheduler_config.json")
      << R"({"_class_name": "DPMSolverMultistepScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "lambda_min_clipped": -Infinity, "prediction_type": "epsilon"})";
  convert_checkpoint(dir / "model", dir / "again.safetensors", Layout::SingleFile);
  convert_checkpoint(dir / "again.safetensors", dir / "again", Layout::Diffusers);
  const ModelDescription d = open_checkpoint(dir / "again").description;
  EXPECT_EQ(d.scheduler["_class_name"], "DPMSolverMultistepScheduler");
  EXPECT_EQ(d.scheduler["lambda_min_clipped"].get<double>(), -std::numeric_limits<double>::infinity());
  std::ifstream in(dir / "again" / "scheduler" / "scheduler_config.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"lambda_min_clipped\": -Infinity"), std::string::npos) << text;
  EXPECT_EQ(dump_python_json({{"a", std::nan("")}, {"b", {1.5, std::numeric_limits<double>::infinity()}}}),
            R"({"a":NaN,"b":[1.5,Infinity]})");
}
