#include "dreambooth/core/process_memory.h"

#include <cstdio>
#include <cstring>

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

}  // namespace dreambooth
