"""deepseek.Model: an open GGUF model file — its facts, metadata and tensors."""

from __future__ import annotations

import enum
import json
import os
import re
import threading
import weakref
from collections.abc import Mapping
from ctypes import byref, c_double, c_int, c_int64, c_size_t, c_uint64, create_string_buffer, sizeof
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from . import _lib
from .errors import MetadataKeyError, StateError, Status, check

__all__ = ["Model", "Metadata", "LoadMode", "Precision", "LogLevel", "MetaType", "Gating",
           "RopeScaling", "version", "version_string"]


class LoadMode(enum.IntEnum):
    """ds_load_mode: how the weights are brought into memory."""
    MMAP = 0
    READ = 1
    HUGEPAGES = 2


class Precision(enum.IntEnum):
    """ds_precision: numeric precision of the compute path."""
    FAST = 0
    F32 = 1


class LogLevel(enum.IntEnum):
    """ds_log_level."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


class MetaType(enum.IntEnum):
    """ds_meta_type: GGUF metadata value types."""
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


class Gating(enum.IntEnum):
    """ds_gating: expert gating function."""
    NONE = 0
    SOFTMAX = 1
    SIGMOID = 2


class RopeScaling(enum.IntEnum):
    """ds_rope_scaling."""
    NONE = 0
    LINEAR = 1
    YARN = 2


def version() -> Tuple[int, int, int]:
    """(major, minor, patch) of the loaded library (from ds_version())."""
    return _lib.version_tuple()


def version_string() -> str:
    """ds_version_string() of the loaded library, e.g. "0.1.0"."""
    return _lib.decode(_lib.ds_version_string())


def _enum_arg(cls, value, what: str) -> int:
    """An enum argument given as a member, its int value or its (case-insensitive) name."""
    if isinstance(value, str):
        try:
            return int(cls[value.upper().replace("-", "_")])
        except KeyError:
            raise ValueError("%s must be one of %s, not %r"
                             % (what, ", ".join(repr(m.name.lower()) for m in cls), value)) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be a str or int, not %s" % (what, type(value).__name__))
    return int(value)


_INT_TYPES = frozenset({MetaType.UINT8, MetaType.INT8, MetaType.UINT16, MetaType.INT16,
                        MetaType.UINT32, MetaType.INT32, MetaType.UINT64, MetaType.INT64})
_FLOAT_TYPES = frozenset({MetaType.FLOAT32, MetaType.FLOAT64})

# ds_model_meta_string renders floats with printf %g: non-finite values come out as nan/inf,
# which JSON does not have. Rewrite those bare words (outside strings) for json.loads.
_JSON_NONFINITE = re.compile(r'"(?:[^"\\]|\\.)*"|-?\b(?:nan|inf(?:inity)?)\b', re.IGNORECASE)


def _json_fix(m: "re.Match[str]") -> str:
    t = m.group(0)
    if t.startswith('"'):
        return t
    neg = t.startswith("-")
    if t.lstrip("-")[0] in "nN":
        return "NaN"
    return "-Infinity" if neg else "Infinity"


def _parse_json_array(text: bytes) -> list:
    s = text.decode("utf-8", "surrogateescape")
    try:
        return json.loads(s)
    except ValueError:
        return json.loads(_JSON_NONFINITE.sub(_json_fix, s))


def _make_log_trampoline(log: Callable[[LogLevel, str], Any]):
    """Wrap a Python callable (level, message) as a ds_log_fn."""
    def trampoline(_user_data, level, message):
        try:
            lvl = LogLevel(level)
        except ValueError:
            lvl = level
        log(lvl, _lib.decode(message))
    return _lib.ds_log_fn(trampoline)


class Model:
    """An open model file (GGUF).

    ``Model(path, *, load_mode='mmap', n_threads=0, precision='fast', vocab_only=False,
    log=None, log_level='warn', repack=False)``

    - ``load_mode``: 'mmap' (default), 'read' or 'hugepages' (or a LoadMode);
    - ``repack``: with 'read' or 'hugepages', repack the weights for the 16-row decode kernels
      (ds_model_params.repack = DS_REPACK_WEIGHTS; experimental);
    - ``n_threads``: compute threads, 0 = all online CPUs;
    - ``precision``: 'fast' (bf16 matmuls where supported) or 'f32' (or a Precision);
    - ``vocab_only``: read only the tokenizer metadata, bind no weights (any architecture);
    - ``log``: a callable ``(level: LogLevel, message: str)`` receiving the library's
      diagnostics up to ``log_level`` ('error', 'warn', 'info', 'debug' or a LogLevel). It may
      be called from the library's worker threads; exceptions it raises are reported and
      ignored (they cannot cross the C boundary).

    Raises a :class:`~deepseek.errors.DeepSeekError` subclass on failure (DeepSeekIOError,
    FormatError, UnsupportedError, ...) carrying the library's message.

    A Model is immutable after opening and its read-only accessors may be used from several
    threads. Close it with :meth:`close` or a ``with`` block; it is also closed when garbage
    collected.
    """

    def __init__(self, path: Union[str, bytes, "os.PathLike[Any]"], *, load_mode="mmap",
                 n_threads: int = 0, precision="fast", vocab_only: bool = False,
                 log: Optional[Callable[[LogLevel, str], Any]] = None, log_level="warn",
                 repack: bool = False):
        self._handle = None
        self._lock = threading.RLock()
        # Every ctypes callback ever handed to the library stays referenced until close: a
        # worker thread may still be inside an old callback right after it was replaced.
        self._callbacks: list = []
        self._dependents: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._info: Optional[Dict[str, Any]] = None
        self._tensors: Optional[List[Dict[str, Any]]] = None
        self._meta_keys: Optional[Dict[str, int]] = None
        self.path = os.fsdecode(os.fspath(path))

        params = _lib.ds_model_params()
        check(_lib.ds_model_default_params(byref(params), sizeof(params)))
        params.load_mode = _enum_arg(LoadMode, load_mode, "load_mode")
        params.precision = _enum_arg(Precision, precision, "precision")
        if isinstance(n_threads, bool) or not isinstance(n_threads, int):
            raise TypeError("n_threads must be an int")
        params.n_threads = n_threads
        params.vocab_only = 1 if vocab_only else 0
        params.repack = 1 if repack else 0
        params.log_level = _enum_arg(LogLevel, log_level, "log_level")
        if log is not None:
            if not callable(log):
                raise TypeError("log must be a callable (level, message)")
            cb = _make_log_trampoline(log)
            self._callbacks.append(cb)
            params.log_fn = cb

        handle = _lib.ds_model_p()
        status = _lib.ds_model_open(byref(handle), os.fsencode(path), byref(params))
        check(status)
        self._handle = handle

    # ---- handle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            raise StateError(Status.ERR_STATE, "the model is closed")
        return h

    @property
    def _as_parameter_(self):
        """Lets a Model be passed directly where the C API takes a ds_model *."""
        return self._h()

    def _errmsg(self) -> str:
        h = self._handle
        return _lib.decode(_lib.ds_model_errmsg(h)) if h is not None else ""

    def _check(self, status: int) -> int:
        return check(status, self._errmsg)

    def _register_dependent(self, obj: Any) -> None:
        """For wrapper modules: `obj` (with a close() method) depends on this model and is
        closed before the model is (e.g. sessions, the model's tokenizer)."""
        self._h()
        self._dependents.add(obj)

    def close(self) -> None:
        """Close the model (first closing registered dependents). Safe to call more than once."""
        with self._lock:
            h = self._handle
            if h is None:
                return
            for dep in list(self._dependents):
                dep.close()
            self._dependents = weakref.WeakSet()
            self._handle = None
            _lib.ds_model_close(h)
            self._callbacks = []

    def __enter__(self) -> "Model":
        self._h()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # The object may be half-built (the constructor raised) or the interpreter may be
        # shutting down; close at most once and never raise from here.
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._handle is None:
            return "<deepseek.Model %r (closed)>" % self.path
        info = self.info
        return "<deepseek.Model %r: %s %r, %d tensors>" % (
            self.path, info["architecture"], info["name"], info["n_tensors"])

    # ---- logging ---------------------------------------------------------------------

    def set_log(self, log: Optional[Callable[[LogLevel, str], Any]], level="warn") -> None:
        """Replace the log callback (None: silence) and its most verbose level."""
        with self._lock:
            h = self._h()
            cb = _lib.ds_log_fn()  # NULL: silence
            if log is not None:
                if not callable(log):
                    raise TypeError("log must be a callable (level, message)")
                cb = _make_log_trampoline(log)
                self._callbacks.append(cb)
            self._check(_lib.ds_set_log_callback(h, _enum_arg(LogLevel, level, "level"), cb, None))

    # ---- facts -----------------------------------------------------------------------

    @property
    def info(self) -> Dict[str, Any]:
        """All fields of ds_model_info (but struct_size) as a dict; strings decoded. Counts are
        0 where they do not apply (every hyperparameter of a vocab_only model)."""
        h = self._h()
        if self._info is None:
            s = _lib.ds_model_info()
            s.struct_size = sizeof(s)
            self._check(_lib.ds_model_info_get(h, byref(s)))
            d: Dict[str, Any] = {}
            for name, _t in _lib.ds_model_info._fields_:
                if name == "struct_size":
                    continue
                v = getattr(s, name)
                d[name] = _lib.decode(v) if name in ("architecture", "name") else v
            self._info = d
        return dict(self._info)

    @property
    def metadata(self) -> "Metadata":
        """The GGUF metadata as a read-only Mapping key -> Python value."""
        self._h()
        return Metadata(self)

    # ---- tokenizer, sessions (deepseek.tokenizer, deepseek.session) ------------------

    @property
    def tokenizer(self):
        """The model's tokenizer (a deepseek.Tokenizer owned by the model; UnsupportedError if
        the file has no supported tokenizer)."""
        self._h()
        t = getattr(self, "_tokenizer", None)
        if t is None or t.closed:
            from .tokenizer import Tokenizer
            with self._lock:
                t = getattr(self, "_tokenizer", None)
                if t is None or t.closed:
                    t = self._tokenizer = Tokenizer._of_model(self)
        return t

    def session(self, **params):
        """Open a deepseek.Session on this model (see Session for the parameters)."""
        from .session import Session
        return Session(self, **params)

    @property
    def memory(self) -> Dict[str, Any]:
        """Memory of the model (ds_model_memory): {'mapped': bool, 'weights': bytes of the file
        held in memory, 'other': bytes of the model's own tables}. Sessions not included."""
        from .session import model_memory
        return model_memory(self)

    # ---- tensors ---------------------------------------------------------------------

    def _tensor(self, h, i: int) -> Dict[str, Any]:
        t = _lib.ds_tensor_info()
        t.struct_size = sizeof(t)
        self._check(_lib.ds_model_tensor_info(h, i, byref(t)))
        ne = [int(x) for x in t.ne]
        return {
            "name": _lib.decode(t.name),
            "type_name": _lib.decode(t.type_name),
            "type": int(t.type),
            "n_dims": int(t.n_dims),
            "ne": ne,
            "shape": tuple(ne[:t.n_dims]),
            "offset": int(t.offset),
            "nbytes": int(t.nbytes),
        }

    @property
    def tensors(self) -> List[Dict[str, Any]]:
        """Every tensor of the file in file order, as dicts with name, type_name, type, n_dims,
        ne (4 sizes, ggml order: ne[0] is the contiguous axis), shape (ne[:n_dims]), offset
        (byte offset of the data in the file) and nbytes."""
        h = self._h()
        if self._tensors is None:
            n = self.info["n_tensors"]
            self._tensors = [self._tensor(h, i) for i in range(n)]
        return [dict(t) for t in self._tensors]

    def tensor(self, name: str) -> Dict[str, Any]:
        """The tensor `name` (as in :attr:`tensors`); NotFoundError if there is none."""
        h = self._h()
        idx = c_uint64()
        self._check(_lib.ds_model_find_tensor(h, name.encode("utf-8"), byref(idx)))
        return self._tensor(h, idx.value)


class Metadata(Mapping):
    """Read-only view of a model's GGUF metadata: ``keys()`` in file order, ``m[key]`` ->
    int, float, bool, str or list (arrays, possibly nested). Missing keys raise
    MetadataKeyError (a KeyError and a deepseek NotFoundError)."""

    def __init__(self, model: Model):
        self._model = model

    def _keys(self) -> Dict[str, int]:
        """key -> index, read once per model (a model's metadata never changes)."""
        m = self._model
        h = m._h()
        if m._meta_keys is None:
            keys: Dict[str, int] = {}
            for i in range(int(_lib.ds_model_meta_count(h))):
                k = _lib.ds_model_meta_key(h, i)
                if k is None:
                    break
                keys.setdefault(k.decode("utf-8", "surrogateescape"), i)
            m._meta_keys = keys
        return m._meta_keys

    def _kb(self, key: Union[str, bytes]) -> bytes:
        if isinstance(key, str):
            return key.encode("utf-8", "surrogateescape")
        if isinstance(key, bytes):
            return key
        raise TypeError("metadata keys are str, not %s" % type(key).__name__)

    def __len__(self) -> int:
        return len(self._keys())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys()))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "surrogateescape")
        return isinstance(key, str) and key in self._keys()

    def _call(self, status: int, key: bytes) -> None:
        if status == Status.ERR_NOT_FOUND:
            msg = _lib.last_error() or self._model._errmsg()
            raise MetadataKeyError(status, msg or "metadata key %r not found"
                                   % key.decode("utf-8", "replace"))
        self._model._check(status)

    def type(self, key: str) -> MetaType:
        """The GGUF value type of `key`."""
        self._missing(key)
        t = c_int()
        kb = self._kb(key)
        self._call(_lib.ds_model_meta_type(self._model._h(), kb, byref(t)), kb)
        try:
            return MetaType(t.value)
        except ValueError:
            return t.value  # type: ignore[return-value]

    def raw(self, key: str) -> bytes:
        """The value as the library renders it as text (ds_model_meta_string): a string value's
        raw bytes, numbers in decimal, arrays as JSON."""
        self._missing(key)
        h = self._model._h()
        kb = self._kb(key)
        needed = c_size_t(0)
        cap = 256  # most values fit: no failing size query (and no error logged) for them
        while True:
            buf = create_string_buffer(cap)
            st = _lib.ds_model_meta_string(h, kb, buf, cap, byref(needed))
            if st == Status.OK:
                return buf.raw[:max(int(needed.value) - 1, 0)]
            if st != Status.ERR_BUFFER_TOO_SMALL or needed.value <= cap:
                self._call(st, kb)
                raise AssertionError("unreachable")  # pragma: no cover
            cap = int(needed.value)

    def text(self, key: str) -> str:
        """:meth:`raw` decoded as UTF-8 (invalid bytes become U+FFFD)."""
        return self.raw(key).decode("utf-8", "replace")

    def _missing(self, key: Any) -> None:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "surrogateescape")
        if not isinstance(key, str):
            raise TypeError("metadata keys are str, not %s" % type(key).__name__)
        if key not in self._keys():
            raise MetadataKeyError(Status.ERR_NOT_FOUND, "metadata key '%s' not found" % key)

    def __getitem__(self, key: str) -> Any:
        self._missing(key)
        h = self._model._h()
        kb = self._kb(key)
        t = self.type(key)
        if t in _INT_TYPES or t == MetaType.BOOL:
            v = c_int64()
            st = _lib.ds_model_meta_int(h, kb, byref(v))
            if st == Status.OK:
                return bool(v.value) if t == MetaType.BOOL else int(v.value)
            if t == MetaType.UINT64 and st == Status.ERR_INVALID_ARG:
                return int(self.raw(key))  # above INT64_MAX
            self._call(st, kb)
        if t in _FLOAT_TYPES:
            d = c_double()
            self._call(_lib.ds_model_meta_float(h, kb, byref(d)), kb)
            return float(d.value)
        if t == MetaType.STRING:
            return self.raw(key).decode("utf-8", "replace")
        if t == MetaType.ARRAY:
            return _parse_json_array(self.raw(key))
        return self.raw(key).decode("utf-8", "replace")  # a type newer than these bindings

    def __repr__(self) -> str:
        return "<deepseek.Metadata of %r: %d keys>" % (self._model.path, len(self))
