#include "dreambooth/train/model_output.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/remove_tree.h"
#include "dreambooth/train/finite.h"

namespace fs = std::filesystem;

namespace dreambooth::train {
namespace {

void copy_tokenizer_files(const fs::path& source, const fs::path& folder) {
  std::error_code ec;
  if (fs::is_directory(source, ec)) {
    for (const auto& entry : fs::directory_iterator(source))
      if (entry.is_regular_file()) fs::copy_file(entry.path(), folder / entry.path().filename());
  } else {
    fs::copy_file(source, folder / source.filename());
  }
}

bool module_finite(torch::nn::Module* module) {
  if (!module) return true;
  for (const auto& p : module->parameters())
    if (!all_finite(p)) return false;
  return true;
}

}  // namespace

void copy_tokenizer(const fs::path& source, const fs::path& destination) {
  const fs::path temp = unique_temp_sibling(destination);
  std::error_code ec;
  try {
    fs::create_directories(temp);
    copy_tokenizer_files(source, temp);
    if (const std::error_code removed = remove_tree(destination))
      throw output_error(destination.string(), "cannot replace: " + removed.message());
    fs::rename(temp, destination);
  } catch (const fs::filesystem_error& e) {
    ec = remove_tree(temp);
    throw output_error(destination.string(), std::string("cannot copy the tokenizer: ") + e.what());
  }
}

bool model_weights_finite(const checkpoint::StableDiffusion& model) {
  torch::NoGradGuard no_grad;
  return module_finite(model.unet ? model.unet.ptr().get() : nullptr) &&
         module_finite(model.text_encoder ? model.text_encoder.ptr().get() : nullptr) &&
         module_finite(model.vae ? model.vae.ptr().get() : nullptr);
}

fs::path save_trained_model(const checkpoint::StableDiffusion& model, const TrainOptions& options,
                            const fs::path& tokenizer_source) {
  if (!model_weights_finite(model))
    throw numerical_error("the trained weights hold NaN/Inf; no model was written",
                          "lower --lr, or resume from an earlier checkpoint");
  const fs::path output = options.output;
  checkpoint::WriteOptions write;
  write.dtype = options.save_dtype == SaveDtype::Fp16 ? c10::kHalf : c10::kFloat;
  write.overwrite = true;
  fs::path main_path;
  if (options.save_format != SaveFormat::Diffusers) {
    main_path = output / kModelFile;
    checkpoint::save_single_file(model, main_path, write);
    spdlog::info("saved {} ({})", main_path.string(), to_string(options.save_dtype));
  }
  if (options.save_format != SaveFormat::Single) {
    const fs::path folder = output / kDiffusersFolder;
    write.add_files = [&](const fs::path& temp_folder) {
      fs::create_directories(temp_folder / kTokenizerFolder);
      copy_tokenizer_files(tokenizer_source, temp_folder / kTokenizerFolder);
    };
    checkpoint::save_diffusers(model, folder, write);
    spdlog::info("saved {} ({})", folder.string(), to_string(options.save_dtype));
    if (main_path.empty()) main_path = folder;
  }
  copy_tokenizer(tokenizer_source, output / kTokenizerFolder);
  return main_path;
}

fs::path save_trained_lora(const lora::LoraNetwork& network, const TrainOptions& options,
                           const lora::LoraTrainingInfo& info) {
  if (!module_finite(network.ptr().get()))
    throw numerical_error("the trained LoRA weights hold NaN/Inf; no LoRA file was written",
                          "lower --lr, or resume from an earlier checkpoint");
  lora::LoraSaveOptions save;
  save.format = options.lora_format;
  save.dtype = options.save_dtype == SaveDtype::Fp16 ? c10::kHalf : c10::kFloat;
  save.metadata = lora::kohya_metadata(network, info);
  const fs::path path = fs::path(options.output) / kLoraFile;
  lora::save_lora(network, path, save);
  spdlog::info("saved {} ({} keys, {}, rank {})", path.string(), lora::lora_format_name(options.lora_format),
               to_string(options.save_dtype), network->config().rank);
  return path;
}

}  // namespace dreambooth::train
