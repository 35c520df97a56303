#include "dreambooth/checkpoint/source.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "dreambooth/checkpoint/detect.h"
#include "dreambooth/checkpoint/ldm_yaml.h"
#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"
#include "dreambooth/schedulers/scheduler_config.h"

namespace fs = std::filesystem;

namespace dreambooth::checkpoint {
namespace {

constexpr const char* kKeyHint =
    "the weights do not match the detected configuration: the file may be partial, a LoRA or merge fragment, "
    "or an unsupported variant";

bool is_pickle_extension(const fs::path& path) {
  const std::string ext = path.extension().string();
  return ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin";
}

// Configs as diffusers writes them (Python's json: -Infinity and NaN allowed).
nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path.string(), "cannot read (missing?)");
  std::stringstream text;
  text << in.rdbuf();
  return parse_python_json(text.str(), path.string());
}

// The dtype holding most of a component's parameters.
c10::ScalarType majority_dtype(const ComponentPlan& plan, const WeightFiles& files) {
  std::map<c10::ScalarType, int64_t> count;
  for (const auto& stored : plan) {
    const auto* entry = files.find(stored.key);
    count[entry->scalar_type] += entry->numel();
  }
  c10::ScalarType best = c10::kFloat;
  int64_t most = -1;
  for (const auto& [type, n] : count)
    if (n > most) {
      best = type;
      most = n;
    }
  return best;
}

CheckpointSource open_single_file(const fs::path& path, const OpenOptions& options) {
  const std::string file = path.string();
  WeightFiles files({path});
  ModelDescription d;
  const auto& metadata = files.readers()[0]->metadata();
  if (auto it = metadata.find(kConfigMetadataKey); it != metadata.end()) {
    d = description_from_metadata(parse_python_json(it->second, file + " __metadata__ " + kConfigMetadataKey), file);
    if (options.prediction_type) set_prediction_type(d, *options.prediction_type);
    check_supported(d, file);
  } else {
    std::optional<LdmYaml> yaml = LdmYaml::beside(path);
    d = detect_from_shapes(shapes_of(files), yaml ? &*yaml : nullptr, file, options.prediction_type);
  }
  d.layout = Layout::SingleFile;
  d.source = path;

  CheckpointSource source;
  KeyProblems problems;
  std::set<std::string> planned;
  for (Component c : kAllComponents) {
    if (!options.components.contains(c)) continue;
    ComponentPlan plan = component_plan(d, c, Layout::SingleFile);
    for (const auto& stored : plan) planned.insert(stored.key);
    ComponentPlan bound = bind_plan(plan, files, nullptr, problems);
    d.stored_dtype[c] = majority_dtype(bound, files);
    source.components[c] = {files, std::move(bound)};
  }
  for (const auto& item : files.items()) {
    const std::string& key = item.entry->name;
    if (planned.count(key)) continue;
    if (is_single_file_extra(key, d.family, d.text_encoder.num_hidden_layers)) {
      source.extra_keys.push_back(key);
      continue;
    }
    auto component = ldm_component_of(key);
    if (component && !options.components.contains(*component)) continue;
    problems.unexpected.push_back(key);
  }
  throw_if_problems(problems, file, kKeyHint);
  source.extras_files = files;
  source.description = std::move(d);
  return source;
}

WeightFiles component_weights(const fs::path& dir, const std::string& base, bool prefer_fp16) {
  const std::string component = dir.filename().string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw input_error(dir.string(), "missing component folder", "a diffusers model has unet/, vae/ and text_encoder/");
  std::vector<std::string> candidates = {base + ".safetensors", base + ".safetensors.index.json",
                                         base + ".fp16.safetensors", base + ".fp16.safetensors.index.json"};
  if (prefer_fp16) std::rotate(candidates.begin(), candidates.begin() + 2, candidates.end());
  for (const auto& name : candidates) {
    const fs::path path = dir / name;
    if (!fs::is_regular_file(path, ec)) continue;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) return WeightFiles::from_index(path);
    return WeightFiles({path});
  }
  for (const char* pickle : {".bin", ".fp16.bin", ".ckpt", ".bin.index.json"}) {
    const fs::path path = dir / (base + pickle);
    if (fs::exists(path, ec))
      throw input_error(path.string(), "pickle weights are not supported",
                        "convert to safetensors (e.g. diffusers' save_pretrained(..., safe_serialization=True))");
  }
  throw input_error(dir.string(), "has no " + base + ".safetensors",
                    "expected " + base + ".safetensors, " + base + ".fp16.safetensors or a sharded index");
}

// model_index.json must name a plain text-to-image pipeline with the three models and a scheduler.
void check_model_index(const nlohmann::json& index, const std::string& file) {
  if (!index.is_object()) throw input_error(file, "is not a JSON object");
  if (index.contains("_class_name")) {
    const std::string name = index["_class_name"].is_string() ? index["_class_name"].get<std::string>() : "";
    if (name != "StableDiffusionPipeline")
      throw model_error(file, "pipeline class '" + name + "' is not supported",
                        "only StableDiffusionPipeline (SD 1.x/2.x text-to-image) models are supported");
  }
  const std::pair<const char*, const char*> expected[] = {{"unet", "UNet2DConditionModel"},
                                                          {"vae", "AutoencoderKL"},
                                                          {"text_encoder", "CLIPTextModel"},
                                                          {"scheduler", nullptr}};
  for (const auto& [component, cls] : expected) {
    const auto it = index.find(component);
    if (it == index.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string())
      throw model_error(file, std::string("does not list a ") + component + " component");
    if (cls && (*it)[1].get<std::string>() != cls)
      throw model_error(file, std::string(component) + " is a " + (*it)[1].get<std::string>() + ", expected " + cls);
  }
}

CheckpointSource open_diffusers(const fs::path& dir, const OpenOptions& options) {
  const fs::path index_path = dir / "model_index.json";
  std::error_code ec;
  if (!fs::is_regular_file(index_path, ec))
    throw input_error(dir.string(), "is a folder without model_index.json", "expected a diffusers model folder");
  check_model_index(read_json_file(index_path), index_path.string());

  ModelDescription d;
  d.layout = Layout::Diffusers;
  d.source = dir;
  d.config_source = "config.json";
  d.unet = models::UNetConfig::from_json(read_json_file(dir / "unet" / "config.json"),
                                         (dir / "unet" / "config.json").string());
  d.vae =
      models::VaeConfig::from_json(read_json_file(dir / "vae" / "config.json"), (dir / "vae" / "config.json").string());
  d.text_encoder = models::ClipTextConfig::from_json(read_json_file(dir / "text_encoder" / "config.json"),
                                                     (dir / "text_encoder" / "config.json").string());
  const fs::path scheduler_path = dir / "scheduler" / "scheduler_config.json";
  d.scheduler = read_json_file(scheduler_path);
  if (!d.scheduler.is_object()) throw input_error(scheduler_path.string(), "is not a JSON object");
  schedulers::SchedulerConfig::from_json(d.scheduler, scheduler_path.string());  // strict: unsupported values fail here
  d.family = d.text_encoder.hidden_size == 1024 || d.text_encoder.hidden_act == "gelu" ? Family::Sd2 : Family::Sd1;
  PredictionType prediction = PredictionType::Epsilon;
  if (options.prediction_type) {
    prediction = *options.prediction_type;
  } else if (auto it = d.scheduler.find("prediction_type"); it != d.scheduler.end() && !it->is_null()) {
    if (!it->is_string()) throw input_error(scheduler_path.string(), "prediction_type is not a string");
    prediction = parse_prediction_type(it->get<std::string>(), scheduler_path.string());
  }
  set_prediction_type(d, prediction);
  check_supported(d, dir.string());

  CheckpointSource source;
  KeyProblems problems;
  const KeyMap legacy_vae(legacy_vae_attention_rows());
  for (Component c : kAllComponents) {
    if (!options.components.contains(c)) continue;
    const std::string name = component_name(c);
    WeightFiles files = component_weights(dir / name, c == Component::TextEncoder ? "model" : "diffusion_pytorch_model",
                                          options.prefer_fp16_variant);
    KeyProblems component_problems;
    ComponentPlan bound = bind_plan(component_plan(d, c, Layout::Diffusers), files,
                                    c == Component::Vae ? &legacy_vae : nullptr, component_problems);
    std::set<std::string> used;
    for (const auto& stored : bound) used.insert(stored.key);
    for (const auto& item : files.items())
      if (!used.count(item.entry->name) && !is_diffusers_extra(c, item.entry->name))
        component_problems.unexpected.push_back(item.entry->name);
    // Name keys by component folder: one error for the whole model.
    for (auto* list : {&component_problems.missing, &component_problems.unexpected, &component_problems.misshaped})
      for (auto& key : *list) key = name + "/" + key;
    problems.append(component_problems);
    if (!bound.empty()) d.stored_dtype[c] = majority_dtype(bound, files);
    source.components[c] = {std::move(files), std::move(bound)};
  }
  throw_if_problems(problems, dir.string(), kKeyHint);

  const fs::path extras = dir / "ldm_extras.safetensors";
  if (fs::is_regular_file(extras, ec)) {
    source.extras_files = WeightFiles({extras});
    for (const auto& item : source.extras_files.items()) source.extra_keys.push_back(item.entry->name);
  }
  source.description = std::move(d);
  return source;
}

}  // namespace

TensorMap component_views(const CheckpointSource& source, Component component) {
  const ComponentSource& c = source.components[component];
  TensorMap out;
  for (const auto& stored : c.plan) {
    std::vector<at::Tensor> parts = split_stored(stored, c.files.view(stored.key));
    for (size_t p = 0; p < parts.size(); ++p) out.emplace(stored.diffusers_keys[p], parts[p]);
  }
  return out;
}

std::vector<io::NamedTensor> extra_views(const CheckpointSource& source) {
  std::vector<io::NamedTensor> out;
  for (const auto& key : source.extra_keys) out.push_back({key, source.extras_files.view(key)});
  return out;
}

Layout layout_of(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return Layout::Diffusers;
  if (!fs::exists(path, ec)) throw input_error(path.string(), "no such file or folder", "check the path");
  if (is_pickle_extension(path))
    throw input_error(path.string(), "pickle checkpoints (.ckpt/.pt/.pth/.bin) are not supported",
                      "convert it to .safetensors first (it can run code when unpickled)");
  return Layout::SingleFile;
}

CheckpointSource open_checkpoint(const fs::path& path, const OpenOptions& options) {
  return layout_of(path) == Layout::Diffusers ? open_diffusers(path, options) : open_single_file(path, options);
}

}  // namespace dreambooth::checkpoint
