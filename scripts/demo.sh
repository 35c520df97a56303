#!/usr/bin/env bash
# The main job, end to end on a fresh machine with nothing downloaded: builds dreambooth, makes a tiny
# random-weight Stable Diffusion model (with a tokenizer trained on the spot), and shows what it is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
db=build/dreambooth
out=${DEMO_OUT:-out/demo}
rm -rf "$out"
mkdir -p "$out"

echo "== dreambooth init: a tiny random-weight model in the single-file layout"
$db init --preset tiny --out "$out/tiny.safetensors"
echo "== dreambooth info"
$db info "$out/tiny.safetensors"
$db info "$out/tiny.safetensors" --json
