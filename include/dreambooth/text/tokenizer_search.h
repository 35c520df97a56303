// Where the tokenizer of a model comes from. In order:
//   1. an explicit --tokenizer path (must exist and be a tokenizer),
//   2. the diffusers folder's tokenizer/,
//   3. beside a single-file checkpoint: <dir>/tokenizer/ or <dir>/<file stem>.tokenizer/,
//   4. $DREAMBOOTH_TOKENIZER (must exist and be a tokenizer when set),
//   5. the Hugging Face cache ($HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
//      $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub): the CLIP tokenizers SD pipelines use.
// Otherwise a one-line input error saying how to provide one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace dreambooth::text {

enum class TokenizerFamily { SD1, SD2 };

// "sd1" / "sd2" (the CLI's spelling); usage error for anything else.
TokenizerFamily parse_tokenizer_family(const std::string& name);

// The pad id SD pipelines of a family use with the CLIP BPE tokenizer: SD1 pads with <|endoftext|>
// (49407), SD2 with "!" (0).
int64_t default_clip_pad_id(TokenizerFamily family);

struct TokenizerQuery {
  std::optional<std::filesystem::path> explicit_path;  // --tokenizer
  std::filesystem::path model_path;                    // the --model argument
  bool model_is_diffusers_folder = false;
  TokenizerFamily family = TokenizerFamily::SD1;
};

struct FoundTokenizer {
  std::filesystem::path path;     // pass to load_tokenizer
  std::string source;             // for logs: "--tokenizer", "model folder", "$DREAMBOOTH_TOKENIZER", ...
  // The pad id to pass to load_tokenizer when the user gives none: set for CLIP folders that do not
  // name a pad token and for the bare CLIP repositories in the cache (whose files do not say what the
  // SD pipeline pads with); empty when the folder's own special tokens are authoritative.
  std::optional<int64_t> pad_id;
};

FoundTokenizer find_tokenizer(const TokenizerQuery& query);

// Only the model's own tokenizer (steps 2 and 3: its folder's tokenizer/, or beside the single file),
// never one from the environment or a cache: what a converted or merged copy of the model carries along.
std::optional<std::filesystem::path> find_model_own_tokenizer(const std::filesystem::path& model_path,
                                                              bool model_is_diffusers_folder);

}  // namespace dreambooth::text
