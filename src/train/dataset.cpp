#include "dreambooth/train/dataset.h"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/train/image_transforms.h"

namespace fs = std::filesystem;

namespace dreambooth::train {

std::vector<fs::path> list_image_files(const fs::path& folder, bool strict, const std::string& role) {
  std::error_code ec;
  if (!fs::exists(folder, ec))
    throw input_error(folder.string(), "no such folder", "--" + role + " must name a folder of images");
  if (!fs::is_directory(folder, ec))
    throw input_error(folder.string(), "is not a folder", "--" + role + " must name a folder of images");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // .DS_Store, editor droppings
    if (!entry.is_regular_file()) continue;
    if (!strict && !io::has_image_extension(entry.path())) continue;
    files.push_back(entry.path());
  }
  if (ec) throw input_error(folder.string(), "cannot list the folder: " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

ImageSet load_image_folder(const fs::path& folder, const ImageFolderOptions& options) {
  ImageSet set;
  for (const fs::path& path : list_image_files(folder, options.strict, options.role)) {
    io::Image image;
    try {
      if (!io::has_image_extension(path))
        throw input_error(path.string(), "is not an image", "use JPEG, PNG, BMP or TGA files, or --skip-bad-images");
      image = io::load_image(path);
    } catch (const Error& e) {
      if (!options.skip_bad_images) {
        if (e.kind() != ErrorKind::Input) throw;
        throw Error(ErrorKind::Input, std::string(e.what()) + " (or pass --skip-bad-images to leave it out)");
      }
      spdlog::warn("skipping {}: {}", path.string(), e.what());
      continue;
    }
    if (std::min(image.width, image.height) < options.resolution)
      spdlog::warn("{} is {}x{}, smaller than the training resolution {}: it is upscaled (blurry)", path.string(),
                   image.width, image.height, options.resolution);
    set.images.push_back(resize_shorter_side(image, options.resolution));
    set.paths.push_back(path);
  }
  if (set.images.empty())
    throw input_error(folder.string(), "holds no usable " + options.role + " image",
                      "put JPEG/PNG/BMP/TGA photos there (3-5 of the " + options.role + " work well)");
  return set;
}

at::Tensor make_example(const io::Image& resized, const ExampleTransform& transform, at::Generator& generator) {
  const CropBox box = transform.center_crop
                          ? center_crop_box(resized.width, resized.height, transform.resolution)
                          : random_crop_box(resized.width, resized.height, transform.resolution, generator);
  io::Image cropped = crop(resized, box);
  if (transform.flip && random_flip(generator)) cropped = flip_horizontal(cropped);
  return image_to_tensor(cropped);
}

std::vector<int64_t> DataOrder::next_batch(int64_t batch_size, at::Generator& generator) {
  if (size_ <= 0) throw Error(ErrorKind::Runtime, "DataOrder: empty dataset");
  if (position_ >= static_cast<int64_t>(permutation_.size())) {
    const at::Tensor order = torch::randperm(size_, generator, torch::kLong);
    permutation_.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + size_);
    position_ = 0;
    ++epoch_;
  }
  const int64_t end = std::min<int64_t>(position_ + batch_size, size_);
  std::vector<int64_t> batch(permutation_.begin() + position_, permutation_.begin() + end);
  position_ = end;
  return batch;
}

nlohmann::json DataOrder::to_json() const {
  return {{"size", size_}, {"epoch", epoch_}, {"position", position_}, {"permutation", permutation_}};
}

DataOrder DataOrder::from_json(const nlohmann::json& json, const std::string& source) {
  try {
    DataOrder order(json.at("size").get<int64_t>());
    order.epoch_ = json.at("epoch").get<int64_t>();
    order.position_ = json.at("position").get<int64_t>();
    order.permutation_ = json.at("permutation").get<std::vector<int64_t>>();
    if (order.position_ < 0 || order.position_ > static_cast<int64_t>(order.permutation_.size()))
      throw input_error(source, "data order position out of range");
    return order;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(source, std::string("bad data order: ") + e.what());
  }
}

}  // namespace dreambooth::train
