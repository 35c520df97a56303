#include "dreambooth/checkpoint/writer.h"

#include <algorithm>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/remove_tree.h"

namespace fs = std::filesystem;

namespace dreambooth::checkpoint {
namespace {

void check_dtype(const std::optional<c10::ScalarType>& dtype) {
  if (dtype && *dtype != c10::kFloat && *dtype != c10::kHalf && *dtype != c10::kBFloat16)
    throw usage_error(std::string("cannot save weights as ") + c10::toString(*dtype),
                      "use float32, float16 or bfloat16");
}

void check_target(const fs::path& target, bool overwrite) {
  std::error_code ec;
  if (fs::exists(target, ec) && !overwrite)
    throw output_error(target.string(), "already exists", "choose another path or allow overwriting");
}

// A component's tensors (diffusers names) gathered into stored tensors under the plan of `layout`.
std::vector<io::NamedTensor> stored_tensors(const ModelDescription& d, Component c, const TensorMap& tensors,
                                            Layout layout) {
  const std::string name = component_name(c);
  if (tensors.empty()) throw Error(ErrorKind::Runtime, std::string("cannot save: the ") + name + " is not loaded");
  std::vector<io::NamedTensor> out;
  size_t used = 0;
  for (const StoredTensor& stored : component_plan(d, c, layout)) {
    std::vector<at::Tensor> parts;
    for (const auto& key : stored.diffusers_keys) {
      auto it = tensors.find(key);
      if (it == tensors.end()) throw Error(ErrorKind::Runtime, "cannot save: " + name + " has no tensor '" + key + "'");
      if (it->second.sizes().vec() != stored.diffusers_shape)
        throw Error(ErrorKind::Runtime, "cannot save: " + name + " tensor '" + key + "' has shape " +
                                            shape_string(it->second.sizes().vec()) + ", its config implies " +
                                            shape_string(stored.diffusers_shape));
      parts.push_back(it->second.detach());
      ++used;
    }
    out.push_back({stored.key, join_stored(stored, parts)});
  }
  if (used != tensors.size())
    throw Error(ErrorKind::Runtime, "cannot save: " + name + " holds " + std::to_string(tensors.size() - used) +
                                        " tensors its config does not describe");
  return out;
}

void sort_by_name(std::vector<io::NamedTensor>& tensors) {
  std::sort(tensors.begin(), tensors.end(),
            [](const io::NamedTensor& a, const io::NamedTensor& b) { return a.name < b.name; });
}

nlohmann::json model_index(const ModelDescription& d) {
  std::string scheduler = "PNDMScheduler";
  if (auto it = d.scheduler.find("_class_name"); it != d.scheduler.end() && it->is_string())
    scheduler = it->get<std::string>();
  const nlohmann::json none = {nullptr, nullptr};
  return {
      {"_class_name", "StableDiffusionPipeline"},
      {"_diffusers_version", "0.25.1"},
      {"feature_extractor", none},
      {"image_encoder", none},
      {"requires_safety_checker", false},
      {"safety_checker", none},
      {"scheduler", {"diffusers", scheduler}},
      {"text_encoder", {"transformers", "CLIPTextModel"}},
      {"tokenizer", {"transformers", "CLIPTokenizer"}},
      {"unet", {"diffusers", "UNet2DConditionModel"}},
      {"vae", {"diffusers", "AutoencoderKL"}},
  };
}

nlohmann::json component_config(const ModelDescription& d, Component c) {
  switch (c) {
    case Component::Unet:
      return d.unet.to_json();
    case Component::Vae:
      return d.vae.to_json();
    case Component::TextEncoder:
      return d.text_encoder.to_json();
  }
  return {};
}

void write_json(const fs::path& path, const nlohmann::json& json) {
  write_text_file_atomic(path, dump_python_json(json, 2) + "\n");
}

void make_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw output_error(dir.string(), "cannot create folder: " + ec.message());
}

// Moves a finished temporary folder into place, replacing an existing target only after the new one is
// complete; on failure the old target is restored.
void move_folder_into_place(const fs::path& temp, const fs::path& target) {
  std::error_code ec;
  fs::path old;
  if (fs::exists(target, ec)) {
    old = unique_temp_sibling(target);
    fs::rename(target, old, ec);
    if (ec) throw output_error(target.string(), "cannot move the existing folder aside: " + ec.message());
  }
  fs::rename(temp, target, ec);
  if (ec) {
    std::error_code restore;
    if (!old.empty()) fs::rename(old, target, restore);
    throw output_error(target.string(), "cannot move the finished folder into place: " + ec.message());
  }
  if (!old.empty()) ec = remove_tree(old);
}

}  // namespace

void write_single_file(const ModelDescription& d, const PerComponent<TensorMap>& tensors,
                       const std::vector<io::NamedTensor>& extras, const fs::path& path, const WriteOptions& options) {
  check_dtype(options.dtype);
  check_target(path, options.overwrite);
  std::vector<io::NamedTensor> all;
  for (Component c : kAllComponents) {
    auto stored = stored_tensors(d, c, tensors[c], Layout::SingleFile);
    all.insert(all.end(), std::make_move_iterator(stored.begin()), std::make_move_iterator(stored.end()));
  }
  all.insert(all.end(), extras.begin(), extras.end());
  sort_by_name(all);
  ModelDescription written = d;
  written.layout = Layout::SingleFile;
  io::Metadata metadata = {{"format", "pt"}, {kConfigMetadataKey, dump_python_json(description_to_metadata(written))}};
  io::write_safetensors(path, all, metadata, options.dtype);
}

void write_diffusers(const ModelDescription& d, const PerComponent<TensorMap>& tensors,
                     const std::vector<io::NamedTensor>& extras, const fs::path& folder, const WriteOptions& options) {
  check_dtype(options.dtype);
  check_target(folder, options.overwrite);
  // Everything is checked before the first byte is written.
  PerComponent<std::vector<io::NamedTensor>> stored;
  for (Component c : kAllComponents) {
    stored[c] = stored_tensors(d, c, tensors[c], Layout::Diffusers);
    sort_by_name(stored[c]);
  }
  if (!folder.parent_path().empty()) make_directory(folder.parent_path());
  const fs::path temp = unique_temp_sibling(folder);
  try {
    make_directory(temp);
    write_json(temp / "model_index.json", model_index(d));
    for (Component c : kAllComponents) {
      const fs::path dir = temp / component_name(c);
      make_directory(dir);
      write_json(dir / "config.json", component_config(d, c));
      const char* weights = c == Component::TextEncoder ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
      io::write_safetensors(dir / weights, stored[c], {{"format", "pt"}}, options.dtype);
    }
    make_directory(temp / "scheduler");
    write_json(temp / "scheduler" / "scheduler_config.json", d.scheduler);
    if (!extras.empty()) {
      std::vector<io::NamedTensor> sorted = extras;
      sort_by_name(sorted);
      io::write_safetensors(
          temp / kLdmExtrasFile, sorted,
          {{"format", "pt"},
           {"dreambooth.ldm_extras",
            "single-file (LDM) tensors the diffusers models do not use, restored when converting back"}},
          options.dtype);
    }
    if (options.add_files) options.add_files(temp);
    move_folder_into_place(temp, folder);
  } catch (...) {
    std::error_code ec;
    ec = remove_tree(temp);
    throw;
  }
}

}  // namespace dreambooth::checkpoint
