// Test-only weight loading: fills every parameter of a module from a safetensors file whose keys are
// the module's parameter names. (The product's strict checkpoint loader lives in io/checkpoint.)
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <torch/nn/module.h>

namespace dreambooth::testing {

// Fails (listing them) on missing, unexpected or mis-shaped keys; converts dtypes.
::testing::AssertionResult load_module_weights(torch::nn::Module& module, const std::filesystem::path& file);

}  // namespace dreambooth::testing
