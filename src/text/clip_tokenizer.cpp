#include "dreambooth/text/clip_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dreambooth/core/error.h"
#include "dreambooth/text/text_fixer.h"
#include "dreambooth/text/unicode.h"

namespace dreambooth::text {
namespace fs = std::filesystem;
namespace {

// transformers reads at most this many merges (49152 BPE tokens - 256 bytes - 2 specials), like CLIP.
constexpr size_t kMaxMerges = 49152 - 256 - 2;
constexpr size_t kMaxCachedPieces = 100000;
constexpr const char* kEndOfWord = "</w>";
constexpr const char* kFolderHint = "a CLIP tokenizer folder holds vocab.json and merges.txt";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path.string(), "cannot open file", kFolderHint);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unordered_map<std::string, int64_t> read_vocab(const fs::path& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(path.string(), std::string("invalid JSON: ") + e.what());
  }
  if (!json.is_object()) throw input_error(path.string(), "expected a JSON object {token: id}");
  std::unordered_map<std::string, int64_t> vocab;
  vocab.reserve(json.size());
  for (const auto& [token, id] : json.items()) {
    if (!id.is_number_integer()) throw input_error(path.string(), "id of token '" + token + "' is not an integer");
    vocab.emplace(token, id.get<int64_t>());
  }
  return vocab;
}

std::vector<std::pair<std::string, std::string>> read_merges(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path.string(), "cannot open file", kFolderHint);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(kMaxMerges);
  std::string line;
  size_t line_number = 0;
  std::vector<size_t> blank_lines;
  while (std::getline(in, line) && merges.size() < kMaxMerges) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_number == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.find_first_not_of(" \t") == std::string::npos) {
      blank_lines.push_back(line_number);
      continue;
    }
    if (!blank_lines.empty())
      throw input_error(path.string(), "line " + std::to_string(blank_lines.front()) + " is empty",
                        "each line holds two symbols separated by a space");
    std::istringstream fields(line);
    std::string first, second, extra;
    if (!(fields >> first >> second) || (fields >> extra))
      throw input_error(path.string(), "line " + std::to_string(line_number) + " is not a merge: '" + line + "'",
                        "each line holds two symbols separated by a space");
    merges.emplace_back(std::move(first), std::move(second));
  }
  if (merges.empty()) throw input_error(path.string(), "no merges found", kFolderHint);
  return merges;
}

// A special token as the JSON files write it: "text" or {"content": "text", ...}.
std::optional<std::string> special_token(const nlohmann::json& json, const char* key, const fs::path& path) {
  if (!json.contains(key) || json[key].is_null()) return std::nullopt;
  const auto& value = json[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  throw input_error(path.string(), std::string("'") + key + "' is neither a string nor {\"content\": string}");
}

void read_special_tokens(const fs::path& path, ClipSpecialTokens& specials) {
  if (!fs::exists(path)) return;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(path.string(), std::string("invalid JSON: ") + e.what());
  }
  if (!json.is_object()) throw input_error(path.string(), "expected a JSON object");
  if (auto v = special_token(json, "bos_token", path)) specials.bos = *v;
  if (auto v = special_token(json, "eos_token", path)) specials.eos = *v;
  if (auto v = special_token(json, "unk_token", path)) specials.unk = *v;
  if (auto v = special_token(json, "pad_token", path)) specials.pad = *v;
}

// The printable bytes keep their code point; the others move to 256, 257, ... in byte order.
void build_byte_map(std::string (&byte_to_unicode)[256], std::unordered_map<std::string, unsigned char>& reverse) {
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    std::string utf8;
    unicode::append_utf8(utf8, printable ? static_cast<char32_t>(b) : next++);
    byte_to_unicode[b] = utf8;
    reverse.emplace(utf8, static_cast<unsigned char>(b));
  }
}

// Case-insensitive equality of a text character and an ASCII pattern character, as the `regex` module
// matches under IGNORECASE (simple case folding: U+017F LONG S is an 's').
bool same_ignoring_case(char32_t c, char p) {
  if (c == static_cast<char32_t>(p)) return true;
  if (c >= 'A' && c <= 'Z') return c + 32 == static_cast<char32_t>(p);
  return c == 0x017F && p == 's';
}

size_t match_literal(const std::u32string& text, size_t i, const char* literal) {
  size_t k = 0;
  for (; literal[k] != '\0'; ++k)
    if (i + k >= text.size() || !same_ignoring_case(text[i + k], literal[k])) return 0;
  return k;
}

// The CLIP regex, alternative by alternative (leftmost-first), at every position; unmatched characters
// (whitespace) are skipped, as re.findall does.
std::vector<std::u32string> pre_tokenize(const std::u32string& text) {
  static const char* const kLiterals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  using unicode::ClipClass;
  std::vector<std::u32string> pieces;
  size_t i = 0;
  while (i < text.size()) {
    size_t length = 0;
    for (const char* literal : kLiterals)
      if ((length = match_literal(text, i, literal)) != 0) break;
    if (length == 0) {
      const ClipClass cls = unicode::clip_class(text[i]);
      if (cls == ClipClass::Number) {
        length = 1;
      } else if (cls == ClipClass::Letter || cls == ClipClass::Other) {
        length = 1;
        while (i + length < text.size() && unicode::clip_class(text[i + length]) == cls) ++length;
      }
    }
    if (length == 0) {
      ++i;
      continue;
    }
    pieces.push_back(text.substr(i, length));
    i += length;
  }
  return pieces;
}

// Splits UTF-8 into its code points (as strings).
std::vector<std::string> utf8_symbols(const std::string& s) {
  std::vector<std::string> symbols;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t length = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : 4;
    symbols.push_back(s.substr(i, length));
    i += length;
  }
  return symbols;
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::unordered_map<std::string, int64_t> vocab,
                             std::vector<std::pair<std::string, std::string>> merges, ClipSpecialTokens specials,
                             const std::string& source)
    : vocab_(std::move(vocab)), specials_(std::move(specials)), source_(source) {
  if (vocab_.empty()) throw input_error(source_, "empty vocabulary", kFolderHint);
  id_to_token_.assign(vocab_.size(), std::string());
  std::vector<bool> seen(vocab_.size(), false);
  for (const auto& [token, id] : vocab_) {
    if (id < 0 || id >= static_cast<int64_t>(vocab_.size()) || seen[id])
      throw input_error(source_, "token ids must be 0.." + std::to_string(vocab_.size() - 1) + " without gaps or repeats",
                        "token '" + token + "' has id " + std::to_string(id));
    seen[id] = true;
    id_to_token_[id] = token;
  }
  merge_ranks_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank)
    merge_ranks_.emplace(merges[rank].first + " " + merges[rank].second, static_cast<int>(rank));
  build_byte_map(byte_to_unicode_, unicode_to_byte_);

  bos_id_ = required_id(specials_.bos, "bos_token");
  eos_id_ = required_id(specials_.eos, "eos_token");
  unk_id_ = required_id(specials_.unk, "unk_token");
  pad_id_ = required_id(specials_.pad, "pad_token");
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::load(const fs::path& dir, std::optional<int64_t> pad_id) {
  if (!fs::is_directory(dir)) throw input_error(dir.string(), "not a directory", kFolderHint);
  for (const char* name : {"vocab.json", "merges.txt"})
    if (!fs::exists(dir / name)) throw input_error(dir.string(), std::string("missing ") + name, kFolderHint);
  ClipSpecialTokens specials;
  read_special_tokens(dir / "tokenizer_config.json", specials);
  read_special_tokens(dir / "special_tokens_map.json", specials);  // transformers lets this one win
  auto tokenizer = std::make_unique<ClipTokenizer>(read_vocab(dir / "vocab.json"), read_merges(dir / "merges.txt"),
                                                   specials, dir.string());
  if (pad_id) tokenizer->set_pad_id(*pad_id);
  return tokenizer;
}

int64_t ClipTokenizer::required_id(const std::string& token, const char* role) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end())
    throw input_error(source_, std::string(role) + " '" + token + "' is not in vocab.json",
                      "check special_tokens_map.json / tokenizer_config.json");
  return it->second;
}

void ClipTokenizer::set_pad_id(int64_t id) {
  specials_.pad = id_to_token(id);
  pad_id_ = id;
}

std::optional<int64_t> ClipTokenizer::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::string ClipTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw input_error(source_, "token id " + std::to_string(id) + " is outside the vocabulary",
                      "ids run from 0 to " + std::to_string(vocab_size() - 1));
  return id_to_token_[id];
}

int64_t ClipTokenizer::lookup(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_id_ : it->second;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& piece) const {
  // transformers seeds its cache with the two specials: they stay whole, without "</w>".
  if (piece == "<|startoftext|>" || piece == "<|endoftext|>") return {piece};
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) return it->second;
  }
  std::vector<std::string> word = utf8_symbols(piece);
  word.back() += kEndOfWord;
  while (word.size() > 1) {
    // The adjacent pair with the lowest merge rank...
    int best_rank = std::numeric_limits<int>::max();
    size_t best = 0;
    for (size_t k = 0; k + 1 < word.size(); ++k) {
      auto it = merge_ranks_.find(word[k] + " " + word[k + 1]);
      if (it != merge_ranks_.end() && it->second < best_rank) best_rank = it->second, best = k;
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    // ...is merged everywhere it occurs, left to right.
    const std::string first = word[best], second = word[best + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t k = 0; k < word.size(); ++k) {
      if (k + 1 < word.size() && word[k] == first && word[k + 1] == second) {
        merged.push_back(first + second);
        ++k;
      } else {
        merged.push_back(word[k]);
      }
    }
    word = std::move(merged);
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCachedPieces) cache_.clear();
  cache_.emplace(piece, word);
  return word;
}

void ClipTokenizer::tokenize_chunk(const std::string& chunk, std::vector<std::string>& out) const {
  const std::u32string normalized = clip_normalize(unicode::decode_utf8(chunk));
  for (const std::u32string& piece : pre_tokenize(normalized)) {
    std::string mapped;
    for (unsigned char b : unicode::encode_utf8(piece)) mapped += byte_to_unicode_[b];
    for (std::string& token : bpe(mapped)) out.push_back(std::move(token));
  }
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& text) const {
  // Special-token strings are cut out of the raw text first and kept whole (transformers' trie split).
  std::vector<std::string> specials = {specials_.bos, specials_.eos, specials_.unk, specials_.pad};
  std::sort(specials.begin(), specials.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  specials.erase(std::unique(specials.begin(), specials.end()), specials.end());

  std::vector<std::string> tokens;
  size_t chunk_begin = 0, i = 0;
  while (i < text.size()) {
    const std::string* found = nullptr;
    for (const std::string& special : specials) {
      if (!special.empty() && text.compare(i, special.size(), special) == 0) {
        found = &special;
        break;
      }
    }
    if (found == nullptr) {
      ++i;
      continue;
    }
    if (i > chunk_begin) tokenize_chunk(text.substr(chunk_begin, i - chunk_begin), tokens);
    tokens.push_back(*found);
    i += found->size();
    chunk_begin = i;
  }
  if (chunk_begin < text.size()) tokenize_chunk(text.substr(chunk_begin), tokens);
  return tokens;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& token : tokenize(text)) ids.push_back(lookup(token));
  return ids;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string joined;
  for (int64_t id : ids)
    if (id != bos_id_ && id != eos_id_) joined += id_to_token(id);
  std::string bytes;
  for (const std::string& symbol : utf8_symbols(joined)) {
    auto it = unicode_to_byte_.find(symbol);
    if (it != unicode_to_byte_.end()) bytes.push_back(static_cast<char>(it->second));
  }
  std::string text;
  for (size_t i = 0; i < bytes.size();) {
    if (bytes.compare(i, 4, kEndOfWord) == 0) {
      text.push_back(' ');
      i += 4;
    } else {
      text.push_back(bytes[i++]);
    }
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return unicode::encode_utf8(unicode::decode_utf8(text));  // invalid UTF-8 -> U+FFFD, like errors="replace"
}

}  // namespace dreambooth::text
