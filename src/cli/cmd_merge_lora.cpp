// `dreambooth merge-lora --model BASE --lora FILE[:SCALE]... --out MERGED.safetensors`: bakes LoRA files into
// a base model (W += scale * alpha/rank * up @ down, in float32) and writes one single-file checkpoint, with
// the base's tokenizer beside it when it has its own. The merged file samples as `sample --lora` does.
#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "command.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/runtime.h"
#include "dreambooth/lora/apply.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/text/tokenizer_search.h"
#include "tokenizer_files.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct MergeLoraOptions {
  std::string model;
  std::vector<std::string> loras;
  std::string out;
  std::string save_dtype = "auto";
  std::string device = "cpu";
  std::string prediction_type;
  bool json = false;
  bool overwrite = false;
};

c10::ScalarType merge_save_dtype(const std::string& name, c10::ScalarType stored) {
  if (name == "auto") return stored;
  if (name == "fp32") return c10::kFloat;
  if (name == "fp16") return c10::kHalf;
  return c10::kBFloat16;  // "bf16" (CLI11 checked the set)
}

int run_merge_lora(const MergeLoraOptions& o) {
  const fs::path out = o.out;
  if (out.extension() != ".safetensors")
    throw usage_error("--out " + o.out + ": the merged model is a single file", "name it *.safetensors");
  if (!o.overwrite && fs::exists(out)) throw output_error(o.out, "already exists", "use --overwrite or another --out");
  const std::vector<lora::LoadedLora> loras = lora::load_lora_specs(o.loras);

  pipelines::ModelRequest request;
  request.path = o.model;
  request.device = resolve_device(o.device);
  request.dtype = c10::kFloat;  // merge in float32, convert while writing
  request.need_tokenizer = false;
  if (!o.prediction_type.empty())
    request.prediction_type = checkpoint::parse_prediction_type(o.prediction_type, "--prediction-type");

  const auto started = std::chrono::steady_clock::now();
  pipelines::LoadedModel loaded = pipelines::load_model(request);
  const std::vector<lora::AppliedLora> applied = lora::apply_loaded_loras(loaded.sd, loras);

  const std::optional<fs::path> tokenizer = text::find_model_own_tokenizer(
      loaded.resolved_path, loaded.sd.description.layout == checkpoint::Layout::Diffusers);
  std::optional<AtomicPath> tokenizer_dir;
  if (tokenizer) {
    tokenizer_dir.emplace(single_file_tokenizer_dir(out));
    copy_tokenizer_folder(*tokenizer, tokenizer_dir->temp_path());
  }
  checkpoint::WriteOptions write;
  write.dtype = merge_save_dtype(o.save_dtype, loaded.sd.description.stored_dtype.unet);
  write.overwrite = o.overwrite;
  checkpoint::save_single_file(loaded.sd, out, write);
  if (tokenizer_dir) tokenizer_dir->commit();
  spdlog::info("merged {} LoRA file(s) into {} in {:.1f} s", o.loras.size(), loaded.resolved_path.string(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

  if (o.json) {
    nlohmann::json result = {{"path", out.string()}, {"model", loaded.resolved_path.string()}};
    result["loras"] = nlohmann::json::array();
    for (const lora::AppliedLora& a : applied)
      result["loras"].push_back({{"path", a.spec.path.string()},
                                 {"scale", a.spec.multiplier},
                                 {"format", lora::lora_format_name(a.format)},
                                 {"modules", a.report.applied},
                                 {"unplaced_keys", a.report.unplaced}});
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("%s\n", out.string().c_str());
  }
  return 0;
}

}  // namespace

CommandRunner register_merge_lora_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MergeLoraOptions>();
  CLI::App* c = app.add_subcommand("merge-lora", "merge LoRA files into a base model and save it as one .safetensors");
  c->add_option("--model", o->model, "the base: a .safetensors file, a diffusers folder or a `train` output folder")
      ->required();
  c->add_option("--lora", o->loras,
                "LoRA file (kohya or diffusers/PEFT keys), optionally with a scale: FILE[:SCALE] (repeatable; "
                "applied in order)")
      ->required();
  c->add_option("--out,-o", o->out, "the merged single file (*.safetensors)")->required();
  c->add_option("--save-dtype", o->save_dtype, "auto (the base's) | fp32 | fp16 | bf16")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16"}))
      ->capture_default_str();
  c->add_option("--device", o->device, "where to merge: cpu | cuda | cuda:N | auto")->capture_default_str();
  c->add_option("--prediction-type", o->prediction_type, "override the base's: epsilon | v_prediction")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  c->add_flag("--json", o->json, "one JSON object on stdout: the output, and per LoRA its modules and unplaced keys");
  c->add_flag("--overwrite", o->overwrite, "replace an existing --out file");
  add_common_options(*c, common);
  return [o] { return run_merge_lora(*o); };
}

}  // namespace dreambooth::cli
