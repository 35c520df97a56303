list(APPEND DREAMBOOTH_SOURCES
  src/pipelines/noise.cpp
  src/pipelines/text_to_image.cpp
)
