// Deleting a file or a whole folder.
#pragma once

#include <filesystem>
#include <system_error>

namespace dreambooth {

// Removes `path` and, for a folder, everything under it; symbolic links are removed, never followed.
// A path that does not exist is no error. Used instead of std::filesystem::remove_all: PyTorch's wheels
// (2.5 and later) export their own statically linked copies of libstdc++'s filesystem iterators, and a
// program linked against that LibTorch crashes inside remove_all (pytorch/pytorch#133437; seen here with
// the LibTorch of PyTorch 2.11).
std::error_code remove_tree(const std::filesystem::path& path);

}  // namespace dreambooth
