// Outputs appear whole or not at all: write beside the target, then rename over it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace dreambooth {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();  // removes the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ofstream& stream() { return stream_; }
  const std::filesystem::path& temp_path() const { return temp_; }
  // Flushes, checks the stream, fsyncs and renames onto the target.
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  std::ofstream stream_;
  bool committed_ = false;
};

// A file written by some other writer (e.g. stb) to temp_path(), renamed on commit().
class AtomicPath {
 public:
  explicit AtomicPath(std::filesystem::path target);
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;
  const std::filesystem::path& temp_path() const { return temp_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  bool committed_ = false;
};

void write_text_file_atomic(const std::filesystem::path& target, const std::string& content);
std::filesystem::path unique_temp_sibling(const std::filesystem::path& target);

}  // namespace dreambooth
