// `dreambooth init`: a random-weight checkpoint in the exact real layout (demos, tests, benchmarks),
// with a SentencePiece tokenizer the project trains on the spot, so nothing is downloaded (or a copy of the
// tokenizer given with --tokenizer, e.g. the real CLIP vocabulary).
#include <chrono>

#include <spdlog/spdlog.h>

#include "command.h"
#include "dreambooth/checkpoint/presets.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/text/caption_corpus.h"
#include "tokenizer_files.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct InitOptions {
  std::string preset;
  std::string out;
  std::string layout = "single";
  std::string dtype = "fp32";
  uint64_t seed = 0;
  std::string tokenizer;  // copied instead of training one, when given
  bool overwrite = false;
};

checkpoint::Preset find_preset(const std::string& name) {
  for (const auto& p : checkpoint::kPresets)
    if (name == p.name) return p.preset;
  std::string names;
  for (const auto& p : checkpoint::kPresets) names += std::string(names.empty() ? "" : ", ") + p.name;
  throw usage_error("--preset " + name + " is not a preset", "use one of: " + names);
}

int run_init(const InitOptions& o) {
  const checkpoint::Preset preset = find_preset(o.preset);
  const bool single = o.layout == "single";
  checkpoint::WriteOptions write;
  write.dtype = o.dtype == "fp16" ? c10::kHalf : c10::kFloat;
  write.overwrite = o.overwrite;
  const fs::path out = o.out;
  const fs::path tokenizer_dir = single ? single_file_tokenizer_dir(out) : out / "tokenizer";
  if (!o.overwrite && fs::exists(out))
    throw output_error(out.string(), "already exists", "use --overwrite or another --out");

  if (!o.tokenizer.empty() && !fs::exists(o.tokenizer))
    throw input_error(o.tokenizer, "no such tokenizer", "give a folder with vocab.json + merges.txt, or a .model file");
  auto write_tokenizer = [&o](const fs::path& dir) {
    if (o.tokenizer.empty()) text::write_tiny_tokenizer(dir);
    else copy_tokenizer_folder(o.tokenizer, dir);
  };
  auto started = std::chrono::steady_clock::now();
  spdlog::info("building the {} preset with random weights (seed {})", o.preset, o.seed);
  checkpoint::StableDiffusion model = checkpoint::create_preset_model(preset, o.seed);

  if (single) {
    // Trained into a temporary folder first, so a failure leaves no half-written tokenizer behind.
    AtomicPath tokenizer(tokenizer_dir);
    write_tokenizer(tokenizer.temp_path());
    checkpoint::save_single_file(model, out, write);
    tokenizer.commit();
  } else {
    write.add_files = [&](const fs::path& folder) { write_tokenizer(folder / "tokenizer"); };
    checkpoint::save_diffusers(model, out, write);
  }
  spdlog::info("wrote {} ({} layout, {}) in {:.1f} s; tokenizer in {}", out.string(), o.layout, o.dtype,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               tokenizer_dir.string());
  std::printf("%s\n", out.string().c_str());
  return 0;
}

}  // namespace

CommandRunner register_init_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<InitOptions>();
  std::string presets;
  for (const auto& p : checkpoint::kPresets) presets += std::string("\n  ") + p.name + ": " + p.help;
  CLI::App* c = app.add_subcommand("init", "write a random-weight Stable Diffusion checkpoint (demos, tests, benchmarks)");
  c->add_option("--preset", o->preset, "model shape:" + presets)->required();
  c->add_option("--out,-o", o->out, "output .safetensors file (single) or folder (diffusers)")->required();
  c->add_option("--layout", o->layout, "single | diffusers")->check(CLI::IsMember({"single", "diffusers"}))
      ->capture_default_str();
  c->add_option("--dtype", o->dtype, "fp32 | fp16")->check(CLI::IsMember({"fp32", "fp16"}))->capture_default_str();
  c->add_option("--seed", o->seed, "seed of the random weights")->capture_default_str();
  c->add_option("--tokenizer", o->tokenizer,
                "copy this tokenizer (folder with vocab.json + merges.txt, or a .model file) instead of training a small one");
  c->add_flag("--overwrite", o->overwrite, "replace an existing output");
  add_common_options(*c, common);
  return [o] { return run_init(*o); };
}

}  // namespace dreambooth::cli
