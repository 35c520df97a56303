#include "dreambooth/train/optimizer.h"

#include <sstream>
#include <type_traits>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::train {
namespace {

// torch::optim keys its per-parameter state by the parameter's TensorImpl: printed to a string in
// LibTorch 1.x, the pointer itself in 2.x.
using StateKey = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <typename Key = StateKey>  // a template, so that only the matching branch is compiled
Key state_key(const at::Tensor& parameter) {
  void* impl = parameter.unsafeGetTensorImpl();
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << impl;
    return text.str();
  } else {
    return impl;
  }
}

}  // namespace

std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainableParameters& trainable, const TrainOptions& options) {
  torch::optim::AdamWOptions adam(options.learning_rate());
  adam.betas({options.adam_beta1, options.adam_beta2});
  adam.eps(options.adam_epsilon);
  adam.weight_decay(options.adam_weight_decay);
  return std::make_unique<torch::optim::AdamW>(trainable.tensors(), adam);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

at::Tensor total_grad_norm(const std::vector<at::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& p : parameters) {
    const at::Tensor& g = p.grad();
    if (g.defined()) norms.push_back(at::linalg_vector_norm(g.detach(), 2).to(torch::kFloat));
  }
  if (norms.empty()) return torch::zeros({}, torch::kFloat);
  const c10::Device device = norms.front().device();
  for (auto& n : norms) n = n.to(device);
  return at::linalg_vector_norm(torch::stack(norms), 2);
}

double clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  const at::Tensor total = total_grad_norm(parameters);
  // Python's `max_norm / tensor` is reciprocal(tensor) * max_norm.
  const at::Tensor coefficient = ((total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
  for (const at::Tensor& p : parameters) {
    at::Tensor g = p.grad();
    if (g.defined()) g.mul_(coefficient.to(g.device()));
  }
  return total.item<double>();
}

std::vector<io::NamedTensor> adamw_state_tensors(torch::optim::AdamW& optimizer, const TrainableParameters& trainable) {
  std::vector<io::NamedTensor> out;
  auto& state = optimizer.state();
  for (const auto& [name, tensor] : trainable.parameters) {
    auto it = state.find(state_key(tensor));
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.push_back({name + ".exp_avg", s.exp_avg()});
    out.push_back({name + ".exp_avg_sq", s.exp_avg_sq()});
    out.push_back({name + ".step", torch::tensor(s.step(), torch::kLong)});
  }
  return out;
}

void load_adamw_state(torch::optim::AdamW& optimizer, const TrainableParameters& trainable,
                      const io::SafetensorsReader& reader) {
  auto& state = optimizer.state();
  const std::string file = reader.path().string();
  for (const auto& [name, tensor] : trainable.parameters) {
    const bool has_step = reader.contains(name + ".step");
    if (!has_step) {
      if (reader.contains(name + ".exp_avg") || reader.contains(name + ".exp_avg_sq"))
        throw input_error(file, "optimizer state for " + name + " has no step count", "the checkpoint is damaged");
      continue;
    }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(reader.load(name + ".step", torch::kLong).item<int64_t>());
    for (const char* part : {".exp_avg", ".exp_avg_sq"}) {
      const io::SafetensorsEntry* entry = reader.find(name + part);
      if (!entry) throw input_error(file, "optimizer state " + name + part + " is missing", "the checkpoint is damaged");
      if (entry->shape != tensor.sizes().vec())
        throw input_error(file, "optimizer state " + name + part + " has the wrong shape",
                          "the checkpoint belongs to another model");
      at::Tensor value = reader.load(name + part, tensor.scalar_type(), tensor.device());
      if (std::string(part) == ".exp_avg") s->exp_avg(value); else s->exp_avg_sq(value);
    }
    state[state_key(tensor)] = std::move(s);
  }
}

}  // namespace dreambooth::train
