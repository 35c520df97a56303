#include "dreambooth/checkpoint/key_tables.h"

#include <algorithm>
#include <utility>

namespace dreambooth::checkpoint {
namespace {

std::string at_index(const std::string& prefix, int index) { return join_key(prefix, std::to_string(index)); }

// ---------------------------------------------------------------------------------------------------
// Rows

// LDM ResBlock <-> diffusers ResnetBlock2D (UNet, with a time-embedding projection).
void add_unet_resnet_rows(std::vector<PrefixRow>& rows, const std::string& ldm, const std::string& hf) {
  static const std::pair<const char*, const char*> kParts[] = {
      {"in_layers.0", "norm1"},  {"in_layers.2", "conv1"},  {"emb_layers.1", "time_emb_proj"},
      {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"},
  };
  for (const auto& [ldm_part, hf_part] : kParts) rows.push_back({join_key(ldm, ldm_part), join_key(hf, hf_part)});
}

// LDM VAE ResnetBlock <-> diffusers ResnetBlock2D (same inner names except the shortcut).
void add_vae_resnet_rows(std::vector<PrefixRow>& rows, const std::string& ldm, const std::string& hf) {
  rows.push_back({ldm, hf});
  rows.push_back({join_key(ldm, "nin_shortcut"), join_key(hf, "conv_shortcut")});
}

// Encoder/decoder mid block: two resnets around a single-head attention stored as 1x1 convolutions.
void add_vae_mid_rows(std::vector<PrefixRow>& rows, const std::string& ldm_side, const std::string& hf_side) {
  const std::string ldm = join_key(ldm_side, "mid");
  const std::string hf = join_key(hf_side, "mid_block");
  add_vae_resnet_rows(rows, join_key(ldm, "block_1"), join_key(hf, "resnets.0"));
  add_vae_resnet_rows(rows, join_key(ldm, "block_2"), join_key(hf, "resnets.1"));
  const std::string ldm_attn = join_key(ldm, "attn_1");
  const std::string hf_attn = join_key(hf, "attentions.0");
  rows.push_back({join_key(ldm_attn, "norm"), join_key(hf_attn, "group_norm")});
  static const std::pair<const char*, const char*> kProjections[] = {
      {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"}};
  for (const auto& [ldm_part, hf_part] : kProjections)
    rows.push_back({join_key(ldm_attn, ldm_part), join_key(hf_attn, hf_part), Transform::ConvToLinear});
}

// ---------------------------------------------------------------------------------------------------
// Tensor specs

class Specs {
 public:
  std::vector<TensorSpec> take() { return std::move(out_); }

  void tensor(const std::string& key, std::vector<int64_t> shape) { out_.push_back({key, std::move(shape)}); }
  void linear(const std::string& prefix, int64_t in, int64_t out, bool bias = true) {
    tensor(join_key(prefix, "weight"), {out, in});
    if (bias) tensor(join_key(prefix, "bias"), {out});
  }
  void conv(const std::string& prefix, int64_t in, int64_t out, int64_t kernel) {
    tensor(join_key(prefix, "weight"), {out, in, kernel, kernel});
    tensor(join_key(prefix, "bias"), {out});
  }
  void norm(const std::string& prefix, int64_t channels) {
    tensor(join_key(prefix, "weight"), {channels});
    tensor(join_key(prefix, "bias"), {channels});
  }

  // ResnetBlock2D; temb_channels 0 = no time embedding (VAE).
  void resnet(const std::string& prefix, int64_t in, int64_t out, int64_t temb_channels) {
    norm(join_key(prefix, "norm1"), in);
    conv(join_key(prefix, "conv1"), in, out, 3);
    if (temb_channels > 0) linear(join_key(prefix, "time_emb_proj"), temb_channels, out);
    norm(join_key(prefix, "norm2"), out);
    conv(join_key(prefix, "conv2"), out, out, 3);
    if (in != out) conv(join_key(prefix, "conv_shortcut"), in, out, 1);
  }

  // Transformer2DModel with `depth` BasicTransformerBlocks; inner dim = heads * (channels / heads) = channels.
  void transformer(const std::string& prefix, int64_t channels, int64_t cross_dim, int depth, bool linear_proj) {
    const int64_t c = channels;
    norm(join_key(prefix, "norm"), c);
    if (linear_proj)
      linear(join_key(prefix, "proj_in"), c, c);
    else
      conv(join_key(prefix, "proj_in"), c, c, 1);
    for (int k = 0; k < depth; ++k) {
      const std::string block = at_index(join_key(prefix, "transformer_blocks"), k);
      norm(join_key(block, "norm1"), c);
      attention(join_key(block, "attn1"), c, c);
      norm(join_key(block, "norm2"), c);
      attention(join_key(block, "attn2"), c, cross_dim);
      norm(join_key(block, "norm3"), c);
      linear(join_key(block, "ff.net.0.proj"), c, 8 * c);  // GEGLU: value and gate, 4c each
      linear(join_key(block, "ff.net.2"), 4 * c, c);
    }
    if (linear_proj)
      linear(join_key(prefix, "proj_out"), c, c);
    else
      conv(join_key(prefix, "proj_out"), c, c, 1);
  }

  void attention(const std::string& prefix, int64_t c, int64_t context_dim) {
    linear(join_key(prefix, "to_q"), c, c, false);
    linear(join_key(prefix, "to_k"), context_dim, c, false);
    linear(join_key(prefix, "to_v"), context_dim, c, false);
    linear(join_key(prefix, "to_out.0"), c, c);
  }

  // The VAE's single-head mid-block attention (diffusers Attention with biases and a group norm).
  void vae_attention(const std::string& prefix, int64_t c) {
    norm(join_key(prefix, "group_norm"), c);
    for (const char* name : {"to_q", "to_k", "to_v", "to_out.0"}) linear(join_key(prefix, name), c, c);
  }

 private:
  std::vector<TensorSpec> out_;
};

}  // namespace

std::vector<PrefixRow> unet_rows(const models::UNetConfig& config) {
  const std::string root = kLdmUnetRoot;
  const int n = config.num_blocks();
  const int layers = config.layers_per_block;
  std::vector<PrefixRow> rows = {
      {join_key(root, "time_embed.0"), "time_embedding.linear_1"},
      {join_key(root, "time_embed.2"), "time_embedding.linear_2"},
      {join_key(root, "input_blocks.0.0"), "conv_in"},
  };
  // Down path: input_blocks.0 is conv_in; each level then holds `layers` resnet(+attention) blocks
  // followed by one downsample block (all levels but the last).
  for (int i = 0; i < n; ++i) {
    const std::string hf = at_index("down_blocks", i);
    for (int j = 0; j < layers; ++j) {
      const std::string ldm = at_index(join_key(root, "input_blocks"), 1 + i * (layers + 1) + j);
      add_unet_resnet_rows(rows, join_key(ldm, "0"), at_index(join_key(hf, "resnets"), j));
      if (config.down_block_has_attention(i)) rows.push_back({join_key(ldm, "1"), at_index(join_key(hf, "attentions"), j)});
    }
    if (i < n - 1)
      rows.push_back({join_key(at_index(join_key(root, "input_blocks"), (i + 1) * (layers + 1)), "0.op"),
                      join_key(hf, "downsamplers.0.conv")});
  }
  // Mid: resnet, attention, resnet.
  add_unet_resnet_rows(rows, join_key(root, "middle_block.0"), "mid_block.resnets.0");
  rows.push_back({join_key(root, "middle_block.1"), "mid_block.attentions.0"});
  add_unet_resnet_rows(rows, join_key(root, "middle_block.2"), "mid_block.resnets.1");
  // Up path: `layers + 1` blocks per level; the last one of a level also carries the upsampler,
  // after the attention when the level has one.
  for (int i = 0; i < n; ++i) {
    const std::string hf = at_index("up_blocks", i);
    const bool attention = config.up_block_has_attention(i);
    for (int j = 0; j <= layers; ++j) {
      const std::string ldm = at_index(join_key(root, "output_blocks"), i * (layers + 1) + j);
      add_unet_resnet_rows(rows, join_key(ldm, "0"), at_index(join_key(hf, "resnets"), j));
      if (attention) rows.push_back({join_key(ldm, "1"), at_index(join_key(hf, "attentions"), j)});
    }
    if (i < n - 1) {
      const std::string ldm = at_index(join_key(root, "output_blocks"), i * (layers + 1) + layers);
      rows.push_back({join_key(ldm, attention ? "2" : "1"), join_key(hf, "upsamplers.0")});
    }
  }
  rows.push_back({join_key(root, "out.0"), "conv_norm_out"});
  rows.push_back({join_key(root, "out.2"), "conv_out"});
  return rows;
}

std::vector<PrefixRow> vae_rows(const models::VaeConfig& config) {
  const std::string root = kLdmVaeRoot;
  const int n = config.num_blocks();
  const int layers = config.layers_per_block;
  std::vector<PrefixRow> rows;

  const std::string enc = join_key(root, "encoder");
  rows.push_back({join_key(enc, "conv_in"), "encoder.conv_in"});
  for (int i = 0; i < n; ++i) {
    const std::string ldm = at_index(join_key(enc, "down"), i);
    const std::string hf = at_index("encoder.down_blocks", i);
    for (int j = 0; j < layers; ++j)
      add_vae_resnet_rows(rows, at_index(join_key(ldm, "block"), j), at_index(join_key(hf, "resnets"), j));
    if (i < n - 1) rows.push_back({join_key(ldm, "downsample.conv"), join_key(hf, "downsamplers.0.conv")});
  }
  add_vae_mid_rows(rows, enc, "encoder");
  rows.push_back({join_key(enc, "norm_out"), "encoder.conv_norm_out"});
  rows.push_back({join_key(enc, "conv_out"), "encoder.conv_out"});

  // The decoder's LDM `up` list runs from the highest resolution; diffusers' up_blocks from the lowest.
  const std::string dec = join_key(root, "decoder");
  rows.push_back({join_key(dec, "conv_in"), "decoder.conv_in"});
  add_vae_mid_rows(rows, dec, "decoder");
  for (int i = 0; i < n; ++i) {
    const std::string ldm = at_index(join_key(dec, "up"), n - 1 - i);
    const std::string hf = at_index("decoder.up_blocks", i);
    for (int j = 0; j <= layers; ++j)
      add_vae_resnet_rows(rows, at_index(join_key(ldm, "block"), j), at_index(join_key(hf, "resnets"), j));
    if (i < n - 1) rows.push_back({join_key(ldm, "upsample.conv"), join_key(hf, "upsamplers.0.conv")});
  }
  rows.push_back({join_key(dec, "norm_out"), "decoder.conv_norm_out"});
  rows.push_back({join_key(dec, "conv_out"), "decoder.conv_out"});

  rows.push_back({join_key(root, "quant_conv"), "quant_conv"});
  rows.push_back({join_key(root, "post_quant_conv"), "post_quant_conv"});
  return rows;
}

std::vector<PrefixRow> text_encoder_rows(const models::ClipTextConfig& config, Family family) {
  if (family == Family::Sd1) return {{join_key(kLdmSd1TextRoot, "text_model"), "text_model"}};

  const std::string root = kLdmSd2TextRoot;
  std::vector<PrefixRow> rows = {
      {join_key(root, "token_embedding"), "text_model.embeddings.token_embedding"},
      {join_key(root, "positional_embedding"), "text_model.embeddings.position_embedding.weight"},  // a full key
      {join_key(root, "ln_final"), "text_model.final_layer_norm"},
  };
  for (int n = 0; n < config.num_hidden_layers; ++n) {
    const std::string ldm = at_index(join_key(root, "transformer.resblocks"), n);
    const std::string hf = at_index("text_model.encoder.layers", n);
    rows.push_back({join_key(ldm, "ln_1"), join_key(hf, "layer_norm1")});
    rows.push_back({join_key(ldm, "ln_2"), join_key(hf, "layer_norm2")});
    rows.push_back({join_key(ldm, "mlp.c_fc"), join_key(hf, "mlp.fc1")});
    rows.push_back({join_key(ldm, "mlp.c_proj"), join_key(hf, "mlp.fc2")});
    rows.push_back({join_key(ldm, "attn.out_proj"), join_key(hf, "self_attn.out_proj")});
    rows.push_back({join_key(ldm, "attn"), join_key(hf, "self_attn"), Transform::SplitQkv});
  }
  return rows;
}

std::vector<PrefixRow> legacy_vae_attention_rows() {
  std::vector<PrefixRow> rows;
  static const std::pair<const char*, const char*> kNames[] = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  for (const char* side : {"encoder", "decoder"})
    for (const auto& [old_name, new_name] : kNames) {
      const std::string attn = join_key(side, "mid_block.attentions.0");
      rows.push_back({join_key(attn, old_name), join_key(attn, new_name)});
    }
  return rows;
}

std::vector<TensorSpec> unet_tensors(const models::UNetConfig& config) {
  Specs s;
  const auto& ch = config.block_out_channels;
  const int n = config.num_blocks();
  const int layers = config.layers_per_block;
  const int64_t temb = config.time_embed_dim();
  const int64_t cross = config.cross_attention_dim;
  const int depth = config.transformer_layers_per_block;
  const bool linear = config.use_linear_projection;

  s.conv("conv_in", config.in_channels, ch[0], 3);
  s.linear("time_embedding.linear_1", ch[0], temb);
  s.linear("time_embedding.linear_2", temb, temb);

  for (int i = 0; i < n; ++i) {
    const std::string block = at_index("down_blocks", i);
    const int64_t in = i == 0 ? ch[0] : ch[i - 1];
    const int64_t out = ch[i];
    for (int j = 0; j < layers; ++j) {
      s.resnet(at_index(join_key(block, "resnets"), j), j == 0 ? in : out, out, temb);
      if (config.down_block_has_attention(i))
        s.transformer(at_index(join_key(block, "attentions"), j), out, cross, depth, linear);
    }
    if (i < n - 1) s.conv(join_key(block, "downsamplers.0.conv"), out, out, 3);
  }

  const int64_t mid = ch[n - 1];
  s.resnet("mid_block.resnets.0", mid, mid, temb);
  s.transformer("mid_block.attentions.0", mid, cross, depth, linear);
  s.resnet("mid_block.resnets.1", mid, mid, temb);

  // Up block i works at reversed level n-1-i; resnet j concatenates a skip connection: the level's
  // own outputs, and for the last resnet the output of the level below (the block's input).
  for (int i = 0; i < n; ++i) {
    const std::string block = at_index("up_blocks", i);
    const int64_t out = ch[n - 1 - i];
    const int64_t prev_out = i == 0 ? ch[n - 1] : ch[n - i];
    const int64_t in = ch[std::max(n - 2 - i, 0)];
    for (int j = 0; j <= layers; ++j) {
      const int64_t skip = j == layers ? in : out;
      const int64_t res_in = j == 0 ? prev_out : out;
      s.resnet(at_index(join_key(block, "resnets"), j), res_in + skip, out, temb);
      if (config.up_block_has_attention(i))
        s.transformer(at_index(join_key(block, "attentions"), j), out, cross, depth, linear);
    }
    if (i < n - 1) s.conv(join_key(block, "upsamplers.0.conv"), out, out, 3);
  }

  s.norm("conv_norm_out", ch[0]);
  s.conv("conv_out", ch[0], config.out_channels, 3);
  return s.take();
}

std::vector<TensorSpec> vae_tensors(const models::VaeConfig& config) {
  Specs s;
  const auto& ch = config.block_out_channels;
  const int n = config.num_blocks();
  const int layers = config.layers_per_block;
  const int64_t z = config.latent_channels;
  const int64_t top = ch[n - 1];

  s.conv("encoder.conv_in", config.in_channels, ch[0], 3);
  for (int i = 0; i < n; ++i) {
    const std::string block = at_index("encoder.down_blocks", i);
    const int64_t in = i == 0 ? ch[0] : ch[i - 1];
    for (int j = 0; j < layers; ++j) s.resnet(at_index(join_key(block, "resnets"), j), j == 0 ? in : ch[i], ch[i], 0);
    if (i < n - 1) s.conv(join_key(block, "downsamplers.0.conv"), ch[i], ch[i], 3);
  }
  s.resnet("encoder.mid_block.resnets.0", top, top, 0);
  s.vae_attention("encoder.mid_block.attentions.0", top);
  s.resnet("encoder.mid_block.resnets.1", top, top, 0);
  s.norm("encoder.conv_norm_out", top);
  s.conv("encoder.conv_out", top, 2 * z, 3);

  s.conv("decoder.conv_in", z, top, 3);
  s.resnet("decoder.mid_block.resnets.0", top, top, 0);
  s.vae_attention("decoder.mid_block.attentions.0", top);
  s.resnet("decoder.mid_block.resnets.1", top, top, 0);
  for (int i = 0; i < n; ++i) {
    const std::string block = at_index("decoder.up_blocks", i);
    const int64_t out = ch[n - 1 - i];
    const int64_t prev_out = i == 0 ? top : ch[n - i];
    for (int j = 0; j <= layers; ++j) s.resnet(at_index(join_key(block, "resnets"), j), j == 0 ? prev_out : out, out, 0);
    if (i < n - 1) s.conv(join_key(block, "upsamplers.0.conv"), out, out, 3);
  }
  s.norm("decoder.conv_norm_out", ch[0]);
  s.conv("decoder.conv_out", ch[0], config.out_channels, 3);

  s.conv("quant_conv", 2 * z, 2 * z, 1);
  s.conv("post_quant_conv", z, z, 1);
  return s.take();
}

std::vector<TensorSpec> text_encoder_tensors(const models::ClipTextConfig& config) {
  Specs s;
  const int64_t h = config.hidden_size;
  const int64_t inner = config.intermediate_size;
  s.tensor("text_model.embeddings.token_embedding.weight", {config.vocab_size, h});
  s.tensor("text_model.embeddings.position_embedding.weight", {config.max_position_embeddings, h});
  for (int n = 0; n < config.num_hidden_layers; ++n) {
    const std::string layer = at_index("text_model.encoder.layers", n);
    for (const char* proj : {"k_proj", "v_proj", "q_proj", "out_proj"})
      s.linear(join_key(layer, join_key("self_attn", proj)), h, h);
    s.norm(join_key(layer, "layer_norm1"), h);
    s.linear(join_key(layer, "mlp.fc1"), h, inner);
    s.linear(join_key(layer, "mlp.fc2"), inner, h);
    s.norm(join_key(layer, "layer_norm2"), h);
  }
  s.norm("text_model.final_layer_norm", h);
  return s.take();
}

std::string join_key(const std::string& prefix, const std::string& tail) {
  if (prefix.empty()) return tail;
  if (tail.empty()) return prefix;
  return prefix + "." + tail;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

int64_t parameter_count(const std::vector<TensorSpec>& tensors) {
  int64_t total = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace dreambooth::checkpoint
