// A deterministic corpus of short image captions, and the tiny SentencePiece tokenizer trained on it,
// so that `init --preset tiny` needs no external vocabulary on a fresh machine.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace dreambooth::text {

// The rare identifiers DreamBooth binds a subject to ("a photo of sks dog").
const std::vector<std::string>& rare_identifiers();

// A few thousand lowercase captions composed from fixed word lists (subjects, adjectives, places,
// styles, lighting) plus every "a photo of <identifier> <subject>" phrase. Same output on every
// machine and every call.
std::vector<std::string> make_caption_corpus();

// Upper bound on the tiny tokenizer's vocabulary (the tiny text encoder's embedding size covers it).
constexpr int kTinyTokenizerVocabSize = 1024;

// Trains a SentencePiece model on make_caption_corpus() and writes <dir>/tokenizer.model (and the
// readable tokenizer.vocab). Returns the .model path; load_tokenizer(dir) then picks it up.
std::filesystem::path write_tiny_tokenizer(const std::filesystem::path& dir, int vocab_size = kTinyTokenizerVocabSize);

}  // namespace dreambooth::text
