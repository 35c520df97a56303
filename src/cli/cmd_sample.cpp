// `dreambooth sample`: text-to-image from any supported model, one PNG per image.
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <random>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "command.h"
#include "operator_profile.h"
#include "dreambooth/core/device_memory.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/core/process_memory.h"
#include "dreambooth/core/progress.h"
#include "dreambooth/core/runtime.h"
#include "dreambooth/io/image.h"
#include "dreambooth/models/memory_format.h"
#include "dreambooth/models/onednn_prepack.h"
#include "dreambooth/lora/apply.h"
#include "dreambooth/pipelines/generation_parameters.h"
#include "dreambooth/pipelines/model_hash.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/pipelines/text_to_image.h"
#include "dreambooth/schedulers/registry.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct SampleOptions {
  std::string model;
  std::vector<std::string> prompts;
  std::string prompt_file;
  std::string negative_prompt;
  std::string scheduler;
  bool karras = false;
  double eta = 0.0;
  int steps = 50;
  double cfg = 7.5;
  int width = 0;
  int height = 0;
  std::optional<uint64_t> seed;
  int count = 1;
  int batch_size = 1;
  int clip_skip = 0;
  std::string out = "samples";
  std::string prediction_type;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string tokenizer;
  std::vector<std::string> loras;
  bool json = false;
  bool overwrite = false;
};

std::vector<std::string> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, "cannot read prompt file");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  return prompts;
}

// The file whose hash AUTOMATIC1111 would show for this model.
fs::path hashed_file(const fs::path& resolved) {
  if (!fs::is_directory(resolved)) return resolved;
  for (const char* name : {"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors"})
    if (fs::exists(resolved / name)) return resolved / name;
  return {};
}

// oneDNN's NHWC convolutions decode faster on the CPU; DREAMBOOTH_CHANNELS_LAST=0 keeps NCHW (comparisons).
bool channels_last_enabled() {
  const char* env = std::getenv("DREAMBOOTH_CHANNELS_LAST");
  return !(env && std::string(env) == "0");
}

std::string image_name(size_t index, uint64_t seed) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%05zu-%llu.png", index, static_cast<unsigned long long>(seed));
  return buffer;
}

int run_sample(const SampleOptions& o, const CommonOptions& common) {
  std::vector<std::string> prompts = o.prompts;
  if (!o.prompt_file.empty())
    for (auto& p : read_prompt_file(o.prompt_file)) prompts.push_back(p);
  if (prompts.empty())
    throw usage_error("no prompt given", "use --prompt TEXT (repeatable) or --prompt-file FILE with one per line");
  if (o.count < 1 || o.batch_size < 1 || o.steps < 1)
    throw usage_error("--count, --batch-size and --steps must be >= 1");
  if (o.clip_skip < 0) throw usage_error("--clip-skip must be >= 0");

  const c10::Device device = resolve_device(o.device);
  const c10::ScalarType dtype = pipelines::resolve_dtype(o.dtype, device);
  const schedulers::SamplerInfo* sampler = o.scheduler.empty() ? nullptr : &schedulers::find_sampler(o.scheduler);

  pipelines::ModelRequest request;
  request.path = o.model;
  request.device = device;
  request.dtype = dtype;
  if (!o.tokenizer.empty()) request.tokenizer = fs::path(o.tokenizer);
  if (!o.prediction_type.empty())
    request.prediction_type = checkpoint::parse_prediction_type(o.prediction_type, "--prediction-type");

  // Check the output names before spending minutes on the model.
  const fs::path out_dir = o.out;
  const uint64_t base_seed = o.seed ? *o.seed : std::random_device{}() | (uint64_t(std::random_device{}()) << 32);
  const size_t total = prompts.size() * static_cast<size_t>(o.count);
  if (!o.overwrite)
    for (size_t i = 0; i < total; ++i)
      if (fs::exists(out_dir / image_name(i, base_seed + i)))
        throw output_error((out_dir / image_name(i, base_seed + i)).string(), "already exists",
                           "use --overwrite, another --out or another --seed");

  // LoRA files are read before the model (a bad one fails fast) and merged into its weights after it.
  const std::vector<lora::LoadedLora> loras = lora::load_lora_specs(o.loras);
  auto started = std::chrono::steady_clock::now();
  pipelines::LoadedModel loaded = pipelines::load_model(request);
  nlohmann::json applied_loras = nlohmann::json::array();
  std::vector<pipelines::LoraUse> lora_uses;
  for (const lora::AppliedLora& a : lora::apply_loaded_loras(loaded.sd, loras)) {
    pipelines::LoraUse use{a.spec.path.stem().string(), a.spec.multiplier, {}};
    try {
      use.hash = pipelines::safetensors_data_sha256(a.spec.path).substr(0, 12);
    } catch (const Error& e) {
      spdlog::debug("no hash for {}: {}", a.spec.path.string(), e.what());  // the PNG names it without one
    }
    applied_loras.push_back({{"path", a.spec.path.string()}, {"scale", a.spec.multiplier}, {"hash", use.hash}});
    lora_uses.push_back(use);
  }
  spdlog::info("loaded {} ({} {}, {}) in {:.1f} s", loaded.resolved_path.string(),
               checkpoint::family_name(loaded.sd.description.family),
               checkpoint::layout_name(loaded.sd.description.layout),
               checkpoint::prediction_type_name(loaded.sd.description.prediction_type),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  const fs::path to_hash = hashed_file(loaded.resolved_path);
  // Hashing a multi-GB file takes seconds the first time: it runs beside the first image.
  std::shared_future<std::string> model_hash = std::async(std::launch::async, [to_hash] {
    return to_hash.empty() ? std::string() : pipelines::model_hash(to_hash);
  }).share();

  // Measured on 2 cores: NHWC decodes SD1.5's VAE ~1.4x faster; the UNet is not faster (its activations are
  // small next to its weights), so it stays NCHW.
  if (device.is_cpu() && channels_last_enabled()) models::use_channels_last(*loaded.sd.vae);
  schedulers::SchedulerConfig scheduler_config =
      schedulers::SchedulerConfig::from_json(loaded.sd.description.scheduler, "scheduler config");
  pipelines::TextToImage pipeline(loaded.sd, *loaded.tokenizer, scheduler_config);

  pipelines::GenerationSettings settings;
  settings.negative_prompt = o.negative_prompt;
  settings.width = o.width ? o.width : pipeline.default_resolution();
  settings.height = o.height ? o.height : pipeline.default_resolution();
  settings.steps = o.steps;
  settings.guidance_scale = o.cfg;
  settings.clip_skip = o.clip_skip;
  settings.sampler = sampler;
  if (o.karras) settings.schedule_options.karras = true;
  settings.sampler_options.eta = o.eta;
  pipeline.latent_shape(settings.width, settings.height);  // validates the size
  const schedulers::Schedule schedule = pipeline.schedule_for(settings);  // validates sampler options
  const schedulers::SamplerInfo& used_sampler = pipeline.sampler_for(settings);
  spdlog::info("sampler {} ({} steps{}), cfg {}, {}x{}, seed {}", used_sampler.name, o.steps,
               schedule.config.use_karras_sigmas ? ", karras" : "", o.cfg, settings.width, settings.height, base_seed);

  // Every prompt is encoded up front, so the text encoder and the VAE's encoder (which sampling never
  // uses) give their memory back before prepacking and the activations need it.
  std::map<std::string, double> text_encoder_seconds;
  {
    c10::InferenceMode encoding;
    for (const std::string& prompt : prompts)
      text_encoder_seconds[prompt] =
          pipeline.remember_prompt(prompt, o.negative_prompt, o.clip_skip, settings.guidance_scale > 1.0);
  }
  pipeline.release_text_encoder();
  loaded.sd.text_encoder = nullptr;
  loaded.sd.vae->release_encoder();
  if (device.is_cpu()) {
    const models::PrepackSummary packed = models::prepack_convolutions(*loaded.sd.unet);
    if (packed.layers > 0) spdlog::debug("UNet: {} convolutions prepacked for oneDNN", packed.layers);
  }
  return_free_memory_to_os();
  spdlog::debug("ready to sample: resident {:.2f} GiB, peak so far {:.2f} GiB",
                process_memory().resident_bytes / double(1 << 30), process_memory().peak_resident_bytes / double(1 << 30));

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw output_error(out_dir.string(), "cannot create output folder: " + ec.message());

  OperatorProfile profile;  // DREAMBOOTH_PROFILE=trace.json
  c10::InferenceMode inference;
  size_t index = 0;
  for (const std::string& prompt : prompts) {
    settings.prompt = prompt;
    for (int done = 0; done < o.count; done += o.batch_size) {
      const int batch = std::min(o.batch_size, o.count - done);
      std::vector<uint64_t> seeds;
      for (int b = 0; b < batch; ++b) seeds.push_back(base_seed + index + b);
      Progress progress("image " + std::to_string(index + 1) + (batch > 1 ? "-" + std::to_string(index + batch) : "") +
                            "/" + std::to_string(total),
                        schedule.size(), common.quiet || o.json);
      pipelines::GenerationTimings timings;
      auto images = pipeline.generate(
          settings, seeds,
          [&](int step, int steps) {
            progress.update(step);
            if (interrupt_requested()) throw Error(ErrorKind::Interrupted, "interrupted; finished images are kept");
            (void)steps;
          },
          &timings);
      progress.finish();
      for (int b = 0; b < batch; ++b, ++index) {
        pipelines::GenerationRecord record;
        record.prompt = prompt;
        record.negative_prompt = o.negative_prompt;
        record.steps = o.steps;
        record.sampler = used_sampler.kind;
        record.karras = schedule.config.use_karras_sigmas;
        record.cfg = o.cfg;
        record.seed = seeds[b];
        record.width = settings.width;
        record.height = settings.height;
        record.model_hash = model_hash.get();
        record.model_name = loaded.resolved_path.stem().string();
        record.clip_skip = o.clip_skip;
        record.eta = o.eta;
        record.loras = lora_uses;
        const fs::path path = out_dir / image_name(index, seeds[b]);
        io::save_png(path, images[b], {{"parameters", pipelines::a1111_parameters(record)}});
        if (o.json) {
          nlohmann::json line = {{"path", path.string()}, {"seed", seeds[b]},     {"index", index},
                                 {"prompt", prompt},      {"width", settings.width}, {"height", settings.height},
                                 {"steps", o.steps},      {"cfg", o.cfg},            {"sampler", used_sampler.name}};
          // Per batch: every image of a batch reports the batch's timings.
          line["batch_size"] = batch;
          // text_encoder: once per prompt, before the first image.
          line["seconds"] = {{"text_encoder", text_encoder_seconds[prompt]},
                             {"denoise", timings.denoise},
                             {"per_step", timings.steps ? timings.denoise / timings.steps : 0.0},
                             {"vae_decode", timings.vae_decode}};
          line["peak_rss_bytes"] = process_memory().peak_resident_bytes;
          if (auto vram = peak_device_memory_bytes(device)) line["peak_vram_bytes"] = *vram;
          if (!applied_loras.empty()) line["loras"] = applied_loras;
          std::printf("%s\n", line.dump().c_str());
        } else {
          std::printf("%s\n", path.string().c_str());
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace

CommandRunner register_sample_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<SampleOptions>();
  CLI::App* c = app.add_subcommand("sample", "generate images from a text prompt");
  c->add_option("--model", o->model, "a .safetensors file, a diffusers folder or a `train` output folder")->required();
  c->add_option("--prompt,-p", o->prompts, "prompt (repeatable)");
  c->add_option("--prompt-file", o->prompt_file, "a text file with one prompt per line");
  c->add_option("--negative-prompt,-n", o->negative_prompt, "negative prompt (default: empty = unconditional)");
  c->add_option("--scheduler,--sampler", o->scheduler, "sampler (default: the model's own scheduler):\n" +
                                                           schedulers::sampler_help());
  c->add_flag("--karras", o->karras, "Karras sigmas (euler, dpmpp_2m, lms)");
  c->add_option("--eta", o->eta, "DDIM eta (0 = deterministic)");
  c->add_option("--steps", o->steps, "sampling steps")->capture_default_str();
  c->add_option("--cfg,--guidance-scale", o->cfg, "classifier-free guidance scale (<= 1 turns it off)")
      ->capture_default_str();
  c->add_option("--width,-W", o->width, "image width, a multiple of 8 (default: the model's resolution)");
  c->add_option("--height,-H", o->height, "image height, a multiple of 8 (default: the model's resolution)");
  c->add_option("--seed", o->seed, "seed of the first image; image i uses seed + i (default: random)");
  c->add_option("--count", o->count, "images per prompt")->capture_default_str();
  c->add_option("--batch-size", o->batch_size, "images per UNet batch")->capture_default_str();
  c->add_option("--clip-skip", o->clip_skip, "text-encoder layers to skip (diffusers' count: 1 = penultimate)");
  c->add_option("--out,-o", o->out, "output folder")->capture_default_str();
  c->add_option("--prediction-type", o->prediction_type, "override: epsilon | v_prediction")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  c->add_option("--device", o->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  c->add_option("--dtype", o->dtype, "auto | fp32 | fp16 | bf16 (auto: fp16 on CUDA, fp32 on CPU)")
      ->capture_default_str();
  c->add_option("--tokenizer", o->tokenizer, "tokenizer folder (vocab.json + merges.txt) or SentencePiece .model");
  c->add_option("--lora", o->loras,
                "LoRA file (kohya or diffusers/PEFT keys) merged into the model, optionally with a scale: "
                "FILE[:SCALE] (repeatable)");
  c->add_flag("--json", o->json, "one JSON object per image on stdout");
  c->add_flag("--overwrite", o->overwrite, "replace existing images of the same name");
  add_common_options(*c, common);
  return [o, &common] { return run_sample(*o, common); };
}

}  // namespace dreambooth::cli
