set(DREAMBOOTH_CLI_SOURCES
  src/cli/cmd_sample.cpp
  src/cli/cmd_tokens.cpp
  src/cli/cmd_train.cpp
  src/cli/common.cpp
)
