// `dreambooth convert IN OUT --layout single|diffusers`: between the original single-file layout and
// diffusers folders, both ways; LDM -> diffusers -> LDM is exact. The tokenizer travels along.
#include <spdlog/spdlog.h>

#include "command.h"
#include "dreambooth/checkpoint/convert.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/text/tokenizer_search.h"
#include "tokenizer_files.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct ConvertCliOptions {
  std::string input;
  std::string output;
  std::string layout;
  std::string dtype;
  std::string prediction_type;
  bool overwrite = false;
};

int run_convert(const ConvertCliOptions& o) {
  checkpoint::ConvertOptions options;
  options.input = pipelines::resolve_model_path(o.input);
  options.output = o.output;
  options.layout = o.layout == "single" ? checkpoint::Layout::SingleFile : checkpoint::Layout::Diffusers;
  if (o.dtype == "fp16") options.dtype = c10::kHalf;
  if (o.dtype == "fp32") options.dtype = c10::kFloat;
  if (o.dtype == "bf16") options.dtype = c10::kBFloat16;
  if (!o.prediction_type.empty())
    options.prediction_type = checkpoint::parse_prediction_type(o.prediction_type, "--prediction-type");
  options.overwrite = o.overwrite;

  const checkpoint::ModelDescription source = checkpoint::describe_checkpoint(options.input).description;
  const std::optional<fs::path> tokenizer =
      text::find_model_own_tokenizer(options.input, source.layout == checkpoint::Layout::Diffusers);
  std::optional<AtomicPath> single_file_tokenizer;
  if (tokenizer && options.layout == checkpoint::Layout::Diffusers) {
    options.add_files = [&](const fs::path& folder) { copy_tokenizer_folder(*tokenizer, folder / "tokenizer"); };
  } else if (tokenizer) {
    single_file_tokenizer.emplace(single_file_tokenizer_dir(options.output));
    copy_tokenizer_folder(*tokenizer, single_file_tokenizer->temp_path());
  }
  checkpoint::ModelDescription written = checkpoint::convert_checkpoint(options);
  if (single_file_tokenizer) single_file_tokenizer->commit();
  spdlog::info("wrote {} ({} {}{})", options.output.string(), checkpoint::family_name(written.family),
               checkpoint::layout_name(written.layout), tokenizer ? ", with its tokenizer" : "");
  std::printf("%s\n", options.output.string().c_str());
  return 0;
}

}  // namespace

CommandRunner register_convert_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<ConvertCliOptions>();
  CLI::App* c = app.add_subcommand("convert", "convert between a single-file checkpoint and a diffusers folder");
  c->add_option("input", o->input, "a .safetensors file, a diffusers folder or a `train` output folder")->required();
  c->add_option("output", o->output, "the .safetensors file or folder to write")->required();
  c->add_option("--layout", o->layout, "single | diffusers")->check(CLI::IsMember({"single", "diffusers"}))->required();
  c->add_option("--dtype", o->dtype, "fp16 | fp32 | bf16 (default: keep the stored dtypes)")
      ->check(CLI::IsMember({"fp16", "fp32", "bf16"}));
  c->add_option("--prediction-type", o->prediction_type, "record this prediction type: epsilon | v_prediction")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  c->add_flag("--overwrite", o->overwrite, "replace an existing output");
  add_common_options(*c, common);
  return [o] { return run_convert(*o); };
}

}  // namespace dreambooth::cli
