#!/usr/bin/python3
"""Independent NumPy reference of the `deepseek2` forward pass (DeepSeek-V2, V2-Lite, V3, R1).

Written from /work/shared/docs/deepseek-architectures.md (section numbers in the comments,
"arch §x") and /work/shared/docs/formats.md ("fmt §x"), not from any existing engine.

Purpose: give the tests a *tight* oracle for the C library's logits.
  * Every activation is float64; weights are dequantized to float32 exactly as stored and then
    widened to float64 (the widening is exact).
  * Attention uses the NAIVE MLA form (arch §2.2): k_nope and v are decompressed per head from
    kv_b and attended with a causal softmax.  The C library uses the absorbed form, so the two
    implementations share no attention arithmetic.
  * Logits are produced for every position of the token sequence (prefill, positions 0..T-1).

Usage:
  /usr/bin/python3 tests/reference/ds2_reference.py MODEL.gguf --tokens 1,2,3 \
      [--out LOGITS.npy] [--json]

Only numpy and the standard library are used.
"""

import argparse
import json
import math
import mmap
import struct
import sys

import numpy as np

# ================================================================================================
# Part 1: a small GGUF reader (fmt §1, §2.1-2.3)
# ================================================================================================

GGUF_MAGIC = b"GGUF"

# fmt §1.2: metadata value types
GGUF_UINT8, GGUF_INT8, GGUF_UINT16, GGUF_INT16 = 0, 1, 2, 3
GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32, GGUF_BOOL = 4, 5, 6, 7
GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64, GGUF_FLOAT64 = 8, 9, 10, 11, 12

# fixed-size scalar metadata types: struct format (little-endian) and numpy dtype
_SCALAR_FMT = {
    GGUF_UINT8: ("<B", "<u1"), GGUF_INT8: ("<b", "<i1"),
    GGUF_UINT16: ("<H", "<u2"), GGUF_INT16: ("<h", "<i2"),
    GGUF_UINT32: ("<I", "<u4"), GGUF_INT32: ("<i", "<i4"),
    GGUF_FLOAT32: ("<f", "<f4"), GGUF_BOOL: ("<B", "<u1"),
    GGUF_UINT64: ("<Q", "<u8"), GGUF_INT64: ("<q", "<i8"),
    GGUF_FLOAT64: ("<d", "<f8"),
}

# fmt §2.1: ggml tensor types -> (name, elements per block, bytes per block).
# All types are listed so that any valid file can be *parsed*; only F32/F16/BF16/Q8_0
# can be *dequantized* by this reference.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
}
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30

# fmt §2.3: Q8_0 block = f16 scale d, then 32 x int8
_Q8_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (32,))])
assert _Q8_0_BLOCK.itemsize == 34


class GGUFError(Exception):
    pass


class GGUFTensorInfo:
    """fmt §1.4: one tensor record.  `ne` is in ggml order (ne[0] fastest)."""

    def __init__(self, name, ne, ggml_type, offset):
        if ggml_type not in GGML_TYPES:
            raise GGUFError(f"tensor {name!r}: unknown or removed ggml type id {ggml_type}")
        self.name = name
        self.ne = tuple(int(n) for n in ne)
        self.type = ggml_type
        self.offset = offset  # relative to the data section
        tname, block, block_bytes = GGML_TYPES[ggml_type]
        self.type_name = tname
        if self.ne and self.ne[0] % block != 0:
            raise GGUFError(f"tensor {name!r}: ne[0]={self.ne[0]} not a multiple of the "
                            f"{tname} block size {block}")
        n_rows = 1
        for n in self.ne[1:]:
            n_rows *= n
        self.row_bytes = (self.ne[0] // block) * block_bytes if self.ne else block_bytes
        self.nbytes = self.row_bytes * n_rows

    @property
    def shape(self):
        """NumPy shape: the reverse of ggml `ne` (ne={in,out} -> (out,in))."""
        return tuple(reversed(self.ne))

    def __repr__(self):
        return f"GGUFTensorInfo({self.name!r}, ne={self.ne}, {self.type_name})"


class GGUFReader:
    """Reads a (single-file, little-endian, v2/v3) GGUF: metadata, tensor infos, tensor data."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = memoryview(self._mm)
        self._pos = 0
        self.metadata = {}
        self.metadata_types = {}
        self.tensors = {}  # name -> GGUFTensorInfo, in file order
        self._parse()

    # --- low-level cursor helpers ----------------------------------------------------------
    def _need(self, n):
        if n < 0 or self._pos + n > len(self._buf):
            raise GGUFError(f"{self.path}: truncated file (need {n} bytes at offset {self._pos})")

    def _unpack(self, fmt):
        size = struct.calcsize(fmt)
        self._need(size)
        (v,) = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += size
        return v

    def _string(self):
        n = self._unpack("<Q")
        self._need(n)
        raw = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return raw.decode("utf-8", errors="surrogateescape")

    def _value(self, vtype):
        if vtype in _SCALAR_FMT:
            v = self._unpack(_SCALAR_FMT[vtype][0])
            return bool(v) if vtype == GGUF_BOOL else v  # fmt §1.2: nonzero = true
        if vtype == GGUF_STRING:
            return self._string()
        if vtype == GGUF_ARRAY:
            etype = self._unpack("<i")
            count = self._unpack("<Q")
            if etype == GGUF_ARRAY:
                raise GGUFError("nested GGUF arrays are not supported")
            if etype in _SCALAR_FMT:  # packed run of fixed-size elements
                dt = np.dtype(_SCALAR_FMT[etype][1])
                self._need(count * dt.itemsize)
                arr = np.frombuffer(self._buf, dtype=dt, count=count, offset=self._pos)
                self._pos += count * dt.itemsize
                return [bool(x) for x in arr] if etype == GGUF_BOOL else arr.tolist()
            if etype == GGUF_STRING:
                self._need(count * 8)
                return [self._string() for _ in range(count)]
            raise GGUFError(f"unknown GGUF array element type {etype}")
        raise GGUFError(f"unknown GGUF metadata value type {vtype}")

    # --- fmt §1.1: header, KVs, tensor infos, aligned data start ----------------------------
    def _parse(self):
        self._need(4)
        if bytes(self._buf[0:4]) != GGUF_MAGIC:
            raise GGUFError(f"{self.path}: not a GGUF file (bad magic)")
        self._pos = 4
        version = self._unpack("<I")
        if version == 0x03000000 or version == 0x02000000:
            raise GGUFError(f"{self.path}: big-endian GGUF is not supported")
        if version not in (2, 3):
            raise GGUFError(f"{self.path}: unsupported GGUF version {version}")
        self.version = version
        n_tensors = self._unpack("<Q")
        n_kv = self._unpack("<Q")
        if n_kv * 13 > len(self._buf) or n_tensors * 24 > len(self._buf):
            raise GGUFError(f"{self.path}: implausible kv/tensor counts")

        for _ in range(n_kv):
            key = self._string()
            vtype = self._unpack("<i")
            if key in self.metadata:
                raise GGUFError(f"duplicate metadata key {key!r}")
            self.metadata[key] = self._value(vtype)
            self.metadata_types[key] = vtype

        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._unpack("<I")
            if n_dims > 4:
                raise GGUFError(f"tensor {name!r}: n_dims={n_dims} > 4")
            ne = [self._unpack("<Q") for _ in range(n_dims)]
            ttype = self._unpack("<i")
            offset = self._unpack("<Q")
            if name in self.tensors:
                raise GGUFError(f"duplicate tensor name {name!r}")
            self.tensors[name] = GGUFTensorInfo(name, ne, ttype, offset)

        # fmt §1.5: alignment (default 32), data section starts at the next multiple
        align = self.metadata.get("general.alignment", 32)
        if not isinstance(align, int) or align <= 0 or (align & (align - 1)) != 0:
            raise GGUFError(f"general.alignment={align!r} is not a positive power of two")
        self.alignment = align
        self.data_start = (self._pos + align - 1) // align * align

        for t in self.tensors.values():
            if t.offset % align != 0:
                raise GGUFError(f"tensor {t.name!r}: offset {t.offset} not aligned to {align}")
            if self.data_start + t.offset + t.nbytes > len(self._buf):
                raise GGUFError(f"tensor {t.name!r}: data extends past the end of the file")

    # --- tensor data (fmt §1.6, §2.2, §2.3) -----------------------------------------------
    def raw(self, name):
        t = self.tensors[name]
        start = self.data_start + t.offset
        return np.frombuffer(self._buf, dtype=np.uint8, count=t.nbytes, offset=start)

    def tensor(self, name, lo=None, hi=None):
        """Dequantize a tensor to float32 with NumPy shape reversed(ne).

        With lo/hi only the slab [lo:hi] along NumPy axis 0 (ggml's slowest axis: rows of a
        matrix, experts of an expert stack) is read and dequantized."""
        if name not in self.tensors:
            raise KeyError(f"{self.path}: tensor {name!r} not found")
        t = self.tensors[name]
        shape = t.shape if t.shape else (1,)
        n0 = shape[0]
        lo = 0 if lo is None else lo
        hi = n0 if hi is None else hi
        if not (0 <= lo <= hi <= n0):
            raise IndexError(f"tensor {name!r}: slab [{lo}:{hi}] outside axis 0 of {n0}")
        if (lo, hi) == (0, n0):
            start, nbytes = self.data_start + t.offset, t.nbytes
        else:
            if len(shape) < 2 and GGML_TYPES[t.type][1] != 1:
                raise GGUFError(f"tensor {name!r}: cannot slice a 1-D blocked tensor")
            slab_bytes = t.nbytes // n0  # axis 0 >= 1 ggml row: whole blocks
            start = self.data_start + t.offset + lo * slab_bytes
            nbytes = (hi - lo) * slab_bytes
        out_shape = (hi - lo,) + tuple(shape[1:])
        n_el = int(np.prod(out_shape, dtype=np.int64))
        if t.type == GGML_F32:
            x = np.frombuffer(self._buf, dtype="<f4", count=n_el, offset=start)
            x = x.astype(np.float32)  # own copy, native byte order
        elif t.type == GGML_F16:  # fmt §2.2: exact IEEE binary16 -> binary32
            x = np.frombuffer(self._buf, dtype="<f2", count=n_el, offset=start)
            x = x.astype(np.float32)
        elif t.type == GGML_BF16:  # fmt §2.2: bits32 = bf16 << 16
            b = np.frombuffer(self._buf, dtype="<u2", count=n_el, offset=start)
            x = (b.astype(np.uint32) << np.uint32(16)).view(np.float32)
        elif t.type == GGML_Q8_0:  # fmt §2.3: y[e] = d * qs[e]
            blocks = np.frombuffer(self._buf, dtype=_Q8_0_BLOCK, count=nbytes // 34,
                                   offset=start)
            d = blocks["d"].astype(np.float32)
            x = (d[:, None] * blocks["qs"].astype(np.float32)).reshape(-1)
        else:
            raise GGUFError(
                f"tensor {name!r} has type {t.type_name} (id {t.type}); the reference can only "
                f"dequantize F32, F16, BF16 and Q8_0")
        return x.reshape(out_shape)

    def close(self):
        try:  # fails while NumPy views of the map are alive; then the GC closes it later
            self._buf.release()
            self._mm.close()
        except BufferError:
            pass


# ================================================================================================
# Part 2: the math, as free functions (arch §2.1-§2.5), all in float64
# ================================================================================================

def rms_norm(x, w, eps):
    """arch §2.1: y_i = w_i * x_i / sqrt(mean_j(x_j^2) + eps), over the last axis."""
    x = np.asarray(x, dtype=np.float64)
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(h, w_gate, w_up, w_down):
    """arch §2.5: W2 ( silu(W1 h) * (W3 h) ); weights in NumPy (out, in) layout."""
    return (silu(h @ w_gate.T) * (h @ w_up.T)) @ w_down.T


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- arch §2.4: YaRN ----------------------------------------------------------------------------

def yarn_corr_dim(d_r, theta, l_orig, beta):
    """corr(b) = d_r * ln(L_orig / (b * 2*pi)) / (2 * ln(theta))"""
    return d_r * math.log(l_orig / (beta * 2.0 * math.pi)) / (2.0 * math.log(theta))


def yarn_low_high(d_r, theta, l_orig, beta_fast=32.0, beta_slow=1.0):
    """low = max(floor(corr(beta_fast)), 0); high = min(ceil(corr(beta_slow)), d_r - 1)"""
    low = max(math.floor(yarn_corr_dim(d_r, theta, l_orig, beta_fast)), 0)
    high = min(math.ceil(yarn_corr_dim(d_r, theta, l_orig, beta_slow)), d_r - 1)
    return low, high


def yarn_get_mscale(s, m):
    """yarn_get_mscale(s, m) = 1 + 0.1 * m * ln(s); 1.0 if s <= 1."""
    if s <= 1.0:
        return 1.0
    return 1.0 + 0.1 * m * math.log(s)


def rope_frequencies(d_r, theta, yarn=None):
    """arch §2.3 / §2.4: per-pair frequencies f'_j, j = 0 .. d_r/2 - 1.

    f_j = theta^(-2j/d_r).  With yarn = dict(factor, original_context_length, beta_fast,
    beta_slow): r_j = clamp((j - low) / max(high - low, 0.001), 0, 1) and
    f'_j = f_j * (1 - r_j) + (f_j / s) * r_j."""
    j = np.arange(d_r // 2, dtype=np.float64)
    f = theta ** (-2.0 * j / d_r)
    if yarn is None:
        return f
    s = yarn["factor"]
    low, high = yarn_low_high(d_r, theta, yarn["original_context_length"],
                              yarn.get("beta_fast", 32.0), yarn.get("beta_slow", 1.0))
    r = np.clip((j - low) / max(high - low, 0.001), 0.0, 1.0)
    return f * (1.0 - r) + (f / s) * r


def apply_rope(x, positions, freqs):
    """arch §2.3: rotate ADJACENT pairs (x[2j], x[2j+1]) by angle p * f'_j (unit magnitude,
    §2.4: cos/sin are not scaled).  x: (T, ..., d_r); positions: (T,)."""
    x = np.asarray(x, dtype=np.float64)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * freqs[None, :]  # (T, d_r/2)
    ang = ang.reshape((ang.shape[0],) + (1,) * (x.ndim - 2) + (ang.shape[1],))
    cos, sin = np.cos(ang), np.sin(ang)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


# --- arch §2.2: naive MLA attention -------------------------------------------------------------

def mla_attention_naive(q_nope, q_pe, c_kv, k_pe, w_uk, w_uv, scale):
    """arch §2.2 "naive" form, causal over T positions.

    q_nope (T,H,d_n), q_pe (T,H,d_r) already rotated, c_kv (T,d_c) already normed,
    k_pe (T,d_r) already rotated, w_uk (H,d_n,d_c), w_uv (H,d_v,d_c).
    Returns o (T,H,d_v)."""
    T, H, _ = q_nope.shape
    # decompress per head: k_nope_i(s) = W_UK_i c_kv(s), v_i(s) = W_UV_i c_kv(s)
    k_nope = np.einsum("hnc,sc->shn", w_uk, c_kv)                      # (T,H,d_n)
    v = np.einsum("hvc,sc->shv", w_uv, c_kv)                           # (T,H,d_v)
    # k_i(s) = [k_nope_i(s) ; k_pe(s)] (k_pe shared by all heads), q_i(t) = [q_nope_i ; q_pe_i]
    k = np.concatenate([k_nope, np.broadcast_to(k_pe[:, None, :], (T, H, k_pe.shape[-1]))],
                       axis=-1)
    q = np.concatenate([q_nope, q_pe], axis=-1)
    scores = scale * np.einsum("thd,shd->hts", q, k)                   # (H,T,T)
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)                 # s > t is masked
    scores = np.where(causal[None, :, :], -np.inf, scores)
    a = softmax(scores, axis=-1)
    return np.einsum("hts,shv->thv", a, v)                             # (T,H,d_v)


# --- arch §2.5: MoE router ----------------------------------------------------------------------

def moe_route(logits, n_used, gating="softmax", bias=None, n_group=1, topk_group=1,
              group_score=None, norm=False, scale=1.0):
    """arch §2.5, for a batch of router logits (T, n_expert).

    Returns (idx (T,n_used) int, weights (T,n_used) float64).
    gating: "softmax" | "sigmoid".  bias: selection bias b (used only for choosing).
    group_score: "max" (V2) or "top2sum" (V3); default: max for softmax, top2sum for sigmoid."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    T, n_expert = logits.shape
    # scores p
    if gating == "softmax":
        p = softmax(logits, axis=-1)
    elif gating == "sigmoid":
        p = sigmoid(logits)
    else:
        raise ValueError(f"unknown gating function {gating!r}")
    # selection scores q = p + b (b never enters the weights, arch §7.7)
    q = p + (np.asarray(bias, dtype=np.float64)[None, :] if bias is not None else 0.0)
    # group-limited selection; masked experts are -inf (arch §7.8)
    if n_group > 1:
        if n_expert % n_group != 0:
            raise ValueError(f"n_expert {n_expert} not divisible by n_group {n_group}")
        if group_score is None:
            group_score = "max" if gating == "softmax" else "top2sum"
        qg = q.reshape(T, n_group, n_expert // n_group)
        if group_score == "max":
            gs = qg.max(axis=-1)
        elif group_score == "top2sum":
            gs = np.sort(qg, axis=-1)[..., -2:].sum(axis=-1)
        else:
            raise ValueError(f"unknown group score {group_score!r}")
        keep_groups = np.argsort(-gs, axis=-1, kind="stable")[:, :topk_group]   # (T, topk_group)
        keep = np.zeros((T, n_group), dtype=bool)
        np.put_along_axis(keep, keep_groups, True, axis=-1)
        q = np.where(np.repeat(keep, n_expert // n_group, axis=-1), q, -np.inf)
    # top-k on the (biased, masked) selection scores
    idx = np.argsort(-q, axis=-1, kind="stable")[:, :n_used]
    # weights: the UNBIASED scores of the chosen experts
    w = np.take_along_axis(p, idx, axis=-1)
    if norm:
        w = w / np.sum(w, axis=-1, keepdims=True)
    w = w * scale
    return idx, w


# ================================================================================================
# Part 3: the model
# ================================================================================================

class Deepseek2:
    """`deepseek2` GGUF model (arch §2, tensor names arch §4.2, metadata arch §4.3)."""

    # tensors whose float64 copy would exceed this many bytes are streamed instead of cached
    CACHE_LIMIT_BYTES = 512 << 20
    ROW_CHUNK = 8192

    def __init__(self, path):
        self.gguf = GGUFReader(path)
        self._cache = {}
        md = self.gguf.metadata
        arch = md.get("general.architecture")
        if arch != "deepseek2":
            raise GGUFError(f"{path}: general.architecture is {arch!r}, expected 'deepseek2'")
        self._read_hparams()

    # --- hyperparameters (arch §4.3), cross-checked against tensor shapes (arch §4.2) ---------
    def _key(self, name, default=None, required=False):
        k = "deepseek2." + name
        if k in self.gguf.metadata:
            return self.gguf.metadata[k]
        if required:
            raise GGUFError(f"missing required metadata key {k!r}")
        return default

    def _ne(self, name):
        return self.gguf.tensors[name].ne

    def has(self, name):
        return name in self.gguf.tensors

    def _read_hparams(self):
        key = self._key
        self.n_embd = int(key("embedding_length", required=True))
        self.n_layer = int(key("block_count", required=True))
        self.n_head = H = int(key("attention.head_count", required=True))
        self.eps = float(key("attention.layer_norm_rms_epsilon", required=True))
        self.d_c = int(key("attention.kv_lora_rank", required=True))
        self.d_r = int(key("rope.dimension_count", required=True))
        self.theta = float(key("rope.freq_base", 10000.0))

        # q-LoRA decided by tensor presence (arch §7.16), not by layer count
        if self.has("blk.0.attn_q_a.weight"):
            self.q_lora = True
            self.d_q = self._ne("blk.0.attn_q_a.weight")[1]
            q_out = self._ne("blk.0.attn_q_b.weight")[1]
        elif self.has("blk.0.attn_q.weight"):
            self.q_lora = False
            self.d_q = None
            q_out = self._ne("blk.0.attn_q.weight")[1]
        else:
            raise GGUFError("neither blk.0.attn_q_a.weight nor blk.0.attn_q.weight present")
        if q_out % H:
            raise GGUFError(f"q projection width {q_out} not divisible by n_head {H}")
        self.d_qk = q_out // H
        self.d_n = self.d_qk - self.d_r

        # MLA split form (attn_k_b/attn_v_b) vs legacy combined attn_kv_b (arch §4.2)
        if self.has("blk.0.attn_k_b.weight"):
            self.kv_split = True
            ne_kb = self._ne("blk.0.attn_k_b.weight")  # {d_n, d_c, H}
            ne_vb = self._ne("blk.0.attn_v_b.weight")  # {d_c, d_v, H}
            if ne_kb != (self.d_n, self.d_c, H) or ne_vb[0] != self.d_c or ne_vb[2] != H:
                raise GGUFError(f"attn_k_b ne={ne_kb} / attn_v_b ne={ne_vb} do not match "
                                f"d_n={self.d_n}, d_c={self.d_c}, H={H}")
            self.d_v = ne_vb[1]
        elif self.has("blk.0.attn_kv_b.weight"):
            self.kv_split = False
            ne_kvb = self._ne("blk.0.attn_kv_b.weight")  # {d_c, H*(d_n+d_v)}
            if ne_kvb[0] != self.d_c or ne_kvb[1] % H:
                raise GGUFError(f"attn_kv_b ne={ne_kvb} does not match d_c={self.d_c}, H={H}")
            self.d_v = ne_kvb[1] // H - self.d_n
        else:
            raise GGUFError("neither blk.0.attn_k_b.weight nor blk.0.attn_kv_b.weight present")

        # metadata head sizes, if present, must agree with the tensors
        kl_mla, vl_mla = key("attention.key_length_mla"), key("attention.value_length_mla")
        if kl_mla and int(kl_mla) != self.d_qk:
            raise GGUFError(f"key_length_mla={kl_mla} but tensors say d_qk={self.d_qk}")
        if vl_mla and int(vl_mla) != self.d_v:
            raise GGUFError(f"value_length_mla={vl_mla} but tensors say d_v={self.d_v}")
        ql = key("attention.q_lora_rank")
        if self.q_lora and ql and int(ql) != self.d_q:
            raise GGUFError(f"q_lora_rank={ql} but attn_q_a says {self.d_q}")

        # FFN / MoE (arch §2.5, §4.3)
        self.n_ff = int(key("feed_forward_length", 0))
        self.n_dense = int(key("leading_dense_block_count", 0))
        self.n_expert = int(key("expert_count", 0))
        self.n_expert_used = int(key("expert_used_count", 0))
        self.n_expert_shared = int(key("expert_shared_count", 0))
        self.n_ff_exp = int(key("expert_feed_forward_length", 0))
        self.expert_weights_scale = float(key("expert_weights_scale", 1.0))   # absent => 1
        self.expert_weights_norm = bool(key("expert_weights_norm", False))    # absent => false
        gating = int(key("expert_gating_func", 0))                            # absent/0 => softmax
        if gating in (0, 1):
            self.gating = "softmax"
        elif gating == 2:
            self.gating = "sigmoid"
        else:
            raise GGUFError(f"unknown expert_gating_func {gating}")
        self.n_group = int(key("expert_group_count", 1))
        self.topk_group = int(key("expert_group_used_count", self.n_group))
        # group score: V2 (softmax) = max per group, V3 (sigmoid) = sum of top-2 (arch §2.5)
        self.group_score = "max" if self.gating == "softmax" else "top2sum"

        # RoPE / YaRN (arch §2.3, §2.4)
        stype = key("rope.scaling.type")
        if stype is None or stype == "none":
            self.yarn = None
            mscale = 1.0
        elif stype == "yarn":
            self.yarn = {
                "factor": float(key("rope.scaling.factor", required=True)),
                "original_context_length":
                    float(key("rope.scaling.original_context_length", required=True)),
                "beta_fast": 32.0,  # not stored for deepseek2; llama.cpp defaults (arch §2.4)
                "beta_slow": 1.0,
            }
            # GGUF stores yarn_log_multiplier = 0.1 * mscale_all_dim (arch §7.4)
            self.mscale_all_dim = float(key("rope.scaling.yarn_log_multiplier", 0.0)) / 0.1
            mscale = yarn_get_mscale(self.yarn["factor"], self.mscale_all_dim)
        else:
            raise GGUFError(f"rope.scaling.type {stype!r} is not supported for deepseek2")
        self.freqs = rope_frequencies(self.d_r, self.theta, self.yarn)
        # softmax scale = mscale^2 / sqrt(d_qk) (arch §2.4); unchanged by absorption (arch §7.9)
        self.kq_scale = mscale * mscale / math.sqrt(self.d_qk)

        self.n_vocab = self._ne("output.weight")[1]
        if self._ne("token_embd.weight") != (self.n_embd, self.n_vocab):
            raise GGUFError(f"token_embd ne={self._ne('token_embd.weight')} vs output "
                            f"ne={self._ne('output.weight')}")

    # --- weights ---------------------------------------------------------------------------
    def W(self, name):
        """Whole tensor as float64, dequantized once and cached."""
        w = self._cache.get(name)
        if w is None:
            w = self.gguf.tensor(name).astype(np.float64)
            self._cache[name] = w
        return w

    def _cacheable(self, name):
        t = self.gguf.tensors[name]
        n = 1
        for x in t.ne:
            n *= x
        return n * 8 <= self.CACHE_LIMIT_BYTES

    def expert_weight(self, name, e):
        """Expert e's matrix (out, in) of a stack ne={in, out, n_expert}."""
        if self._cacheable(name):
            return self.W(name)[e]
        return self.gguf.tensor(name, e, e + 1)[0].astype(np.float64)

    def linear(self, x, name):
        """y = W x for every row of x; big matrices are streamed in row chunks."""
        if self._cacheable(name):
            return x @ self.W(name).T
        n_out = self.gguf.tensors[name].shape[0]
        y = np.empty((x.shape[0], n_out), dtype=np.float64)
        for lo in range(0, n_out, self.ROW_CHUNK):
            hi = min(lo + self.ROW_CHUNK, n_out)
            y[:, lo:hi] = x @ self.gguf.tensor(name, lo, hi).astype(np.float64).T
        return y

    def embed(self, tokens):
        """x = Emb[token] (no scaling, arch §2); only the needed rows are dequantized."""
        rows = [self.gguf.tensor("token_embd.weight", t, t + 1)[0] for t in tokens]
        return np.stack(rows).astype(np.float64)

    def kv_b_per_head(self, l):
        """arch §2.2 / §4.2: W_UK (H, d_n, d_c) and W_UV (H, d_v, d_c)."""
        p = f"blk.{l}."
        H, d_n, d_v, d_c = self.n_head, self.d_n, self.d_v, self.d_c
        if self.kv_split:
            # attn_k_b ne={d_n, d_c, H} -> numpy (H, d_c, d_n): element [h][c][n] = W_UK_h[n][c]
            w_uk = self.W(p + "attn_k_b.weight").transpose(0, 2, 1)
            # attn_v_b ne={d_c, d_v, H} -> numpy (H, d_v, d_c) = W_UV_h as is
            w_uv = self.W(p + "attn_v_b.weight")
        else:
            # attn_kv_b ne={d_c, H*(d_n+d_v)} -> numpy (H*(d_n+d_v), d_c); per head
            # rows [k_nope (d_n) ; v (d_v)], heads outermost (arch §7.17)
            kvb = self.W(p + "attn_kv_b.weight").reshape(H, d_n + d_v, d_c)
            w_uk, w_uv = kvb[:, :d_n, :], kvb[:, d_n:, :]
        return w_uk, w_uv

    # --- arch §2.2: MLA projections ----------------------------------------------------------
    def mla_project(self, l, h, positions):
        """Returns q_nope (T,H,d_n), q_pe (T,H,d_r) rotated, c_kv (T,d_c) normed,
        k_pe (T,d_r) rotated."""
        p = f"blk.{l}."
        T = h.shape[0]
        # query: with q-LoRA c_q = RMSNorm(W_qa h), q = W_qb c_q; else q = W_q h
        if self.q_lora:
            c_q = rms_norm(h @ self.W(p + "attn_q_a.weight").T,
                           self.W(p + "attn_q_a_norm.weight"), self.eps)
            q = c_q @ self.W(p + "attn_q_b.weight").T
        else:
            q = h @ self.W(p + "attn_q.weight").T
        q = q.reshape(T, self.n_head, self.d_qk)        # per head [nope ; rope]
        q_nope, q_pe = q[..., :self.d_n], q[..., self.d_n:]
        # key/value: kv = W_kva h = [c_kv (d_c) ; k_pe (d_r)]; c_kv = RMSNorm(c_kv)
        kv = h @ self.W(p + "attn_kv_a_mqa.weight").T
        c_kv = rms_norm(kv[:, :self.d_c], self.W(p + "attn_kv_a_norm.weight"), self.eps)
        k_pe = kv[:, self.d_c:]
        # RoPE (arch §2.3) on q_pe of every head and on the shared k_pe only
        q_pe = apply_rope(q_pe, positions, self.freqs)
        k_pe = apply_rope(k_pe, positions, self.freqs)
        return q_nope, q_pe, c_kv, k_pe

    def attention(self, l, h, positions):
        """arch §2.2: out = W_o [o_0 ; ... ; o_{H-1}] using the naive form."""
        q_nope, q_pe, c_kv, k_pe = self.mla_project(l, h, positions)
        w_uk, w_uv = self.kv_b_per_head(l)
        o = mla_attention_naive(q_nope, q_pe, c_kv, k_pe, w_uk, w_uv, self.kq_scale)
        return o.reshape(h.shape[0], -1) @ self.W(f"blk.{l}.attn_output.weight").T

    # --- arch §2.5: FFN ----------------------------------------------------------------------
    def is_moe_layer(self, l):
        moe = self.n_expert > 0 and l >= self.n_dense
        if moe != self.has(f"blk.{l}.ffn_gate_inp.weight"):
            raise GGUFError(f"layer {l}: metadata says moe={moe} but ffn_gate_inp presence "
                            f"disagrees")
        return moe

    def dense_ffn(self, l, h):
        p = f"blk.{l}."
        return swiglu(h, self.W(p + "ffn_gate.weight"), self.W(p + "ffn_up.weight"),
                      self.W(p + "ffn_down.weight"))

    def route(self, l, h):
        """Router for layer l: (idx, weights), each (T, n_used)."""
        p = f"blk.{l}."
        logits = h @ self.W(p + "ffn_gate_inp.weight").T       # W_gate h, no bias
        bias = self.W(p + "exp_probs_b.bias") if self.has(p + "exp_probs_b.bias") else None
        return moe_route(logits, self.n_expert_used, gating=self.gating, bias=bias,
                         n_group=self.n_group, topk_group=self.topk_group,
                         group_score=self.group_score, norm=self.expert_weights_norm,
                         scale=self.expert_weights_scale)

    def moe_ffn(self, l, h):
        """MoE(h) = sum_{e in E} w_e * expert_e(h) + shared(h)."""
        p = f"blk.{l}."
        T = h.shape[0]
        idx, w = self.route(l, h)
        out = np.zeros_like(h)
        for e in np.unique(idx):  # each used expert: its tokens in one batch
            tok, slot = np.nonzero(idx == e)
            y = swiglu(h[tok],
                       self.expert_weight(p + "ffn_gate_exps.weight", e),
                       self.expert_weight(p + "ffn_up_exps.weight", e),
                       self.expert_weight(p + "ffn_down_exps.weight", e))
            np.add.at(out, tok, w[tok, slot][:, None] * y)
        if self.has(p + "ffn_gate_shexp.weight"):  # shared expert: no gate weight
            out += swiglu(h, self.W(p + "ffn_gate_shexp.weight"),
                          self.W(p + "ffn_up_shexp.weight"), self.W(p + "ffn_down_shexp.weight"))
        assert out.shape == (T, self.n_embd)
        return out

    # --- arch §2: the whole forward pass -----------------------------------------------------
    def forward(self, tokens, return_hidden=False):
        """Logits (T, n_vocab) float64 for every position of `tokens` (positions 0..T-1)."""
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("empty token sequence")
        for t in tokens:
            if not 0 <= t < self.n_vocab:
                raise ValueError(f"token id {t} outside [0, {self.n_vocab})")
        positions = np.arange(len(tokens))
        x = self.embed(tokens)
        for l in range(self.n_layer):
            p = f"blk.{l}."
            x = x + self.attention(l, rms_norm(x, self.W(p + "attn_norm.weight"), self.eps),
                                   positions)
            h = rms_norm(x, self.W(p + "ffn_norm.weight"), self.eps)
            x = x + (self.moe_ffn(l, h) if self.is_moe_layer(l) else self.dense_ffn(l, h))
        # arch §2.6: logits = W_lm RMSNorm(x_L)   (untied output.weight)
        hn = rms_norm(x, self.W("output_norm.weight"), self.eps)
        logits = self.linear(hn, "output.weight")
        return (logits, x) if return_hidden else logits

    def describe(self):
        return {
            "n_embd": self.n_embd, "n_layer": self.n_layer, "n_head": self.n_head,
            "n_vocab": self.n_vocab, "q_lora": self.q_lora, "d_q": self.d_q, "d_c": self.d_c,
            "d_n": self.d_n, "d_r": self.d_r, "d_v": self.d_v, "kv_split": self.kv_split,
            "n_dense": self.n_dense, "n_expert": self.n_expert, "n_used": self.n_expert_used,
            "gating": self.gating, "norm": self.expert_weights_norm,
            "scale": self.expert_weights_scale, "n_group": self.n_group,
            "topk_group": self.topk_group, "yarn": self.yarn, "kq_scale": self.kq_scale,
        }


# ================================================================================================
# Part 4: CLI
# ================================================================================================

def _parse_tokens(s):
    return [int(t) for t in s.replace(" ", ",").split(",") if t.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description="NumPy float64 reference logits for a deepseek2 "
                                             "GGUF (naive MLA, every position).")
    ap.add_argument("model", help="deepseek2 GGUF file (F32/F16/BF16/Q8_0 tensors)")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--out", help="write logits [n_tokens, n_vocab] float64 to this .npy file")
    ap.add_argument("--json", action="store_true",
                    help="print {n_tokens, n_vocab, logits} as JSON on stdout")
    args = ap.parse_args(argv)

    tokens = _parse_tokens(args.tokens)
    try:
        model = Deepseek2(args.model)
        logits = model.forward(tokens)
    except (GGUFError, ValueError, KeyError) as e:
        print(f"ds2_reference: error: {e}", file=sys.stderr)
        return 1
    if args.out:
        np.save(args.out, logits)
    if args.json:
        json.dump({"n_tokens": logits.shape[0], "n_vocab": logits.shape[1],
                   "logits": logits.tolist()}, sys.stdout)
        sys.stdout.write("\n")
    elif not args.out:
        print(f"logits shape {logits.shape}")
        for i, row in enumerate(logits):
            top = np.argsort(-row, kind="stable")[:5]
            print(f"pos {i:4d} tok {tokens[i]:7d}  top5 " +
                  " ".join(f"{t}:{row[t]:.6f}" for t in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
