// `dreambooth train`: flags (and --config presets) -> TrainOptions -> train::train_dreambooth.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "command.h"
#include "operator_profile.h"
#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"
#include "dreambooth/train/dreambooth_trainer.h"
#include "dreambooth/lora/lora_file.h"
#include "dreambooth/lora/sites.h"
#include "dreambooth/train/options.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

// Flags bound to a TrainOptions; enum and negated flags go through strings/bools first.
struct TrainFlags {
  train::TrainOptions options;
  std::string config;
  std::string lr_scheduler = train::to_string(options.lr_scheduler);
  std::string mixed_precision = train::to_string(options.mixed_precision);
  std::string save_dtype = train::to_string(options.save_dtype);
  std::string save_format = train::to_string(options.save_format);
  std::string lora_targets = lora::lora_targets_name(options.lora_targets);
  std::string lora_format = lora::lora_format_name(options.lora_format);
  bool no_prior_preservation = false;
  bool json = false;
  // Which JSON key each flag sets: only flags given on the command line override a --config preset.
  std::vector<std::pair<CLI::Option*, std::string>> keys;
};

// A preset: a path, or a name under configs/ beside the binary (build/../configs) or in
// $DREAMBOOTH_CONFIG_DIR.
fs::path resolve_config(const std::string& spec) {
  if (fs::exists(spec)) return spec;
  std::vector<fs::path> folders;
  if (const char* env = std::getenv("DREAMBOOTH_CONFIG_DIR"); env && *env) folders.emplace_back(env);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    const fs::path bin = fs::path(std::string(exe, static_cast<size_t>(n))).parent_path();
    folders.push_back(bin.parent_path() / "configs");
    folders.push_back(bin.parent_path() / "share" / "dreambooth" / "configs");
  }
#ifdef DREAMBOOTH_SOURCE_CONFIG_DIR
  folders.emplace_back(DREAMBOOTH_SOURCE_CONFIG_DIR);
#endif
  for (const fs::path& folder : folders)
    for (const std::string& name : {spec, spec + ".json"})
      if (fs::exists(folder / name)) return folder / name;
  throw input_error(spec, "no such config file", "pass a JSON file, or a preset name: object, face, low-memory");
}

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path.string(), "cannot read the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_python_json(text.str(), path.string());
}

train::TrainOptions resolve_options(TrainFlags& f, const CommonOptions& common) {
  train::TrainOptions base;
  if (!f.config.empty()) {
    const fs::path path = resolve_config(f.config);
    base = train::options_from_json(read_json_file(path), path.string());
    spdlog::info("preset {}", path.string());
  }
  nlohmann::json given = train::options_to_json(f.options);
  given["lr_scheduler"] = f.lr_scheduler;
  given["mixed_precision"] = f.mixed_precision;
  given["save_dtype"] = f.save_dtype;
  given["save_format"] = f.save_format;
  given["prior_preservation"] = !f.no_prior_preservation;
  given["lora_targets"] = f.lora_targets;
  given["lora_format"] = f.lora_format;
  nlohmann::json overlay = nlohmann::json::object();
  for (const auto& [option, key] : f.keys)
    if (option->count() > 0) overlay[key] = given.at(key);
  train::TrainOptions options = train::options_from_json(overlay, "command line", base);
  options.quiet = common.quiet || f.json;
  return options;
}

int run_train(TrainFlags& flags, const CommonOptions& common) {
  const train::TrainOptions options = resolve_options(flags, common);
  OperatorProfile profile;  // DREAMBOOTH_PROFILE=trace.json
  const train::TrainResult result = train::train_dreambooth(options);
  spdlog::info("done: {} steps; prompt with '{}'", result.steps, result.instance_prompt);
  const bool lora = !result.lora_path.empty();
  if (lora)
    spdlog::info("sample with: dreambooth sample --model {} --lora {} --prompt \"{}\"", result.base_model.string(),
                 result.lora_path.string(), result.instance_prompt);
  if (flags.json) {
    nlohmann::json line = nlohmann::json::object();
    if (lora) {
      line["lora"] = result.lora_path.string();
      line["base_model"] = result.base_model.string();
    } else {
      line["model"] = result.model_path.string();
    }
    line["token"] = result.token;
    line["instance_prompt"] = result.instance_prompt;
    line["steps"] = result.steps;
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("%s\n", (lora ? result.lora_path : result.model_path).string().c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandRunner register_train_command(CLI::App& app, CommonOptions& common) {
  auto f = std::make_shared<TrainFlags>();
  train::TrainOptions& o = f->options;
  CLI::App* c = app.add_subcommand("train", "DreamBooth fine-tuning with prior preservation");
  c->footer(
      "Defaults are diffusers' train_dreambooth.py recipe. Presets: --config object|face|low-memory (configs/*.json); "
      "flags given on the command line win over the preset.");
  auto bind = [&](CLI::Option* option, const std::string& key) {
    f->keys.emplace_back(option, key);
    return option;
  };
  c->add_option("--config", f->config, "JSON preset (a file, or a name in configs/: object, face, low-memory)");
  bind(c->add_option("--model", o.model, "base model: a .safetensors file, a diffusers folder or a train output"), "model");
  bind(c->add_option("--tokenizer", o.tokenizer, "tokenizer (default: found beside the model)"), "tokenizer");
  bind(c->add_option("--subject", o.subject, "folder of subject photos (JPEG/PNG/BMP/TGA)"), "subject");
  bind(c->add_option("--token", o.token, "the identifier, e.g. sks; 'auto' picks a rare one")->capture_default_str(), "token");
  bind(c->add_option("--class", o.class_noun, "the subject's class noun, e.g. dog"), "class");
  bind(c->add_option("--output,-o", o.output, "run folder: model, checkpoints, metrics"), "output");
  bind(c->add_option("--instance-prompt", o.instance_prompt, "{token} and {class} are replaced")->capture_default_str(),
       "instance_prompt");
  bind(c->add_option("--class-prompt", o.class_prompt, "prompt of the class images")->capture_default_str(), "class_prompt");
  bind(c->add_option("--steps", o.steps, "optimizer steps")->capture_default_str(), "steps");
  bind(c->add_option("--lr", o.lr, "learning rate (default 5e-6; 1e-4 with --lora)"), "lr");
  bind(c->add_option("--lr-scheduler", f->lr_scheduler, "constant | constant_with_warmup | linear | cosine | "
                                                        "cosine_with_restarts | polynomial")
           ->check(CLI::IsMember({"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                                  "polynomial"}))
           ->capture_default_str(),
       "lr_scheduler");
  bind(c->add_option("--lr-warmup-steps", o.lr_warmup_steps, "warmup steps")->capture_default_str(), "lr_warmup_steps");
  bind(c->add_option("--lr-num-cycles", o.lr_num_cycles, "cosine_with_restarts cycles")->capture_default_str(),
       "lr_num_cycles");
  bind(c->add_option("--lr-power", o.lr_power, "polynomial decay power")->capture_default_str(), "lr_power");
  bind(c->add_option("--batch-size", o.batch_size, "subject images per step (plus as many class images)")
           ->capture_default_str(),
       "batch_size");
  bind(c->add_option("--gradient-accumulation", o.gradient_accumulation, "micro-batches per optimizer step")
           ->capture_default_str(),
       "gradient_accumulation");
  bind(c->add_option("--adam-beta1", o.adam_beta1, "AdamW beta1")->capture_default_str(), "adam_beta1");
  bind(c->add_option("--adam-beta2", o.adam_beta2, "AdamW beta2")->capture_default_str(), "adam_beta2");
  bind(c->add_option("--adam-weight-decay", o.adam_weight_decay, "AdamW weight decay")->capture_default_str(),
       "adam_weight_decay");
  bind(c->add_option("--adam-epsilon", o.adam_epsilon, "AdamW epsilon")->capture_default_str(), "adam_epsilon");
  bind(c->add_option("--max-grad-norm", o.max_grad_norm, "gradient clipping norm (0: off)")->capture_default_str(),
       "max_grad_norm");
  bind(c->add_option("--resolution", o.resolution, "training resolution (multiple of 8)")->capture_default_str(),
       "resolution");
  bind(c->add_flag("--center-crop", o.center_crop, "center crops (default: random crops)"), "center_crop");
  bind(c->add_flag("--flip", o.flip, "random horizontal flips"), "flip");
  bind(c->add_option("--seed", o.seed, "seed of everything random (default: drawn and recorded)"), "seed");
  bind(c->add_option("--device", o.device, "auto | cpu | cuda | cuda:N")->capture_default_str(), "device");
  bind(c->add_flag("--no-prior-preservation", f->no_prior_preservation, "train on the subject images alone"),
       "prior_preservation");
  bind(c->add_option("--prior-loss-weight", o.prior_loss_weight, "weight of the class-image loss")->capture_default_str(),
       "prior_loss_weight");
  bind(c->add_option("--num-class-images", o.num_class_images, "class images wanted (missing ones are generated)")
           ->capture_default_str(),
       "num_class_images");
  bind(c->add_option("--class-dir", o.class_dir, "class images (default: OUTPUT/class_images)"), "class_dir");
  bind(c->add_option("--class-sampler", o.class_sampler, "sampler generating class images")->capture_default_str(),
       "class_sampler");
  bind(c->add_option("--class-steps", o.class_steps, "sampler steps per class image")->capture_default_str(),
       "class_steps");
  bind(c->add_option("--class-cfg", o.class_cfg, "guidance scale of class images")->capture_default_str(), "class_cfg");
  bind(c->add_option("--class-batch-size", o.class_batch_size, "class images per sampler batch")->capture_default_str(),
       "class_batch_size");
  bind(c->add_flag("--skip-bad-images", o.skip_bad_images, "skip unreadable images with a warning"), "skip_bad_images");
  bind(c->add_flag("--train-text-encoder", o.train_text_encoder, "train the text encoder too"), "train_text_encoder");
  bind(c->add_option("--mixed-precision", f->mixed_precision, "no | fp16 | bf16 (CUDA)")
           ->check(CLI::IsMember({"no", "fp16", "bf16"}))
           ->capture_default_str(),
       "mixed_precision");
  bind(c->add_flag("--gradient-checkpointing", o.gradient_checkpointing, "recompute activations: less memory, slower"),
       "gradient_checkpointing");
  bind(c->add_flag("--cache-latents", o.cache_latents, "encode the images once and free the VAE"), "cache_latents");
  bind(c->add_option("--snr-gamma", o.snr_gamma, "min-SNR loss weighting (e.g. 5.0)"), "snr_gamma");
  bind(c->add_option("--offset-noise", o.offset_noise, "offset noise strength (e.g. 0.1)")->capture_default_str(),
       "offset_noise");
  bind(c->add_flag("--use-8bit-adam", o.use_8bit_adam, "AdamW with 8-bit moments (blockwise, as bitsandbytes): ~1/4 of the optimizer memory"), "use_8bit_adam");
  bind(c->add_flag("--lora", o.lora, "train LoRA adapters (base frozen); writes OUTPUT/lora.safetensors"), "lora");
  bind(c->add_option("--lora-rank", o.lora_rank, "LoRA rank")->capture_default_str(), "lora_rank");
  bind(c->add_option("--lora-alpha", o.lora_alpha, "LoRA alpha; scale = alpha / rank (default: the rank)"),
       "lora_alpha");
  bind(c->add_option("--lora-dropout", o.lora_dropout, "dropout on the LoRA rank activations")->capture_default_str(),
       "lora_dropout");
  bind(c->add_option("--lora-targets", f->lora_targets, "attn | attn+ff | all-linear")
           ->check(CLI::IsMember({"attn", "attn+ff", "all-linear"}))
           ->capture_default_str(),
       "lora_targets");
  bind(c->add_option("--lora-format", f->lora_format, "kohya (A1111, ComfyUI, sd.cpp) | diffusers (PEFT keys)")
           ->check(CLI::IsMember({"kohya", "diffusers"}))
           ->capture_default_str(),
       "lora_format");
  bind(c->add_option("--save-dtype", f->save_dtype, "fp16 | fp32")->check(CLI::IsMember({"fp16", "fp32"}))
           ->capture_default_str(),
       "save_dtype");
  bind(c->add_option("--save-format", f->save_format, "single | diffusers | both")
           ->check(CLI::IsMember({"single", "diffusers", "both"}))
           ->capture_default_str(),
       "save_format");
  bind(c->add_option("--checkpoint-every", o.checkpoint_every, "checkpoint every N steps (0: only on Ctrl-C)")
           ->capture_default_str(),
       "checkpoint_every");
  bind(c->add_option("--keep-checkpoints", o.keep_checkpoints, "checkpoints kept (0: all)")->capture_default_str(),
       "keep_checkpoints");
  bind(c->add_option("--resume", o.resume, "latest | a checkpoint folder"), "resume");
  bind(c->add_flag("--overwrite", o.overwrite, "start over in an output folder holding an earlier run"), "overwrite");
  bind(c->add_option("--validation-prompt", o.validation_prompt, "sampled every --validation-every steps"),
       "validation_prompt");
  bind(c->add_option("--validation-every", o.validation_every, "steps between validations")->capture_default_str(),
       "validation_every");
  bind(c->add_option("--validation-images", o.validation_images, "images per validation")->capture_default_str(),
       "validation_images");
  bind(c->add_option("--validation-steps", o.validation_steps, "sampler steps of validation images")
           ->capture_default_str(),
       "validation_steps");
  c->add_flag("--json", f->json, "print the result as one JSON object (and no progress bar)");
  add_common_options(*c, common);
  return [f, &common] { return run_train(*f, common); };
}

}  // namespace dreambooth::cli
