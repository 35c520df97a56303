// This process's resident memory, as the kernel reports it (Linux /proc/self/status; 0 elsewhere).
#pragma once

#include <cstdint>

namespace dreambooth {

struct ProcessMemory {
  int64_t resident_bytes = 0;       // VmRSS
  int64_t peak_resident_bytes = 0;  // VmHWM: the high-water mark since the process started
};

ProcessMemory process_memory();

}  // namespace dreambooth
