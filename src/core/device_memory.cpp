#include "dreambooth/core/device_memory.h"

#if DREAMBOOTH_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace dreambooth {

std::optional<int64_t> peak_device_memory_bytes(c10::Device device) {
#if DREAMBOOTH_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return static_cast<int64_t>(stats.reserved_bytes[0].peak);  // [0]: the aggregate over pool kinds
  }
#endif
  (void)device;
  return std::nullopt;
}

void reset_peak_device_memory(c10::Device device) {
#if DREAMBOOTH_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
  (void)device;
}

}  // namespace dreambooth
