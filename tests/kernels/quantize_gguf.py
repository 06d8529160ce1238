#!/usr/bin/python3
"""Rewrite chosen tensors of an F32 GGUF into quantized ggml block types, for tests.

    quantize_gguf.py IN.gguf OUT.gguf REF.gguf [--default TYPE] [--map SUBSTR=TYPE,...]
                     [--q4-k-m]

OUT.gguf is IN.gguf with the matrices stored in the chosen types (Q4_0, Q4_1, Q5_0, Q5_1,
Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16 or F32). REF.gguf is the same model with every tensor
in F32 holding exactly the values OUT.gguf dequantizes to (decoded back from the written bytes),
so an F32-only reader (tests/reference/ds2_reference.py) runs on the same weights.

Type choice per tensor: 1-D tensors and the MoE router (ffn_gate_inp) stay F32. Matrices get
--default, then the last --map entry whose SUBSTR is in the name. --q4-k-m applies the DeepSeek
Q4_K_M rules of shared/docs/formats.md §3 first (Q4_K everywhere, Q6_K for output.weight,
attn_v_b and the ffn_down* of the layers where use_more_bits holds). A type whose block does
not divide ne[0] falls back as llama.cpp does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
Q2_K/Q3_K -> Q4_0 (llama.cpp: IQ4_NL), and a legacy type -> F32 if 32 does not divide ne[0].

The quantizers are simple, not optimal (round to nearest with scales from the block ranges);
they only need to produce valid blocks whose values follow the layouts of formats.md §2.3-2.4.
Only numpy is needed; the GGUF container code is tools/gguf_writer.py.
"""
import argparse
import os
import re
import sys
from collections import OrderedDict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gguf_writer as gw  # noqa: E402

# type id -> (name, elements per block, bytes per block)
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
}
BY_NAME = {v[0]: k for k, v in TYPES.items()}
FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "Q2_K": "Q4_0", "Q3_K": "Q4_0"}


# ---- helpers --------------------------------------------------------------------------------

def f16(x):
    """float64 -> (f16 bytes as uint16, the f16 value as float64), round to nearest even."""
    h = np.asarray(x, dtype=np.float64).astype(np.float16)
    if not np.all(np.isfinite(h)):
        raise ValueError("scale overflows f16")
    return h.view(np.uint16), h.astype(np.float64)


def u16_bytes(u):
    """(B,) uint16 -> (B, 2) uint8 little-endian."""
    return np.asarray(u, dtype="<u2").reshape(-1, 1).view(np.uint8)


def f16_at(blk, off):
    return blk[:, off:off + 2].copy().view("<f2").astype(np.float64)[:, 0]


def div0(a, b):
    """a / b, 0 where b == 0."""
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def signed_absmax(x):
    """Along the last axis: the value of largest magnitude (with its sign)."""
    i = np.argmax(np.abs(x), axis=-1)
    return np.take_along_axis(x, i[..., None], axis=-1)[..., 0]


# ---- legacy 32-element blocks (formats.md §2.3) ---------------------------------------------

def pack_nibbles(q):
    """(B, 32) values 0..15 -> (B, 16): low nibble element e, high nibble element e + 16."""
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def pack_qh(q5):
    """(B, 32) values 0..31 -> (B, 4): bit e of the LE u32 = bit 4 of element e."""
    bits = (q5 >> 4).astype(np.uint64)
    h = (bits << np.arange(32, dtype=np.uint64)).sum(axis=1).astype("<u4")
    return h.reshape(-1, 1).view(np.uint8)


def quant_legacy(x, name):
    b = x.reshape(-1, 32).astype(np.float64)
    nb = b.shape[0]
    if name in ("Q4_0", "Q5_0"):
        half = 8 if name == "Q4_0" else 16
        dh, d = f16(signed_absmax(b) / -half)        # the largest |x| maps to -half
        q = np.clip(np.rint(div0(b, d[:, None])) + half, 0, 2 * half - 1).astype(np.uint8)
        parts = [u16_bytes(dh)]
    elif name in ("Q4_1", "Q5_1"):
        top = 15 if name == "Q4_1" else 31
        mh, m = f16(b.min(axis=1))
        dh, d = f16((b.max(axis=1) - m) / top)
        q = np.clip(np.rint(div0(b - m[:, None], d[:, None])), 0, top).astype(np.uint8)
        parts = [u16_bytes(dh), u16_bytes(mh)]
    elif name == "Q8_0":
        dh, d = f16(np.abs(b).max(axis=1) / 127)
        q = np.clip(np.rint(div0(b, d[:, None])), -127, 127).astype(np.int8)
        return np.concatenate([u16_bytes(dh), q.view(np.uint8)], axis=1).reshape(-1)
    else:
        raise ValueError(name)
    if name.startswith("Q5"):
        parts.append(pack_qh(q))
    parts.append(pack_nibbles(q & 15))
    out = np.concatenate(parts, axis=1)
    assert out.shape == (nb, TYPES[BY_NAME[name]][2])
    return out.reshape(-1)


def nibble(qs, e):
    return qs[:, e] & 15 if e < 16 else qs[:, e - 16] >> 4


def dequant_legacy(raw, name):
    bb = TYPES[BY_NAME[name]][2]
    blk = raw.reshape(-1, bb)
    if name == "Q8_0":
        return (f16_at(blk, 0)[:, None] * blk[:, 2:].view(np.int8)).reshape(-1)
    qs_off = {"Q4_0": 2, "Q4_1": 4, "Q5_0": 6, "Q5_1": 8}[name]
    q = np.stack([nibble(blk[:, qs_off:qs_off + 16], e) for e in range(32)], axis=1).astype(np.int64)
    if name.startswith("Q5"):
        h_off = 2 if name == "Q5_0" else 4
        h = blk[:, h_off:h_off + 4].copy().view("<u4")[:, 0].astype(np.int64)
        q |= ((h[:, None] >> np.arange(32)) & 1) << 4
    d = f16_at(blk, 0)[:, None]
    if name == "Q4_0":
        return (d * (q - 8)).reshape(-1)
    if name == "Q5_0":
        return (d * (q - 16)).reshape(-1)
    return (d * q + f16_at(blk, 2)[:, None]).reshape(-1)


# ---- K-quants (formats.md §2.4) ---------------------------------------------------------------

def pack_scales_k(sc, mn):
    """Q4_K/Q5_K: (B, 8) 6-bit scales and mins -> (B, 12) bytes."""
    s = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    for j in range(4):
        s[:, j] = (sc[:, j] & 63) | ((sc[:, j + 4] >> 4) << 6)
        s[:, j + 4] = (mn[:, j] & 63) | ((mn[:, j + 4] >> 4) << 6)
        s[:, j + 8] = (sc[:, j + 4] & 15) | ((mn[:, j + 4] & 15) << 4)
    return s


def unpack_scales_k(s):
    sc = np.zeros((s.shape[0], 8), dtype=np.int64)
    mn = np.zeros_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def pack_scales_q3(sc):
    """Q3_K: (B, 16) signed -32..31 -> (B, 12) bytes."""
    u = (sc + 32).astype(np.uint8)
    s = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    for k in range(16):
        if k < 8:
            s[:, k] |= u[:, k] & 15
        else:
            s[:, k - 8] |= (u[:, k] & 15) << 4
        s[:, 8 + k % 4] |= (u[:, k] >> 4) << (2 * (k // 4))
    return s


def unpack_scales_q3(s):
    sc = np.zeros((s.shape[0], 16), dtype=np.int64)
    for k in range(16):
        low4 = s[:, k] & 15 if k < 8 else s[:, k - 8] >> 4
        high2 = (s[:, 8 + k % 4] >> (2 * (k // 4))) & 3
        sc[:, k] = (low4 | (high2 << 4)).astype(np.int64) - 32
    return sc


def elem_index():
    """h, j4, w for e = 0..255 (formats.md §2.4 helper indices)."""
    e = np.arange(256)
    return e // 128, (e % 128) // 32, e % 32


def quant_k(x, name):
    b = x.reshape(-1, 256).astype(np.float64)
    nb = b.shape[0]
    h, j4, w = elem_index()
    if name in ("Q4_K", "Q5_K"):
        top = 15 if name == "Q4_K" else 31
        g = b.reshape(nb, 8, 32)
        gmin = np.minimum(g.min(axis=2), 0.0)
        gscale = (g.max(axis=2) - gmin) / top
        dh, d = f16(gscale.max(axis=1) / 63)
        mh, dm = f16((-gmin).max(axis=1) / 63)
        sc = np.clip(np.rint(div0(gscale, d[:, None])), 0, 63).astype(np.int64)
        mn = np.clip(np.rint(div0(-gmin, dm[:, None])), 0, 63).astype(np.int64)
        s_eff = d[:, None] * sc
        o_eff = dm[:, None] * mn
        q = np.clip(np.rint(div0(g + o_eff[:, :, None], s_eff[:, :, None])), 0, top)
        q = q.astype(np.uint8).reshape(nb, 256)
        lo, hi = q[:, :] & 15, q >> 4
        qs = np.zeros((nb, 128), dtype=np.uint8)
        for c in range(4):
            qs[:, 32 * c:32 * c + 32] = lo[:, 64 * c:64 * c + 32] | (lo[:, 64 * c + 32:64 * c + 64] << 4)
        parts = [u16_bytes(dh), u16_bytes(mh), pack_scales_k(sc.astype(np.uint8), mn.astype(np.uint8))]
        if name == "Q5_K":
            qh = np.zeros((nb, 32), dtype=np.uint8)
            for j in range(8):
                qh |= (hi[:, 32 * j:32 * j + 32] & 1) << j
            parts.append(qh)
        parts.append(qs)
    elif name in ("Q6_K", "Q3_K"):
        half, top_sc = (32, 127) if name == "Q6_K" else (4, 31)
        g = b.reshape(nb, 16, 16)
        scale = signed_absmax(g) / -half              # the largest |x| maps to -half
        dh, d = f16(np.abs(scale).max(axis=1) / top_sc)
        sc = np.clip(np.rint(div0(scale, d[:, None])), -top_sc - 1, top_sc).astype(np.int64)
        q = np.clip(np.rint(div0(g, (d[:, None] * sc)[:, :, None])), -half, half - 1)
        q = q.astype(np.int64).reshape(nb, 256)
        if name == "Q6_K":
            qu = (q + 32).astype(np.uint8)
            ql = np.zeros((nb, 128), dtype=np.uint8)
            qh = np.zeros((nb, 64), dtype=np.uint8)
            for e in range(256):
                ql[:, 64 * h[e] + w[e] + 32 * (j4[e] & 1)] |= (qu[:, e] & 15) << (4 if j4[e] >= 2 else 0)
                qh[:, 32 * h[e] + w[e]] |= (qu[:, e] >> 4) << (2 * j4[e])
            parts = [ql, qh, sc.astype(np.int8).view(np.uint8), u16_bytes(dh)]
        else:
            qu = (q + 4).astype(np.uint8)                # low2 + 4*hbit
            hm = np.zeros((nb, 32), dtype=np.uint8)
            qs = np.zeros((nb, 64), dtype=np.uint8)
            for e in range(256):
                qs[:, 32 * h[e] + w[e]] |= (qu[:, e] & 3) << (2 * j4[e])
                hm[:, w[e]] |= (qu[:, e] >> 2) << (e // 32)
            parts = [hm, qs, pack_scales_q3(sc), u16_bytes(dh)]
    elif name == "Q2_K":
        g = b.reshape(nb, 16, 16)
        gmin = np.minimum(g.min(axis=2), 0.0)
        gscale = (g.max(axis=2) - gmin) / 3
        dh, d = f16(gscale.max(axis=1) / 15)
        mh, dm = f16((-gmin).max(axis=1) / 15)
        sc = np.clip(np.rint(div0(gscale, d[:, None])), 0, 15).astype(np.uint8)
        mn = np.clip(np.rint(div0(-gmin, dm[:, None])), 0, 15).astype(np.uint8)
        q = np.clip(np.rint(div0(g + (dm[:, None] * mn)[:, :, None],
                                 (d[:, None] * sc)[:, :, None])), 0, 3)
        q = q.astype(np.uint8).reshape(nb, 256)
        qs = np.zeros((nb, 64), dtype=np.uint8)
        for e in range(256):
            qs[:, 32 * h[e] + w[e]] |= q[:, e] << (2 * j4[e])
        parts = [sc | (mn << 4), qs, u16_bytes(dh), u16_bytes(mh)]
    else:
        raise ValueError(name)
    out = np.concatenate(parts, axis=1)
    assert out.shape == (nb, TYPES[BY_NAME[name]][2]), (name, out.shape)
    return out.reshape(-1)


def dequant_k(raw, name):
    bb = TYPES[BY_NAME[name]][2]
    blk = raw.reshape(-1, bb)
    h, j4, w = elem_index()
    e = np.arange(256)
    if name in ("Q4_K", "Q5_K"):
        sc, mn = unpack_scales_k(blk[:, 4:16])
        qs = blk[:, 16:144] if name == "Q4_K" else blk[:, 48:176]
        c = e // 64
        byte = qs[:, 32 * c + w].astype(np.int64)
        q = np.where((e % 64) < 32, byte & 15, byte >> 4)
        j = e // 32
        if name == "Q5_K":
            q = q + 16 * ((blk[:, 16 + w].astype(np.int64) >> j) & 1)
        return (f16_at(blk, 0)[:, None] * sc[:, j] * q - f16_at(blk, 2)[:, None] * mn[:, j]).reshape(-1)
    if name == "Q6_K":
        lo = blk[:, 64 * h + w + 32 * (j4 & 1)].astype(np.int64)
        lo = np.where(j4 < 2, lo & 15, lo >> 4)
        hi = (blk[:, 128 + 32 * h + w].astype(np.int64) >> (2 * j4)) & 3
        q = (lo | (hi << 4)) - 32
        sc = blk[:, 192:208].view(np.int8).astype(np.int64)[:, e // 16]
        return (f16_at(blk, 208)[:, None] * sc * q).reshape(-1)
    if name == "Q2_K":
        q = (blk[:, 16 + 32 * h + w].astype(np.int64) >> (2 * j4)) & 3
        sc = blk[:, e // 16].astype(np.int64)
        return (f16_at(blk, 80)[:, None] * (sc & 15) * q - f16_at(blk, 82)[:, None] * (sc >> 4)).reshape(-1)
    if name == "Q3_K":
        low2 = (blk[:, 32 + 32 * h + w].astype(np.int64) >> (2 * j4)) & 3
        hbit = (blk[:, w].astype(np.int64) >> (e // 32)) & 1
        q = low2 - np.where(hbit == 1, 0, 4)
        sc = unpack_scales_q3(blk[:, 96:108])[:, e // 16]
        return (f16_at(blk, 108)[:, None] * sc * q).reshape(-1)
    raise ValueError(name)


def quantize(x, name):
    """float32 array -> (storage bytes, dequantized float32 values decoded from those bytes)."""
    if name == "F32":
        return np.ascontiguousarray(x, dtype="<f4").view(np.uint8).reshape(-1), x.astype(np.float32)
    if name == "F16":
        h = x.astype("<f2")
        return h.view(np.uint8).reshape(-1), h.astype(np.float32)
    raw = quant_k(x, name) if name.endswith("_K") else quant_legacy(x, name)
    deq = dequant_k(raw, name) if name.endswith("_K") else dequant_legacy(raw, name)
    # float64 -> float32 rounds once: the exact value, as the library computes it in f32
    return raw, deq.astype(np.float32)


# ---- type selection -------------------------------------------------------------------------

def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def choose(name, ne, default, type_map, q4km, n_layer):
    if len(ne) == 1 or "ffn_gate_inp" in name:
        return "F32"
    t = default
    if q4km:
        t = "Q4_K"
        m = re.match(r"blk\.(\d+)\.", name)
        if name == "output.weight" or "attn_v_b" in name:
            t = "Q6_K"
        elif "ffn_down" in name and m and use_more_bits(int(m.group(1)), n_layer):
            t = "Q6_K"
    for sub, ty in type_map:
        if sub in name:
            t = ty
    while TYPES[BY_NAME[t]][1] > 1 and ne[0] % TYPES[BY_NAME[t]][1]:
        t = FALLBACK.get(t, "F32")
    return t


class _Raw:
    def __init__(self, data):
        self.data = data


class RawWriter(gw.GGUFWriter):
    """tools/gguf_writer.GGUFWriter that also takes already-encoded tensor bytes."""

    def add_raw(self, name, ne, ggml_type, data):
        nbytes = TYPES[ggml_type][2] * (ne[0] // TYPES[ggml_type][1]) * int(np.prod(ne[1:], dtype=np.int64))
        assert data.size == nbytes, (name, data.size, nbytes)
        self.tensors[name] = gw._TensorEntry(name, [int(d) for d in ne], ggml_type, _Raw(data), nbytes)

    def _write_tensor(self, f, pool, t):
        if not isinstance(t.source, _Raw):
            return super()._write_tensor(f, pool, t)
        f.write(memoryview(np.ascontiguousarray(t.source.data)).cast("B"))
        pad = gw.align_up(t.nbytes, self.alignment) - t.nbytes
        if pad:
            f.write(b"\0" * pad)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inp")
    p.add_argument("out")
    p.add_argument("ref")
    p.add_argument("--default", default="F32", help="type of the matrices (default F32)")
    p.add_argument("--map", default="", help="SUBSTR=TYPE,... overrides (last match wins)")
    p.add_argument("--q4-k-m", action="store_true", help="DeepSeek Q4_K_M rules first")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    type_map = []
    for item in filter(None, (s.strip() for s in a.map.split(","))):
        sub, ty = item.rsplit("=", 1)
        type_map.append((sub, ty.upper()))
    for _, ty in type_map + [(None, a.default.upper())]:
        if ty not in BY_NAME:
            p.error(f"unknown type {ty}")

    r = gw.GGUFReader(a.inp)
    n_layer = int(r.get(f"{r.get('general.architecture')}.block_count", 0))
    out = RawWriter(a.out, alignment=r.alignment, threads=1)
    ref = gw.GGUFWriter(a.ref, alignment=r.alignment, threads=1)
    out.kv = OrderedDict(r.kv)
    ref.kv = OrderedDict(r.kv)
    counts = {}
    for name, info in r.tensors.items():
        x = r.tensor_f32(name).reshape(-1)
        t = choose(name, info.ne, a.default.upper(), type_map, a.q4_k_m, n_layer)
        raw, deq = quantize(x, t)
        out.add_raw(name, info.ne, BY_NAME[t], raw)
        ref.add_tensor(name, info.ne, gw.GGMLType.F32, deq)
        counts[t] = counts.get(t, 0) + 1
        if a.verbose:
            err = float(np.max(np.abs(deq - x))) if x.size else 0.0
            print(f"{name:32s} {str(list(info.ne)):16s} {t:5s} max|err| {err:.3g}")
    out.write()
    ref.write()
    print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
