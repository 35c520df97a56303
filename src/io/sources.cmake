list(APPEND DREAMBOOTH_SOURCES
  src/io/safetensors.cpp
)
