list(APPEND DREAMBOOTH_SOURCES
  src/models/clip_text_config.cpp
  src/models/layers.cpp
  src/models/unet_config.cpp
  src/models/vae_config.cpp
)
