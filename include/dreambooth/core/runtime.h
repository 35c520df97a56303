// Process-wide runtime choices made once by the CLI: thread count and device.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace dreambooth {

// LibTorch defaults to one thread on some builds; 0 means "all cores".
int configure_threads(int requested);
int hardware_threads();

// "auto" | "cpu" | "cuda" | "cuda:N". Throws a usage error for anything else or a missing GPU.
c10::Device resolve_device(const std::string& spec);

// Waits for the device's queued work (CUDA runs asynchronously), so that host clocks time real work.
// Nothing to do on the CPU.
void synchronize(c10::Device device);

}  // namespace dreambooth
