// safetensors: a memory-mapped, validated reader and an atomic writer.
//
// The reader never trusts the file: the header length, the JSON, every dtype, shape and offset are
// checked against the file size before any tensor byte is touched, and each failure is a one-line
// input error naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace dreambooth::io {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;             // as written in the file: "F32", "F16", "BF16", "I64", ...
  c10::ScalarType scalar_type;   // the LibTorch type of the stored bytes
  std::vector<int64_t> shape;
  uint64_t begin = 0;            // byte offsets relative to the start of the data section
  uint64_t end = 0;
  int64_t numel() const;
};

using Metadata = std::map<std::string, std::string>;

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::filesystem::path& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Entries in data order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const SafetensorsEntry& at(const std::string& name) const;  // input error if absent
  const Metadata& metadata() const { return metadata_; }
  uint64_t file_size() const { return file_size_; }

  // Zero-copy CPU tensor over the mapping in the stored dtype (copied only if misaligned). The mapping
  // stays alive as long as any view does. Writes to a view never reach the file (private mapping).
  at::Tensor view(const std::string& name) const;
  // A new tensor in `dtype` on `device`, converted from the stored bytes.
  at::Tensor load(const std::string& name, c10::ScalarType dtype, c10::Device device = c10::kCPU) const;
  // Copies into an existing tensor (any dtype/device), converting; the shapes must match exactly.
  void load_into(const std::string& name, at::Tensor& destination) const;
  // Hints the kernel to drop this tensor's pages: keeps peak RSS near the size of the loaded model.
  void release(const std::string& name) const;
  // Copies `bytes` bytes of the data section, from `offset` (relative to the data section, like the
  // entries' offsets), with pread() instead of through the mapping: one large sequential read from a
  // cold page cache is about twice as fast as faulting the same pages in. An input error if the file
  // shrank since it was opened.
  void read_data(uint64_t offset, void* destination, uint64_t bytes) const;
  // Asks the kernel to start reading these bytes of the data section into the page cache and returns
  // (posix_fadvise WILLNEED): the disk keeps streaming while the caller is busy with earlier bytes.
  void prefetch_data(uint64_t offset, uint64_t bytes) const;

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
  uint64_t file_size_ = 0;
  uint64_t data_start_ = 0;
};

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

// Writes atomically (temporary file + rename). Tensors may live on any device; they are copied to the
// CPU one at a time so the writer never holds a second copy of the whole model. With `floating_dtype`,
// floating-point tensors are converted to it one at a time as they are written (integer tensors keep
// their type).
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const Metadata& metadata = {},
                       std::optional<c10::ScalarType> floating_dtype = std::nullopt);

// "F32" etc. for a LibTorch dtype; throws for types safetensors cannot hold.
std::string safetensors_dtype_name(c10::ScalarType type);

}  // namespace dreambooth::io
