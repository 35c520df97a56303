#include "dreambooth/train/batch_builder.h"

#include <algorithm>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/train/image_transforms.h"

namespace dreambooth::train {

BatchBuilder::BatchBuilder(const ImageSet& instance_images, const ImageSet* class_images,
                           const ExampleTransform& transform)
    : instance_(instance_images), class_images_(class_images), transform_(transform) {}

int64_t BatchBuilder::dataset_size() const {
  const auto n = static_cast<int64_t>(instance_.images.size());
  return class_images_ ? std::max<int64_t>(n, static_cast<int64_t>(class_images_->images.size())) : n;
}

void BatchBuilder::set_text_ids(const at::Tensor& instance_ids, const at::Tensor& class_ids) {
  instance_text_ = instance_ids;
  class_text_ = class_ids;
  text_is_embedding_ = false;
}

void BatchBuilder::set_text_embeddings(const at::Tensor& instance_embeddings, const at::Tensor& class_embeddings) {
  instance_text_ = instance_embeddings;
  class_text_ = class_embeddings;
  text_is_embedding_ = true;
}

std::vector<BatchBuilder::CachedLatents> BatchBuilder::encode_all(const ImageSet& images, models::AutoencoderKL& vae,
                                                                 at::Generator& generator) const {
  torch::NoGradGuard no_grad;
  const at::Tensor parameter = vae->parameters().front();  // a copy: parameters() returns a temporary
  std::vector<CachedLatents> out;
  for (const io::Image& image : images.images) {
    const CropBox box = transform_.center_crop
                            ? center_crop_box(image.width, image.height, transform_.resolution)
                            : random_crop_box(image.width, image.height, transform_.resolution, generator);
    const io::Image cropped = crop(image, box);
    CachedLatents cached;
    for (int flipped = 0; flipped < (transform_.flip ? 2 : 1); ++flipped) {
      const at::Tensor pixels = image_to_tensor(flipped ? flip_horizontal(cropped) : cropped).unsqueeze(0);
      const models::LatentDistribution posterior =
          vae->encode(pixels.to(parameter.device(), parameter.scalar_type()));
      cached.mean[flipped] = posterior.mean.to(torch::kFloat);
      cached.std[flipped] = posterior.std.to(torch::kFloat);
    }
    out.push_back(std::move(cached));
  }
  return out;
}

void BatchBuilder::cache_latents(models::AutoencoderKL& vae, at::Generator& generator) {
  instance_cache_ = encode_all(instance_, vae, generator);
  if (class_images_) class_cache_ = encode_all(*class_images_, vae, generator);
}

StepBatch BatchBuilder::make(const std::vector<int64_t>& indices, at::Generator& generator) const {
  if (!instance_text_.defined()) throw Error(ErrorKind::Runtime, "BatchBuilder: no text conditioning set");
  const bool cached = latents_cached();
  std::vector<at::Tensor> instance_rows, class_rows, instance_std, class_std;

  // One example of an image: pixels, or the cached posterior of the drawn orientation.
  auto add_example = [&](const ImageSet& set, const std::vector<CachedLatents>& cache, int64_t index,
                         std::vector<at::Tensor>& rows, std::vector<at::Tensor>& stds) {
    const size_t i = static_cast<size_t>(index) % set.images.size();
    if (!cached) {
      rows.push_back(make_example(set.images[i], transform_, generator));
      return;
    }
    const int flipped = transform_.flip && random_flip(generator) ? 1 : 0;
    rows.push_back(cache[i].mean[flipped]);
    stds.push_back(cache[i].std[flipped]);
  };
  for (int64_t index : indices) {
    add_example(instance_, instance_cache_, index, instance_rows, instance_std);
    if (class_images_) add_example(*class_images_, class_cache_, index, class_rows, class_std);
  }

  StepBatch batch;
  const auto k = static_cast<int64_t>(indices.size());
  batch.num_instance = k;
  std::vector<at::Tensor> rows = instance_rows;
  rows.insert(rows.end(), class_rows.begin(), class_rows.end());
  if (cached) {
    std::vector<at::Tensor> stds = instance_std;
    stds.insert(stds.end(), class_std.begin(), class_std.end());
    batch.latent_mean = torch::cat(rows, 0);
    batch.latent_std = torch::cat(stds, 0);
  } else {
    batch.pixel_values = torch::stack(rows, 0);  // [N, 3, R, R]
  }
  // The prompt's ids (or embeddings) repeated once per row: [k instance; k class].
  std::vector<at::Tensor> text(static_cast<size_t>(k), instance_text_);
  if (class_images_) text.insert(text.end(), static_cast<size_t>(k), class_text_);
  (text_is_embedding_ ? batch.encoder_hidden_states : batch.input_ids) = torch::cat(text, 0);
  return batch;
}

}  // namespace dreambooth::train
