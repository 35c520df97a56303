#include "dreambooth/models/layers.h"

#include <torch/torch.h>

namespace dreambooth::models {

namespace {
thread_local bool meta_parameters = false;

torch::Tensor uninitialised(at::IntArrayRef shape) {
  return torch::empty(shape, meta_parameters ? torch::TensorOptions(torch::kMeta) : torch::TensorOptions());
}
}  // namespace

MetaParameterScope::MetaParameterScope() : previous_(meta_parameters) { meta_parameters = true; }
MetaParameterScope::~MetaParameterScope() { meta_parameters = previous_; }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = register_parameter("weight", uninitialised({out, in}));
  if (with_bias) bias = register_parameter("bias", uninitialised({out}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::linear(x, weight, bias);
  return adapter ? y + adapter->delta(x) : y;
}

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, bool with_bias)
    : in_channels(in), out_channels(out), kernel_size(k), stride(s), padding(p) {
  weight = register_parameter("weight", uninitialised({out, in, k, k}));
  if (with_bias) bias = register_parameter("bias", uninitialised({out}));
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
  if (packed_weight.defined()) {
    // oneDNN tensors in and out: only the activation is converted, the weight already is.
    return at::mkldnn_convolution(x.to_mkldnn(), packed_weight, packed_bias, {padding, padding}, {stride, stride},
                                  {1, 1}, 1)
        .to_dense();
  }
  torch::Tensor y = torch::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
  return adapter ? y + adapter->delta(x) : y;
}

std::vector<torch::Tensor> attached_adapter_parameters(const torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  auto collect = [&out](const torch::nn::Module& m) {
    const LayerAdapter* adapter = nullptr;
    if (const auto* linear = dynamic_cast<const LinearImpl*>(&m)) adapter = linear->adapter.get();
    if (const auto* conv = dynamic_cast<const Conv2dImpl*>(&m)) adapter = conv->adapter.get();
    if (!adapter) return;
    for (const torch::Tensor& p : adapter->adapter_parameters()) out.push_back(p);
  };
  collect(module);
  for (const auto& child : module.modules(/*include_self=*/false)) collect(*child);
  return out;
}

GroupNormImpl::GroupNormImpl(int64_t groups, int64_t channels, double e)
    : num_groups(groups), num_channels(channels), eps(e) {
  weight = register_parameter("weight", uninitialised({channels}));
  bias = register_parameter("bias", uninitialised({channels}));
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) {
  return torch::group_norm(x, num_groups, weight, bias, eps);
}

LayerNormImpl::LayerNormImpl(int64_t d, double e) : dim(d), eps(e) {
  weight = register_parameter("weight", uninitialised({d}));
  bias = register_parameter("bias", uninitialised({d}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {dim}, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t d) : num_embeddings(num), dim(d) {
  weight = register_parameter("weight", uninitialised({num, d}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

}  // namespace dreambooth::models
