#include "dreambooth/pipelines/model_loading.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/core/process_memory.h"

namespace fs = std::filesystem;

namespace dreambooth::pipelines {

fs::path resolve_model_path(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "model_index.json")) return path;
    if (fs::exists(path / "model.safetensors")) return path / "model.safetensors";
    if (fs::exists(path / "diffusers" / "model_index.json")) return path / "diffusers";
    throw input_error(path.string(), "folder holds no model (no model_index.json, no model.safetensors)",
                      "pass a .safetensors file, a diffusers folder or a `dreambooth train` output folder");
  }
  if (!fs::exists(path, ec)) throw input_error(path.string(), "no such file or folder", "check --model");
  return path;
}

c10::ScalarType resolve_dtype(const std::string& spec, c10::Device device) {
  const bool cuda = device.is_cuda();
  if (spec == "auto") return cuda ? c10::kHalf : c10::kFloat;
  if (spec == "fp32" || spec == "float32") return c10::kFloat;
  if (spec == "bf16" || spec == "bfloat16") return c10::kBFloat16;
  if (spec == "fp16" || spec == "float16") {
    if (!cuda) throw usage_error("--dtype fp16 needs a CUDA device", "use fp32 or bf16 on the CPU");
    return c10::kHalf;
  }
  throw usage_error("--dtype " + spec + " is not a dtype", "use auto, fp32, fp16 or bf16");
}

std::shared_ptr<text::Tokenizer> load_model_tokenizer(const fs::path& model_path, bool diffusers_folder,
                                                      checkpoint::Family family,
                                                      const std::optional<fs::path>& explicit_path,
                                                      text::FoundTokenizer* found_out) {
  text::TokenizerQuery query;
  query.explicit_path = explicit_path;
  query.model_path = model_path;
  query.model_is_diffusers_folder = diffusers_folder;
  query.family = family == checkpoint::Family::Sd2 ? text::TokenizerFamily::SD2 : text::TokenizerFamily::SD1;
  text::FoundTokenizer found = text::find_tokenizer(query);
  spdlog::debug("tokenizer: {} (from {})", found.path.string(), found.source);
  if (found_out) *found_out = found;
  return std::shared_ptr<text::Tokenizer>(text::load_tokenizer(found.path, found.pad_id));
}

LoadedModel load_model(const ModelRequest& request) {
  LoadedModel loaded;
  loaded.resolved_path = resolve_model_path(request.path);
  checkpoint::LoadOptions options;
  options.path = loaded.resolved_path;
  options.dtype = request.dtype;
  options.device = request.device;
  options.prediction_type = request.prediction_type;
  options.components = request.components;
  // fp16 VAEs with force_upcast are loaded straight into float32 rather than rounded through fp16.
  const bool upcast_vae = request.components.vae && request.dtype == c10::kHalf;
  if (upcast_vae) options.components.vae = false;
  loaded.sd = checkpoint::load_stable_diffusion(options);
  if (upcast_vae) {
    options.components = checkpoint::ComponentSet::only(checkpoint::Component::Vae);
    if (loaded.sd.description.vae.force_upcast) options.dtype = c10::kFloat;
    loaded.sd.vae = checkpoint::load_stable_diffusion(options).vae;
  }
  // The layers' first, never touched allocations were replaced by the loaded weights: hand them back and
  // let the caching allocator's peak start from the model.
  return_free_memory_to_os();
  if (request.need_tokenizer)
    loaded.tokenizer = load_model_tokenizer(loaded.resolved_path, loaded.sd.description.layout ==
                                                                      checkpoint::Layout::Diffusers,
                                            loaded.sd.description.family, request.tokenizer, &loaded.tokenizer_source);
  return loaded;
}

}  // namespace dreambooth::pipelines
