// One LoRA training step against a reference derived from the golden full fine-tuning step
// (tiny-sd1/golden/dreambooth_step: diffusers' train_dreambooth.py with prior preservation).
//
// How the reference is derived. A LoRA on a layer of weight W makes it compute with
//
//   W_eff = W + s * U @ D          (s = alpha / rank; for a k x k conv, D is flattened to [r, in*k*k])
//
// With U = 0 (a fresh adapter) the model computes exactly the base model, so the loss, and its gradient with
// respect to W_eff, are the golden step's: dL/dW_eff = G = grad.<W> of the golden case. The chain rule through
// W_eff = W + s U D gives
//
//   dL/dU = s * G @ D^T            dL/dD = s * U^T @ G = 0
//
// computed here in float64 from the golden float64 gradients (ref64.grad.*) and the adapters' initial D,
// and compared with autograd through the adapters (base weights frozen). The optimizer step is then the
// golden recipe applied to the adapter tensors alone: clip_grad_norm_(adapters, 1.0) (scale
// min(1, 1 / (norm + 1e-6))), one AdamW step (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2),
// whose first step is p <- p * (1 - lr * wd) - lr * g / (|g| + eps) with bias-corrected moments m = g, v = g^2.
// The golden case has gradients for conv_in (3x3 conv), the first self-attention's to_q (Linear) and
// time_embedding.linear_1 (Linear), so those three layers carry the adapters.
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/lora/network.h"
#include "dreambooth/lora/sites.h"
#include "lora/lora_test_util.h"
#include "support/golden.h"
#include "support/tensor_close.h"

using namespace dreambooth::lora;
using dreambooth::checkpoint::Component;
using dreambooth::io::SafetensorsReader;
using namespace dreambooth::testing;

namespace {

constexpr const char* kStepCase = "dreambooth_step";
// The golden recipe (index.json params of the case).
constexpr double kStepLr = 1e-3;
constexpr double kStepWeightDecay = 1e-2;
constexpr double kStepAdamEps = 1e-8;
constexpr double kStepMaxGradNorm = 1.0;
constexpr double kClipEps = 1e-6;  // clip_grad_norm_'s norm + 1e-6

const char* const kGoldenGradLayers[] = {
    "conv_in",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "time_embedding.linear_1",
};

// Float32 error of a golden tensor: 20x its observed fp32-vs-fp64 max_abs, which is how index.json derives
// suggested_atol, but without the 1e-5 absolute floor that would swamp gradients of magnitude 1e-3.
constexpr double kGoldenErrorMargin = 20.0;
double golden_fp32_error(const std::string& tensor) {
  return kGoldenErrorMargin * golden_case(kStepCase).at("fp32_vs_fp64").at(tensor).at("max_abs").get<double>();
}

at::Tensor flat_rows(const at::Tensor& t) { return t.reshape({t.size(0), -1}); }

}  // namespace

TEST(LoraStepParity, DreamboothStepGradientsAndAdamWFromGoldenGradients) {
  REQUIRE_GOLDEN();
  auto model = golden_tiny_model();
  for (auto& p : model.unet->parameters()) p.set_requires_grad(false);
  SafetensorsReader golden(golden_path(std::string("tiny-sd1/golden/") + kStepCase + ".safetensors"));

  // --- adapters on the three layers the golden case has gradients for
  LoraConfig config;
  config.rank = 4;
  config.alpha = 32.0;  // s = 8: a missing or doubled scale shows, and the gradient norm (> 1) gets clipped
  LoraAdapterOptions adapter_options;
  adapter_options.rank = config.rank;
  adapter_options.alpha = config.alpha_value();
  const LoraSiteTable table(model);
  std::vector<LoraModule> modules;
  for (const char* path : kGoldenGradLayers) {
    const LoraSite* site = table.find(Component::Unet, path);
    ASSERT_TRUE(site) << path;
    LoraAdapter adapter(site->shape, adapter_options);
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(11);
    adapter->reset_parameters(LoraInit::KaimingUniform, generator);
    modules.push_back({*site, adapter});
  }
  LoraNetwork network(config, modules);
  network->attach();
  const double s = network->modules().front().adapter->scale();
  ASSERT_EQ(s, 8.0);
  std::vector<at::Tensor> initial_down;
  for (const auto& m : network->modules()) initial_down.push_back(m.adapter->down.detach().clone());

  // --- the golden step's forward and loss: mse(instance half) + 1.0 * mse(prior half), target = noise
  const at::Tensor noisy = golden.load("intermediate.noisy_model_input", torch::kFloat);
  const at::Tensor timesteps = golden.load("input.timesteps", torch::kLong);
  const at::Tensor context = golden.load("intermediate.encoder_hidden_states", torch::kFloat);
  const at::Tensor target = golden.load("intermediate.target", torch::kFloat);
  const at::Tensor pred = model.unet->forward(noisy, timesteps, context);
  EXPECT_TENSOR_CLOSE(pred, golden.load("intermediate.model_pred", torch::kFloat),
                      golden_atol(kStepCase, "intermediate.model_pred"), "model_pred (up = 0: the base model's)");
  const at::Tensor loss = torch::mse_loss(pred.narrow(0, 0, 1), target.narrow(0, 0, 1)) +
                          1.0 * torch::mse_loss(pred.narrow(0, 1, 1), target.narrow(0, 1, 1));
  EXPECT_TENSOR_CLOSE(loss.reshape({1}), golden.load("output.loss", torch::kFloat),
                      golden_atol(kStepCase, "output.loss"), "loss");
  loss.backward();

  // --- gradients: dL/dU = s G D^T, dL/dD = 0
  std::vector<at::Tensor> expected_up_grads;
  std::vector<double> grad_tolerances;
  double grad_tolerance_sum_sq = 0.0;  // |error vector|^2 bound, for the norm
  for (size_t i = 0; i < network->modules().size(); ++i) {
    const LoraModule& m = network->modules()[i];
    const std::string grad_name = "grad." + m.site.path + ".weight";
    const at::Tensor g = golden.load("ref64." + grad_name, torch::kDouble);  // [out, in(, k, k)]
    const at::Tensor d = initial_down[i].to(torch::kDouble);
    const at::Tensor expected = (s * torch::mm(flat_rows(g), flat_rows(d).t())).reshape(m.adapter->up.sizes());
    expected_up_grads.push_back(expected);
    // |s (G + dG) D^T - s G D^T| <= s * max|dG| * max_r sum_j |D_rj|, with max|dG| the float32 error of G.
    const double tolerance = s * golden_fp32_error(grad_name) * flat_rows(d).abs().sum(1).max().item<double>();
    ASSERT_TRUE(m.adapter->up.grad().defined()) << m.site.path;
    EXPECT_TENSOR_CLOSE(m.adapter->up.grad().to(torch::kDouble), expected, tolerance, m.site.path + " dL/d(up)");
    EXPECT_GT(expected.abs().max().item<double>(), 10 * tolerance) << m.site.path << ": the check is not vacuous";
    ASSERT_TRUE(m.adapter->down.grad().defined()) << m.site.path;
    EXPECT_TENSOR_CLOSE(m.adapter->down.grad(), torch::zeros_like(m.adapter->down), kLoraBitIdentical,
                        m.site.path + " dL/d(down) with up = 0");
    grad_tolerances.push_back(tolerance);
    grad_tolerance_sum_sq += tolerance * tolerance * static_cast<double>(expected.numel());
  }
  for (const auto& p : model.unet->parameters()) EXPECT_FALSE(p.grad().defined()) << "a frozen weight got a gradient";

  // --- clip_grad_norm_ over the adapters, then one AdamW step
  double expected_norm_sq = 0.0;
  for (const auto& g : expected_up_grads) expected_norm_sq += g.pow(2).sum().item<double>();
  const double expected_norm = std::sqrt(expected_norm_sq);
  const double norm = torch::nn::utils::clip_grad_norm_(network->parameters(), kStepMaxGradNorm);
  const double norm_tolerance = std::sqrt(grad_tolerance_sum_sq);
  EXPECT_NEAR(norm, expected_norm, norm_tolerance) << "adapter gradient norm";
  EXPECT_GT(expected_norm, kStepMaxGradNorm) << "the clip is exercised";
  const double clip = std::min(1.0, kStepMaxGradNorm / (expected_norm + kClipEps));
  const double clip_tolerance = clip * norm_tolerance / expected_norm;  // first order

  torch::optim::AdamW optimizer(network->parameters(), torch::optim::AdamWOptions(kStepLr)
                                                           .betas({0.9, 0.999})
                                                           .eps(kStepAdamEps)
                                                           .weight_decay(kStepWeightDecay));
  optimizer.step();
  for (size_t i = 0; i < network->modules().size(); ++i) {
    const LoraModule& m = network->modules()[i];
    // up: 0 * (1 - lr wd) - lr * g / (|g| + eps), g the clipped gradient.
    const at::Tensor g = clip * expected_up_grads[i];
    const at::Tensor expected_up = -kStepLr * g / (g.abs() + kStepAdamEps);
    // g / (|g| + eps) moves by at most dg * eps / (|g| - dg + eps)^2 when g moves by dg (the gradient tolerance
    // above, clipped, plus the clip factor's). Where |g| > 10 dg that is < lr * eps / (81 dg): compared there,
    // with float32 rounding of values of magnitude lr on top. Elsewhere the sign may legitimately flip: only
    // the bound |step| <= lr holds.
    const double dg = clip * grad_tolerances[i] + clip_tolerance * expected_up_grads[i].abs().max().item<double>();
    const at::Tensor determined = g.abs() > 10 * dg;
    EXPECT_GT(determined.to(torch::kDouble).mean().item<double>(), 0.9) << m.site.path << ": most elements compared";
    const double up_tolerance = kStepLr * kStepAdamEps / (81 * dg) + kStepLr * kLoraFloatRounding;
    const at::Tensor up = m.adapter->up.to(torch::kDouble);
    EXPECT_TENSOR_CLOSE(up.masked_select(determined), expected_up.masked_select(determined), up_tolerance,
                        m.site.path + " up after AdamW");
    EXPECT_LE(up.abs().max().item<double>(), kStepLr * (1 + kLoraFloatRounding)) << m.site.path;
    // down: zero gradient, so only the decoupled weight decay moves it.
    const at::Tensor expected_down = initial_down[i].to(torch::kDouble) * (1.0 - kStepLr * kStepWeightDecay);
    EXPECT_TENSOR_CLOSE(m.adapter->down.to(torch::kDouble), expected_down, kLoraFloatRounding,
                        m.site.path + " down after AdamW");
  }
}
