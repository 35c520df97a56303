// CLIP BPE units on a small hand-made vocabulary (and SD2 padding on the real one when present).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dreambooth/core/error.h"
#include "dreambooth/text/clip_tokenizer.h"
#include "dreambooth/text/tokenizer.h"
#include "dreambooth/text/unicode.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::TempDir;
using dreambooth::text::ClipTokenizer;
using dreambooth::text::load_tokenizer;

namespace {

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// GPT-2/CLIP byte -> printable character map, written out independently of the library.
std::string byte_char(int b) {
  static std::vector<char32_t> map = [] {
    std::vector<char32_t> m(256);
    char32_t next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool keep = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
      m[i] = keep ? static_cast<char32_t>(i) : next++;
    }
    return m;
  }();
  std::string s;
  dreambooth::text::unicode::append_utf8(s, map[b]);
  return s;
}

// Bytes, bytes + "</w>", a few merges for "hello" and "cat", and the specials at the end.
fs::path write_small_tokenizer(const fs::path& dir, const std::string& special_tokens_map = "") {
  nlohmann::json vocab = nlohmann::json::object();
  int64_t next = 0;
  std::vector<int> order;  // CLIP's order: the printable bytes first ("!" = 0), then the rest
  for (int b = 0; b < 256; ++b)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) order.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) order.push_back(b);
  for (int b : order) vocab[byte_char(b)] = next++;
  for (int b : order) vocab[byte_char(b) + "</w>"] = next++;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o</w>"}, {"c", "a"}, {"ca", "t</w>"}};
  std::string merges_text = "#version: 0.2\n";
  for (const auto& [a, b] : merges) {
    vocab[a + b] = next++;
    merges_text += a + " " + b + "\n";
  }
  vocab["<|startoftext|>"] = next++;
  vocab["<|endoftext|>"] = next++;
  write(dir / "vocab.json", vocab.dump());
  write(dir / "merges.txt", merges_text);
  if (!special_tokens_map.empty()) write(dir / "special_tokens_map.json", special_tokens_map);
  return dir;
}

ErrorKind load_error(const fs::path& dir, std::string* message) {
  try {
    ClipTokenizer::load(dir);
  } catch (const Error& e) {
    *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error for " << dir;
  return ErrorKind::Runtime;
}

}  // namespace

TEST(ClipTokenizer, BpeMergesAndSpecials) {
  TempDir dir;
  auto tok = ClipTokenizer::load(write_small_tokenizer(dir.path()));
  EXPECT_EQ(tok->vocab_size(), 512 + 6 + 2);
  EXPECT_EQ(tok->bos_id(), 518);
  EXPECT_EQ(tok->eos_id(), 519);
  EXPECT_EQ(tok->pad_id(), 519);
  EXPECT_EQ(tok->tokenize("Hello CAT dog"), (std::vector<std::string>{"hello</w>", "cat</w>", "d", "o", "g</w>"}));
  const auto hello = tok->token_to_id("hello</w>");
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(tok->encode("hello"), (std::vector<int64_t>{*hello}));
  // Literal specials become their ids wherever they are; everything else is normalised around them.
  EXPECT_EQ(tok->encode("<|startoftext|>hello<|endoftext|>"), (std::vector<int64_t>{518, *hello, 519}));
  EXPECT_EQ(tok->encode("<|ENDOFTEXT|>"), (std::vector<int64_t>{519}));  // lowercased, then the regex literal
  EXPECT_EQ(tok->decode(tok->encode("Hello, cat!")), "hello , cat !");
  EXPECT_FALSE(tok->token_to_id("nope").has_value());
  EXPECT_EQ(tok->id_to_token(*hello), "hello</w>");
  EXPECT_THROW(tok->id_to_token(10000), Error);
}

TEST(ClipTokenizer, PaddingAndTruncation) {
  TempDir dir;
  auto tok = ClipTokenizer::load(write_small_tokenizer(dir.path()));
  const int64_t hello = *tok->token_to_id("hello</w>");
  const auto short_ids = tok->encode_padded("hello hello", 8);
  EXPECT_EQ(short_ids, (std::vector<int64_t>{518, hello, hello, 519, 519, 519, 519, 519}));

  std::string many;
  for (int i = 0; i < 100; ++i) many += "hello ";
  const auto padded = tok->encode_padded(many);
  ASSERT_EQ(padded.size(), 77u);
  EXPECT_EQ(padded.front(), 518);
  EXPECT_EQ(padded.back(), 519);
  for (size_t i = 1; i < 76; ++i) EXPECT_EQ(padded[i], hello) << i;  // exactly 75 kept

  const auto empty = tok->encode_padded("   ");
  EXPECT_EQ(empty[0], 518);
  for (size_t i = 1; i < 77; ++i) EXPECT_EQ(empty[i], 519) << i;  // EOS, then pad = EOS
  EXPECT_EQ(tok->encode_padded("", 2), (std::vector<int64_t>{518, 519}));
  EXPECT_EQ(tok->encode_padded("hello", 2), (std::vector<int64_t>{518, 519}));
  try {
    tok->encode_padded("hello", 1);
    ADD_FAILURE() << "max_length 1 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
  }
}

TEST(ClipTokenizer, PadTokenFromFilesAndOverride) {
  TempDir dir;
  write_small_tokenizer(dir.path(), R"({"pad_token": "!", "bos_token": {"content": "<|startoftext|>"}})");
  auto sd2 = ClipTokenizer::load(dir.path());
  EXPECT_EQ(sd2->pad_id(), 0);  // "!" is byte 33, the first vocabulary entry
  // transformers cuts the pad token out of the text like any special token: "!" -> id 0, not "!</w>".
  const int64_t hello = *sd2->token_to_id("hello</w>");
  EXPECT_EQ(sd2->encode("hello!"), (std::vector<int64_t>{hello, 0}));
  EXPECT_EQ(sd2->encode_padded("hello", 5), (std::vector<int64_t>{518, hello, 519, 0, 0}));

  write(dir.path() / "tokenizer_config.json", R"({"pad_token": "<|startoftext|>"})");
  EXPECT_EQ(ClipTokenizer::load(dir.path())->pad_id(), 0);  // special_tokens_map.json wins
  EXPECT_EQ(ClipTokenizer::load(dir.path(), 519)->pad_id(), 519);  // an explicit override wins over both
  EXPECT_EQ(load_tokenizer(dir.path(), 7)->pad_id(), 7);
}

TEST(ClipTokenizer, Sd2PadTokenOnTheRealVocabulary) {
  REQUIRE_GOLDEN();
  TempDir dir;
  for (const char* name : {"vocab.json", "merges.txt"})
    fs::copy_file(dreambooth::testing::golden_path("tokenizer") / name, dir / name);
  write(dir / "special_tokens_map.json", R"({"pad_token": "!"})");
  auto sd2 = load_tokenizer(dir.path());
  EXPECT_EQ(sd2->pad_id(), 0);
  // transformers 4.x with an SD2 tokenizer (diffusers issue #4153): every "!" becomes the pad token.
  const auto ids = sd2->encode_padded("! !! !!!");
  const std::vector<int64_t> head = {49406, 0, 0, 0, 0, 0, 0, 49407, 0};
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 9), head);
  EXPECT_EQ(sd2->encode_padded("a photo of sks dog")[6], 49407);
  EXPECT_EQ(sd2->encode_padded("a photo of sks dog")[7], 0);
}

TEST(ClipTokenizer, LoadTokenizerPicksClipForFolderOrVocabFile) {
  TempDir dir;
  write_small_tokenizer(dir.path());
  EXPECT_EQ(load_tokenizer(dir.path())->kind(), "clip-bpe");
  EXPECT_EQ(load_tokenizer(dir / "vocab.json")->kind(), "clip-bpe");
  EXPECT_TRUE(dreambooth::text::looks_like_tokenizer(dir.path()));
  EXPECT_FALSE(dreambooth::text::looks_like_tokenizer(dir / "nothing"));
}

TEST(ClipTokenizer, ErrorsNameTheFile) {
  TempDir dir;
  std::string message;
  EXPECT_EQ(load_error(dir.path(), &message), ErrorKind::Input);
  EXPECT_NE(message.find("missing vocab.json"), std::string::npos) << message;
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;

  write_small_tokenizer(dir.path());
  write(dir / "merges.txt", "#version: 0.2\nh e\nl l x\n");
  EXPECT_EQ(load_error(dir.path(), &message), ErrorKind::Input);
  EXPECT_NE(message.find("merges.txt"), std::string::npos) << message;
  EXPECT_NE(message.find("line 3"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);

  write(dir / "merges.txt", "#version: 0.2\n");
  EXPECT_EQ(load_error(dir.path(), &message), ErrorKind::Input);
  EXPECT_NE(message.find("no merges"), std::string::npos) << message;

  write_small_tokenizer(dir.path(), R"({"pad_token": "<pad>"})");
  EXPECT_EQ(load_error(dir.path(), &message), ErrorKind::Input);
  EXPECT_NE(message.find("'<pad>' is not in vocab.json"), std::string::npos) << message;

  write_small_tokenizer(dir.path());
  write(dir / "vocab.json", "{not json");
  EXPECT_EQ(load_error(dir.path(), &message), ErrorKind::Input);
  EXPECT_NE(message.find("vocab.json"), std::string::npos) << message;

  try {
    load_tokenizer(dir / "missing");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
}
