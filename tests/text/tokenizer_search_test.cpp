// Tokenizer search order, with a fake Hugging Face cache in a temp dir and the environment set per test.
#include <cstdlib>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "dreambooth/core/error.h"
#include "dreambooth/text/tokenizer_search.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::testing::TempDir;
using dreambooth::text::find_tokenizer;
using dreambooth::text::find_model_own_tokenizer;
using dreambooth::text::TokenizerFamily;
using dreambooth::text::TokenizerQuery;

namespace {

const char* const kVars[] = {"DREAMBOOTH_TOKENIZER", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME",
                             "XDG_CACHE_HOME", "HOME"};

// Clears every variable the search reads (HOME points at an empty dir) and restores them afterwards.
class TokenizerSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVars) {
      if (const char* value = std::getenv(name)) saved_[name] = value;
      unsetenv(name);
    }
    fs::create_directories(root_ / "home");
    setenv("HOME", (root_ / "home").c_str(), 1);
  }
  void TearDown() override {
    for (const char* name : kVars) {
      auto it = saved_.find(name);
      if (it != saved_.end())
        setenv(name, it->second.c_str(), 1);
      else
        unsetenv(name);
    }
  }

  // A CLIP tokenizer folder (files need only exist for the search; pad_token optional).
  fs::path clip_folder(const fs::path& dir, const char* pad_token = nullptr) {
    fs::create_directories(dir);
    std::ofstream(dir / "vocab.json") << "{}";
    std::ofstream(dir / "merges.txt") << "#version: 0.2\n";
    if (pad_token) std::ofstream(dir / "special_tokens_map.json") << "{\"pad_token\": \"" << pad_token << "\"}";
    return dir;
  }
  fs::path cache_repo(const fs::path& hub, const std::string& repo, const std::string& snapshot, const char* subdir,
                      const char* pad_token = nullptr) {
    fs::path dir = hub / repo / "snapshots" / snapshot;
    if (*subdir) dir /= subdir;
    return clip_folder(dir, pad_token);
  }
  fs::path model_folder() {
    const fs::path model = root_ / "pipeline";
    fs::create_directories(model / "unet");
    return model;
  }

  TempDir root_;
  std::map<std::string, std::string> saved_;
};

std::string error_of(const TokenizerQuery& query, ErrorKind* kind) {
  try {
    find_tokenizer(query);
  } catch (const Error& e) {
    *kind = e.kind();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

}  // namespace

TEST_F(TokenizerSearchTest, ExplicitPathWinsAndMustExist) {
  const fs::path model = model_folder();
  clip_folder(model / "tokenizer", "<|endoftext|>");
  const fs::path mine = clip_folder(root_ / "mine");
  TokenizerQuery query{mine, model, true, TokenizerFamily::SD2};
  const auto found = find_tokenizer(query);
  EXPECT_EQ(found.path, mine);
  EXPECT_EQ(found.source, "--tokenizer");
  EXPECT_EQ(found.pad_id, 0);  // no pad_token in the folder: the SD2 default

  query.explicit_path = root_ / "typo";
  ErrorKind kind{};
  const std::string message = error_of(query, &kind);
  EXPECT_EQ(kind, ErrorKind::Input);
  EXPECT_NE(message.find("typo"), std::string::npos) << message;
  EXPECT_NE(message.find("--tokenizer"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST_F(TokenizerSearchTest, DiffusersFolderTokenizer) {
  const fs::path model = model_folder();
  clip_folder(model / "tokenizer", "!");
  setenv("DREAMBOOTH_TOKENIZER", clip_folder(root_ / "env").c_str(), 1);
  const auto found = find_tokenizer({std::nullopt, model, true, TokenizerFamily::SD2});
  EXPECT_EQ(found.path, model / "tokenizer");
  EXPECT_EQ(found.source, "model folder");
  EXPECT_FALSE(found.pad_id.has_value());  // the folder's own pad_token ("!") decides
}

TEST_F(TokenizerSearchTest, BesideSingleFile) {
  const fs::path file = root_ / "models" / "v1-5.safetensors";
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "x";
  clip_folder(root_ / "models" / "tokenizer", "<|endoftext|>");
  auto found = find_tokenizer({std::nullopt, file, false, TokenizerFamily::SD1});
  EXPECT_EQ(found.path, root_ / "models" / "tokenizer");
  EXPECT_EQ(found.source, "beside the model");
  clip_folder(root_ / "models" / "v1-5.tokenizer");
  found = find_tokenizer({std::nullopt, file, false, TokenizerFamily::SD1});
  EXPECT_EQ(found.path, root_ / "models" / "v1-5.tokenizer");  // <stem>.tokenizer/ is more specific
  EXPECT_EQ(found.pad_id, 49407);
}

TEST_F(TokenizerSearchTest, ModelOwnTokenizerIgnoresEnvironmentAndCaches) {
  const fs::path file = root_ / "models" / "v1-5.safetensors";
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "x";
  setenv("DREAMBOOTH_TOKENIZER", clip_folder(root_ / "env").c_str(), 1);
  EXPECT_EQ(find_model_own_tokenizer(file, false), std::nullopt) << "only what travels with the model";
  clip_folder(root_ / "models" / "tokenizer");
  EXPECT_EQ(find_model_own_tokenizer(file, false), root_ / "models" / "tokenizer");
  clip_folder(root_ / "models" / "v1-5.tokenizer");
  EXPECT_EQ(find_model_own_tokenizer(file, false), root_ / "models" / "v1-5.tokenizer");

  const fs::path model = model_folder();
  EXPECT_EQ(find_model_own_tokenizer(model, true), std::nullopt);
  clip_folder(model / "tokenizer");
  EXPECT_EQ(find_model_own_tokenizer(model, true), model / "tokenizer");
}

TEST_F(TokenizerSearchTest, EnvironmentVariable) {
  const fs::path env_dir = clip_folder(root_ / "env");
  setenv("DREAMBOOTH_TOKENIZER", env_dir.c_str(), 1);
  const auto found = find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD1});
  EXPECT_EQ(found.path, env_dir);
  EXPECT_EQ(found.source, "$DREAMBOOTH_TOKENIZER");

  setenv("DREAMBOOTH_TOKENIZER", (root_ / "gone").c_str(), 1);
  ErrorKind kind{};
  const std::string message = error_of({std::nullopt, model_folder(), true, TokenizerFamily::SD1}, &kind);
  EXPECT_EQ(kind, ErrorKind::Input);
  EXPECT_NE(message.find("DREAMBOOTH_TOKENIZER"), std::string::npos) << message;
}

TEST_F(TokenizerSearchTest, HuggingFaceCacheSd1) {
  const fs::path hub = root_ / "hf" / "hub";
  setenv("HF_HOME", (root_ / "hf").c_str(), 1);
  const fs::path sd15 = cache_repo(hub, "models--runwayml--stable-diffusion-v1-5", "abc", "tokenizer", "<|endoftext|>");
  auto found = find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD1});
  EXPECT_EQ(found.path, sd15);
  EXPECT_NE(found.source.find("models--runwayml--stable-diffusion-v1-5"), std::string::npos);
  EXPECT_FALSE(found.pad_id.has_value());

  // The bare CLIP repo comes first; its files do not describe SD's padding, so the family default is set.
  const fs::path clip = cache_repo(hub, "models--openai--clip-vit-large-patch14", "old", "", "<|endoftext|>");
  const fs::path clip_main = cache_repo(hub, "models--openai--clip-vit-large-patch14", "main1", "", "<|endoftext|>");
  fs::create_directories(hub / "models--openai--clip-vit-large-patch14" / "refs");
  std::ofstream(hub / "models--openai--clip-vit-large-patch14" / "refs" / "main") << "main1";
  found = find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD1});
  EXPECT_EQ(found.path, clip_main);  // refs/main's snapshot first
  EXPECT_EQ(found.pad_id, 49407);
  (void)clip;
}

TEST_F(TokenizerSearchTest, HuggingFaceCacheSd2AndHubVariables) {
  const fs::path hub = root_ / "hubcache";
  setenv("HF_HUB_CACHE", hub.c_str(), 1);
  cache_repo(hub, "models--openai--clip-vit-large-patch14", "a", "");  // SD1 only: ignored for SD2
  const fs::path laion = cache_repo(hub, "models--laion--CLIP-ViT-H-14-laion2B-s32B-b79K", "a", "", "<|endoftext|>");
  auto found = find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD2});
  EXPECT_EQ(found.path, laion);
  EXPECT_EQ(found.pad_id, 0);  // SD2 pads with "!" whatever the CLIP repo says

  const fs::path sd21 = cache_repo(hub, "models--stabilityai--stable-diffusion-2-1", "b", "tokenizer", "!");
  found = find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD2});
  EXPECT_EQ(found.path, sd21);

  unsetenv("HF_HUB_CACHE");
  setenv("HUGGINGFACE_HUB_CACHE", hub.c_str(), 1);
  EXPECT_EQ(find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD2}).path, sd21);

  unsetenv("HUGGINGFACE_HUB_CACHE");
  const fs::path home_hub = root_ / "home" / ".cache" / "huggingface" / "hub";
  const fs::path base = cache_repo(home_hub, "models--stabilityai--stable-diffusion-2-1-base", "c", "tokenizer", "!");
  EXPECT_EQ(find_tokenizer({std::nullopt, model_folder(), true, TokenizerFamily::SD2}).path, base);
}

TEST_F(TokenizerSearchTest, NothingFoundSaysHowToProvideOne) {
  ErrorKind kind{};
  const std::string message = error_of({std::nullopt, model_folder(), true, TokenizerFamily::SD1}, &kind);
  EXPECT_EQ(kind, ErrorKind::Input);
  EXPECT_NE(message.find("--tokenizer"), std::string::npos) << message;
  EXPECT_NE(message.find("DREAMBOOTH_TOKENIZER"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(TokenizerFamily, ParseAndPadDefaults) {
  EXPECT_EQ(dreambooth::text::parse_tokenizer_family("sd1"), TokenizerFamily::SD1);
  EXPECT_EQ(dreambooth::text::parse_tokenizer_family("sd2"), TokenizerFamily::SD2);
  EXPECT_THROW(dreambooth::text::parse_tokenizer_family("sdxl"), Error);
  EXPECT_EQ(dreambooth::text::default_clip_pad_id(TokenizerFamily::SD1), 49407);
  EXPECT_EQ(dreambooth::text::default_clip_pad_id(TokenizerFamily::SD2), 0);
}
