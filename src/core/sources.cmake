list(APPEND DREAMBOOTH_SOURCES
  src/core/atomic_file.cpp
  src/core/config_reader.cpp
  src/core/cpu_allocator.cpp
  src/core/device_memory.cpp
  src/core/error.cpp
  src/core/huge_pages.cpp
  src/core/interrupt.cpp
  src/core/logging.cpp
  src/core/process_memory.cpp
  src/core/progress.cpp
  src/core/remove_tree.cpp
  src/core/runtime.cpp
  src/core/sha256.cpp
  src/core/torch_compat.cpp
)
