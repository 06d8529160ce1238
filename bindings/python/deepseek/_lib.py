"""Finding and loading libdeepseek, and the ctypes declarations of its C ABI.

Every function of ``include/deepseek/deepseek.h`` is declared here with its exact ``argtypes``
and ``restype``. Wrapper modules for the other headers (tokenizer, chat, session, ...) declare
theirs in their own module with :func:`fn`, e.g.::

    from deepseek import _lib
    from deepseek._lib import fn, opaque, ds_status
    ds_tokenizer = opaque("ds_tokenizer")
    ds_tokenizer_open = fn("ds_tokenizer_open", ds_status,
                           POINTER(POINTER(ds_tokenizer)), c_char_p)

and may register their enums / structs with :func:`register_type` so that the signature test
(tests/test_model.py) can compare every declaration with the C headers.

Library search order (the first hit is loaded; the soname is ``libdeepseek.so.<ABI major>``):

1. ``$DEEPSEEK_LIBRARY`` — a path to the shared library (an error if it cannot be loaded);
2. ``$DEEPSEEK_BUILD_DIR/libdeepseek.so.0``;
3. ``build/libdeepseek.so.0`` at the top of the source tree this package lives in;
4. the system: ``ctypes.util.find_library('deepseek')``, then ``libdeepseek.so.0`` through the
   dynamic loader's search path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, Dict, Optional, Tuple

# The C API version these bindings were written for (DS_VERSION_* of deepseek/version.h).
BINDINGS_VERSION: Tuple[int, int, int] = (0, 1, 0)
# ABI major: the soname is libdeepseek.so.<ABI_MAJOR>.
ABI_MAJOR = 0
SONAME = "libdeepseek.so.%d" % ABI_MAJOR

_HERE = os.path.dirname(os.path.abspath(__file__))
# bindings/python/deepseek -> top of the source tree
SOURCE_ROOT = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))


# ------------------------------------------------------------------------------------------
# Locating and loading the library
# ------------------------------------------------------------------------------------------

def candidates() -> list:
    """The places the library is looked for, in order: a list of (origin, path-or-name)."""
    out = []
    env = os.environ.get("DEEPSEEK_LIBRARY")
    if env:
        out.append(("DEEPSEEK_LIBRARY", env))
    build_dir = os.environ.get("DEEPSEEK_BUILD_DIR")
    if build_dir:
        out.append(("DEEPSEEK_BUILD_DIR", os.path.join(build_dir, SONAME)))
    out.append(("source tree build/", os.path.join(SOURCE_ROOT, "build", SONAME)))
    found = ctypes.util.find_library("deepseek")
    if found and os.path.basename(found).startswith(SONAME):
        out.append(("find_library", found))
    out.append(("dynamic loader", SONAME))
    return out


def _load() -> Tuple[ctypes.CDLL, str]:
    tried = []
    for origin, name in candidates():
        is_path = os.sep in name
        if is_path and not os.path.exists(name):
            if origin == "DEEPSEEK_LIBRARY":
                raise ImportError("DEEPSEEK_LIBRARY=%s: no such file" % name)
            tried.append("%s: %s (not found)" % (origin, name))
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            if origin == "DEEPSEEK_LIBRARY":
                raise ImportError("DEEPSEEK_LIBRARY=%s cannot be loaded: %s" % (name, e)) from e
            tried.append("%s: %s (%s)" % (origin, name, e))
    raise ImportError("libdeepseek (%s) not found; set DEEPSEEK_LIBRARY to the path of the "
                      "shared library or DEEPSEEK_BUILD_DIR to a build directory. Tried:\n  %s"
                      % (SONAME, "\n  ".join(tried)))


lib, path = _load()
"""The loaded ``ctypes.CDLL`` and the path or name it was loaded from."""

# ------------------------------------------------------------------------------------------
# Type registry
# ------------------------------------------------------------------------------------------

#: C type name (as written in the headers) -> ctypes type, for enums, structs, opaque handles
#: and function-pointer types of the public headers.
TYPES: Dict[str, Any] = {}
_types_lock = threading.Lock()


def register_type(name: str, ctype: Any) -> Any:
    """Record the ctypes equivalent of the C type `name` (an enum, struct or callback typedef).
    Registering the same name twice with a different type is an error."""
    with _types_lock:
        old = TYPES.get(name)
        if old is not None and old is not ctype:
            raise TypeError("C type %s is already registered as %r" % (name, old))
        TYPES[name] = ctype
    return ctype


def opaque(name: str) -> Any:
    """The ctypes stand-in for an opaque handle type `name` (``typedef struct name name;``).
    Use ``POINTER(opaque(name))`` in signatures. The same class is returned on every call."""
    with _types_lock:
        t = TYPES.get(name)
        if t is None:
            t = type(name, (Structure,), {"_fields_": [], "__doc__": "opaque %s" % name})
            TYPES[name] = t
        return t


def enum(name: str) -> Any:
    """Register a C enum type: enums are passed as C int."""
    return register_type(name, c_int)


# ------------------------------------------------------------------------------------------
# Function registry
# ------------------------------------------------------------------------------------------

#: function name -> (restype, argtypes) of every function declared so far.
SIGNATURES: Dict[str, Tuple[Any, Tuple[Any, ...]]] = {}


def fn(name: str, restype: Any, *argtypes: Any, optional: bool = False):
    """Declare the C function `name` of the loaded library and return it.

    The signature is recorded in SIGNATURES. Declaring a function again with the same signature
    returns it again; with a different one raises TypeError. A symbol missing from the library
    raises ImportError, or returns None when `optional` is true.
    """
    sig = (restype, tuple(argtypes))
    with _types_lock:
        old = SIGNATURES.get(name)
        if old is not None and old != sig:
            raise TypeError("%s is already declared with a different signature" % name)
        try:
            f = getattr(lib, name)
        except AttributeError:
            if optional:
                return None
            raise ImportError("%s does not export %s (the library is older than these bindings?)"
                              % (path, name)) from None
        f.restype = restype
        f.argtypes = list(argtypes)
        SIGNATURES[name] = sig
        return f


# ------------------------------------------------------------------------------------------
# deepseek/deepseek.h
# ------------------------------------------------------------------------------------------

ds_status = enum("ds_status")
ds_log_level = enum("ds_log_level")
ds_load_mode = enum("ds_load_mode")
ds_precision = enum("ds_precision")
ds_repack = enum("ds_repack")
ds_gating = enum("ds_gating")
ds_rope_scaling = enum("ds_rope_scaling")
ds_meta_type = enum("ds_meta_type")

ds_model = opaque("ds_model")
ds_model_p = POINTER(ds_model)

#: typedef void (*ds_log_fn)(void *user_data, ds_log_level level, const char *message);
ds_log_fn = register_type("ds_log_fn", CFUNCTYPE(None, c_void_p, ds_log_level, c_char_p))
#: typedef int (*ds_abort_fn)(void *user_data);
ds_abort_fn = register_type("ds_abort_fn", CFUNCTYPE(c_int, c_void_p))
#: typedef void (*ds_progress_fn)(void *user_data, uint64_t done, uint64_t total);
ds_progress_fn = register_type("ds_progress_fn", CFUNCTYPE(None, c_void_p, c_uint64, c_uint64))


class ds_model_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("load_mode", c_uint32),
        ("n_threads", c_int32),
        ("precision", c_uint32),
        ("vocab_only", c_uint32),
        ("log_level", ds_log_level),
        ("log_fn", ds_log_fn),
        ("log_user_data", c_void_p),
        ("progress_fn", ds_progress_fn),
        ("progress_user_data", c_void_p),
        ("abort_fn", ds_abort_fn),
        ("abort_user_data", c_void_p),
        ("repack", c_uint32),
    ]


class ds_model_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("architecture", c_char_p),
        ("name", c_char_p),
        ("file_size", c_uint64),
        ("n_params", c_uint64),
        ("n_tensors", c_uint64),
        ("n_vocab", c_uint32),
        ("n_ctx_train", c_uint32),
        ("n_embd", c_uint32),
        ("n_layer", c_uint32),
        ("n_head", c_uint32),
        ("n_head_kv", c_uint32),
        ("n_ff", c_uint32),
        ("q_lora_rank", c_uint32),
        ("kv_lora_rank", c_uint32),
        ("qk_nope_head_dim", c_uint32),
        ("qk_rope_head_dim", c_uint32),
        ("v_head_dim", c_uint32),
        ("n_expert", c_uint32),
        ("n_expert_used", c_uint32),
        ("n_expert_shared", c_uint32),
        ("n_ff_expert", c_uint32),
        ("n_leading_dense", c_uint32),
        ("n_expert_groups", c_uint32),
        ("n_expert_groups_used", c_uint32),
        ("gating", c_uint32),
        ("expert_weights_norm", c_uint32),
        ("expert_weights_scale", c_float),
        ("rms_norm_eps", c_float),
        ("rope_freq_base", c_float),
        ("rope_scaling", c_uint32),
        ("rope_scaling_factor", c_float),
        ("rope_orig_ctx", c_uint32),
        ("yarn_mscale_all_dim", c_float),
        ("yarn_beta_fast", c_float),
        ("yarn_beta_slow", c_float),
        ("kv_split", c_uint32),
        ("kv_bytes_per_token", c_uint64),
    ]


class ds_tensor_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("name", c_char_p),
        ("type_name", c_char_p),
        ("type", c_uint32),
        ("n_dims", c_uint32),
        ("ne", c_uint64 * 4),
        ("offset", c_uint64),
        ("nbytes", c_uint64),
    ]


register_type("ds_model_params", ds_model_params)
register_type("ds_model_info", ds_model_info)
register_type("ds_tensor_info", ds_tensor_info)

ds_status_string = fn("ds_status_string", c_char_p, ds_status)
ds_last_error = fn("ds_last_error", c_char_p)
ds_version = fn("ds_version", c_uint32)
ds_version_string = fn("ds_version_string", c_char_p)
ds_model_default_params = fn("ds_model_default_params", ds_status,
                             POINTER(ds_model_params), c_size_t)
ds_model_open = fn("ds_model_open", ds_status,
                   POINTER(ds_model_p), c_char_p, POINTER(ds_model_params))
ds_model_close = fn("ds_model_close", None, ds_model_p)
ds_model_errmsg = fn("ds_model_errmsg", c_char_p, ds_model_p)
ds_set_log_callback = fn("ds_set_log_callback", ds_status,
                         ds_model_p, ds_log_level, ds_log_fn, c_void_p)
ds_model_info_get = fn("ds_model_info_get", ds_status, ds_model_p, POINTER(ds_model_info))
ds_model_meta_count = fn("ds_model_meta_count", c_uint64, ds_model_p)
ds_model_meta_key = fn("ds_model_meta_key", c_char_p, ds_model_p, c_uint64)
ds_model_meta_type = fn("ds_model_meta_type", ds_status,
                        ds_model_p, c_char_p, POINTER(ds_meta_type))
ds_model_meta_int = fn("ds_model_meta_int", ds_status, ds_model_p, c_char_p, POINTER(c_int64))
ds_model_meta_float = fn("ds_model_meta_float", ds_status,
                         ds_model_p, c_char_p, POINTER(c_double))
ds_model_meta_string = fn("ds_model_meta_string", ds_status,
                          ds_model_p, c_char_p, c_char_p, c_size_t, POINTER(c_size_t))
ds_model_tensor_info = fn("ds_model_tensor_info", ds_status,
                          ds_model_p, c_uint64, POINTER(ds_tensor_info))
ds_model_find_tensor = fn("ds_model_find_tensor", ds_status,
                          ds_model_p, c_char_p, POINTER(c_uint64))
ds_free = fn("ds_free", None, c_void_p)


# ------------------------------------------------------------------------------------------
# Small helpers shared by the wrapper modules
# ------------------------------------------------------------------------------------------

def decode(b: Optional[bytes]) -> str:
    """Library text (UTF-8 bytes or NULL) as str; invalid bytes become U+FFFD."""
    return "" if b is None else b.decode("utf-8", "replace")


def last_error() -> str:
    """ds_last_error() of the calling thread, as str."""
    return decode(ds_last_error())


def status_string(status: int) -> str:
    """ds_status_string() as str."""
    return decode(ds_status_string(status))


def version_tuple() -> Tuple[int, int, int]:
    """(major, minor, patch) of the loaded library."""
    v = int(ds_version())
    return (v // 10000, v // 100 % 100, v % 100)


def _check_version() -> None:
    loaded = version_tuple()
    if loaded[0] != BINDINGS_VERSION[0]:
        raise ImportError("%s is libdeepseek %s, but these bindings were written for %d.x "
                          "(major versions must match)"
                          % (path, decode(ds_version_string()), BINDINGS_VERSION[0]))


_check_version()
