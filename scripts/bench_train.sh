#!/usr/bin/env bash
# Benchmark of `dreambooth train` (not a test; run it on a quiet machine): a full-size SD1.5-shaped model
# with random weights (`dreambooth init --preset sd15`), CPU, fp32, 256x256, batch 1 + 1 prior image, a few
# steps: full fine-tuning and LoRA (--lora, rank 4, attention projections), each with and without
# --gradient-checkpointing. Prints seconds per step (mean over the steps after the first, from
# OUTPUT/metrics.jsonl) and the peak resident memory of the whole process.
#
# The class image is given (--class-dir holding one image, --num-class-images 1), so the frozen model's
# sampling is not part of the measurement; the subject is one synthetic image. Both are noise BMPs.
#
# Environment: PRESET (sd15; `tiny` for a quick check of the script), RES (256), STEPS (4), THREADS
# (default: all cores), DREAMBOOTH (build/dreambooth), KEEP=1 keeps the work folder, CASES (the
# configurations to run, default "full gradient-checkpointing lora-r4 lora-r4+grad-checkpointing").
#
# REFERENCE=1 also times the reference's step on the same machine, for the full and gradient-checkpointing
# cases, and prints our time over the reference's: scripts/reference_train_step.py, diffusers' DreamBooth
# step rebuilt in PyTorch 1.13 eager (Debian's python3-torch; `--check` shows it reproduces the golden step
# bit for bit). PYTHON (default /usr/bin/python3) must import torch.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${PRESET:-sd15}
res=${RES:-256}
steps=${STEPS:-4}
db=${DREAMBOOTH:-build/dreambooth}
threads=()
[[ -n "${THREADS:-}" ]] && threads=(--threads "$THREADS")
[[ -x "$db" ]] || { echo "bench_train: $db not built (cmake --build build --target dreambooth)" >&2; exit 1; }
(( steps >= 2 )) || { echo "bench_train: STEPS must be at least 2 (the first step is not timed)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_train.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; else echo "work folder: $work"; fi

# A 24-bit BMP of random pixels, side x side (side a multiple of 4: rows need no padding).
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
noise_bmp() {
  local path=$1 side=$2
  local bytes=$((side * side * 3))
  {
    printf "BM$(le32 $((54 + bytes)))$(le32 0)$(le32 54)"
    printf "$(le32 40)$(le32 "$side")$(le32 "$side")\\x01\\x00\\x18\\x00$(le32 0)$(le32 "$bytes")"
    printf "$(le32 2835)$(le32 2835)$(le32 0)$(le32 0)"
    head -c "$bytes" /dev/urandom
  } >"$path"
}

echo "== model: dreambooth init --preset $preset (fp32, random weights)"
"$db" init --preset "$preset" --out "$work/model.safetensors" --dtype fp32 --seed 0 --quiet >/dev/null
mkdir -p "$work/subject" "$work/class"
noise_bmp "$work/subject/photo.bmp" "$res"
noise_bmp "$work/class/class.bmp" "$res"

# Runs one training configuration; prints its line of the table.
run_case() {
  local name=$1
  shift
  local out="$work/out-$name"
  /usr/bin/time -v -o "$work/time-$name.txt" \
    "$db" train --model "$work/model.safetensors" --subject "$work/subject" --token sks --class dog \
    --output "$out" --class-dir "$work/class" --num-class-images 1 --resolution "$res" --steps "$steps" \
    --batch-size 1 --seed 0 --device cpu --mixed-precision no --checkpoint-every 0 --save-dtype fp16 \
    --center-crop --quiet "${threads[@]}" "$@" >/dev/null 2>"$work/stderr-$name.txt" || {
    echo "bench_train: the $name run failed:" >&2
    tail -n 20 "$work/stderr-$name.txt" >&2
    exit 1
  }
  local per_step rss_kb
  per_step=$(jq -s 'map(select(.step > 1) | .seconds) | add / length' "$out/metrics.jsonl")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time-$name.txt")
  printf '%-34s %10.3f %12.0f\n' "$name" "$per_step" "$((rss_kb / 1024))"
  ours[$name]=$per_step
}

# Times the reference's step for one case; prints its line and our time over the reference's.
run_reference() {
  local name=$1
  shift
  local log="$work/reference-$name.txt" per_step rss_mib
  "$python" scripts/reference_train_step.py --bench --steps "$steps" --resolution "$res" \
    ${THREADS:+--threads "$THREADS"} "$@" >"$log" 2>&1 || {
    echo "bench_train: the reference $name run failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
  }
  per_step=$(awk -F': ' '/^reference s\/step/ {print $2}' "$log")
  rss_mib=$(awk -F': ' '/^reference peak RSS MiB/ {print $2}' "$log")
  printf '%-34s %10.3f %12.0f\n' "reference $name" "$per_step" "$rss_mib"
  [[ -n "${ours[$name]:-}" ]] &&
    printf '%-34s %10.2f\n' "  ours / reference" "$(jq -n "${ours[$name]} / $per_step")"
  return 0
}

declare -A ours=()
python=${PYTHON:-/usr/bin/python3}
if [[ "${REFERENCE:-0}" == 1 ]]; then
  [[ "$preset" == sd15 ]] || { echo "bench_train: REFERENCE=1 needs PRESET=sd15" >&2; exit 2; }
  "$python" -c 'import torch' 2>/dev/null ||
    { echo "bench_train: REFERENCE=1 needs $python with torch (apt install python3-torch)" >&2; exit 2; }
fi

echo "== dreambooth train: $preset, CPU fp32, ${res}x${res}, batch 1 + 1 prior image, $steps steps"
printf '%-34s %10s %12s\n' "configuration" "s/step" "peak RSS MiB"
for name in ${CASES:-full gradient-checkpointing lora-r4 lora-r4+grad-checkpointing}; do
  case "$name" in
    full) run_case "$name" ;;
    gradient-checkpointing) run_case "$name" --gradient-checkpointing ;;
    lora-r4) run_case "$name" --lora --lora-rank 4 ;;
    lora-r4+grad-checkpointing) run_case "$name" --lora --lora-rank 4 --gradient-checkpointing ;;
    *) echo "bench_train: unknown case $name" >&2; exit 2 ;;
  esac
done

if [[ "${REFERENCE:-0}" == 1 ]]; then
  echo "== reference step: scripts/reference_train_step.py (PyTorch eager), same shapes and steps"
  for name in ${CASES:-full gradient-checkpointing}; do
    case "$name" in
      full) run_reference "$name" ;;
      gradient-checkpointing) run_reference "$name" --gradient-checkpointing ;;
      *) ;;
    esac
  done
fi
