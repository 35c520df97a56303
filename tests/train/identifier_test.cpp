// Identifier selection and checks with the real CLIP vocabulary.
#include <gtest/gtest.h>

#include "dreambooth/text/tokenizer.h"
#include "dreambooth/train/identifier.h"
#include "support/golden.h"

using namespace dreambooth;

namespace {

const text::Tokenizer& clip_tokenizer() {
  static const std::unique_ptr<text::Tokenizer> tokenizer =
      text::load_tokenizer(dreambooth::testing::golden_path("tokenizer"));
  return *tokenizer;
}

}  // namespace

TEST(Identifier, RareBandIsTheLastFifthOfClipsMerges) {
  REQUIRE_GOLDEN();
  const train::RareBand band = train::rare_band(clip_tokenizer());
  EXPECT_EQ(band.last, 49405);  // 49406/49407 are BOS/EOS
  EXPECT_EQ(band.first, 39524);
}

TEST(Identifier, CandidatesAreShortRareSingleTokenWords) {
  REQUIRE_GOLDEN();
  const text::Tokenizer& tokenizer = clip_tokenizer();
  const auto candidates = train::rare_identifier_candidates(tokenizer);
  EXPECT_GT(candidates.size(), 300u);
  bool has_sks = false;
  for (const auto& c : candidates) {
    ASSERT_GE(c.text.size(), 2u);
    ASSERT_LE(c.text.size(), 3u);
    ASSERT_EQ(tokenizer.encode(c.text), std::vector<int64_t>{c.id}) << c.text;
    has_sks = has_sks || c.text == "sks";
  }
  EXPECT_TRUE(has_sks);  // the identifier of the DreamBooth examples is such a token (48136)
}

TEST(Identifier, SuggestionsAreSeededAndDistinct) {
  REQUIRE_GOLDEN();
  const auto a = train::suggest_identifiers(clip_tokenizer(), 8, 1);
  const auto b = train::suggest_identifiers(clip_tokenizer(), 8, 1);
  const auto c = train::suggest_identifiers(clip_tokenizer(), 8, 2);
  ASSERT_EQ(a.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id);
    if (i > 0) {
      EXPECT_LT(a[i - 1].id, a[i].id);
    }
  }
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs = differs || a[i].id != c[i].id;
  EXPECT_TRUE(differs);
}

TEST(Identifier, ChecksWarnAboutCommonWordsAndSplits) {
  REQUIRE_GOLDEN();
  const auto sks = train::check_identifier(clip_tokenizer(), "sks");
  EXPECT_TRUE(sks.single_token);
  EXPECT_TRUE(sks.rare);
  EXPECT_TRUE(sks.warning.empty());
  const auto dog = train::check_identifier(clip_tokenizer(), "dog");
  EXPECT_TRUE(dog.single_token);
  EXPECT_FALSE(dog.rare);
  EXPECT_NE(dog.warning.find("common"), std::string::npos);
  const auto split = train::check_identifier(clip_tokenizer(), "zwxqv");
  EXPECT_FALSE(split.single_token);
  EXPECT_NE(split.warning.find("tokens"), std::string::npos);
}
