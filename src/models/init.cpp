#include "dreambooth/models/init.h"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "dreambooth/models/layers.h"

namespace dreambooth::models {

namespace {


// Draws on the CPU in float32, then copies into the parameter (any device or dtype).
void fill_uniform(torch::Tensor& p, double bound, at::Generator& gen) {
  p.copy_(torch::empty(p.sizes(), torch::kFloat).uniform_(-bound, bound, gen));
}

void fill_normal(torch::Tensor& p, double std, at::Generator& gen) {
  p.copy_(torch::empty(p.sizes(), torch::kFloat).normal_(0.0, std, gen));
}

void init_affine_linear(torch::Tensor& weight, torch::Tensor& bias, int64_t fan_in, at::Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  fill_uniform(weight, bound, gen);
  if (bias.defined()) fill_uniform(bias, bound, gen);
}

}  // namespace

void init_random_weights(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    torch::nn::Module* m = item.value().get();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(named_seed(seed, item.key()));
    if (auto* linear = dynamic_cast<LinearImpl*>(m)) {
      if (linear->weight.is_meta()) continue;
      init_affine_linear(linear->weight, linear->bias, linear->in_features, gen);
    } else if (auto* conv = dynamic_cast<Conv2dImpl*>(m)) {
      if (conv->weight.is_meta()) continue;
      init_affine_linear(conv->weight, conv->bias, conv->in_channels * conv->kernel_size * conv->kernel_size, gen);
    } else if (auto* group_norm = dynamic_cast<GroupNormImpl*>(m)) {
      if (group_norm->weight.is_meta()) continue;
      group_norm->weight.fill_(1.0);
      group_norm->bias.fill_(0.0);
    } else if (auto* layer_norm = dynamic_cast<LayerNormImpl*>(m)) {
      if (layer_norm->weight.is_meta()) continue;
      layer_norm->weight.fill_(1.0);
      layer_norm->bias.fill_(0.0);
    } else if (auto* embedding = dynamic_cast<EmbeddingImpl*>(m)) {
      if (embedding->weight.is_meta()) continue;
      fill_normal(embedding->weight, 0.02, gen);
    }
  }
}

uint64_t named_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (h | 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace dreambooth::models
