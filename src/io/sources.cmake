list(APPEND DREAMBOOTH_SOURCES
  src/io/image.cpp
  src/io/safetensors.cpp
  src/io/stb_implementation.cpp
)
