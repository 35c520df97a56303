// The device the parity tests run their models on: the CPU unless DREAMBOOTH_TEST_DEVICE names another
// (e.g. `DREAMBOOTH_TEST_DEVICE=cuda ctest -L parity` on a CUDA machine). Results are compared on the CPU.
#pragma once

#include <c10/core/Device.h>

namespace dreambooth::testing {

// On CUDA, TF32 is switched off so that float32 means float32, as in the reference.
c10::Device test_device();

}  // namespace dreambooth::testing
