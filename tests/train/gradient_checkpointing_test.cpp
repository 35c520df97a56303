// Gradient checkpointing (models/checkpointing.h, wired into the UNet and the CLIP text encoder) changes
// memory, never results: the golden step's loss and every trained tensor's gradient are the same with it
// on and off, for the UNet alone and with the text encoder trained, and for LoRA adapters (which hook into
// the checkpointed blocks' layers without being their children).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/torch_compat.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/checkpointing.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/trainable_parameters.h"
#include "dreambooth/train/training_step.h"
#include "support/golden.h"
#include "support/tensor_close.h"
#include "train/train_test_util.h"

using namespace dreambooth;

namespace {

// Recomputation replays the same float32 kernels on the same inputs: the results agree to rounding.
constexpr double kCheckpointingAtol = 1e-6;

struct CheckpointedStepResult {
  at::Tensor loss;
  std::vector<std::pair<std::string, at::Tensor>> grads;
};

// Gives every adapter a non-zero up (fresh adapters have up = 0, which makes every down gradient zero and
// the comparison of down gradients empty).
void randomize_adapter_up_for_checkpointing(const train::TrainableParameters& trainable) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(99);
  for (const auto& p : trainable.parameters)
    if (p.name.find("lora_up") != std::string::npos)
      p.tensor.copy_(torch::randn(p.tensor.sizes(), generator, torch::kFloat) * 0.1);
}

CheckpointedStepResult golden_step_gradients(bool train_text_encoder, bool gradient_checkpointing,
                                             bool lora = false) {
  io::SafetensorsReader g(dreambooth::testing::golden_path("tiny-sd1/golden/dreambooth_step_te.safetensors"));
  checkpoint::LoadOptions load;
  load.path = dreambooth::testing::golden_path("tiny-sd1");
  checkpoint::StableDiffusion model = checkpoint::load_stable_diffusion(load);
  train::TrainOptions options;
  options.train_text_encoder = train_text_encoder;
  options.lora = lora;
  options.lora_targets = lora::LoraTargets::AllLinear;  // proj_in/proj_out (convs) and the feed-forward too
  options.seed = 5;
  const train::TrainableParameters trainable = train::select_trainable_parameters(options, model);
  if (lora) randomize_adapter_up_for_checkpointing(trainable);
  train::set_training_mode(model, trainable, true);
  model.unet->set_gradient_checkpointing(gradient_checkpointing);
  model.text_encoder->set_gradient_checkpointing(gradient_checkpointing);

  const schedulers::NoiseSchedule schedule = schedulers::make_noise_schedule(
      schedulers::SchedulerConfig::from_json(model.description.scheduler, "tiny-sd1 scheduler"));
  const train::StepModels models = train::step_models_of(model, schedule);
  const auto [batch, noise] = dreambooth::testing::golden_step_inputs(g);

  const train::StepLosses losses = train::step_loss(models, batch, noise, {});
  losses.loss.backward();
  CheckpointedStepResult out;
  out.loss = losses.loss.detach();
  for (const auto& p : trainable.parameters) {
    // Every trained tensor gets a gradient (an adapter the checkpointed block was not told about gets none).
    EXPECT_TRUE(p.tensor.grad().defined()) << p.name << (gradient_checkpointing ? " (checkpointed)" : "");
    out.grads.emplace_back(p.name, p.tensor.grad().defined() ? p.tensor.grad().clone() : torch::zeros_like(p.tensor));
  }
  return out;
}

void expect_same_gradients(bool train_text_encoder, bool lora = false) {
  const CheckpointedStepResult plain = golden_step_gradients(train_text_encoder, false, lora);
  const CheckpointedStepResult checkpointed = golden_step_gradients(train_text_encoder, true, lora);
  EXPECT_TENSOR_CLOSE(checkpointed.loss, plain.loss, kCheckpointingAtol, "loss");
  ASSERT_EQ(plain.grads.size(), checkpointed.grads.size());
  double worst = 0;
  int text_encoder_grads = 0;
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    ASSERT_EQ(plain.grads[i].first, checkpointed.grads[i].first);
    const double diff = dreambooth::testing::max_abs_diff(checkpointed.grads[i].second, plain.grads[i].second);
    EXPECT_LE(diff, kCheckpointingAtol) << plain.grads[i].first;
    worst = std::max(worst, diff);
    const std::string& name = plain.grads[i].first;
    if (name.rfind(lora ? lora::kKohyaTextEncoderPrefix : train::kTextEncoderPrefix, 0) == 0) ++text_encoder_grads;
    // A trained tensor whose gradient is zero everywhere would make the comparison vacuous.
    if (lora) {
      EXPECT_GT(plain.grads[i].second.abs().max().item<double>(), 0.0) << name;
    }
  }
  EXPECT_EQ(text_encoder_grads > 0, train_text_encoder);
  std::printf("[checkpointing] %zu gradients, max |checkpointed - plain| = %g\n", plain.grads.size(), worst);
}

}  // namespace

TEST(GradientCheckpointing, UnetGradientsEqualThoseWithout) {
  REQUIRE_GOLDEN();
  expect_same_gradients(false);
}

TEST(GradientCheckpointing, TextEncoderGradientsEqualThoseWithout) {
  REQUIRE_GOLDEN();
  expect_same_gradients(true);
}

TEST(GradientCheckpointing, LoraAdapterGradientsEqualThoseWithout) {
  REQUIRE_GOLDEN();
  expect_same_gradients(true, true);
}

TEST(GradientCheckpointing, ParametersReachedOnlyThroughTheFunctionGetGradients) {
  // The input needs no gradient, the weight does: the weight's gradient still arrives (the LoRA case).
  const at::Tensor x = torch::randn({3, 4});
  const at::Tensor w = torch::randn({4, 2}).requires_grad_(true);
  const at::Tensor expected_grad = [&] {
    const at::Tensor w2 = w.detach().clone().requires_grad_(true);
    torch::matmul(x, w2).tanh().sum().backward();
    return w2.grad().clone();
  }();
  const auto out = models::checkpoint(
      [w](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{torch::matmul(in[0], w).tanh()}; }, {x},
      {w});
  out[0].sum().backward();
  EXPECT_TENSOR_CLOSE(w.grad(), expected_grad, 0.0, "weight grad through checkpoint");
}

namespace {

// Autocast on the CPU in bf16 for the scope (the CUDA path of --mixed-precision, reproducible here).
class CpuAutocastForCheckpointTest {
 public:
  CpuAutocastForCheckpointTest()
      : enabled_(autocast_enabled(c10::kCPU)), dtype_(autocast_dtype(c10::kCPU)) {
    set_autocast(c10::kCPU, true, c10::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CpuAutocastForCheckpointTest() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast(c10::kCPU, enabled_, dtype_);
  }

 private:
  bool enabled_;
  c10::ScalarType dtype_;
};

}  // namespace

TEST(GradientCheckpointing, WeightsGetGradientsUnderAutocast) {
  // Autocast caches the low-precision copy of a weight. The checkpointed forward runs without grad, so a
  // copy cached there has no history: the recomputation must not reuse it, or the weight gets no gradient.
  const at::Tensor x = torch::randn({3, 4});
  const at::Tensor w = torch::randn({2, 4}).requires_grad_(true);
  auto f = [w](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{torch::linear(in[0], w).tanh()}; };
  at::Tensor expected_grad;
  {
    CpuAutocastForCheckpointTest autocast;
    const at::Tensor w2 = w.detach().clone().requires_grad_(true);
    torch::linear(x, w2).tanh().to(torch::kFloat).sum().backward();
    expected_grad = w2.grad().clone();
  }
  for (int step = 0; step < 2; ++step) {
    w.mutable_grad() = at::Tensor();
    std::vector<at::Tensor> out;
    {
      CpuAutocastForCheckpointTest autocast;
      out = models::checkpoint(f, {x}, {w});
    }
    out[0].to(torch::kFloat).sum().backward();  // after the autocast scope, as the trainer does
    ASSERT_TRUE(w.grad().defined()) << "step " << step << ": the weight got no gradient";
    EXPECT_TENSOR_CLOSE(w.grad(), expected_grad, 0.0, "weight grad through checkpoint under autocast");
  }
  // A weight changed in place between steps (the optimizer) is seen by the next forward: no stale copy.
  {
    torch::NoGradGuard no_grad;
    w.mul_(2);
  }
  CpuAutocastForCheckpointTest autocast;
  const auto direct = torch::linear(x, w.detach()).tanh();
  const auto out = models::checkpoint(f, {x}, {w});
  EXPECT_TENSOR_CLOSE(out[0].detach().to(torch::kFloat), direct.to(torch::kFloat), 0.0, "forward after a weight update");
}
