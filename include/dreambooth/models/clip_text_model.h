// CLIPTextModel (transformers) built from a ClipTextConfig, with transformers' parameter names under
// "text_model": embeddings.{token,position}_embedding, encoder.layers.N.{self_attn.{q,k,v,out}_proj,
// layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}, final_layer_norm.
//
// Pre-LN transformer with a causal mask only (no padding mask: every one of the 77 positions, padding
// included, reaches the UNet).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "dreambooth/models/clip_text_config.h"
#include "dreambooth/models/layers.h"

namespace dreambooth::models {

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipTextEmbeddingsImpl(const ClipTextConfig& config);
  // ids [B, L] -> token + position embeddings [B, L, D]
  at::Tensor forward(const at::Tensor& ids);

  Embedding token_embedding{nullptr};
  Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);  // causal self-attention, [B, L, D] -> [B, L, D]

  Linear q_proj{nullptr};
  Linear k_proj{nullptr};
  Linear v_proj{nullptr};
  Linear out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  explicit ClipMlpImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);  // fc2(act(fc1(x))), act = quick_gelu or gelu (erf)

  Linear fc1{nullptr};
  Linear fc2{nullptr};

 private:
  bool quick_gelu_;
};
TORCH_MODULE(ClipMlp);

// x += self_attn(layer_norm1(x)); x += mlp(layer_norm2(x))
class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);  // [B, L, D] -> [B, L, D]

  ClipAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr};
  ClipMlp mlp{nullptr};
  LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderImpl(const ClipTextConfig& config);

  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

struct ClipTextOutput {
  at::Tensor last_hidden_state;            // [B, L, D], after final_layer_norm
  std::vector<at::Tensor> hidden_states;   // num_layers + 1 entries of [B, L, D]: embeddings, then each layer
  at::Tensor pooler_output;                // [B, D]: last_hidden_state at the EOS position
};

class ClipTextTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipTextTransformerImpl(const ClipTextConfig& config);
  // Runs the embeddings and the first `num_layers` layers; every state is appended to `hidden_states`
  // when given. Returns the raw output of the last layer run: [B, L] -> [B, L, D].
  at::Tensor run_layers(const at::Tensor& ids, int64_t num_layers, std::vector<at::Tensor>* hidden_states = nullptr);

  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  LayerNorm final_layer_norm{nullptr};
  // Gradient checkpointing of every encoder layer (set through ClipTextModel).
  bool gradient_checkpointing = false;
};
TORCH_MODULE(ClipTextTransformer);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);

  // ids [B, L] (int64, L <= max_position_embeddings) -> every output of transformers' CLIPTextModel.
  ClipTextOutput forward(const at::Tensor& ids);
  // What diffusers feeds the UNet: clip_skip 0 -> last_hidden_state; k > 0 ->
  // final_layer_norm(hidden_states[-(k+1)]). Layers after the one used are not run. [B, L] -> [B, L, D].
  // Throws a usage error unless 0 <= clip_skip < num_hidden_layers.
  at::Tensor encode_prompt(const at::Tensor& ids, int clip_skip = 0);

  const ClipTextConfig& config() const { return config_; }

  // Gradient checkpointing (models/checkpointing.h): while on and grad mode is enabled, every encoder
  // layer recomputes its activations in the backward pass.
  void set_gradient_checkpointing(bool enabled) { text_model->gradient_checkpointing = enabled; }
  bool gradient_checkpointing() const { return text_model->gradient_checkpointing; }

  ClipTextTransformer text_model{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextModel);

}  // namespace dreambooth::models
