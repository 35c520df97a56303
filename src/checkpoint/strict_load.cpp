#include "dreambooth/checkpoint/strict_load.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <torch/torch.h>

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
                     const std::string& component) {
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

  // Read in file order: sequential I/O.
  std::vector<const StoredTensor*> order;
  for (const auto& stored : plan) order.push_back(&stored);
  std::unordered_map<const StoredTensor*, std::pair<size_t, uint64_t>> position;
  for (const auto* stored : order) {
    size_t file = 0;
    const auto& all = files.files();
    const auto& path = files.path_of(stored->key);
    while (file < all.size() && all[file] != path) ++file;
    position[stored] = {file, files.find(stored->key)->begin};
  }
  std::sort(order.begin(), order.end(),
            [&](const StoredTensor* a, const StoredTensor* b) { return position[a] < position[b]; });

  // Zeroing fresh pages is most of the cost of loading; the kernel does it in the faulting thread, so
  // fault the destinations in from all threads first.
  std::vector<at::Tensor> destinations;
  destinations.reserve(parameters.size());
  for (const auto& [key, tensor] : parameters) destinations.push_back(tensor);
  at::parallel_for(0, static_cast<int64_t>(destinations.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) prepare_destination(destinations[static_cast<size_t>(i)]);
  });

  torch::NoGradGuard no_grad;
  for (const StoredTensor* stored : order) {
    std::vector<at::Tensor> parts = split_stored(*stored, files.view(stored->key));
    for (size_t p = 0; p < parts.size(); ++p) parameters.at(stored->diffusers_keys[p]).copy_(parts[p]);
    files.release(stored->key);
  }
}

}  // namespace dreambooth::checkpoint
