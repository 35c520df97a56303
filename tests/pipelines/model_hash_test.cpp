// Model hashes: the SHA-256 prefix AUTOMATIC1111 shows, cached by path, size and mtime.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dreambooth/pipelines/model_hash.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::testing::TempDir;

namespace {

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

class ScopedCacheDir {
 public:
  explicit ScopedCacheDir(const fs::path& dir) {
    if (const char* old = std::getenv("DREAMBOOTH_CACHE")) old_ = old;
    ::setenv("DREAMBOOTH_CACHE", dir.c_str(), 1);
  }
  ~ScopedCacheDir() {
    if (old_.empty())
      ::unsetenv("DREAMBOOTH_CACHE");
    else
      ::setenv("DREAMBOOTH_CACHE", old_.c_str(), 1);
  }

 private:
  std::string old_;
};

}  // namespace

TEST(ModelHash, IsTheSha256PrefixAndIsCachedUntilTheFileChanges) {
  TempDir dir;
  ScopedCacheDir cache(dir / "cache");
  const fs::path model = dir / "model.safetensors";
  write_bytes(model, "abc");
  // FIPS 180-2 test vector for "abc".
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(pipelines::cached_file_sha256(model), abc);
  EXPECT_EQ(pipelines::model_hash(model), abc.substr(0, 10));

  // The cache answers while size and mtime match: doctor the entry to prove it is what is read.
  const fs::path cache_file = pipelines::hash_cache_file();
  ASSERT_EQ(cache_file, dir / "cache" / "model_hashes.json");
  nlohmann::json entries = nlohmann::json::parse(std::ifstream(cache_file));
  const std::string key = fs::absolute(model).string();
  ASSERT_TRUE(entries.contains(key));
  entries[key]["sha256"] = std::string(64, 'f');
  std::ofstream(cache_file) << entries.dump();
  EXPECT_EQ(pipelines::model_hash(model), "ffffffffff");

  // A changed file (other size) is hashed again.
  write_bytes(model, "abcd");
  EXPECT_EQ(pipelines::cached_file_sha256(model),
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
}

TEST(ModelHash, AnUnwritableCacheOnlyCostsARehash) {
  TempDir dir;
  write_bytes(dir / "blocker", "a file where the cache folder should be");
  ScopedCacheDir cache(dir / "blocker" / "sub");
  write_bytes(dir / "m", "abc");
  EXPECT_EQ(pipelines::model_hash(dir / "m"), "ba7816bf8f");
}
