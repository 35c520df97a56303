set(DREAMBOOTH_CLI_SOURCES
  src/cli/cmd_merge_lora.cpp
  src/cli/cmd_sample.cpp
  src/cli/common.cpp
)
