list(APPEND DREAMBOOTH_SOURCES
  src/checkpoint/chunked_read.cpp
  src/checkpoint/convert.cpp
  src/checkpoint/description.cpp
  src/checkpoint/detect.cpp
  src/checkpoint/key_map.cpp
  src/checkpoint/key_tables.cpp
  src/checkpoint/ldm_yaml.cpp
  src/checkpoint/presets.cpp
  src/checkpoint/source.cpp
  src/checkpoint/stable_diffusion.cpp
  src/checkpoint/strict_load.cpp
  src/checkpoint/types.cpp
  src/checkpoint/weight_files.cpp
  src/checkpoint/writer.cpp
)
