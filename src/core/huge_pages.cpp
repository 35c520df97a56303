#include "dreambooth/core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace dreambooth {

void* map_huge_page_aligned(size_t bytes) {
  // Over-map by one huge page, then trim the unaligned head and the tail.
  const size_t span = bytes + kHugePageBytes;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (aligned > start) ::munmap(raw, aligned - start);
  const uintptr_t end = aligned + bytes;
  if (start + span > end) ::munmap(reinterpret_cast<void*>(end), start + span - end);
  void* block = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  ::madvise(block, bytes, MADV_HUGEPAGE);
#endif
  return block;
}

void unmap_pages(void* block, size_t bytes) {
  if (block) ::munmap(block, bytes);
}

}  // namespace dreambooth
