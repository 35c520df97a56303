// The DreamBooth training loop, top to bottom. Each phase is a few calls into the files named in
// dreambooth_trainer.h.
#include "dreambooth/train/dreambooth_trainer.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/device_memory.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/core/progress.h"
#include "dreambooth/core/remove_tree.h"
#include "dreambooth/core/runtime.h"
#include "dreambooth/models/init.h"
#include "dreambooth/pipelines/model_hash.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/batch_builder.h"
#include "dreambooth/train/class_images.h"
#include "dreambooth/train/dataset.h"
#include "dreambooth/train/identifier.h"
#include "dreambooth/train/lr_schedule.h"
#include "dreambooth/train/mixed_precision.h"
#include "dreambooth/train/model_output.h"
#include "dreambooth/train/optimizer.h"
#include "dreambooth/train/run_checkpoint.h"
#include "dreambooth/train/trainable_parameters.h"
#include "dreambooth/train/training_step.h"
#include "dreambooth/train/validation.h"

namespace fs = std::filesystem;

namespace dreambooth::train {
namespace {

constexpr const char* kOptionsFile = "options.json";
constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr const char* kLossPlotFile = "loss.png";

// What an earlier run that trained leaves in OUTPUT. Class images are not among them (they are reused),
// nor options.json alone (a run that stopped before its first step; it is rewritten).
const char* const kRunOutputs[] = {"checkpoints", "validation",     kMetricsFile,     kLossPlotFile,
                                   kModelFile,    kDiffusersFolder, kTokenizerFolder, kLoraFile};

// A fresh run refuses to mix with an earlier one unless told to resume or to start over.
void prepare_output_folder(const TrainOptions& options) {
  const fs::path output = options.output;
  std::error_code ec;
  if (options.resume.empty()) {
    std::vector<fs::path> earlier;
    for (const char* name : kRunOutputs)
      if (fs::exists(output / name)) earlier.push_back(output / name);
    if (!earlier.empty() && !options.overwrite)
      throw usage_error(output.string() + " holds an earlier training run (" + earlier.front().filename().string() + ")",
                        "continue it with --resume latest, or start over with --overwrite");
    for (const fs::path& path : earlier) ec = remove_tree(path);
  }
  fs::create_directories(output, ec);
  if (ec) throw output_error(output.string(), "cannot create the output folder: " + ec.message());
}

// The options stored in a checkpoint, checked against this run's for the ones that shape the state.
nlohmann::json checkpoint_options(const fs::path& checkpoint) {
  std::ifstream in(checkpoint / "state.json");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str()).value("options", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw input_error((checkpoint / "state.json").string(), std::string("not valid JSON: ") + e.what());
  }
}

void check_resume_compatible(const nlohmann::json& saved, const nlohmann::json& current, const fs::path& checkpoint) {
  std::string differences;
  for (const std::string& key : resume_invariant_keys()) {
    if (!saved.contains(key)) continue;
    if (saved[key] != current[key])
      differences += (differences.empty() ? "" : ", ") + key + " " + saved[key].dump() + " -> " + current[key].dump();
  }
  if (!differences.empty())
    throw usage_error("--resume " + checkpoint.string() + ": options differ from the checkpoint's (" + differences + ")",
                      "resume with the original values (see OUTPUT/options.json)");
}

// --token auto picks a rare identifier (reproducibly from the seed); a given token is checked.
std::string resolve_token(const TrainOptions& options, const text::Tokenizer& tokenizer) {
  if (options.token != kAutoToken) {
    const IdentifierCheck check = check_identifier(tokenizer, options.token);
    if (!check.warning.empty()) spdlog::warn("{}", check.warning);
    return options.token;
  }
  const IdentifierCandidate chosen = suggest_identifiers(tokenizer, 1, *options.seed).front();
  spdlog::info("--token auto: using '{}' (token id {}, a rare single-token word)", chosen.text, chosen.id);
  return chosen.text;
}

void reload_component(checkpoint::StableDiffusion& model, checkpoint::Component component, const fs::path& path,
                      c10::Device device) {
  checkpoint::LoadOptions load;
  load.path = path;
  load.device = device;
  load.dtype = c10::kFloat;
  load.prediction_type = model.description.prediction_type;
  load.components = checkpoint::ComponentSet::only(component);
  checkpoint::StableDiffusion reloaded = checkpoint::load_stable_diffusion(load);
  if (component == checkpoint::Component::Vae) model.vae = reloaded.vae;
  if (component == checkpoint::Component::TextEncoder) model.text_encoder = reloaded.text_encoder;
}

// What kohya's ss_* metadata records about this run.
lora::LoraTrainingInfo lora_training_info(const TrainOptions& options, const pipelines::LoadedModel& loaded,
                                          int steps, int64_t started_at) {
  lora::LoraTrainingInfo info;
  info.family = loaded.sd.description.family;
  info.v_prediction = loaded.sd.description.prediction_type == checkpoint::PredictionType::VPrediction;
  info.base_model_name = loaded.resolved_path.filename().string();
  std::error_code ec;
  if (fs::is_regular_file(loaded.resolved_path, ec))
    info.base_model_hash = pipelines::cached_file_sha256(loaded.resolved_path);
  info.identifier = options.token;
  info.class_name = options.class_noun;
  info.steps = steps;
  info.resolution = options.resolution;
  info.learning_rate = options.learning_rate();
  info.output_name = fs::path(options.output).filename().string();
  info.training_started_at = started_at;
  return info;
}

std::string format_loss(const StepMetrics& m) {
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "loss %.4f lr %.2e", m.loss, m.lr);
  return buffer;
}

}  // namespace

TrainResult train_dreambooth(TrainOptions options, const TrainHooks& hooks) {
  // --- 1. options: validated, seed and device resolved, resume checked
  const int64_t started_at =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  validate_options(options);
  const c10::Device device = resolve_device(options.device);
  if (options.mixed_precision != MixedPrecision::No && !device.is_cuda())
    throw usage_error("--mixed-precision " + std::string(to_string(options.mixed_precision)) + " needs a CUDA device",
                      "use --mixed-precision no on the CPU");
  if (options.lora && options.save_format != SaveFormat::Single)
    spdlog::warn("--save-format applies to full fine-tuning; --lora writes {} (key names per --lora-format)",
                 kLoraFile);
  if (options.lr_scheduler == LrSchedulerKind::Constant && options.lr_warmup_steps > 0)
    spdlog::warn("--lr-scheduler constant ignores --lr-warmup-steps (as diffusers does); use constant_with_warmup");
  if (options.class_dir.empty()) options.class_dir = (fs::path(options.output) / "class_images").string();
  fs::path resume_from;
  nlohmann::json resumed_options;
  if (!options.resume.empty()) {
    resume_from = resolve_resume(options.resume, options.output);
    resumed_options = checkpoint_options(resume_from);
    if (!options.seed && resumed_options.contains("seed") && resumed_options["seed"].is_number_unsigned())
      options.seed = resumed_options["seed"].get<uint64_t>();
    if (options.token == kAutoToken && resumed_options.contains("token"))
      options.token = resumed_options["token"].get<std::string>();
  }
  if (!options.seed) options.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();

  // The subject photos first: a wrong folder or a bad file fails before anything is loaded or written.
  ImageFolderOptions folder_options;
  folder_options.resolution = options.resolution;
  folder_options.skip_bad_images = options.skip_bad_images;
  const ImageSet instance_images = load_image_folder(options.subject, folder_options);
  prepare_output_folder(options);

  // --- 2. the model, in float32 (the master weights), and its tokenizer
  pipelines::ModelRequest request;
  request.path = options.model;
  if (!options.tokenizer.empty()) request.tokenizer = fs::path(options.tokenizer);
  request.device = device;
  request.dtype = c10::kFloat;
  auto load_started = std::chrono::steady_clock::now();
  pipelines::LoadedModel loaded = pipelines::load_model(request);
  checkpoint::StableDiffusion& model = loaded.sd;
  spdlog::info("loaded {} ({}, {}) in {:.1f} s on {}", loaded.resolved_path.string(),
               checkpoint::family_name(model.description.family),
               checkpoint::prediction_type_name(model.description.prediction_type),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - load_started).count(), device.str());

  // --- 3. identifier and prompts; the resolved options are printed once and saved
  options.token = resolve_token(options, *loaded.tokenizer);
  const std::string instance_prompt = expand_prompt(options.instance_prompt, options.token, options.class_noun);
  const std::string class_prompt = expand_prompt(options.class_prompt, options.token, options.class_noun);
  const nlohmann::json resolved = options_to_json(options);
  if (!resume_from.empty()) check_resume_compatible(resumed_options, resolved, resume_from);
  spdlog::info("instance prompt '{}', class prompt '{}'", instance_prompt,
               options.prior_preservation ? class_prompt : std::string("(no prior preservation)"));
  spdlog::info("options: {}", resolved.dump());
  write_text_file_atomic(fs::path(options.output) / kOptionsFile, resolved.dump(2) + "\n");

  // --- 4. class images for prior preservation, generated by the frozen model where missing
  set_training_mode(model, {}, false);
  if (options.prior_preservation) {
    ClassImageSettings class_settings;
    class_settings.folder = options.class_dir;
    class_settings.prompt = class_prompt;
    class_settings.count = options.num_class_images;
    class_settings.resolution = options.resolution;
    class_settings.sampler = options.class_sampler;
    class_settings.steps = options.class_steps;
    class_settings.cfg = options.class_cfg;
    class_settings.batch_size = options.class_batch_size;
    class_settings.seed = *options.seed;
    class_settings.quiet = options.quiet;
    const ClassImageReport report = ensure_class_images(model, *loaded.tokenizer, class_settings);
    spdlog::info("class images: {} found, {} generated in {}", report.existing, report.generated, options.class_dir);
  }

  // --- 5. data (the subject photos were loaded above): decoded and resized once; crops, flips and
  // order come from the run's one generator
  ImageSet class_images;
  if (options.prior_preservation) {
    folder_options.strict = false;
    folder_options.role = "class";
    class_images = load_image_folder(options.class_dir, folder_options);
    if (static_cast<int>(class_images.images.size()) > options.num_class_images)
      spdlog::info("using all {} images of {}", class_images.images.size(), options.class_dir);
  }
  spdlog::info("{} subject image(s){}", instance_images.images.size(),
               options.prior_preservation ? ", " + std::to_string(class_images.images.size()) + " class image(s)" : "");
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(*options.seed);
  BatchBuilder batches(instance_images, options.prior_preservation ? &class_images : nullptr,
                       {options.resolution, options.center_crop, options.flip});

  // --- 6. what trains, the optimizer, the noise schedule
  const TrainableParameters trainable = select_trainable_parameters(options, model);
  spdlog::info("training {} parameters ({} tensors, {})", trainable.numel(), trainable.parameters.size(),
               trainable.method);
  auto optimizer = make_optimizer(trainable, options);
  const int64_t optimizer_bytes = planned_optimizer_state_bytes(trainable.tensors(), options.use_8bit_adam);
  spdlog::info("optimizer state: {:.1f} MiB ({})", optimizer_bytes / (1024.0 * 1024.0),
               options.use_8bit_adam ? "8-bit" : "fp32");
  const LrSchedule lr_schedule = make_lr_schedule(options);
  LossScaler scaler(options.mixed_precision == MixedPrecision::Fp16);
  model.unet->set_gradient_checkpointing(options.gradient_checkpointing);
  if (model.text_encoder) model.text_encoder->set_gradient_checkpointing(options.gradient_checkpointing);
  const schedulers::SchedulerConfig scheduler_config =
      schedulers::SchedulerConfig::from_json(model.description.scheduler, "scheduler config");
  const schedulers::NoiseSchedule noise_schedule = schedulers::make_noise_schedule(scheduler_config);

  // --- 7. caches: text embeddings of a frozen encoder, VAE posteriors with --cache-latents; then free
  // what the loop no longer needs (reloaded for validation or saving)
  const bool validating = !options.validation_prompt.empty();
  {
    const at::Tensor instance_ids = loaded.tokenizer->encode_batch({instance_prompt});
    const at::Tensor class_ids = loaded.tokenizer->encode_batch({class_prompt});
    if (trainable.text_encoder_trains) {
      batches.set_text_ids(instance_ids, class_ids);
    } else {
      torch::NoGradGuard no_grad;
      batches.set_text_embeddings(model.text_encoder->encode_prompt(instance_ids.to(device)),
                                  model.text_encoder->encode_prompt(class_ids.to(device)));
      if (!validating) model.text_encoder = nullptr;
    }
  }
  if (options.cache_latents) {
    batches.cache_latents(model.vae, generator);
    if (!validating) model.vae = nullptr;
  }

  // --- 8. resume: weights, optimizer state, step, data order and generator states. LoRA dropout draws
  // from the device's default generator (dropout takes no generator): seeded from --seed here, saved in
  // every checkpoint and restored from it, so that a resumed run draws the masks an uninterrupted one does.
  at::Generator device_generator = at::globalContext().defaultGenerator(device);
  {
    std::lock_guard<std::mutex> lock(device_generator.mutex());
    device_generator.set_current_seed(models::named_seed(*options.seed, "dropout"));
  }
  RunState run;
  run.data_order = DataOrder(batches.dataset_size());
  run.token = options.token;
  run.options = resolved;
  if (!resume_from.empty()) {
    const RunState saved = load_run_checkpoint(resume_from, trainable, *optimizer);
    run.step = saved.step;
    run.data_order = saved.data_order;
    generator.set_state(saved.rng_state);
    if (saved.device_rng_state.defined()) {
      std::lock_guard<std::mutex> lock(device_generator.mutex());
      device_generator.set_state(saved.device_rng_state);
    }
    scaler.load_json(saved.loss_scaler);
    spdlog::info("resumed from {} at step {}", resume_from.string(), run.step);
    if (run.data_order.size() != batches.dataset_size())
      throw usage_error("--resume: the dataset changed size since the checkpoint (" +
                            std::to_string(run.data_order.size()) + " -> " + std::to_string(batches.dataset_size()) +
                            " examples)",
                        "restore the subject/class folders the run started with");
  }
  const int start_step = run.step;
  MetricsLog metrics(fs::path(options.output) / kMetricsFile, start_step);

  const StepModels step_models = step_models_of(model, noise_schedule, options.mixed_precision);
  LossOptions loss_options;
  loss_options.prior_loss_weight = options.prior_loss_weight;
  loss_options.snr_gamma = options.snr_gamma;
  const std::vector<at::Tensor> parameters = trainable.tensors();
  const int latent_channels = model.description.unet.in_channels;
  const int latent_size = options.resolution / model.description.vae.downscale_factor();

  // --- 9. the loop: one optimizer step per iteration, gradient accumulation inside
  set_training_mode(model, trainable, true);
  Progress progress(start_step > 0 ? "train (from step " + std::to_string(start_step) + ")" : "train",
                    options.steps - start_step, options.quiet);
  while (run.step < options.steps) {
    const auto step_started = std::chrono::steady_clock::now();
    release_gradients(*optimizer);
    StepMetrics m;
    m.step = run.step + 1;
    m.lr = lr_schedule.lr(run.step);
    if (run.step == start_step) m.optimizer_state_bytes = optimizer_bytes;
    double prior_sum = 0;
    bool has_prior = false;
    for (int micro = 0; micro < options.gradient_accumulation; ++micro) {
      const StepBatch batch = batches.make(run.data_order.next_batch(options.batch_size, generator), generator);
      const int64_t rows = batch.input_ids.defined() ? batch.input_ids.size(0) : batch.encoder_hidden_states.size(0);
      const StepNoise noise =
          draw_step_noise(generator, {rows, latent_channels, latent_size, latent_size},
                          scheduler_config.num_train_timesteps, options.offset_noise);
      const StepLosses losses = step_loss(step_models, batch, noise, loss_options);
      (losses.loss * (scaler.scale() / options.gradient_accumulation)).backward();
      m.loss += losses.loss.item<double>() / options.gradient_accumulation;
      m.instance_loss += losses.instance_loss.item<double>() / options.gradient_accumulation;
      if (losses.prior_loss.defined()) {
        has_prior = true;
        prior_sum += losses.prior_loss.item<double>() / options.gradient_accumulation;
      }
    }
    if (has_prior) m.prior_loss = prior_sum;

    // A NaN/Inf loss or gradient stops the run before it reaches the weights; under fp16 loss scaling an
    // overflow skips the step instead (and lowers the scale).
    const bool scaled_ok = !scaler.enabled() || (std::isfinite(m.loss) && scaler.unscale_and_check(parameters));
    if (!scaled_ok) {
      spdlog::warn("step {}: non-finite gradients under fp16 loss scale {}; step skipped", m.step, scaler.scale());
      scaler.update(false);
    } else {
      if (!std::isfinite(m.loss))
        throw numerical_error("loss is " + std::to_string(m.loss) + " at step " + std::to_string(m.step) +
                                  "; stopped before updating the weights",
                              "lower --lr, or resume from the last checkpoint");
      m.grad_norm = options.max_grad_norm > 0 ? clip_grad_norm(parameters, options.max_grad_norm)
                                              : total_grad_norm(parameters).item<double>();
      if (!std::isfinite(m.grad_norm))
        throw numerical_error("gradient norm is " + std::to_string(m.grad_norm) + " at step " +
                                  std::to_string(m.step) + "; stopped before updating the weights",
                              "lower --lr, or resume from the last checkpoint");
      set_learning_rate(*optimizer, m.lr);
      optimizer->step();
      scaler.update(true);
    }
    ++run.step;
    synchronize(device);
    m.peak_device_memory_bytes = peak_device_memory_bytes(device);
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started).count();
    metrics.append(m);
    progress.update(run.step - start_step, format_loss(m));
    if (hooks.after_step) hooks.after_step(m);

    // Checkpoint every N steps, and always before leaving on Ctrl-C.
    const bool interrupted = interrupt_requested();
    if (interrupted || (options.checkpoint_every > 0 && run.step % options.checkpoint_every == 0)) {
      run.rng_state = generator.get_state();
      {
        std::lock_guard<std::mutex> lock(device_generator.mutex());
        run.device_rng_state = device_generator.get_state();
      }
      run.loss_scaler = scaler.to_json();
      const fs::path folder = checkpoint_folder(options.output, run.step);
      save_run_checkpoint(folder, trainable, *optimizer, run);
      prune_checkpoints(options.output, options.keep_checkpoints);
      if (interrupted) {
        progress.finish(format_loss(m));
        throw Error(ErrorKind::Interrupted, "interrupted at step " + std::to_string(run.step) +
                                                "; checkpoint written to " + folder.string() +
                                                " (continue with --resume latest)");
      }
    }
    if (validating && run.step % options.validation_every == 0) {
      set_training_mode(model, trainable, false);
      write_validation_images(model, *loaded.tokenizer,
                              {options.validation_prompt, options.validation_images, options.resolution,
                               options.validation_steps, 7.5, "dpmpp_2m", *options.seed},
                              validation_folder(options.output, run.step));
      set_training_mode(model, trainable, true);
    }
  }
  progress.finish();

  // --- 10. the trained model (frozen parts reloaded where they were freed) and tokenizer, or the LoRA
  // adapters alone; the loss curve
  set_training_mode(model, trainable, false);
  TrainResult result;
  result.token = options.token;
  result.instance_prompt = instance_prompt;
  result.steps = run.step;
  result.base_model = loaded.resolved_path;
  if (trainable.lora_network) {
    result.lora_path = save_trained_lora(trainable.lora_network, options,
                                         lora_training_info(options, loaded, run.step, started_at));
  } else {
    if (!model.vae) reload_component(model, checkpoint::Component::Vae, loaded.resolved_path, device);
    if (!model.text_encoder) reload_component(model, checkpoint::Component::TextEncoder, loaded.resolved_path, device);
    result.model_path = save_trained_model(model, options, loaded.tokenizer_source.path);
  }
  save_loss_plot(fs::path(options.output) / kLossPlotFile, metrics.history());
  return result;
}

}  // namespace dreambooth::train
