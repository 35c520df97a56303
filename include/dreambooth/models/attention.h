// Scaled dot-product attention: the one op behind CLIP's self-attention, the UNet's self/cross-attention
// and the VAE's mid-block attention.
//
// Layout: q [B, H, Lq, d], k [B, H, Lk, d], v [B, H, Lk, dv] -> [B, H, Lq, dv]; scale 1/sqrt(d).
// (split_heads gives this layout as a view of a [B, L, H*d] projection; merge_heads undoes it.)
//
// Backends:
// - Sdpa: at::scaled_dot_product_attention (LibTorch >= 2.0 only).
// - Chunked: the queries are processed in blocks so one block of scores stays under a byte budget; a
//   512x512 image's 4096x4096 scores are never held at once. With autograd it runs as one custom
//   function whose backward recomputes each block's probabilities from the saved log-sum-exp (the
//   flash-attention backward), so training does not keep the score matrix either.
// - Math: the whole score matrix with plain autograd; the reference the others are tested against.
// Auto picks Sdpa where it exists, else Chunked. Softmax runs in at least float32.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace dreambooth::models {

enum class AttentionBackend { Auto, Math, Chunked, Sdpa };

struct AttentionOptions {
  bool causal = false;  // query i attends to keys 0..i (self-attention, Lq == Lk)
  bool upcast = false;  // fp16/bf16 inputs: q, k and the scores in float32 (SD2.1's upcast_attention)
  AttentionBackend backend = AttentionBackend::Auto;
  // Chunked: budget for one block of scores (the probabilities take a second block). Larger blocks are not
  // faster on CPU: the time goes into first touches of fresh memory, not into the per-block overhead.
  int64_t max_score_bytes = int64_t{32} << 20;
  int64_t query_chunk = 0;  // Chunked: queries per block; 0 = derived from the budget
};

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const AttentionOptions& options = {});

// Chunked: how many queries one block holds for [batch_heads, lq, lk] scores of `element_bytes` each.
int64_t attention_queries_per_block(const AttentionOptions& options, int64_t batch_heads, int64_t lq, int64_t lk,
                                    int64_t element_bytes);

// True when this build has at::scaled_dot_product_attention.
bool sdpa_available();

// [B, L, H*d] -> [B, H, L, d] (a view of a contiguous projection).
at::Tensor split_heads(const at::Tensor& x, int64_t heads);
// [B, H, L, d] -> [B, L, H*d] (contiguous).
at::Tensor merge_heads(const at::Tensor& x);

}  // namespace dreambooth::models
