dreambooth_add_test(core_test LABELS unit SOURCES core/core_test.cpp)
