// SentencePiece through the plugin: a model trained by sentencepiece's own trainer on the caption
// corpus (once per test binary), then encode/decode, specials, padding and backend selection.
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "dreambooth/core/error.h"
#include "dreambooth/text/caption_corpus.h"
#include "dreambooth/text/sentencepiece_tokenizer.h"
#include "dreambooth/text/tokenizer.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::TempDir;
namespace text = dreambooth::text;

namespace {

constexpr int kVocabSize = 600;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One trained model shared by the tests of this binary.
class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    try {
      model_ = text::write_tiny_tokenizer(dir_->path(), kVocabSize);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "training failed: " << setup_error_; }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
  static fs::path model_;
  static std::string setup_error_;
};
TempDir* SentencePieceTest::dir_ = nullptr;
fs::path SentencePieceTest::model_;
std::string SentencePieceTest::setup_error_;

}  // namespace

TEST(CaptionCorpus, DeterministicAndVaried) {
  const auto corpus = text::make_caption_corpus();
  EXPECT_EQ(corpus, text::make_caption_corpus());
  EXPECT_GE(corpus.size(), 2000u);
  EXPECT_LE(corpus.size(), 10000u);
  const std::set<std::string> unique(corpus.begin(), corpus.end());
  EXPECT_GT(unique.size(), corpus.size() / 2);
  EXPECT_TRUE(unique.count("a photo of sks dog"));
  EXPECT_TRUE(unique.count("a photo of zwx person"));
  for (const std::string& caption : corpus) {
    ASSERT_FALSE(caption.empty());
    ASSERT_LT(caption.size(), 200u) << caption;
    ASSERT_EQ(caption.find('\n'), std::string::npos);
  }
}

TEST_F(SentencePieceTest, WritesTokenizerModelThatLoadTokenizerPicks) {
  EXPECT_EQ(model_, dir_->path() / "tokenizer.model");
  ASSERT_TRUE(fs::is_regular_file(model_));
  EXPECT_FALSE(fs::exists(dir_->path() / "tokenizer.corpus.txt"));  // the temporary corpus is gone
  for (const fs::path& p : {dir_->path(), model_}) {
    auto tok = text::load_tokenizer(p);
    EXPECT_EQ(tok->kind(), "sentencepiece") << p;
  }
  EXPECT_TRUE(text::looks_like_tokenizer(dir_->path()));
  EXPECT_TRUE(fs::exists(text::sentencepiece_plugin_path()));
}

TEST_F(SentencePieceTest, SpecialIdsAndVocabulary) {
  auto tok = text::load_tokenizer(model_);
  EXPECT_EQ(tok->pad_id(), text::kSpmPadId);
  EXPECT_EQ(tok->bos_id(), text::kSpmBosId);
  EXPECT_EQ(tok->eos_id(), text::kSpmEosId);
  EXPECT_GT(tok->vocab_size(), 100);
  EXPECT_LE(tok->vocab_size(), kVocabSize);
  EXPECT_EQ(tok->id_to_token(text::kSpmBosId), "<s>");
  EXPECT_EQ(tok->id_to_token(text::kSpmEosId), "</s>");
  EXPECT_EQ(tok->token_to_id("</s>"), text::kSpmEosId);
  EXPECT_FALSE(tok->token_to_id("no-such-piece-xyz").has_value());
  EXPECT_THROW(tok->id_to_token(tok->vocab_size()), Error);
  // The identifier DreamBooth binds is a single piece.
  const auto sks = tok->encode("sks");
  ASSERT_EQ(sks.size(), 1u);
  EXPECT_EQ(tok->id_to_token(sks[0]), "\xE2\x96\x81sks");  // "▁sks"
  for (int64_t id : tok->encode("he asks")) EXPECT_NE(id, sks[0]);  // only at a word start
}

TEST_F(SentencePieceTest, EncodeDecodeRoundTrip) {
  auto tok = text::load_tokenizer(model_);
  for (const std::string prompt : {"a photo of sks dog", "a watercolor painting of a cat sitting on the beach",
                                   "a fluffy golden dog, studio lighting, highly detailed"}) {
    const auto ids = tok->encode(prompt);
    ASSERT_FALSE(ids.empty());
    EXPECT_LT(ids.size(), prompt.size()) << prompt;  // pieces are longer than characters
    for (int64_t id : ids) EXPECT_NE(id, text::kSpmUnkId) << prompt;
    EXPECT_EQ(tok->decode(ids), prompt);
  }
  // The model case-folds: capitals encode like lowercase.
  EXPECT_EQ(tok->encode("A Photo Of SKS Dog"), tok->encode("a photo of sks dog"));
}

TEST_F(SentencePieceTest, PaddingTruncationAndOverride) {
  auto tok = text::load_tokenizer(model_);
  const auto ids = tok->encode("a photo of sks dog");
  const auto padded = tok->encode_padded("a photo of sks dog");
  ASSERT_EQ(padded.size(), 77u);
  EXPECT_EQ(padded[0], text::kSpmBosId);
  EXPECT_EQ(std::vector<int64_t>(padded.begin() + 1, padded.begin() + 1 + ids.size()), ids);
  EXPECT_EQ(padded[ids.size() + 1], text::kSpmEosId);
  for (size_t i = ids.size() + 2; i < 77; ++i) EXPECT_EQ(padded[i], text::kSpmPadId);

  std::string long_prompt;
  for (int i = 0; i < 60; ++i) long_prompt += "a photo of sks dog, ";
  const auto truncated = tok->encode_padded(long_prompt, 16);
  const auto all = tok->encode(long_prompt);
  ASSERT_EQ(truncated.size(), 16u);
  EXPECT_EQ(std::vector<int64_t>(truncated.begin() + 1, truncated.end() - 1),
            std::vector<int64_t>(all.begin(), all.begin() + 14));
  EXPECT_EQ(truncated.back(), text::kSpmEosId);

  EXPECT_EQ(text::load_tokenizer(model_, text::kSpmEosId)->pad_id(), text::kSpmEosId);
  const at::Tensor batch = tok->encode_batch({"a dog", "a cat"});
  EXPECT_EQ(batch.size(0), 2);
  EXPECT_EQ(batch.size(1), 77);
}

TEST_F(SentencePieceTest, TrainingIsDeterministic) {
  TempDir other;
  const fs::path again = text::write_tiny_tokenizer(other.path(), kVocabSize);
  EXPECT_EQ(read_bytes(again), read_bytes(model_));
}

TEST(SentencePiece, Errors) {
  TempDir dir;
  {
    std::ofstream(dir / "broken.model") << "not a model";
  }
  try {
    text::load_tokenizer(dir / "broken.model");
    ADD_FAILURE() << "broken model accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("broken.model"), std::string::npos) << e.what();
  }
  {
    std::ofstream(dir / "second.model") << "x";
  }
  try {
    text::load_tokenizer(dir.path());
    ADD_FAILURE() << "two .model files accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("2 .model files"), std::string::npos) << e.what();
  }
  EXPECT_THROW(text::train_sentencepiece({"a b c"}, dir / "x.txt", 100), Error);
  EXPECT_THROW(text::train_sentencepiece({}, dir / "x.model", 100), Error);
}

TEST(SentencePiece, MissingPluginIsAOneLineError) {
  // The plugin is loaded once per process and this binary's other tests may already have loaded it, so
  // the failure path runs in a freshly started copy of this binary (a "threadsafe" death test).
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_EXIT(
      {
        ::setenv("DREAMBOOTH_SPM_PLUGIN", "/nonexistent/libdreambooth_spm.so", 1);
        try {
          text::sentencepiece_plugin_path();
          std::fprintf(stderr, "plugin loaded from a path that does not exist\n");
          std::exit(2);
        } catch (const Error& e) {
          const std::string message = e.what();
          std::fprintf(stderr, "%s\n", message.c_str());
          std::exit(message.find('\n') == std::string::npos ? 0 : 3);
        }
      },
      ::testing::ExitedWithCode(0), "/nonexistent/libdreambooth_spm.so.*not found");
}
