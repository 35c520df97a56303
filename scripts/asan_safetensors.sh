#!/usr/bin/env bash
# The safetensors reader and its malformed-file tests (header mutations and truncations of real files)
# under AddressSanitizer + UBSan, compiled standalone: a few translation units instead of a whole
# sanitized build. (For everything: cmake -DDREAMBOOTH_ASAN=ON.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${ASAN_DIR:-build-asan-safetensors}
golden=${DREAMBOOTH_GOLDEN_DIR:-$root/../shared/golden}
mkdir -p "$out"
flags=(-std=c++17 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -Iinclude -Itests -Isrc
       -I/usr/include/torch/csrc/api/include "-DDREAMBOOTH_GOLDEN_DIR=\"$golden\""
       "-DDREAMBOOTH_SOURCE_DIR=\"$root\"" "-DDREAMBOOTH_BINARY=\"$root/build/dreambooth\"")
objects=()
for source in src/io/safetensors.cpp src/core/atomic_file.cpp src/core/error.cpp src/core/config_reader.cpp \
              tests/support/golden.cpp tests/support/tensor_close.cpp tests/io/safetensors_test.cpp; do
  object="$out/$(basename "$source" .cpp).o"
  objects+=("$object")
  [ "$object" -nt "$source" ] || g++ "${flags[@]}" -c "$source" -o "$object" &
done
wait
g++ -fsanitize=address,undefined "${objects[@]}" -o "$out/safetensors_asan" \
  -ltorch -ltorch_cpu -lc10 -lgtest -lgtest_main -lfmt -lspdlog -lpthread
# LibTorch's static registries are never freed: leak reports would only be about them.
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/safetensors_asan" --gtest_filter='Safetensors.*'
