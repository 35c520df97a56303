// The safetensors files holding one component (one file, or the shards of a sharded export) seen as
// one key -> tensor source. Keys are unique across the files.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dreambooth/io/safetensors.h"

namespace dreambooth::checkpoint {

class WeightFiles {
 public:
  struct Item {
    const io::SafetensorsEntry* entry;
    size_t file;  // index into files()
  };

  WeightFiles() = default;
  // Opens each file (validating it); a key stored in two files is an input error.
  explicit WeightFiles(const std::vector<std::filesystem::path>& files);
  // A sharded export: `<name>.safetensors.index.json` with a "weight_map" of key -> shard file.
  static WeightFiles from_index(const std::filesystem::path& index_json);

  bool empty() const { return readers_.empty(); }
  // File by file, each in data order: reading in this order is sequential.
  const std::vector<Item>& items() const { return items_; }
  const io::SafetensorsEntry* find(const std::string& key) const;
  const Item* item(const std::string& key) const;  // nullptr when absent
  const std::filesystem::path& path_of(const std::string& key) const;
  const std::vector<std::shared_ptr<io::SafetensorsReader>>& readers() const { return readers_; }
  std::vector<std::filesystem::path> files() const;
  // The file (or the first shard, for messages).
  std::string name() const;
  uint64_t total_bytes() const;

  at::Tensor view(const std::string& key) const;  // zero-copy, stored dtype
  void release(const std::string& key) const;     // drop the key's pages (see SafetensorsReader)

 private:
  std::vector<std::shared_ptr<io::SafetensorsReader>> readers_;
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;  // key -> items_ position
};

}  // namespace dreambooth::checkpoint
