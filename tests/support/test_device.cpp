#include "support/test_device.h"

#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "dreambooth/core/runtime.h"

namespace dreambooth::testing {

c10::Device test_device() {
  static const c10::Device device = [] {
    const char* env = std::getenv("DREAMBOOTH_TEST_DEVICE");
    const c10::Device chosen = resolve_device(env && *env ? env : "cpu");
    if (chosen.is_cuda()) {
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    return chosen;
  }();
  return device;
}

}  // namespace dreambooth::testing
