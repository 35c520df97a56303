// CLIP's byte-level BPE tokenizer, as transformers' slow CLIPTokenizer runs it (with ftfy installed):
//   1. the text is split on the special-token strings (BOS, EOS, UNK, PAD: for SD2 that includes "!"),
//      which map straight to their ids;
//   2. every other chunk is normalised (text_fixer.h: ftfy, whitespace collapse, strip, lowercase),
//   3. split by the CLIP regex <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
//      [^\s\p{L}\p{N}]+ (case-insensitive),
//   4. each piece's UTF-8 bytes go through the byte -> unicode map and BPE (merge ranks from merges.txt,
//      "</w>" on the last symbol), and the resulting strings through vocab.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dreambooth/text/tokenizer.h"

namespace dreambooth::text {

// Special-token strings, as tokenizer_config.json / special_tokens_map.json name them.
struct ClipSpecialTokens {
  std::string bos = "<|startoftext|>";
  std::string eos = "<|endoftext|>";
  std::string unk = "<|endoftext|>";
  std::string pad = "<|endoftext|>";  // SD2 tokenizers: "!"
};

class ClipTokenizer final : public Tokenizer {
 public:
  // Reads <dir>/vocab.json, <dir>/merges.txt and, when present, the special tokens of
  // special_tokens_map.json (which wins) or tokenizer_config.json. `pad_id` overrides the pad token.
  static std::unique_ptr<ClipTokenizer> load(const std::filesystem::path& dir,
                                             std::optional<int64_t> pad_id = std::nullopt);

  // From parsed contents; `source` names them in errors. Merges in rank order.
  ClipTokenizer(std::unordered_map<std::string, int64_t> vocab, std::vector<std::pair<std::string, std::string>> merges,
                ClipSpecialTokens specials, const std::string& source);

  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  std::string kind() const override { return "clip-bpe"; }

  // The BPE strings of `text` (what transformers' tokenize() returns), e.g. {"a</w>", "photo</w>"}.
  std::vector<std::string> tokenize(const std::string& text) const;
  // Makes the token `id` the pad token (it then also splits the text, as transformers does).
  void set_pad_id(int64_t id);
  const ClipSpecialTokens& special_tokens() const { return specials_; }

 private:
  // One BPE run over a byte-mapped piece: the vocabulary strings it becomes (cached).
  std::vector<std::string> bpe(const std::string& piece) const;
  int64_t lookup(const std::string& token) const;  // unk id when absent
  int64_t required_id(const std::string& token, const char* role) const;
  void tokenize_chunk(const std::string& chunk, std::vector<std::string>& out) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int> merge_ranks_;  // "first second" -> rank
  std::string byte_to_unicode_[256];                  // UTF-8 of the mapped code point
  std::unordered_map<std::string, unsigned char> unicode_to_byte_;
  ClipSpecialTokens specials_;
  std::string source_;
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace dreambooth::text
