// Anonymous memory laid out for transparent huge pages: it starts on a 2 MiB boundary and is advised
// MADV_HUGEPAGE, so first touches fault 2 MiB at a time instead of 4 KiB (on some virtual machines a
// 4 KiB first-touch fault costs ~15-20 us).
#pragma once

#include <cstddef>

namespace dreambooth {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` (any size) of fresh zeroed memory starting on a huge-page boundary; nullptr when the OS refuses.
void* map_huge_page_aligned(size_t bytes);
// Gives back memory from map_huge_page_aligned (the same `bytes`).
void unmap_pages(void* block, size_t bytes);

}  // namespace dreambooth
