#!/usr/bin/python3
"""Byte-level BPE trainer/encoder for the libdeepseek demo model (formats.md §5).

* Byte <-> unicode table: GPT-2 `bytes_to_unicode` (formats.md §5.3).
* Pre-tokenizer: the `deepseek-v3` split sequence (formats.md §5.7), written for Python's `re`:
  \\p{L}, \\p{M}, \\p{N}, \\p{P}, \\p{S} are expanded into explicit code-point classes built
  from `unicodedata` general categories (so they are exact for the Unicode version of this
  Python), `\\s` is the explicit whitespace set of formats.md §5.7, and `~` is treated as a
  symbol (HF semantics).  The training corpus is pure ASCII and contains no `~`, so the
  splits are the ones the C library's `deepseek-v3` pre-tokenizer produces (checked with
  `ds tokenize` when available).
* Token ids: 0 BOS `<｜begin▁of▁sentence｜>`, 1 EOS `<｜end▁of▁sentence｜>`, 2 `<｜User｜>`,
  3 `<｜Assistant｜>`, 4 `<think>`, 5 `</think>` (all CONTROL / special), 6..261 the 256 byte
  tokens in byte order, then one token per merge in rank order.
* Merge training: classic BPE over pre-token frequencies; at each step the most frequent
  adjacent pair wins, ties broken by the smaller (left, right) string pair.  Deterministic.
"""

import json
import os
import re
import sys
import unicodedata
from collections import Counter, defaultdict

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
USER = "<\uff5cUser\uff5c>"
ASSISTANT = "<\uff5cAssistant\uff5c>"
THINK = "<think>"
END_THINK = "</think>"
SPECIALS = [BOS, EOS, USER, ASSISTANT, THINK, END_THINK]
N_SPECIAL = len(SPECIALS)
PRE_NAME = "deepseek-v3"

TT_NORMAL = 1
TT_CONTROL = 3


def bytes_to_unicode():
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {}
    n = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + n)
            n += 1
    return table


BYTE2U = bytes_to_unicode()
U2BYTE = {v: k for k, v in BYTE2U.items()}


# ----------------------------------------------------------------------------- pre-tokenizer

def _ranges(pred):
    out = []
    start = None
    for cp in range(0x110000):
        ok = pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


def _esc(cp):
    return "\\U%08x" % cp


def _cls(ranges):
    return "".join(_esc(a) if a == b else _esc(a) + "-" + _esc(b) for a, b in ranges)


_CAT_CACHE = {}


def _cat_class(major):
    if major not in _CAT_CACHE:
        _CAT_CACHE[major] = _cls(_ranges(lambda cp: unicodedata.category(chr(cp))[0] == major))
    return _CAT_CACHE[major]


WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _build_regexes():
    L, M, N, P, S = (_cat_class(c) for c in "LMNPS")
    s = "[" + WS + "]"
    ns = "[^" + WS + "]"
    r0 = "[" + N + "]{1,3}"
    r1 = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
    ascii_punct = re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    r2 = ("[" + ascii_punct + "][A-Za-z]+"
          "|[^\r\n" + L + P + S + "]?[" + L + M + "]+"
          "| ?[" + P + S + "]+[\r\n]*"
          "|" + s + "*[\r\n]+"
          "|" + s + "+(?!" + ns + ")"
          "|" + s + "+")
    return [re.compile(r0), re.compile(r1), re.compile(r2)]


_REGEXES = None


def _split_isolated(rx, piece):
    out = []
    pos = 0
    for m in rx.finditer(piece):
        a, b = m.span()
        if a == b:
            continue
        if a > pos:
            out.append(piece[pos:a])
        out.append(piece[a:b])
        pos = b
    if pos < len(piece):
        out.append(piece[pos:])
    return out


def pretokenize(text):
    """deepseek-v3 pre-tokenization of raw text (no special tokens) -> list of str pieces."""
    global _REGEXES
    if _REGEXES is None:
        _REGEXES = _build_regexes()
    pieces = [text] if text else []
    for rx in _REGEXES:
        nxt = []
        for p in pieces:
            nxt.extend(_split_isolated(rx, p))
        pieces = nxt
    return pieces


def to_bytelevel(piece):
    return "".join(BYTE2U[b] for b in piece.encode("utf-8"))


# ----------------------------------------------------------------------------- training

def train(text, vocab_size, log=None):
    """Return the merge list [(a, b), ...] (byte-level strings) for a total vocabulary
    of `vocab_size` = specials + 256 bytes + merges."""
    n_merges = vocab_size - N_SPECIAL - 256
    counts = Counter(to_bytelevel(p) for p in pretokenize(text))
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for i, w in enumerate(words):
        f = freqs[i]
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += f
            where[(a, b)].add(i)
    merges = []
    import heapq
    # max-heap with lazy invalidation: (-count, a, b)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)
    while len(merges) < n_merges and heap:
        negc, a, b = heapq.heappop(heap)
        c = pair_count.get((a, b), 0)
        if c <= 0 or -negc != c:
            continue
        merges.append((a, b))
        ab = a + b
        touched = where.pop((a, b), set())
        del pair_count[(a, b)]
        changed = set()
        for i in touched:
            w = words[i]
            f = freqs[i]
            # remove old pairs of this word
            for x, y in zip(w, w[1:]):
                if (x, y) != (a, b):
                    pair_count[(x, y)] -= f
                    changed.add((x, y))
            j = 0
            nw = []
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    nw.append(ab)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for x, y in zip(nw, nw[1:]):
                pair_count[(x, y)] += f
                where[(x, y)].add(i)
                changed.add((x, y))
        for pr in changed:
            c2 = pair_count.get(pr, 0)
            if c2 > 0:
                heapq.heappush(heap, (-c2, pr[0], pr[1]))
            elif pr in pair_count:
                del pair_count[pr]
        if log and len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges, last {a!r}+{b!r} ({c})")
    return merges


# ----------------------------------------------------------------------------- tokenizer

class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.tokens = list(SPECIALS) + [BYTE2U[b] for b in range(256)] + \
            [a + b for a, b in self.merges]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("duplicate token strings")
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.cache = {}
        self.bos_id, self.eos_id = 0, 1

    @property
    def n_vocab(self):
        return len(self.tokens)

    def token_types(self):
        return [TT_CONTROL] * N_SPECIAL + [TT_NORMAL] * (self.n_vocab - N_SPECIAL)

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        sym = list(word)
        while len(sym) > 1:
            best = None
            for k in range(len(sym) - 1):
                r = self.ranks.get((sym[k], sym[k + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, k)
            if best is None:
                break
            k = best[1]
            sym[k:k + 2] = [sym[k] + sym[k + 1]]
        ids = [self.ids[s] for s in sym]
        self.cache[word] = ids
        return ids

    def encode(self, text, bos=False, specials=True):
        out = [self.bos_id] if bos else []
        parts = [text]
        if specials:
            rx = "(" + "|".join(re.escape(s) for s in sorted(SPECIALS, key=len, reverse=True)) + ")"
            parts = re.split(rx, text)
        for part in parts:
            if not part:
                continue
            if specials and part in self.ids and part in SPECIALS:
                out.append(self.ids[part])
                continue
            for p in pretokenize(part):
                out.extend(self._bpe(to_bytelevel(p)))
        return out

    def decode(self, ids, specials=False):
        bs = bytearray()
        for i in ids:
            t = self.tokens[i]
            if i < N_SPECIAL:
                if specials:
                    bs += t.encode()
                continue
            bs += bytes(U2BYTE[c] for c in t)
        return bs.decode("utf-8", errors="replace")

    # -------------------------------------------------------------- serialisation
    def save_merges(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump([a + " " + b for a, b in self.merges], f, ensure_ascii=False)

    @classmethod
    def load_merges(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls([tuple(m.split(" ", 1)) for m in json.load(f)])

    def chat_template(self):
        here = os.path.dirname(os.path.abspath(__file__))
        cand = [os.path.join(here, "..", "..", "..", "shared", "fixtures", "tokenizers",
                             "deepseek-v3", "tokenizer_config.json"),
                "/work/shared/fixtures/tokenizers/deepseek-v3/tokenizer_config.json"]
        for c in cand:
            if os.path.isfile(c):
                with open(c, encoding="utf-8") as f:
                    return json.load(f)["chat_template"]
        raise FileNotFoundError("deepseek-v3 tokenizer_config.json fixture (chat template)")

    def gguf_metadata(self, w, gw):
        """Write tokenizer.* keys into a gguf_writer.GGUFWriter."""
        T = gw.GGUFValueType
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", PRE_NAME)
        w.add_array("tokenizer.ggml.tokens", T.STRING, self.tokens)
        w.add_array("tokenizer.ggml.token_type", T.INT32, self.token_types())
        w.add_array("tokenizer.ggml.merges", T.STRING, [a + " " + b for a, b in self.merges])
        w.add_uint32("tokenizer.ggml.bos_token_id", self.bos_id)
        w.add_uint32("tokenizer.ggml.eos_token_id", self.eos_id)
        w.add_uint32("tokenizer.ggml.padding_token_id", self.eos_id)
        w.add_bool("tokenizer.ggml.add_bos_token", True)
        w.add_bool("tokenizer.ggml.add_eos_token", False)
        w.add_string("tokenizer.chat_template", self.chat_template())

    def tokenizer_json(self):
        split = lambda rx: {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated",
                            "invert": False}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}
                             for i, s in enumerate(SPECIALS)],
            "normalizer": {"type": "Sequence", "normalizers": []},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                split("\\p{N}{1,3}"),
                split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
                split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
                      "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
                      "\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False}]},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                               "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False,
                      "vocab": {t: i for i, t in enumerate(self.tokens)},
                      "merges": [a + " " + b for a, b in self.merges]},
        }

    def tokenizer_config_json(self):
        tok = lambda s: {"__type": "AddedToken", "content": s, "lstrip": False,
                         "normalized": False, "rstrip": False, "single_word": False}
        return {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": tok(BOS),
            "eos_token": tok(EOS),
            "pad_token": tok(EOS),
            "unk_token": None,
            "clean_up_tokenization_spaces": False,
            "legacy": True,
            "model_max_length": 1024,
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizerFast",
            "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False,
                                              "rstrip": False, "single_word": False,
                                              "special": True}
                                     for i, s in enumerate(SPECIALS)},
            "chat_template": self.chat_template(),
        }

    def write_hf(self, d):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(self.tokenizer_json(), f, ensure_ascii=False, indent=1)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(self.tokenizer_config_json(), f, ensure_ascii=False, indent=2)


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="train a byte-level BPE on a text file")
    p.add_argument("--text", required=True)
    p.add_argument("--vocab", type=int, default=3072)
    p.add_argument("--out", required=True, help="merges JSON output")
    a = p.parse_args(argv)
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    merges = train(text, a.vocab, log=lambda m: print(m, file=sys.stderr))
    Tokenizer(merges).save_merges(a.out)


if __name__ == "__main__":
    main()
