// Helpers shared by the checkpoint tests: random weights for a description and single files written
// straight through the key tables (without our metadata, as other tools write them).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/source.h"
#include "dreambooth/io/safetensors.h"

namespace dreambooth::testing {

// Tolerance of comparisons that must be bit-identical (layout conversions move bytes, never compute).
inline constexpr double kExact = 0.0;

// Seeded random tensors (diffusers names) with the shapes a description implies.
inline checkpoint::PerComponent<checkpoint::TensorMap> random_model_tensors(const checkpoint::ModelDescription& d,
                                                                            uint64_t seed) {
  torch::manual_seed(seed);
  checkpoint::PerComponent<checkpoint::TensorMap> out;
  for (auto c : checkpoint::kAllComponents)
    for (const auto& spec : checkpoint::component_tensors(d, c)) out[c][spec.key] = torch::randn(spec.shape);
  return out;
}

// The LDM-layout tensors of a model (no metadata), plus any extras.
inline std::vector<io::NamedTensor> ldm_tensors(const checkpoint::ModelDescription& d,
                                                const checkpoint::PerComponent<checkpoint::TensorMap>& tensors) {
  std::vector<io::NamedTensor> out;
  for (auto c : checkpoint::kAllComponents)
    for (const auto& stored : checkpoint::component_plan(d, c, checkpoint::Layout::SingleFile)) {
      std::vector<at::Tensor> parts;
      for (const auto& key : stored.diffusers_keys) parts.push_back(tensors[c].at(key));
      out.push_back({stored.key, checkpoint::join_stored(stored, parts).contiguous()});
    }
  return out;
}

// Every tensor of a safetensors file by name.
inline std::map<std::string, at::Tensor> read_all(const std::filesystem::path& path) {
  io::SafetensorsReader reader(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : reader.entries()) out[e.name] = reader.view(e.name).clone();
  return out;
}

}  // namespace dreambooth::testing

namespace dreambooth::testing {

// A full-size checkpoint without allocating it: the header of an LDM single file (float16, no
// metadata) followed by a hole of the right size (a sparse file reading as zeros).
inline void write_sparse_single_file(const std::filesystem::path& path,
                                     const std::vector<io::SafetensorsEntry>& entries) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const uint64_t bytes = static_cast<uint64_t>(e.numel()) * 2;
    header[e.name] = {{"dtype", "F16"}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  {
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  std::filesystem::resize_file(path, 8 + text.size() + offset);
}

inline std::vector<io::SafetensorsEntry> ldm_entries(const checkpoint::ModelDescription& d) {
  std::vector<io::SafetensorsEntry> out;
  for (auto c : checkpoint::kAllComponents)
    for (const auto& stored : checkpoint::component_plan(d, c, checkpoint::Layout::SingleFile)) {
      io::SafetensorsEntry e;
      e.name = stored.key;
      e.shape = stored.shape;
      out.push_back(e);
    }
  return out;
}

}  // namespace dreambooth::testing
