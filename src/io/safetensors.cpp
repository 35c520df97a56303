#include "dreambooth/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;  // the format's own limit

struct DtypeRow {
  const char* name;
  c10::ScalarType type;
  int size;
};

// The stored types LibTorch can hold. FP8 and unsigned 16/32/64-bit are refused by name.
constexpr DtypeRow kDtypes[] = {
    {"F64", c10::kDouble, 8}, {"F32", c10::kFloat, 4}, {"F16", c10::kHalf, 2},   {"BF16", c10::kBFloat16, 2},
    {"I64", c10::kLong, 8},   {"I32", c10::kInt, 4},   {"I16", c10::kShort, 2},  {"I8", c10::kChar, 1},
    {"U8", c10::kByte, 1},    {"BOOL", c10::kBool, 1},
};

const DtypeRow* find_dtype(const std::string& name) {
  for (const auto& row : kDtypes)
    if (name == row.name) return &row;
  return nullptr;
}

const DtypeRow* find_dtype(c10::ScalarType type) {
  for (const auto& row : kDtypes)
    if (type == row.type) return &row;
  return nullptr;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct SafetensorsReader::Mapping {
  void* base = nullptr;
  size_t size = 0;
  int fd = -1;  // kept open for read_data()
  ~Mapping() {
    if (base && base != MAP_FAILED) ::munmap(base, size);
    if (fd >= 0) ::close(fd);
  }
};

SafetensorsReader::SafetensorsReader(const fs::path& path) : path_(path) {
  const std::string file = path.string();
  const std::string hint = "the file is truncated or not a safetensors file; re-download or re-export it";

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw input_error(file, "no such file", "check the path");
    throw input_error(file, std::string("cannot open: ") + std::strerror(errno));
  }
  mapping_ = std::make_shared<Mapping>();
  mapping_->fd = fd;  // closed with the mapping, on every path
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw input_error(file, "not a regular file");
  file_size_ = static_cast<uint64_t>(st.st_size);
  if (file_size_ < 8)
    throw input_error(file, "file has " + std::to_string(file_size_) + " bytes, fewer than the 8-byte header length", hint);
  // Private and writable: a caller that writes into a view gets its own page, never the file's.
  mapping_->base = ::mmap(nullptr, file_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (mapping_->base == MAP_FAILED) {
    mapping_->base = nullptr;
    throw input_error(file, std::string("cannot map file: ") + std::strerror(errno));
  }
  mapping_->size = file_size_;
  const auto* bytes = static_cast<const unsigned char*>(mapping_->base);

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderBytes)
    throw input_error(file, "header length " + std::to_string(header_size) + " exceeds the 100 MB limit", hint);
  if (header_size > file_size_ - 8)
    throw input_error(file, "header length " + std::to_string(header_size) + " runs past the end of the " +
                                std::to_string(file_size_) + "-byte file", hint);
  data_start_ = 8 + header_size;
  const uint64_t data_size = file_size_ - data_start_;

  // Reject duplicate top-level names: JSON parsers silently keep the last one.
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key) {
      std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size, on_event);
  } catch (const nlohmann::json::exception& e) {
    throw input_error(file, "header is not valid JSON (" + std::string(e.what()) + ")", hint);
  }
  if (!duplicate.empty()) throw input_error(file, "header names tensor '" + duplicate + "' twice", hint);
  if (!header.is_object()) throw input_error(file, "header is not a JSON object", hint);

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) throw input_error(file, "__metadata__ is not an object", hint);
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string())
          throw input_error(file, "__metadata__ value '" + m.key() + "' is not a string", hint);
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!value.is_object()) throw input_error(file, where + " is not an object", hint);
    auto dtype_it = value.find("dtype");
    auto shape_it = value.find("shape");
    auto offsets_it = value.find("data_offsets");
    if (dtype_it == value.end() || !dtype_it->is_string())
      throw input_error(file, where + " has no string 'dtype'", hint);
    if (shape_it == value.end() || !shape_it->is_array())
      throw input_error(file, where + " has no 'shape' array", hint);
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2)
      throw input_error(file, where + " has no 'data_offsets' pair", hint);

    SafetensorsEntry entry;
    entry.name = name;
    entry.dtype = dtype_it->get<std::string>();
    const DtypeRow* row = find_dtype(entry.dtype);
    if (!row)
      throw input_error(file, where + " has unsupported dtype '" + entry.dtype + "'",
                        "supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
    entry.scalar_type = row->type;

    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *shape_it) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw input_error(file, where + " has a shape entry that is not a non-negative integer", hint);
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
      numel *= dim;
      entry.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : *offsets_it)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw input_error(file, where + " has data_offsets that are not non-negative integers", hint);
    entry.begin = (*offsets_it)[0].get<uint64_t>();
    entry.end = (*offsets_it)[1].get<uint64_t>();
    if (entry.begin > entry.end)
      throw input_error(file, where + " has data_offsets that end before they begin", hint);
    if (entry.end > data_size)
      throw input_error(file, where + " ends at byte " + std::to_string(entry.end) + " of a " +
                                  std::to_string(data_size) + "-byte data section", hint);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / row->size ||
        numel * row->size != entry.end - entry.begin)
      throw input_error(file, where + " has shape " + shape_string(entry.shape) + " of " + entry.dtype + " but " +
                                  std::to_string(entry.end - entry.begin) + " bytes of data", hint);
    entries_.push_back(std::move(entry));
  }

  // The data section must be covered exactly once, in order, with no holes or overlaps.
  std::sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const auto& entry : entries_) {
    if (entry.begin < expected)
      throw input_error(file, "tensor '" + entry.name + "' overlaps the previous tensor's data", hint);
    if (entry.begin > expected)
      throw input_error(file, "bytes " + std::to_string(expected) + ".." + std::to_string(entry.begin) +
                                  " before tensor '" + entry.name + "' belong to no tensor", hint);
    expected = entry.end;
  }
  if (expected != data_size)
    throw input_error(file, "the data section has " + std::to_string(data_size) + " bytes but the tensors cover " +
                                std::to_string(expected), hint);
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

SafetensorsReader::~SafetensorsReader() = default;

const SafetensorsEntry* SafetensorsReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const SafetensorsEntry& SafetensorsReader::at(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  if (!entry) throw input_error(path_.string(), "has no tensor '" + name + "'");
  return *entry;
}

at::Tensor SafetensorsReader::view(const std::string& name) const {
  const SafetensorsEntry& entry = at(name);
  auto* data = static_cast<unsigned char*>(mapping_->base) + data_start_ + entry.begin;
  const auto element_size = static_cast<uintptr_t>(c10::elementSize(entry.scalar_type));
  auto options = torch::TensorOptions().dtype(entry.scalar_type).device(torch::kCPU);
  if (entry.numel() == 0) return torch::empty(entry.shape, options);
  if (reinterpret_cast<uintptr_t>(data) % element_size != 0) {
    at::Tensor copy = torch::empty(entry.shape, options);
    std::memcpy(copy.data_ptr(), data, entry.end - entry.begin);
    return copy;
  }
  std::shared_ptr<Mapping> keep_alive = mapping_;
  return torch::from_blob(
      data, entry.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

at::Tensor SafetensorsReader::load(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
  at::Tensor stored = view(name);
  at::Tensor result = torch::empty(stored.sizes(), torch::TensorOptions().dtype(dtype).device(device));
  result.copy_(stored);
  return result;
}

void SafetensorsReader::load_into(const std::string& name, at::Tensor& destination) const {
  const SafetensorsEntry& entry = at(name);
  if (destination.sizes().vec() != entry.shape)
    throw input_error(path_.string(), "tensor '" + name + "' has shape " + shape_string(entry.shape) +
                                          ", expected " + shape_string(destination.sizes().vec()));
  torch::NoGradGuard no_grad;
  destination.copy_(view(name));
}

void SafetensorsReader::release(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  if (!entry) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto base = reinterpret_cast<uintptr_t>(mapping_->base);
  uintptr_t begin = base + data_start_ + entry->begin;
  uintptr_t end = base + data_start_ + entry->end;
  // Only whole pages inside this tensor, so a neighbour's bytes are never dropped mid-use.
  begin = (begin + page - 1) / page * page;
  end = end / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void SafetensorsReader::read_data(uint64_t offset, void* destination, uint64_t bytes) const {
  const uint64_t data_size = file_size_ - data_start_;
  if (offset > data_size || bytes > data_size - offset)
    throw Error(ErrorKind::Runtime, "SafetensorsReader::read_data: bytes " + std::to_string(offset) + ".." +
                                        std::to_string(offset + bytes) + " lie outside the data section of " +
                                        path_.string());
  auto* out = static_cast<unsigned char*>(destination);
  uint64_t done = 0;
  while (done < bytes) {
    const size_t ask = static_cast<size_t>(std::min<uint64_t>(bytes - done, uint64_t{1} << 30));
    const ssize_t got = ::pread(mapping_->fd, out + done, ask, static_cast<off_t>(data_start_ + offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw input_error(path_.string(), std::string("cannot read tensor data: ") + std::strerror(errno));
    if (got == 0)
      throw input_error(path_.string(),
                        "ended at byte " + std::to_string(data_start_ + offset + done) + " of the " +
                            std::to_string(file_size_) + " it had when opened",
                        "the file was truncated while loading; re-download or re-export it");
    done += static_cast<uint64_t>(got);
  }
}

void SafetensorsReader::prefetch_data(uint64_t offset, uint64_t bytes) const {
  ::posix_fadvise(mapping_->fd, static_cast<off_t>(data_start_ + offset), static_cast<off_t>(bytes),
                  POSIX_FADV_WILLNEED);  // only a hint: errors are ignored
}

std::string safetensors_dtype_name(c10::ScalarType type) {
  const DtypeRow* row = find_dtype(type);
  if (!row) throw Error(ErrorKind::Runtime, std::string("safetensors cannot store dtype ") + c10::toString(type));
  return row->name;
}

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata,
                       std::optional<c10::ScalarType> floating_dtype) {
  auto stored_type = [&](const at::Tensor& t) {
    return floating_dtype && c10::isFloatingType(t.scalar_type()) ? *floating_dtype : t.scalar_type();
  };
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second)
      throw Error(ErrorKind::Runtime, "write_safetensors: duplicate or reserved tensor name '" + name + "'");
    uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * c10::elementSize(stored_type(tensor));
    header[name] = {{"dtype", safetensors_dtype_name(stored_type(tensor))},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  // Pad with spaces so tensor data starts 8-byte aligned, as the reference writer does.
  header_text.append((8 - (8 + header_text.size()) % 8) % 8, ' ');

  AtomicFile file(path);
  std::ofstream& out = file.stream();
  uint64_t n = header_text.size();
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(length), 8);
  out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
  for (const auto& [name, tensor] : tensors) {
    at::Tensor cpu = tensor.detach().to(torch::kCPU, stored_type(tensor)).contiguous();
    out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(cpu.numel() * cpu.element_size()));
    if (!out) break;
  }
  file.commit();
}

}  // namespace dreambooth::io
