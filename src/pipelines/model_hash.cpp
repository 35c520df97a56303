#include "dreambooth/pipelines/model_hash.h"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/sha256.h"

namespace fs = std::filesystem;

namespace dreambooth::pipelines {
namespace {

std::mutex& hash_cache_mutex() {
  static std::mutex m;
  return m;
}

nlohmann::json read_hash_cache(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return nlohmann::json::object();
  nlohmann::json cache = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return cache.is_object() ? cache : nlohmann::json::object();
}

}  // namespace

fs::path hash_cache_file() {
  if (const char* dir = std::getenv("DREAMBOOTH_CACHE"); dir && *dir) return fs::path(dir) / "model_hashes.json";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return fs::path(xdg) / "dreambooth" / "model_hashes.json";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "dreambooth" / "model_hashes.json";
  return {};
}

std::string cached_file_sha256(const fs::path& file) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(file, ec);
  const auto size = static_cast<int64_t>(fs::file_size(file, ec));
  const auto mtime = static_cast<int64_t>(fs::last_write_time(file, ec).time_since_epoch().count());
  const fs::path cache_file = hash_cache_file();
  const std::string key = absolute.string();
  if (!cache_file.empty() && !ec) {
    std::lock_guard<std::mutex> lock(hash_cache_mutex());
    nlohmann::json cache = read_hash_cache(cache_file);
    auto it = cache.find(key);
    if (it != cache.end() && it->is_object() && it->value("size", int64_t{-1}) == size &&
        it->value("mtime", int64_t{-1}) == mtime && it->contains("sha256"))
      return it->at("sha256").get<std::string>();
  }

  const std::string digest = sha256_file_hex(file);
  if (!cache_file.empty() && !ec) {
    std::lock_guard<std::mutex> lock(hash_cache_mutex());
    try {
      nlohmann::json cache = read_hash_cache(cache_file);
      cache[key] = {{"size", size}, {"mtime", mtime}, {"sha256", digest}};
      fs::create_directories(cache_file.parent_path());
      write_text_file_atomic(cache_file, cache.dump(1));
    } catch (const std::exception&) {
      // A read-only home or a full disk costs a re-hash next time, nothing more.
    }
  }
  return digest;
}

std::string model_hash(const fs::path& file) { return cached_file_sha256(file).substr(0, 10); }

std::string safetensors_data_sha256(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw input_error(file.string(), "cannot open for hashing");
  unsigned char length_bytes[8] = {};
  in.read(reinterpret_cast<char*>(length_bytes), sizeof length_bytes);
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  std::error_code ec;
  const uintmax_t size = fs::file_size(file, ec);
  if (!in || ec || header_length > size - 8)
    throw input_error(file.string(), "not a safetensors file (the header length points past its end)");
  in.seekg(static_cast<std::streamoff>(8 + header_length));
  return sha256_stream_hex(in);
}

}  // namespace dreambooth::pipelines
