#include "dreambooth/core/cpu_allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include "dreambooth/core/huge_pages.h"

namespace dreambooth {
namespace {

constexpr size_t kSmallGranule = size_t{64} << 10;

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Requests from 4 MiB up are rounded to whole huge pages, smaller ones to 64 KiB: at most 1/3 wasted.
size_t block_size_for(size_t bytes) {
  return bytes >= 2 * kHugePageBytes ? round_up(bytes, kHugePageBytes) : round_up(bytes, kSmallGranule);
}

// A reused block may be this much larger than the request (sizes recur exactly from step to step; a bit of
// slack lets close sizes share).
bool fits(size_t block, size_t wanted) { return block >= wanted && block - wanted <= wanted / 8; }

// Blocks from one huge page up start on a huge-page boundary; smaller ones are plain mappings.
void* map_block(size_t size) {
  if (size >= kHugePageBytes) return map_huge_page_aligned(size);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// One lock for the registry of live blocks and every allocator's cache: requests are >= 1 MiB, so it is
// taken rarely next to the work done on the memory.
std::mutex& allocator_mutex() {
  static auto* mutex = new std::mutex();
  return *mutex;
}

}  // namespace

struct CachingCpuAllocator::State {
  using Block = std::pair<void*, size_t>;
  using Lru = std::list<Block>;  // free blocks, least recently freed first

  CpuAllocatorOptions options;
  Lru free_blocks;
  std::multimap<size_t, Lru::iterator> free_by_size;
  CpuAllocatorStats stats;
  bool orphaned = false;  // the allocator is gone: returned blocks are unmapped at once

  // The methods below are called with the mutex held; the blocks they return are unmapped after it is
  // released.

  // A free block for `wanted` bytes, or {nullptr, 0}.
  Block reuse(size_t wanted) {
    auto it = free_by_size.lower_bound(wanted);
    if (it == free_by_size.end() || !fits(it->first, wanted)) return {nullptr, 0};
    const Block block = *it->second;
    free_blocks.erase(it->second);
    free_by_size.erase(it);
    stats.bytes_cached -= static_cast<int64_t>(block.second);
    stats.blocks_reused++;
    return block;
  }

  std::vector<Block> evict_oldest_while(const std::function<bool()>& too_much) {
    std::vector<Block> evicted;
    while (!free_blocks.empty() && too_much()) {
      const Block oldest = free_blocks.front();
      for (auto it = free_by_size.find(oldest.second); it != free_by_size.end(); ++it)
        if (it->second == free_blocks.begin()) {
          free_by_size.erase(it);
          break;
        }
      free_blocks.pop_front();
      stats.bytes_cached -= static_cast<int64_t>(oldest.second);
      evicted.push_back(oldest);
    }
    return evicted;
  }

  // Before mapping `size` fresh bytes: the cache gives way so that the memory held (in use + cached) stays
  // within the most the program has had in use at once. A free block that no longer fits anything is
  // worth less than the RSS it pins.
  std::vector<Block> make_room_for(size_t size) {
    const int64_t fresh = static_cast<int64_t>(size);
    const int64_t ceiling = std::max(stats.peak_bytes_in_use, stats.bytes_in_use + fresh);
    return evict_oldest_while([&] { return stats.bytes_in_use + stats.bytes_cached + fresh > ceiling; });
  }

  void note_in_use(size_t size) {
    stats.bytes_in_use += static_cast<int64_t>(size);
    stats.peak_bytes_in_use = std::max(stats.peak_bytes_in_use, stats.bytes_in_use);
  }

  std::vector<Block> take_back(void* block, size_t size) {
    stats.bytes_in_use -= static_cast<int64_t>(size);
    if (orphaned) return {{block, size}};
    free_blocks.emplace_back(block, size);
    free_by_size.emplace(size, std::prev(free_blocks.end()));
    stats.bytes_cached += static_cast<int64_t>(size);
    const auto limit = static_cast<int64_t>(options.cache_limit_bytes);
    return evict_oldest_while([&] { return stats.bytes_cached > limit; });
  }

  // Everything free goes back, and the peak restarts from what is in use now (a new phase).
  std::vector<Block> take_all_free() {
    std::vector<Block> all(free_blocks.begin(), free_blocks.end());
    free_blocks.clear();
    free_by_size.clear();
    stats.bytes_cached = 0;
    stats.peak_bytes_in_use = stats.bytes_in_use;
    return all;
  }
};

namespace {

struct LiveBlock {
  std::shared_ptr<CachingCpuAllocator::State> owner;
  size_t size;
};

std::unordered_map<void*, LiveBlock>& live_blocks() {
  static auto* blocks = new std::unordered_map<void*, LiveBlock>();
  return *blocks;
}

void unmap_all(const std::vector<std::pair<void*, size_t>>& blocks) {
  for (const auto& [block, size] : blocks) munmap(block, size);
}

// The deleter of every block this allocator hands out, and its raw_deleter: a pointer it does not know
// came from the default allocator.
void free_block(void* ptr) {
  if (!ptr) return;
  std::vector<std::pair<void*, size_t>> to_unmap;
  bool ours = false;
  {
    std::lock_guard<std::mutex> lock(allocator_mutex());
    auto it = live_blocks().find(ptr);
    if (it != live_blocks().end()) {
      ours = true;
      LiveBlock live = std::move(it->second);
      live_blocks().erase(it);
      to_unmap = live.owner->take_back(ptr, live.size);
    }
  }
  if (!ours) {
    c10::GetDefaultCPUAllocator()->raw_deleter()(ptr);
    return;
  }
  unmap_all(to_unmap);
}

}  // namespace

CachingCpuAllocator::CachingCpuAllocator(CpuAllocatorOptions options) : state_(std::make_shared<State>()) {
  state_->options = options;
}

CachingCpuAllocator::~CachingCpuAllocator() {
  std::vector<std::pair<void*, size_t>> to_unmap;
  {
    std::lock_guard<std::mutex> lock(allocator_mutex());
    state_->orphaned = true;
    to_unmap = state_->take_all_free();
  }
  unmap_all(to_unmap);
}

c10::DataPtr CachingCpuAllocator::allocate(size_t bytes) const {
  if (bytes < state_->options.min_cached_bytes) return c10::GetDefaultCPUAllocator()->allocate(bytes);
  const size_t wanted = block_size_for(bytes);
  State::Block block;
  std::vector<State::Block> evicted;
  {
    std::lock_guard<std::mutex> lock(allocator_mutex());
    block = state_->reuse(wanted);
    if (!block.first) evicted = state_->make_room_for(wanted);
  }
  unmap_all(evicted);
  const bool fresh = !block.first;
  if (fresh) {
    block = {map_block(wanted), wanted};
    if (!block.first) {  // the cache may hold what the OS no longer has
      release_cached();
      block.first = map_block(wanted);
    }
    TORCH_CHECK(block.first, "out of memory: cannot allocate ", bytes, " bytes of CPU memory");
  }
  {
    std::lock_guard<std::mutex> lock(allocator_mutex());
    live_blocks().emplace(block.first, LiveBlock{state_, block.second});
    state_->note_in_use(block.second);
    if (fresh) state_->stats.blocks_mapped++;
  }
  return {block.first, block.first, &free_block, c10::Device(c10::DeviceType::CPU)};
}

c10::DataPtr CachingCpuAllocator::allocate(size_t bytes) { return std::as_const(*this).allocate(bytes); }

void CachingCpuAllocator::copy_data(void* dest, const void* src, size_t count) const {
  if (count > 0) std::memcpy(dest, src, count);
}

c10::DeleterFnPtr CachingCpuAllocator::raw_deleter() const { return &free_block; }

void CachingCpuAllocator::release_cached() const {
  std::vector<std::pair<void*, size_t>> to_unmap;
  {
    std::lock_guard<std::mutex> lock(allocator_mutex());
    to_unmap = state_->take_all_free();
  }
  unmap_all(to_unmap);
}

CpuAllocatorStats CachingCpuAllocator::stats() const {
  std::lock_guard<std::mutex> lock(allocator_mutex());
  return state_->stats;
}

namespace {

CachingCpuAllocator* installed = nullptr;

}  // namespace

bool install_caching_cpu_allocator() {
  static const bool active = [] {
    const char* off = std::getenv("DREAMBOOTH_CPU_CACHE");
    if (off && std::string(off) == "0") return false;
    CpuAllocatorOptions options;
    if (const char* mb = std::getenv("DREAMBOOTH_CPU_CACHE_MB"); mb && *mb)
      options.cache_limit_bytes = static_cast<size_t>(std::strtoull(mb, nullptr, 10)) << 20;
    installed = new CachingCpuAllocator(options);  // never deleted: tensors may be freed at exit
    c10::SetCPUAllocator(installed, /*priority=*/1);
    return true;
  }();
  return active;
}

CpuAllocatorStats cpu_allocator_stats() { return installed ? installed->stats() : CpuAllocatorStats{}; }

void release_cached_cpu_memory() {
  if (installed) installed->release_cached();
}

}  // namespace dreambooth
