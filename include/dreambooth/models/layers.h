// Leaf layers shared by every model. Unlike torch::nn's, they allocate their parameters without
// initialising them: a checkpoint overwrites them anyway, and initialising ~1B parameters only to
// discard them costs seconds on every load. `init_random_weights` (init.h) fills them for `init`.
//
// Parameters are registered as "weight"/"bias", so parent modules yield diffusers' key names.
#pragma once

#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace dreambooth::models {

// While one is alive, the layers constructed on this thread put their parameters on the meta device:
// every name and shape, no memory. For counting and listing the parameters of real-size models
// (SD1.5's UNet would otherwise take 3.4 GB). Such a module cannot run.
class MetaParameterScope {
 public:
  MetaParameterScope();
  ~MetaParameterScope();
  MetaParameterScope(const MetaParameterScope&) = delete;
  MetaParameterScope& operator=(const MetaParameterScope&) = delete;

 private:
  bool previous_;
};

// A side path added to a Linear's or Conv2d's output: y = layer(x) + adapter->delta(x) (a LoRA adapter,
// see lora/adapter.h). The adapter is not a registered child, so the layer's parameters and key names
// stay those of the base model. No adapter (the default) costs one null test per call.
class LayerAdapter {
 public:
  virtual ~LayerAdapter() = default;
  // x: the layer's input -> a tensor of the layer's output shape.
  virtual torch::Tensor delta(const torch::Tensor& x) = 0;
  // The tensors delta() reads that may train.
  virtual std::vector<torch::Tensor> adapter_parameters() const = 0;
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features;
  int64_t out_features;
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined
  std::shared_ptr<LayerAdapter> adapter;  // null: none
};
TORCH_MODULE(Linear);

class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
             int64_t padding = 0, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_channels;
  int64_t out_channels;
  int64_t kernel_size;
  int64_t stride;
  int64_t padding;
  torch::Tensor weight;  // [out, in, k, k]
  torch::Tensor bias;
  std::shared_ptr<LayerAdapter> adapter;  // null: none
  // Set by prepack_convolutions (models/onednn_prepack.h) for CPU inference: oneDNN's own copies of weight
  // and bias, used instead of them from then on.
  torch::Tensor packed_weight;
  torch::Tensor packed_bias;
};
TORCH_MODULE(Conv2d);

// The parameters of the adapters attached to `module` and its descendants' Linear/Conv2d layers: not
// module.parameters() (adapters are no children), but what a piece of the model also trains, e.g. for
// gradient checkpointing, which must be told every tensor its recomputation produces gradients for.
std::vector<torch::Tensor> attached_adapter_parameters(const torch::nn::Module& module);

class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t num_groups;
  int64_t num_channels;
  double eps;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(GroupNorm);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t dim;
  double eps;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids);

  int64_t num_embeddings;
  int64_t dim;
  torch::Tensor weight;  // [num, dim]
};
TORCH_MODULE(Embedding);

}  // namespace dreambooth::models
