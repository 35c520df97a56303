#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "dreambooth/train/finite.h"

using dreambooth::train::all_finite;

TEST(AllFinite, FindsEveryKindOfNonFiniteValueInEveryFloatType) {
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity()};
  for (const auto type : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    at::Tensor t = torch::randn({3, 1000}).to(type);
    EXPECT_TRUE(all_finite(t)) << type;
    for (double special : specials) {
      at::Tensor bad = t.clone();
      bad[2][777] = special;
      EXPECT_FALSE(all_finite(bad)) << type << " " << special;
      EXPECT_FALSE(all_finite(bad.t())) << "non-contiguous " << type;
    }
  }
  EXPECT_TRUE(all_finite(torch::empty({0})));
  EXPECT_TRUE(all_finite(torch::arange(10)));  // integers are always finite
}
