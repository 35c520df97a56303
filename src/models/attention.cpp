#include "dreambooth/models/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "dreambooth/core/torch_compat.h"

namespace dreambooth::models {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool is_reduced(const Tensor& t) { return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16; }

// Where the backward of the chunked path (and its forward under autograd) does its arithmetic.
c10::ScalarType accumulate_type(const Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// A reusable work area for [BH, n <= block, Lk] score blocks. Each call allocates its blocks once: a
// fresh large allocation is page-faulted in on first touch, which costs more than the arithmetic.
class BlockBuffer {
 public:
  BlockBuffer(int64_t batch_heads, int64_t block, int64_t lk, const at::TensorOptions& options)
      : data_(at::empty({batch_heads * block * lk}, options)), batch_heads_(batch_heads), lk_(lk) {}
  // The first n query rows, contiguous: [BH, n, Lk]
  Tensor rows(int64_t n) const { return data_.narrow(0, 0, batch_heads_ * n * lk_).view({batch_heads_, n, lk_}); }

 private:
  Tensor data_;
  int64_t batch_heads_;
  int64_t lk_;
};

// scores = q_block k^T with the keys after each query masked out when causal.
// q_block [BH, n, d] (already scaled), k_t [BH, d, Lk] -> scores [BH, n, Lk]
void block_scores(Tensor& scores, const Tensor& q_block, const Tensor& k_t, int64_t first_query, bool causal) {
  at::bmm_out(scores, q_block, k_t);
  if (causal) {
    // future[i][j]: key j comes after query first_query + i.
    Tensor future = at::ones({q_block.size(1), k_t.size(2)}, q_block.options().dtype(at::kBool)).triu_(first_query + 1);
    scores.masked_fill_(future, -std::numeric_limits<double>::infinity());
  }
}

// Inference: q3 [BH, Lq, d], k3 [BH, Lk, d], v3 [BH, Lk, dv] -> [BH, Lq, dv], one block of queries at a time.
Tensor chunked_forward(const Tensor& q3, const Tensor& k3, const Tensor& v3, double scale,
                       const AttentionOptions& options) {
  const bool upcast = options.upcast && is_reduced(q3);
  const Tensor q = (upcast ? q3.to(at::kFloat) : q3) * scale;  // scaling the queries is cheaper than the scores
  const Tensor k_t = (upcast ? k3.to(at::kFloat) : k3).transpose(1, 2);  // [BH, d, Lk]
  const int64_t bh = q.size(0), lq = q.size(1), lk = k_t.size(2);
  const int64_t block = attention_queries_per_block(options, bh, lq, lk, q.element_size());

  BlockBuffer scores(bh, block, lk, q.options());
  BlockBuffer probs(bh, block, lk, q.options().dtype(is_reduced(q) ? at::kFloat : q.scalar_type()));
  Tensor out = at::empty({bh, lq, v3.size(2)}, v3.options());
  for (int64_t first = 0; first < lq; first += block) {
    const int64_t n = std::min(block, lq - first);
    Tensor s = scores.rows(n);
    block_scores(s, q.narrow(1, first, n), k_t, first, options.causal);
    Tensor p = probs.rows(n);
    at::_softmax_out(p, is_reduced(s) ? s.to(at::kFloat) : s, -1, /*half_to_float=*/false);  // softmax in >= fp32
    Tensor out_block = out.narrow(1, first, n);
    at::bmm_out(out_block, p.scalar_type() == v3.scalar_type() ? p : p.to(v3.scalar_type()), v3);
  }
  return out;
}

// The chunked path under autograd. Forward keeps only the output and the per-query log-sum-exp of the
// scores; backward recomputes each block's probabilities from them. Arithmetic in float32 (double for
// double inputs), so fp16/bf16 training gets float32 softmax and accumulation.
struct ChunkedAttention : public torch::autograd::Function<ChunkedAttention> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q3, const Tensor& k3, const Tensor& v3, double scale,
                        bool causal, int64_t block) {
    const auto acc = accumulate_type(q3);
    const Tensor q = q3.to(acc) * scale, k_t = k3.to(acc).transpose(1, 2), v = v3.to(acc);
    const int64_t bh = q.size(0), lq = q.size(1), lk = k_t.size(2);
    BlockBuffer probs(bh, block, lk, q.options());
    Tensor out = at::empty({bh, lq, v.size(2)}, v.options());
    Tensor lse = at::empty({bh, lq, 1}, q.options());  // log sum_j exp(score_ij)
    for (int64_t first = 0; first < lq; first += block) {
      const int64_t n = std::min(block, lq - first);
      Tensor p = probs.rows(n);
      block_scores(p, q.narrow(1, first, n), k_t, first, causal);
      const Tensor row_max = std::get<0>(p.max(-1, /*keepdim=*/true));  // [BH, n, 1]
      p.sub_(row_max).exp_();
      Tensor row_sum = p.sum(-1, /*keepdim=*/true);
      p.div_(row_sum);
      lse.narrow(1, first, n).copy_(row_sum.log_().add_(row_max));
      Tensor out_block = out.narrow(1, first, n);
      at::bmm_out(out_block, p, v);
    }
    ctx->save_for_backward({q3, k3, v3, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["block"] = block;
    return out.to(v3.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool causal = ctx->saved_data["causal"].toBool();
    const int64_t block = ctx->saved_data["block"].toInt();
    const auto acc = accumulate_type(saved[0]);
    const Tensor q = saved[0].to(acc) * scale, k = saved[1].to(acc), v = saved[2].to(acc);  // q scaled
    const Tensor& out = saved[3];
    const Tensor& lse = saved[4];
    const Tensor grad_out = grad_outputs[0].to(acc).contiguous();  // [BH, Lq, dv]
    const Tensor k_t = k.transpose(1, 2), v_t = v.transpose(1, 2);
    // delta_i = sum_j p_ij dP_ij = <dO_i, O_i>
    const Tensor delta = (grad_out * out).sum(-1, /*keepdim=*/true);  // [BH, Lq, 1]

    const int64_t bh = q.size(0), lq = q.size(1), lk = k.size(1);
    BlockBuffer probs(bh, block, lk, q.options());
    BlockBuffer grad_scores(bh, block, lk, q.options());
    Tensor grad_q = at::empty_like(q);
    Tensor grad_k = at::zeros_like(k);
    Tensor grad_v = at::zeros_like(v);
    for (int64_t first = 0; first < lq; first += block) {
      const int64_t n = std::min(block, lq - first);
      const Tensor q_block = q.narrow(1, first, n);
      const Tensor grad_out_block = grad_out.narrow(1, first, n);
      Tensor p = probs.rows(n);
      block_scores(p, q_block, k_t, first, causal);
      p.sub_(lse.narrow(1, first, n)).exp_();                 // P  [BH, n, Lk]
      grad_v.baddbmm_(p.transpose(1, 2), grad_out_block);     // dV += P^T dO
      Tensor ds = grad_scores.rows(n);
      at::bmm_out(ds, grad_out_block, v_t);                   // dP = dO V^T  [BH, n, Lk]
      ds.sub_(delta.narrow(1, first, n)).mul_(p);             // dS = P * (dP - delta)
      Tensor grad_q_block = grad_q.narrow(1, first, n);
      at::bmm_out(grad_q_block, ds, k).mul_(scale);           // dQ = scale dS K
      grad_k.baddbmm_(ds.transpose(1, 2), q_block);           // dK += dS^T (scale Q)
    }
    return {grad_q.to(saved[0].scalar_type()), grad_k.to(saved[1].scalar_type()), grad_v.to(saved[2].scalar_type()),
            Tensor(), Tensor(), Tensor()};
  }
};

Tensor chunked_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                         const AttentionOptions& options) {
  const int64_t b = q.size(0), h = q.size(1), lq = q.size(2), lk = k.size(2);
  // [B, H, L, d] -> [B*H, L, d]
  const Tensor q3 = q.reshape({b * h, lq, q.size(3)});
  const Tensor k3 = k.reshape({b * h, lk, k.size(3)});
  const Tensor v3 = v.reshape({b * h, lk, v.size(3)});
  Tensor out;
  const bool needs_grad =
      torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (needs_grad) {
    const int64_t element_bytes = c10::elementSize(accumulate_type(q));
    out = ChunkedAttention::apply(q3, k3, v3, scale, options.causal,
                                  attention_queries_per_block(options, b * h, lq, lk, element_bytes));
  } else {
    out = chunked_forward(q3, k3, v3, scale, options);
  }
  return out.view({b, h, lq, v.size(3)});  // [B*H, Lq, dv] -> [B, H, Lq, dv]
}

Tensor math_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                      const AttentionOptions& options) {
  const bool upcast = options.upcast && is_reduced(q);
  Tensor scores = at::matmul(upcast ? q.to(at::kFloat) : q, (upcast ? k.to(at::kFloat) : k).transpose(-1, -2)) * scale;
  if (options.causal) {
    Tensor future = at::ones({q.size(2), k.size(2)}, q.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  }
  const auto softmax_type = is_reduced(scores) ? c10::optional<c10::ScalarType>(at::kFloat) : c10::nullopt;
  return at::matmul(at::softmax(scores, -1, softmax_type).to(v.scalar_type()), v);
}

#if DREAMBOOTH_HAS_SDPA
Tensor sdpa_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
  // The default scale of scaled_dot_product_attention is 1/sqrt(d), as here.
  if (options.upcast && is_reduced(q)) {
    return at::scaled_dot_product_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), {}, 0.0,
                                            options.causal)
        .to(v.scalar_type());
  }
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, options.causal);
}
#endif

}  // namespace

int64_t attention_queries_per_block(const AttentionOptions& options, int64_t batch_heads, int64_t lq, int64_t lk,
                                    int64_t element_bytes) {
  if (options.query_chunk > 0) return std::min(options.query_chunk, lq);
  const int64_t row_bytes = std::max<int64_t>(batch_heads * lk * element_bytes, 1);
  return std::clamp<int64_t>(options.max_score_bytes / row_bytes, 1, std::max<int64_t>(lq, 1));
}

bool sdpa_available() { return DREAMBOOTH_HAS_SDPA; }

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention expects [B, H, L, d] inputs");
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && k.size(0) == v.size(0) && k.size(1) == v.size(1),
              "attention: q, k and v disagree on batch or heads");
  TORCH_CHECK(q.size(3) == k.size(3) && k.size(2) == v.size(2), "attention: q/k head size or k/v length differ");
  TORCH_CHECK(!options.causal || q.size(2) == k.size(2), "attention: causal masking needs Lq == Lk");
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));

  AttentionBackend backend = options.backend;
  if (backend == AttentionBackend::Auto)
    backend = sdpa_available() ? AttentionBackend::Sdpa : AttentionBackend::Chunked;
  if (backend == AttentionBackend::Math) return math_attention(q, k, v, scale, options);
  if (backend == AttentionBackend::Sdpa) {
#if DREAMBOOTH_HAS_SDPA
    return sdpa_attention(q, k, v, options);
#else
    TORCH_CHECK(false, "attention: scaled_dot_product_attention needs LibTorch >= 2.0, this is ", TORCH_VERSION);
#endif
  }
  return chunked_attention(q, k, v, scale, options);
}

Tensor split_heads(const Tensor& x, int64_t heads) {
  const int64_t b = x.size(0), l = x.size(1);
  // [B, L, H*d] -> [B, L, H, d] -> [B, H, L, d]
  return x.reshape({b, l, heads, x.size(2) / heads}).transpose(1, 2);
}

Tensor merge_heads(const Tensor& x) {
  const int64_t b = x.size(0), h = x.size(1), l = x.size(2), d = x.size(3);
  // [B, H, L, d] -> [B, L, H, d] -> [B, L, H*d]
  return x.transpose(1, 2).reshape({b, l, h * d});
}

}  // namespace dreambooth::models
