list(APPEND DREAMBOOTH_SOURCES
  src/pipelines/generation_parameters.cpp
  src/pipelines/model_hash.cpp
  src/pipelines/model_loading.cpp
  src/pipelines/noise.cpp
  src/pipelines/text_to_image.cpp
)
