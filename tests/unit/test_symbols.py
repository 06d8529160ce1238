#!/usr/bin/python3
"""Check the exported symbol set of libdeepseek.so.

usage: test_symbols.py LIBDEEPSEEK.so INCLUDE_DIR [EXPECTED_SONAME]

 - `nm -D --defined-only` lists only ds_* symbols (plus the version node, an absolute symbol
   named like DEEPSEEK_0);
 - every DS_API function declared in INCLUDE_DIR/*.h is exported, and every exported ds_*
   symbol is declared DS_API in some header;
 - `readelf -d` shows SONAME EXPECTED_SONAME (default libdeepseek.so.0).
Exit status 0 on success, 1 with a list of problems otherwise.
"""

import glob
import os
import re
import subprocess
import sys


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def declared_api(include_dir):
    """Names of the functions declared with DS_API in the public headers."""
    names = {}
    headers = sorted(glob.glob(os.path.join(include_dir, "*.h")))
    for h in headers:
        with open(h, encoding="utf-8") as f:
            text = strip_comments(f.read())
        # drop the preprocessor lines that define DS_API itself
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        for decl in re.finditer(r"\bDS_API\b([^;{]*?)\(", text, flags=re.S):
            m = re.search(r"([A-Za-z_]\w*)\s*$", decl.group(1))
            if m:
                names.setdefault(m.group(1), os.path.basename(h))
    return names, headers


def exported(lib):
    """(name, type, version) of every defined dynamic symbol."""
    out = run(["nm", "-D", "--defined-only", "--with-symbol-versions", lib])
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        typ, name = parts[-2], parts[-1]
        version = ""
        if "@" in name:
            name, _, version = name.partition("@")
            version = version.lstrip("@")
        syms.append((name, typ, version))
    return syms


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    lib, include_dir = argv[1], argv[2]
    want_soname = argv[3] if len(argv) > 3 else "libdeepseek.so.0"
    problems = []

    api, headers = declared_api(include_dir)
    if not headers or not api:
        problems.append(f"no DS_API declarations found in {include_dir}")

    syms = exported(lib)
    version_nodes = set()
    exported_ds = set()
    for name, typ, version in syms:
        if typ == "A" and re.fullmatch(r"DEEPSEEK_\d+", name):
            version_nodes.add(name)
            continue
        if not name.startswith("ds_"):
            problems.append(f"exported symbol without the ds_ prefix: {name} ({typ})")
            continue
        if typ not in ("T", "W", "i"):
            problems.append(f"exported ds_ symbol that is not a function: {name} ({typ})")
        exported_ds.add(name)
        if version and not re.fullmatch(r"DEEPSEEK_\d+", version):
            problems.append(f"{name} has version {version}, expected DEEPSEEK_<abi>")
    if not version_nodes:
        problems.append("no DEEPSEEK_<abi> version node in the dynamic symbol table")

    for name in sorted(set(api) - exported_ds):
        problems.append(f"declared DS_API in {api[name]} but not exported: {name}")
    for name in sorted(exported_ds - set(api)):
        problems.append(f"exported but not declared DS_API in any public header: {name}")

    dyn = run(["readelf", "-d", lib])
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dyn)
    if not m:
        problems.append("no SONAME in the dynamic section")
    elif m.group(1) != want_soname:
        problems.append(f"SONAME is {m.group(1)}, expected {want_soname}")

    print(f"{len(exported_ds)} ds_ symbols exported, {len(api)} DS_API declarations in "
          f"{', '.join(os.path.basename(h) for h in headers)}; version nodes: "
          f"{', '.join(sorted(version_nodes)) or 'none'}")
    if problems:
        for p in problems:
            print("FAIL:", p)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
