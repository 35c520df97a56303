// Where tokenizer files go beside the checkpoints the CLI writes, so the tokenizer search finds them.
#pragma once

#include <filesystem>

namespace dreambooth::cli {

// "<dir>/<stem>.tokenizer/" beside a single file.
std::filesystem::path single_file_tokenizer_dir(const std::filesystem::path& single_file);
// Copies the files of a tokenizer folder (or a lone .model file) into `destination` (created).
void copy_tokenizer_folder(const std::filesystem::path& source, const std::filesystem::path& destination);

}  // namespace dreambooth::cli
