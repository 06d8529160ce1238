#!/usr/bin/env bash
# scripts/bench.sh — regenerate every number in BENCHMARKS.md.
#
# Usage: scripts/bench.sh [BUILD_DIR]     (default: build; BENCHMARKS.md used a release build:
#                                          meson setup BUILD_DIR --buildtype=release)
# Environment:
#   SCRATCH     where the generated models go (default /tmp/ds-bench; ~8.5 GB, plus ~18 GB
#               while the Q4_K_M file is made; deleted at the end unless KEEP=1)
#   LAYERS      layers of the V2-Lite-shaped models (default 4: 4.5 GB BF16, 2.4 GB Q8_0,
#               1.5 GB Q4_K_M)
#   FULL        1: also the full-size 27-layer V2-Lite Q8_0 model in every load mode (16.7 GB
#               more in SCRATCH, ~20 GB of memory for --load read|hugepages)
#   QUIET_WAIT  seconds to wait before each measurement for the machine to be idle (>= 90 %
#               idle over 3 s; default 900; 0 = do not wait). The project machine is shared;
#               every measurement also prints the load average it ran under.
# Output: the commands and their results (JSON lines from `ds bench --json`) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DS=$BUILD/examples/ds
SCRATCH=${SCRATCH:-/tmp/ds-bench}
LAYERS=${LAYERS:-4}
QUIET_WAIT=${QUIET_WAIT:-900}
SHARED=${DS_SHARED_DIR:-$PWD/../shared}
mkdir -p "$SCRATCH"

idle_pct() { # percentage of idle CPU time over 3 seconds
  local a b
  read -r _ u n s i w q sq st _ < /proc/stat; a=$((u + n + s + i + w + q + sq + st)); b=$i
  sleep 3
  read -r _ u n s i w q sq st _ < /proc/stat
  echo $(( 100 * (i - b) / (u + n + s + i + w + q + sq + st - a) ))
}
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local t0=$SECONDS idle
  while :; do
    idle=$(idle_pct)
    [ "$idle" -ge 90 ] && break
    [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ] && { echo "# (still busy after ${QUIET_WAIT}s)"; break; }
  done
}
run() {
  wait_quiet
  echo "# $(date -u +%FT%TZ) load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "+ $*"
  "$@"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(grep MemTotal /proc/meminfo | awk '{printf "%.0f GiB", $2 / 1048576}')"
buildtype=$(/usr/bin/python3 -c 'import json, sys
print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
  "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo "?")
echo "# build: $BUILD ($buildtype); $(date -u +%F)"

# V2-Lite-shaped models: hidden 2048, 16 heads, kv LoRA 512, 64 routed experts (6 used) of
# width 1408, 2 shared, first layer dense, vocab 102400; LAYERS of the 27 layers, random weights.
for t in bf16 q8_0; do
  m=$SCRATCH/lite$LAYERS-$t.gguf
  [ -f "$m" ] || run /usr/bin/python3 tools/make-test-model.py -o "$m" --preset v2-lite \
                   --n-layer "$LAYERS" --type $t
done
# Q4_K_M as llama.cpp mixes it for DeepSeek (formats.md §3): Q4_K, Q6_K for the output head,
# attn_v_b and some ffn_down, Q5_0 where 256 does not divide the row (ffn_down_exps, 1408).
# Quantized from an F32 model (~9 GB, and ~12 GB of memory for ~6 minutes; deleted after).
Q4KM=$SCRATCH/lite$LAYERS-q4_k_m.gguf
if [ ! -f "$Q4KM" ]; then
  run /usr/bin/python3 tools/make-test-model.py -o "$SCRATCH/lite$LAYERS-f32.gguf" \
      --preset v2-lite --n-layer "$LAYERS" --type f32
  run /usr/bin/python3 tests/kernels/quantize_gguf.py "$SCRATCH/lite$LAYERS-f32.gguf" "$Q4KM" \
      "$SCRATCH/lite$LAYERS-f32-ref.gguf" --q4-k-m
  rm -f "$SCRATCH/lite$LAYERS-f32.gguf" "$SCRATCH/lite$LAYERS-f32-ref.gguf"
fi
BF16=$SCRATCH/lite$LAYERS-bf16.gguf
Q8=$SCRATCH/lite$LAYERS-q8_0.gguf

# 1. prefill (512-token prompt) and decode (128 tokens), 2 threads, best of 3, with the
#    bandwidth and bf16-peak probes and the session file sizes
for m in "$Q8" "$Q4KM" "$BF16"; do
  run "$DS" bench -m "$m" -p 512 -n 128 -t 2 -r 3 --session-size --json
done
# 2. load modes (mmap is above)
for m in "$Q8" "$Q4KM"; do
  for l in read hugepages; do
    run "$DS" bench -m "$m" -p 512 -n 128 -t 2 -r 3 --load $l --json
  done
done
run "$DS" bench -m "$BF16" -p 512 -n 128 -t 2 -r 3 --load hugepages --json
# 3. one thread (no fork/join; the GEMV kernels' single-core speed)
run "$DS" bench -m "$Q8" -p 512 -n 128 -t 1 -r 2 --json
# 4. session files with a bf16 cache
run "$DS" bench -m "$Q8" -p 512 -n 128 -t 2 -r 1 --kv-type bf16 --session-size --no-probe --json
# 5. batched decode across sessions (each prefilled with 64 tokens; one ds_session_step_batch
#    per step; 64 steps)
for m in "$Q8" "$BF16"; do
  run "$DS" bench -m "$m" -p 64 -n 64 -t 2 -r 1 --batch 1,2,4,8,16 --batch-prompt 64 \
      --no-probe --json
done
# 6. session sizes of the session tests' V2-shaped model (2 layers, f32/f16/bf16 caches)
run meson test -C "$BUILD" session-size --verbose
# 7. the demo model: speed and held-out perplexity
if [ -f models/demo/deepseek-v3-demo-q8_0.gguf ]; then
  run "$DS" bench -m models/demo/deepseek-v3-demo-q8_0.gguf -p 256 -n 128 -t 2 -r 3 --no-probe \
      --json
  run "$DS" perplexity -m models/demo/deepseek-v3-demo-q8_0.gguf -f tests/demo/heldout_sample.txt \
      -c 256 -t 2
fi
# 8. tokenizer throughput (one thread) and load time
run env DS_SHARED_DIR="$SHARED" "$BUILD/tests/tokenizer/bench_tokenizer"
# 9. (FULL=1) a full-size model: all 27 layers of V2-Lite at Q8_0 (16.7 GB; ~2.4 GB of weights
#    read per token, far beyond any cache), in every load mode, the file's page cache dropped
#    first for mmap (needs root; otherwise the mapping is read warm)
if [ "${FULL:-0}" = 1 ]; then
  FULLM=$SCRATCH/lite27-q8_0.gguf
  [ -f "$FULLM" ] || run /usr/bin/python3 tools/make-test-model.py -o "$FULLM" --preset v2-lite \
                       --n-layer 27 --type q8_0
  for l in mmap read hugepages; do
    sync; { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
    run "$DS" bench -m "$FULLM" -p 512 -n 64 -t 2 -r 3 --load $l --json
  done
  [ "${KEEP:-0}" = 1 ] || rm -f "$FULLM"
fi

[ "${KEEP:-0}" = 1 ] || rm -f "$BF16" "$Q8" "$Q4KM"
