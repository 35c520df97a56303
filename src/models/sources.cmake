list(APPEND DREAMBOOTH_SOURCES
  src/models/attention.cpp
  src/models/autoencoder_kl.cpp
  src/models/checkpointing.cpp
  src/models/clip_text_config.cpp
  src/models/clip_text_model.cpp
  src/models/init.cpp
  src/models/layers.cpp
  src/models/memory_format.cpp
  src/models/onednn_prepack.cpp
  src/models/parameters.cpp
  src/models/resnet.cpp
  src/models/transformer_2d.cpp
  src/models/unet_2d_blocks.cpp
  src/models/unet_2d_condition.cpp
  src/models/unet_config.cpp
  src/models/vae_config.cpp
)
