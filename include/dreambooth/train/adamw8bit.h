// AdamW with 8-bit moments (--use-8bit-adam): the scheme of bitsandbytes' AdamW8bit (Dettmers et al.
// 2022, "8-bit Optimizers via Block-wise Quantization"), in plain LibTorch tensor ops (CPU and CUDA).
//
// Each moment of a parameter with at least kMin8bitNumel elements is stored as one uint8 code per element
// plus one float32 absmax per block of kQuantBlockSize elements (flattened order, the last block short):
// value = map[code] * absmax(block). The first moment uses the signed dynamic map, the second the
// unsigned one. Smaller parameters keep float32 moments. A step dequantizes both moments, updates them
// and the parameter in float32 exactly as torch::optim::AdamW does (decoupled weight decay, bias
// correction, eps added to sqrt(v_hat)), then quantizes the updated moments with fresh block absmaxes:
// on a fresh state the first step equals AdamW's. As in bitsandbytes, a second moment below ~1.6e-7 of
// its block's absmax rounds to 0; if that element's next gradient nearly vanishes, its step is far larger
// than lr (seen on noise-free quadratics with 100x curvature spread; see adamw8bit_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>

namespace dreambooth::train {

inline constexpr int64_t kQuantBlockSize = 256;    // bitsandbytes' block size for blockwise optimizers
inline constexpr int64_t kMin8bitNumel = 4096;     // bitsandbytes' min_8bit_size

// The 256-entry dynamic ("dynamic tree") quantization map, sorted ascending, float32 on the CPU. The
// magnitudes are midpoints of 2^k (signed) or 2^(k+1) (unsigned) equal steps in [0.1, 1] scaled by 10^(k-6)
// for k = 0..6, plus 0 and 1: signed covers [-0.99297, 1], unsigned [0, 1].
at::Tensor dynamic_quantization_map(bool is_signed);

// A tensor quantized blockwise against a map: `codes` uint8 in the tensor's shape, `absmax` float32
// [ceil(numel / kQuantBlockSize)], both on the tensor's device.
struct BlockQuantized {
  at::Tensor codes;
  at::Tensor absmax;
};

// The 255 midpoints between neighbouring map entries (computed in double, stored as float32): the
// thresholds quantize_blockwise compares against.
at::Tensor quantization_midpoints(const at::Tensor& map);
// Each element becomes the index of the map entry nearest to value / absmax(block), found as the number
// of `midpoints` (quantization_midpoints(map), on x's device) below it: nearest up to the float rounding
// of a midpoint; a value on a midpoint takes the lower entry. A block whose absmax is 0 is all
// code-of-zero.
BlockQuantized quantize_blockwise(const at::Tensor& x, const at::Tensor& midpoints);
// map[codes] * absmax(block), float32 in the codes' shape.
at::Tensor dequantize_blockwise(const BlockQuantized& q, const at::Tensor& map);

// Per-parameter state. quantized(): the moments live in exp_avg_8bit / exp_avg_sq_8bit; otherwise in
// exp_avg / exp_avg_sq (float32).
class AdamW8bitParamState : public torch::optim::OptimizerCloneableParamState<AdamW8bitParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(at::Tensor, exp_avg);
  TORCH_ARG(at::Tensor, exp_avg_sq);
  TORCH_ARG(BlockQuantized, exp_avg_8bit);
  TORCH_ARG(BlockQuantized, exp_avg_sq_8bit);

 public:
  bool quantized() const { return exp_avg_8bit().codes.defined(); }
  int64_t nbytes() const;  // bytes of the moment tensors
};

// Options are torch's AdamWOptions (lr, betas, eps, weight_decay; amsgrad is refused), so param groups and
// set_lr work as for torch::optim::AdamW. Parameters without a gradient are skipped.
class AdamW8bit : public torch::optim::Optimizer {
 public:
  AdamW8bit(std::vector<at::Tensor> params, torch::optim::AdamWOptions defaults);
  at::Tensor step(LossClosure closure = nullptr) override;

  // Whether a parameter of this many elements gets 8-bit moments.
  static bool quantizes(int64_t numel) { return numel >= kMin8bitNumel; }

 private:
  // The maps and their midpoints on one device (copied there once).
  struct Maps {
    c10::Device device;
    at::Tensor signed_map;
    at::Tensor signed_midpoints;
    at::Tensor unsigned_map;
    at::Tensor unsigned_midpoints;
  };
  const Maps& maps_on(c10::Device device);
  std::vector<Maps> maps_;
};

}  // namespace dreambooth::train
