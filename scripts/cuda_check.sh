#!/usr/bin/env bash
# The CUDA checks (not CI: CI has no GPU). On a machine with an NVIDIA GPU and PyTorch installed, from the
# repository root, after scripts/cuda_bundle.sh made .cuda/ here and .cuda was carried along:
#   1. build   this tree against the LibTorch inside PyTorch (a 2.x CUDA build), tests included
#   2. parity  the golden parity tests with the models on the GPU (DREAMBOOTH_TEST_DEVICE=cuda, TF32 off)
#   3. cli     the golden CLI images sampled on the GPU in fp32 / fp16 / bf16, compared with the reference PNG
#   4. sample  benchmark: SD1.5-shaped random model, 512x512, DDIM, cfg 7.5: it/s and peak VRAM per dtype
#   5. train   benchmark: SD1.5-shaped random model, 512x512, batch 1 + 1 prior image, full fine-tune:
#              s/step and peak VRAM for bf16 (+ gradient checkpointing, + 8-bit AdamW) and fp16
#   6. resume  LoRA training with dropout on the tiny model, 4 steps against 2 + 2 resumed from a checkpoint:
#              the device generator's state (dropout masks) must come back with the run
#   7. suite   the whole CTest suite against LibTorch 2.x (CPU paths) with the parity tests on the GPU
# STAGES picks stages (default: all, in this order); BUILD_TARGETS, SAMPLE_DTYPES, SAMPLE_STEPS, TRAIN_STEPS and
# TRAIN_CASES (e.g. "bf16+gradckpt+8bit fp32") size them.
# The summary and build logs go to $OUT (default out/cuda), the other logs to $WORK_DIR/logs.
# Python is used here only to read JSON and PNGs; the product never needs it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/cuda}
mkdir -p "$out"
deps=$PWD/.cuda/deps
golden=$PWD/.cuda/golden
build=${BUILD_DIR:-build-cuda}
db=$build/dreambooth
work=${WORK_DIR:-/tmp/dreambooth-cuda}
logs=$work/logs  # per-step logs; $out keeps the summary and the build logs
mkdir -p "$work" "$logs"
stages=" ${STAGES:-build parity cli sample train resume suite} "
export LD_LIBRARY_PATH=$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export DREAMBOOTH_CACHE=$work/cache
summary=$out/summary.txt
: >"$summary"
t0=$SECONDS
say() { printf '== [%4ds] %s\n' $((SECONDS - t0)) "$*" | tee -a "$summary"; }
note() { echo "$*" | tee -a "$summary"; }
want() { [[ "$stages" == *" $1 "* ]]; }
[ -d "$deps" ] || { echo "cuda_check: .cuda/deps missing: run scripts/cuda_bundle.sh and carry .cuda" >&2; exit 2; }

note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
note "torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
note "compiler: $(c++ --version | head -1); cores: $(nproc)"

if want build; then
  say "configure"
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix;$deps" \
    -DDREAMBOOTH_GTEST_SOURCE_DIR="$deps/googletest" -DDREAMBOOTH_GOLDEN_DIR="$golden" \
    ${CMAKE_ARGS:-} >"$out/configure.log" 2>&1 || { tail -60 "$out/configure.log"; exit 1; }
  keep_going=(-k)
  [ ${#generator[@]} -gt 0 ] && keep_going=(-k 0)
  targets=${BUILD_TARGETS:-dreambooth models_tests train_tests}
  say "build $targets"
  # shellcheck disable=SC2086
  if ! cmake --build "$build" -j "$(nproc)" --target $targets -- "${keep_going[@]}" \
      >"$out/build.log" 2>&1; then
    grep -E 'error|Error' "$out/build.log" | grep -v '^ninja: build stopped' | head -60
    say "build FAILED (log: build.log)"
    exit 1
  fi
  say "build done"
fi

if want parity; then
  say "parity tests on the GPU (fp32, TF32 off)"
  for t in models_tests train_tests; do
    filter='*Parity*'
    [ $t = train_tests ] && filter='DreamboothStepParity*'
    DREAMBOOTH_TEST_DEVICE=cuda "$build/tests/$t" --gtest_filter="$filter" >"$logs/parity-$t.log" 2>&1
    note "$t $filter: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$logs/parity-$t.log" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \] [A-Za-z]' "$logs/parity-$t.log" | head -5 | tee -a "$summary"
  done
  # The largest max_abs per compared tensor family, as the tests print them.
  grep -h '^\[close\]' "$logs"/parity-*.log | awk '{print $2, $3}' | sort -t= -k2 -g | tail -4 | tee -a "$summary"
fi

png_diff() {  # mean |a-b|, max |a-b| in 8-bit levels, and the mean of a
  python3 -c 'import sys, numpy as np; from PIL import Image
a=np.asarray(Image.open(sys.argv[1]).convert("RGB"),dtype=float); b=np.asarray(Image.open(sys.argv[2]).convert("RGB"),dtype=float)
print("mean|d|=%.4f max|d|=%d mean=%.1f" % (abs(a-b).mean(), abs(a-b).max(), a.mean()))' "$1" "$2"
}

if want cli; then
  say "golden CLI images on the GPU"
  args=(--prompt "a photo of sks dog" --seed 42 --steps 4 --cfg 7.5 --width 64 --height 64 --scheduler ddim
        --negative-prompt blurry)
  for dtype in fp32 fp16 bf16; do
    if "$db" sample --model "$golden/tiny-sd1" "${args[@]}" --device cuda --dtype "$dtype" --out "$work/cli-$dtype" \
        --overwrite --quiet >"$logs/cli.log" 2>&1; then
      note "sd1_ddim_seed42 cuda $dtype vs reference: $(png_diff "$work/cli-$dtype/00000-42.png" "$golden/cli/sd1_ddim_seed42.png")"
    else
      note "sd1_ddim_seed42 cuda $dtype FAILED: $(tail -2 "$logs/cli.log")"
    fi
  done
fi

model=$work/sd15-fp16.safetensors
# The real CLIP vocabulary as its tokenizer: SD1.5's text encoder has exactly its 49408 ids.
make_model() {
  [ -f "$model" ] || "$db" init --preset sd15 --dtype fp16 --out "$model" --tokenizer "$golden/tokenizer" --quiet >/dev/null
}

if want sample; then
  say "sample benchmark: SD1.5 random weights, 512x512, DDIM ${SAMPLE_STEPS:-25} steps, cfg 7.5, batch 2 (CFG)"
  make_model
  for dtype in ${SAMPLE_DTYPES:-fp16 bf16 fp32}; do
    json=$("$db" sample --model "$model" --prompt "a photo of a dog on the beach" --negative-prompt blurry \
      --scheduler ddim --steps "${SAMPLE_STEPS:-25}" --width 512 --height 512 --count 2 --seed 1 --device cuda \
      --dtype "$dtype" --out "$work/bench-$dtype" --overwrite --json --quiet 2>"$logs/sample-$dtype.err" | tail -1)
    [ -n "$json" ] || { note "sample $dtype FAILED: $(tail -3 "$logs/sample-$dtype.err")"; continue; }
    note "$(echo "$json" | python3 -c 'import sys, json; j=json.load(sys.stdin); s=j["seconds"]
print("sample %s 512x512: %.2f it/s (%.4f s/step), text encoder %.3f s, VAE decode %.3f s, peak VRAM %.2f GiB, peak RSS %.2f GiB" % (
 sys.argv[1], 1/s["per_step"], s["per_step"], s["text_encoder"], s["vae_decode"], j.get("peak_vram_bytes",0)/2**30, j["peak_rss_bytes"]/2**30))' "$dtype")"
    png=$(echo "$json" | python3 -c 'import sys, json; print(json.load(sys.stdin)["path"])')
    note "  image: $(python3 -c 'import sys, numpy as np; from PIL import Image
a=np.asarray(Image.open(sys.argv[1]).convert("RGB"),dtype=float); print("mean=%.1f std=%.1f" % (a.mean(), a.std()))' "$png")"
  done
  cp "$work/bench-fp16/00001-2.png" "$out/sample-fp16-512.png" 2>/dev/null
fi

if want train; then
  say "train benchmark: SD1.5 random weights (fp32 master), 512x512, batch 1 + 1 prior image, ${TRAIN_STEPS:-8} steps"
  make_model
  mkdir -p "$work/subject" "$work/class"
  python3 -c 'import sys, numpy as np; from PIL import Image
for i, p in enumerate(sys.argv[1:]): Image.fromarray(np.random.default_rng(i).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(p)' \
    "$work/subject/a.png" "$work/subject/b.png" "$work/class/c.png"
  train_case() {
    local name=$1
    shift
    rm -rf "$work/train-$name"
    if ! "$db" train --model "$model" --subject "$work/subject" --token sks --class dog --output "$work/train-$name" \
        --class-dir "$work/class" --num-class-images 1 --resolution 512 --steps "${TRAIN_STEPS:-8}" --batch-size 1 \
        --seed 0 --device cuda --checkpoint-every 0 --save-dtype fp16 --center-crop --quiet "$@" \
        >"$logs/train-$name.log" 2>&1; then
      note "train $name FAILED: $(grep -v '^\s*$' "$logs/train-$name.log" | tail -2 | tr '\n' ' ')"
      return
    fi
    note "$(python3 -c 'import sys, json
rows=[json.loads(l) for l in open(sys.argv[1])]; timed=[r for r in rows if r["step"] > 1]
s=sum(r["seconds"] for r in timed)/len(timed); vram=max(r.get("peak_vram_bytes",0) for r in rows)
print("train %-34s %.3f s/step (%.2f steps/s), peak VRAM %.2f GiB, last loss %.4f" % (sys.argv[2], s, 1/s, vram/2**30, rows[-1]["loss"]))' \
      "$work/train-$name/metrics.jsonl" "$name")"
  }
  cases=${TRAIN_CASES:-bf16+gradckpt bf16 bf16+gradckpt+8bit bf16+gradckpt+8bit+cache-latents fp16+gradckpt fp32}
  for case in $cases; do
    flags=(--mixed-precision "${case%%+*}")
    [ "${case%%+*}" = fp32 ] && flags=(--mixed-precision no)
    [[ $case == *+gradckpt* ]] && flags+=(--gradient-checkpointing)
    [[ $case == *+8bit* ]] && flags+=(--use-8bit-adam)
    [[ $case == *+cache-latents* ]] && flags+=(--cache-latents)
    train_case "$case" "${flags[@]}"
  done
  first=${cases%% *}
  "$db" sample --model "$work/train-$first/model.safetensors" --prompt "a photo of sks dog" --steps 4 \
    --width 512 --height 512 --device cuda --seed 5 --out "$work/from-train" --overwrite --quiet >"$logs/sample-trained.log" 2>&1 &&
    note "sample from the $first-trained model: ok" || note "sample from the $first-trained model FAILED: $(tail -2 "$logs/sample-trained.log")"
fi

if want resume; then
  device=${RESUME_DEVICE:-cuda}
  say "resume on $device: LoRA with dropout 0.25 on the tiny model, 4 steps against 2 + 2 resumed"
  mkdir -p "$work/tiny-subject"
  python3 -c 'import sys, numpy as np; from PIL import Image
for i, p in enumerate(sys.argv[1:]): Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p)' \
    "$work/tiny-subject/a.png" "$work/tiny-subject/b.png"
  resume_run() {
    "$db" train --model "$golden/tiny-sd1" --subject "$work/tiny-subject" --token sks --class dog \
      --no-prior-preservation --resolution 64 --seed 3 --device "$device" --lora --lora-dropout 0.25 --flip \
      --checkpoint-every 2 --save-dtype fp32 --quiet "$@" >>"$logs/resume.log" 2>&1
  }
  rm -rf "$work/resume-a" "$work/resume-b"
  if resume_run --output "$work/resume-a" --steps 4 && resume_run --output "$work/resume-b" --steps 2 &&
      resume_run --output "$work/resume-b" --steps 4 --resume latest; then
    note "$(python3 -c 'import sys, json, struct, numpy as np
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; header = json.loads(f.read(n)); blob = f.read()
    return {k: np.frombuffer(blob[v["data_offsets"][0]:v["data_offsets"][1]], np.float32) for k, v in header.items() if k != "__metadata__"}
a, b = read(sys.argv[1]), read(sys.argv[2])
worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
print("resume: %d adapter tensors, max |uninterrupted - resumed| = %g" % (len(a), worst))' \
      "$work/resume-a/lora.safetensors" "$work/resume-b/lora.safetensors")"
  else
    note "resume FAILED: $(grep -v '^\s*$' "$logs/resume.log" | tail -2 | tr '\n' ' ')"
  fi
fi

if want suite; then
  say "build all tests"
  cmake --build "$build" -j "$(nproc)" >"$out/build-all.log" 2>&1 ||
    { grep -E 'error' "$out/build-all.log" | head -30; say "build of the tests FAILED"; exit 1; }
  say "ctest (CPU paths on LibTorch 2.x, parity on the GPU)"
  (cd "$build" && DREAMBOOTH_TEST_DEVICE=cuda ctest -j "$(nproc)" --timeout 300 --output-on-failure >"$logs/ctest.log" 2>&1)
  note "ctest exit $?: $(grep -E 'tests passed|tests failed' "$logs/ctest.log")"
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess)' "$logs/ctest.log" | head -20 | tee -a "$summary"
  grep -c 'Skipped' "$logs/ctest.log" | sed 's/^/skipped lines: /' | tee -a "$summary"
fi
say "done"
