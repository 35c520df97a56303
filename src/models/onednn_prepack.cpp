#include "dreambooth/models/onednn_prepack.h"

#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "dreambooth/models/layers.h"

namespace dreambooth::models {

bool prepack_available() {
  const char* env = std::getenv("DREAMBOOTH_PREPACK");
  return at::hasMKLDNN() && !(env && std::string(env) == "0");
}

PrepackSummary prepack_convolutions(torch::nn::Module& module) {
  PrepackSummary summary;
  if (!prepack_available()) return summary;
  torch::NoGradGuard no_grad;  // not inference mode: the parameters (normal tensors) get new data below
  for (const auto& child : module.modules(/*include_self=*/true)) {
    auto* conv = dynamic_cast<Conv2dImpl*>(child.get());
    if (!conv || conv->adapter || conv->packed_weight.defined()) continue;
    if (!conv->weight.device().is_cpu() || conv->weight.scalar_type() != at::kFloat) continue;
    const at::Tensor dense = conv->weight.contiguous();
    conv->packed_weight = at::mkldnn_reorder_conv2d_weight(dense.to_mkldnn(), {conv->padding, conv->padding},
                                                           {conv->stride, conv->stride}, {1, 1}, 1);
    if (conv->bias.defined()) conv->packed_bias = conv->bias.contiguous().to_mkldnn();
    summary.bytes += dense.numel() * static_cast<int64_t>(sizeof(float));
    ++summary.layers;
    // The dense copies are dead from now on: give their memory back (shapes kept for anyone who asks).
    conv->weight.set_data(at::empty_strided(dense.sizes(), std::vector<int64_t>(dense.dim(), 0), dense.options()));
    if (conv->bias.defined())
      conv->bias.set_data(at::empty_strided(conv->bias.sizes(), {0}, conv->bias.options()));
  }
  return summary;
}

}  // namespace dreambooth::models
