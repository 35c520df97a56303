// The CLIP BPE tokenizer against transformers' slow CLIPTokenizer (with ftfy): every golden case of
// tokenizer_cases.json, both the untruncated ids and the padded/truncated input_ids.
#include <chrono>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dreambooth/text/clip_tokenizer.h"
#include "support/golden.h"

using dreambooth::text::ClipTokenizer;
using dreambooth::testing::golden_path;

namespace {

constexpr size_t kGoldenCaseCount = 93;

const nlohmann::json& golden_tokenizer_cases() {
  static const nlohmann::json cases = [] {
    std::ifstream in(golden_path("tokenizer_cases.json"));
    return nlohmann::json::parse(in);
  }();
  return cases;
}

const ClipTokenizer& golden_tokenizer() {
  static const std::unique_ptr<ClipTokenizer> tokenizer = ClipTokenizer::load(golden_path("tokenizer"));
  return *tokenizer;
}

std::vector<int64_t> with_specials(const ClipTokenizer& tokenizer, const std::vector<int64_t>& ids) {
  std::vector<int64_t> out = {tokenizer.bos_id()};
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(tokenizer.eos_id());
  return out;
}

}  // namespace

TEST(ClipTokenizerParity, LoadsVocabAndMergesQuickly) {
  REQUIRE_GOLDEN();
  const auto start = std::chrono::steady_clock::now();
  auto tokenizer = ClipTokenizer::load(golden_path("tokenizer"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
  EXPECT_EQ(tokenizer->vocab_size(), 49408);
  const auto& cases = golden_tokenizer_cases();
  EXPECT_EQ(tokenizer->bos_id(), cases["bos_id"].get<int64_t>());
  EXPECT_EQ(tokenizer->eos_id(), cases["eos_id"].get<int64_t>());
  EXPECT_EQ(tokenizer->pad_id(), cases["pad_id_sd1"].get<int64_t>());
  EXPECT_EQ(tokenizer->kind(), "clip-bpe");
}

TEST(ClipTokenizerParity, AllGoldenCasesIds) {
  REQUIRE_GOLDEN();
  const auto& cases = golden_tokenizer_cases()["cases"];
  ASSERT_EQ(cases.size(), kGoldenCaseCount);
  const ClipTokenizer& tokenizer = golden_tokenizer();
  for (const auto& c : cases) {
    const std::string prompt = c["prompt"].get<std::string>();
    SCOPED_TRACE("case " + std::to_string(c["id"].get<int>()) + ": " + c["prompt"].dump());
    EXPECT_EQ(with_specials(tokenizer, tokenizer.encode(prompt)), c["ids"].get<std::vector<int64_t>>());
  }
}

TEST(ClipTokenizerParity, AllGoldenCasesInputIds) {
  REQUIRE_GOLDEN();
  const auto& golden = golden_tokenizer_cases();
  const int max_length = golden["max_length"].get<int>();
  const ClipTokenizer& tokenizer = golden_tokenizer();
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE("case " + std::to_string(c["id"].get<int>()) + ": " + c["prompt"].dump());
    const auto expected = c["input_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tokenizer.encode_padded(c["prompt"].get<std::string>(), max_length), expected);
  }
}

TEST(ClipTokenizerParity, AllGoldenCasesTokens) {
  REQUIRE_GOLDEN();
  const ClipTokenizer& tokenizer = golden_tokenizer();
  for (const auto& c : golden_tokenizer_cases()["cases"]) {
    SCOPED_TRACE("case " + std::to_string(c["id"].get<int>()) + ": " + c["prompt"].dump());
    auto expected = c["tokens"].get<std::vector<std::string>>();
    expected = std::vector<std::string>(expected.begin() + 1, expected.end() - 1);  // drop BOS/EOS
    EXPECT_EQ(tokenizer.tokenize(c["prompt"].get<std::string>()), expected);
  }
}

TEST(ClipTokenizerParity, BatchTensorMatchesInputIds) {
  REQUIRE_GOLDEN();
  const auto& cases = golden_tokenizer_cases()["cases"];
  std::vector<std::string> prompts;
  for (size_t i = 0; i < 5; ++i) prompts.push_back(cases[i]["prompt"].get<std::string>());
  const at::Tensor batch = golden_tokenizer().encode_batch(prompts);
  ASSERT_EQ(batch.dim(), 2);
  EXPECT_EQ(batch.size(0), 5);
  EXPECT_EQ(batch.size(1), 77);
  EXPECT_EQ(batch.scalar_type(), at::kLong);
  for (int64_t i = 0; i < 5; ++i) {
    const auto expected = cases[i]["input_ids"].get<std::vector<int64_t>>();
    for (int64_t j = 0; j < 77; ++j) ASSERT_EQ(batch[i][j].item<int64_t>(), expected[j]) << "row " << i << " col " << j;
  }
}
