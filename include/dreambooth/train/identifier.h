// The subject's identifier: the rare word that comes to mean "this subject" (the paper's [V]).
//
// The paper picks rare tokens of the text encoder's vocabulary, at most 3 characters long, that the
// tokenizer maps back to exactly one token. Rare, for a BPE vocabulary, means a late merge: ids are in
// merge order, so the last ones were the least frequent pairs in CLIP's training text. We take the band
// of the last fifth of the regular vocabulary (CLIP: ids 39526..49405; "sks" = 48136 lies in it) and
// keep tokens that are a whole word of 2-3 lowercase ASCII letters (typeable, one BPE token) which
// encode back to exactly that id. SentencePiece vocabularies are ordered by score, so the same band
// holds their least likely pieces; there a word is a piece that starts with U+2581.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dreambooth/text/tokenizer.h"

namespace dreambooth::train {

struct IdentifierCandidate {
  int64_t id = 0;
  std::string text;  // what to type
};

// The rare band of a tokenizer: [first, last] ids.
struct RareBand {
  int64_t first = 0;
  int64_t last = 0;
};
RareBand rare_band(const text::Tokenizer& tokenizer);

// Every candidate of the band in id order.
std::vector<IdentifierCandidate> rare_identifier_candidates(const text::Tokenizer& tokenizer);

// `count` candidates chosen at random (seeded) from the band, in id order.
std::vector<IdentifierCandidate> suggest_identifiers(const text::Tokenizer& tokenizer, size_t count, uint64_t seed);

struct IdentifierCheck {
  std::vector<int64_t> ids;  // how the tokenizer splits the identifier
  bool single_token = false;
  bool rare = false;         // a single token inside the rare band
  // Empty when fine; else a one-line warning (several tokens, or a common word).
  std::string warning;
};
IdentifierCheck check_identifier(const text::Tokenizer& tokenizer, const std::string& identifier);

}  // namespace dreambooth::train
