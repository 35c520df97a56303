// Model hashes: the SHA-256 prefix AUTOMATIC1111 shows, cached by path, size and mtime.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dreambooth/core/error.h"
#include "dreambooth/pipelines/model_hash.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::Error;
using dreambooth::ErrorKind;
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

// A safetensors file: 8-byte little-endian header length, the JSON header, then the tensor data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

TEST(ModelHash, SafetensorsDataHashCoversTheTensorDataOnly) {
  TempDir dir;
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";  // SHA-256("abc")
  write_bytes(dir / "a.safetensors",
              safetensors_bytes(R"({"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", "abc"));
  EXPECT_EQ(pipelines::safetensors_data_sha256(dir / "a.safetensors"), abc);
  // Other metadata, same tensors: the same hash (what A1111's "Lora hashes" relies on).
  write_bytes(dir / "b.safetensors",
              safetensors_bytes(R"({"__metadata__":{"ss_output_name":"b"},"x":{"dtype":"U8","shape":[3],)"
                                R"("data_offsets":[0,3]}})",
                                "abc"));
  EXPECT_EQ(pipelines::safetensors_data_sha256(dir / "b.safetensors"), abc);

  write_bytes(dir / "short.safetensors", safetensors_bytes(std::string(100, ' '), "").substr(0, 50));
  try {
    pipelines::safetensors_data_sha256(dir / "short.safetensors");
    FAIL() << "a header longer than the file";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("short.safetensors"), std::string::npos) << e.what();
  }
}
