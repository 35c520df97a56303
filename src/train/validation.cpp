#include "dreambooth/train/validation.h"

#include <cstdio>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/io/image.h"
#include "dreambooth/pipelines/generation_parameters.h"
#include "dreambooth/pipelines/text_to_image.h"
#include "dreambooth/schedulers/registry.h"

namespace fs = std::filesystem;

namespace dreambooth::train {

fs::path validation_folder(const fs::path& output, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06d", step);
  return output / "validation" / name;
}

void write_validation_images(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
                             const ValidationSettings& s, const fs::path& folder) {
  torch::NoGradGuard no_grad;
  const schedulers::SamplerInfo& sampler = schedulers::find_sampler(s.sampler);
  pipelines::TextToImage pipeline(model, tokenizer,
                                  schedulers::SchedulerConfig::from_json(model.description.scheduler, "scheduler config"));
  pipelines::GenerationSettings settings;
  settings.prompt = s.prompt;
  settings.width = settings.height = s.resolution;
  settings.steps = s.steps;
  settings.guidance_scale = s.cfg;
  settings.sampler = &sampler;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw output_error(folder.string(), "cannot create the validation folder: " + ec.message());
  for (int i = 0; i < s.count; ++i) {
    const uint64_t seed = s.seed + static_cast<uint64_t>(i);
    const auto images = pipeline.generate(settings, {seed});
    pipelines::GenerationRecord record;
    record.prompt = s.prompt;
    record.steps = s.steps;
    record.sampler = sampler.kind;
    record.cfg = s.cfg;
    record.seed = seed;
    record.width = record.height = s.resolution;
    char name[64];
    std::snprintf(name, sizeof name, "%02d-%llu.png", i, static_cast<unsigned long long>(seed));
    io::save_png(folder / name, images[0], {{"parameters", pipelines::a1111_parameters(record)}});
  }
}

}  // namespace dreambooth::train
