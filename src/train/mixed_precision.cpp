#include "dreambooth/train/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "dreambooth/core/torch_compat.h"
#include "dreambooth/train/finite.h"

namespace dreambooth::train {

AutocastScope::AutocastScope(MixedPrecision mode, c10::Device device) {
  if (mode == MixedPrecision::No || !device.is_cuda()) return;
  active_ = true;
  previous_enabled_ = autocast_enabled(c10::kCUDA);
  previous_dtype_ = autocast_dtype(c10::kCUDA);
  set_autocast(c10::kCUDA, true, mode == MixedPrecision::Fp16 ? c10::kHalf : c10::kBFloat16);
  // Autocast's weight cache saves no work here (the weights change every step; each is cast once per
  // forward) and, under gradient checkpointing, holds a low-precision copy of every weight that nothing else
  // keeps: 2 bytes per parameter of VRAM.
  previous_cache_enabled_ = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(c10::kCUDA, previous_enabled_, previous_dtype_);
  at::autocast::set_autocast_cache_enabled(previous_cache_enabled_);
}

LossScaler::LossScaler(bool enabled, double initial_scale, int growth_interval)
    : enabled_(enabled), scale_(initial_scale), growth_interval_(growth_interval) {}

bool LossScaler::unscale_and_check(const std::vector<at::Tensor>& parameters) const {
  torch::NoGradGuard no_grad;
  bool finite = true;
  for (const at::Tensor& p : parameters) {
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (enabled_) g.mul_(1.0 / scale_);
    if (finite && !all_finite(g)) finite = false;
  }
  return finite;
}

void LossScaler::update(bool found_finite) {
  if (!enabled_) return;
  if (!found_finite) {
    scale_ *= 0.5;
    good_steps_ = 0;
    return;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

nlohmann::json LossScaler::to_json() const {
  return {{"enabled", enabled_}, {"scale", scale_}, {"good_steps", good_steps_}};
}

void LossScaler::load_json(const nlohmann::json& json) {
  if (!json.is_object()) return;
  scale_ = json.value("scale", scale_);
  good_steps_ = json.value("good_steps", good_steps_);
}

}  // namespace dreambooth::train
