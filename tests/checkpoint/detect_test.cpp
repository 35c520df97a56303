#include "dreambooth/checkpoint/detect.h"

#include <gtest/gtest.h>

#include "dreambooth/checkpoint/ldm_yaml.h"
#include "dreambooth/core/error.h"

using namespace dreambooth::checkpoint;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::models::ClipTextConfig;
using dreambooth::models::UNetConfig;
using dreambooth::models::VaeConfig;

namespace {

// The single-file shapes a description implies, as a file header would list them.
ShapeMap ldm_shapes(const ModelDescription& d) {
  ShapeMap shapes;
  for (auto c : kAllComponents)
    for (const auto& stored : component_plan(d, c, Layout::SingleFile)) shapes[stored.key] = stored.shape;
  return shapes;
}

ModelDescription describe(Family family, UNetConfig unet, VaeConfig vae, ClipTextConfig text) {
  ModelDescription d;
  d.family = family;
  d.unet = std::move(unet);
  d.vae = std::move(vae);
  d.text_encoder = std::move(text);
  return d;
}

void expect_same(const nlohmann::json& actual, const nlohmann::json& expected, const char* what) {
  EXPECT_EQ(actual, expected) << what << "\nactual:   " << actual.dump() << "\nexpected: " << expected.dump();
}

std::string model_error_message(const ShapeMap& shapes) {
  try {
    detect_from_shapes(shapes, nullptr, "model.safetensors");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Model);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

const char* kSd21Yaml = R"(model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_checkpoint: True
        image_size: 32 # unused
        num_head_channels: 64 # need to fix for flash-attn
        attention_resolutions: [ 4, 2, 1 ]
        use_linear_in_transformer: True
    first_stage_config:
      params:
        ddconfig:
          resolution: 256
)";

}  // namespace

TEST(Detect, Sd15FromFullSizeShapes) {
  ModelDescription truth = describe(Family::Sd1, UNetConfig::sd15(), VaeConfig::sd15(), ClipTextConfig::sd15());
  ModelDescription d = detect_from_shapes(ldm_shapes(truth), nullptr, "sd15.safetensors");
  EXPECT_EQ(d.family, Family::Sd1);
  EXPECT_EQ(d.prediction_type, PredictionType::Epsilon);
  expect_same(d.unet.to_json(), truth.unet.to_json(), "unet");
  expect_same(d.vae.to_json(), truth.vae.to_json(), "vae");
  ClipTextConfig text = truth.text_encoder;
  text.bos_token_id = 0;  // the published config.json values (not in the shapes)
  text.eos_token_id = 2;
  text.pad_token_id = 1;
  expect_same(d.text_encoder.to_json(), text.to_json(), "text encoder");
  EXPECT_EQ(d.scheduler["_class_name"], "PNDMScheduler");
  EXPECT_EQ(d.scheduler["skip_prk_steps"], true);
  EXPECT_EQ(d.scheduler["timestep_spacing"], "leading");
  EXPECT_EQ(d.config_source, "shapes");
}

TEST(Detect, Sd21FromFullSizeShapesAndYaml) {
  ModelDescription truth = describe(Family::Sd2, UNetConfig::sd21(), VaeConfig::sd15(), ClipTextConfig::sd21());
  ShapeMap shapes = ldm_shapes(truth);
  // A full OpenCLIP dump: the unused 24th block and the projection.
  for (const char* name : {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight"})
    shapes[std::string("cond_stage_model.model.transformer.resblocks.23.") + name] = {1024};
  shapes["cond_stage_model.model.text_projection"] = {1024, 1024};
  shapes["cond_stage_model.model.logit_scale"] = {};

  const LdmYaml yaml = LdmYaml::parse(kSd21Yaml, "v2-inference-v.yaml");
  ModelDescription d = detect_from_shapes(shapes, &yaml, "sd21.safetensors");
  EXPECT_EQ(d.family, Family::Sd2);
  EXPECT_EQ(d.prediction_type, PredictionType::VPrediction);
  UNetConfig unet = truth.unet;
  unet.sample_size = 32;  // the yaml's image_size wins
  expect_same(d.unet.to_json(), unet.to_json(), "unet");
  EXPECT_EQ(d.vae.sample_size, 256);
  expect_same(d.text_encoder.to_json(), truth.text_encoder.to_json(), "text encoder");
  EXPECT_EQ(d.scheduler["_class_name"], "DDIMScheduler");
  EXPECT_EQ(d.scheduler["prediction_type"], "v_prediction");
  EXPECT_EQ(d.config_source, "shapes+yaml");

  // Without the yaml: SD2 family rule (64-channel heads), epsilon unless overridden.
  d = detect_from_shapes(shapes, nullptr, "sd21.safetensors");
  EXPECT_EQ(d.unet.attention_head_dim, (std::vector<int>{5, 10, 20, 20}));
  EXPECT_EQ(d.prediction_type, PredictionType::Epsilon);
  EXPECT_FALSE(d.unet.upcast_attention);
  d = detect_from_shapes(shapes, nullptr, "sd21.safetensors", PredictionType::VPrediction);
  EXPECT_EQ(d.prediction_type, PredictionType::VPrediction);
  EXPECT_TRUE(d.unet.upcast_attention);
  EXPECT_EQ(d.unet.sample_size, 96);
  EXPECT_EQ(d.vae.sample_size, 768);
}

TEST(Detect, YamlHeadCountsWin) {
  ModelDescription truth = describe(Family::Sd1, UNetConfig::tiny(), VaeConfig::tiny(), ClipTextConfig::tiny());
  const LdmYaml heads =
      LdmYaml::parse("model:\n  params:\n    unet_config:\n      params:\n        num_heads: 4\n", "a.yaml");
  EXPECT_EQ(detect_from_shapes(ldm_shapes(truth), &heads, "a").unet.attention_head_dim, std::vector<int>{4});
  const LdmYaml channels =
      LdmYaml::parse("unet_config:\n  params:\n    num_heads: -1\n    num_head_channels: 16\n", "b.yaml");
  EXPECT_EQ(detect_from_shapes(ldm_shapes(truth), &channels, "b").unet.attention_head_dim, (std::vector<int>{2, 4}));
  // Text heads: 64-wide, or 8-wide below a multiple of 64 (tiny: 32 -> 4 heads).
  EXPECT_EQ(detect_from_shapes(ldm_shapes(truth), nullptr, "c").text_encoder.num_attention_heads, 4);
  EXPECT_EQ(detect_from_shapes(ldm_shapes(truth), nullptr, "c").unet.attention_head_dim, std::vector<int>{8});
}

TEST(Detect, UnsupportedVariantsAreModelErrors) {
  ModelDescription tiny = describe(Family::Sd1, UNetConfig::tiny(), VaeConfig::tiny(), ClipTextConfig::tiny());
  ShapeMap inpaint = ldm_shapes(tiny);
  inpaint["model.diffusion_model.input_blocks.0.0.weight"] = {32, 9, 3, 3};
  EXPECT_NE(model_error_message(inpaint).find("inpainting"), std::string::npos);

  ShapeMap sdxl = ldm_shapes(tiny);
  sdxl["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] = {32};
  EXPECT_NE(model_error_message(sdxl).find("SDXL"), std::string::npos);

  ShapeMap no_text;
  for (const auto& [key, shape] : ldm_shapes(tiny))
    if (key.rfind("cond_stage_model.", 0) != 0) no_text[key] = shape;
  EXPECT_NE(model_error_message(no_text).find("no text encoder"), std::string::npos);

  EXPECT_NE(model_error_message({{"foo.weight", {3}}}).find("no UNet tensors"), std::string::npos);

  ShapeMap vae_attention = ldm_shapes(tiny);
  vae_attention["first_stage_model.encoder.down.1.attn.0.q.weight"] = {32, 32, 1, 1};
  EXPECT_NE(model_error_message(vae_attention).find("attention inside level 1"), std::string::npos);
}

TEST(LdmYaml, NestedKeysCommentsAndQuotes) {
  const LdmYaml yaml = LdmYaml::parse(
      "model:\n  params:\n    parameterization: 'v'  # comment\n    unet_config:\n      params:\n"
      "        num_heads: 8\n        channel_mult: [ 1, 2 ]\n    cond_stage_config:\n      params:\n        num_heads: "
      "3\n"
      "    scale_factor: 0.18215\n    # num_heads: 99\n    text: \"a # not a comment\"\n",
      "x.yaml");
  EXPECT_EQ(yaml.find("params.parameterization"), std::optional<std::string>("v"));
  EXPECT_EQ(yaml.find_int("unet_config.params.num_heads"), std::optional<long long>(8));
  EXPECT_EQ(yaml.find("unet_config.params.channel_mult"), std::optional<std::string>("[ 1, 2 ]"));
  EXPECT_EQ(yaml.find_number("model.params.scale_factor"), std::optional<double>(0.18215));
  EXPECT_EQ(yaml.find("params.text"), std::optional<std::string>("a # not a comment"));
  EXPECT_FALSE(yaml.find("arams.parameterization"));   // suffixes match on '.' boundaries only
  EXPECT_THROW(yaml.find("params.num_heads"), Error);  // two candidates
  EXPECT_THROW(yaml.find_int("params.parameterization"), Error);
}
