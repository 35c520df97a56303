set(DREAMBOOTH_CLI_SOURCES
  src/cli/cmd_convert.cpp
  src/cli/cmd_info.cpp
  src/cli/cmd_init.cpp
  src/cli/cmd_sample.cpp
  src/cli/common.cpp
  src/cli/tokenizer_files.cpp
)
