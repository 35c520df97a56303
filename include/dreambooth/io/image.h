// Image files: decoding (JPEG/PNG/BMP/TGA/... through stb_image, EXIF orientation applied, always RGB8)
// and PNG encoding with tEXt chunks (AUTOMATIC1111 reads generation parameters from "parameters").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace dreambooth::io {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // RGB, row-major, 3 bytes per pixel
};

// Throws an input error naming the file when it cannot be decoded.
Image load_image(const std::filesystem::path& path);
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name_for_errors);

// True for the extensions load_image understands (case-insensitive).
bool has_image_extension(const std::filesystem::path& path);

using TextChunks = std::vector<std::pair<std::string, std::string>>;

std::vector<uint8_t> encode_png(const Image& image, const TextChunks& text = {});
// Atomic: written beside the target, then renamed.
void save_png(const std::filesystem::path& path, const Image& image, const TextChunks& text = {});
// Reads the tEXt chunks back (tests, `info` on images).
TextChunks read_png_text(const std::filesystem::path& path);

// EXIF orientation (1..8) of a JPEG byte stream, 1 when absent or unreadable.
int jpeg_exif_orientation(const std::vector<uint8_t>& bytes);
Image apply_exif_orientation(const Image& image, int orientation);

}  // namespace dreambooth::io
