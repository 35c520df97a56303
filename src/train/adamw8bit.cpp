#include "dreambooth/train/adamw8bit.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/train/optimizer.h"

namespace dreambooth::train {
namespace {

constexpr int kMapEntries = 256;
constexpr int kExponents = 7;  // magnitudes 10^-6 .. 10^0

// x (any shape) as float32 [blocks, kQuantBlockSize], zero-padded at the end.
at::Tensor as_blocks(const at::Tensor& flat) {
  const int64_t n = flat.numel();
  const int64_t blocks = (n + kQuantBlockSize - 1) / kQuantBlockSize;
  const int64_t pad = blocks * kQuantBlockSize - n;
  const at::Tensor padded = pad > 0 ? at::constant_pad_nd(flat, {0, pad}, 0) : flat;
  return padded.view({blocks, kQuantBlockSize});
}

}  // namespace

at::Tensor dynamic_quantization_map(bool is_signed) {
  // Exponent k (value scale 10^(k-6)) holds 2^k fractions per sign when signed, 2^(k+1) when unsigned:
  // the midpoints of that many equal steps of [0.1, 1]. With 0 and 1 that is 2*127 + 2 = 256 entries
  // either way.
  std::vector<double> values;
  for (int k = 0; k < kExponents; ++k) {
    const int steps = is_signed ? (1 << k) : (1 << (k + 1));
    const double scale = std::pow(10.0, k - (kExponents - 1));
    const double width = 0.9 / steps;
    for (int j = 0; j < steps; ++j) {
      const double midpoint = 0.1 + (j + 0.5) * width;
      values.push_back(scale * midpoint);
      if (is_signed) values.push_back(-scale * midpoint);
    }
  }
  values.push_back(0.0);
  values.push_back(1.0);
  std::sort(values.begin(), values.end());
  at::Tensor map = torch::empty({kMapEntries}, torch::kFloat);
  TORCH_CHECK(static_cast<int>(values.size()) == kMapEntries, "dynamic map has ", values.size(), " entries");
  float* out = map.data_ptr<float>();
  for (int i = 0; i < kMapEntries; ++i) out[i] = static_cast<float>(values[i]);
  return map;
}

at::Tensor quantization_midpoints(const at::Tensor& map) {
  const at::Tensor m = map.to(torch::kDouble);
  return ((m.slice(0, 1) + m.slice(0, 0, -1)) / 2).to(torch::kFloat);
}

BlockQuantized quantize_blockwise(const at::Tensor& x, const at::Tensor& midpoints) {
  torch::NoGradGuard no_grad;
  const at::Tensor flat = x.detach().to(torch::kFloat).reshape({-1});
  const at::Tensor blocks = as_blocks(flat);
  BlockQuantized q;
  q.absmax = blocks.abs().amax(1);
  // A zero block divides by the smallest normal float: 0 stays 0, no NaN.
  const at::Tensor normalized =
      (blocks / q.absmax.clamp_min(std::numeric_limits<float>::min()).unsqueeze(1)).reshape({-1});
  // Nearest entry: the number of midpoints between neighbouring entries that lie below v (a value on a
  // midpoint goes to the lower entry). int32 indices keep the temporary at 4 bytes per element.
  const at::Tensor codes = at::searchsorted(midpoints, normalized, /*out_int32=*/true).to(torch::kByte);
  q.codes = codes.narrow(0, 0, flat.numel()).view(x.sizes());
  return q;
}

at::Tensor dequantize_blockwise(const BlockQuantized& q, const at::Tensor& map) {
  torch::NoGradGuard no_grad;
  const at::Tensor flat = map.index_select(0, q.codes.reshape({-1}).to(torch::kInt));
  const at::Tensor scaled = (as_blocks(flat) * q.absmax.unsqueeze(1)).reshape({-1});
  return scaled.narrow(0, 0, flat.numel()).view(q.codes.sizes());
}

int64_t AdamW8bitParamState::nbytes() const {
  int64_t total = 0;
  for (const at::Tensor& t : {exp_avg(), exp_avg_sq(), exp_avg_8bit().codes, exp_avg_8bit().absmax,
                              exp_avg_sq_8bit().codes, exp_avg_sq_8bit().absmax})
    if (t.defined()) total += static_cast<int64_t>(t.nbytes());
  return total;
}

AdamW8bit::AdamW8bit(std::vector<at::Tensor> params, torch::optim::AdamWOptions defaults)
    : torch::optim::Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                              std::make_unique<torch::optim::AdamWOptions>(defaults)) {
  TORCH_CHECK(!defaults.amsgrad(), "AdamW8bit: amsgrad is not supported");
}

const AdamW8bit::Maps& AdamW8bit::maps_on(c10::Device device) {
  for (const Maps& m : maps_)
    if (m.device == device) return m;
  const at::Tensor signed_map = dynamic_quantization_map(true);
  const at::Tensor unsigned_map = dynamic_quantization_map(false);
  maps_.push_back({device, signed_map.to(device), quantization_midpoints(signed_map).to(device), unsigned_map.to(device),
                   quantization_midpoints(unsigned_map).to(device)});
  return maps_.back();
}


at::Tensor AdamW8bit::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  at::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const double lr = options.lr();
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    for (at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW8bit does not support sparse gradients");
      // The math in float32 whatever the parameter's dtype (the trainer's parameters are float32).
      const bool float_param = p.scalar_type() == torch::kFloat;
      at::Tensor master = float_param ? p : p.to(torch::kFloat);
      const at::Tensor grad = p.grad().to(torch::kFloat);

      // Decoupled weight decay, before the moments (as torch::optim::AdamW).
      if (options.weight_decay() != 0) master.mul_(1 - lr * options.weight_decay());

      const Maps& maps = maps_on(p.device());
      const OptimizerStateKey key = optimizer_state_key(p);
      auto found = state_.find(key);
      if (found == state_.end()) {
        auto fresh = std::make_unique<AdamW8bitParamState>();
        if (quantizes(p.numel())) {
          const at::Tensor zeros = torch::zeros_like(grad);
          fresh->exp_avg_8bit(quantize_blockwise(zeros, maps.signed_midpoints));
          fresh->exp_avg_sq_8bit(quantize_blockwise(zeros, maps.unsigned_midpoints));
        } else {
          fresh->exp_avg(torch::zeros_like(grad, at::MemoryFormat::Preserve));
          fresh->exp_avg_sq(torch::zeros_like(grad, at::MemoryFormat::Preserve));
        }
        found = state_.emplace(key, std::move(fresh)).first;
      }
      auto& state = static_cast<AdamW8bitParamState&>(*found->second);
      const bool quantized = state.quantized();
      at::Tensor exp_avg = quantized ? dequantize_blockwise(state.exp_avg_8bit(), maps.signed_map) : state.exp_avg();
      at::Tensor exp_avg_sq =
          quantized ? dequantize_blockwise(state.exp_avg_sq_8bit(), maps.unsigned_map) : state.exp_avg_sq();

      state.step(state.step() + 1);
      const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(state.step()));
      const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(state.step()));
      exp_avg.mul_(beta1).add_(grad, 1 - beta1);
      exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const at::Tensor denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(options.eps());
      master.addcdiv_(exp_avg, denom, -lr / bias_correction1);
      if (!float_param) p.copy_(master);

      if (quantized) {
        state.exp_avg_8bit(quantize_blockwise(exp_avg, maps.signed_midpoints));
        state.exp_avg_sq_8bit(quantize_blockwise(exp_avg_sq, maps.unsigned_midpoints));
      }
    }
  }
  return loss;
}

}  // namespace dreambooth::train
