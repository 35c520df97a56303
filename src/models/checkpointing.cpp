#include "dreambooth/models/checkpointing.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "dreambooth/core/torch_compat.h"
#include "dreambooth/models/layers.h"

namespace dreambooth::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Carries the function from forward to backward through the context's IValue map.
struct CheckpointedFunctionHolder : torch::CustomClassHolder {
  explicit CheckpointedFunctionHolder(CheckpointedFunction f) : function(std::move(f)) {}
  CheckpointedFunction function;
};

// Restores the autocast state the forward pass ran under while the backward pass recomputes.
class AutocastStateScope {
 public:
  AutocastStateScope(bool gpu, bool cpu, at::ScalarType gpu_dtype, at::ScalarType cpu_dtype)
      : gpu_(autocast_enabled(c10::kCUDA)),
        cpu_(autocast_enabled(c10::kCPU)),
        gpu_dtype_(autocast_dtype(c10::kCUDA)),
        cpu_dtype_(autocast_dtype(c10::kCPU)) {
    set_autocast(c10::kCUDA, gpu, gpu_dtype);
    set_autocast(c10::kCPU, cpu, cpu_dtype);
  }
  ~AutocastStateScope() {
    set_autocast(c10::kCUDA, gpu_, gpu_dtype_);
    set_autocast(c10::kCPU, cpu_, cpu_dtype_);
  }
  AutocastStateScope(const AutocastStateScope&) = delete;
  AutocastStateScope& operator=(const AutocastStateScope&) = delete;

 private:
  bool gpu_, cpu_;
  at::ScalarType gpu_dtype_, cpu_dtype_;
};

// Autocast's weight cache off for the scope. The checkpointed forward runs without grad: a low-precision
// weight copy cached there has no autograd history, and the recomputation would reuse it, leaving the weight
// without a gradient (and a copy cached during the recomputation would outlive the step, stale after the
// optimizer's update). Each weight is cast once per block anyway.
class AutocastCacheOff {
 public:
  AutocastCacheOff() : previous_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~AutocastCacheOff() { at::autocast::set_autocast_cache_enabled(previous_); }
  AutocastCacheOff(const AutocastCacheOff&) = delete;
  AutocastCacheOff& operator=(const AutocastCacheOff&) = delete;

 private:
  bool previous_;
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  // Inputs to apply(): the holder (not a variable), then inputs..., then parameters... (each a variable).
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<CheckpointedFunctionHolder> holder,
                               at::TensorList inputs, at::TensorList parameters) {
    ctx->saved_data["function"] = c10::IValue::make_capsule(holder);
    ctx->saved_data["num_inputs"] = static_cast<int64_t>(inputs.size());
    ctx->saved_data["autocast_gpu"] = autocast_enabled(c10::kCUDA);
    ctx->saved_data["autocast_cpu"] = autocast_enabled(c10::kCPU);
    ctx->saved_data["autocast_gpu_dtype"] = static_cast<int64_t>(autocast_dtype(c10::kCUDA));
    ctx->saved_data["autocast_cpu_dtype"] = static_cast<int64_t>(autocast_dtype(c10::kCPU));
    variable_list to_save(inputs.begin(), inputs.end());
    to_save.insert(to_save.end(), parameters.begin(), parameters.end());
    ctx->save_for_backward(to_save);
    AutocastCacheOff no_cache;
    return holder->function(std::vector<at::Tensor>(inputs.begin(), inputs.end()));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<CheckpointedFunctionHolder>(
        ctx->saved_data["function"].toCapsule());
    const auto num_inputs = static_cast<size_t>(ctx->saved_data["num_inputs"].toInt());
    const variable_list saved = ctx->get_saved_variables();

    // Fresh leaves for the inputs, so the recomputed graph ends here.
    std::vector<at::Tensor> inputs;
    for (size_t i = 0; i < num_inputs; ++i) {
      at::Tensor input = saved[i].detach();
      if (saved[i].requires_grad()) input.requires_grad_(true);
      inputs.push_back(input);
    }
    std::vector<at::Tensor> outputs;
    {
      torch::AutoGradMode grad_mode(true);
      AutocastStateScope autocast(ctx->saved_data["autocast_gpu"].toBool(), ctx->saved_data["autocast_cpu"].toBool(),
                                  static_cast<at::ScalarType>(ctx->saved_data["autocast_gpu_dtype"].toInt()),
                                  static_cast<at::ScalarType>(ctx->saved_data["autocast_cpu_dtype"].toInt()));
      AutocastCacheOff no_cache;
      outputs = holder->function(inputs);
    }

    variable_list roots, root_grads;
    for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        root_grads.push_back(grad_outputs[i]);
      }
    }
    // Gradients w.r.t. every input and parameter that needs one.
    variable_list wrt;
    std::vector<size_t> wrt_index;  // position in the apply() variable list (after the holder)
    for (size_t i = 0; i < saved.size(); ++i) {
      const at::Tensor& candidate = i < num_inputs ? inputs[i] : saved[i];
      if (candidate.requires_grad()) {
        wrt.push_back(candidate);
        wrt_index.push_back(i);
      }
    }
    variable_list result(1 + saved.size());  // [holder, inputs..., parameters...]
    if (roots.empty() || wrt.empty()) return result;
    const variable_list grads = torch::autograd::grad(roots, wrt, root_grads, /*retain_graph=*/false,
                                                      /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t j = 0; j < wrt.size(); ++j) result[1 + wrt_index[j]] = grads[j];
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpoint(const CheckpointedFunction& function, const std::vector<at::Tensor>& inputs,
                                   const std::vector<at::Tensor>& parameters) {
  bool any_grad = false;
  for (const auto& t : inputs) any_grad = any_grad || t.requires_grad();
  for (const auto& t : parameters) any_grad = any_grad || t.requires_grad();
  if (!torch::GradMode::is_enabled() || !any_grad) return function(inputs);
  auto holder = c10::make_intrusive<CheckpointedFunctionHolder>(function);
  return CheckpointFunction::apply(holder, at::TensorList(inputs), at::TensorList(parameters));
}

std::vector<at::Tensor> trainable_parameters_of(const torch::nn::Module& module) {
  std::vector<at::Tensor> out;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) out.push_back(p);
  // Adapters hooked into the module's layers (LoRA) are not its children, but the recomputed forward
  // uses them: without them here they would silently get no gradient.
  for (const auto& p : attached_adapter_parameters(module))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

}  // namespace dreambooth::models
