#include "dreambooth/models/clip_text_model.h"

#include <string>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/models/attention.h"
#include "dreambooth/models/checkpointing.h"

namespace dreambooth::models {

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipTextConfig& c) {
  token_embedding = register_module("token_embedding", Embedding(c.vocab_size, c.hidden_size));
  position_embedding = register_module("position_embedding", Embedding(c.max_position_embeddings, c.hidden_size));
}

at::Tensor ClipTextEmbeddingsImpl::forward(const at::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "CLIP text model expects ids [B, L]");
  TORCH_CHECK(ids.size(1) <= position_embedding->num_embeddings, "CLIP text model: ", ids.size(1),
              " tokens exceed the ", position_embedding->num_embeddings, " positions");
  const at::Tensor positions = torch::arange(ids.size(1), ids.options().dtype(torch::kLong));
  // [B, L, D] + [L, D]
  return token_embedding(ids) + position_embedding(positions);
}

ClipAttentionImpl::ClipAttentionImpl(const ClipTextConfig& c) : heads_(c.num_attention_heads) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, c.hidden_size));
  k_proj = register_module("k_proj", Linear(c.hidden_size, c.hidden_size));
  v_proj = register_module("v_proj", Linear(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", Linear(c.hidden_size, c.hidden_size));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x) {
  AttentionOptions options;
  options.causal = true;
  // [B, L, D] -> [B, H, L, D/H] -> [B, L, D]
  const at::Tensor out = attention(split_heads(q_proj(x), heads_), split_heads(k_proj(x), heads_),
                                   split_heads(v_proj(x), heads_), options);
  return out_proj(merge_heads(out));
}

ClipMlpImpl::ClipMlpImpl(const ClipTextConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = fc1(x);
  h = quick_gelu_ ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return fc2(h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c) {
  self_attn = register_module("self_attn", ClipAttention(c));
  layer_norm1 = register_module("layer_norm1", LayerNorm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", ClipMlp(c));
  layer_norm2 = register_module("layer_norm2", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x) {
  const at::Tensor h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

ClipEncoderImpl::ClipEncoderImpl(const ClipTextConfig& c) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.num_hidden_layers; ++i) layers->push_back(ClipEncoderLayer(c));
}

ClipTextTransformerImpl::ClipTextTransformerImpl(const ClipTextConfig& c) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(c));
  encoder = register_module("encoder", ClipEncoder(c));
  final_layer_norm = register_module("final_layer_norm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor ClipTextTransformerImpl::run_layers(const at::Tensor& ids, int64_t num_layers,
                                               std::vector<at::Tensor>* hidden_states) {
  at::Tensor h = embeddings(ids);
  if (hidden_states) hidden_states->push_back(h);
  const bool checkpointing = gradient_checkpointing && torch::GradMode::is_enabled();
  for (int64_t i = 0; i < num_layers; ++i) {
    auto layer = encoder->layers->ptr<ClipEncoderLayerImpl>(i);
    if (checkpointing) {
      h = checkpoint([layer](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{layer->forward(in[0])}; },
                     {h}, trainable_parameters_of(*layer))[0];
    } else {
      h = layer->forward(h);
    }
    if (hidden_states) hidden_states->push_back(h);
  }
  return h;
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config) : config_(config) {
  config.validate();
  text_model = register_module("text_model", ClipTextTransformer(config));
}

ClipTextOutput ClipTextModelImpl::forward(const at::Tensor& ids) {
  ClipTextOutput out;
  // --- embeddings and every layer: [B, L] -> [B, L, D]
  const at::Tensor last = text_model->run_layers(ids, config_.num_hidden_layers, &out.hidden_states);
  out.last_hidden_state = text_model->final_layer_norm(last);

  // --- pooler: the state at the first EOS. Legacy configs (eos_token_id 2, as transformers 4.36 treats
  // them) take the largest id instead, which is the EOS of the original CLIP vocabulary.
  const at::Tensor ids_int = ids.to(torch::kInt);
  const at::Tensor eos_position = config_.eos_token_id == 2
                                      ? ids_int.argmax(-1)
                                      : ids_int.eq(config_.eos_token_id).to(torch::kInt).argmax(-1);
  const at::Tensor rows = torch::arange(ids.size(0), eos_position.options());
  out.pooler_output = out.last_hidden_state.index({rows, eos_position});  // [B, D]
  return out;
}

at::Tensor ClipTextModelImpl::encode_prompt(const at::Tensor& ids, int clip_skip) {
  if (clip_skip < 0 || clip_skip >= config_.num_hidden_layers)
    throw usage_error("clip skip " + std::to_string(clip_skip) + " is out of range",
                      "the text encoder has " + std::to_string(config_.num_hidden_layers) + " layers; use 0 to " +
                          std::to_string(config_.num_hidden_layers - 1));
  // hidden_states[-(k+1)] is the output of layer num_layers - k.
  return text_model->final_layer_norm(text_model->run_layers(ids, config_.num_hidden_layers - clip_skip));
}

}  // namespace dreambooth::models
