// The one tensor comparison used by every test: reports max abs/rel difference and the first bad index.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

namespace dreambooth::testing {

// |actual - expected| <= atol + rtol * |expected| elementwise, shapes equal, no NaN.
// On success also prints "[close] <label> max_abs=... " so parity figures appear in test logs.
::testing::AssertionResult tensor_close(const at::Tensor& actual, const at::Tensor& expected, double atol,
                                        double rtol = 0.0, const std::string& label = "");

double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

}  // namespace dreambooth::testing

#define EXPECT_TENSOR_CLOSE(actual, expected, atol, label) \
  EXPECT_TRUE(::dreambooth::testing::tensor_close((actual), (expected), (atol), 0.0, (label)))
#define ASSERT_TENSOR_CLOSE(actual, expected, atol, label) \
  ASSERT_TRUE(::dreambooth::testing::tensor_close((actual), (expected), (atol), 0.0, (label)))
