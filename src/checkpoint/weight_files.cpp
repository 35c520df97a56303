#include "dreambooth/checkpoint/weight_files.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::checkpoint {

WeightFiles::WeightFiles(const std::vector<fs::path>& files) {
  for (const auto& path : files) {
    auto reader = std::make_shared<io::SafetensorsReader>(path);
    const size_t file = readers_.size();
    for (const auto& entry : reader->entries()) {
      if (!index_.emplace(entry.name, items_.size()).second)
        throw input_error(path.string(),
                          "tensor '" + entry.name + "' is also stored in " +
                              readers_[items_[index_[entry.name]].file]->path().string(),
                          "a sharded checkpoint must store each tensor once");
      items_.push_back({&entry, file});
    }
    readers_.push_back(std::move(reader));
  }
}

WeightFiles WeightFiles::from_index(const fs::path& index_json) {
  const std::string file = index_json.string();
  std::ifstream in(index_json);
  if (!in) throw input_error(file, "cannot read the shard index");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw input_error(file, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw input_error(file, "has no \"weight_map\" object", "expected a safetensors shard index");
  std::vector<fs::path> shards;
  std::unordered_map<std::string, std::string> expected;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) throw input_error(file, "weight_map entry '" + it.key() + "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard == "..")
      throw input_error(file, "shard name '" + shard + "' is not a plain file name");
    fs::path path = index_json.parent_path() / shard;
    if (std::find(shards.begin(), shards.end(), path) == shards.end()) shards.push_back(path);
    expected[it.key()] = path.string();
  }
  WeightFiles files(shards);
  for (const auto& [key, path] : expected) {
    if (!files.find(key)) throw input_error(path, "has no tensor '" + key + "' although " + file + " lists it");
    if (files.path_of(key).string() != path)
      throw input_error(file, "lists tensor '" + key + "' in " + path + " but it is in " + files.path_of(key).string());
  }
  for (const auto& item : files.items())
    if (!expected.count(item.entry->name))
      throw input_error(files.readers_[item.file]->path().string(),
                        "holds tensor '" + item.entry->name + "' that " + file + " does not list");
  return files;
}

const io::SafetensorsEntry* WeightFiles::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : items_[it->second].entry;
}

const WeightFiles::Item* WeightFiles::item(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second];
}

const fs::path& WeightFiles::path_of(const std::string& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) throw Error(ErrorKind::Runtime, "WeightFiles: no tensor '" + key + "'");
  return readers_[items_[it->second].file]->path();
}

std::vector<fs::path> WeightFiles::files() const {
  std::vector<fs::path> out;
  for (const auto& r : readers_) out.push_back(r->path());
  return out;
}

std::string WeightFiles::name() const {
  if (readers_.empty()) return "(no weights)";
  std::string n = readers_[0]->path().string();
  if (readers_.size() > 1) n += " (+" + std::to_string(readers_.size() - 1) + " shards)";
  return n;
}

uint64_t WeightFiles::total_bytes() const {
  uint64_t total = 0;
  for (const auto& r : readers_) total += r->file_size();
  return total;
}

at::Tensor WeightFiles::view(const std::string& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) throw Error(ErrorKind::Runtime, "WeightFiles: no tensor '" + key + "'");
  return readers_[items_[it->second].file]->view(key);
}

void WeightFiles::release(const std::string& key) const {
  auto it = index_.find(key);
  if (it != index_.end()) readers_[items_[it->second].file]->release(key);
}

}  // namespace dreambooth::checkpoint
