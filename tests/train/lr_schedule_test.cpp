// LR schedules against diffusers.optimization's formulas, evaluated by hand.
#include <cmath>

#include <gtest/gtest.h>

#include "dreambooth/train/lr_schedule.h"

using dreambooth::train::LrSchedule;
using dreambooth::train::LrSchedulerKind;

namespace {

constexpr double kExact = 1e-12;

LrSchedule schedule(LrSchedulerKind kind, int warmup = 10, int total = 100) {
  LrSchedule s;
  s.kind = kind;
  s.base_lr = 1e-3;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}

}  // namespace

TEST(LrSchedule, ConstantIgnoresWarmupLikeDiffusers) {
  const LrSchedule s = schedule(LrSchedulerKind::Constant);
  for (int step : {0, 5, 10, 99, 500}) EXPECT_NEAR(s.multiplier(step), 1.0, kExact);
}

TEST(LrSchedule, ConstantWithWarmupRampsFromZero) {
  const LrSchedule s = schedule(LrSchedulerKind::ConstantWithWarmup);
  EXPECT_NEAR(s.multiplier(0), 0.0, kExact);
  EXPECT_NEAR(s.multiplier(5), 0.5, kExact);
  EXPECT_NEAR(s.multiplier(10), 1.0, kExact);
  EXPECT_NEAR(s.lr(99), 1e-3, kExact);
}

TEST(LrSchedule, LinearWarmupThenDecayToZero) {
  const LrSchedule s = schedule(LrSchedulerKind::Linear);
  EXPECT_NEAR(s.multiplier(0), 0.0, kExact);
  EXPECT_NEAR(s.multiplier(3), 0.3, kExact);
  EXPECT_NEAR(s.multiplier(10), 1.0, kExact);
  EXPECT_NEAR(s.multiplier(55), 45.0 / 90.0, kExact);
  EXPECT_NEAR(s.multiplier(100), 0.0, kExact);
  EXPECT_NEAR(s.multiplier(120), 0.0, kExact);  // floored
}

TEST(LrSchedule, CosineHalfWave) {
  const LrSchedule s = schedule(LrSchedulerKind::Cosine);
  EXPECT_NEAR(s.multiplier(10), 1.0, kExact);
  EXPECT_NEAR(s.multiplier(55), 0.5, kExact);  // progress 0.5
  EXPECT_NEAR(s.multiplier(40), 0.5 * (1 + std::cos(M_PI * 30.0 / 90.0)), kExact);
  EXPECT_NEAR(s.multiplier(100), 0.0, kExact);
}

TEST(LrSchedule, CosineWithRestartsStartsEachCycleAtOne) {
  LrSchedule s = schedule(LrSchedulerKind::CosineWithRestarts, 0, 100);
  s.num_cycles = 2;
  EXPECT_NEAR(s.multiplier(0), 1.0, kExact);
  EXPECT_NEAR(s.multiplier(25), 0.5, kExact);   // (2 * 0.25) mod 1 = 0.5
  EXPECT_NEAR(s.multiplier(50), 1.0, kExact);   // restart
  EXPECT_NEAR(s.multiplier(75), 0.5, kExact);
  EXPECT_NEAR(s.multiplier(100), 0.0, kExact);  // progress >= 1
}

TEST(LrSchedule, PolynomialDecaysToLrEnd) {
  LrSchedule s = schedule(LrSchedulerKind::Polynomial);
  s.power = 2.0;
  const double range = 1e-3 - 1e-7;
  EXPECT_NEAR(s.multiplier(5), 0.5, kExact);
  EXPECT_NEAR(s.multiplier(10), 1.0, kExact);
  EXPECT_NEAR(s.multiplier(55), (range * 0.25 + 1e-7) / 1e-3, kExact);
  EXPECT_NEAR(s.multiplier(100), 1e-7 / 1e-3, kExact);
  EXPECT_NEAR(s.multiplier(150), 1e-7 / 1e-3, kExact);
}
