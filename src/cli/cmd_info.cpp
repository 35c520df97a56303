// `dreambooth info`: what a checkpoint is, from its headers and configs only (no weights are read).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "command.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/text/tokenizer_search.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct InfoOptions {
  std::string path;
  std::string prediction_type;
  std::string tokenizer;
  bool json = false;
};

std::string dtype_label(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return "fp32";
    case c10::kHalf: return "fp16";
    case c10::kBFloat16: return "bf16";
    case c10::kDouble: return "fp64";
    default: return c10::toString(type);
  }
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

int run_info(const InfoOptions& o) {
  const fs::path resolved = pipelines::resolve_model_path(o.path);
  std::optional<checkpoint::PredictionType> prediction;
  if (!o.prediction_type.empty())
    prediction = checkpoint::parse_prediction_type(o.prediction_type, "--prediction-type");
  checkpoint::CheckpointInfo info = checkpoint::describe_checkpoint(resolved, prediction);
  const checkpoint::ModelDescription& d = info.description;

  // The tokenizer is reported, not required: info must work on a bare single file.
  nlohmann::json tokenizer = nullptr;
  std::string tokenizer_line = "not found (pass --tokenizer to sample/train)";
  try {
    text::TokenizerQuery query;
    if (!o.tokenizer.empty()) query.explicit_path = fs::path(o.tokenizer);
    query.model_path = resolved;
    query.model_is_diffusers_folder = d.layout == checkpoint::Layout::Diffusers;
    query.family = d.family == checkpoint::Family::Sd2 ? text::TokenizerFamily::SD2 : text::TokenizerFamily::SD1;
    text::FoundTokenizer found = text::find_tokenizer(query);
    tokenizer = {{"path", found.path.string()}, {"source", found.source}};
    tokenizer_line = found.path.string() + " (" + found.source + ")";
  } catch (const Error&) {
  }

  const std::string scheduler_class = d.scheduler.value("_class_name", std::string("unknown"));
  const int resolution = d.unet.sample_size * d.vae.downscale_factor();
  if (o.json) {
    nlohmann::json j = {
        {"path", resolved.string()},
        {"family", checkpoint::family_name(d.family)},
        {"layout", d.layout == checkpoint::Layout::SingleFile ? "single-file" : "diffusers"},
        {"prediction_type", checkpoint::prediction_type_name(d.prediction_type)},
        {"parameters",
         {{"unet", info.parameter_count.unet}, {"vae", info.parameter_count.vae},
          {"text_encoder", info.parameter_count.text_encoder}}},
        {"dtypes",
         {{"unet", dtype_label(d.stored_dtype.unet)}, {"vae", dtype_label(d.stored_dtype.vae)},
          {"text_encoder", dtype_label(d.stored_dtype.text_encoder)}}},
        {"scheduler", scheduler_class},
        {"resolution", resolution},
        {"config_source", d.config_source},
        {"extra_keys", info.extra_keys.size()},
        {"tokenizer", tokenizer},
    };
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("path             %s\n", resolved.string().c_str());
  std::printf("family           %s\n", checkpoint::family_name(d.family));
  std::printf("layout           %s\n", d.layout == checkpoint::Layout::SingleFile ? "single-file" : "diffusers");
  std::printf("prediction type  %s\n", checkpoint::prediction_type_name(d.prediction_type));
  std::printf("scheduler        %s\n", scheduler_class.c_str());
  std::printf("resolution       %dx%d\n", resolution, resolution);
  std::printf("configs from     %s\n", d.config_source.c_str());
  for (checkpoint::Component c : checkpoint::kAllComponents)
    std::printf("%-16s %15s parameters, %s\n", checkpoint::component_name(c),
                with_commas(info.parameter_count[c]).c_str(), dtype_label(d.stored_dtype[c]).c_str());
  if (!info.extra_keys.empty())
    std::printf("unused tensors   %zu (kept on conversion)\n", info.extra_keys.size());
  std::printf("tokenizer        %s\n", tokenizer_line.c_str());
  return 0;
}

}  // namespace

CommandRunner register_info_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* c = app.add_subcommand("info", "describe a checkpoint: family, layout, prediction type, parameters");
  c->add_option("path", o->path, "a .safetensors file, a diffusers folder or a `train` output folder")->required();
  c->add_flag("--json", o->json, "one JSON object on stdout");
  c->add_option("--prediction-type", o->prediction_type, "override: epsilon | v_prediction")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  c->add_option("--tokenizer", o->tokenizer, "tokenizer to report instead of searching");
  add_common_options(*c, common);
  return [o] { return run_info(*o); };
}

}  // namespace dreambooth::cli
