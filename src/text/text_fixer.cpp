#include "dreambooth/text/text_fixer.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "dreambooth/text/unicode.h"

namespace dreambooth::text {
namespace {

struct StringMapping {
  char32_t cp;
  const char* utf8;
};
struct NamedEntity {
  const char* name;  // "&amp;"
  const char* utf8;
};

#include "ftfy_tables.inc"

using unicode::decode_utf8;

constexpr size_t kMaxSegment = 1000000;  // ftfy's max_decode_length
constexpr size_t kMaxEntityName = 24;    // ftfy's HTML_ENTITY_RE: &#?[0-9A-Za-z]{1,24};

bool is_ascii_alnum(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex_digit(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

const char* find_named_entity(const std::string& entity) {
  const auto* it = std::lower_bound(std::begin(kHtmlEntities), std::end(kHtmlEntities), entity,
                                    [](const NamedEntity& e, const std::string& key) { return key.compare(e.name) > 0; });
  if (it != std::end(kHtmlEntities) && entity == it->name) return it->utf8;
  return nullptr;
}

// html.unescape applied to "&#<body>;" as ftfy uses it: the reference counts only when it consumes the
// whole body (otherwise a ';' survives and ftfy keeps the original text).
bool decode_numeric_reference(std::u32string_view body, std::u32string& out) {
  int base = 10;
  size_t start = 0;
  if (!body.empty() && (body[0] == 'x' || body[0] == 'X')) base = 16, start = 1;
  if (body.size() <= start) return false;
  unsigned long long value = 0;
  for (size_t i = start; i < body.size(); ++i) {
    const char32_t c = body[i];
    if (base == 10 ? !(c >= '0' && c <= '9') : !is_hex_digit(c)) return false;
    const int digit = c <= '9' ? static_cast<int>(c - '0') : static_cast<int>((c | 0x20) - 'a' + 10);
    value = std::min<unsigned long long>(value * base + digit, 0x7FFFFFFF);  // saturates past U+10FFFF
  }
  for (const auto& r : kCharrefReplacements) {
    if (r.cp == value) {
      out = decode_utf8(r.utf8);
      return true;
    }
  }
  if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) {
    out = U"\uFFFD";
  } else if (std::find(std::begin(kCharrefDropped), std::end(kCharrefDropped), value) != std::end(kCharrefDropped)) {
    out.clear();
  } else {
    out.assign(1, static_cast<char32_t>(value));
  }
  return true;
}

std::u32string fix_c1_controls(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out)
    if (c >= 0x80 && c <= 0x9F) c = kC1ToWindows1252[c - 0x80];
  return out;
}

std::u32string fix_latin_ligatures(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    switch (c) {
      case 0x0132: out += U"IJ"; break;
      case 0x0133: out += U"ij"; break;
      case 0x0149: out += U"\u02BCn"; break;
      case 0x01C4: out += U"D\u017D"; break;
      case 0x01C5: out += U"D\u017E"; break;
      case 0x01C6: out += U"d\u017E"; break;
      case 0x01C7: out += U"LJ"; break;
      case 0x01C8: out += U"Lj"; break;
      case 0x01C9: out += U"lj"; break;
      case 0x01CA: out += U"NJ"; break;
      case 0x01CB: out += U"Nj"; break;
      case 0x01CC: out += U"nj"; break;
      case 0x01F1: out += U"DZ"; break;
      case 0x01F2: out += U"Dz"; break;
      case 0x01F3: out += U"dz"; break;
      case 0xFB00: out += U"ff"; break;
      case 0xFB01: out += U"fi"; break;
      case 0xFB02: out += U"fl"; break;
      case 0xFB03: out += U"ffi"; break;
      case 0xFB04: out += U"ffl"; break;
      case 0xFB05: out += U"\u017Ft"; break;
      case 0xFB06: out += U"st"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::u32string fix_character_width(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c != 0x3000 && (c < 0xFF01 || c > 0xFFEF)) {
      out.push_back(c);
      continue;
    }
    const auto* it = std::lower_bound(std::begin(kWidthMap), std::end(kWidthMap), c,
                                      [](const StringMapping& m, char32_t key) { return m.cp < key; });
    if (it != std::end(kWidthMap) && it->cp == c)
      out += decode_utf8(it->utf8);
    else
      out.push_back(c);
  }
  return out;
}

std::u32string uncurl_quotes(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
      c = '\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = '"';
  }
  return out;
}

std::u32string fix_line_breaks(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // CRLF -> LF
    out.push_back(c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  return out;
}

// ESC '[' [0-9;]* [A-Za-z]. (Python's \d also takes non-ASCII digits there; ASCII suffices in practice.)
std::u32string remove_terminal_escapes(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      while (j < text.size() && ((text[j] >= '0' && text[j] <= '9') || text[j] == ';')) ++j;
      if (j < text.size() && ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= 'A' && text[j] <= 'Z'))) {
        i = j;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string remove_control_chars(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text)
    if (!is_removed_control(c)) out.push_back(c);
  return out;
}

// ftfy.fix_and_explain on one segment: every fix in order, until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string original = text;
    if (unescape) text = unescape_html(text);
    text = fix_c1_controls(text);
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = unicode::nfc(text);
    if (text == original) return text;
  }
}

}  // namespace

std::u32string unescape_html(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    const bool numeric = i + 1 < text.size() && text[i + 1] == '#';
    const size_t name_begin = i + (numeric ? 2 : 1);
    size_t name_end = name_begin;
    while (name_end < text.size() && is_ascii_alnum(text[name_end])) ++name_end;
    const size_t name_length = name_end - name_begin;
    if (name_length < 1 || name_length > kMaxEntityName || name_end >= text.size() || text[name_end] != ';') {
      out.push_back(text[i++]);
      continue;
    }
    const size_t end = name_end + 1;
    std::string entity;
    for (size_t k = i; k < end; ++k) entity.push_back(static_cast<char>(text[k]));
    std::u32string decoded;
    if (const char* named = find_named_entity(entity)) {
      out += decode_utf8(named);
    } else if (numeric && decode_numeric_reference(text.substr(name_begin, name_length), decoded) &&
               decoded.find(U';') == std::u32string::npos) {
      out += decoded;
    } else {
      out.append(text.substr(i, end - i));
    }
    i = end;
  }
  return out;
}

std::u32string fix_text(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool unescape = true;  // "auto": off from the first segment that holds a literal '<'
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t newline = text.find(U'\n', pos);
    size_t end = newline == std::u32string_view::npos ? text.size() : newline + 1;
    end = std::min(end, pos + kMaxSegment);
    const std::u32string_view segment = text.substr(pos, end - pos);
    if (unescape && segment.find(U'<') != std::u32string_view::npos) unescape = false;
    out += fix_segment(std::u32string(segment), unescape);
    pos = end;
  }
  return out;
}

std::u32string whitespace_clean(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool in_space = false;
  for (char32_t c : text) {
    if (unicode::is_space(c)) {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(U' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

std::u32string clip_normalize(std::u32string_view text) { return unicode::to_lower(whitespace_clean(fix_text(text))); }

}  // namespace dreambooth::text
