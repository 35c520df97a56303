#include "dreambooth/text/unicode.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace dreambooth::text::unicode {
namespace {

struct CodePointRun {
  char32_t start;  // the value holds from here up to the next run's start
  unsigned char value;
};
struct LowerMapping {
  char32_t cp;
  char32_t lower[3];  // zero-padded
};
struct Decomposition {
  char32_t cp;
  char32_t first;
  char32_t second;  // 0 for a singleton decomposition
};
struct Composition {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "unicode_tables.inc"

template <size_t N>
unsigned char run_value(const CodePointRun (&runs)[N], char32_t cp) {
  const auto* it = std::upper_bound(std::begin(runs), std::end(runs), cp,
                                    [](char32_t c, const CodePointRun& run) { return c < run.start; });
  return it == std::begin(runs) ? 0 : std::prev(it)->value;
}

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kCapitalSigma = 0x03A3;
constexpr char32_t kSmallSigma = 0x03C3;
constexpr char32_t kFinalSigma = 0x03C2;

// Hangul syllables compose and decompose algorithmically (Unicode 3.12).
constexpr char32_t kHangulBase = 0xAC00, kLeadBase = 0x1100, kVowelBase = 0x1161, kTrailBase = 0x11A7;
constexpr int kLeadCount = 19, kVowelCount = 21, kTrailCount = 28;
constexpr int kSyllableCount = kLeadCount * kVowelCount * kTrailCount;  // 11172

enum CaseClass : unsigned char { kUncased = 0, kCased = 1, kCaseIgnorable = 2 };

bool is_final_sigma(std::u32string_view text, size_t i) {
  // CPython's rule: \p{cased} \p{case-ignorable}* U+03A3 !( \p{case-ignorable}* \p{cased} )
  size_t j = i;
  unsigned char before = kUncased;
  while (j > 0) {
    before = run_value(kCaseRuns, text[--j]);
    if (before != kCaseIgnorable) break;
  }
  if (before != kCased) return false;
  for (size_t k = i + 1; k < text.size(); ++k) {
    unsigned char after = run_value(kCaseRuns, text[k]);
    if (after != kCaseIgnorable) return after != kCased;
  }
  return true;
}

void decompose(char32_t cp, std::u32string& out) {
  if (cp >= kHangulBase && cp < kHangulBase + kSyllableCount) {
    const int s = static_cast<int>(cp - kHangulBase);
    out.push_back(kLeadBase + s / (kVowelCount * kTrailCount));
    out.push_back(kVowelBase + (s % (kVowelCount * kTrailCount)) / kTrailCount);
    if (s % kTrailCount != 0) out.push_back(kTrailBase + s % kTrailCount);
    return;
  }
  const auto* it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                                    [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == std::end(kDecompositions) || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);
  if (it->second != 0) decompose(it->second, out);
}

// The primary composite of (first, second), or 0.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kLeadBase && first < kLeadBase + kLeadCount && second >= kVowelBase &&
      second < kVowelBase + kVowelCount) {
    return kHangulBase + ((first - kLeadBase) * kVowelCount + (second - kVowelBase)) * kTrailCount;
  }
  if (first >= kHangulBase && first < kHangulBase + kSyllableCount && (first - kHangulBase) % kTrailCount == 0 &&
      second > kTrailBase && second < kTrailBase + kTrailCount) {
    return first + (second - kTrailBase);
  }
  const auto* it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::make_pair(first, second),
                                    [](const Composition& c, const std::pair<char32_t, char32_t>& key) {
                                      return c.first < key.first || (c.first == key.first && c.second < key.second);
                                    });
  if (it != std::end(kCompositions) && it->first == first && it->second == second) return it->composite;
  return 0;
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

std::u32string decode_utf8(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    int length = 0;
    char32_t cp = 0, min = 0;
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    } else if ((b0 & 0xE0) == 0xC0) {
      length = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      length = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      length = 4, cp = b0 & 0x07, min = 0x10000;
    }
    bool ok = length > 0 && i + length <= bytes.size();
    for (int k = 1; ok && k < length; ++k) {
      const auto b = static_cast<unsigned char>(bytes[i + k]);
      ok = (b & 0xC0) == 0x80;
      cp = (cp << 6) | (b & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.push_back(cp);
      i += length;
    } else {
      out.push_back(kReplacement);
      ++i;
    }
  }
  return out;
}

ClipClass clip_class(char32_t cp) { return static_cast<ClipClass>(run_value(kClipClassRuns, cp)); }

bool is_space(char32_t cp) { return std::find(std::begin(kWhitespace), std::end(kWhitespace), cp) != std::end(kWhitespace); }

int combining_class(char32_t cp) { return run_value(kCombiningClassRuns, cp); }

std::u32string to_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t cp = text[i];
    if (cp < 0x80) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
      continue;
    }
    if (cp == kCapitalSigma) {
      out.push_back(is_final_sigma(text, i) ? kFinalSigma : kSmallSigma);
      continue;
    }
    const auto* it = std::lower_bound(std::begin(kLowercase), std::end(kLowercase), cp,
                                      [](const LowerMapping& m, char32_t c) { return m.cp < c; });
    if (it == std::end(kLowercase) || it->cp != cp) {
      out.push_back(cp);
      continue;
    }
    for (char32_t lower : it->lower)
      if (lower != 0) out.push_back(lower);
  }
  return out;
}

std::u32string nfc(std::u32string_view text) {
  // 1. Full canonical decomposition.
  std::u32string decomposed;
  decomposed.reserve(text.size() + 8);
  for (char32_t cp : text) decompose(cp, decomposed);

  // 2. Canonical ordering: stable-sort every run of non-starters by combining class.
  for (size_t i = 0; i < decomposed.size();) {
    if (combining_class(decomposed[i]) == 0) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < decomposed.size() && combining_class(decomposed[end]) != 0) ++end;
    std::stable_sort(decomposed.begin() + static_cast<std::ptrdiff_t>(i),
                     decomposed.begin() + static_cast<std::ptrdiff_t>(end),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = end;
  }

  // 3. Canonical composition: each character joins the last starter unless blocked.
  std::u32string out;
  out.reserve(decomposed.size());
  size_t starter = std::u32string::npos;
  for (char32_t cp : decomposed) {
    const int cc = combining_class(cp);
    if (starter != std::u32string::npos) {
      const bool adjacent = starter + 1 == out.size();
      const int last_cc = combining_class(out.back());
      if (adjacent || (last_cc != 0 && last_cc < cc)) {
        if (char32_t composite = compose_pair(out[starter], cp)) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cc == 0) starter = out.size();
    out.push_back(cp);
  }
  return out;
}

}  // namespace dreambooth::text::unicode
