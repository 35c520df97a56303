// `dreambooth train`: DreamBooth fine-tuning with prior preservation (Ruiz et al. 2022), step for step the
// recipe of diffusers' examples/dreambooth/train_dreambooth.py. The loop is train_dreambooth() in
// dreambooth_trainer.cpp; its pieces live beside it:
//   options.h              the options, JSON presets, validation
//   identifier.h           --token auto and the token checks
//   class_images.h         prior-preservation images from the frozen model
//   dataset.h              image folders, transforms, data order; batch_builder.h assembles batches
//   training_step.h        the step (latents, noise, UNet, loss)
//   trainable_parameters.h which parameters train (the whole UNet/text encoder, or --lora adapters)
//   optimizer.h            AdamW, clipping, named optimizer state; lr_schedule.h the LR schedules
//   mixed_precision.h      autocast and loss scaling
//   run_checkpoint.h       checkpoints and resume
//   metrics.h              metrics.jsonl and loss.png; validation.h validation images
//   model_output.h         the saved model and tokenizer, or OUTPUT/lora.safetensors
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "dreambooth/train/metrics.h"
#include "dreambooth/train/options.h"

namespace dreambooth::train {

// Observers for tests and embedding programs; none is needed to train.
struct TrainHooks {
  // After every optimizer step (and its metrics line), before the checkpoint/interrupt check.
  std::function<void(const StepMetrics& metrics)> after_step;
};

struct TrainResult {
  std::string token;                // the identifier used (chosen by --token auto, or as given)
  std::string instance_prompt;      // expanded
  int steps = 0;                    // optimizer steps done in total
  std::filesystem::path model_path; // OUTPUT/model.safetensors (or OUTPUT/diffusers); empty with --lora
  std::filesystem::path lora_path;  // --lora: OUTPUT/lora.safetensors
  std::filesystem::path base_model; // the model file or folder the run started from
};

// Runs the whole training. Errors are typed (core/error.h): usage (options), input (subject/class
// images, model, checkpoint), model, output, numerical (NaN/Inf loss; no model is written) and
// interrupted (Ctrl-C/SIGTERM: the current step finishes and a checkpoint is written first).
TrainResult train_dreambooth(TrainOptions options, const TrainHooks& hooks = {});

}  // namespace dreambooth::train
