// Peak memory the CUDA caching allocator has reserved on a device (what nvidia-smi shows for the
// process, minus the CUDA context). Empty on the CPU and in builds without CUDA.
#pragma once

#include <cstdint>
#include <optional>

#include <c10/core/Device.h>

namespace dreambooth {

std::optional<int64_t> peak_device_memory_bytes(c10::Device device);
void reset_peak_device_memory(c10::Device device);

}  // namespace dreambooth
