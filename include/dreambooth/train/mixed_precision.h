// Mixed-precision training on CUDA: fp32 master weights (the modules stay float32), LibTorch autocast
// around the forward passes, and for fp16 a dynamic loss scale (torch.cuda.amp.GradScaler's rules).
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "dreambooth/train/options.h"

namespace dreambooth::train {

// Autocast (fp16 or bf16) on for the scope when `mode` is not No and the device is CUDA; otherwise
// nothing happens. Autocast's weight cache stays off (see mixed_precision.cpp). Restores the previous
// state on exit.
class AutocastScope {
 public:
  AutocastScope(MixedPrecision mode, c10::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  bool previous_cache_enabled_ = true;
  c10::ScalarType previous_dtype_ = c10::kHalf;
};

// GradScaler: the loss is multiplied by scale() before backward; unscale_and_check() divides the
// gradients back and reports whether they are finite. A step with non-finite gradients is skipped and
// the scale halves; after `growth_interval` good steps in a row it doubles.
class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial_scale = 65536.0, int growth_interval = 2000);
  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  // Divides every defined gradient by the scale (when enabled); true when all are finite.
  bool unscale_and_check(const std::vector<at::Tensor>& parameters) const;
  // After each optimizer step attempt: found_finite = what unscale_and_check returned.
  void update(bool found_finite);

  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& json);

 private:
  bool enabled_;
  double scale_;
  int growth_interval_;
  int good_steps_ = 0;
};

}  // namespace dreambooth::train
