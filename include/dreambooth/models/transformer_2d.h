// Attention blocks of the UNet (and the VAE's mid-block attention), with diffusers' parameter names:
// Attention (to_q/to_k/to_v/to_out.0[, group_norm]), GEGLU, FeedForward (net.0.proj, net.2),
// BasicTransformerBlock (norm1, attn1, norm2, attn2, norm3, ff) and Transformer2DModel
// (norm, proj_in, transformer_blocks.N, proj_out).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/attention.h"
#include "dreambooth/models/layers.h"

namespace dreambooth::models {

struct AttentionConfig {
  int64_t query_dim = 0;
  int64_t context_dim = 0;  // keys/values come from a context of this width; 0: self-attention
  int64_t heads = 1;
  int64_t head_dim = 0;
  bool qkv_bias = false;
  bool upcast = false;       // q, k and scores in float32 for fp16/bf16 inputs
  int64_t norm_groups = 0;   // > 0: a GroupNorm "group_norm" for forward_image (VAE mid-block)
  double norm_eps = 1e-6;
};

// diffusers' Attention: project, attend per head, project back (to_out.0 always has a bias).
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionConfig& config);
  // x [B, L, query_dim], context [B, Lc, context_dim] (undefined: self-attention) -> [B, L, query_dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = {});
  // Self-attention over the pixels of an image with group_norm and a residual (the VAE's mid-block):
  // x [B, C, H, W] -> [B, C, H, W]
  at::Tensor forward_image(const at::Tensor& x);

  GroupNorm group_norm{nullptr};
  Linear to_q{nullptr};
  Linear to_k{nullptr};
  Linear to_v{nullptr};
  // [0] = Linear(heads*head_dim, query_dim); diffusers keeps a Dropout at [1]
  torch::nn::ModuleList to_out{nullptr};

 private:
  Linear out_proj_{nullptr};
  AttentionConfig config_;
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

// h, gate = proj(x).chunk(2); h * gelu(gate) (exact erf GELU).
class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  at::Tensor forward(const at::Tensor& x);  // [..., dim_in] -> [..., dim_out]

  Linear proj{nullptr};  // [2*dim_out, dim_in]
};
TORCH_MODULE(GEGLU);

// net.0 = GEGLU(dim, 4*dim), net.1 = diffusers' Dropout (an Identity here), net.2 = Linear(4*dim, dim).
class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(int64_t dim);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::ModuleList net{nullptr};

 private:
  GEGLU geglu_{nullptr};
  Linear out_{nullptr};
};
TORCH_MODULE(FeedForward);

struct TransformerConfig {
  int64_t channels = 0;       // = heads * head_dim
  int64_t heads = 8;
  int64_t context_dim = 768;  // cross_attention_dim
  int64_t layers = 1;         // transformer_layers_per_block
  int64_t norm_groups = 32;
  bool linear_projection = false;  // SD2: Linear proj_in/out on the flattened pixels; SD1: 1x1 convs
  bool upcast = false;
  int64_t head_dim() const { return channels / heads; }
};

// Pre-LN: x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)).
class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const TransformerConfig& config);
  // x [B, L, C], context [B, Lc, context_dim] -> [B, L, C]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

  LayerNorm norm1{nullptr};
  Attention attn1{nullptr};
  LayerNorm norm2{nullptr};
  Attention attn2{nullptr};
  LayerNorm norm3{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// GroupNorm -> proj_in -> transformer blocks over the H*W pixels -> proj_out -> + input.
class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const TransformerConfig& config);
  // x [B, C, H, W], context [B, Lc, context_dim] -> [B, C, H, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

  GroupNorm norm{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};

 private:
  // Exactly one kind is registered under "proj_in"/"proj_out".
  Conv2d proj_in_conv_{nullptr}, proj_out_conv_{nullptr};
  Linear proj_in_linear_{nullptr}, proj_out_linear_{nullptr};
};
TORCH_MODULE(Transformer2DModel);

}  // namespace dreambooth::models
