#include "dreambooth/train/optimizer.h"

#include <sstream>
#include <type_traits>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/train/adamw8bit.h"

namespace dreambooth::train {
OptimizerStateKey optimizer_state_key(const at::Tensor& parameter) {
  void* impl = parameter.unsafeGetTensorImpl();
  // A generic lambda, so that only the branch matching this LibTorch's key type is instantiated.
  return [impl](auto key_type) -> decltype(key_type) {
    if constexpr (std::is_same_v<decltype(key_type), std::string>) {
      std::ostringstream text;
      text << impl;
      return text.str();
    } else {
      return impl;
    }
  }(OptimizerStateKey{});
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const TrainableParameters& trainable, const TrainOptions& options) {
  torch::optim::AdamWOptions adam(options.learning_rate());
  adam.betas({options.adam_beta1, options.adam_beta2});
  adam.eps(options.adam_epsilon);
  adam.weight_decay(options.adam_weight_decay);
  return std::make_unique<torch::optim::AdamW>(trainable.tensors(), adam);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainableParameters& trainable,
                                                        const TrainOptions& options) {
  if (!options.use_8bit_adam) return make_adamw(trainable, options);
  torch::optim::AdamWOptions adam(options.learning_rate());
  adam.betas({options.adam_beta1, options.adam_beta2});
  adam.eps(options.adam_epsilon);
  adam.weight_decay(options.adam_weight_decay);
  return std::make_unique<AdamW8bit>(trainable.tensors(), adam);
}

int64_t planned_optimizer_state_bytes(const std::vector<at::Tensor>& parameters, bool eight_bit) {
  int64_t total = 0;
  for (const at::Tensor& p : parameters) {
    const int64_t n = p.numel();
    if (!eight_bit) {
      total += 2 * n * static_cast<int64_t>(p.element_size());
    } else if (AdamW8bit::quantizes(n)) {
      const int64_t blocks = (n + kQuantBlockSize - 1) / kQuantBlockSize;
      total += 2 * n + 2 * blocks * static_cast<int64_t>(sizeof(float));
    } else {
      total += 2 * n * static_cast<int64_t>(sizeof(float));
    }
  }
  return total;
}

int64_t optimizer_state_bytes(torch::optim::Optimizer& optimizer) {
  int64_t total = 0;
  for (const auto& [key, state] : optimizer.state()) {
    if (const auto* s8 = dynamic_cast<const AdamW8bitParamState*>(state.get())) {
      total += s8->nbytes();
    } else if (const auto* s = dynamic_cast<const torch::optim::AdamWParamState*>(state.get())) {
      for (const at::Tensor& t : {s->exp_avg(), s->exp_avg_sq(), s->max_exp_avg_sq()})
        if (t.defined()) total += static_cast<int64_t>(t.nbytes());
    }
  }
  return total;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

void release_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad().reset();
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

namespace {

bool is_8bit(torch::optim::Optimizer& optimizer) {
  if (dynamic_cast<AdamW8bit*>(&optimizer)) return true;
  if (dynamic_cast<torch::optim::AdamW*>(&optimizer)) return false;
  throw usage_error("optimizer state: only AdamW and AdamW8bit are supported");
}

void push_moment(std::vector<io::NamedTensor>& out, const std::string& name, const BlockQuantized& q) {
  out.push_back({name + ".codes", q.codes});
  out.push_back({name + ".absmax", q.absmax});
}

// One stored tensor, checked for presence and shape.
at::Tensor load_state_part(const io::SafetensorsReader& reader, const std::string& key,
                           const std::vector<int64_t>& shape, c10::ScalarType dtype, c10::Device device) {
  const io::SafetensorsEntry* entry = reader.find(key);
  if (!entry) throw input_error(reader.path().string(), "optimizer state " + key + " is missing", "the checkpoint is damaged");
  if (entry->shape != shape)
    throw input_error(reader.path().string(), "optimizer state " + key + " has the wrong shape",
                      "the checkpoint belongs to another model");
  return reader.load(key, dtype, device);
}

}  // namespace

std::vector<io::NamedTensor> optimizer_state_tensors(torch::optim::Optimizer& optimizer,
                                                     const TrainableParameters& trainable) {
  const bool eight_bit = is_8bit(optimizer);
  std::vector<io::NamedTensor> out;
  auto& state = optimizer.state();
  for (const auto& [name, tensor] : trainable.parameters) {
    auto it = state.find(optimizer_state_key(tensor));
    if (it == state.end()) continue;
    if (eight_bit) {
      auto& s = static_cast<AdamW8bitParamState&>(*it->second);
      if (s.quantized()) {
        push_moment(out, name + ".exp_avg", s.exp_avg_8bit());
        push_moment(out, name + ".exp_avg_sq", s.exp_avg_sq_8bit());
      } else {
        out.push_back({name + ".exp_avg", s.exp_avg()});
        out.push_back({name + ".exp_avg_sq", s.exp_avg_sq()});
      }
      out.push_back({name + ".step", torch::tensor(s.step(), torch::kLong)});
    } else {
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      out.push_back({name + ".exp_avg", s.exp_avg()});
      out.push_back({name + ".exp_avg_sq", s.exp_avg_sq()});
      out.push_back({name + ".step", torch::tensor(s.step(), torch::kLong)});
    }
  }
  return out;
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const TrainableParameters& trainable,
                          const io::SafetensorsReader& reader) {
  const bool eight_bit = is_8bit(optimizer);
  auto& state = optimizer.state();
  const std::string file = reader.path().string();
  for (const auto& [name, tensor] : trainable.parameters) {
    const bool has_fp32 = reader.contains(name + ".exp_avg") || reader.contains(name + ".exp_avg_sq");
    const bool has_8bit = reader.contains(name + ".exp_avg.codes") || reader.contains(name + ".exp_avg_sq.codes");
    if (!reader.contains(name + ".step")) {
      if (has_fp32 || has_8bit)
        throw input_error(file, "optimizer state for " + name + " has no step count", "the checkpoint is damaged");
      continue;
    }
    const bool expect_8bit = eight_bit && AdamW8bit::quantizes(tensor.numel());
    if (has_8bit != expect_8bit || (!has_8bit && !has_fp32))
      throw input_error(file,
                        "optimizer state for " + name + (has_8bit ? " is 8-bit" : " is not 8-bit") + ", this run " +
                            (eight_bit ? "uses" : "does not use") + " --use-8bit-adam",
                        "resume with the optimizer the checkpoint was written with");
    const int64_t step = reader.load(name + ".step", torch::kLong).item<int64_t>();
    const std::vector<int64_t> shape = tensor.sizes().vec();
    const c10::Device device = tensor.device();
    if (!eight_bit) {
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(step);
      s->exp_avg(load_state_part(reader, name + ".exp_avg", shape, tensor.scalar_type(), device));
      s->exp_avg_sq(load_state_part(reader, name + ".exp_avg_sq", shape, tensor.scalar_type(), device));
      state[optimizer_state_key(tensor)] = std::move(s);
      continue;
    }
    auto s = std::make_unique<AdamW8bitParamState>();
    s->step(step);
    if (expect_8bit) {
      const std::vector<int64_t> blocks = {(tensor.numel() + kQuantBlockSize - 1) / kQuantBlockSize};
      for (const char* part : {".exp_avg", ".exp_avg_sq"}) {
        BlockQuantized q;
        q.codes = load_state_part(reader, name + part + ".codes", shape, torch::kByte, device);
        q.absmax = load_state_part(reader, name + part + ".absmax", blocks, torch::kFloat, device);
        if (std::string(part) == ".exp_avg") s->exp_avg_8bit(q); else s->exp_avg_sq_8bit(q);
      }
    } else {
      s->exp_avg(load_state_part(reader, name + ".exp_avg", shape, torch::kFloat, device));
      s->exp_avg_sq(load_state_part(reader, name + ".exp_avg_sq", shape, torch::kFloat, device));
    }
    state[optimizer_state_key(tensor)] = std::move(s);
  }
}

}  // namespace dreambooth::train
