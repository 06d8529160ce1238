#!/usr/bin/env bash
# The whole test suite of libdeepseek, as CI runs it:
#   1. build (debugoptimized) and run every Meson test (cmocka suites, Python suites);
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. a bounded libFuzzer run of every fuzz target (clang);
#   4. the ABI check against the committed baseline (abidiff).
# Usage: scripts/run-tests.sh [--quick]   (--quick: step 1 only)
# Environment: DS_FUZZ_SECONDS (default 60 per target), DS_SKIP_SETUP=1 to skip apt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ "${DS_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup-debian.sh

JOBS=$(nproc)
RESULTS=()
FAILED=0
export PYTHONDONTWRITEBYTECODE=1

step() { echo; echo "=== $*"; }

run_meson_suite() {  # builddir label [meson test args]
  local b=$1 label=$2
  shift 2
  if meson test -C "$b" --print-errorlogs --num-processes 1 "$@"; then
    RESULTS+=("$label: ok")
  else
    RESULTS+=("$label: FAILED"); FAILED=1
  fi
}

step "build (debugoptimized)"
[ -d build ] || meson setup build --buildtype=debugoptimized
ninja -C build -j"$JOBS"

step "meson test"
run_meson_suite build "tests"

if [ $QUICK = 0 ]; then
  step "AddressSanitizer + UndefinedBehaviorSanitizer"
  [ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-asan -j"$JOBS"
  # Python suites load the library into /usr/bin/python3, which is not built with the
  # sanitizer runtime: they run in the normal build only (the C programs they drive do run here).
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export DS_SANITIZER_BUILD=1
  run_meson_suite build-asan "sanitizers" --no-suite python
  unset ASAN_OPTIONS UBSAN_OPTIONS DS_SANITIZER_BUILD

  step "fuzz (libFuzzer, ${DS_FUZZ_SECONDS:-60}s per target)"
  [ -d build-fuzz ] || CC=clang CXX=clang++ meson setup build-fuzz --buildtype=debugoptimized -Dfuzz=true -Dtests=false -Dopenmp=disabled
  ninja -C build-fuzz -j"$JOBS"
  for t in build-fuzz/fuzz/fuzz-*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    corpus=$(mktemp -d)
    case $name in
      fuzz-gguf) /usr/bin/python3 fuzz/make_corpus.py "$corpus" >/dev/null ;;
      fuzz-tokenizer)
        export DS_FUZZ_VOCAB=$ROOT/../shared/fixtures/tokenizers/deepseek-llm/ggml-vocab-deepseek-llm.gguf
        if [ ! -f "$DS_FUZZ_VOCAB" ]; then
          echo "fuzz $name: SKIPPED (../shared is absent)"; RESULTS+=("fuzz $name: skipped"); continue
        fi
        printf 'Hello, world! 你好 <｜User｜> 123 \xf0\x9f\x98\x80' > "$corpus/seed1" ;;
    esac
    if "$t" -max_total_time="${DS_FUZZ_SECONDS:-60}" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 "$corpus" >"build-fuzz/$name.log" 2>&1; then
      RESULTS+=("fuzz $name: ok ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "build-fuzz/$name.log" | grep -Eo '[0-9]+$' || echo '?') runs)")
    else
      tail -40 "build-fuzz/$name.log"
      RESULTS+=("fuzz $name: FAILED"); FAILED=1
    fi
    rm -rf "$corpus"
  done

  step "ABI check (abidiff against abi/libdeepseek.abi)"
  if bash scripts/abi-check.sh build; then
    RESULTS+=("abi: ok")
  else
    RESULTS+=("abi: FAILED"); FAILED=1
  fi
fi

step "summary"
printf '%s\n' "${RESULTS[@]}"
/usr/bin/python3 scripts/test-summary.py build ${QUICK:+} $( [ $QUICK = 0 ] && echo build-asan )
exit $FAILED
