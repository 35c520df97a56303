#include "dreambooth/train/identifier.h"

#include <algorithm>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::train {
namespace {

constexpr double kRareBandStart = 0.8;  // the last fifth of the regular vocabulary

// The typed word behind a vocabulary entry that is a whole word, if it is one.
std::optional<std::string> whole_word(const text::Tokenizer& tokenizer, const std::string& token) {
  std::string word;
  if (tokenizer.kind() == "clip-bpe") {
    const std::string suffix = "</w>";
    if (token.size() <= suffix.size() || token.compare(token.size() - suffix.size(), suffix.size(), suffix) != 0)
      return std::nullopt;
    word = token.substr(0, token.size() - suffix.size());
  } else {
    const std::string marker = "\xE2\x96\x81";  // U+2581, SentencePiece's word start
    if (token.rfind(marker, 0) != 0) return std::nullopt;
    word = token.substr(marker.size());
  }
  return word;
}

bool typeable_short_word(const std::string& word) {
  if (word.size() < 2 || word.size() > 3) return false;
  return std::all_of(word.begin(), word.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Regular entries exclude the special tokens at the end (CLIP: BOS/EOS) or anywhere (SentencePiece).
bool is_special(const text::Tokenizer& tokenizer, int64_t id) {
  return id == tokenizer.bos_id() || id == tokenizer.eos_id() || id == tokenizer.pad_id();
}

}  // namespace

RareBand rare_band(const text::Tokenizer& tokenizer) {
  int64_t last = tokenizer.vocab_size() - 1;
  while (last > 0 && is_special(tokenizer, last)) --last;
  return {static_cast<int64_t>(kRareBandStart * (last + 1)), last};
}

std::vector<IdentifierCandidate> rare_identifier_candidates(const text::Tokenizer& tokenizer) {
  const RareBand band = rare_band(tokenizer);
  std::vector<IdentifierCandidate> out;
  for (int64_t id = band.first; id <= band.last; ++id) {
    if (is_special(tokenizer, id)) continue;
    const auto word = whole_word(tokenizer, tokenizer.id_to_token(id));
    if (!word || !typeable_short_word(*word)) continue;
    if (tokenizer.encode(*word) != std::vector<int64_t>{id}) continue;
    out.push_back({id, *word});
  }
  return out;
}

std::vector<IdentifierCandidate> suggest_identifiers(const text::Tokenizer& tokenizer, size_t count, uint64_t seed) {
  std::vector<IdentifierCandidate> all = rare_identifier_candidates(tokenizer);
  if (all.empty())
    throw input_error("tokenizer", "has no rare short single-token words to use as an identifier",
                      "pass --token with a word of your choice");
  count = std::min(count, all.size());
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor order = torch::randperm(static_cast<int64_t>(all.size()), generator, torch::kLong);
  std::vector<IdentifierCandidate> out;
  for (size_t i = 0; i < count; ++i) out.push_back(all[order[static_cast<int64_t>(i)].item<int64_t>()]);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

IdentifierCheck check_identifier(const text::Tokenizer& tokenizer, const std::string& identifier) {
  IdentifierCheck check;
  check.ids = tokenizer.encode(identifier);
  check.single_token = check.ids.size() == 1;
  if (!check.single_token) {
    check.warning = "--token '" + identifier + "' is split into " + std::to_string(check.ids.size()) +
                    " tokens; a single rare token binds to the subject more reliably (try --token auto, or "
                    "`dreambooth tokens --suggest 10`)";
    return check;
  }
  const RareBand band = rare_band(tokenizer);
  check.rare = check.ids[0] >= band.first && check.ids[0] <= band.last;
  if (!check.rare)
    check.warning = "--token '" + identifier + "' is a common token (id " + std::to_string(check.ids[0]) +
                    "): the model already knows a meaning for it, which training has to overwrite (try --token auto)";
  return check;
}

}  // namespace dreambooth::train
