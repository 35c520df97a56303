dreambooth_add_test(safetensors_test LABELS unit SOURCES io/safetensors_test.cpp)
