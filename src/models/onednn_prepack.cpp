#include "dreambooth/models/onednn_prepack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "dreambooth/models/layers.h"

namespace dreambooth::models {
namespace {

// Points a parameter at a 1-element stub (shape kept) and gives its memory back. The loader may have put a
// module's parameters into one shared block, which replacing the data alone would not free: the whole
// pages inside this parameter's bytes are handed back to the kernel as well.
void release_dense(at::Tensor& parameter) {
  const at::Tensor old = parameter.detach();
  parameter.set_data(at::empty_strided(old.sizes(), std::vector<int64_t>(old.dim(), 0), old.options()));
  if (old.storage().nbytes() <= old.nbytes()) return;  // its own allocation: freed with `old`
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(old.data_ptr());
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + old.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

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
    const at::Tensor dense = conv->weight.detach().contiguous();
    conv->packed_weight = at::mkldnn_reorder_conv2d_weight(dense.to_mkldnn(), {conv->padding, conv->padding},
                                                           {conv->stride, conv->stride}, {1, 1}, 1);
    if (conv->bias.defined()) conv->packed_bias = conv->bias.contiguous().to_mkldnn();
    summary.bytes += dense.numel() * static_cast<int64_t>(sizeof(float));
    ++summary.layers;
    // The dense copies are dead from now on.
    release_dense(conv->weight);
    if (conv->bias.defined()) release_dense(conv->bias);
  }
  return summary;
}

}  // namespace dreambooth::models
