#include "dreambooth/core/runtime.h"

#include <thread>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth {

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int configure_threads(int requested) {
  if (requested < 0) throw usage_error("--threads must be >= 0, got " + std::to_string(requested), "0 = all cores");
  int n = requested == 0 ? hardware_threads() : requested;
  torch::set_num_threads(n);
  return n;
}

c10::Device resolve_device(const std::string& spec) {
  if (spec == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(spec.substr(5), &used);
        if (used != spec.size() - 5 || index < 0) throw std::invalid_argument(spec);
      } catch (const std::exception&) {
        throw usage_error("--device " + spec + " is not a device", "use auto, cpu, cuda or cuda:N");
      }
    }
    if (!torch::cuda::is_available())
      throw usage_error("--device " + spec + " asked for CUDA but no CUDA device is available",
                        "use --device cpu, or a LibTorch build with CUDA");
    if (index >= static_cast<int>(torch::cuda::device_count()))
      throw usage_error("--device " + spec + ": only " + std::to_string(torch::cuda::device_count()) +
                        " CUDA device(s) present");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw usage_error("--device " + spec + " is not a device", "use auto, cpu, cuda or cuda:N");
}

void synchronize(c10::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace dreambooth
