#!/usr/bin/env bash
# The main job in one command: install the Debian packages, build libdeepseek and the `ds`
# program, and generate text from a model.
#
#   scripts/demo.sh [ds generate options...]        e.g. scripts/demo.sh -p "Hello" -n 64
#
# Model: $DS_MODEL if set; otherwise the project's shipped demo model when present
# (models/demo/); otherwise a seeded random deepseek2 model is generated once into
# build/models/ with the DeepSeek-LLM vocabulary from ../shared/fixtures (random weights:
# the text is well-formed UTF-8 from the real vocabulary but meaningless).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
[ -d build ] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null

MODEL=${DS_MODEL:-}
if [ -z "$MODEL" ] && [ -f models/demo/deepseek-v3-demo-q8_0.gguf ]; then
  MODEL=models/demo/deepseek-v3-demo-q8_0.gguf
fi
if [ -z "$MODEL" ]; then
  MODEL=build/models/random-deepseek2-llm-vocab.gguf
  if [ ! -f "$MODEL" ]; then
    mkdir -p build/models
    VOCAB=../shared/fixtures/tokenizers/deepseek-llm/ggml-vocab-deepseek-llm.gguf
    if [ -f "$VOCAB" ]; then
      /usr/bin/python3 tools/make-test-model.py -o "$MODEL" --preset tiny --n-embd 256 \
        --n-layer 4 --n-head 8 --kv-lora-rank 64 --qk-nope 32 --qk-rope 16 --v-head 32 \
        --n-ff 512 --n-ff-exp 128 --type q8_0 --vocab-from "$VOCAB"
    else
      echo "demo: ../shared is absent; generating a model without a tokenizer (token ids only)" >&2
      /usr/bin/python3 tools/make-test-model.py -o "$MODEL" --preset tiny --type q8_0
    fi
  fi
fi
if [ $# -eq 0 ]; then
  if build/examples/ds info -m "$MODEL" --meta | grep -q '"tokenizer.ggml.model"'; then
    set -- -p "The DeepSeek family of language models" -n 48 --temp 0.8 --seed 1
  else
    set -- --tokens 1,2,3,4 -n 32
  fi
fi
echo "model: $MODEL" >&2
exec build/examples/ds generate -m "$MODEL" "$@"
