// Whole-model parameter listings. Both work on modules built under a MetaParameterScope (layers.h),
// so real-size models can be described without allocating them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace dreambooth::models {

int64_t count_parameters(const torch::nn::Module& module);

// Dotted name (diffusers/transformers key) -> shape, for every parameter.
std::map<std::string, std::vector<int64_t>> parameter_shapes(const torch::nn::Module& module);

}  // namespace dreambooth::models
