#!/usr/bin/env bash
# Benchmark (not a test): loading a full-size SD1.5 fp16 single file into fp32 models on the CPU, against
# one sequential read of the same file. Prints load seconds, read seconds, their ratio, and peak RSS
# against the size of the fp32 weights.
#   BENCH_DIR   where the random-weight model is kept between runs (default out/bench)
#   DB          the binary (default build/dreambooth, built if missing)
#   RUNS        loads to time (default 3; the best and the median are printed)
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${DB:-build/dreambooth}
[ -x "$DB" ] || bash scripts/build.sh >/dev/null
dir=${BENCH_DIR:-out/bench}
runs=${RUNS:-3}
model="$dir/sd15-fp16.safetensors"
mkdir -p "$dir"
[ -f "$model" ] || "$DB" init --preset sd15 --dtype fp16 --out "$model" --quiet

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); calc "$end - $start"; }
calc() { awk "BEGIN { print $1 }"; }

file_bytes=$(stat -L -c %s "$model")
drop_caches
cold_read=$(seconds cat "$model")
hot_read=$(seconds cat "$model")

loads=()
rss=0
weights=0
for _ in $(seq "$runs"); do
  drop_caches  # like the read above: from the disk, not from the page cache
  json=$("$DB" info "$model" --load --json --quiet)
  loads+=("$(echo "$json" | grep -o '"seconds":[0-9.e+-]*' | cut -d: -f2)")
  rss=$(echo "$json" | grep -o '"peak_rss_bytes":[0-9]*' | cut -d: -f2)
  weights=$(echo "$json" | grep -o '"weight_bytes":[0-9]*' | cut -d: -f2)
done
sorted=$(printf '%s\n' "${loads[@]}" | sort -g)
best=$(echo "$sorted" | head -1)
median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")

printf 'model            %s (%.2f GiB fp16, SD1.5 shapes, random weights)\n' "$model" "$(calc "$file_bytes / 2^30")"
printf 'threads          %s\n' "$(nproc)"
printf 'sequential read  %.2f s cold (page cache dropped), %.2f s hot\n' "$cold_read" "$hot_read"
printf 'load into fp32   best %.2f s, median %.2f s of %d, page cache dropped each time (runs: %s)\n' "$best" "$median" "$runs" "${loads[*]}"
printf 'load / cold read %.2fx (target <= 1.5x)\n' "$(calc "$best / $cold_read")"
printf 'peak RSS         %.2f GiB = %.3fx the fp32 weights (%.2f GiB; target <= 1.2x)\n' \
  "$(calc "$rss / 2^30")" "$(calc "$rss / $weights")" "$(calc "$weights / 2^30")"
