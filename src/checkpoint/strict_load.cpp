#include "dreambooth/checkpoint/strict_load.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <torch/torch.h>

#include "dreambooth/checkpoint/chunked_read.h"
#include "dreambooth/core/error.h"

namespace dreambooth::checkpoint {
namespace {

void append_list(std::string& out, const char* label, const std::vector<std::string>& items) {
  if (items.empty()) return;
  if (!out.empty()) out += "; ";
  out += std::to_string(items.size()) + " " + label + ": ";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
}

// Destination memory is fresh (the layers allocate without touching it), and first-touch page faults
// one 4 KiB page at a time dominate loading on some virtual machines (~20 us each). Populating the
// range in one call first is ~10x cheaper there (a hint, ignored by kernels before 5.14). Huge pages
// (MADV_HUGEPAGE) were measured slower: compaction stalls cost more than the faults saved.
void prepare_destination(const at::Tensor& destination) {
  if (!destination.device().is_cpu() || !destination.is_contiguous()) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(destination.data_ptr());
  const uintptr_t end = begin + static_cast<uintptr_t>(destination.numel()) * destination.element_size();
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = end / page * page;
  if (last <= first) return;
  // Faulting in fresh pages dominates loading on virtual machines; 2 MiB pages make 512 times fewer
  // faults (transparent huge pages are often enabled for madvise'd ranges only).
  const uintptr_t huge = uintptr_t{2} << 20;
  const uintptr_t huge_first = (begin + huge - 1) / huge * huge;
  const uintptr_t huge_last = end / huge * huge;
#ifdef MADV_HUGEPAGE
  if (huge_last > huge_first) ::madvise(reinterpret_cast<void*>(huge_first), huge_last - huge_first, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
#endif
}

constexpr uint64_t kMaxReadGap = uint64_t{1} << 20;  // unused bytes read through rather than seeking

// A run of a stored tensor's flat (row-major) elements that is one whole destination parameter: stored
// elements [first, first + flat.numel()) go to `flat`.
struct FlatTarget {
  at::Tensor flat;
  int64_t first = 0;
};

// The destinations of a stored tensor as runs of its elements, found by splitting a storage-less (meta)
// tensor of the stored shape; empty when some part or destination is not contiguous.
std::vector<FlatTarget> flat_targets(const StoredTensor& stored, const io::SafetensorsEntry& entry,
                                     const ParameterMap& parameters) {
  at::Tensor probe = at::empty(entry.shape, at::TensorOptions().dtype(entry.scalar_type).device(c10::kMeta));
  std::vector<at::Tensor> parts = split_stored(stored, probe);
  std::vector<FlatTarget> out;
  for (size_t p = 0; p < parts.size(); ++p) {
    const at::Tensor& destination = parameters.at(stored.diffusers_keys[p]);
    if (!parts[p].is_contiguous() || !destination.is_contiguous() || destination.numel() != parts[p].numel())
      return {};
    out.push_back({destination.detach().view(-1), parts[p].storage_offset()});
  }
  return out;
}

// Converts one piece of a stored tensor (whole elements, in the chunk buffer) into the destinations it
// overlaps.
void copy_piece(const ChunkPiece& piece, const unsigned char* chunk, const io::SafetensorsEntry& entry,
                const std::vector<FlatTarget>& targets) {
  const auto element_size = static_cast<uint64_t>(c10::elementSize(entry.scalar_type));
  const auto first = static_cast<int64_t>(piece.range_offset / element_size);
  const auto count = static_cast<int64_t>(piece.bytes / element_size);
  const unsigned char* bytes = chunk + piece.chunk_offset;
  const auto options = at::TensorOptions().dtype(entry.scalar_type).device(c10::kCPU);
  at::Tensor source;
  if (reinterpret_cast<uintptr_t>(bytes) % element_size == 0) {
    source = at::from_blob(const_cast<unsigned char*>(bytes), {count}, options);
  } else {  // a file whose tensors are not aligned to their element size
    source = at::empty({count}, options);
    std::memcpy(source.data_ptr(), bytes, piece.bytes);
  }
  for (const FlatTarget& target : targets) {
    const int64_t begin = std::max(first, target.first);
    const int64_t end = std::min(first + count, target.first + target.flat.numel());
    if (begin < end) target.flat.narrow(0, begin - target.first, end - begin).copy_(source.narrow(0, begin - first, end - begin));
  }
}

}  // namespace

void KeyProblems::append(const KeyProblems& other) {
  missing.insert(missing.end(), other.missing.begin(), other.missing.end());
  unexpected.insert(unexpected.end(), other.unexpected.begin(), other.unexpected.end());
  misshaped.insert(misshaped.end(), other.misshaped.begin(), other.misshaped.end());
}

std::string KeyProblems::summary() const {
  std::string out;
  append_list(out, "missing", missing);
  append_list(out, "unexpected", unexpected);
  append_list(out, "mis-shaped", misshaped);
  return out;
}

void throw_if_problems(const KeyProblems& problems, const std::string& file, const std::string& hint) {
  if (problems.empty()) return;
  throw model_error(file, "does not fit the model: " + problems.summary(), hint);
}

ComponentPlan bind_plan(const ComponentPlan& plan, const WeightFiles& files, const KeyMap* aliases,
                        KeyProblems& problems) {
  ComponentPlan bound;
  bound.reserve(plan.size());
  for (const StoredTensor& planned : plan) {
    std::string found_key;
    if (files.find(planned.key)) found_key = planned.key;
    if (aliases) {
      if (auto alias = aliases->to_ldm(planned.key); alias && files.find(alias->key)) {
        if (!found_key.empty()) {
          problems.unexpected.push_back(alias->key + " (a second copy of " + planned.key + ")");
          continue;
        }
        found_key = alias->key;
      }
    }
    if (found_key.empty()) {
      problems.missing.push_back(planned.key);
      continue;
    }
    const io::SafetensorsEntry* entry = files.find(found_key);
    if (!stored_shape_fits(planned, entry->shape)) {
      problems.misshaped.push_back(found_key + " " + shape_string(entry->shape) + " (expected " +
                                   shape_string(planned.shape) + ")");
      continue;
    }
    const bool floating = c10::isFloatingType(entry->scalar_type);
    if (!floating) {
      problems.misshaped.push_back(found_key + " stored as " + entry->dtype + " (expected a floating-point type)");
      continue;
    }
    StoredTensor b = planned;
    b.key = found_key;
    bound.push_back(std::move(b));
  }
  return bound;
}

void load_parameters(const ComponentPlan& plan, const WeightFiles& files, const ParameterMap& parameters,
                     const std::string& component, const ReadBuffers& buffers) {
  // The tables and the modules describe the same tensors; any difference is our bug.
  std::set<std::string> planned;
  KeyProblems internal;
  for (const auto& stored : plan)
    for (const auto& key : stored.diffusers_keys) {
      planned.insert(key);
      auto it = parameters.find(key);
      if (it == parameters.end())
        internal.unexpected.push_back(key);
      else if (it->second.sizes().vec() != stored.diffusers_shape)
        internal.misshaped.push_back(key + " " + shape_string(it->second.sizes().vec()) + " (table " +
                                     shape_string(stored.diffusers_shape) + ")");
    }
  for (const auto& [key, _] : parameters)
    if (!planned.count(key)) internal.missing.push_back(key);
  if (!internal.empty())
    throw Error(ErrorKind::Runtime,
                component + ": the key table and the module disagree (a bug): " + internal.summary());

  torch::NoGradGuard no_grad;
  // Where each stored tensor's elements go; tensors whose parts are not runs of its elements are
  // copied whole through the mapping instead (none with today's transforms).
  std::vector<ByteRange> ranges;
  std::vector<std::vector<FlatTarget>> targets(plan.size());
  std::vector<size_t> whole;
  for (size_t i = 0; i < plan.size(); ++i) {
    const WeightFiles::Item* item = files.item(plan[i].key);
    targets[i] = flat_targets(plan[i], *item->entry, parameters);
    if (targets[i].empty()) {
      whole.push_back(i);
      continue;
    }
    ranges.push_back({item->file, item->entry->begin, item->entry->end,
                      static_cast<uint64_t>(c10::elementSize(item->entry->scalar_type)), i});
  }
  // Large sequential reads one chunk ahead of the copies: a cold file arrives about twice as fast as
  // through page faults on the mapping, and the conversion overlaps the reading.
  const auto& readers = files.readers();
  ChunkStream stream(plan_read_chunks(std::move(ranges), buffers.chunk_bytes, kMaxReadGap), buffers.chunk_bytes,
                     buffers.count,
                     [&](const ReadChunk& chunk, unsigned char* destination) {
                       readers[chunk.file]->read_data(chunk.begin, destination, chunk.end - chunk.begin);
                     },
                     [&](const ReadChunk& chunk) {
                       readers[chunk.file]->prefetch_data(chunk.begin, chunk.end - chunk.begin);
                     },
                     static_cast<size_t>(buffers.prefetch_bytes / std::max<uint64_t>(buffers.chunk_bytes, 1)));

  // Zeroing fresh pages is much of the cost of loading; the kernel does it in the faulting thread, so
  // fault the destinations in from all threads first (while the reader fills the buffers and hints
  // the following chunks to the page cache). Measured: 0.85 s best with it, 1.10 s without.
  std::vector<at::Tensor> destinations;
  destinations.reserve(parameters.size());
  for (const auto& [key, tensor] : parameters) destinations.push_back(tensor);
  at::parallel_for(0, static_cast<int64_t>(destinations.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) prepare_destination(destinations[static_cast<size_t>(i)]);
  });

  while (const unsigned char* data = stream.next())
    for (const ChunkPiece& piece : stream.current().pieces)
      copy_piece(piece, data, *files.item(plan[piece.id].key)->entry, targets[piece.id]);
  for (size_t i : whole) {
    std::vector<at::Tensor> parts = split_stored(plan[i], files.view(plan[i].key));
    for (size_t p = 0; p < parts.size(); ++p) parameters.at(plan[i].diffusers_keys[p]).copy_(parts[p]);
    files.release(plan[i].key);
  }
}

}  // namespace dreambooth::checkpoint
