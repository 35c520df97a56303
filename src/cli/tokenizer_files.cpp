#include "tokenizer_files.h"

#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {

fs::path single_file_tokenizer_dir(const fs::path& single_file) {
  return single_file.parent_path() / (single_file.stem().string() + ".tokenizer");
}

void copy_tokenizer_folder(const fs::path& source, const fs::path& destination) {
  std::error_code ec;
  fs::create_directories(destination, ec);
  if (ec) throw output_error(destination.string(), "cannot create folder: " + ec.message());
  if (fs::is_regular_file(source)) {
    fs::copy_file(source, destination / source.filename(), fs::copy_options::overwrite_existing, ec);
  } else {
    for (const auto& entry : fs::directory_iterator(source)) {
      if (!entry.is_regular_file()) continue;
      fs::copy_file(entry.path(), destination / entry.path().filename(), fs::copy_options::overwrite_existing, ec);
      if (ec) break;
    }
  }
  if (ec) throw output_error(destination.string(), "cannot copy tokenizer files: " + ec.message());
}

}  // namespace dreambooth::cli
