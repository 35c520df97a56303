list(APPEND DREAMBOOTH_SOURCES
  src/lora/adapter.cpp
  src/lora/apply.cpp
  src/lora/lora_reader.cpp
  src/lora/lora_writer.cpp
  src/lora/network.cpp
  src/lora/sites.cpp
)
