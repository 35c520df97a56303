// SHA-256, for model hashes (AUTOMATIC1111's "Model hash" is the first 10 hex digits of the file's SHA-256).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>

namespace dreambooth {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> finish();
  static std::string hex(const std::array<uint8_t, 32>& digest);

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(const std::string& data);
// Hashes what is left of `in`, from its current position to its end.
std::string sha256_stream_hex(std::istream& in);
// Streams the file; throws an input error naming it when unreadable.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace dreambooth
