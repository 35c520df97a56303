// The "Model hash" AUTOMATIC1111 shows: the first 10 hex digits of the file's SHA-256. Hashing a 2-7 GB
// checkpoint costs seconds of a core, so results are cached (like A1111's cache.json) by absolute path,
// size and modification time in $DREAMBOOTH_CACHE, else $XDG_CACHE_HOME/dreambooth, else
// ~/.cache/dreambooth (file model_hashes.json). A cache that cannot be read or written is ignored.
#pragma once

#include <filesystem>
#include <string>

namespace dreambooth::pipelines {

// Full lowercase hex SHA-256 of `file`, from the cache when size and mtime still match.
std::string cached_file_sha256(const std::filesystem::path& file);

// First 10 hex digits of cached_file_sha256.
std::string model_hash(const std::filesystem::path& file);

// Full hex SHA-256 of a .safetensors file's tensor data (everything after the header): the hash kohya's
// scripts store as `sshs_model_hash` and AUTOMATIC1111 lists LoRAs by (its first 12 digits), which does
// not change when only the metadata does. Throws an input error naming the file when it is not safetensors.
std::string safetensors_data_sha256(const std::filesystem::path& file);

std::filesystem::path hash_cache_file();

}  // namespace dreambooth::pipelines
