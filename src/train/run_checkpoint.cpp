#include "dreambooth/train/run_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/remove_tree.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/train/optimizer.h"

namespace fs = std::filesystem;

namespace dreambooth::train {
namespace {

constexpr int kCheckpointFormat = 1;
constexpr const char* kWeightsFile = "weights.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";

std::string to_hex(const at::Tensor& bytes) {
  const at::Tensor b = bytes.to(torch::kCPU, torch::kUInt8).contiguous();
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(b.numel() * 2);
  const uint8_t* p = b.data_ptr<uint8_t>();
  for (int64_t i = 0; i < b.numel(); ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

at::Tensor from_hex(const std::string& hex, const std::string& source) {
  if (hex.size() % 2 != 0) throw input_error(source, "damaged random-generator state");
  at::Tensor out = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  uint8_t* p = out.data_ptr<uint8_t>();
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw input_error(source, "damaged random-generator state");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  return out;
}

int step_of(const fs::path& folder) {
  const std::string name = folder.filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() <= 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoi(name.substr(5));
}

}  // namespace

fs::path checkpoints_folder(const fs::path& output) { return output / "checkpoints"; }

fs::path checkpoint_folder(const fs::path& output, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06d", step);
  return checkpoints_folder(output) / name;
}

std::vector<std::pair<int, fs::path>> list_checkpoints(const fs::path& output) {
  std::vector<std::pair<int, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(checkpoints_folder(output), ec)) return out;
  for (const auto& entry : fs::directory_iterator(checkpoints_folder(output), ec)) {
    const int step = step_of(entry.path());
    if (step >= 0 && fs::exists(entry.path() / kStateFile)) out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void save_run_checkpoint(const fs::path& folder, const TrainableParameters& trainable, torch::optim::Optimizer& optimizer,
                         const RunState& state) {
  std::error_code ec;
  fs::create_directories(folder.parent_path(), ec);
  if (ec) throw output_error(folder.parent_path().string(), "cannot create the checkpoint folder: " + ec.message());
  const fs::path temp = unique_temp_sibling(folder);
  fs::create_directory(temp, ec);
  if (ec) throw output_error(temp.string(), "cannot create the checkpoint folder: " + ec.message());
  try {
    std::vector<io::NamedTensor> weights;
    for (const auto& p : trainable.parameters) weights.push_back({p.name, p.tensor.detach()});
    io::write_safetensors(temp / kWeightsFile, weights, {{"format", "pt"}});
    io::write_safetensors(temp / kOptimizerFile, optimizer_state_tensors(optimizer, trainable), {{"format", "pt"}});
    nlohmann::json j;
    j["format"] = kCheckpointFormat;
    j["step"] = state.step;
    j["method"] = trainable.method;
    j["data_order"] = state.data_order.to_json();
    j["rng_state"] = to_hex(state.rng_state);
    if (state.device_rng_state.defined()) j["device_rng_state"] = to_hex(state.device_rng_state);
    j["loss_scaler"] = state.loss_scaler;
    j["token"] = state.token;
    j["options"] = state.options;
    write_text_file_atomic(temp / kStateFile, j.dump(1) + "\n");
    // Replace an older folder of the same step (a rerun) only once the new one is complete.
    if (fs::exists(folder)) {
      const fs::path old = unique_temp_sibling(folder);
      fs::rename(folder, old);
      fs::rename(temp, folder);
      ec = remove_tree(old);
    } else {
      fs::rename(temp, folder);
    }
  } catch (const fs::filesystem_error& e) {
    ec = remove_tree(temp);
    throw output_error(folder.string(), std::string("cannot write the checkpoint: ") + e.what());
  } catch (...) {
    ec = remove_tree(temp);
    throw;
  }
}

RunState load_run_checkpoint(const fs::path& folder, const TrainableParameters& trainable,
                             torch::optim::Optimizer& optimizer) {
  const fs::path state_path = folder / kStateFile;
  std::ifstream in(state_path);
  if (!in) throw input_error(state_path.string(), "cannot read the checkpoint state", "is this a checkpoint folder?");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw input_error(state_path.string(), std::string("not valid JSON: ") + e.what());
  }
  RunState state;
  try {
    if (j.at("format").get<int>() != kCheckpointFormat)
      throw input_error(state_path.string(), "unknown checkpoint format " + j.at("format").dump());
    if (j.value("method", std::string("full")) != trainable.method)
      throw input_error(state_path.string(), "the checkpoint trained '" + j.value("method", std::string()) +
                                                 "' parameters, this run trains '" + trainable.method + "'");
    state.step = j.at("step").get<int>();
    state.data_order = DataOrder::from_json(j.at("data_order"), state_path.string());
    state.rng_state = from_hex(j.at("rng_state").get<std::string>(), state_path.string());
    if (j.contains("device_rng_state"))
      state.device_rng_state = from_hex(j.at("device_rng_state").get<std::string>(), state_path.string());
    state.loss_scaler = j.value("loss_scaler", nlohmann::json::object());
    state.token = j.at("token").get<std::string>();
    state.options = j.value("options", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    throw input_error(state_path.string(), std::string("damaged checkpoint state: ") + e.what());
  }

  // Weights: strictly the trained set, by name.
  io::SafetensorsReader weights(folder / kWeightsFile);
  std::set<std::string> expected;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : trainable.parameters) {
      expected.insert(p.name);
      const io::SafetensorsEntry* entry = weights.find(p.name);
      if (!entry)
        throw input_error(weights.path().string(), "has no tensor " + p.name,
                          "the checkpoint was written by a run that trained other parameters");
      if (entry->shape != p.tensor.sizes().vec())
        throw input_error(weights.path().string(), p.name + " has the wrong shape", "the checkpoint belongs to another model");
      at::Tensor destination = p.tensor;
      weights.load_into(p.name, destination);
    }
  }
  for (const auto& entry : weights.entries())
    if (!expected.count(entry.name))
      throw input_error(weights.path().string(), "holds " + entry.name + ", which this run does not train",
                        "resume with the options the checkpoint was written with");
  io::SafetensorsReader optimizer_file(folder / kOptimizerFile);
  load_optimizer_state(optimizer, trainable, optimizer_file);
  return state;
}

fs::path resolve_resume(const std::string& spec, const fs::path& output) {
  if (spec == "latest") {
    const auto all = list_checkpoints(output);
    if (all.empty())
      throw input_error(checkpoints_folder(output).string(), "holds no checkpoint to resume from",
                        "drop --resume to start a new run");
    return all.back().second;
  }
  const fs::path folder = spec;
  if (!fs::exists(folder / kStateFile))
    throw input_error(folder.string(), "is not a training checkpoint (no state.json)",
                      "use --resume latest or a folder under OUTPUT/checkpoints");
  return folder;
}

void prune_checkpoints(const fs::path& output, int keep) {
  if (keep <= 0) return;
  auto all = list_checkpoints(output);
  for (size_t i = 0; i + keep < all.size(); ++i) {
    std::error_code ec;
    ec = remove_tree(all[i].second);
    if (ec) spdlog::warn("cannot remove old checkpoint {}: {}", all[i].second.string(), ec.message());
  }
}

}  // namespace dreambooth::train
