"""Minimal GGUF v3 writer (and small reader) used by libdeepseek's test tools.

Only numpy is required.  Supported tensor types: F32, F16, BF16, Q8_0.

Writer
------
    w = GGUFWriter("out.gguf", alignment=32)
    w.add_string("general.architecture", "deepseek2")
    w.add_uint32("deepseek2.block_count", 2)
    w.add_array("tokenizer.ggml.tokens", GGUFValueType.STRING, ["a", "b"])
    w.add_tensor("token_embd.weight", [64, 512], GGMLType.Q8_0, f32_array)
    w.add_tensor("big.weight", [2048, 1408, 64], GGMLType.Q8_0,
                 ChunkedSource(n_elements, make_chunk))   # streamed, threaded
    w.write()

Tensor shapes are given in ggml order (ne[0] is the contiguous axis), i.e. the
reverse of the numpy shape.  Tensor data is converted from float32 while
writing, one chunk at a time, so arbitrarily large models can be written with
bounded memory.  Offsets follow llama.cpp's writer exactly:
offset[0] = 0, offset[i] = offset[i-1] + align_up(nbytes[i-1], A); every
tensor (including the last) is followed by zero padding to a multiple of A.

Reader
------
    r = GGUFReader("model.gguf")
    r.kv["general.architecture"].value      # -> "deepseek2"
    r.tensors["output.weight"].ne           # -> (64, 512)
    r.tensor_f32("output.weight")           # dequantized, numpy shape = reversed(ne)

Strings are decoded as UTF-8 with ``surrogateescape`` so that arbitrary bytes
survive a read -> write round trip unchanged.
"""

from __future__ import annotations

import concurrent.futures
import mmap
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32
QK8_0 = 32


class GGUFValueType:
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12

    NAMES = {0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32",
             5: "INT32", 6: "FLOAT32", 7: "BOOL", 8: "STRING", 9: "ARRAY",
             10: "UINT64", 11: "INT64", 12: "FLOAT64"}


# numpy little-endian dtypes of the fixed-size GGUF value types
_VT_DTYPE = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("<u1"),
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}
_VT_STRUCT = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<B",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_INT_RANGES = {
    GGUFValueType.UINT8: (0, 2**8 - 1), GGUFValueType.INT8: (-2**7, 2**7 - 1),
    GGUFValueType.UINT16: (0, 2**16 - 1), GGUFValueType.INT16: (-2**15, 2**15 - 1),
    GGUFValueType.UINT32: (0, 2**32 - 1), GGUFValueType.INT32: (-2**31, 2**31 - 1),
    GGUFValueType.UINT64: (0, 2**64 - 1), GGUFValueType.INT64: (-2**63, 2**63 - 1),
}


class GGMLType:
    F32 = 0
    F16 = 1
    Q8_0 = 8
    BF16 = 30

    NAMES = {0: "F32", 1: "F16", 8: "Q8_0", 30: "BF16"}
    # (elements per block, bytes per block)
    BLOCK = {0: (1, 4), 1: (1, 2), 8: (QK8_0, 2 + QK8_0), 30: (1, 2)}

    @classmethod
    def from_name(cls, name: str) -> int:
        key = name.strip().upper()
        for tid, tname in cls.NAMES.items():
            if tname == key:
                return tid
        raise ValueError(f"unknown tensor type {name!r} (supported: f32, f16, bf16, q8_0)")


def align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def tensor_nbytes(ne: Sequence[int], ggml_type: int) -> int:
    blk, size = GGMLType.BLOCK[ggml_type]
    if ne[0] % blk != 0:
        raise ValueError(f"ne[0]={ne[0]} is not a multiple of the block size {blk} "
                         f"of {GGMLType.NAMES[ggml_type]}")
    n = 1
    for d in ne[1:]:
        n *= int(d)
    return (int(ne[0]) // blk) * size * n


# ----------------------------------------------------------------------------
# Scalar / block conversions (float32 -> storage bytes and back)
# ----------------------------------------------------------------------------

def f32_to_f16(x: np.ndarray) -> np.ndarray:
    """IEEE binary16, round-to-nearest-even (numpy's cast)."""
    with np.errstate(over="ignore"):  # |x| >= 65520 -> inf, as in ggml
        return np.asarray(x, dtype=np.float32).astype("<f2")


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """ggml's F32 -> BF16: round-to-nearest-even, NaN -> quiet NaN. Returns uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
         >> np.uint32(16)).astype("<u2")
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        r[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(64)).astype("<u2")
    return r


def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (np.asarray(u16, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


# trunc(v + copysign(0.5 - 2^-25, v)) == roundf(v) (half away from zero) for every
# float32 |v| <= 128, checked exhaustively; plain +0.5 is wrong just below 0.5.
_ROUND_HALF = np.float32(0.5) - np.float32(2.0 ** -25)


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Quantize float32 data to Q8_0 exactly like ggml's quantize_row_q8_0_ref.

    Per block of 32: amax = max|x|, d = amax/127, id = d ? 1/d : 0,
    q = roundf(x*id) (half away from zero), stored as f16(d) + int8[32].
    Returns a uint8 array of shape (n_blocks, 34).
    """
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size % QK8_0:
        raise ValueError("Q8_0 needs a multiple of 32 elements")
    b = x.reshape(-1, QK8_0)
    nb = b.shape[0]
    a = np.abs(b)
    # pairwise max tree: much faster in numpy than a reduction over a short axis
    m = np.maximum(a[:, :16], a[:, 16:])
    m = np.maximum(m[:, :8], m[:, 8:])
    m = np.maximum(m[:, :4], m[:, 4:])
    m = np.maximum(m[:, :2], m[:, 2:])
    amax = np.maximum(m[:, 0], m[:, 1])
    del a, m
    d = amax / np.float32(127.0)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    v = b * inv[:, None]
    v += np.copysign(_ROUND_HALF, v)
    out = np.empty((nb, 2 + QK8_0), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(nb, 2)
    np.copyto(out[:, 2:].view(np.int8), v, casting="unsafe")  # C cast truncates toward 0
    return out


def dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, 2 + QK8_0)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:].view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def convert_f32(x: np.ndarray, ggml_type: int) -> np.ndarray:
    """float32 data -> contiguous array holding the tensor's storage bytes."""
    if ggml_type == GGMLType.F32:
        return np.ascontiguousarray(x, dtype="<f4").reshape(-1)
    if ggml_type == GGMLType.F16:
        return f32_to_f16(x).reshape(-1)
    if ggml_type == GGMLType.BF16:
        return f32_to_bf16(x).reshape(-1)
    if ggml_type == GGMLType.Q8_0:
        return quantize_q8_0(x).reshape(-1)
    raise ValueError(f"unsupported tensor type {ggml_type}")


def dequantize(raw: Union[bytes, np.ndarray], ggml_type: int) -> np.ndarray:
    """Storage bytes -> flat float32 array."""
    raw = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) \
        else np.asarray(raw).reshape(-1).view(np.uint8)
    if ggml_type == GGMLType.F32:
        return raw.view("<f4").astype(np.float32)
    if ggml_type == GGMLType.F16:
        return raw.view("<f2").astype(np.float32)
    if ggml_type == GGMLType.BF16:
        return bf16_to_f32(raw.view("<u2"))
    if ggml_type == GGMLType.Q8_0:
        return dequantize_q8_0(raw)
    raise ValueError(f"unsupported tensor type {ggml_type}")


# ----------------------------------------------------------------------------
# Metadata values
# ----------------------------------------------------------------------------

@dataclass
class GGUFArray:
    """A typed GGUF array. ``values`` is a numpy array for numeric/bool element
    types, a list of str for STRING, a list of GGUFArray for ARRAY (nested)."""
    elem_type: int
    values: Any

    def __len__(self):
        return len(self.values)

    def tolist(self):
        if self.elem_type == GGUFValueType.ARRAY:
            return [v.tolist() for v in self.values]
        if isinstance(self.values, np.ndarray):
            if self.elem_type == GGUFValueType.BOOL:
                return [bool(v) for v in self.values]
            return self.values.tolist()
        return list(self.values)


@dataclass
class GGUFValue:
    type: int
    value: Any  # int / float / bool / str / GGUFArray


def _encode_str(s: Union[str, bytes]) -> bytes:
    b = s if isinstance(s, (bytes, bytearray)) else s.encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(b)) + bytes(b)


def _check_int(vtype: int, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{GGUFValueType.NAMES[vtype]} value must be an integer, got {v!r}")
    lo, hi = _INT_RANGES[vtype]
    if not lo <= int(v) <= hi:
        raise ValueError(f"value {v} out of range for {GGUFValueType.NAMES[vtype]}")
    return int(v)


def _make_array(elem_type: int, values) -> GGUFArray:
    if isinstance(values, GGUFArray):
        if values.elem_type != elem_type:
            raise TypeError("array element type mismatch")
        return values
    if elem_type == GGUFValueType.STRING:
        return GGUFArray(elem_type, [v if isinstance(v, (str, bytes)) else str(v) for v in values])
    if elem_type == GGUFValueType.ARRAY:
        out = []
        for v in values:
            if isinstance(v, GGUFArray):
                out.append(v)
            else:  # (elem_type, values) pair
                et, vals = v
                out.append(_make_array(et, vals))
        return GGUFArray(elem_type, out)
    if elem_type not in _VT_DTYPE:
        raise ValueError(f"bad array element type {elem_type}")
    if elem_type == GGUFValueType.BOOL:
        arr = np.asarray([1 if bool(v) else 0 for v in values] if not isinstance(values, np.ndarray)
                         else values.astype(bool).astype(np.uint8), dtype=np.uint8)
    elif elem_type in _INT_RANGES:
        lo, hi = _INT_RANGES[elem_type]
        arr = np.asarray(values)
        if arr.size and (arr.dtype.kind not in "iu"):
            raise TypeError("integer array expected")
        if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
            raise ValueError("array value out of range")
        arr = arr.astype(_VT_DTYPE[elem_type])
    else:
        arr = np.asarray(values, dtype=_VT_DTYPE[elem_type])
    return GGUFArray(elem_type, arr.reshape(-1))


def _encode_array(arr: GGUFArray) -> bytes:
    parts = [struct.pack("<iQ", arr.elem_type, len(arr.values))]
    et = arr.elem_type
    if et == GGUFValueType.STRING:
        parts.extend(_encode_str(s) for s in arr.values)
    elif et == GGUFValueType.ARRAY:
        parts.extend(_encode_array(a) for a in arr.values)
    else:
        parts.append(np.ascontiguousarray(arr.values, dtype=_VT_DTYPE[et]).tobytes())
    return b"".join(parts)


def _encode_value(v: GGUFValue) -> bytes:
    t = v.type
    if t == GGUFValueType.STRING:
        return _encode_str(v.value)
    if t == GGUFValueType.ARRAY:
        return _encode_array(v.value)
    if t == GGUFValueType.BOOL:
        return struct.pack("<B", 1 if v.value else 0)
    if t in _INT_RANGES:
        return struct.pack(_VT_STRUCT[t], _check_int(t, v.value))
    if t in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return struct.pack(_VT_STRUCT[t], float(v.value))
    raise ValueError(f"bad value type {t}")


# ----------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------

class ChunkedSource:
    """Streamed float32 tensor data.

    ``make_chunk(index, start, count)`` must return a float32 array of ``count``
    elements holding elements [start, start+count) of the flattened tensor.
    Chunks are produced (and converted) in worker threads, in any order, and
    written in order.  ``chunk_elems`` must be a multiple of the block size.
    """

    def __init__(self, n_elements: int, make_chunk: Callable[[int, int, int], np.ndarray],
                 chunk_elems: int = 1 << 20):
        if chunk_elems % QK8_0:
            raise ValueError("chunk_elems must be a multiple of 32")
        self.n_elements = int(n_elements)
        self.make_chunk = make_chunk
        self.chunk_elems = int(chunk_elems)

    def chunks(self):
        i = 0
        for start in range(0, self.n_elements, self.chunk_elems):
            count = min(self.chunk_elems, self.n_elements - start)
            yield i, start, count
            i += 1


@dataclass
class _TensorEntry:
    name: str
    ne: List[int]
    ggml_type: int
    source: Any
    nbytes: int
    offset: int = 0


class GGUFWriter:
    def __init__(self, path: str, alignment: int = GGUF_DEFAULT_ALIGNMENT,
                 threads: Optional[int] = None):
        if alignment <= 0 or alignment & (alignment - 1) or alignment % 8:
            raise ValueError("alignment must be a power of two and a multiple of 8")
        self.path = path
        self.alignment = alignment
        self.threads = threads or min(8, os.cpu_count() or 1)
        self.kv: "OrderedDict[str, GGUFValue]" = OrderedDict()
        self.tensors: "OrderedDict[str, _TensorEntry]" = OrderedDict()

    # ---- metadata ----
    def add_value(self, key: str, value: GGUFValue):
        if key in self.kv:
            raise KeyError(f"duplicate key {key!r}")
        if not key or len(key.encode()) > 65535 or "\0" in key:
            raise ValueError(f"bad key {key!r}")
        if value.type == GGUFValueType.ARRAY and not isinstance(value.value, GGUFArray):
            raise TypeError("ARRAY values must be GGUFArray")
        _encode_value(value)  # validate early
        self.kv[key] = value

    def add_kv(self, key: str, vtype: int, value, elem_type: Optional[int] = None):
        if vtype == GGUFValueType.ARRAY:
            if isinstance(value, GGUFArray):
                arr = value
            else:
                if elem_type is None:
                    raise ValueError("elem_type required for arrays")
                arr = _make_array(elem_type, value)
            self.add_value(key, GGUFValue(vtype, arr))
        else:
            self.add_value(key, GGUFValue(vtype, value))

    def add_uint8(self, k, v): self.add_kv(k, GGUFValueType.UINT8, v)
    def add_int8(self, k, v): self.add_kv(k, GGUFValueType.INT8, v)
    def add_uint16(self, k, v): self.add_kv(k, GGUFValueType.UINT16, v)
    def add_int16(self, k, v): self.add_kv(k, GGUFValueType.INT16, v)
    def add_uint32(self, k, v): self.add_kv(k, GGUFValueType.UINT32, v)
    def add_int32(self, k, v): self.add_kv(k, GGUFValueType.INT32, v)
    def add_uint64(self, k, v): self.add_kv(k, GGUFValueType.UINT64, v)
    def add_int64(self, k, v): self.add_kv(k, GGUFValueType.INT64, v)
    def add_float32(self, k, v): self.add_kv(k, GGUFValueType.FLOAT32, v)
    def add_float64(self, k, v): self.add_kv(k, GGUFValueType.FLOAT64, v)
    def add_bool(self, k, v): self.add_kv(k, GGUFValueType.BOOL, bool(v))
    def add_string(self, k, v): self.add_kv(k, GGUFValueType.STRING, v)

    def add_array(self, k, elem_type: int, values):
        self.add_kv(k, GGUFValueType.ARRAY, values, elem_type)

    # ---- tensors ----
    def add_tensor(self, name: str, ne: Sequence[int], ggml_type: int, source):
        """ne in ggml order; source: numpy array (any shape, numel must match)
        or ChunkedSource."""
        if name in self.tensors:
            raise KeyError(f"duplicate tensor {name!r}")
        if len(name.encode()) >= 64 or "\0" in name:
            raise ValueError(f"tensor name too long or invalid: {name!r}")
        ne = [int(d) for d in ne]
        if not 1 <= len(ne) <= 4 or any(d < 0 for d in ne):
            raise ValueError(f"bad shape {ne} for {name}")
        numel = int(np.prod(ne, dtype=np.int64))
        n_src = source.n_elements if isinstance(source, ChunkedSource) else np.asarray(source).size
        if n_src != numel:
            raise ValueError(f"{name}: source has {n_src} elements, shape {ne} needs {numel}")
        nbytes = tensor_nbytes(ne, ggml_type)
        self.tensors[name] = _TensorEntry(name, ne, ggml_type, source, nbytes)

    def _layout(self):
        off = 0
        for t in self.tensors.values():
            t.offset = off
            off += align_up(t.nbytes, self.alignment)
        return off

    def _header_bytes(self) -> bytes:
        if "general.alignment" in self.kv:
            v = self.kv["general.alignment"]
            if v.type != GGUFValueType.UINT32 or v.value != self.alignment:
                raise ValueError("general.alignment must be UINT32 and equal the writer alignment")
        elif self.alignment != GGUF_DEFAULT_ALIGNMENT:
            self.kv["general.alignment"] = GGUFValue(GGUFValueType.UINT32, self.alignment)
        self._layout()
        parts = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for k, v in self.kv.items():
            parts.append(_encode_str(k))
            parts.append(struct.pack("<i", v.type))
            parts.append(_encode_value(v))
        for t in self.tensors.values():
            parts.append(_encode_str(t.name))
            parts.append(struct.pack("<I", len(t.ne)))
            parts.append(struct.pack(f"<{len(t.ne)}Q", *t.ne))
            parts.append(struct.pack("<iQ", t.ggml_type, t.offset))
        hdr = b"".join(parts)
        if self.tensors:  # the data section starts aligned
            hdr += b"\0" * (align_up(len(hdr), self.alignment) - len(hdr))
        return hdr

    def _write_tensor(self, f, pool, t: _TensorEntry):
        written = 0
        src = t.source
        if isinstance(src, ChunkedSource):
            blk = GGMLType.BLOCK[t.ggml_type][0]
            if src.chunk_elems % blk:
                raise ValueError("chunk size not a multiple of the block size")

            def job(args):
                i, start, count = args
                x = src.make_chunk(i, start, count)
                if x.size != count:
                    raise ValueError(f"{t.name}: chunk {i} has {x.size} elements, expected {count}")
                return convert_f32(x, t.ggml_type)

            pending = []
            it = iter(src.chunks())
            depth = 2 * self.threads
            for args in it:
                pending.append(pool.submit(job, args))
                if len(pending) >= depth:
                    buf = pending.pop(0).result()
                    f.write(memoryview(buf).cast("B"))
                    written += buf.nbytes
            for p in pending:
                buf = p.result()
                f.write(memoryview(buf).cast("B"))
                written += buf.nbytes
        else:
            buf = convert_f32(np.asarray(src, dtype=np.float32), t.ggml_type)
            f.write(memoryview(buf).cast("B"))
            written = buf.nbytes
        if written != t.nbytes:
            raise RuntimeError(f"{t.name}: wrote {written} bytes, expected {t.nbytes}")
        pad = align_up(t.nbytes, self.alignment) - t.nbytes
        if pad:
            f.write(b"\0" * pad)

    def _write_all(self, path: str, hdr: bytes, progress):
        with open(path, "wb") as f, \
                concurrent.futures.ThreadPoolExecutor(self.threads) as pool:
            f.write(hdr)
            for t in self.tensors.values():
                self._write_tensor(f, pool, t)
                if progress:
                    progress(t)

    def write(self, progress: Optional[Callable[[_TensorEntry], None]] = None):
        """Write the whole file.  A regular file is written to ``path + '.tmp'`` and
        renamed on success; a device or FIFO (e.g. /dev/null) is written in place."""
        hdr = self._header_bytes()
        if os.path.exists(self.path) and not os.path.isfile(self.path):
            self._write_all(self.path, hdr, progress)
            return
        tmp = self.path + ".tmp"
        try:
            self._write_all(tmp, hdr, progress)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


# ----------------------------------------------------------------------------
# Reader
# ----------------------------------------------------------------------------

@dataclass
class GGUFTensorInfo:
    name: str
    ne: tuple
    ggml_type: int
    offset: int
    nbytes: int = 0


class GGUFReader:
    """Small strict GGUF v2/v3 reader (little-endian only)."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self.file_size = os.fstat(f.fileno()).st_size
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.file_size else b""
        self._pos = 0
        self.kv: "OrderedDict[str, GGUFValue]" = OrderedDict()
        self.tensors: "OrderedDict[str, GGUFTensorInfo]" = OrderedDict()
        self._parse()

    # low-level helpers
    def _take(self, n: int) -> bytes:
        if n < 0 or n > len(self._buf) - self._pos:
            raise ValueError(f"truncated GGUF file at offset {self._pos}")
        b = self._buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _unpack(self, fmt: str):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _str(self) -> str:
        n = self._unpack("<Q")
        return self._take(n).decode("utf-8", "surrogateescape")

    def _array(self, depth=0) -> GGUFArray:
        et = self._unpack("<i")
        n = self._unpack("<Q")
        if et == GGUFValueType.STRING:
            return GGUFArray(et, [self._str() for _ in range(n)])
        if et == GGUFValueType.ARRAY:
            if depth > 16:
                raise ValueError("arrays nested too deeply")
            return GGUFArray(et, [self._array(depth + 1) for _ in range(n)])
        if et not in _VT_DTYPE:
            raise ValueError(f"bad array element type {et}")
        dt = _VT_DTYPE[et]
        if n > (len(self._buf) - self._pos) // dt.itemsize:
            raise ValueError("array larger than the file")
        arr = np.frombuffer(self._take(n * dt.itemsize), dtype=dt).copy()
        return GGUFArray(et, arr)

    def _value(self, t: int):
        if t == GGUFValueType.STRING:
            return self._str()
        if t == GGUFValueType.ARRAY:
            return self._array()
        if t == GGUFValueType.BOOL:
            return self._unpack("<B") != 0
        if t in _VT_STRUCT:
            return self._unpack(_VT_STRUCT[t])
        raise ValueError(f"bad value type {t}")

    def _parse(self):
        if self._take(4) != GGUF_MAGIC:
            raise ValueError("not a GGUF file")
        self.version = self._unpack("<I")
        if self.version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {self.version}")
        n_tensors = self._unpack("<Q")
        n_kv = self._unpack("<Q")
        for _ in range(n_kv):
            key = self._str()
            if key in self.kv:
                raise ValueError(f"duplicate key {key!r}")
            t = self._unpack("<i")
            self.kv[key] = GGUFValue(t, self._value(t))
        self.alignment = GGUF_DEFAULT_ALIGNMENT
        if "general.alignment" in self.kv:
            a = self.kv["general.alignment"]
            if a.type != GGUFValueType.UINT32 or a.value == 0 or a.value & (a.value - 1):
                raise ValueError("bad general.alignment")
            self.alignment = a.value
        for _ in range(n_tensors):
            name = self._str()
            if name in self.tensors:
                raise ValueError(f"duplicate tensor {name!r}")
            nd = self._unpack("<I")
            if nd > 4:
                raise ValueError("n_dims > 4")
            ne = tuple(self._unpack("<Q") for _ in range(nd))
            tt = self._unpack("<i")
            off = self._unpack("<Q")
            info = GGUFTensorInfo(name, ne, tt, off)
            if tt in GGMLType.BLOCK:
                info.nbytes = tensor_nbytes(ne, tt)
            self.tensors[name] = info
        self.end_of_infos = self._pos
        self.data_start = align_up(self._pos, self.alignment)

    # convenience
    def get(self, key: str, default=None):
        v = self.kv.get(key)
        return default if v is None else v.value

    def tensor_raw(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        start = self.data_start + t.offset
        if start + t.nbytes > self.file_size:
            raise ValueError(f"tensor {name} extends past the end of the file")
        return np.frombuffer(self._buf, dtype=np.uint8, count=t.nbytes, offset=start)

    def tensor_f32(self, name: str) -> np.ndarray:
        """Dequantized float32 data, numpy shape = reversed(ne)."""
        t = self.tensors[name]
        return dequantize(self.tensor_raw(name), t.ggml_type).reshape(tuple(reversed(t.ne)))

    def close(self):
        """Unmap the file (a no-op while arrays from tensor_raw() are still alive)."""
        if isinstance(self._buf, mmap.mmap):
            try:
                self._buf.close()
            except BufferError:
                pass
