#include "dreambooth/schedulers/noise_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/tensor_close.h"

namespace dreambooth::testing {
namespace {

using schedulers::SeededNoiseSource;

// torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(42)) starts with these (printed to
// 4 decimals by PyTorch).
constexpr double kPrintedDigits = 5e-5;

TEST(SeededNoiseSource, MatchesTorchManualSeed42) {
  SeededNoiseSource noise(42);
  const at::Tensor x = noise.randn({1, 4, 8, 8});
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 4, 8, 8}));
  const at::Tensor expected =
      torch::tensor({1.9269, 1.4873, 0.9007, -2.1055, 0.6784, -1.2345, -0.0431, -1.6047}, torch::kFloat32);
  EXPECT_TENSOR_CLOSE(x.flatten().slice(0, 0, 8), expected, kPrintedDigits, "randn seed 42");
}

TEST(SeededNoiseSource, SameSeedSameStreamAndDrawsAdvance) {
  SeededNoiseSource a(7), b(7), c(8);
  const at::Tensor a1 = a.randn({2, 4, 8, 8});
  EXPECT_TRUE(torch::equal(a1, b.randn({2, 4, 8, 8})));
  EXPECT_FALSE(torch::equal(a1, c.randn({2, 4, 8, 8})));
  EXPECT_FALSE(torch::equal(a1, a.randn({2, 4, 8, 8})));
}

TEST(SeededNoiseSource, DrawsInTheRequestedDtype) {
  SeededNoiseSource noise(1);
  const at::Tensor x = noise.randn({1, 4, 4, 4}, torch::kFloat64);
  EXPECT_EQ(x.scalar_type(), torch::kFloat64);
  EXPECT_EQ(x.device(), torch::Device(torch::kCPU));
}

}  // namespace
}  // namespace dreambooth::testing
