dreambooth_add_test(safetensors_test LABELS unit SOURCES io/safetensors_test.cpp)
dreambooth_add_test(image_test LABELS unit SOURCES io/image_test.cpp)
