// The data pipeline: PIL-style resize, crops, flips, tensors, image folders (errors, EXIF), data order.
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/io/image.h"
#include "dreambooth/train/dataset.h"
#include "dreambooth/train/image_transforms.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::io::Image;
using dreambooth::testing::TempDir;
using namespace dreambooth::train;

namespace {

Image solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Image image{w, h, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    image.pixels[i] = r;
    image.pixels[i + 1] = g;
    image.pixels[i + 2] = b;
  }
  return image;
}

Image ramp(int w, int h) {
  Image image{w, h, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &image.pixels[(size_t(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 3);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>((x + y) & 0xff);
    }
  return image;
}

const uint8_t* pixel_at(const Image& image, int x, int y) { return &image.pixels[(size_t(y) * image.width + x) * 3]; }

ErrorKind error_kind(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  return ErrorKind::Runtime;
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

void jpeg_writer(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// A JPEG of `image` with an APP1/Exif segment (big-endian TIFF, one IFD0 entry: orientation) after SOI.
std::vector<uint8_t> jpeg_with_orientation(const Image& image, int orientation) {
  std::vector<uint8_t> jpeg;
  stbi_write_jpg_to_func(jpeg_writer, &jpeg, image.width, image.height, 3, image.pixels.data(), 95);
  const std::vector<uint8_t> tiff = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                     0, static_cast<uint8_t>(orientation), 0, 0, 0, 0, 0, 0};
  std::vector<uint8_t> app1 = {0xff, 0xe1, 0, static_cast<uint8_t>(2 + 6 + tiff.size()), 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  jpeg.insert(jpeg.begin() + 2, app1.begin(), app1.end());
  return jpeg;
}

}  // namespace

TEST(ImageTransforms, BilinearResizeMatchesPillowsAntialiasedFilter) {
  // One row 0, 100, 200, 255 -> 2 pixels. Pillow: scale 2, support 2, output 0 centred at 1.0 takes
  // inputs 0..2 with triangle weights 0.75, 0.75, 0.25 (normalised by 1.75): 71.43 -> 71; output 1
  // centred at 3.0 takes inputs 1..3 with 0.25, 0.75, 0.75: (25 + 150 + 191.25) / 1.75 = 209.29 -> 209.
  Image row{4, 1, {0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}};
  const Image out = resize_bilinear(row, 2, 1);
  ASSERT_EQ(out.width, 2);
  EXPECT_EQ(out.pixels[0], 71);
  EXPECT_EQ(out.pixels[3], 209);
  // Upscaling 2 -> 4 interpolates between the two pixels (support 1): 0, 25, 75, 100 for 0 and 100.
  Image pair{2, 1, {0, 0, 0, 100, 100, 100}};
  const Image up = resize_bilinear(pair, 4, 1);
  EXPECT_EQ(up.pixels[0], 0);
  EXPECT_EQ(up.pixels[3], 25);
  EXPECT_EQ(up.pixels[6], 75);
  EXPECT_EQ(up.pixels[9], 100);
  // A flat image stays flat at any size.
  const Image flat = resize_bilinear(solid(37, 23, 10, 200, 77), 16, 9);
  for (size_t i = 0; i < flat.pixels.size(); i += 3) {
    ASSERT_EQ(flat.pixels[i], 10);
    ASSERT_EQ(flat.pixels[i + 1], 200);
    ASSERT_EQ(flat.pixels[i + 2], 77);
  }
}

TEST(ImageTransforms, ShorterSideBecomesTheResolution) {
  const Image wide = resize_shorter_side(ramp(150, 100), 64);
  EXPECT_EQ(wide.height, 64);
  EXPECT_EQ(wide.width, 96);  // int(64 * 150 / 100)
  const Image tall = resize_shorter_side(ramp(100, 175), 64);
  EXPECT_EQ(tall.width, 64);
  EXPECT_EQ(tall.height, 112);
  const Image same = resize_shorter_side(ramp(64, 90), 64);
  EXPECT_EQ(same.pixels, ramp(64, 90).pixels);  // untouched
}

TEST(ImageTransforms, CenterCropRoundsHalfToEvenLikeTorchvision) {
  EXPECT_EQ(center_crop_box(65, 64, 64).left, 0);  // round(0.5) = 0
  EXPECT_EQ(center_crop_box(67, 64, 64).left, 2);  // round(1.5) = 2
  EXPECT_EQ(center_crop_box(64, 100, 64).top, 18);
  const Image cropped = crop(ramp(100, 64), center_crop_box(100, 64, 64));
  EXPECT_EQ(cropped.width, 64);
  EXPECT_EQ(pixel_at(cropped, 0, 0)[0], pixel_at(ramp(100, 64), 18, 0)[0]);
}

TEST(ImageTransforms, RandomCropsAndFlipsComeFromTheGenerator) {
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Generator b = at::make_generator<at::CPUGeneratorImpl>(5);
  bool moved = false;
  for (int i = 0; i < 20; ++i) {
    const CropBox box = random_crop_box(80, 70, 64, a);
    const CropBox again = random_crop_box(80, 70, 64, b);
    EXPECT_EQ(box.left, again.left);
    EXPECT_EQ(box.top, again.top);
    EXPECT_GE(box.left, 0);
    EXPECT_LE(box.left, 16);
    EXPECT_LE(box.top, 6);
    moved = moved || box.left != 0 || box.top != 0;
    EXPECT_EQ(random_flip(a), random_flip(b));
  }
  EXPECT_TRUE(moved);
  const Image image = ramp(5, 3);
  const Image flipped = flip_horizontal(image);
  EXPECT_EQ(pixel_at(flipped, 0, 1)[0], pixel_at(image, 4, 1)[0]);
  EXPECT_EQ(flip_horizontal(flipped).pixels, image.pixels);
}

TEST(ImageTransforms, TensorsAreNormalisedToMinusOneOne) {
  Image image{2, 1, {0, 255, 51, 255, 0, 204}};
  const at::Tensor t = image_to_tensor(image);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_FLOAT_EQ(t[0][0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(t[1][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(t[0][0][1].item<float>(), 1.0f);
  EXPECT_NEAR(t[2][0][0].item<float>(), 51 / 255.0 * 2 - 1, 1e-6);

  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor example = make_example(ramp(90, 70), {64, true, false}, g);
  EXPECT_EQ(example.sizes(), (std::vector<int64_t>{3, 64, 64}));
}

TEST(ImageFolder, LoadsResizesAndAppliesExif) {
  TempDir dir;
  dreambooth::io::save_png(dir / "a.png", ramp(96, 80));
  // Orientation 6: stored 8x4, shown rotated 90 degrees clockwise: 4 wide, 8 high.
  const auto jpeg = jpeg_with_orientation(solid(8, 4, 200, 30, 30), 6);
  write_file(dir / "b.jpg", std::string(jpeg.begin(), jpeg.end()));
  write_file(dir / ".DS_Store", "junk");  // hidden files are not photos
  ImageFolderOptions options;
  options.resolution = 4;
  const ImageSet set = load_image_folder(dir.path(), options);
  ASSERT_EQ(set.images.size(), 2u);
  EXPECT_EQ(set.paths[1].filename(), "b.jpg");
  EXPECT_EQ(set.images[1].width, 4);
  EXPECT_EQ(set.images[1].height, 8);
  EXPECT_EQ(set.images[0].height, 4);  // 96x80 -> shorter side 4
  EXPECT_EQ(set.images[0].width, 4);
}

TEST(ImageFolder, BadFoldersAndFilesAreInputErrorsNamingThem) {
  TempDir dir;
  ImageFolderOptions options;
  options.resolution = 8;
  std::string message;
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "missing", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("missing"), std::string::npos);
  write_file(dir / "file.png", "x");
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "file.png", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("not a folder"), std::string::npos);

  fs::create_directory(dir / "empty");
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "empty", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("no usable"), std::string::npos);

  fs::create_directory(dir / "mixed");
  dreambooth::io::save_png(dir / "mixed" / "good.png", ramp(16, 16));
  write_file(dir / "mixed" / "notes.txt", "hello");
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "mixed", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("notes.txt"), std::string::npos);
  fs::remove(dir / "mixed" / "notes.txt");
  write_file(dir / "mixed" / "broken.png", "not a png at all");
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "mixed", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("broken.png"), std::string::npos);
  EXPECT_NE(message.find("--skip-bad-images"), std::string::npos);

  options.skip_bad_images = true;
  const ImageSet kept = load_image_folder(dir / "mixed", options);
  ASSERT_EQ(kept.images.size(), 1u);
  EXPECT_EQ(kept.paths[0].filename(), "good.png");
  fs::remove(dir / "mixed" / "good.png");
  EXPECT_EQ(error_kind([&] { load_image_folder(dir / "mixed", options); }, &message), ErrorKind::Input);
  EXPECT_NE(message.find("no usable"), std::string::npos);
}

TEST(DataOrder, EveryEpochIsAPermutationAndTheStateRoundTrips) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  DataOrder order(5);
  std::vector<int64_t> seen;
  for (int i = 0; i < 3; ++i)
    for (int64_t index : order.next_batch(2, g)) seen.push_back(index);  // 2 + 2 + 1 (end of epoch)
  ASSERT_EQ(seen.size(), 5u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(order.epoch(), 1);

  order.next_batch(2, g);
  const DataOrder copy = DataOrder::from_json(order.to_json(), "test");
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(0);
  g2.set_state(g.get_state());
  DataOrder a = order, b = copy;
  for (int i = 0; i < 7; ++i) EXPECT_EQ(a.next_batch(2, g), b.next_batch(2, g2));
}
