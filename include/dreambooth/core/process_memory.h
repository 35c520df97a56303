// This process's resident memory, as the kernel reports it (Linux /proc/self/status; 0 elsewhere).
#pragma once

#include <cstdint>

namespace dreambooth {

struct ProcessMemory {
  int64_t resident_bytes = 0;       // VmRSS
  int64_t peak_resident_bytes = 0;  // VmHWM: the high-water mark since the process started
};

ProcessMemory process_memory();

// Hands the allocators' free but still resident pages back to the kernel: the caching CPU allocator's
// cache (core/cpu_allocator.h) and glibc's free heap pages (malloc_trim). Worth it between phases: large tensors bypass the heap (mmap), so heap pages freed by one
// phase would otherwise stay resident beside the next phase's fresh mappings.
void return_free_memory_to_os();

}  // namespace dreambooth
