// A caching allocator for large CPU tensors.
//
// Why: every large tensor the default allocator hands out is a fresh mmap, and its first touch page-faults
// each 4 KiB page in. On the VMs we run on that costs ~15 us per page: a fresh 64 MB attention buffer
// took 265 ms to fill against 11 ms for the same bmm into a reused one. A sampler step or a training step
// allocates the same sizes again and again, so keeping freed large blocks for reuse removes those faults,
// and new blocks are 2 MiB aligned and advised for transparent huge pages (one fault per 2 MiB).
//
// Small requests go to LibTorch's default allocator. Free blocks are kept only while the memory held (in
// use + cached) stays within the most the program has had in use at once: before mapping a fresh block,
// the least recently freed blocks go back to the OS. So the resident peak is the default allocator's, while
// a loop that allocates the same sizes each iteration runs without page faults. release_cached_cpu_memory()
// empties the cache and restarts that peak, for a new phase with a smaller working set (e.g. after loading).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <c10/core/Allocator.h>

namespace dreambooth {

struct CpuAllocatorStats {
  int64_t blocks_mapped = 0;  // fresh blocks taken from the OS
  int64_t blocks_reused = 0;  // requests served from the cache
  int64_t bytes_in_use = 0;   // large blocks held by tensors
  int64_t bytes_cached = 0;   // large free blocks kept for reuse
  int64_t peak_bytes_in_use = 0;  // since the last release_cached()
};

struct CpuAllocatorOptions {
  size_t min_cached_bytes = size_t{1} << 20;  // smaller requests go to the default allocator
  size_t cache_limit_bytes = size_t{2} << 30;  // free blocks kept at most
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(CpuAllocatorOptions options = {});
  ~CachingCpuAllocator() override;
  CachingCpuAllocator(const CachingCpuAllocator&) = delete;
  CachingCpuAllocator& operator=(const CachingCpuAllocator&) = delete;

  // LibTorch 1.x declares allocate() const, 2.3+ non-const and adds copy_data(): both are defined so the
  // same class builds against either.
  c10::DataPtr allocate(size_t bytes) const;  // NOLINT(modernize-use-override)
  c10::DataPtr allocate(size_t bytes);        // NOLINT(modernize-use-override)
  void copy_data(void* dest, const void* src, size_t count) const;  // NOLINT(modernize-use-override)
  c10::DeleterFnPtr raw_deleter() const override;

  // munmaps every free block and restarts the peak from the bytes in use.
  void release_cached() const;
  CpuAllocatorStats stats() const;

  struct State;  // internal; named here because the deleter of live blocks shares it

 private:
  std::shared_ptr<State> state_;  // shared with the live blocks, which may outlive this object
};

// Makes a process-wide CachingCpuAllocator LibTorch's CPU allocator (once; later calls do nothing).
// DREAMBOOTH_CPU_CACHE=0 in the environment leaves the default allocator in place (for comparisons);
// DREAMBOOTH_CPU_CACHE_MB=N sets the cache limit. Returns whether the caching allocator is active.
bool install_caching_cpu_allocator();
// The installed allocator's statistics (all zero when none is installed).
CpuAllocatorStats cpu_allocator_stats();
// Empties the installed allocator's cache (nothing when none is installed).
void release_cached_cpu_memory();

}  // namespace dreambooth
