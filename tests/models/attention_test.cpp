// The chunked attention (forward and its recomputing backward) equals the plain full-matrix math.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/models/attention.h"
#include "support/tensor_close.h"

namespace dm = dreambooth::models;

namespace {

// float64 inputs: the paths differ only by summation order, far below this.
constexpr double kFloat64Tolerance = 1e-12;
// float32 inputs of unit scale, scores summed over d <= 64.
constexpr double kFloat32Tolerance = 2e-6;
// bfloat16 outputs (8-bit mantissa) of values below ~3.
constexpr double kBFloat16Tolerance = 3e-2;

struct Inputs {
  at::Tensor q, k, v;
};

Inputs random_inputs(int64_t b, int64_t h, int64_t lq, int64_t lk, int64_t d, int64_t dv, torch::Dtype dtype,
                     uint64_t seed) {
  torch::manual_seed(seed);
  const auto options = torch::TensorOptions().dtype(dtype);
  return {torch::randn({b, h, lq, d}, options) * 2, torch::randn({b, h, lk, d}, options) * 2,
          torch::randn({b, h, lk, dv}, options)};
}

dm::AttentionOptions with(dm::AttentionBackend backend, bool causal, int64_t chunk = 0) {
  dm::AttentionOptions o;
  o.backend = backend;
  o.causal = causal;
  o.query_chunk = chunk;
  return o;
}

}  // namespace

TEST(Attention, ChunkedForwardEqualsMath) {
  torch::NoGradGuard no_grad;
  for (bool causal : {false, true}) {
    for (int64_t chunk : {1, 7, 16, 0}) {
      const int64_t lk = causal ? 23 : 77;
      Inputs in = random_inputs(2, 3, 23, lk, 8, 5, torch::kDouble, 1);
      at::Tensor expected = dm::attention(in.q, in.k, in.v, with(dm::AttentionBackend::Math, causal));
      at::Tensor actual = dm::attention(in.q, in.k, in.v, with(dm::AttentionBackend::Chunked, causal, chunk));
      EXPECT_TENSOR_CLOSE(actual, expected, kFloat64Tolerance,
                          "causal=" + std::to_string(causal) + " chunk=" + std::to_string(chunk));
    }
  }
}

TEST(Attention, ChunkedFloat32EqualsMathOnNonContiguousHeads) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  // [B, L, H*d] projections viewed as heads, as the models call it.
  const at::Tensor q = dm::split_heads(torch::randn({2, 64, 4 * 16}), 4);
  const at::Tensor k = dm::split_heads(torch::randn({2, 40, 4 * 16}), 4);
  const at::Tensor v = dm::split_heads(torch::randn({2, 40, 4 * 16}), 4);
  ASSERT_FALSE(q.is_contiguous());
  at::Tensor expected = dm::attention(q, k, v, with(dm::AttentionBackend::Math, false));
  at::Tensor actual = dm::attention(q, k, v, with(dm::AttentionBackend::Chunked, false, 10));
  EXPECT_TENSOR_CLOSE(actual, expected, kFloat32Tolerance, "float32");
  EXPECT_EQ(dm::merge_heads(actual).sizes(), (std::vector<int64_t>{2, 64, 64}));
}

TEST(Attention, ChunkedGradientsEqualMath) {
  for (bool causal : {false, true}) {
    for (int64_t chunk : {1, 5, 0}) {
      const int64_t lk = causal ? 13 : 19;
      Inputs a = random_inputs(2, 2, 13, lk, 6, 4, torch::kDouble, 3);
      Inputs b = {a.q.clone(), a.k.clone(), a.v.clone()};
      for (Inputs* in : {&a, &b}) {
        in->q.requires_grad_(true);
        in->k.requires_grad_(true);
        in->v.requires_grad_(true);
      }
      const at::Tensor weights = torch::randn({2, 2, 13, 4}, torch::kDouble);
      (dm::attention(a.q, a.k, a.v, with(dm::AttentionBackend::Math, causal)) * weights).sum().backward();
      at::Tensor out = dm::attention(b.q, b.k, b.v, with(dm::AttentionBackend::Chunked, causal, chunk));
      ASSERT_NE(out.grad_fn(), nullptr);
      (out * weights).sum().backward();
      const std::string label = " causal=" + std::to_string(causal) + " chunk=" + std::to_string(chunk);
      EXPECT_TENSOR_CLOSE(b.q.grad(), a.q.grad(), kFloat64Tolerance, "dq" + label);
      EXPECT_TENSOR_CLOSE(b.k.grad(), a.k.grad(), kFloat64Tolerance, "dk" + label);
      EXPECT_TENSOR_CLOSE(b.v.grad(), a.v.grad(), kFloat64Tolerance, "dv" + label);
    }
  }
}

TEST(Attention, ChunkedGradcheck) {
  Inputs in = random_inputs(1, 2, 6, 6, 3, 2, torch::kDouble, 4);
  in.q.requires_grad_(true);
  in.k.requires_grad_(true);
  in.v.requires_grad_(true);
  // Finite differences against the custom backward, through a second (non-recomputing) path too.
  const double h = 1e-6;
  auto f = [&](const at::Tensor& q) {
    return dm::attention(q, in.k, in.v, with(dm::AttentionBackend::Chunked, true, 4)).sum();
  };
  f(in.q).backward();
  torch::NoGradGuard no_grad;
  at::Tensor numeric = torch::zeros_like(in.q);
  for (int64_t i = 0; i < in.q.numel(); ++i) {
    at::Tensor plus = in.q.detach().clone(), minus = in.q.detach().clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    numeric.view(-1)[i] = (f(plus) - f(minus)).item<double>() / (2 * h);
  }
  EXPECT_TENSOR_CLOSE(in.q.grad(), numeric, 1e-7, "dq vs finite differences");
}

TEST(Attention, UpcastBFloat16MatchesMath) {
  torch::NoGradGuard no_grad;
  Inputs in = random_inputs(1, 2, 32, 32, 16, 16, torch::kBFloat16, 5);
  dm::AttentionOptions math = with(dm::AttentionBackend::Math, false);
  dm::AttentionOptions chunked = with(dm::AttentionBackend::Chunked, false, 8);
  math.upcast = chunked.upcast = true;
  at::Tensor expected = dm::attention(in.q, in.k, in.v, math);
  at::Tensor actual = dm::attention(in.q, in.k, in.v, chunked);
  EXPECT_EQ(actual.scalar_type(), torch::kBFloat16);
  EXPECT_TENSOR_CLOSE(actual, expected, kBFloat16Tolerance, "bf16 upcast");
  // And both stay close to the float64 truth.
  at::Tensor truth = dm::attention(in.q.to(torch::kDouble), in.k.to(torch::kDouble), in.v.to(torch::kDouble),
                                   with(dm::AttentionBackend::Math, false));
  EXPECT_TENSOR_CLOSE(actual, truth, kBFloat16Tolerance, "bf16 upcast vs float64");
}

TEST(Attention, BlockSizeKeepsScoresUnderBudget) {
  // SD1.5 at 512x512 with classifier-free guidance: batch 2 x 8 heads, 4096 x 4096 float32 scores (1 GiB).
  dm::AttentionOptions o;
  const int64_t block = dm::attention_queries_per_block(o, 16, 4096, 4096, 4);
  EXPECT_GE(block, 1);
  EXPECT_LT(block, 4096);
  EXPECT_LE(block * 16 * 4096 * 4, o.max_score_bytes);
  EXPECT_EQ(dm::attention_queries_per_block(o, 2, 77, 77, 4), 77);  // small problems run in one block
  o.query_chunk = 100;
  EXPECT_EQ(dm::attention_queries_per_block(o, 2, 77, 77, 4), 77);
}

TEST(Attention, SdpaMatchesMathWhereAvailable) {
  Inputs in = random_inputs(2, 2, 17, 17, 8, 8, torch::kDouble, 6);
  if (!dm::sdpa_available()) {
    EXPECT_THROW(dm::attention(in.q, in.k, in.v, with(dm::AttentionBackend::Sdpa, false)), c10::Error);
    GTEST_SKIP() << "LibTorch without scaled_dot_product_attention";
  }
  for (bool causal : {false, true}) {
    EXPECT_TENSOR_CLOSE(dm::attention(in.q, in.k, in.v, with(dm::AttentionBackend::Sdpa, causal)),
                        dm::attention(in.q, in.k, in.v, with(dm::AttentionBackend::Math, causal)), kFloat64Tolerance,
                        "sdpa causal=" + std::to_string(causal));
  }
}
