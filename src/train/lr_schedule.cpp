#include "dreambooth/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace dreambooth::train {

double LrSchedule::multiplier(int step) const {
  const double s = step;
  if (kind == LrSchedulerKind::Constant) return 1.0;
  if (step < warmup_steps) return s / std::max(1, warmup_steps);
  const double progress = (s - warmup_steps) / std::max(1, total_steps - warmup_steps);
  switch (kind) {
    case LrSchedulerKind::Constant:
    case LrSchedulerKind::ConstantWithWarmup:
      return 1.0;
    case LrSchedulerKind::Linear:
      return std::max(0.0, static_cast<double>(total_steps - step) / std::max(1, total_steps - warmup_steps));
    case LrSchedulerKind::Cosine:
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * 0.5 * progress)));
    case LrSchedulerKind::CosineWithRestarts:
      if (progress >= 1.0) return 0.0;
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::fmod(num_cycles * progress, 1.0))));
    case LrSchedulerKind::Polynomial: {
      if (step > total_steps) return lr_end / base_lr;
      const double range = base_lr - lr_end;
      const double remaining = 1.0 - (s - warmup_steps) / std::max(1, total_steps - warmup_steps);
      return (range * std::pow(remaining, power) + lr_end) / base_lr;
    }
  }
  return 1.0;
}

LrSchedule make_lr_schedule(const TrainOptions& options) {
  LrSchedule schedule;
  schedule.kind = options.lr_scheduler;
  schedule.base_lr = options.learning_rate();
  schedule.warmup_steps = options.lr_warmup_steps;
  schedule.total_steps = options.steps;
  schedule.num_cycles = options.lr_num_cycles;
  schedule.power = options.lr_power;
  return schedule;
}

}  // namespace dreambooth::train
