// Random initialisation of a freshly built model (`dreambooth init`), roughly as the reference
// initialisers do it: Linear/Conv2d weights and biases uniform in +-1/sqrt(fan_in) (kaiming-uniform with
// a = sqrt(5)), GroupNorm/LayerNorm weight 1 and bias 0, Embedding normal(0, 0.02) (CLIP).
//
// Deterministic for a seed: each layer draws from its own CPU generator seeded from the seed and the
// layer's dotted name, so the values depend neither on the device nor on the other layers.
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>

namespace dreambooth::models {

void init_random_weights(torch::nn::Module& module, uint64_t seed);

// A per-tensor seed from a run seed and a stable name (FNV-1a of the name mixed in with splitmix64): a
// tensor's draw depends only on these two, not on which other tensors exist. Same on every platform.
uint64_t named_seed(uint64_t seed, const std::string& name);

}  // namespace dreambooth::models
