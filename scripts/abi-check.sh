#!/usr/bin/env bash
# ABI guard: compare the built libdeepseek.so with the committed baseline abi/libdeepseek.abi.
# Added functions pass. Any removed or changed function, variable or type fails unless the
# soname was bumped. Growing a parameter/info struct at its end is compatible by our struct_size
# convention, but it is still reported here on purpose: make such a change deliberately,
# regenerate the baseline in the same commit (scripts/abi-check.sh BUILD --update) and note it
# under "API/ABI" in CHANGELOG.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
LIB=$(readlink -f "$B/libdeepseek.so")
BASE=abi/libdeepseek.abi
if [ "${2:-}" = "--update" ]; then
  abidw --headers-dir include/deepseek --headers-dir "$B/include/deepseek" --no-corpus-path --out-file "$BASE" "$LIB"
  echo "abi: baseline written to $BASE"
  exit 0
fi
[ -f "$BASE" ] || { echo "abi: no baseline $BASE"; exit 1; }
base_soname=$(grep -o "soname='[^']*'" "$BASE" | head -1 | cut -d"'" -f2)
cur_soname=$(readelf -d "$LIB" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
set +e
abidiff --headers-dir2 include/deepseek --headers-dir2 "$B/include/deepseek" \
  "$BASE" "$LIB" > "$B/abidiff.txt"
rc=$?
set -e
cat "$B/abidiff.txt"
# abidiff exit status bits: 1 error, 2 usage, 4 ABI change, 8 incompatible ABI change
if [ $((rc & 3)) -ne 0 ]; then echo "abi: abidiff failed to run (status $rc)"; exit 1; fi
# Added functions are compatible; anything removed or changed is not.
removed_or_changed=$(grep -E 'changes summary:' "$B/abidiff.txt" \
  | grep -Eo '[0-9]+ (Removed|Changed)' | awk '{s += $1} END {print s + 0}' || true)
if [ $((rc & 8)) -ne 0 ] || [ "$removed_or_changed" -gt 0 ]; then
  if [ "$base_soname" != "$cur_soname" ]; then
    echo "abi: incompatible change, soname bumped ($base_soname -> $cur_soname): accepted"
    exit 0
  fi
  echo "abi: INCOMPATIBLE change without a soname bump ($cur_soname)"
  exit 1
fi
echo "abi: compatible (status $rc; soname $cur_soname)"
