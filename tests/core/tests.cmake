dreambooth_add_test(core_test LABELS unit SOURCES core/core_test.cpp core/cpu_allocator_test.cpp core/remove_tree_test.cpp)
