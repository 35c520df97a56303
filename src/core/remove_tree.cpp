#include "dreambooth/core/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace dreambooth {
namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  return std::remove(path) == 0 ? 0 : errno;
}

}  // namespace

std::error_code remove_tree(const std::filesystem::path& path) {
  struct stat info{};
  if (::lstat(path.c_str(), &info) != 0)
    return errno == ENOENT ? std::error_code() : std::error_code(errno, std::generic_category());
  // Children before their folder (FTW_DEPTH), links as links (FTW_PHYS).
  const int result = ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
  if (result == 0) return {};
  return std::error_code(result > 0 ? result : errno, std::generic_category());
}

}  // namespace dreambooth
