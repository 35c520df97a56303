set(DREAMBOOTH_CLI_SOURCES
  src/cli/common.cpp
)
