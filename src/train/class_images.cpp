#include "dreambooth/train/class_images.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/core/progress.h"
#include "dreambooth/io/image.h"
#include "dreambooth/pipelines/generation_parameters.h"
#include "dreambooth/pipelines/text_to_image.h"
#include "dreambooth/schedulers/registry.h"
#include "dreambooth/train/dataset.h"

namespace fs = std::filesystem;

namespace dreambooth::train {
namespace {

nlohmann::json read_manifest(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return {{"images", nlohmann::json::array()}};
  std::stringstream text;
  text << in.rdbuf();
  try {
    nlohmann::json j = nlohmann::json::parse(text.str());
    if (j.is_object() && j.contains("images") && j["images"].is_array()) return j;
  } catch (const nlohmann::json::exception&) {
  }
  spdlog::warn("{}: unreadable class-image manifest; starting a new one (existing images are kept)", path.string());
  return {{"images", nlohmann::json::array()}};
}

std::string class_image_name(size_t index, uint64_t seed) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "class-%05zu-%llu.png", index, static_cast<unsigned long long>(seed));
  return buffer;
}

}  // namespace

int count_class_images(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  return static_cast<int>(list_image_files(folder, /*strict=*/false, "class").size());
}

ClassImageReport ensure_class_images(const checkpoint::StableDiffusion& model, const text::Tokenizer& tokenizer,
                                     const ClassImageSettings& s) {
  ClassImageReport report;
  report.existing = count_class_images(s.folder);
  const int missing = s.count - report.existing;
  if (missing <= 0) return report;

  std::error_code ec;
  fs::create_directories(s.folder, ec);
  if (ec) throw output_error(s.folder.string(), "cannot create the class-image folder: " + ec.message());
  const fs::path manifest_path = s.folder / kClassManifestFile;
  nlohmann::json manifest = read_manifest(manifest_path);

  const schedulers::SamplerInfo& sampler = schedulers::find_sampler(s.sampler);
  pipelines::TextToImage pipeline(model, tokenizer,
                                  schedulers::SchedulerConfig::from_json(model.description.scheduler, "scheduler config"));
  pipelines::GenerationSettings settings;
  settings.prompt = s.prompt;
  settings.negative_prompt = s.negative_prompt;
  settings.width = settings.height = s.resolution;
  settings.steps = s.steps;
  settings.guidance_scale = s.cfg;
  settings.sampler = &sampler;
  pipeline.latent_shape(settings.width, settings.height);  // validates the size

  spdlog::info("generating {} class image(s) of '{}' into {} ({} steps of {}, cfg {})", missing, s.prompt,
               s.folder.string(), s.steps, sampler.name, s.cfg);
  torch::NoGradGuard no_grad;
  Progress progress("class images", missing, s.quiet);
  while (report.generated < missing) {
    const int batch = std::min(s.batch_size, missing - report.generated);
    // Image k of the folder's history (every image ever generated there) uses seed + k.
    const size_t history = manifest["images"].size();
    std::vector<uint64_t> seeds;
    for (int b = 0; b < batch; ++b) seeds.push_back(s.seed + history + b);
    const auto images = pipeline.generate(settings, seeds, [&](int, int) {
      if (interrupt_requested())
        throw Error(ErrorKind::Interrupted, "interrupted while generating class images; finished images are kept");
    });
    for (int b = 0; b < batch; ++b) {
      pipelines::GenerationRecord record;
      record.prompt = s.prompt;
      record.negative_prompt = s.negative_prompt;
      record.steps = s.steps;
      record.sampler = sampler.kind;
      record.cfg = s.cfg;
      record.seed = seeds[b];
      record.width = record.height = s.resolution;
      const std::string name = class_image_name(history + b, seeds[b]);
      io::save_png(s.folder / name, images[b], {{"parameters", pipelines::a1111_parameters(record)}});
      manifest["images"].push_back({{"file", name},
                                    {"seed", seeds[b]},
                                    {"prompt", s.prompt},
                                    {"negative_prompt", s.negative_prompt},
                                    {"sampler", sampler.name},
                                    {"steps", s.steps},
                                    {"cfg", s.cfg},
                                    {"width", s.resolution},
                                    {"height", s.resolution}});
    }
    // The manifest follows every batch, so an interrupted run leaves it matching the files.
    write_text_file_atomic(manifest_path, manifest.dump(1) + "\n");
    report.generated += batch;
    progress.update(report.generated);
  }
  progress.finish();
  return report;
}

}  // namespace dreambooth::train
