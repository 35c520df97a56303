// SentencePiece models (.model files), through the libdreambooth_spm.so plugin.
//
// The plugin is dlopen()ed on first use (RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND), found in this order:
//   1. $DREAMBOOTH_SPM_PLUGIN (the .so itself, or a folder holding it),
//   2. the directory of the running executable, 3. its parent directory (tests run from build/tests/),
//   4. <executable dir>/../lib/dreambooth (an installed layout).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dreambooth/text/tokenizer.h"

namespace dreambooth::text {

struct SpmPlugin;  // the loaded plugin's function table (sentencepiece_tokenizer.cpp)

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Input error naming `model_file` if it does not load or lacks BOS/EOS pieces. The pad id is
  // `pad_id` if given, else the model's pad piece, else EOS.
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& model_file,
                                                      std::optional<int64_t> pad_id = std::nullopt);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  std::string kind() const override { return "sentencepiece"; }
  int64_t unk_id() const { return unk_id_; }

 private:
  SentencePieceTokenizer(const SpmPlugin& plugin, void* handle, std::filesystem::path path);

  const SpmPlugin& plugin_;
  void* handle_;  // dreambooth_spm_processor*
  std::filesystem::path path_;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1, vocab_size_ = 0;
};

// The ids train_sentencepiece gives the special pieces.
constexpr int64_t kSpmPadId = 0;
constexpr int64_t kSpmUnkId = 1;
constexpr int64_t kSpmBosId = 2;
constexpr int64_t kSpmEosId = 3;

struct SentencePieceTrainOptions {
  std::string model_type = "unigram";         // "unigram", "bpe", "word", "char"
  double character_coverage = 1.0;
  std::string normalization = "nmt_nfkc_cf";  // NFKC + case folding: "A Dog" encodes like "a dog"
  std::vector<std::string> user_defined_symbols;  // pieces kept whole, e.g. rare identifiers
  uint32_t seed = 0;
};

// Trains a model on `corpus_lines` (one sentence each) and writes `model_path` (which must end in
// ".model") plus the human-readable `.vocab` beside it. Pieces: pad 0, unk 1, bos 2 ("<s>"), eos 3
// ("</s>"); `vocab_size` is an upper bound (a small corpus may give fewer pieces). Deterministic: the
// same inputs give byte-identical files. Returns model_path.
std::filesystem::path train_sentencepiece(const std::vector<std::string>& corpus_lines,
                                          const std::filesystem::path& model_path, int vocab_size,
                                          const SentencePieceTrainOptions& options = {});

// Where the plugin was loaded from (loads it if needed). Runtime error, one line, if it is missing.
std::filesystem::path sentencepiece_plugin_path();

}  // namespace dreambooth::text
