#include "dreambooth/io/image.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include <stb_image.h>
#include <stb_image_write.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::io {
namespace {

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) throw input_error(path.string(), "no such file", "check the path");
    throw input_error(path.string(), "cannot open for reading");
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint32_t read_u32_be(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void append_u32_be(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>((v >> shift) & 0xff));
}

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::vector<uint8_t> text_chunk(const std::string& key, const std::string& value) {
  std::vector<uint8_t> body(key.begin(), key.end());
  body.push_back(0);
  body.insert(body.end(), value.begin(), value.end());
  std::vector<uint8_t> chunk;
  append_u32_be(chunk, static_cast<uint32_t>(body.size()));
  const char type[4] = {'t', 'E', 'X', 't'};
  chunk.insert(chunk.end(), type, type + 4);
  chunk.insert(chunk.end(), body.begin(), body.end());
  append_u32_be(chunk, crc32(chunk.data() + 4, body.size() + 4));
  return chunk;
}

}  // namespace

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif", ".psd", ".hdr", ".pnm", ".ppm", ".pgm"})
    if (ext == known) return true;
  return false;
}

int jpeg_exif_orientation(const std::vector<uint8_t>& b) {
  if (b.size() < 4 || b[0] != 0xff || b[1] != 0xd8) return 1;
  size_t pos = 2;
  while (pos + 4 <= b.size() && b[pos] == 0xff) {
    uint8_t marker = b[pos + 1];
    if (marker == 0xda || marker == 0xd9) break;  // start of scan / end of image: no EXIF before it
    size_t length = (size_t(b[pos + 2]) << 8) | b[pos + 3];
    if (length < 2 || pos + 2 + length > b.size()) break;
    const uint8_t* seg = b.data() + pos + 4;
    size_t seg_len = length - 2;
    if (marker == 0xe1 && seg_len >= 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      const uint8_t* tiff = seg + 6;
      size_t tiff_len = seg_len - 6;
      bool little = tiff[0] == 'I' && tiff[1] == 'I';
      bool big = tiff[0] == 'M' && tiff[1] == 'M';
      if (!little && !big) return 1;
      auto u16 = [&](size_t off) -> uint32_t {
        if (off + 2 > tiff_len) return 0;
        return little ? (tiff[off] | (tiff[off + 1] << 8)) : ((tiff[off] << 8) | tiff[off + 1]);
      };
      auto u32 = [&](size_t off) -> uint32_t {
        if (off + 4 > tiff_len) return 0;
        return little ? (uint32_t(tiff[off]) | (uint32_t(tiff[off + 1]) << 8) | (uint32_t(tiff[off + 2]) << 16) |
                         (uint32_t(tiff[off + 3]) << 24))
                      : read_u32_be(tiff + off);
      };
      size_t ifd = u32(4);
      if (ifd == 0 || ifd + 2 > tiff_len) return 1;
      uint32_t count = u16(ifd);
      for (uint32_t i = 0; i < count; ++i) {
        size_t entry = ifd + 2 + 12 * size_t(i);
        if (entry + 12 > tiff_len) break;
        if (u16(entry) == 0x0112) {
          uint32_t value = u16(entry + 8);
          return (value >= 1 && value <= 8) ? static_cast<int>(value) : 1;
        }
      }
      return 1;
    }
    pos += 2 + length;
  }
  return 1;
}

Image apply_exif_orientation(const Image& in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const bool swap = orientation >= 5;  // 5..8 transpose the axes
  Image out;
  out.width = swap ? in.height : in.width;
  out.height = swap ? in.width : in.height;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      // (sx, sy): the stored pixel shown at display position (x, y).
      int sx = 0, sy = 0;
      switch (orientation) {
        case 2: sx = in.width - 1 - x; sy = y; break;
        case 3: sx = in.width - 1 - x; sy = in.height - 1 - y; break;
        case 4: sx = x; sy = in.height - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = in.height - 1 - x; break;
        case 7: sx = in.width - 1 - y; sy = in.height - 1 - x; break;
        case 8: sx = in.width - 1 - y; sy = x; break;
      }
      std::memcpy(&out.pixels[(size_t(y) * out.width + x) * 3], &in.pixels[(size_t(sy) * in.width + sx) * 3], 3);
    }
  }
  return out;
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (bytes.empty()) throw input_error(name, "file is empty", "use a JPEG, PNG, BMP or TGA image");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw input_error(name, "file is too large to decode");
  int w = 0, h = 0, channels = 0;
  stbi_uc* data = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels, 3);
  if (!data) {
    const char* reason = stbi_failure_reason();
    throw input_error(name, std::string("cannot decode image: ") + (reason ? reason : "unknown format"),
                      "use a JPEG, PNG, BMP or TGA image");
  }
  Image image;
  image.width = w;
  image.height = h;
  image.pixels.assign(data, data + size_t(w) * h * 3);
  stbi_image_free(data);
  return apply_exif_orientation(image, jpeg_exif_orientation(bytes));
}

Image load_image(const fs::path& path) { return decode_image(read_file(path), path.string()); }

std::vector<uint8_t> encode_png(const Image& image, const TextChunks& text) {
  if (image.width <= 0 || image.height <= 0 || image.pixels.size() != size_t(image.width) * image.height * 3)
    throw Error(ErrorKind::Runtime, "encode_png: image buffer does not match its size");
  std::vector<uint8_t> bytes;
  auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  if (!stbi_write_png_to_func(append, &bytes, image.width, image.height, 3, image.pixels.data(), image.width * 3))
    throw Error(ErrorKind::Runtime, "PNG encoding failed");
  // tEXt chunks go right after IHDR (8-byte signature + 25-byte IHDR chunk).
  const size_t after_ihdr = 8 + 4 + 4 + 13 + 4;
  std::vector<uint8_t> chunks;
  for (const auto& [key, value] : text) {
    auto chunk = text_chunk(key, value);
    chunks.insert(chunks.end(), chunk.begin(), chunk.end());
  }
  bytes.insert(bytes.begin() + after_ihdr, chunks.begin(), chunks.end());
  return bytes;
}

void save_png(const fs::path& path, const Image& image, const TextChunks& text) {
  std::vector<uint8_t> bytes = encode_png(image, text);
  AtomicFile file(path);
  file.stream().write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  file.commit();
}

TextChunks read_png_text(const fs::path& path) {
  std::vector<uint8_t> b = read_file(path);
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), signature, 8) != 0) throw input_error(path.string(), "not a PNG file");
  TextChunks out;
  size_t pos = 8;
  while (pos + 12 <= b.size()) {
    uint32_t length = read_u32_be(&b[pos]);
    if (pos + 12 + size_t(length) > b.size()) break;
    if (std::memcmp(&b[pos + 4], "tEXt", 4) == 0) {
      const char* body = reinterpret_cast<const char*>(&b[pos + 8]);
      const char* nul = static_cast<const char*>(std::memchr(body, 0, length));
      if (nul) out.emplace_back(std::string(body, nul), std::string(nul + 1, body + length));
    }
    pos += 12 + size_t(length);
  }
  return out;
}

}  // namespace dreambooth::io
