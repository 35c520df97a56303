#!/usr/bin/env bash
# Benchmark (not a test; run it on a quiet machine): `dreambooth sample` with a full-size SD1.5-shaped
# random-weight model on the CPU in fp32, at 256x256 and 512x512, classifier-free guidance on (UNet
# batch 2). Two images per size; the figures are the second image's (warm oneDNN kernels and allocator):
# seconds per sampler step, text-encoder and VAE-decode seconds, and the process's peak RSS.
#   BENCH_DIR  model cache between runs (default out/bench)    SIZES  (default "256 512")
#   STEPS      sampler steps per image (default 3)             DB     the binary (default build/dreambooth)
#   THREADS    (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${DB:-build/dreambooth}
[ -x "$DB" ] || bash scripts/build.sh >/dev/null
dir=${BENCH_DIR:-out/bench}
steps=${STEPS:-3}
threads=${THREADS:-$(nproc)}
model="$dir/sd15-fp16.safetensors"
mkdir -p "$dir"
[ -f "$model" ] || "$DB" init --preset sd15 --dtype fp16 --out "$model" --quiet

echo "model: $model (SD1.5 shapes, random weights, loaded as fp32); CPU, $threads threads, DDIM, cfg 7.5"
printf '%-9s %10s %14s %12s %14s\n' size "s/step" "text encoder s" "VAE decode s" "peak RSS GiB"
for size in ${SIZES:-256 512}; do
  json=$("$DB" sample --model "$model" --prompt "a photo of a dog on the beach" --negative-prompt "blurry" \
    --scheduler ddim --steps "$steps" --cfg 7.5 --width "$size" --height "$size" --count 2 --seed 1 \
    --device cpu --dtype fp32 --threads "$threads" --out "$dir/samples-$size" --overwrite --json --quiet | tail -1)
  echo "$json" | jq -r --arg size "${size}x${size}" \
    '"\($size)\t\(.seconds.per_step)\t\(.seconds.text_encoder)\t\(.seconds.vae_decode)\t\(.peak_rss_bytes / 1073741824)"' |
    awk -F'\t' '{ printf "%-9s %10.2f %14.2f %12.2f %14.2f\n", $1, $2, $3, $4, $5 }'
done
