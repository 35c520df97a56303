#include "support/tensor_close.h"

#include <cstdio>
#include <sstream>

#include <torch/torch.h>

namespace dreambooth::testing {

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(torch::kCPU, torch::kDouble) - b.detach().to(torch::kCPU, torch::kDouble))
      .abs()
      .max()
      .item<double>();
}

::testing::AssertionResult tensor_close(const at::Tensor& actual, const at::Tensor& expected, double atol,
                                        double rtol, const std::string& label) {
  std::string name = label.empty() ? "tensor" : label;
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream msg;
    msg << name << ": shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << msg.str();
  }
  if (actual.numel() == 0) return ::testing::AssertionSuccess();
  at::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble).contiguous();
  at::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble).contiguous();
  at::Tensor diff = (a - e).abs();
  at::Tensor allowed = atol + rtol * e.abs();
  at::Tensor bad = (diff > allowed).logical_or(a.isnan() != e.isnan());
  double max_abs = diff.nan_to_num(0).max().item<double>();
  double max_rel = (diff / e.abs().clamp_min(1e-12)).nan_to_num(0).max().item<double>();
  int64_t n_bad = bad.sum().item<int64_t>();
  if (n_bad == 0) {
    std::printf("[close] %s max_abs=%.3g max_rel=%.3g atol=%.3g\n", name.c_str(), max_abs, max_rel, atol);
    return ::testing::AssertionSuccess();
  }
  int64_t flat = bad.reshape(-1).nonzero()[0][0].item<int64_t>();
  std::vector<int64_t> index(a.dim());
  int64_t rest = flat;
  for (int64_t d = a.dim() - 1; d >= 0; --d) {
    index[d] = rest % a.size(d);
    rest /= a.size(d);
  }
  std::ostringstream msg;
  msg << name << ": " << n_bad << " of " << a.numel() << " elements differ; max_abs=" << max_abs
      << " max_rel=" << max_rel << " atol=" << atol << " rtol=" << rtol << "; first bad index [";
  for (size_t i = 0; i < index.size(); ++i) msg << (i ? "," : "") << index[i];
  msg << "] actual=" << a.reshape(-1)[flat].item<double>() << " expected=" << e.reshape(-1)[flat].item<double>();
  return ::testing::AssertionFailure() << msg.str();
}

}  // namespace dreambooth::testing
