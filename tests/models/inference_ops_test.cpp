// The in-place inference steps: the same numbers as the out-of-place ones, and never in place while
// autograd records.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/models/inference_ops.h"
#include "dreambooth/models/init.h"
#include "dreambooth/models/resnet.h"

using namespace dreambooth;

TEST(InferenceOps, InPlaceOnlyWhereAutogradRecordsNothing) {
  const at::Tensor x = torch::randn({2, 8, 4, 4});
  {
    c10::InferenceMode inference;
    at::Tensor fresh = x.clone();
    const void* storage = fresh.data_ptr();
    at::Tensor y = models::silu_of_fresh(std::move(fresh));
    EXPECT_EQ(y.data_ptr(), storage);
    EXPECT_TRUE(torch::equal(y, torch::silu(x)));
  }
  at::Tensor input = x.clone().requires_grad_(true);
  at::Tensor fresh = input * 1.0;
  at::Tensor kept = fresh;  // autograd's view of it must not change
  at::Tensor y = models::silu_of_fresh(fresh);
  EXPECT_NE(y.data_ptr(), kept.data_ptr());
  EXPECT_TRUE(torch::equal(kept, x));
  y.sum().backward();
  EXPECT_TRUE(input.grad().defined());
}

TEST(InferenceOps, AddFallsBackWhereTheResultWouldNotFitInPlace) {
  c10::InferenceMode inference;
  const at::Tensor row = torch::randn({1, 3});
  const at::Tensor full = torch::randn({2, 3});
  EXPECT_TRUE(torch::equal(models::add_to_fresh(row.clone(), full), row + full));  // broadcast grows it
  const at::Tensor doubles = torch::randn({2, 3}, torch::kDouble);
  at::Tensor mixed = models::add_to_fresh(full.clone(), doubles);  // the result type is wider
  EXPECT_EQ(mixed.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(mixed, full + doubles));
  at::Tensor same = full.clone();
  const void* storage = same.data_ptr();
  EXPECT_EQ(models::add_to_fresh(std::move(same), full).data_ptr(), storage);
}

TEST(InferenceOps, ResnetBlockGivesTheSameBitsWithAndWithoutAutograd) {
  models::ResnetBlockOptions options;
  options.in_channels = 32;
  options.out_channels = 64;
  options.temb_channels = 16;
  options.groups = 8;
  options.output_scale_factor = 2.0;
  models::ResnetBlock2D block(options);
  models::init_random_weights(*block, 3);
  const at::Tensor x = torch::randn({2, 32, 8, 8});
  const at::Tensor temb = torch::randn({2, 16});
  const at::Tensor recorded = block->forward(x, temb);
  ASSERT_TRUE(recorded.requires_grad());
  c10::InferenceMode inference;
  EXPECT_TRUE(torch::equal(block->forward(x, temb), recorded.detach()));
}
