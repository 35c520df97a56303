// What the training tests share: the golden DreamBooth step's batch and noise, a short run's options on the
// golden tiny model with its synthetic subject photos, interrupted runs, and whole-file tensor comparisons.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/io/image.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/dreambooth_trainer.h"
#include "dreambooth/train/options.h"
#include "dreambooth/train/training_step.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace dreambooth::testing {

struct GoldenStepInputs {
  train::StepBatch batch;
  train::StepNoise noise;
};

// The golden dreambooth_step(_te) inputs: the [instance, class] batch and its noise, on `device`.
inline GoldenStepInputs golden_step_inputs(const io::SafetensorsReader& g, c10::Device device = c10::kCPU) {
  GoldenStepInputs in;
  in.batch.pixel_values = g.load("input.pixel_values", c10::kFloat, device);
  in.batch.input_ids = g.load("input.input_ids", c10::kLong, device);
  in.batch.num_instance = 1;
  in.noise.posterior_eps = g.load("input.posterior_eps", c10::kFloat, device);
  in.noise.noise = g.load("input.noise", c10::kFloat, device);
  in.noise.timesteps = g.load("input.timesteps", c10::kLong, device);
  return in;
}

// Two synthetic "subject photos": soft colour blobs, 72x64 (not square, so resize and crops have work).
inline void write_subject_photos(const std::filesystem::path& folder) {
  std::filesystem::create_directories(folder);
  for (int k = 0; k < 2; ++k) {
    io::Image image{72, 64, std::vector<uint8_t>(72 * 64 * 3)};
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 72; ++x) {
        uint8_t* p = &image.pixels[(size_t(y) * 72 + x) * 3];
        const double d = std::hypot(x - 36.0 - 8 * k, y - 32.0) / 32.0;
        p[0] = static_cast<uint8_t>(std::clamp(230 - 150 * d, 0.0, 255.0));
        p[1] = static_cast<uint8_t>(40 + 60 * k);
        p[2] = static_cast<uint8_t>(std::clamp(60 + 120 * d, 0.0, 255.0));
      }
    io::save_png(folder / ("photo" + std::to_string(k) + ".png"), image);
  }
}

// A short CPU run on the golden tiny model into dir/output: 64x64, float32 output, no prior preservation,
// no checkpoints; the subject photos are written to dir/subject the first time.
inline train::TrainOptions tiny_train_options(const TempDir& dir, const std::string& output, uint64_t seed) {
  train::TrainOptions o;
  o.model = golden_path("tiny-sd1").string();
  o.subject = (dir / "subject").string();
  o.token = "sks";
  o.class_noun = "dog";
  o.output = (dir / output).string();
  o.resolution = 64;
  o.seed = seed;
  o.quiet = true;
  o.device = "cpu";
  o.save_dtype = train::SaveDtype::Fp32;
  o.checkpoint_every = 0;
  o.prior_preservation = false;
  if (!std::filesystem::exists(dir / "subject")) write_subject_photos(dir / "subject");
  return o;
}

// What a resume test must see restored: class images generated for prior preservation, random crops and
// flips, gradient accumulation, a warm-up then cosine learning rate, a checkpoint every 2 steps.
inline void use_everything_a_resume_restores(train::TrainOptions& o, const TempDir& dir) {
  o.prior_preservation = true;
  o.num_class_images = 2;
  o.class_steps = 2;
  o.class_batch_size = 2;
  o.class_dir = (dir / "class").string();
  o.flip = true;
  o.gradient_accumulation = 2;
  o.lr_scheduler = train::LrSchedulerKind::Cosine;
  o.lr_warmup_steps = 2;
  o.checkpoint_every = 2;
}

// Clears a requested interrupt when the test ends, however it ends.
struct InterruptCleaner {
  ~InterruptCleaner() { clear_interrupt(); }
};

// Runs `o` with a Ctrl-C requested after `step`: the run must stop there with ErrorKind::Interrupted.
inline void run_interrupted_after(const train::TrainOptions& o, int step) {
  train::TrainHooks hooks;
  hooks.after_step = [step](const train::StepMetrics& m) {
    if (m.step == step) request_interrupt();
  };
  try {
    train::train_dreambooth(o, hooks);
    ADD_FAILURE() << "the interrupted run finished";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Interrupted) << e.what();
  }
  clear_interrupt();
}

// Every tensor of a safetensors file, by name, as stored.
inline std::map<std::string, at::Tensor> read_all_tensors(const std::filesystem::path& path) {
  io::SafetensorsReader reader(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : reader.entries()) out[e.name] = reader.load(e.name, e.scalar_type).clone();
  return out;
}

// The largest |a - b| over two files' tensors (same names; a name missing from b fails the test), printed
// with `label` so that a test log shows how far apart two runs ended.
inline double max_abs_diff_between_files(const std::filesystem::path& a_path, const std::filesystem::path& b_path,
                                         const char* label) {
  const auto a = read_all_tensors(a_path);
  const auto b = read_all_tensors(b_path);
  EXPECT_EQ(a.size(), b.size()) << a_path << " vs " << b_path;
  double worst = 0;
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end()) {
      ADD_FAILURE() << name << " missing from " << b_path;
      continue;
    }
    worst = std::max(worst, max_abs_diff(tensor, other->second));
  }
  std::printf("[%s] max |a - b| over %zu tensors: %g\n", label, a.size(), worst);
  return worst;
}

}  // namespace dreambooth::testing
