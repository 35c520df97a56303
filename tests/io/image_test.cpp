#include "dreambooth/io/image.h"

#include <fstream>

#include <gtest/gtest.h>

#include "dreambooth/core/error.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::io::Image;
using dreambooth::testing::TempDir;

namespace {

Image gradient(int w, int h) {
  Image image{w, h, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &image.pixels[(size_t(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 7);
      p[1] = static_cast<uint8_t>(y * 11);
      p[2] = static_cast<uint8_t>(x + y);
    }
  return image;
}

const uint8_t* pixel(const Image& image, int x, int y) { return &image.pixels[(size_t(y) * image.width + x) * 3]; }

// A minimal JPEG prefix: SOI + APP1/Exif with one IFD0 entry (orientation), big- or little-endian.
std::vector<uint8_t> exif_prefix(int orientation, bool little_endian) {
  std::vector<uint8_t> tiff;
  auto u16 = [&](uint16_t v) {
    if (little_endian) { tiff.push_back(v & 0xff); tiff.push_back(v >> 8); }
    else { tiff.push_back(v >> 8); tiff.push_back(v & 0xff); }
  };
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) tiff.push_back(little_endian ? (v >> (8 * i)) & 0xff : (v >> (24 - 8 * i)) & 0xff);
  };
  tiff.push_back(little_endian ? 'I' : 'M');
  tiff.push_back(little_endian ? 'I' : 'M');
  u16(42);
  u32(8);
  u16(1);         // one entry
  u16(0x0112);    // orientation
  u16(3);         // SHORT
  u32(1);
  u16(static_cast<uint16_t>(orientation));
  u16(0);
  u32(0);         // no next IFD
  std::vector<uint8_t> out = {0xff, 0xd8, 0xff, 0xe1};
  size_t length = 2 + 6 + tiff.size();
  out.push_back(static_cast<uint8_t>(length >> 8));
  out.push_back(static_cast<uint8_t>(length & 0xff));
  const char exif[6] = {'E', 'x', 'i', 'f', 0, 0};
  out.insert(out.end(), exif, exif + 6);
  out.insert(out.end(), tiff.begin(), tiff.end());
  return out;
}

}  // namespace

TEST(Image, PngRoundTripKeepsPixelsAndTextChunks) {
  TempDir dir;
  Image image = gradient(13, 7);
  dreambooth::io::save_png(dir / "a.png", image, {{"parameters", "a photo\nSteps: 4, Seed: 42"}, {"k", "v"}});
  Image back = dreambooth::io::load_image(dir / "a.png");
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.pixels, image.pixels);
  auto text = dreambooth::io::read_png_text(dir / "a.png");
  ASSERT_EQ(text.size(), 2u);
  EXPECT_EQ(text[0].first, "parameters");
  EXPECT_EQ(text[0].second, "a photo\nSteps: 4, Seed: 42");
}

TEST(Image, ExifOrientationIsReadInBothByteOrders) {
  for (int o = 1; o <= 8; ++o) {
    EXPECT_EQ(dreambooth::io::jpeg_exif_orientation(exif_prefix(o, true)), o);
    EXPECT_EQ(dreambooth::io::jpeg_exif_orientation(exif_prefix(o, false)), o);
  }
  EXPECT_EQ(dreambooth::io::jpeg_exif_orientation({0x89, 'P', 'N', 'G'}), 1);
  auto truncated = exif_prefix(6, true);
  truncated.resize(truncated.size() - 9);
  EXPECT_EQ(dreambooth::io::jpeg_exif_orientation(truncated), 1);
}

TEST(Image, OrientationsMapCornersLikeViewersDo) {
  Image image = gradient(4, 3);
  // Orientation 6: the stored image must be rotated 90 degrees clockwise for display.
  Image r6 = dreambooth::io::apply_exif_orientation(image, 6);
  EXPECT_EQ(r6.width, 3);
  EXPECT_EQ(r6.height, 4);
  EXPECT_EQ(0, std::memcmp(pixel(r6, 2, 0), pixel(image, 0, 0), 3));  // top-left -> top-right
  EXPECT_EQ(0, std::memcmp(pixel(r6, 0, 0), pixel(image, 0, 2), 3));  // bottom-left -> top-left
  Image r3 = dreambooth::io::apply_exif_orientation(image, 3);
  EXPECT_EQ(0, std::memcmp(pixel(r3, 0, 0), pixel(image, 3, 2), 3));
  Image r8 = dreambooth::io::apply_exif_orientation(image, 8);
  EXPECT_EQ(0, std::memcmp(pixel(r8, 0, 3), pixel(image, 0, 0), 3));  // top-left -> bottom-left
  // Applying 6 then 8 is the identity.
  EXPECT_EQ(dreambooth::io::apply_exif_orientation(r6, 8).pixels, image.pixels);
}

TEST(Image, UndecodableFilesGiveInputErrorsNamingTheFile) {
  TempDir dir;
  std::ofstream(dir / "notes.jpg") << "this is not an image";
  std::ofstream(dir / "empty.png");
  for (const char* name : {"notes.jpg", "empty.png", "missing.png"}) {
    try {
      dreambooth::io::load_image(dir / name);
      ADD_FAILURE() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(Image, KnowsImageExtensions) {
  EXPECT_TRUE(dreambooth::io::has_image_extension("a/B.JPG"));
  EXPECT_TRUE(dreambooth::io::has_image_extension("x.png"));
  EXPECT_FALSE(dreambooth::io::has_image_extension("x.txt"));
  EXPECT_FALSE(dreambooth::io::has_image_extension("README"));
}
