#!/usr/bin/python3
"""Print one closing line 'N passed, N failed, N skipped' over the Meson test logs of the
given build directories (meson-logs/testlog.json: one JSON object per test)."""
import json
import sys
from pathlib import Path

passed = failed = skipped = 0
for b in sys.argv[1:]:
    log = Path(b) / "meson-logs" / "testlog.json"
    if not log.exists():
        continue
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
