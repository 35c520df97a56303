// Learning-rate schedules, as diffusers.optimization.get_scheduler builds them (a LambdaLR over
// optimizer steps): lr(step) = base_lr * multiplier(step), step = optimizer steps already taken
// (0 for the first update).
//   constant              1 (warmup ignored, as in diffusers)
//   constant_with_warmup  step/warmup during warmup, then 1
//   linear                warmup, then (total - step) / (total - warmup), floored at 0
//   cosine                warmup, then 0.5 (1 + cos(pi * 2 * 0.5 * progress))
//   cosine_with_restarts  warmup, then 0.5 (1 + cos(pi * ((cycles * progress) mod 1))), 0 from progress 1 on
//   polynomial            warmup, then ((base - end) (1 - progress)^power + end) / base, end = 1e-7
// with progress = (step - warmup) / (total - warmup).
#pragma once

#include "dreambooth/train/options.h"

namespace dreambooth::train {

struct LrSchedule {
  LrSchedulerKind kind = LrSchedulerKind::Constant;
  double base_lr = 5e-6;
  int warmup_steps = 0;
  int total_steps = 1;
  int num_cycles = 1;     // cosine_with_restarts
  double power = 1.0;     // polynomial
  double lr_end = 1e-7;   // polynomial

  double multiplier(int step) const;
  double lr(int step) const { return base_lr * multiplier(step); }
};

LrSchedule make_lr_schedule(const TrainOptions& options);

}  // namespace dreambooth::train
