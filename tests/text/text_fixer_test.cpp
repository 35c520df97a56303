// The Unicode helpers and the ftfy port. Expected values come from Python 3 (str.lower,
// unicodedata.normalize) and from ftfy's own documented examples.
#include <gtest/gtest.h>

#include "dreambooth/text/text_fixer.h"
#include "dreambooth/text/unicode.h"

namespace unicode = dreambooth::text::unicode;
using dreambooth::text::clip_normalize;
using dreambooth::text::fix_text;
using dreambooth::text::unescape_html;
using dreambooth::text::whitespace_clean;

namespace {

std::string fixed(const std::string& utf8) { return unicode::encode_utf8(fix_text(unicode::decode_utf8(utf8))); }
std::string lowered(const std::string& utf8) { return unicode::encode_utf8(unicode::to_lower(unicode::decode_utf8(utf8))); }
std::string composed(const std::u32string& text) { return unicode::encode_utf8(unicode::nfc(text)); }
std::string unescaped(const std::string& utf8) { return unicode::encode_utf8(unescape_html(unicode::decode_utf8(utf8))); }

}  // namespace

TEST(Unicode, Utf8RoundTripAndInvalidBytes) {
  const std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x90\xB1";  // a é 日 🐱
  EXPECT_EQ(unicode::decode_utf8(text), (std::u32string{U'a', 0xE9, 0x65E5, 0x1F431}));
  EXPECT_EQ(unicode::encode_utf8(unicode::decode_utf8(text)), text);
  EXPECT_EQ(unicode::decode_utf8("a\xFF" "b\xC3"), (std::u32string{U'a', 0xFFFD, U'b', 0xFFFD}));
  EXPECT_EQ(unicode::decode_utf8("\xED\xA0\x80"), (std::u32string{0xFFFD, 0xFFFD, 0xFFFD}));  // a surrogate
}

TEST(Unicode, ClipClasses) {
  using unicode::ClipClass;
  EXPECT_EQ(unicode::clip_class(U'a'), ClipClass::Letter);
  EXPECT_EQ(unicode::clip_class(0x65E5), ClipClass::Letter);   // 日
  EXPECT_EQ(unicode::clip_class(0xAC01), ClipClass::Letter);   // 각
  EXPECT_EQ(unicode::clip_class(U'7'), ClipClass::Number);
  EXPECT_EQ(unicode::clip_class(0xBD), ClipClass::Number);     // ½ (No)
  EXPECT_EQ(unicode::clip_class(0x2163), ClipClass::Number);   // Ⅳ (Nl)
  EXPECT_EQ(unicode::clip_class(U'!'), ClipClass::Other);
  EXPECT_EQ(unicode::clip_class(0x301), ClipClass::Other);     // combining acute: not \p{L}
  EXPECT_EQ(unicode::clip_class(0x1F431), ClipClass::Other);   // 🐱
  EXPECT_EQ(unicode::clip_class(U' '), ClipClass::None);
  EXPECT_EQ(unicode::clip_class(0x3000), ClipClass::None);
  EXPECT_EQ(unicode::clip_class(0x345), ClipClass::None);      // the IGNORECASE quirk of the regex module
  EXPECT_TRUE(unicode::is_space(0x1C));
  EXPECT_TRUE(unicode::is_space(0xA0));
  EXPECT_FALSE(unicode::is_space(0x200B));
}

TEST(Unicode, LowercaseMatchesPython) {
  EXPECT_EQ(lowered("A PHOTO Of SKS"), "a photo of sks");
  EXPECT_EQ(lowered("\xC4\xB0stanbul"), "i\xCC\x87stanbul");                    // İ -> i + U+0307
  EXPECT_EQ(lowered("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");  // ΟΔΟΣ -> οδος
  EXPECT_EQ(lowered("\xCE\xA3\xCE\x91"), "\xCF\x83\xCE\xB1");                  // ΣΑ -> σα
  EXPECT_EQ(lowered("\xCE\xA3"), "\xCF\x83");                                   // Σ alone -> σ
  EXPECT_EQ(lowered("A\xCE\xA3."), "a\xCF\x82.");                               // '.' is case-ignorable
  EXPECT_EQ(lowered("A\xCE\xA3.B"), "a\xCF\x83.b");
  EXPECT_EQ(lowered("\xE1\xBA\x9E"), "\xC3\x9F");                               // ẞ -> ß
  EXPECT_EQ(lowered("\xD0\xA0\xD0\xA3\xD0\xA1"), "\xD1\x80\xD1\x83\xD1\x81");  // РУС -> рус
}

TEST(Unicode, NfcMatchesPython) {
  EXPECT_EQ(composed(U"cafe\u0301"), "caf\xC3\xA9");
  EXPECT_EQ(composed(U"\u1100\u1161\u11A8"), "\xEA\xB0\x81");       // Hangul L V T -> 각
  EXPECT_EQ(composed(U"a\u0323\u0302"), "\xE1\xBA\xAD");           // ậ
  EXPECT_EQ(composed(U"a\u0302\u0323"), "\xE1\xBA\xAD");           // reordered first
  EXPECT_EQ(composed(U"\u212B"), "\xC3\x85");                       // Angstrom sign -> Å (singleton)
  EXPECT_EQ(composed(U"q\u0307\u0323"), "q\xCC\xA3\xCC\x87");       // no composite: canonical order only
  EXPECT_EQ(composed(U"\u0344"), "\xCC\x88\xCC\x81");               // composition exclusion stays apart
}

TEST(TextFixer, HtmlEntities) {
  EXPECT_EQ(unescaped("&lt;tag&gt;"), "<tag>");
  EXPECT_EQ(unescaped("fish &amp; chips"), "fish & chips");
  EXPECT_EQ(unescaped("P&EACUTE;REZ"), "P\xC3\x89REZ");
  EXPECT_EQ(unescaped("&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;");
  EXPECT_EQ(unescaped("it&#x2019;s &#8220;x&#8221;"), "it\xE2\x80\x99s \xE2\x80\x9Cx\xE2\x80\x9D");
  EXPECT_EQ(unescaped("doo&#133;"), "doo\xE2\x80\xA6");  // C1 references decode as Windows-1252
  EXPECT_EQ(unescaped("&#59; &#12abc; &#xZZ; this&not that &bogus;"), "&#59; &#12abc; &#xZZ; this&not that &bogus;");
  EXPECT_EQ(unescaped("&#0;&#x110000;"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unescaped("&amp;lt;"), "&lt;");  // one level per pass; fix_text repeats
}

TEST(TextFixer, FtfyDocumentedExamples) {
  EXPECT_EQ(fixed("Broken text&hellip; it&#x2019;s \xEF\xAC\x82ubberi\xEF\xAC\x81" "c!"),
            "Broken text\xE2\x80\xA6 it's flubberific!");
  EXPECT_EQ(fixed("HTML entities &lt;3"), "HTML entities <3");
  EXPECT_EQ(fixed("<em>HTML entities &lt;3</em>"), "<em>HTML entities &lt;3</em>");
  EXPECT_EQ(fixed("\xEF\xBC\xAC\xEF\xBC\xAF\xEF\xBC\xB5\xEF\xBC\xA4\xE3\x80\x80\xEF\xBC\xAE"), "LOUD N");
  EXPECT_EQ(fixed("\xEF\xBB\xBFParty like\nit&rsquo;s 1999!"), "Party like\nit's 1999!");
  EXPECT_EQ(fixed("\x1B[36;44mI'm blue, da ba dee\x1B[0m"), "I'm blue, da ba dee");
  EXPECT_EQ(fixed("&amp;amp;"), "&");
  EXPECT_EQ(fixed("\xEF\xBE\x80\xEF\xBD\xB0\xEF\xBE\x9D"), "\xE3\x82\xBF\xE3\x83\xBC\xE3\x83\xB3");  // ﾀｰﾝ -> ターン
}

TEST(TextFixer, QuotesLigaturesLineBreaksControls) {
  EXPECT_EQ(fixed("\xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x80\x98single\xE2\x80\x99 \xCA\xBC"), "\"quoted\" 'single' '");
  EXPECT_EQ(fixed("\xC7\x85ungla \xC5\x89"), "D\xC5\xBEungla 'n");  // ǅ -> Dž, ŉ -> ʼn -> 'n
  EXPECT_EQ(fixed("a\r\nb\rc\xE2\x80\xA8" "d"), "a\nb\nc\nd");
  EXPECT_EQ(fixed("a\x01" "b\x7F" "c\xE2\x81\xAA" "d"), "abcd");
  EXPECT_EQ(fixed("a\xC2\x85" "b\xC2\x80"), "a\xE2\x80\xA6" "b\xE2\x82\xAC");  // C1 controls -> Windows-1252
  EXPECT_EQ(fixed("cafe\xCC\x81"), "caf\xC3\xA9");
}

TEST(TextFixer, LiteralAngleBracketTurnsEntitiesOffFromThatLine) {
  EXPECT_EQ(fixed("a &amp; b\n<p>&amp;\n&amp;"), "a & b\n<p>&amp;\n&amp;");
}

TEST(TextFixer, WhitespaceCleanAndNormalize) {
  EXPECT_EQ(unicode::encode_utf8(whitespace_clean(U"  a \t\n b\u3000c  ")), "a b c");
  EXPECT_EQ(unicode::encode_utf8(whitespace_clean(U" \t ")), "");
  EXPECT_EQ(unicode::encode_utf8(clip_normalize(U"  A   Photo\nOF &amp; \uFF33\uFF2B\uFF33 ")), "a photo of & sks");
}
