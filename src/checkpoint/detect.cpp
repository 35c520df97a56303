#include "dreambooth/checkpoint/detect.h"

#include <set>

#include "dreambooth/core/error.h"

namespace dreambooth::checkpoint {
namespace {

bool any_key_starts_with(const ShapeMap& shapes, const std::string& prefix) {
  auto it = shapes.lower_bound(prefix);
  return it != shapes.end() && starts_with(it->first, prefix);
}

// Variants we recognise by their keys and refuse by name.
struct Unsupported {
  const char* key_prefix;
  const char* what;
};
constexpr Unsupported kUnsupported[] = {
    {"conditioner.embedders.", "an SDXL checkpoint (conditioner.embedders.*)"},
    {"model.diffusion_model.label_emb.", "an SDXL or unCLIP checkpoint (model.diffusion_model.label_emb.*)"},
    {"depth_model.", "a depth-conditioned checkpoint (depth_model.*)"},
    {"embedder.", "an unCLIP checkpoint (embedder.*)"},
    {"noise_augmentor.", "an unCLIP checkpoint (noise_augmentor.*)"},
    {"control_model.", "a ControlNet checkpoint (control_model.*)"},
};

class Detector {
 public:
  Detector(const ShapeMap& shapes, const LdmYaml* yaml, std::string source)
      : shapes_(shapes), yaml_(yaml), source_(std::move(source)) {}

  ModelDescription run(std::optional<PredictionType> prediction_override) {
    for (const auto& u : kUnsupported)
      if (any_key_starts_with(shapes_, u.key_prefix))
        throw model_error(source_, std::string("is ") + u.what,
                          "only Stable Diffusion 1.x and 2.x text-to-image models are supported");
    if (!any_key_starts_with(shapes_, std::string(kLdmUnetRoot) + "."))
      throw model_error(
          source_, "has no UNet tensors (model.diffusion_model.*)",
          "not a Stable Diffusion single-file checkpoint; a diffusers model is a folder with model_index.json");

    ModelDescription d;
    d.layout = Layout::SingleFile;
    d.config_source = yaml_ ? "shapes+yaml" : "shapes";
    d.family = detect_family();
    d.prediction_type = prediction_override ? *prediction_override : yaml_prediction();
    d.text_encoder = detect_text(d.family);
    d.unet = detect_unet(d.family, d.prediction_type);
    d.vae = detect_vae(d.unet);
    d.scheduler = single_file_scheduler_config(d.family, d.prediction_type);
    check_supported(d, source_);
    d.unet.validate(source_ + " (detected UNet)");
    d.vae.validate(source_ + " (detected VAE)");
    d.text_encoder.validate(source_ + " (detected text encoder)");
    return d;
  }

 private:
  const std::vector<int64_t>& shape(const std::string& key, size_t rank) const {
    auto it = shapes_.find(key);
    if (it == shapes_.end())
      throw model_error(source_, "has no tensor '" + key + "'",
                        "the checkpoint is incomplete or of an unsupported kind");
    if (it->second.size() != rank)
      throw model_error(source_, "tensor '" + key + "' has shape " + shape_string(it->second) + ", expected rank " +
                                     std::to_string(rank));
    return it->second;
  }
  bool has(const std::string& key) const { return shapes_.count(key) > 0; }

  // Distinct integers N of keys "<prefix>.N.*".
  std::set<int> indices_under(const std::string& prefix) const {
    std::set<int> out;
    const std::string p = prefix + ".";
    for (auto it = shapes_.lower_bound(p); it != shapes_.end() && starts_with(it->first, p); ++it) {
      const std::string rest = it->first.substr(p.size());
      const std::string index = rest.substr(0, rest.find('.'));
      if (!index.empty() && index.size() < 7 && index.find_first_not_of("0123456789") == std::string::npos)
        out.insert(std::stoi(index));
    }
    return out;
  }
  // The count of a contiguous 0..N-1 list; a gap is a model error.
  int count_under(const std::string& prefix) const {
    std::set<int> found = indices_under(prefix);
    int n = 0;
    for (int i : found) {
      if (i != n)
        throw model_error(source_, "'" + prefix + "' skips index " + std::to_string(n), "the file is incomplete");
      ++n;
    }
    return n;
  }

  Family detect_family() const {
    const bool sd1 = has(std::string(kLdmSd1TextRoot) + ".text_model.embeddings.token_embedding.weight");
    const bool sd2 = has(std::string(kLdmSd2TextRoot) + ".token_embedding.weight");
    if (sd1 && sd2) throw model_error(source_, "holds both a CLIP (SD1) and an OpenCLIP (SD2) text encoder");
    if (!sd1 && !sd2)
      throw model_error(source_, "has no text encoder (cond_stage_model.transformer.* or cond_stage_model.model.*)",
                        "the family (SD1/SD2) is detected from the text encoder");
    return sd1 ? Family::Sd1 : Family::Sd2;
  }

  PredictionType yaml_prediction() const {
    if (!yaml_) return PredictionType::Epsilon;
    auto p = yaml_->find("params.parameterization");
    if (!p || *p == "eps") return PredictionType::Epsilon;
    if (*p == "v") return PredictionType::VPrediction;
    throw model_error(yaml_->source(), "parameterization '" + *p + "' is not supported", "expected eps or v");
  }

  int text_heads(int hidden) const {
    if (hidden % 64 == 0) return hidden / 64;
    if (hidden % 8 == 0) return hidden / 8;
    throw model_error(source_, "text encoder hidden size " + std::to_string(hidden) +
                                   " is neither a multiple of 64 nor of 8; its head count cannot be inferred");
  }

  models::ClipTextConfig detect_text(Family family) const {
    models::ClipTextConfig c;
    if (family == Family::Sd1) {
      const std::string root = std::string(kLdmSd1TextRoot) + ".text_model";
      const auto& tokens = shape(root + ".embeddings.token_embedding.weight", 2);
      c.vocab_size = static_cast<int>(tokens[0]);
      c.hidden_size = static_cast<int>(tokens[1]);
      c.max_position_embeddings = static_cast<int>(shape(root + ".embeddings.position_embedding.weight", 2)[0]);
      c.num_hidden_layers = count_under(root + ".encoder.layers");
      if (c.num_hidden_layers == 0) throw model_error(source_, "the text encoder has no layers");
      c.intermediate_size = static_cast<int>(shape(root + ".encoder.layers.0.mlp.fc1.weight", 2)[0]);
      c.hidden_act = "quick_gelu";
      c.projection_dim = c.hidden_size;
    } else {
      const std::string root = kLdmSd2TextRoot;
      const auto& tokens = shape(root + ".token_embedding.weight", 2);
      c.vocab_size = static_cast<int>(tokens[0]);
      c.hidden_size = static_cast<int>(tokens[1]);
      c.max_position_embeddings = static_cast<int>(shape(root + ".positional_embedding", 2)[0]);
      const int blocks = count_under(root + ".transformer.resblocks");
      // A full OpenCLIP dump (text_projection present) carries the last block diffusers drops.
      c.num_hidden_layers = has(root + ".text_projection") ? blocks - 1 : blocks;
      if (c.num_hidden_layers < 1) throw model_error(source_, "the text encoder has too few blocks");
      c.intermediate_size = static_cast<int>(shape(root + ".transformer.resblocks.0.mlp.c_fc.weight", 2)[0]);
      c.hidden_act = "gelu";
      c.projection_dim = c.hidden_size == 1024 ? 512 : c.hidden_size;
    }
    c.num_attention_heads = text_heads(c.hidden_size);
    c.bos_token_id = 0;
    c.eos_token_id = 2;
    c.pad_token_id = 1;
    return c;
  }

  models::UNetConfig detect_unet(Family family, PredictionType prediction) const {
    const std::string root = kLdmUnetRoot;
    models::UNetConfig c;
    const auto& conv_in = shape(root + ".input_blocks.0.0.weight", 4);
    c.in_channels = static_cast<int>(conv_in[1]);
    c.out_channels = static_cast<int>(shape(root + ".out.2.weight", 4)[0]);

    // input_blocks = conv_in + per level `layers` blocks + a downsample (all levels but the last);
    // output_blocks = per level `layers + 1` blocks.
    const int inputs = count_under(root + ".input_blocks");
    const int outputs = count_under(root + ".output_blocks");
    int first_down = -1;
    for (int k = 1; k < inputs && first_down < 0; ++k)
      if (has(root + ".input_blocks." + std::to_string(k) + ".0.op.weight")) first_down = k;
    const int layers = first_down > 0 ? first_down - 1 : inputs - 1;
    if (layers < 1 || inputs % (layers + 1) != 0 || outputs != inputs)
      throw model_error(source_, "UNet has " + std::to_string(inputs) + " input and " + std::to_string(outputs) +
                                     " output blocks, which fits no level layout");
    const int levels = inputs / (layers + 1);
    c.layers_per_block = layers;
    c.block_out_channels.clear();
    c.down_block_types.clear();
    c.up_block_types.clear();
    for (int i = 0; i < levels; ++i) {
      const std::string first = root + ".input_blocks." + std::to_string(1 + i * (layers + 1));
      c.block_out_channels.push_back(static_cast<int>(shape(first + ".0.in_layers.2.weight", 4)[0]));
      // A level's blocks hold [resnet, attention]; a ".1." child is the attention.
      c.down_block_types.push_back(any_key_starts_with(shapes_, first + ".1.") ? "CrossAttnDownBlock2D"
                                                                               : "DownBlock2D");
      const std::string up = root + ".output_blocks." + std::to_string(i * (layers + 1));
      c.up_block_types.push_back(any_key_starts_with(shapes_, up + ".1.") ? "CrossAttnUpBlock2D" : "UpBlock2D");
    }

    const std::string mid = root + ".middle_block.1";
    if (!has(mid + ".proj_in.weight"))
      throw model_error(source_, "UNet has no mid-block attention (" + mid + ")", "not a Stable Diffusion UNet");
    const auto& proj_in = shapes_.at(mid + ".proj_in.weight");
    c.use_linear_projection = proj_in.size() == 2;
    c.cross_attention_dim = static_cast<int>(shape(mid + ".transformer_blocks.0.attn2.to_k.weight", 2)[1]);
    c.transformer_layers_per_block = count_under(mid + ".transformer_blocks");

    c.attention_head_dim = unet_heads(family, c.block_out_channels);
    c.num_attention_heads.clear();
    const bool v = prediction == PredictionType::VPrediction;
    c.upcast_attention = family == Family::Sd2 && v;
    c.sample_size = family == Family::Sd2 && v ? 96 : 64;
    if (yaml_)
      if (auto size = yaml_->find_int("unet_config.params.image_size")) c.sample_size = static_cast<int>(*size);
    return c;
  }

  std::vector<int> unet_heads(Family family, const std::vector<int>& channels) const {
    long long per_head = family == Family::Sd2 ? 64 : 0;
    if (yaml_) {
      auto heads = yaml_->find_int("unet_config.params.num_heads");
      auto head_channels = yaml_->find_int("unet_config.params.num_head_channels");
      if (heads && *heads > 0) return {static_cast<int>(*heads)};
      if (head_channels && *head_channels > 0)
        per_head = *head_channels;
      else if (heads || head_channels)
        throw model_error(yaml_->source(), "needs num_heads or num_head_channels > 0 in unet_config.params");
    }
    if (per_head == 0) return {8};
    std::vector<int> heads;
    for (int ch : channels) {
      if (ch % per_head != 0)
        throw model_error(source_,
                          "UNet level with " + std::to_string(ch) + " channels does not split into " +
                              std::to_string(per_head) + "-channel heads",
                          "put the LDM .yaml with num_heads/num_head_channels beside the file");
      heads.push_back(static_cast<int>(ch / per_head));
    }
    return heads;
  }

  models::VaeConfig detect_vae(const models::UNetConfig& unet) const {
    const std::string root = kLdmVaeRoot;
    models::VaeConfig c;
    const auto& conv_in = shape(root + ".encoder.conv_in.weight", 4);
    c.in_channels = static_cast<int>(conv_in[1]);
    c.out_channels = static_cast<int>(shape(root + ".decoder.conv_out.weight", 4)[0]);
    const int levels = count_under(root + ".encoder.down");
    if (levels < 1) throw model_error(source_, "the VAE encoder has no levels");
    c.layers_per_block = count_under(root + ".encoder.down.0.block");
    c.block_out_channels.clear();
    for (int i = 0; i < levels; ++i) {
      const std::string level = root + ".encoder.down." + std::to_string(i);
      c.block_out_channels.push_back(static_cast<int>(shape(level + ".block.0.conv1.weight", 4)[0]));
      if (any_key_starts_with(shapes_, level + ".attn.") ||
          any_key_starts_with(shapes_, root + ".decoder.up." + std::to_string(i) + ".attn."))
        throw model_error(source_, "VAE has attention inside level " + std::to_string(i),
                          "only the Stable Diffusion VAE (attention in the mid block only) is supported");
    }
    c.down_block_types.assign(levels, "DownEncoderBlock2D");
    c.up_block_types.assign(levels, "UpDecoderBlock2D");
    c.latent_channels = static_cast<int>(shape(root + ".decoder.conv_in.weight", 4)[1]);
    c.sample_size = unet.sample_size * (1 << (levels - 1));
    if (yaml_) {
      if (auto resolution = yaml_->find_int("ddconfig.resolution")) c.sample_size = static_cast<int>(*resolution);
      if (auto scale = yaml_->find_number("model.params.scale_factor")) c.scaling_factor = *scale;
    }
    return c;
  }

  const ShapeMap& shapes_;
  const LdmYaml* yaml_;
  std::string source_;
};

}  // namespace

ShapeMap shapes_of(const WeightFiles& files) {
  ShapeMap shapes;
  for (const auto& item : files.items()) shapes.emplace(item.entry->name, item.entry->shape);
  return shapes;
}

ModelDescription detect_from_shapes(const ShapeMap& shapes, const LdmYaml* yaml, const std::string& source,
                                    std::optional<PredictionType> prediction_override) {
  return Detector(shapes, yaml, source).run(prediction_override);
}

}  // namespace dreambooth::checkpoint
