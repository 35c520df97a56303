// The DreamBooth dataset: the subject's photos ("instance" images) and, with prior preservation, the
// class images, decoded once and resized (shorter side = resolution), then cropped and flipped per
// example, as the reference's DreamBoothDataset does.
//
// Example i pairs instance image i mod N with class image i mod M; the dataset has max(N, M) examples
// (N without prior preservation). Each epoch visits them in a fresh random order (DataOrder), in
// batches of --batch-size (the last batch of an epoch may be smaller, as with drop_last=False).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "dreambooth/io/image.h"

namespace dreambooth::train {

struct ImageFolderOptions {
  int resolution = 512;
  bool skip_bad_images = false;  // warn and skip instead of an input error
  // Strict folders (the subject): every visible regular file must be an image. Otherwise (the class
  // folder, which also holds our manifest) files without an image extension are ignored.
  bool strict = true;
  std::string role = "subject";  // for messages: "subject", "class"
};

struct ImageSet {
  std::vector<std::filesystem::path> paths;
  std::vector<io::Image> images;  // shorter side = resolution
};

// Image files of a folder in name order (hidden files skipped). Input error when it is not a folder.
std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& folder, bool strict,
                                                    const std::string& role);

// Decodes (EXIF orientation applied) and resizes every image. An unreadable file or a non-image in a
// strict folder is an input error naming it (or a warning with skip_bad_images); images whose shorter
// side is under the resolution are upscaled with a warning; no usable image at all is an input error.
ImageSet load_image_folder(const std::filesystem::path& folder, const ImageFolderOptions& options);

struct ExampleTransform {
  int resolution = 512;
  bool center_crop = false;
  bool flip = false;
};

// One training example from a resized image: crop (center, or random from `generator`), optional random
// flip (from `generator`, drawn after the crop), to a [3, R, R] tensor in [-1, 1].
at::Tensor make_example(const io::Image& resized, const ExampleTransform& transform, at::Generator& generator);

// The order examples are visited in: a permutation of [0, size) per epoch from the run's generator.
// Its state is part of every checkpoint.
class DataOrder {
 public:
  explicit DataOrder(int64_t size = 0) : size_(size) {}
  // The next `batch_size` example indices (fewer at the end of an epoch); starts a new epoch (a new
  // permutation drawn from `generator`) when the current one is used up.
  std::vector<int64_t> next_batch(int64_t batch_size, at::Generator& generator);

  int64_t size() const { return size_; }
  int64_t epoch() const { return epoch_; }

  nlohmann::json to_json() const;
  static DataOrder from_json(const nlohmann::json& json, const std::string& source);

 private:
  int64_t size_ = 0;
  int64_t epoch_ = 0;  // epochs started
  int64_t position_ = 0;
  std::vector<int64_t> permutation_;
};

}  // namespace dreambooth::train
