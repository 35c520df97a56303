#include "dreambooth/core/process_memory.h"

#include "dreambooth/core/cpu_allocator.h"

#include <cstdio>
#include <cstring>

#if defined(__GLIBC__) && __has_include(<malloc.h>)
#include <malloc.h>
#define DREAMBOOTH_HAS_MALLOC_TRIM 1
#endif

namespace dreambooth {

ProcessMemory process_memory() {
  ProcessMemory memory;
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (!status) return memory;
  char line[256];
  long long kib = 0;
  while (std::fgets(line, sizeof line, status)) {
    if (std::sscanf(line, "VmRSS: %lld kB", &kib) == 1) memory.resident_bytes = kib * 1024;
    if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) memory.peak_resident_bytes = kib * 1024;
  }
  std::fclose(status);
  return memory;
}

void return_free_memory_to_os() {
  release_cached_cpu_memory();
#ifdef DREAMBOOTH_HAS_MALLOC_TRIM
  malloc_trim(0);
#endif
}

}  // namespace dreambooth
