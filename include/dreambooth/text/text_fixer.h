// The text clean-up transformers' CLIPTokenizer applies before BPE: ftfy.fix_text (ftfy 6 defaults),
// then whitespace_clean (runs of whitespace -> one space, strip), then str.lower().
//
// Ported fixes, in ftfy's order and repeated until the text stops changing: unescape_html ("auto":
// off from the first line holding a literal '<'), fix_c1_controls, fix_latin_ligatures,
// fix_character_width, uncurl_quotes, fix_line_breaks, remove_terminal_escapes, remove_control_chars,
// NFC. Not ported: fix_encoding (mojibake repair driven by ftfy's "badness" heuristic), so text that
// is double-encoded UTF-8 ("cafÃ©") is tokenized as written. Prompts typed as Unicode never need it.
#pragma once

#include <string>
#include <string_view>

namespace dreambooth::text {

std::u32string fix_text(std::u32string_view text);

// The individual fixes, exposed for tests.
std::u32string unescape_html(std::u32string_view text);
std::u32string whitespace_clean(std::u32string_view text);

// whitespace_clean(fix_text(text)) then lowercase: the canonical CLIP normalisation.
std::u32string clip_normalize(std::u32string_view text);

}  // namespace dreambooth::text
