#include "dreambooth/train/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace dreambooth::train {

AutocastScope::AutocastScope(MixedPrecision mode, c10::Device device) {
  if (mode == MixedPrecision::No || !device.is_cuda()) return;
  active_ = true;
  previous_enabled_ = at::autocast::is_enabled();
  previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
  at::autocast::set_enabled(true);
  at::autocast::set_autocast_gpu_dtype(mode == MixedPrecision::Fp16 ? c10::kHalf : c10::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_enabled(previous_enabled_);
  at::autocast::set_autocast_gpu_dtype(previous_dtype_);
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
    if (finite && !torch::isfinite(g).all().item<bool>()) finite = false;
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
