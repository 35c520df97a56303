// LoRA files (safetensors) in the two key conventions tools use.
//
// Kohya (AUTOMATIC1111, ComfyUI, stable-diffusion.cpp and kohya's sd-scripts read and write it):
//   <kohya name>.lora_down.weight   [r, in] (Linear) or [r, in, k, k] (conv)
//   <kohya name>.lora_up.weight     [out, r] or [out, r, 1, 1]
//   <kohya name>.alpha              0-d float; scale = alpha / r (absent: scale 1)
// with kohya names as sites.h describes, and `ss_*` metadata strings.
//
// Diffusers / PEFT: "unet." or "text_encoder." + the module path, then
//   .lora_A.weight / .lora_B.weight                    (PEFT; diffusers >= 0.24 writes these)
//   .lora.down.weight / .lora.up.weight                (diffusers' LoRACompatibleLinear)
//   .lora_linear_layer.down.weight / .up.weight        (older text-encoder LoRAs)
//   <attention>.processor.to_{q,k,v,out}_lora.{down,up}.weight   (attention processors, UNet; also without
//       "processor." and with the CLIP attention for the text encoder: to_out -> to_out.0 / out_proj)
//   optional <prefix>.<module>.alpha
// Keys without a "unet."/"text_encoder." prefix are UNet keys (the oldest attention-processor files).
// Files without alphas have scale 1; diffusers' `lora_adapter_metadata` JSON ("unet.lora_alpha", ...) is
// honoured when present. What we write in this format has alpha/rank folded into the up (B) weights, so
// every reader gets the same result whatever it assumes about alpha.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "dreambooth/checkpoint/types.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/lora/network.h"

namespace dreambooth::lora {

enum class LoraFormat { Kohya, Diffusers };
const char* lora_format_name(LoraFormat format);  // "kohya" / "diffusers"
// Usage error naming `source` (the flag) for anything else.
LoraFormat parse_lora_format(const std::string& name, const std::string& source);

// ---- reading

// One LoRA module of a file, named as the file names it.
struct LoraModuleWeights {
  LoraFormat naming = LoraFormat::Kohya;
  std::string name;  // kohya: "lora_unet_..."; diffusers: the module path inside the component
  std::optional<checkpoint::Component> component;  // from the name's prefix; nullopt: another model's part
  at::Tensor down;   // as stored (dtype and layout of the file), [r, in] / [r, in, k, k]
  at::Tensor up;     // [out, r] / [out, r, 1, 1]
  std::optional<double> alpha;
  std::vector<std::string> keys;  // the file's keys that make up this module

  double scale() const;  // alpha / rank, or 1 without an alpha
  int64_t rank() const { return down.size(0); }
};

struct LoraWeights {
  std::filesystem::path path;
  LoraFormat format = LoraFormat::Kohya;  // the convention of most of its keys
  std::vector<LoraModuleWeights> modules;
  // Keys that are no LoRA factor or alpha of a form listed above (LyCORIS variants, DoRA scales, a down
  // without its up, ...): they cannot be placed, and applying the file warns about them.
  std::vector<std::string> unrecognised_keys;
  io::Metadata metadata;
};

// Reads a .safetensors LoRA file (format detected per key). Input errors: unreadable or corrupt file,
// pickle files (.pt/.ckpt/.bin; hint: convert to safetensors), no LoRA tensor at all, a module whose down
// and up disagree on the rank.
LoraWeights load_lora_file(const std::filesystem::path& path);

// ---- writing

// What the kohya metadata records about a training run (all optional but the family).
struct LoraTrainingInfo {
  checkpoint::Family family = checkpoint::Family::Sd1;
  bool v_prediction = false;
  std::string base_model_name;    // ss_sd_model_name (the base file's name)
  std::string base_model_hash;    // ss_new_sd_model_hash: SHA-256 (hex) of the base file (A1111 shows 10 digits)
  std::string legacy_model_hash;  // ss_sd_model_hash, if known
  std::string identifier;         // the rare token, e.g. "sks"
  std::string class_name;         // e.g. "dog"
  int64_t steps = 0;              // ss_max_train_steps / ss_steps
  int64_t resolution = 0;         // ss_resolution "(512, 512)"
  double learning_rate = 0.0;     // ss_learning_rate (0: not written)
  std::string output_name;        // ss_output_name
  std::string comment;            // ss_training_comment
  int64_t training_started_at = 0;  // unix seconds, ss_training_started_at (0: not written)
};

// kohya's ss_* metadata for a network: ss_network_module "networks.lora", ss_network_dim, ss_network_alpha,
// ss_network_dropout, ss_network_args (targets), ss_base_model_version ("sd_v1" / "sd_v2"), ss_v2,
// ss_v_parameterization, hashes, identifier/class (ss_training_comment, ss_tag_frequency), steps, and
// "dreambooth.lora" (JSON with the full LoraConfig and run info). All values are strings.
io::Metadata kohya_metadata(const LoraNetwork& network, const LoraTrainingInfo& info);

struct LoraSaveOptions {
  LoraFormat format = LoraFormat::Kohya;
  std::optional<c10::ScalarType> dtype;  // floating tensors converted to it (fp16 is usual); default: as trained
  io::Metadata metadata;                 // e.g. kohya_metadata(...); "format": "pt" is added
};

// The tensors save_lora writes (names as the format says), for tests and for the trainer's checkpoints.
std::vector<io::NamedTensor> lora_tensors(const LoraNetwork& network, LoraFormat format);

// Writes atomically (temporary file + rename; an existing file is replaced).
void save_lora(const LoraNetwork& network, const std::filesystem::path& path, const LoraSaveOptions& options = {});

}  // namespace dreambooth::lora
