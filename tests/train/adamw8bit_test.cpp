// 8-bit AdamW (--use-8bit-adam): the dynamic maps, blockwise quantization round trips, one step against
// torch::optim::AdamW, tracking fp32 AdamW on a quadratic, state size, and state through a checkpoint.
#include <cmath>
#include <cstdio>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/train/adamw8bit.h"
#include "dreambooth/train/optimizer.h"
#include "dreambooth/train/run_checkpoint.h"
#include "support/golden.h"
#include "support/tensor_close.h"

using namespace dreambooth;
using dreambooth::testing::TempDir;
using dreambooth::testing::max_abs_diff;

namespace {

// The signed map's extreme magnitude below 1: the midpoint of the last of 64 steps of [0.1, 1].
constexpr double kSignedMapMin = -(1.0 - 0.9 / 128);
// Codes are the nearest entries but for values within the float rounding of a midpoint (an ulp of 1).
constexpr double kMidpointRounding = 1.2e-7;
// On a fresh state both moments are exact, so the first step is AdamW's; only float rounding may differ.
constexpr double kFirstStepAtol = 1e-7;
// 50 steps of lr 0.05 on the noisy quadratic. The moments' relative resolution is coarse for elements
// far below their block's absmax (about 7% at 1/10 of it), and near the optimum Adam's steps are
// noise-driven, so single elements wander apart; the run as a whole must not: the loss stays within 5%
// of fp32 AdamW's at every step, the weights' RMS difference within 5% of the RMS distance travelled,
// and no element further than a few steps of lr (Adam moves an element about lr per step).
constexpr double kTrackingLr = 0.05;
constexpr double kTrackingLossRtol = 0.05;
constexpr double kTrackingRmsRtol = 0.05;
constexpr double kTrackingMaxAtol = 5 * kTrackingLr;

// Half the largest gap between neighbouring entries: the worst nearest-entry error for values in range.
double q8_half_max_gap(const at::Tensor& map) {
  return (map.slice(0, 1) - map.slice(0, 0, -1)).max().item<double>() / 2;
}

at::Tensor q8_blockwise_absmax(const at::Tensor& x) {
  const int64_t n = x.numel();
  const int64_t blocks = (n + train::kQuantBlockSize - 1) / train::kQuantBlockSize;
  at::Tensor padded = torch::zeros({blocks * train::kQuantBlockSize});
  padded.narrow(0, 0, n).copy_(x.reshape({-1}));
  return padded.view({blocks, train::kQuantBlockSize}).abs().amax(1);
}

// Checks a round trip: codes are the nearest map entries, and the error stays within the map's
// resolution times the block's absmax. Returns the largest error relative to the block absmax.
double q8_check_round_trip(const at::Tensor& x, bool is_signed, const char* label) {
  const at::Tensor map = train::dynamic_quantization_map(is_signed);
  const train::BlockQuantized q = train::quantize_blockwise(x, train::quantization_midpoints(map));
  EXPECT_EQ(q.codes.scalar_type(), torch::kByte) << label;
  EXPECT_EQ(q.codes.sizes(), x.sizes()) << label;
  const at::Tensor absmax = q8_blockwise_absmax(x);
  EXPECT_EQ(max_abs_diff(q.absmax, absmax), 0.0) << label;
  const at::Tensor back = train::dequantize_blockwise(q, map);
  EXPECT_EQ(back.sizes(), x.sizes()) << label;
  EXPECT_FALSE(back.isnan().any().item<bool>()) << label;

  const int64_t n = x.numel();
  const at::Tensor scale = absmax.repeat_interleave(train::kQuantBlockSize).narrow(0, 0, n);
  const at::Tensor flat = x.reshape({-1});
  const at::Tensor safe_scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  const at::Tensor v = torch::where(scale > 0, flat / safe_scale, torch::zeros_like(flat));
  // Nearest entry, by brute force over the 256 entries.
  const at::Tensor distance = (v.unsqueeze(1) - map.unsqueeze(0)).abs();  // [n, 256]
  const at::Tensor chosen = distance.gather(1, q.codes.reshape({-1, 1}).to(torch::kLong)).squeeze(1);
  EXPECT_LE(max_abs_diff(chosen, std::get<0>(distance.min(1))), kMidpointRounding)
      << label << ": a code is not the nearest entry";
  // The error, relative to the block's absmax, within the map's resolution (and below -0.99297 the
  // distance to the map's end).
  const double bound = std::max(q8_half_max_gap(map), is_signed ? 1 + kSignedMapMin : 0.0);
  const at::Tensor relative = (back.reshape({-1}) - flat).abs() / safe_scale;
  const double worst = relative.max().item<double>();
  EXPECT_LE(worst, bound + 1e-7) << label;
  // Exact zeros stay zero; the block maximum itself (value / absmax = 1) is exact.
  EXPECT_EQ(back.reshape({-1}).masked_select(flat == 0).abs().sum().item<double>(), 0.0) << label;
  const at::Tensor at_max = flat == scale;
  if (at_max.any().item<bool>()) {
    EXPECT_EQ(max_abs_diff(back.reshape({-1}).masked_select(at_max), flat.masked_select(at_max)), 0.0) << label;
  }
  return worst;
}

// A block of structure: zeros, tiny (1e-30, below the smallest code of a block with absmax 1), huge,
// negative, and a whole block of zeros; 1000 elements, so the last block is short.
at::Tensor q8_test_values(bool is_signed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor x = torch::randn({1000}, generator);
  if (!is_signed) x = x.square();
  x.narrow(0, 0, 10).zero_();
  x.narrow(0, 10, 5).fill_(1e-30);
  x.narrow(0, 300, 256).mul_(1e30);     // a huge block (and its neighbours' share of it)
  x.narrow(0, 512, 256).zero_();        // block 2: absmax 0
  x.narrow(0, 800, 8).mul_(1e-8);       // tiny within a normal block
  return x.reshape({40, 25});
}

// 0.5 * sum(c * (w - t)^2) with c in [0.5, 2], and a noisy gradient (as minibatches give): the second
// moments of a block then span a few decades. (Like bitsandbytes', the unsigned map's smallest step is
// 3.25e-7 of the block absmax: second moments below that round to 0, and an element whose gradient then
// nearly vanishes takes a step far larger than lr. Noise-free quadratics with 100x curvature spread get
// there; training gradients keep v well above it.)
struct Quadratic {
  at::Tensor curvature;
  at::Tensor target;
  at::Tensor loss(const at::Tensor& w) const { return 0.5 * (curvature * (w - target).square()).sum(); }
  // The gradient at w with step `step`'s noise (the same for every run).
  void set_grad(at::Tensor& w, int step) const {
    at::Generator noise = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
    w.mutable_grad() = (curvature * (w - target)).detach() + 0.05 * torch::randn(w.sizes(), noise);
  }
};

Quadratic q8_quadratic(int64_t n) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(11);
  Quadratic q;
  q.curvature = torch::exp(torch::rand({n}, generator) * std::log(4.0)) * 0.5;
  q.target = torch::randn({n}, generator);
  return q;
}

torch::optim::AdamWOptions q8_adam_options(double lr) {
  torch::optim::AdamWOptions o(lr);
  o.betas({0.9, 0.999});
  o.eps(1e-8);
  o.weight_decay(1e-2);
  return o;
}

}  // namespace

TEST(DynamicQuantizationMap, SignedAndUnsigned) {
  for (const bool is_signed : {true, false}) {
    const at::Tensor map = train::dynamic_quantization_map(is_signed);
    ASSERT_EQ(map.numel(), 256);
    EXPECT_EQ(map.scalar_type(), torch::kFloat);
    EXPECT_TRUE(((map.slice(0, 1) - map.slice(0, 0, -1)) > 0).all().item<bool>()) << "strictly ascending";
    EXPECT_EQ((map == 0).sum().item<int64_t>(), 1);
    EXPECT_EQ(map[255].item<float>(), 1.0f);
    EXPECT_NEAR(map[254].item<double>(), 1.0 - 0.9 / (is_signed ? 128 : 256), 1e-7);
    if (is_signed) {
      EXPECT_NEAR(map[0].item<double>(), kSignedMapMin, 1e-7);
      // Symmetric but for 1: 127 negative entries, 0, 127 positive ones below 1.
      EXPECT_EQ((map < 0).sum().item<int64_t>(), 127);
      EXPECT_EQ(max_abs_diff(map.slice(0, 0, 127).flip(0), -map.slice(0, 128, 255)), 0.0);
      EXPECT_NEAR(map[128].item<double>(), 1e-6 * 0.55, 1e-12);  // smallest magnitude: 10^-6 * (0.1 + 0.45)
    } else {
      EXPECT_EQ(map[0].item<float>(), 0.0f);
      EXPECT_NEAR(map[1].item<double>(), 1e-6 * 0.325, 1e-12);  // 10^-6 * (0.1 + 0.225)
    }
    std::printf("[map] %s: min %.6g, max half-gap %.6g\n", is_signed ? "signed" : "unsigned",
                map[0].item<double>(), q8_half_max_gap(map));
  }
}

TEST(BlockwiseQuantization, RoundTripWithinTheMapsResolution) {
  const double signed_worst = q8_check_round_trip(q8_test_values(true), true, "signed");
  const double unsigned_worst = q8_check_round_trip(q8_test_values(false), false, "unsigned");
  std::printf("[round trip] max |x - deq(q(x))| / absmax: signed %.3g, unsigned %.3g\n", signed_worst,
              unsigned_worst);
  // A block of only negative values: the absmax maps to the signed map's end, -0.99297.
  const at::Tensor negative = -torch::linspace(0.5, 2.0, 300);
  q8_check_round_trip(negative, true, "negative");
  // All zero: codes of zero, absmax 0, no NaN.
  const at::Tensor map = train::dynamic_quantization_map(false);
  const train::BlockQuantized zero = train::quantize_blockwise(torch::zeros({513}), train::quantization_midpoints(map));
  EXPECT_EQ(zero.absmax.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(train::dequantize_blockwise(zero, map).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(zero.absmax.numel(), 3);
}

TEST(AdamW8bit, FirstStepEqualsAdamW) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor init = torch::randn({64, 128}, generator);  // 8192 elements: 8-bit moments
  const at::Tensor small_init = torch::randn({100}, generator);  // fp32 moments
  at::Tensor a = init.clone().requires_grad_(true), b = init.clone().requires_grad_(true);
  at::Tensor sa = small_init.clone().requires_grad_(true), sb = small_init.clone().requires_grad_(true);
  torch::optim::AdamW reference({a, sa}, q8_adam_options(1e-3));
  train::AdamW8bit eight_bit({b, sb}, q8_adam_options(1e-3));
  for (int step = 0; step < 2; ++step) {
    const at::Tensor grad = torch::randn({64, 128}, generator) * 0.01;
    const at::Tensor small_grad = torch::randn({100}, generator);
    a.mutable_grad() = grad.clone();
    b.mutable_grad() = grad.clone();
    sa.mutable_grad() = small_grad.clone();
    sb.mutable_grad() = small_grad.clone();
    reference.step();
    eight_bit.step();
    const double diff = max_abs_diff(a, b);
    std::printf("[step %d] max |AdamW8bit - AdamW| = %.3g (update ~%.3g)\n", step + 1, diff,
                (a - init).abs().max().item<double>());
    if (step == 0) {
      EXPECT_TENSOR_CLOSE(b, a, kFirstStepAtol, "first step, 8-bit moments");
    }
    EXPECT_EQ(max_abs_diff(sa, sb), 0.0) << "fp32 moments of a small tensor are AdamW's exactly";
  }
  const auto& state = static_cast<train::AdamW8bitParamState&>(
      *eight_bit.state().at(train::optimizer_state_key(b)));
  EXPECT_TRUE(state.quantized());
  EXPECT_EQ(state.step(), 2);
  EXPECT_FALSE(static_cast<train::AdamW8bitParamState&>(
                   *eight_bit.state().at(train::optimizer_state_key(sb)))
                   .quantized());
}

TEST(AdamW8bit, TracksAdamWOnAQuadraticAndConverges) {
  const Quadratic q = q8_quadratic(8192);
  at::Tensor a = torch::zeros({8192}).requires_grad_(true), b = torch::zeros({8192}).requires_grad_(true);
  torch::optim::AdamW reference({a}, q8_adam_options(kTrackingLr));
  train::AdamW8bit eight_bit({b}, q8_adam_options(kTrackingLr));
  const double initial = q.loss(a).item<double>();
  double worst = 0, worst_loss = 0;
  for (int step = 0; step < 50; ++step) {
    q.set_grad(a, step);
    q.set_grad(b, step);
    reference.step();
    eight_bit.step();
    worst = std::max(worst, max_abs_diff(a, b));
    const double loss_fp32 = q.loss(a).item<double>();
    worst_loss = std::max(worst_loss, std::abs(q.loss(b).item<double>() - loss_fp32) / loss_fp32);
  }
  const double final_fp32 = q.loss(a).item<double>();
  const double final_8bit = q.loss(b).item<double>();
  const double rms = (a - b).square().mean().sqrt().item<double>();
  const double travelled = a.square().mean().sqrt().item<double>();  // from 0
  std::printf("[quadratic] loss %.4g -> fp32 AdamW %.4g, 8-bit %.4g (worst step %.2f%% apart); RMS |w8 - w32| %.3g "
              "of %.3g travelled; max %.3g\n",
              initial, final_fp32, final_8bit, 100 * worst_loss, rms, travelled, worst);
  EXPECT_LT(final_fp32, 0.02 * initial);
  EXPECT_LT(final_8bit, 0.02 * initial);
  EXPECT_LE(worst_loss, kTrackingLossRtol);
  EXPECT_LE(rms, kTrackingRmsRtol * travelled);
  EXPECT_LE(worst, kTrackingMaxAtol);
}

TEST(AdamW8bit, StateBytes) {
  at::Tensor big = torch::zeros({100000}).requires_grad_(true);
  at::Tensor edge = torch::zeros({64, 64}).requires_grad_(true);   // 4096: the first 8-bit size
  at::Tensor small = torch::zeros({4095}).requires_grad_(true);
  const std::vector<at::Tensor> params = {big, edge, small};
  const int64_t planned = train::planned_optimizer_state_bytes(params, true);
  const int64_t big_bytes = 2 * 100000 + 2 * 4 * 391;
  EXPECT_EQ(planned, big_bytes + (2 * 4096 + 2 * 4 * 16) + 8 * 4095);
  EXPECT_EQ(train::planned_optimizer_state_bytes(params, false), 8 * (100000 + 4096 + 4095));
  std::printf("[state] 8-bit: %.4f bytes per element of a 100000-element tensor (fp32 AdamW: 8)\n",
              big_bytes / 100000.0);
  train::AdamW8bit eight_bit(params, q8_adam_options(1e-3));
  EXPECT_EQ(train::optimizer_state_bytes(eight_bit), 0);
  for (at::Tensor p : params) p.mutable_grad() = torch::ones_like(p);
  eight_bit.step();
  EXPECT_EQ(train::optimizer_state_bytes(eight_bit), planned);
  torch::optim::AdamW reference(params, q8_adam_options(1e-3));
  reference.step();
  EXPECT_EQ(train::optimizer_state_bytes(reference), train::planned_optimizer_state_bytes(params, false));
}

TEST(AdamW8bit, StateThroughACheckpointContinuesBitForBit) {
  // 6 steps straight vs 3 steps, save_run_checkpoint, a fresh optimizer over fresh tensors,
  // load_run_checkpoint, 3 more steps: identical weights.
  const Quadratic q = q8_quadratic(5000);
  const auto make_trainable = [](at::Tensor w, at::Tensor s) {
    train::TrainableParameters t;
    t.parameters = {{"unet.w", w}, {"unet.small", s}};
    return t;
  };
  const Quadratic small_q = q8_quadratic(300);
  at::Tensor w = torch::zeros({5000}).requires_grad_(true), s = torch::zeros({300}).requires_grad_(true);
  train::AdamW8bit straight({w, s}, q8_adam_options(0.05));
  for (int step = 0; step < 6; ++step) {
    train::set_learning_rate(straight, 0.05 / (1 + step));
    q.set_grad(w, step);
    small_q.set_grad(s, step);
    straight.step();
  }

  TempDir dir;
  train::RunState run;
  run.step = 3;
  run.data_order = train::DataOrder(1);
  run.rng_state = at::make_generator<at::CPUGeneratorImpl>(1).get_state();
  at::Tensor w1 = torch::zeros({5000}).requires_grad_(true), s1 = torch::zeros({300}).requires_grad_(true);
  {
    train::AdamW8bit first({w1, s1}, q8_adam_options(0.05));
    for (int step = 0; step < 3; ++step) {
      train::set_learning_rate(first, 0.05 / (1 + step));
      q.set_grad(w1, step);
      small_q.set_grad(s1, step);
      first.step();
    }
    train::save_run_checkpoint(dir / "ckpt", make_trainable(w1, s1), first, run);
  }
  io::SafetensorsReader file(dir / "ckpt" / "optimizer.safetensors");
  EXPECT_EQ(file.at("unet.w.exp_avg.codes").scalar_type, torch::kByte);
  EXPECT_EQ(file.at("unet.w.exp_avg_sq.absmax").shape, std::vector<int64_t>{20});
  EXPECT_TRUE(file.contains("unet.small.exp_avg"));  // 300 elements: fp32 moments

  at::Tensor w2 = torch::zeros({5000}).requires_grad_(true), s2 = torch::zeros({300}).requires_grad_(true);
  train::AdamW8bit resumed({w2, s2}, q8_adam_options(0.05));
  const train::RunState loaded = train::load_run_checkpoint(dir / "ckpt", make_trainable(w2, s2), resumed);
  EXPECT_EQ(loaded.step, 3);
  EXPECT_EQ(max_abs_diff(w2, w1), 0.0);
  for (int step = 3; step < 6; ++step) {
    train::set_learning_rate(resumed, 0.05 / (1 + step));
    q.set_grad(w2, step);
    small_q.set_grad(s2, step);
    resumed.step();
  }
  EXPECT_EQ(max_abs_diff(w2, w), 0.0);
  EXPECT_EQ(max_abs_diff(s2, s), 0.0);

  // The other optimizer kind refuses the state.
  at::Tensor w3 = torch::zeros({5000}).requires_grad_(true), s3 = torch::zeros({300}).requires_grad_(true);
  torch::optim::AdamW fp32({w3, s3}, q8_adam_options(0.05));
  try {
    train::load_run_checkpoint(dir / "ckpt", make_trainable(w3, s3), fp32);
    FAIL() << "fp32 AdamW loaded 8-bit state";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("--use-8bit-adam"), std::string::npos) << e.what();
  }
}
