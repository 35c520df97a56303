// The text-tokenizer interface the pipelines use, and load_tokenizer(), which picks the backend:
//   - a folder with vocab.json + merges.txt            -> CLIP BPE (the SD1/SD2 tokenizers)
//   - a .model file, or a folder holding one            -> SentencePiece (through a dlopen()ed plugin)
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace dreambooth::text {

// Stable Diffusion's text encoders take 77 positions.
constexpr int kDefaultMaxLength = 77;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text` (UTF-8), without BOS/EOS.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // Best-effort text of ids (special tokens dropped).
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;

  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;
  // Input error for an id outside [0, vocab_size).
  virtual std::string id_to_token(int64_t id) const = 0;
  // "clip-bpe" or "sentencepiece".
  virtual std::string kind() const = 0;

  // What SD pipelines feed the text encoder (transformers' padding="max_length", truncation=True):
  // BOS + the first max_length-2 ids + EOS, then pad_id up to max_length. Usage error if max_length < 2.
  std::vector<int64_t> encode_padded(const std::string& text, int max_length = kDefaultMaxLength) const;
  // encode_padded for each text: int64 tensor [N, max_length] on the CPU.
  at::Tensor encode_batch(const std::vector<std::string>& texts, int max_length = kDefaultMaxLength) const;
};

// Loads the tokenizer at `path` (see the top of this file). `pad_id` overrides the pad id the files
// define. Input errors name the path and say what was expected.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path,
                                          std::optional<int64_t> pad_id = std::nullopt);

// True when `path` is something load_tokenizer accepts (cheap: looks at file names only).
bool looks_like_tokenizer(const std::filesystem::path& path);

}  // namespace dreambooth::text
