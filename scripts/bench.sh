#!/usr/bin/env bash
# Regenerate the numbers in BENCHMARKS.md (needs a built tree: scripts/run-tests.sh --quick or
# scripts/demo.sh first). Models are generated into $SCRATCH (default /tmp/ds-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
DS=build/examples/ds
SCRATCH=${SCRATCH:-/tmp/ds-bench}
mkdir -p "$SCRATCH"
for t in q8_0 bf16; do
  [ -f "$SCRATCH/lite2-$t.gguf" ] || /usr/bin/python3 tools/make-test-model.py \
    -o "$SCRATCH/lite2-$t.gguf" --preset v2-lite --n-layer 2 --type $t
done
# V2-Lite-shaped, 2 layers: prefill 512, decode 64, 2 threads, bandwidth and bf16 peak probes
$DS bench -m "$SCRATCH/lite2-q8_0.gguf" -p 512 -n 64 -t 2 -r 1 --json
$DS bench -m "$SCRATCH/lite2-bf16.gguf" -p 512 -n 64 -t 2 -r 1 --json
for l in read hugepages; do
  $DS bench -m "$SCRATCH/lite2-q8_0.gguf" -p 512 -n 64 -t 2 -r 1 --load $l --json
done
# batched decode across sessions and session file sizes
$DS bench -m "$SCRATCH/lite2-q8_0.gguf" -p 64 -n 32 -t 2 -r 1 --batch 1,2,4,8,16 --session-size --no-probe
# the demo model: speed and held-out perplexity
$DS bench -m models/demo/deepseek-v3-demo-q8_0.gguf -p 256 -n 128 -t 2 -r 3 --no-probe
$DS perplexity -m models/demo/deepseek-v3-demo-q8_0.gguf -f tests/demo/heldout_sample.txt -c 256 -t 2
# tokenizer throughput (one thread) and load time
(cd build && DS_SHARED_DIR=../../shared ./tests/tokenizer/bench_tokenizer)
