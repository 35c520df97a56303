#!/usr/bin/env bash
# Packs what a CUDA machine without Debian's packages needs to build and test this tree into .cuda/
# (git-ignored): the header-only libraries (CLI11, nlohmann/json, spdlog + fmt, stb), SentencePiece's
# headers and shared libraries, GoogleTest's sources, and a copy of the golden reference data.
# Run it here, then carry .cuda to the machine and run scripts/cuda_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
golden=${DREAMBOOTH_GOLDEN_DIR:-../shared/golden}
bash scripts/setup_deps.sh >/dev/null
rm -rf .cuda
mkdir -p .cuda/deps/include .cuda/deps/lib
for d in CLI nlohmann spdlog fmt stb; do cp -r "/usr/include/$d" .cuda/deps/include/; done
cp /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h .cuda/deps/include/
cp -P /usr/lib/x86_64-linux-gnu/libsentencepiece*.so* .cuda/deps/lib/
cp -r /usr/src/googletest .cuda/deps/googletest
[ -d "$golden/tiny-sd1/golden" ] || { echo "cuda_bundle: no golden data at $golden" >&2; exit 1; }
cp -r "$golden" .cuda/golden
du -sh .cuda
