#include "dreambooth/lora/adapter.h"

#include <cmath>

#include <torch/torch.h>

namespace dreambooth::lora {

std::vector<int64_t> LayerShape::weight_shape() const {
  if (is_conv()) return {out, in, kernel, kernel};
  return {out, in};
}

std::vector<int64_t> LayerShape::down_shape(int64_t rank) const {
  if (is_conv()) return {rank, in, kernel, kernel};
  return {rank, in};
}

std::vector<int64_t> LayerShape::up_shape(int64_t rank) const {
  if (is_conv()) return {out, rank, 1, 1};
  return {out, rank};
}

LayerShape layer_shape(const models::LinearImpl& layer) {
  return LayerShape{layer.in_features, layer.out_features, 0, 1, 0};
}

LayerShape layer_shape(const models::Conv2dImpl& layer) {
  return LayerShape{layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding};
}

LoraAdapterImpl::LoraAdapterImpl(const LayerShape& shape, const LoraAdapterOptions& options,
                                 const c10::TensorOptions& tensor_options)
    : shape_(shape), options_(options) {
  TORCH_CHECK(options.rank > 0, "LoRA rank must be positive");
  auto holder = [&](const char* name, const std::vector<int64_t>& weight_shape) {
    auto child = register_module(name, std::make_shared<torch::nn::Module>());
    return child->register_parameter("weight", torch::empty(weight_shape, tensor_options));
  };
  down = holder("lora_down", shape.down_shape(options.rank));
  up = holder("lora_up", shape.up_shape(options.rank));
}

at::Tensor LoraAdapterImpl::delta(const at::Tensor& x) {
  const at::Tensor input = x.scalar_type() == down.scalar_type() ? x : x.to(down.scalar_type());
  at::Tensor h;
  if (shape_.is_conv()) {
    // [B, in, H, W] -> [B, rank, H', W'] -> [B, out, H', W']
    h = torch::conv2d(input, down, {}, {shape_.stride, shape_.stride}, {shape_.padding, shape_.padding});
    if (options_.dropout > 0.0) h = torch::dropout(h, options_.dropout, is_training());
    h = torch::conv2d(h, up);
  } else {
    // [..., in] -> [..., rank] -> [..., out]
    h = torch::linear(input, down);
    if (options_.dropout > 0.0) h = torch::dropout(h, options_.dropout, is_training());
    h = torch::linear(h, up);
  }
  h = h * (options_.multiplier * scale());
  return h.scalar_type() == x.scalar_type() ? h : h.to(x.scalar_type());
}

void LoraAdapterImpl::reset_parameters(LoraInit init, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const int64_t fan_in = shape_.in * (shape_.is_conv() ? shape_.kernel * shape_.kernel : 1);
  at::Tensor drawn = torch::empty(down.sizes(), torch::kFloat);
  if (init == LoraInit::KaimingUniform) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    drawn.uniform_(-bound, bound, generator);
  } else {
    drawn.normal_(0.0, 1.0 / static_cast<double>(options_.rank), generator);
  }
  down.copy_(drawn);
  up.zero_();
}

at::Tensor LoraAdapterImpl::weight_delta() const {
  return lora_weight_delta(down, up, shape_, options_.multiplier * scale());
}

bool lora_tensors_fit(at::IntArrayRef down, at::IntArrayRef up, const LayerShape& base) {
  if (down.empty() || up.size() < 2) return false;
  const int64_t rank = down[0];
  if (rank <= 0) return false;
  const bool one_by_one = !base.is_conv() || base.kernel == 1;
  const bool down_fits = (down.size() == 2 && one_by_one && down[1] == base.in) ||
                         (down.size() == 4 && base.is_conv() && down[1] == base.in && down[2] == base.kernel &&
                          down[3] == base.kernel) ||
                         (down.size() == 4 && !base.is_conv() && down[1] == base.in && down[2] == 1 && down[3] == 1);
  const bool up_fits = up[0] == base.out && up[1] == rank &&
                       (up.size() == 2 || (up.size() == 4 && up[2] == 1 && up[3] == 1));
  return down_fits && up_fits;
}

at::Tensor lora_weight_delta(const at::Tensor& down, const at::Tensor& up, const LayerShape& base, double scale) {
  TORCH_CHECK(lora_tensors_fit(down.sizes(), up.sizes(), base), "LoRA factors ", down.sizes(), " / ", up.sizes(),
              " do not fit a layer of weight ", base.weight_shape());
  const int64_t rank = down.size(0);
  // [out, r] @ [r, in * k * k] -> [out, in * k * k] -> the base weight's shape
  const at::Tensor up2 = up.to(torch::kFloat).reshape({base.out, rank});
  const at::Tensor down2 = down.to(up2.device(), torch::kFloat).reshape({rank, -1});
  return torch::mm(up2, down2).mul_(scale).reshape(base.weight_shape());
}

}  // namespace dreambooth::lora
