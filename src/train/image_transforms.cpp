#include "dreambooth/train/image_transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "dreambooth/core/error.h"

namespace dreambooth::train {
namespace {

// Pillow's 8-bit resampling keeps coefficients in fixed point with this many fraction bits.
constexpr int kPrecisionBits = 32 - 8 - 2;

// One output pixel's window [first, first + weights.size()) over the input and its weights.
struct ResampleWindow {
  int first = 0;
  std::vector<int32_t> weights;
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1).
std::vector<ResampleWindow> resample_windows(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  std::vector<ResampleWindow> windows(out_size);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // C truncation, as Pillow
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    std::vector<double> k(std::max(xmax - xmin, 0));
    double total = 0;
    for (int x = 0; x < xmax - xmin; ++x) {
      k[x] = triangle((x + xmin - center + 0.5) / filter_scale);
      total += k[x];
    }
    ResampleWindow& w = windows[xx];
    w.first = xmin;
    for (double& v : k) {
      if (total != 0.0) v /= total;
      w.weights.push_back(v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                                : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits)));
    }
  }
  return windows;
}

uint8_t clip8(int64_t accumulator) {
  const int64_t v = accumulator >> kPrecisionBits;
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

io::Image resample_horizontal(const io::Image& in, int out_width) {
  const auto windows = resample_windows(in.width, out_width);
  io::Image out{out_width, in.height, std::vector<uint8_t>(size_t(out_width) * in.height * 3)};
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* row = &in.pixels[size_t(y) * in.width * 3];
    uint8_t* dst = &out.pixels[size_t(y) * out_width * 3];
    for (int x = 0; x < out_width; ++x) {
      const ResampleWindow& w = windows[x];
      for (int c = 0; c < 3; ++c) {
        int64_t acc = int64_t{1} << (kPrecisionBits - 1);
        for (size_t i = 0; i < w.weights.size(); ++i) acc += int64_t{row[(w.first + i) * 3 + c]} * w.weights[i];
        dst[x * 3 + c] = clip8(acc);
      }
    }
  }
  return out;
}

io::Image resample_vertical(const io::Image& in, int out_height) {
  const auto windows = resample_windows(in.height, out_height);
  io::Image out{in.width, out_height, std::vector<uint8_t>(size_t(in.width) * out_height * 3)};
  const size_t stride = size_t(in.width) * 3;
  for (int y = 0; y < out_height; ++y) {
    const ResampleWindow& w = windows[y];
    uint8_t* dst = &out.pixels[size_t(y) * stride];
    for (size_t x = 0; x < stride; ++x) {
      int64_t acc = int64_t{1} << (kPrecisionBits - 1);
      for (size_t i = 0; i < w.weights.size(); ++i) acc += int64_t{in.pixels[(w.first + i) * stride + x]} * w.weights[i];
      dst[x] = clip8(acc);
    }
  }
  return out;
}

}  // namespace

io::Image resize_bilinear(const io::Image& image, int width, int height) {
  if (width <= 0 || height <= 0 || image.width <= 0 || image.height <= 0)
    throw Error(ErrorKind::Runtime, "resize_bilinear: empty image or size");
  io::Image out = image;
  if (width != image.width) out = resample_horizontal(out, width);
  if (height != image.height) out = resample_vertical(out, height);
  return out;
}

io::Image resize_shorter_side(const io::Image& image, int size) {
  const int shorter = std::min(image.width, image.height);
  const int longer = std::max(image.width, image.height);
  if (shorter == size) return image;
  const int new_longer = static_cast<int>(static_cast<int64_t>(size) * longer / shorter);
  return image.width <= image.height ? resize_bilinear(image, size, new_longer)
                                     : resize_bilinear(image, new_longer, size);
}

CropBox center_crop_box(int width, int height, int size) {
  CropBox box;
  box.width = box.height = size;
  box.top = static_cast<int>(std::nearbyint((height - size) / 2.0));  // round half to even, like Python
  box.left = static_cast<int>(std::nearbyint((width - size) / 2.0));
  return box;
}

CropBox random_crop_box(int width, int height, int size, at::Generator& generator) {
  CropBox box;
  box.width = box.height = size;
  box.top = static_cast<int>(torch::randint(0, height - size + 1, {1}, generator).item<int64_t>());
  box.left = static_cast<int>(torch::randint(0, width - size + 1, {1}, generator).item<int64_t>());
  return box;
}

bool random_flip(at::Generator& generator) { return torch::rand({1}, generator).item<float>() < 0.5f; }

io::Image crop(const io::Image& image, const CropBox& box) {
  if (box.left < 0 || box.top < 0 || box.left + box.width > image.width || box.top + box.height > image.height)
    throw Error(ErrorKind::Runtime, "crop: box outside the image");
  io::Image out{box.width, box.height, std::vector<uint8_t>(size_t(box.width) * box.height * 3)};
  for (int y = 0; y < box.height; ++y) {
    const uint8_t* src = &image.pixels[(size_t(box.top + y) * image.width + box.left) * 3];
    std::copy(src, src + size_t(box.width) * 3, &out.pixels[size_t(y) * box.width * 3]);
  }
  return out;
}

io::Image flip_horizontal(const io::Image& image) {
  io::Image out = image;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* src = &image.pixels[(size_t(y) * image.width + (image.width - 1 - x)) * 3];
      std::copy(src, src + 3, &out.pixels[(size_t(y) * image.width + x) * 3]);
    }
  return out;
}

at::Tensor image_to_tensor(const io::Image& image) {
  // [H, W, 3] uint8 -> [3, H, W] float32; ToTensor divides by 255, Normalize computes (x - 0.5) / 0.5.
  at::Tensor bytes = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3},
                                      torch::kUInt8);
  at::Tensor x = bytes.permute({2, 0, 1}).to(torch::kFloat).div(255.0);
  return x.sub(0.5).div(0.5).contiguous();
}

}  // namespace dreambooth::train
