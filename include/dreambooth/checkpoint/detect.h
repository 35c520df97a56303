// Detecting a single file's model from its tensor SHAPES (never its file name).
//
// Shapes give everything but the attention head counts, the sample sizes and the prediction type:
//   family           SD1 when the text encoder is stored with HF CLIP names (cond_stage_model.transformer),
//                    SD2 when stored with OpenCLIP names (cond_stage_model.model).
//   UNet             channels per level, layers_per_block, attention levels, cross_attention_dim,
//                    use_linear_projection (rank of proj_in), transformer depth, in/out channels.
//   VAE              channels per level, layers_per_block, latent and image channels.
//   text encoder     hidden, intermediate, layers, vocab, positions; quick_gelu (SD1) / gelu (SD2).
//                    SD2 files with OpenCLIP's text_projection hold 24 blocks of which diffusers keeps 23
//                    (layers = blocks - 1); files without it (diffusers' own converter) hold only the used ones.
// Not in the shapes, taken from the LDM yaml beside the file when present, else the family rule:
//   UNet heads       yaml num_heads (one count) or num_head_channels (channels / it, per level);
//                    else SD1: 8 heads, SD2: 64 channels per head.
//   text heads       64-wide heads (CLIP ViT-L and OpenCLIP ViT-H); hidden sizes that are not a multiple
//                    of 64 (test-size models such as tiny-sd1: hidden 32, 4 heads) use 8-wide heads.
//   prediction type  explicit override > yaml `parameterization: "v"` > epsilon.
//   sample sizes     yaml unet image_size / first stage resolution; else 64 (SD2 v-prediction: 96) and
//                    8x that for the VAE.
//   other            latent scale factor from yaml scale_factor, else 0.18215; upcast_attention for SD2
//                    v-prediction; token ids 0/2/1 and projection_dim as the published configs have them.
// Unsupported variants (SDXL, inpainting, depth, pix2pix, unCLIP, ControlNet) are a model error.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dreambooth/checkpoint/description.h"
#include "dreambooth/checkpoint/ldm_yaml.h"
#include "dreambooth/checkpoint/weight_files.h"

namespace dreambooth::checkpoint {

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

ShapeMap shapes_of(const WeightFiles& files);

// `source` names the file in errors. The result has layout SingleFile and config_source "shapes" or
// "shapes+yaml"; stored dtypes are left for the caller.
ModelDescription detect_from_shapes(const ShapeMap& shapes, const LdmYaml* yaml, const std::string& source,
                                    std::optional<PredictionType> prediction_override = std::nullopt);

}  // namespace dreambooth::checkpoint
