#include "dreambooth/train/options.h"

#include <array>
#include <utility>

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"

namespace dreambooth::train {
namespace {

template <typename Enum, size_t N>
using NameTable = std::array<std::pair<Enum, const char*>, N>;

constexpr NameTable<LrSchedulerKind, 6> kLrSchedulerNames = {{
    {LrSchedulerKind::Constant, "constant"},
    {LrSchedulerKind::ConstantWithWarmup, "constant_with_warmup"},
    {LrSchedulerKind::Linear, "linear"},
    {LrSchedulerKind::Cosine, "cosine"},
    {LrSchedulerKind::CosineWithRestarts, "cosine_with_restarts"},
    {LrSchedulerKind::Polynomial, "polynomial"},
}};
constexpr NameTable<MixedPrecision, 3> kMixedPrecisionNames = {{
    {MixedPrecision::No, "no"}, {MixedPrecision::Fp16, "fp16"}, {MixedPrecision::Bf16, "bf16"}}};
constexpr NameTable<SaveFormat, 3> kSaveFormatNames = {{
    {SaveFormat::Single, "single"}, {SaveFormat::Diffusers, "diffusers"}, {SaveFormat::Both, "both"}}};
constexpr NameTable<SaveDtype, 2> kSaveDtypeNames = {{{SaveDtype::Fp16, "fp16"}, {SaveDtype::Fp32, "fp32"}}};

template <typename Enum, size_t N>
const char* name_of(const NameTable<Enum, N>& table, Enum value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

template <typename Enum, size_t N>
Enum parse_name(const NameTable<Enum, N>& table, const std::string& name, const std::string& source) {
  std::string valid;
  for (const auto& [v, n] : table) {
    if (name == n) return v;
    valid += (valid.empty() ? "" : ", ") + std::string(n);
  }
  throw usage_error(source + ": '" + name + "' is not one of the accepted values", "use " + valid);
}

// Reads an enum stored as its name.
template <typename Enum, size_t N>
void read_enum(ConfigReader& reader, const nlohmann::json& json, const std::string& source, const std::string& key,
               const NameTable<Enum, N>& table, Enum& value) {
  std::string name = name_of(table, value);
  reader.read(key, name);
  if (json.contains(key) && !json.at(key).is_null()) value = parse_name(table, name, source + ": " + key);
}

}  // namespace

const char* to_string(LrSchedulerKind kind) { return name_of(kLrSchedulerNames, kind); }
const char* to_string(MixedPrecision mode) { return name_of(kMixedPrecisionNames, mode); }
const char* to_string(SaveFormat format) { return name_of(kSaveFormatNames, format); }
const char* to_string(SaveDtype dtype) { return name_of(kSaveDtypeNames, dtype); }

LrSchedulerKind parse_lr_scheduler(const std::string& name, const std::string& source) {
  return parse_name(kLrSchedulerNames, name, source);
}
MixedPrecision parse_mixed_precision(const std::string& name, const std::string& source) {
  return parse_name(kMixedPrecisionNames, name, source);
}
SaveFormat parse_save_format(const std::string& name, const std::string& source) {
  return parse_name(kSaveFormatNames, name, source);
}
SaveDtype parse_save_dtype(const std::string& name, const std::string& source) {
  return parse_name(kSaveDtypeNames, name, source);
}

TrainOptions options_from_json(const nlohmann::json& json, const std::string& source, TrainOptions o) {
  if (!json.is_object()) throw input_error(source, "options must be a JSON object", "e.g. {\"steps\": 400}");
  ConfigReader r(json, source);
  r.read("model", o.model);
  r.read("tokenizer", o.tokenizer);
  r.read("subject", o.subject);
  r.read("token", o.token);
  r.read("class", o.class_noun);
  r.read("output", o.output);
  r.read("instance_prompt", o.instance_prompt);
  r.read("class_prompt", o.class_prompt);

  r.read("steps", o.steps);
  r.read("lr", o.lr);
  read_enum(r, json, source, "lr_scheduler", kLrSchedulerNames, o.lr_scheduler);
  r.read("lr_warmup_steps", o.lr_warmup_steps);
  r.read("lr_num_cycles", o.lr_num_cycles);
  r.read("lr_power", o.lr_power);
  r.read("batch_size", o.batch_size);
  r.read("gradient_accumulation", o.gradient_accumulation);
  r.read("adam_beta1", o.adam_beta1);
  r.read("adam_beta2", o.adam_beta2);
  r.read("adam_weight_decay", o.adam_weight_decay);
  r.read("adam_epsilon", o.adam_epsilon);
  r.read("max_grad_norm", o.max_grad_norm);
  r.read("resolution", o.resolution);
  r.read("center_crop", o.center_crop);
  r.read("flip", o.flip);
  r.read("seed", o.seed);
  r.read("device", o.device);

  r.read("prior_preservation", o.prior_preservation);
  r.read("prior_loss_weight", o.prior_loss_weight);
  r.read("num_class_images", o.num_class_images);
  r.read("class_dir", o.class_dir);
  r.read("class_sampler", o.class_sampler);
  r.read("class_steps", o.class_steps);
  r.read("class_cfg", o.class_cfg);
  r.read("class_batch_size", o.class_batch_size);
  r.read("skip_bad_images", o.skip_bad_images);

  r.read("train_text_encoder", o.train_text_encoder);
  read_enum(r, json, source, "mixed_precision", kMixedPrecisionNames, o.mixed_precision);
  r.read("gradient_checkpointing", o.gradient_checkpointing);
  r.read("cache_latents", o.cache_latents);
  r.read("snr_gamma", o.snr_gamma);
  r.read("offset_noise", o.offset_noise);
  r.read("use_8bit_adam", o.use_8bit_adam);

  r.read("lora", o.lora);
  r.read("lora_rank", o.lora_rank);
  r.read("lora_alpha", o.lora_alpha);
  r.read("lora_dropout", o.lora_dropout);
  std::string lora_targets = lora::lora_targets_name(o.lora_targets);
  r.read("lora_targets", lora_targets);
  if (json.contains("lora_targets") && !json.at("lora_targets").is_null())
    o.lora_targets = lora::parse_lora_targets(lora_targets, source + ": lora_targets");
  std::string lora_format = lora::lora_format_name(o.lora_format);
  r.read("lora_format", lora_format);
  if (json.contains("lora_format") && !json.at("lora_format").is_null())
    o.lora_format = lora::parse_lora_format(lora_format, source + ": lora_format");

  read_enum(r, json, source, "save_dtype", kSaveDtypeNames, o.save_dtype);
  read_enum(r, json, source, "save_format", kSaveFormatNames, o.save_format);
  r.read("checkpoint_every", o.checkpoint_every);
  r.read("keep_checkpoints", o.keep_checkpoints);
  r.read("resume", o.resume);
  r.read("overwrite", o.overwrite);

  r.read("validation_prompt", o.validation_prompt);
  r.read("validation_every", o.validation_every);
  r.read("validation_images", o.validation_images);
  r.read("validation_steps", o.validation_steps);
  r.ignore("_comment");  // presets may explain themselves
  r.warn_unknown();
  return o;
}

nlohmann::json options_to_json(const TrainOptions& o) {
  nlohmann::json j;
  j["model"] = o.model;
  j["tokenizer"] = o.tokenizer;
  j["subject"] = o.subject;
  j["token"] = o.token;
  j["class"] = o.class_noun;
  j["output"] = o.output;
  j["instance_prompt"] = o.instance_prompt;
  j["class_prompt"] = o.class_prompt;
  j["steps"] = o.steps;
  j["lr"] = o.learning_rate();
  j["lr_scheduler"] = to_string(o.lr_scheduler);
  j["lr_warmup_steps"] = o.lr_warmup_steps;
  j["lr_num_cycles"] = o.lr_num_cycles;
  j["lr_power"] = o.lr_power;
  j["batch_size"] = o.batch_size;
  j["gradient_accumulation"] = o.gradient_accumulation;
  j["adam_beta1"] = o.adam_beta1;
  j["adam_beta2"] = o.adam_beta2;
  j["adam_weight_decay"] = o.adam_weight_decay;
  j["adam_epsilon"] = o.adam_epsilon;
  j["max_grad_norm"] = o.max_grad_norm;
  j["resolution"] = o.resolution;
  j["center_crop"] = o.center_crop;
  j["flip"] = o.flip;
  j["seed"] = o.seed ? nlohmann::json(*o.seed) : nlohmann::json(nullptr);
  j["device"] = o.device;
  j["prior_preservation"] = o.prior_preservation;
  j["prior_loss_weight"] = o.prior_loss_weight;
  j["num_class_images"] = o.num_class_images;
  j["class_dir"] = o.class_dir;
  j["class_sampler"] = o.class_sampler;
  j["class_steps"] = o.class_steps;
  j["class_cfg"] = o.class_cfg;
  j["class_batch_size"] = o.class_batch_size;
  j["skip_bad_images"] = o.skip_bad_images;
  j["train_text_encoder"] = o.train_text_encoder;
  j["mixed_precision"] = to_string(o.mixed_precision);
  j["gradient_checkpointing"] = o.gradient_checkpointing;
  j["cache_latents"] = o.cache_latents;
  j["snr_gamma"] = o.snr_gamma ? nlohmann::json(*o.snr_gamma) : nlohmann::json(nullptr);
  j["offset_noise"] = o.offset_noise;
  j["use_8bit_adam"] = o.use_8bit_adam;
  j["lora"] = o.lora;
  j["lora_rank"] = o.lora_rank;
  j["lora_alpha"] = o.lora_alpha ? nlohmann::json(*o.lora_alpha) : nlohmann::json(nullptr);
  j["lora_dropout"] = o.lora_dropout;
  j["lora_targets"] = lora::lora_targets_name(o.lora_targets);
  j["lora_format"] = lora::lora_format_name(o.lora_format);
  j["save_dtype"] = to_string(o.save_dtype);
  j["save_format"] = to_string(o.save_format);
  j["checkpoint_every"] = o.checkpoint_every;
  j["keep_checkpoints"] = o.keep_checkpoints;
  j["resume"] = o.resume;
  j["overwrite"] = o.overwrite;
  j["validation_prompt"] = o.validation_prompt;
  j["validation_every"] = o.validation_every;
  j["validation_images"] = o.validation_images;
  j["validation_steps"] = o.validation_steps;
  return j;
}

namespace {

void require(bool ok, const std::string& what, const std::string& hint = "") {
  if (!ok) throw usage_error(what, hint);
}

}  // namespace

void validate_options(const TrainOptions& o) {
  require(!o.model.empty(), "--model is required", "a .safetensors file or a diffusers folder");
  require(!o.subject.empty(), "--subject is required", "a folder with a few photos of the subject");
  require(!o.output.empty(), "--output is required", "the folder the run writes into");
  require(!o.class_noun.empty(), "--class is required", "the subject's class noun, e.g. dog");
  require(!o.token.empty(), "--token must not be empty", "give an identifier such as sks, or 'auto'");
  require(o.token.find_first_of(" \t\n") == std::string::npos, "--token '" + o.token + "' contains whitespace",
          "the identifier is one word");
  require(o.steps >= 1, "--steps must be >= 1");
  require(o.learning_rate() > 0, "--lr must be > 0");
  require(o.lr_warmup_steps >= 0, "--lr-warmup-steps must be >= 0");
  require(o.lr_num_cycles >= 1, "--lr-num-cycles must be >= 1");
  require(o.lr_power > 0, "--lr-power must be > 0");
  require(o.batch_size >= 1, "--batch-size must be >= 1");
  require(o.gradient_accumulation >= 1, "--gradient-accumulation must be >= 1");
  require(o.adam_beta1 >= 0 && o.adam_beta1 < 1 && o.adam_beta2 >= 0 && o.adam_beta2 < 1,
          "Adam betas must lie in [0, 1)");
  require(o.adam_weight_decay >= 0 && o.adam_epsilon > 0, "Adam weight decay must be >= 0 and epsilon > 0");
  require(o.resolution >= 8 && o.resolution % 8 == 0,
          "--resolution " + std::to_string(o.resolution) + " must be a positive multiple of 8", "e.g. 512");
  require(o.prior_loss_weight >= 0, "--prior-loss-weight must be >= 0");
  require(!o.prior_preservation || o.num_class_images >= 1, "--num-class-images must be >= 1",
          "or turn prior preservation off with --no-prior-preservation");
  require(o.class_steps >= 1 && o.class_batch_size >= 1, "--class-steps and --class-batch-size must be >= 1");
  require(!o.snr_gamma || *o.snr_gamma > 0, "--snr-gamma must be > 0", "5.0 is the usual value");
  require(o.offset_noise >= 0, "--offset-noise must be >= 0", "e.g. 0.1");
  require(o.checkpoint_every >= 0, "--checkpoint-every must be >= 0", "0 saves only when interrupted");
  require(o.keep_checkpoints >= 0, "--keep-checkpoints must be >= 0", "0 keeps them all");
  require(o.validation_every >= 1 && o.validation_images >= 1 && o.validation_steps >= 1,
          "--validation-every, --validation-images and --validation-steps must be >= 1");
  require(!(o.resume.empty() == false && o.overwrite), "--resume and --overwrite contradict each other",
          "--overwrite starts the run over");
  if (o.lora) lora_config(o).validate();
}

lora::LoraConfig lora_config(const TrainOptions& o) {
  lora::LoraConfig config;
  config.rank = o.lora_rank;
  config.alpha = o.lora_alpha;
  config.dropout = o.lora_dropout;
  config.targets = o.lora_targets;
  config.unet = true;
  config.text_encoder = o.train_text_encoder;
  config.seed = o.seed ? *o.seed : 0;
  config.dtype = c10::kFloat;  // adapters train in float32 whatever the base's dtype
  return config;
}

std::string expand_prompt(const std::string& pattern, const std::string& token, const std::string& class_noun) {
  std::string out;
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.compare(i, 7, "{token}") == 0) {
      out += token;
      i += 7;
    } else if (pattern.compare(i, 7, "{class}") == 0) {
      out += class_noun;
      i += 7;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

const std::vector<std::string>& resume_invariant_keys() {
  static const std::vector<std::string> keys = {
      "subject",         "token",          "class",         "instance_prompt",      "class_prompt",
      "batch_size",      "gradient_accumulation", "resolution", "center_crop",     "flip",
      "seed",            "prior_preservation",    "num_class_images", "train_text_encoder", "mixed_precision",
      "cache_latents",   "lr",             "lr_scheduler",  "lr_warmup_steps",      "lr_num_cycles",
      "lr_power",        "adam_beta1",     "adam_beta2",    "adam_weight_decay",    "adam_epsilon",
      "lora",            "lora_rank",      "lora_alpha",    "lora_targets",         "lora_dropout",
      "use_8bit_adam"};
  return keys;
}

}  // namespace dreambooth::train
