// The reference's image transforms (torchvision Resize(size, BILINEAR) on PIL images, CenterCrop or
// RandomCrop, RandomHorizontalFlip, ToTensor, Normalize([0.5], [0.5])), on 8-bit RGB images.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "dreambooth/io/image.h"

namespace dreambooth::train {

// PIL's Image.resize(..., BILINEAR): a separable triangle filter whose support widens with the
// downscale factor (antialiased), 8-bit fixed-point coefficients, horizontal pass then vertical pass,
// each rounded to 8 bits. Bit-exact with Pillow.
io::Image resize_bilinear(const io::Image& image, int width, int height);

// torchvision Resize(size) with an int: the shorter side becomes `size`, the longer one
// int(size * long / short); unchanged when the shorter side already is `size`.
io::Image resize_shorter_side(const io::Image& image, int size);

struct CropBox {
  int left = 0;
  int top = 0;
  int width = 0;
  int height = 0;
};

// torchvision CenterCrop: top = round((h - size) / 2), left = round((w - size) / 2) (round half to even).
CropBox center_crop_box(int width, int height, int size);
// torchvision RandomCrop.get_params: top then left, each torch.randint(0, extent - size + 1) from `generator`.
CropBox random_crop_box(int width, int height, int size, at::Generator& generator);
// torchvision RandomHorizontalFlip(0.5): torch.rand(1) < 0.5 from `generator`.
bool random_flip(at::Generator& generator);

io::Image crop(const io::Image& image, const CropBox& box);  // the box must lie inside the image
io::Image flip_horizontal(const io::Image& image);

// ToTensor + Normalize([0.5], [0.5]): [3, H, W] float32 in [-1, 1].
at::Tensor image_to_tensor(const io::Image& image);

}  // namespace dreambooth::train
