// Convolution weights prepacked for oneDNN, for CPU inference. A plain conv2d call reorders its weight
// into oneDNN's blocked layout on every call; for the UNet's deep 1280-channel levels, whose activations
// are tiny, that reorder is most of the time (measured on 2 cores: a 1280->1280 3x3 convolution on a 4x4
// activation takes 524 ms plain and 31 ms prepacked, with identical results).
#pragma once

#include <cstdint>

#include <torch/nn/module.h>

namespace dreambooth::models {

struct PrepackSummary {
  int layers = 0;     // convolutions now running prepacked
  int64_t bytes = 0;  // of their packed weights
};

// Whether this LibTorch can (built with oneDNN) and the environment lets it (DREAMBOOTH_PREPACK=0 does not).
bool prepack_available();

// Packs every float32 CPU Conv2d of `module` without an adapter, then releases the dense weights and biases
// (the layer keeps only the packed copies, so memory does not grow). Inference only, and one way: the
// module can no longer be trained, saved, moved or given adapters. Does nothing when !prepack_available().
PrepackSummary prepack_convolutions(torch::nn::Module& module);

}  // namespace dreambooth::models
