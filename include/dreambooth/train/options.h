// Everything `dreambooth train` can be told, as one plain struct. Defaults are the reference recipe
// (diffusers examples/dreambooth/train_dreambooth.py with --with_prior_preservation).
//
// The JSON form (presets in configs/*.json, the resolved `OUTPUT/options.json`) uses the command-line
// flag names with '-' -> '_' ("lr_warmup_steps"); `--no-prior-preservation` is "prior_preservation":
// false. Reading is strict: unknown keys warn, a value of the wrong type or an unknown enum name is an
// error naming the file and key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dreambooth/lora/lora_file.h"
#include "dreambooth/lora/network.h"
#include "dreambooth/lora/sites.h"

namespace dreambooth::train {

// diffusers.optimization.get_scheduler names. `constant` ignores warmup there (and here);
// `constant_with_warmup` ramps up first.
enum class LrSchedulerKind { Constant, ConstantWithWarmup, Linear, Cosine, CosineWithRestarts, Polynomial };
enum class MixedPrecision { No, Fp16, Bf16 };
enum class SaveFormat { Single, Diffusers, Both };
enum class SaveDtype { Fp16, Fp32 };

const char* to_string(LrSchedulerKind kind);
const char* to_string(MixedPrecision mode);
const char* to_string(SaveFormat format);
const char* to_string(SaveDtype dtype);
// Usage errors naming `source` (a flag or "file: key") and listing the valid names.
LrSchedulerKind parse_lr_scheduler(const std::string& name, const std::string& source = "--lr-scheduler");
MixedPrecision parse_mixed_precision(const std::string& name, const std::string& source = "--mixed-precision");
SaveFormat parse_save_format(const std::string& name, const std::string& source = "--save-format");
SaveDtype parse_save_dtype(const std::string& name, const std::string& source = "--save-dtype");

// The token written when the user asks for one to be chosen.
inline constexpr const char* kAutoToken = "auto";

// Learning rates when --lr is given neither on the command line nor in a preset.
inline constexpr double kDefaultLr = 5e-6;      // full fine-tuning (diffusers' DreamBooth example)
inline constexpr double kDefaultLoraLr = 1e-4;  // --lora (diffusers' LoRA DreamBooth example)

struct TrainOptions {
  // --- what to train on
  std::string model;            // --model: a .safetensors file, a diffusers folder or a `train` output folder
  std::string tokenizer;        // --tokenizer (optional; else found beside the model)
  std::string subject;          // --subject: folder of instance photos
  std::string token = kAutoToken;  // --token: the identifier, or "auto"
  std::string class_noun;       // --class: e.g. "dog"
  std::string output;           // --output: the run folder
  std::string instance_prompt = "a photo of {token} {class}";
  std::string class_prompt = "a photo of {class}";

  // --- the recipe
  int steps = 800;  // optimizer steps
  std::optional<double> lr;  // unset: kDefaultLr, or kDefaultLoraLr with --lora (see learning_rate())
  LrSchedulerKind lr_scheduler = LrSchedulerKind::Constant;
  int lr_warmup_steps = 0;
  int lr_num_cycles = 1;    // cosine_with_restarts
  double lr_power = 1.0;    // polynomial
  int batch_size = 1;       // instance examples per micro-batch (as many class examples join them)
  int gradient_accumulation = 1;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_weight_decay = 1e-2;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  int resolution = 512;
  bool center_crop = false;  // else a random crop
  bool flip = false;         // random horizontal flips
  std::optional<uint64_t> seed;  // resolved (drawn when absent) before anything random happens
  std::string device = "auto";

  // --- prior preservation
  bool prior_preservation = true;
  double prior_loss_weight = 1.0;
  int num_class_images = 200;
  std::string class_dir;  // default OUTPUT/class_images
  std::string class_sampler = "dpmpp_2m";
  int class_steps = 25;
  double class_cfg = 7.5;
  int class_batch_size = 4;
  bool skip_bad_images = false;

  // --- options users expect
  bool train_text_encoder = false;
  MixedPrecision mixed_precision = MixedPrecision::No;
  bool gradient_checkpointing = false;
  bool cache_latents = false;
  std::optional<double> snr_gamma;  // min-SNR weighting (e.g. 5.0)
  double offset_noise = 0.0;        // e.g. 0.1
  bool use_8bit_adam = false;       // AdamW with 8-bit blockwise-quantized moments (adamw8bit.h)

  // --- LoRA (--lora): low-rank adapters train, the base weights stay frozen; OUTPUT/lora.safetensors
  bool lora = false;
  int lora_rank = 4;
  std::optional<double> lora_alpha;  // unset: the rank (scale 1)
  double lora_dropout = 0.0;
  lora::LoraTargets lora_targets = lora::LoraTargets::Attention;
  lora::LoraFormat lora_format = lora::LoraFormat::Kohya;

  // --- output
  SaveDtype save_dtype = SaveDtype::Fp16;
  SaveFormat save_format = SaveFormat::Single;
  int checkpoint_every = 500;  // 0: only on interrupt
  int keep_checkpoints = 2;    // 0: keep all
  std::string resume;          // "", "latest" or a checkpoint folder
  bool overwrite = false;      // start over in an output folder that holds an earlier run

  // --- feedback
  std::string validation_prompt;
  int validation_every = 100;
  int validation_images = 2;
  int validation_steps = 25;  // sampler steps of validation images
  bool quiet = false;         // no progress bar (not saved in options.json)

  double learning_rate() const { return lr ? *lr : (lora ? kDefaultLoraLr : kDefaultLr); }
};

// The adapters --lora trains (rank, alpha, dropout, targets; text encoder with --train-text-encoder; the
// initial values drawn from the seed, which must be resolved).
lora::LoraConfig lora_config(const TrainOptions& options);

// Reads the keys present in `json` over `base` (a preset over the defaults, or flags over a preset).
TrainOptions options_from_json(const nlohmann::json& json, const std::string& source, TrainOptions base = {});
nlohmann::json options_to_json(const TrainOptions& options);

// Usage errors for values and combinations that cannot work (each names the flag and a fix).
void validate_options(const TrainOptions& options);

// "{token}" and "{class}" replaced.
std::string expand_prompt(const std::string& pattern, const std::string& token, const std::string& class_noun);

// The JSON keys whose value must not change when a run is resumed (they shape the saved state or the
// data order): batch_size, gradient_accumulation, train_text_encoder, prior_preservation, seed, ...
const std::vector<std::string>& resume_invariant_keys();

}  // namespace dreambooth::train
