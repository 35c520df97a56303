#include "dreambooth/models/transformer_2d.h"

#include <torch/torch.h>

namespace dreambooth::models {

AttentionImpl::AttentionImpl(const AttentionConfig& config) : config_(config) {
  const int64_t inner = config.heads * config.head_dim;
  const int64_t context_dim = config.context_dim > 0 ? config.context_dim : config.query_dim;
  if (config.norm_groups > 0)
    group_norm = register_module("group_norm", GroupNorm(config.norm_groups, config.query_dim, config.norm_eps));
  to_q = register_module("to_q", Linear(config.query_dim, inner, config.qkv_bias));
  to_k = register_module("to_k", Linear(context_dim, inner, config.qkv_bias));
  to_v = register_module("to_v", Linear(context_dim, inner, config.qkv_bias));
  out_proj_ = Linear(inner, config.query_dim);
  to_out = register_module("to_out", torch::nn::ModuleList(out_proj_));
  options_.upcast = config.upcast;
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const at::Tensor& source = context.defined() ? context : x;
  // [B, L, H*d] -> [B, H, L, d]
  const at::Tensor q = split_heads(to_q(x), config_.heads);
  const at::Tensor k = split_heads(to_k(source), config_.heads);
  const at::Tensor v = split_heads(to_v(source), config_.heads);
  // [B, H, L, d] -> [B, L, H*d]
  return out_proj_(merge_heads(attention(q, k, v, options_)));
}

at::Tensor AttentionImpl::forward_image(const at::Tensor& x) {
  TORCH_CHECK(group_norm, "Attention::forward_image needs a group_norm (norm_groups > 0)");
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  // [B, C, H, W] -> [B, C, H*W] -> [B, H*W, C]
  at::Tensor pixels = group_norm(x).view({b, c, h * w}).transpose(1, 2).contiguous();
  pixels = forward(pixels);
  // [B, H*W, C] -> [B, C, H*W] -> [B, C, H, W]
  return pixels.transpose(1, 2).reshape({b, c, h, w}) + x;
}

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", Linear(dim_in, 2 * dim_out));
}

at::Tensor GEGLUImpl::forward(const at::Tensor& x) {
  // [..., 2*dim_out] -> 2 x [..., dim_out]
  auto halves = proj(x).chunk(2, -1);
  return halves[0] * torch::gelu(halves[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim) {
  geglu_ = GEGLU(dim, 4 * dim);
  out_ = Linear(4 * dim, dim);
  net = register_module("net", torch::nn::ModuleList(geglu_, torch::nn::Identity(), out_));
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x) { return out_(geglu_(x)); }

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const TransformerConfig& c) {
  const int64_t dim = c.channels;
  norm1 = register_module("norm1", LayerNorm(dim, 1e-5));
  attn1 = register_module("attn1", Attention(AttentionConfig{dim, 0, c.heads, c.head_dim(), false, c.upcast}));
  norm2 = register_module("norm2", LayerNorm(dim, 1e-5));
  attn2 = register_module("attn2",
                          Attention(AttentionConfig{dim, c.context_dim, c.heads, c.head_dim(), false, c.upcast}));
  norm3 = register_module("norm3", LayerNorm(dim, 1e-5));
  ff = register_module("ff", FeedForward(dim));
}

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  at::Tensor h = attn1(norm1(x)) + x;
  h = attn2(norm2(h), context) + h;
  return ff(norm3(h)) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(const TransformerConfig& c) {
  const int64_t dim = c.channels;
  norm = register_module("norm", GroupNorm(c.norm_groups, dim, 1e-6));
  if (c.linear_projection) {
    proj_in_linear_ = register_module("proj_in", Linear(dim, dim));
  } else {
    proj_in_conv_ = register_module("proj_in", Conv2d(dim, dim, 1));
  }
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) transformer_blocks->push_back(BasicTransformerBlock(c));
  if (c.linear_projection) {
    proj_out_linear_ = register_module("proj_out", Linear(dim, dim));
  } else {
    proj_out_conv_ = register_module("proj_out", Conv2d(dim, dim, 1));
  }
}

at::Tensor Transformer2DModelImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor hidden = norm(x);

  // --- proj_in, flatten: [B, C, H, W] -> [B, H*W, C]
  if (proj_in_conv_) {
    hidden = proj_in_conv_(hidden).permute({0, 2, 3, 1}).reshape({b, h * w, c});
  } else {
    hidden = proj_in_linear_(hidden.permute({0, 2, 3, 1}).reshape({b, h * w, c}));
  }

  // --- transformer blocks: [B, H*W, C]
  for (size_t i = 0; i < transformer_blocks->size(); ++i)
    hidden = transformer_blocks->ptr<BasicTransformerBlockImpl>(i)->forward(hidden, context);

  // --- proj_out, unflatten: [B, H*W, C] -> [B, H, W, C] -> [B, C, H, W]
  if (proj_out_conv_) {
    hidden = proj_out_conv_(hidden.reshape({b, h, w, c}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format()));
  } else {
    // [B, H, W, C] permuted is already channels-last: a copy only when the model runs NCHW.
    hidden = proj_out_linear_(hidden).reshape({b, h, w, c}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());
  }
  return hidden + x;
}

}  // namespace dreambooth::models
