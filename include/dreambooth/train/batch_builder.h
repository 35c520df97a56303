// Turns example indices into a StepBatch: for each index, the instance example then the class example
// (transforms drawn from the run's generator in that order, as the reference's DataLoader does), stacked
// as [instance rows; class rows], with the text as token ids or cached embeddings.
//
// --cache-latents: each image is cropped once (center, or one random crop drawn at caching time) and its
// VAE posterior (mean, std) stored for both orientations when --flip is on; a step then only draws the
// flip. The posterior is sampled afresh every step, so the loss is the reference's (for center crops
// exactly the same computation).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "dreambooth/models/autoencoder_kl.h"
#include "dreambooth/train/dataset.h"
#include "dreambooth/train/training_step.h"

namespace dreambooth::train {

class BatchBuilder {
 public:
  // `class_images` null: no prior preservation (batches hold instance rows only).
  BatchBuilder(const ImageSet& instance_images, const ImageSet* class_images, const ExampleTransform& transform);

  // Examples per epoch: max(instance, class) with prior preservation, else the instance count.
  int64_t dataset_size() const;
  bool prior() const { return class_images_ != nullptr; }

  // Text conditioning, [1, L] ids or [1, L, D] embeddings per prompt (the latter for a frozen encoder).
  void set_text_ids(const at::Tensor& instance_ids, const at::Tensor& class_ids);
  void set_text_embeddings(const at::Tensor& instance_embeddings, const at::Tensor& class_embeddings);

  // Encodes every image's crop (both flips with --flip) once; batches then carry latent statistics.
  void cache_latents(models::AutoencoderKL& vae, at::Generator& generator);
  bool latents_cached() const { return !instance_cache_.empty(); }

  StepBatch make(const std::vector<int64_t>& indices, at::Generator& generator) const;

 private:
  struct CachedLatents {
    at::Tensor mean[2];  // [1, C, h, w], index = flipped
    at::Tensor std[2];
  };
  std::vector<CachedLatents> encode_all(const ImageSet& images, models::AutoencoderKL& vae, at::Generator& generator) const;

  const ImageSet& instance_;
  const ImageSet* class_images_;
  ExampleTransform transform_;
  at::Tensor instance_text_, class_text_;
  bool text_is_embedding_ = false;
  std::vector<CachedLatents> instance_cache_, class_cache_;
};

}  // namespace dreambooth::train
