#include "dreambooth/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "dreambooth/core/error.h"
#include "dreambooth/core/remove_tree.h"

namespace fs = std::filesystem;

namespace dreambooth {

fs::path unique_temp_sibling(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  fs::path name = target.filename();
  name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  return target.parent_path() / name;
}

namespace {

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void rename_into_place(const fs::path& temp, const fs::path& target) {
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw output_error(target.string(), "cannot move the finished file into place: " + ec.message());
  }
}

void ensure_parent(const fs::path& target) {
  fs::path parent = target.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw output_error(parent.string(), "cannot create directory: " + ec.message());
}

}  // namespace

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  ensure_parent(target_);
  temp_ = unique_temp_sibling(target_);
  stream_.open(temp_, std::ios::binary | std::ios::trunc);
  if (!stream_) throw output_error(target_.string(), std::string("cannot open for writing: ") + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    stream_.close();
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicFile::commit() {
  stream_.flush();
  bool ok = static_cast<bool>(stream_);
  stream_.close();
  if (!ok || stream_.fail())
    throw output_error(target_.string(), "write failed (disk full or not writable?)");
  fsync_path(temp_);
  rename_into_place(temp_, target_);
  committed_ = true;
}

AtomicPath::AtomicPath(fs::path target) : target_(std::move(target)) {
  ensure_parent(target_);
  temp_ = unique_temp_sibling(target_);
}

AtomicPath::~AtomicPath() {
  if (!committed_) {
    std::error_code ec;
    ec = remove_tree(temp_);
  }
}

void AtomicPath::commit() {
  if (!fs::exists(temp_)) throw output_error(target_.string(), "nothing was written");
  if (fs::is_regular_file(temp_)) fsync_path(temp_);
  std::error_code ec;
  if (fs::is_directory(target_) && fs::is_directory(temp_)) ec = remove_tree(target_);
  rename_into_place(temp_, target_);
  committed_ = true;
}

void write_text_file_atomic(const fs::path& target, const std::string& content) {
  AtomicFile file(target);
  file.stream() << content;
  file.commit();
}

}  // namespace dreambooth
