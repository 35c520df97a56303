#include "dreambooth/checkpoint/presets.h"

#include "dreambooth/models/init.h"

namespace dreambooth::checkpoint {

ModelDescription preset_description(Preset preset) {
  ModelDescription d;
  d.config_source = "preset";
  switch (preset) {
    case Preset::Tiny:
      d.family = Family::Sd1;
      d.unet = models::UNetConfig::tiny();
      d.vae = models::VaeConfig::tiny();
      d.text_encoder = models::ClipTextConfig::tiny();
      break;
    case Preset::Sd15:
      d.family = Family::Sd1;
      d.unet = models::UNetConfig::sd15();
      d.vae = models::VaeConfig::sd15();
      d.text_encoder = models::ClipTextConfig::sd15();
      break;
    case Preset::Sd21:
      d.family = Family::Sd2;
      d.prediction_type = PredictionType::VPrediction;
      d.unet = models::UNetConfig::sd21();
      d.vae = models::VaeConfig::sd15();
      d.vae.sample_size = 768;
      d.text_encoder = models::ClipTextConfig::sd21();
      break;
  }
  d.scheduler = single_file_scheduler_config(d.family, d.prediction_type);
  return d;
}

StableDiffusion create_preset_model(Preset preset, uint64_t seed) {
  StableDiffusion model;
  model.description = preset_description(preset);
  const ModelDescription& d = model.description;
  model.unet = models::UNet2DConditionModel(d.unet);
  model.vae = models::AutoencoderKL(d.vae);
  model.text_encoder = models::ClipTextModel(d.text_encoder);
  // One seed per component: the same layer name in two components still gets different values.
  models::init_random_weights(*model.unet, seed);
  models::init_random_weights(*model.vae, seed + 1);
  models::init_random_weights(*model.text_encoder, seed + 2);
  return model;
}

}  // namespace dreambooth::checkpoint
