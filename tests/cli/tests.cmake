dreambooth_add_test(cli_test LABELS unit SOURCES cli/cli_test.cpp)
dreambooth_add_test(sample_cli_parity_test LABELS parity SOURCES cli/sample_cli_parity_test.cpp)
