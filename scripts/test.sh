#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, configures, builds, runs ctest.
# Extra arguments go to ctest (e.g. -L parity, -R Safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
