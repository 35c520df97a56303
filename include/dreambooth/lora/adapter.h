// A LoRA adapter: a low-rank update attached to one Linear or Conv2d through its LayerAdapter hook
// (models/layers.h), so the layer computes
//
//   y = base(x) + multiplier * (alpha / rank) * up(dropout(down(x)))
//
// Linear base [out, in]: down [rank, in], up [out, rank].
// Conv2d base [out, in, k, k] (SD1's proj_in/proj_out are 1x1): down is a conv with the base's kernel, stride
// and padding [rank, in, k, k], up a 1x1 conv [out, rank, 1, 1]. These are the shapes kohya's files store.
// Parameters are registered as "lora_down.weight" and "lora_up.weight" (kohya's key tails).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/layers.h"

namespace dreambooth::lora {

// The layer an adapter belongs to.
struct LayerShape {
  int64_t in = 0;
  int64_t out = 0;
  int64_t kernel = 0;  // 0: a Linear; k: a k x k Conv2d
  int64_t stride = 1;
  int64_t padding = 0;

  bool is_conv() const { return kernel > 0; }
  std::vector<int64_t> weight_shape() const;            // [out, in] or [out, in, k, k]
  std::vector<int64_t> down_shape(int64_t rank) const;  // [rank, in] or [rank, in, k, k]
  std::vector<int64_t> up_shape(int64_t rank) const;    // [out, rank] or [out, rank, 1, 1]
};
LayerShape layer_shape(const models::LinearImpl& layer);
LayerShape layer_shape(const models::Conv2dImpl& layer);

// How `down` starts (up always starts at zero, so a fresh adapter changes nothing):
//   KaimingUniform  kaiming-uniform with a = sqrt(5), i.e. uniform(+-1/sqrt(fan_in)) (kohya, PEFT's default)
//   Normal          normal(0, 1/rank) (PEFT's "gaussian")
enum class LoraInit { KaimingUniform, Normal };

struct LoraAdapterOptions {
  int64_t rank = 4;
  double alpha = 4.0;       // scale = alpha / rank
  double dropout = 0.0;     // on the rank activations, in training mode only (kohya's network_dropout)
  double multiplier = 1.0;  // strength at run time
};

class LoraAdapterImpl : public torch::nn::Module, public models::LayerAdapter {
 public:
  // Parameters are allocated uninitialised with `tensor_options` (dtype, device); call reset_parameters.
  LoraAdapterImpl(const LayerShape& shape, const LoraAdapterOptions& options,
                  const c10::TensorOptions& tensor_options = {});

  // multiplier * scale * up(dropout(down(x))), computed in the adapter's dtype, returned in x's dtype.
  // x: the base layer's input -> the base layer's output shape.
  at::Tensor delta(const at::Tensor& x) override;
  std::vector<at::Tensor> adapter_parameters() const override { return {down, up}; }

  // down as `init` says, drawn on the CPU in float32 from `generator`; up zeros.
  void reset_parameters(LoraInit init, at::Generator& generator);

  // multiplier * scale * up @ down in the base weight's shape, float32, on the adapter's device.
  at::Tensor weight_delta() const;

  double scale() const { return options_.alpha / static_cast<double>(options_.rank); }
  const LayerShape& shape() const { return shape_; }
  const LoraAdapterOptions& options() const { return options_; }
  void set_multiplier(double multiplier) { options_.multiplier = multiplier; }

  at::Tensor down;  // "lora_down.weight"
  at::Tensor up;    // "lora_up.weight"

 private:
  LayerShape shape_;
  LoraAdapterOptions options_;
};
TORCH_MODULE(LoraAdapter);

// The base-weight change of raw LoRA tensors: scale * up @ down in the base weight's shape, float32, on
// down's device. Accepts down [r, in] or [r, in, 1, 1] and up [out, r] or [out, r, 1, 1] for a Linear or a
// 1x1 conv (files disagree on which), down [r, in, k, k] for a k x k conv. Shapes must already fit
// (lora_tensors_fit).
at::Tensor lora_weight_delta(const at::Tensor& down, const at::Tensor& up, const LayerShape& base, double scale);

// Whether down/up are LoRA factors of one rank for this layer (see lora_weight_delta).
bool lora_tensors_fit(at::IntArrayRef down, at::IntArrayRef up, const LayerShape& base);

}  // namespace dreambooth::lora
