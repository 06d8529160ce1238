"""Tests of deepseek (ctypes bindings): loading, Model, metadata, tensors, errors, ABI mirrors."""

import ctypes
import gc
import importlib
import math
import os
import pkgutil
import re
import subprocess
import sys
import threading

import pytest

import deepseek
from deepseek import _lib, errors
from deepseek.model import _parse_json_array

INCLUDE_DIR = os.path.join(os.path.dirname(_lib.__file__), "..", "..", "..", "include")
INCLUDE_DIR = os.path.normpath(INCLUDE_DIR)


# ------------------------------------------------------------------------------------------
# library, version
# ------------------------------------------------------------------------------------------

def test_version():
    v = deepseek.version()
    assert isinstance(v, tuple) and len(v) == 3
    assert deepseek.version_string() == "%d.%d.%d" % v
    assert v[0] == _lib.BINDINGS_VERSION[0]
    assert int(_lib.ds_version()) == v[0] * 10000 + v[1] * 100 + v[2]


def test_version_mismatch_is_import_error(monkeypatch):
    monkeypatch.setattr(_lib, "BINDINGS_VERSION", (_lib.version_tuple()[0] + 1, 0, 0))
    with pytest.raises(ImportError, match="major versions must match"):
        _lib._check_version()


def _run_python(code, env_update, drop=()):
    env = dict(os.environ)
    for k in drop:
        env.pop(k, None)
    env.update(env_update)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(_lib.__file__))
    return subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def test_deepseek_library_env_missing_file():
    r = _run_python("import deepseek", {"DEEPSEEK_LIBRARY": "/nonexistent/libdeepseek.so.0"})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "DEEPSEEK_LIBRARY" in r.stderr


def test_build_dir_env():
    libdir = os.path.dirname(os.path.realpath(_lib.path)) if os.sep in _lib.path else None
    if not libdir or not os.path.exists(os.path.join(libdir, _lib.SONAME)):
        pytest.skip("the loaded library is not in a directory holding %s" % _lib.SONAME)
    r = _run_python("from deepseek import _lib; print(_lib.path)",
                    {"DEEPSEEK_BUILD_DIR": libdir}, drop=("DEEPSEEK_LIBRARY",))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(libdir, _lib.SONAME)


def test_candidates_order(monkeypatch):
    monkeypatch.setenv("DEEPSEEK_LIBRARY", "/a/libdeepseek.so.0")
    monkeypatch.setenv("DEEPSEEK_BUILD_DIR", "/b")
    c = _lib.candidates()
    assert c[0] == ("DEEPSEEK_LIBRARY", "/a/libdeepseek.so.0")
    assert c[1] == ("DEEPSEEK_BUILD_DIR", os.path.join("/b", _lib.SONAME))
    assert c[2][1] == os.path.join(_lib.SOURCE_ROOT, "build", _lib.SONAME)
    assert c[-1] == ("dynamic loader", _lib.SONAME)


# ------------------------------------------------------------------------------------------
# opening a deepseek2 model: info, metadata, tensors
# ------------------------------------------------------------------------------------------

def test_info(tiny_model):
    with deepseek.Model(tiny_model) as m:
        info = m.info
        md = m.metadata
        assert info["architecture"] == "deepseek2"
        assert info["name"] == "py-tiny"
        assert "struct_size" not in info
        assert set(info) == {f for f, _ in _lib.ds_model_info._fields_} - {"struct_size"}
        assert info["file_size"] == os.path.getsize(tiny_model)
        assert info["n_embd"] == md["deepseek2.embedding_length"] == 64
        assert info["n_layer"] == md["deepseek2.block_count"] == 2
        assert info["n_head"] == md["deepseek2.attention.head_count"]
        assert info["n_vocab"] == md["deepseek2.vocab_size"]
        assert info["kv_lora_rank"] == md["deepseek2.attention.kv_lora_rank"]
        assert info["n_expert"] == md["deepseek2.expert_count"]
        assert info["q_lora_rank"] == 0
        assert info["gating"] == deepseek.Gating.SOFTMAX
        assert info["rope_scaling"] == deepseek.RopeScaling.YARN
        assert info["rms_norm_eps"] == pytest.approx(1e-6, rel=1e-6)
        assert info["kv_split"] == 1
        assert info["n_tensors"] == len(m.tensors)
        # the dict is a copy
        info["n_embd"] = -1
        assert m.info["n_embd"] == 64


def test_tensors(tiny_model):
    with deepseek.Model(tiny_model) as m:
        ts = m.tensors
        info = m.info
        assert len(ts) == info["n_tensors"] > 0
        names = [t["name"] for t in ts]
        assert len(set(names)) == len(names)
        assert info["n_params"] == sum(math.prod(t["ne"]) for t in ts)
        for t in ts:
            assert t["type_name"] == "F32" and t["type"] == 0
            assert 1 <= t["n_dims"] <= 4
            assert t["shape"] == tuple(t["ne"][:t["n_dims"]])
            assert all(x == 1 for x in t["ne"][t["n_dims"]:])
            assert t["nbytes"] == 4 * math.prod(t["ne"])
            assert 0 < t["offset"] and t["offset"] + t["nbytes"] <= info["file_size"]
        emb = m.tensor("token_embd.weight")
        assert emb["shape"] == (info["n_embd"], info["n_vocab"])
        assert emb == ts[names.index("token_embd.weight")]
        assert "blk.1.ffn_gate_exps.weight" in names
        with pytest.raises(deepseek.NotFoundError, match="no.such.tensor") as ei:
            m.tensor("no.such.tensor")
        assert ei.value.status == deepseek.Status.ERR_NOT_FOUND


def test_metadata_mapping(tiny_model):
    with deepseek.Model(tiny_model) as m:
        md = m.metadata
        keys = list(md)
        assert len(keys) == len(md) == int(_lib.ds_model_meta_count(m)) > 10
        assert keys[0] == "general.architecture"
        assert md["general.architecture"] == "deepseek2"
        assert md["general.name"] == "py-tiny"
        assert md.type("general.name") == deepseek.MetaType.STRING
        a = md["general.alignment"]
        assert type(a) is int and a == 32
        eps = md["deepseek2.attention.layer_norm_rms_epsilon"]
        assert type(eps) is float and eps == pytest.approx(1e-6, rel=1e-6)
        assert md.type("deepseek2.expert_weights_norm") == deepseek.MetaType.BOOL
        assert md["deepseek2.expert_weights_norm"] is False
        assert md.raw("general.alignment") == b"32"
        assert md.text("general.name") == "py-tiny"
        assert "general.name" in md and "no.such.key" not in md and 5 not in md
        assert md.get("no.such.key", 7) == 7
        with pytest.raises(KeyError):
            md["no.such.key"]
        with pytest.raises(deepseek.NotFoundError):
            md.type("no.such.key")
        d = dict(md)
        assert d["general.architecture"] == "deepseek2" and len(d) == len(keys)


def test_metadata_arrays_vocab_only(vocab_gguf):
    with deepseek.Model(vocab_gguf, vocab_only=True) as m:
        info = m.info
        assert info["architecture"] == "llama"
        assert info["n_tensors"] == 0 and info["n_layer"] == 0 and m.tensors == []
        md = m.metadata
        assert md.type("tokenizer.ggml.tokens") == deepseek.MetaType.ARRAY
        toks = md["tokenizer.ggml.tokens"]
        assert isinstance(toks, list) and len(toks) == md["llama.vocab_size"] == 102400
        assert all(isinstance(t, str) for t in toks[:100])
        assert toks[0] == "!" and toks[1] == '"'  # a JSON-escaped string
        types = md["tokenizer.ggml.token_type"]
        assert len(types) == len(toks) and set(types) <= set(range(7))
        merges = md["tokenizer.ggml.merges"]
        assert merges[0] == "Ġ Ġ"
        assert md["tokenizer.ggml.add_bos_token"] is True
        assert md["tokenizer.ggml.bos_token_id"] == 100000
        assert md["tokenizer.ggml.pre"] == "deepseek-llm"
        assert md.raw("tokenizer.ggml.token_type").startswith(b"[1,1,")


def test_json_array_parsing():
    assert _parse_json_array(b'[1,2,3]') == [1, 2, 3]
    assert _parse_json_array(b'[["a","b"],[]]') == [["a", "b"], []]
    v = _parse_json_array(b'[1.5,nan,-nan,inf,-inf,1e+30]')
    assert v[0] == 1.5 and math.isnan(v[1]) and math.isnan(v[2])
    assert v[3] == math.inf and v[4] == -math.inf and v[5] == 1e30
    assert _parse_json_array(b'["nan","inf",nan]')[:2] == ["nan", "inf"]
    assert _parse_json_array('["\\u0001\\"é"]'.encode()) == ['\x01"é']


@pytest.mark.parametrize("kw", [
    dict(load_mode="read"), dict(load_mode="hugepages"), dict(load_mode=deepseek.LoadMode.MMAP),
    dict(precision="f32", n_threads=1), dict(vocab_only=True),
])
def test_open_options(tiny_model, kw):
    with deepseek.Model(tiny_model, **kw) as m:
        assert m.info["architecture"] == "deepseek2"
        assert m.metadata["general.name"] == "py-tiny"


def test_concurrent_reads(tiny_model):
    with deepseek.Model(tiny_model) as m:
        expect = (m.info, dict(m.metadata), m.tensors)
        results, errs = [], []

        def work():
            try:
                for _ in range(20):
                    m._meta_keys = None
                    results.append((m.info, dict(m.metadata), [m.tensor(t["name"]) for t in m.tensors]))
            except Exception as e:  # pragma: no cover
                errs.append(e)

        th = [threading.Thread(target=work) for _ in range(4)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        assert not errs
        assert all(r[0] == expect[0] and r[1] == expect[1] and r[2] == expect[2] for r in results)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

def test_nonexistent_path_is_io_error(tmp_path):
    p = str(tmp_path / "nope.gguf")
    with pytest.raises(deepseek.DeepSeekIOError) as ei:
        deepseek.Model(p)
    e = ei.value
    assert isinstance(e, OSError) and isinstance(e, deepseek.DeepSeekError)
    assert e.status == deepseek.Status.ERR_IO == -2
    assert p in e.message and str(e) == e.message
    assert e.errno is None


def test_garbage_is_format_error(garbage_file):
    with pytest.raises(deepseek.FormatError) as ei:
        deepseek.Model(garbage_file)
    assert ei.value.status == deepseek.Status.ERR_FORMAT
    assert garbage_file in ei.value.message and "GGUF" in ei.value.message


def test_truncated_model_is_format_error(tiny_model, tmp_path):
    data = open(tiny_model, "rb").read()
    p = tmp_path / "truncated.gguf"
    p.write_bytes(data[:len(data) // 2])
    with pytest.raises(deepseek.FormatError):
        deepseek.Model(str(p))


def test_unknown_architecture_is_unsupported(vocab_gguf):
    with pytest.raises(deepseek.UnsupportedError, match="llama") as ei:
        deepseek.Model(vocab_gguf)
    assert ei.value.status == deepseek.Status.ERR_UNSUPPORTED
    with deepseek.Model(vocab_gguf, vocab_only=True) as m:
        assert m.metadata["general.architecture"] == "llama"


def test_invalid_arguments(tiny_model):
    with pytest.raises(deepseek.InvalidArgumentError, match="n_threads -1") as ei:
        deepseek.Model(tiny_model, n_threads=-1)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(deepseek.InvalidArgumentError, match="load_mode 7"):
        deepseek.Model(tiny_model, load_mode=7)
    with pytest.raises(ValueError, match="load_mode"):
        deepseek.Model(tiny_model, load_mode="bogus")
    with pytest.raises(ValueError, match="precision"):
        deepseek.Model(tiny_model, precision="f64")
    with pytest.raises(TypeError):
        deepseek.Model(tiny_model, n_threads="2")


def test_exception_classes():
    expect = {
        -1: deepseek.InvalidArgumentError, -2: deepseek.DeepSeekIOError,
        -3: deepseek.FormatError, -4: deepseek.UnsupportedError,
        -5: deepseek.OutOfMemoryError, -6: deepseek.ContextFullError,
        -7: deepseek.CancelledError, -8: deepseek.BufferTooSmallError,
        -9: deepseek.NotFoundError, -10: deepseek.StateError,
        -11: deepseek.ModelMismatchError, -12: deepseek.InternalError,
    }
    for status, cls in expect.items():
        assert errors.exception_class(status) is cls
        assert cls.STATUS == status
        e = errors.error(status)
        assert type(e) is cls and e.status == status
        assert e.message == _lib.status_string(status)  # default text from the library
        assert issubclass(cls, deepseek.DeepSeekError)
    assert issubclass(deepseek.DeepSeekIOError, OSError)
    assert issubclass(deepseek.OutOfMemoryError, MemoryError)
    assert issubclass(deepseek.NotFoundError, LookupError)
    assert not issubclass(deepseek.NotFoundError, KeyError)
    assert issubclass(deepseek.MetadataKeyError, KeyError)
    assert errors.exception_class(-99) is deepseek.DeepSeekError
    assert {int(s) for s in deepseek.Status if s < 0} == set(expect)
    # every status code has a library description
    for s in deepseek.Status:
        assert _lib.status_string(s) and _lib.status_string(s) != "unknown status"


def test_check_uses_last_error_of_this_thread():
    assert deepseek.check(0) == 0
    assert deepseek.check(1) == 1 and deepseek.check(2) == 2
    st = _lib.ds_model_default_params(None, 0)
    with pytest.raises(deepseek.InvalidArgumentError, match="params is NULL"):
        deepseek.check(st)
    # the message is per thread: another thread that has not failed sees none
    seen = []
    t = threading.Thread(target=lambda: seen.append(_lib.last_error()))
    t.start()
    t.join()
    assert seen == [""]
    # with no thread message, the handle message and then the status text are used
    other = []

    def fresh_thread():
        try:
            deepseek.check(-9, lambda: "from the handle")
        except deepseek.NotFoundError as e:
            other.append(e.message)
        try:
            deepseek.check(-12)
        except deepseek.InternalError as e:
            other.append(e.message)

    t = threading.Thread(target=fresh_thread)
    t.start()
    t.join()
    assert other == ["from the handle", _lib.status_string(-12)]


def test_pickle_exception():
    import pickle
    for cls in (deepseek.DeepSeekIOError, deepseek.FormatError, deepseek.MetadataKeyError):
        e = pickle.loads(pickle.dumps(cls(cls.STATUS, "msg")))
        assert type(e) is cls and e.status == cls.STATUS and e.message == "msg"


# ------------------------------------------------------------------------------------------
# lifetime, context manager, logging
# ------------------------------------------------------------------------------------------

def test_context_manager_and_double_close(tiny_model):
    with deepseek.Model(tiny_model) as m:
        assert not m.closed
    assert m.closed
    with pytest.raises(deepseek.StateError, match="closed"):
        m.info
    with pytest.raises(deepseek.StateError):
        m.metadata
    with pytest.raises(deepseek.StateError):
        m.tensors
    with pytest.raises(ctypes.ArgumentError, match="closed"):
        _lib.ds_model_meta_count(m)  # _as_parameter_ refuses a closed model
    m.close()
    m.close()
    assert "closed" in repr(m)
    m.__del__()  # after close: nothing happens

    # closed on exceptions too
    with pytest.raises(RuntimeError):
        with deepseek.Model(tiny_model) as m2:
            raise RuntimeError("boom")
    assert m2.closed

    # close() of a live model, then the with-block exit
    with deepseek.Model(tiny_model) as m3:
        m3.close()
    assert m3.closed


def test_dependents_closed_first(tiny_model):
    order = []

    class Dep:
        def close(self):
            order.append("dep")

    m = deepseek.Model(tiny_model)
    d = Dep()
    m._register_dependent(d)
    m.close()
    m.close()
    assert order == ["dep"]


def test_del_is_safe(tiny_model, garbage_file):
    caught = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: caught.append(u)
    try:
        m = deepseek.Model(tiny_model)
        del m
        try:
            deepseek.Model(garbage_file)  # a half-built object gets collected
        except deepseek.FormatError:
            pass
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert caught == []


def test_log_callback(tiny_model, garbage_file):
    msgs = []
    with deepseek.Model(tiny_model, log=lambda lvl, s: msgs.append((lvl, s)),
                        log_level="debug") as m:
        assert any(lvl == deepseek.LogLevel.INFO and "opened" in s and tiny_model in s
                   for lvl, s in msgs), msgs
        assert all(isinstance(lvl, deepseek.LogLevel) and isinstance(s, str) for lvl, s in msgs)
        # the ctypes callback is kept alive by the model
        gc.collect()
        msgs.clear()
        with pytest.raises(deepseek.NotFoundError):
            m.tensor("missing.tensor")
        assert any(lvl == deepseek.LogLevel.DEBUG and "missing.tensor" in s for lvl, s in msgs)

        # replace the callback; a lower level filters debug messages out
        other = []
        m.set_log(lambda lvl, s: other.append(s), "warn")
        msgs.clear()
        with pytest.raises(deepseek.NotFoundError):
            m.tensor("missing.tensor")
        assert msgs == [] and other == []
        m.set_log(lambda lvl, s: other.append(s), deepseek.LogLevel.DEBUG)
        with pytest.raises(deepseek.NotFoundError):
            m.tensor("missing.tensor")
        assert len(other) == 1
        m.set_log(None)
        with pytest.raises(deepseek.NotFoundError):
            m.tensor("missing.tensor")
        assert len(other) == 1
        with pytest.raises(deepseek.InvalidArgumentError, match="unknown level 9"):
            m.set_log(None, 9)

    # the default level (warn) does not deliver info messages
    quiet = []
    with deepseek.Model(tiny_model, log=lambda lvl, s: quiet.append(s)):
        pass
    assert quiet == []

    # a failed open reports its error through the callback
    errs = []
    with pytest.raises(deepseek.FormatError) as ei:
        deepseek.Model(garbage_file, log=lambda lvl, s: errs.append((lvl, s)), log_level="error")
    assert (deepseek.LogLevel.ERROR, ei.value.message) in errs


# ------------------------------------------------------------------------------------------
# ABI mirrors: struct layouts and function signatures against the C headers
# ------------------------------------------------------------------------------------------

STRUCTS = [_lib.ds_model_params, _lib.ds_model_info, _lib.ds_tensor_info]


def _version_h_dir(tmp_path):
    """A directory holding deepseek/version.h: the build directory's, else one made up from the
    loaded library's version (struct layouts do not depend on it)."""
    dirs = []
    if os.sep in _lib.path:
        dirs.append(os.path.join(os.path.dirname(os.path.realpath(_lib.path)), "include"))
        dirs.append(os.path.join(os.path.dirname(os.path.abspath(_lib.path)), "include"))
    if os.environ.get("DEEPSEEK_BUILD_DIR"):
        dirs.append(os.path.join(os.environ["DEEPSEEK_BUILD_DIR"], "include"))
    dirs.append(os.path.join(_lib.SOURCE_ROOT, "build", "include"))
    for d in dirs:
        if os.path.isfile(os.path.join(d, "deepseek", "version.h")):
            return d
    d = tmp_path / "gen-include"
    (d / "deepseek").mkdir(parents=True)
    major, minor, patch = _lib.version_tuple()
    (d / "deepseek" / "version.h").write_text(
        "#define DS_VERSION_MAJOR %d\n#define DS_VERSION_MINOR %d\n#define DS_VERSION_PATCH %d\n"
        "#define DS_VERSION_NUMBER %d\n#define DS_VERSION_STRING \"%d.%d.%d\"\n"
        "#define DS_ABI_MAJOR %d\n"
        % (major, minor, patch, int(_lib.ds_version()), major, minor, patch, _lib.ABI_MAJOR))
    return str(d)


def test_struct_layout_matches_c(tmp_path, c_compiler):
    if not os.path.isfile(os.path.join(INCLUDE_DIR, "deepseek", "deepseek.h")):
        pytest.skip("include/deepseek/deepseek.h not found at %s" % INCLUDE_DIR)
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "deepseek/deepseek.h"',
             "int main(void) {"]
    for s in STRUCTS:
        n = s.__name__
        lines.append('printf("%s sizeof %%zu %%zu\\n", sizeof(%s), _Alignof(%s));' % (n, n, n))
        for f, _t in s._fields_:
            lines.append('printf("%s %s %%zu %%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (n, f, n, f, n, f))
    lines += ["return 0;", "}"]
    src = tmp_path / "sizes.c"
    src.write_text("\n".join(lines) + "\n")
    exe = str(tmp_path / "sizes")
    r = subprocess.run([c_compiler, "-std=c11", "-I", INCLUDE_DIR, "-I", _version_h_dir(tmp_path),
                        str(src), "-o", exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert r.returncode == 0, r.stdout
    out = subprocess.run([exe], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    c = {}
    for line in out.splitlines():
        name, field, a, b = line.split()
        c[(name, field)] = (int(a), int(b))
    for s in STRUCTS:
        n = s.__name__
        assert c[(n, "sizeof")] == (ctypes.sizeof(s), ctypes.alignment(s)), n
        for f, _t in s._fields_:
            desc = getattr(s, f)
            assert c[(n, f)] == (desc.offset, desc.size), "%s.%s" % (n, f)


# C header type -> the ctypes types that pass it correctly
_BASIC = {
    "int": ctypes.c_int, "unsigned": ctypes.c_uint, "size_t": ctypes.c_size_t,
    "int8_t": ctypes.c_int8, "uint8_t": ctypes.c_uint8, "int16_t": ctypes.c_int16,
    "uint16_t": ctypes.c_uint16, "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64, "float": ctypes.c_float,
    "double": ctypes.c_double, "char": ctypes.c_char,
}


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _header_functions(path):
    """[(name, return type, [param types])] of the DS_API functions of a header."""
    text = _strip_comments(open(path, encoding="utf-8").read())
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    out = []
    for decl in re.findall(r"\bDS_API\b\s+([^;{]*?)\s*;", text, flags=re.S):
        decl = " ".join(decl.split())
        m = re.match(r"^(.*?)\b(\w+)\s*\((.*)\)$", decl)
        assert m, "cannot parse declaration: %s" % decl
        ret, name, params = m.group(1).strip(), m.group(2), m.group(3).strip()
        ptypes = []
        if params and params != "void":
            for p in params.split(","):
                p = p.strip()
                mm = re.match(r"^(.*?[\s*])(\w+)$", p)
                # drop the parameter name (the last identifier after the type)
                if mm and mm.group(1).strip() and not re.match(r"^(const\s+)?\w+$", p):
                    p = mm.group(1)
                ptypes.append(" ".join(p.replace("*", " * ").split()))
        out.append((name, " ".join(ret.replace("*", " * ").split()), ptypes))
    return out


def _accepted(ctype_text):
    """The set of ctypes types that are a correct declaration of a C type."""
    words = [w for w in ctype_text.split() if w not in ("const", "struct", "enum")]
    stars = words.count("*")
    base = " ".join(w for w in words if w != "*")
    if base == "void":
        if stars == 0:
            return {None}
        t = ctypes.c_void_p
        for _ in range(stars - 1):
            t = ctypes.POINTER(t)
        return {t}
    if base == "char" and stars:
        opts = {ctypes.c_char_p, ctypes.POINTER(ctypes.c_char)}
        for _ in range(stars - 1):
            opts = {ctypes.POINTER(o) for o in opts}
        return opts
    if base in _BASIC:
        t = _BASIC[base]
    elif base in _lib.TYPES:
        t = _lib.TYPES[base]
    else:
        raise AssertionError("C type %r is neither basic nor registered with "
                             "deepseek._lib.register_type/opaque/enum" % base)
    for _ in range(stars):
        t = ctypes.POINTER(t)
    return {t}


def _headers():
    d = os.path.join(INCLUDE_DIR, "deepseek")
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f.endswith(".h"))


def _import_all_wrappers():
    for mod in pkgutil.iter_modules(deepseek.__path__):
        importlib.import_module("deepseek." + mod.name)


@pytest.mark.parametrize("header", _headers() or ["deepseek.h"])
def test_signatures_match_headers(header):
    path = os.path.join(INCLUDE_DIR, "deepseek", header)
    if not os.path.isfile(path):
        pytest.skip("%s not found" % path)
    _import_all_wrappers()
    funcs = _header_functions(path)
    assert funcs, "no DS_API functions found in %s" % header
    missing = []
    for name, ret, params in funcs:
        if name not in _lib.SIGNATURES:
            missing.append(name)
            continue
        restype, argtypes = _lib.SIGNATURES[name]
        assert restype in _accepted(ret), "%s: restype %r for C %r" % (name, restype, ret)
        assert len(argtypes) == len(params), "%s: %d argtypes for %d parameters" % (
            name, len(argtypes), len(params))
        for i, (a, p) in enumerate(zip(argtypes, params)):
            assert a in _accepted(p), "%s: argument %d is %r for C %r" % (name, i, a, p)
        f = getattr(_lib.lib, name)
        assert f.restype is restype and tuple(f.argtypes) == argtypes
    if header == "deepseek.h":
        assert not missing, "deepseek.h functions without a declaration: %s" % missing
    elif missing:
        pytest.skip("%s: no Python wrapper declares %s yet" % (header, ", ".join(missing)))


def test_header_parser():
    src = ("DS_API const char *f1(void);\nDS_API ds_status f2(ds_model **out, const char *p,\n"
           "    const ds_model_params *params);\nDS_API void f3(ds_model *m); /* c */\n"
           "DS_API uint64_t f4(const ds_model *model, uint64_t i);\n")
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".h", delete=False) as fh:
        fh.write(src)
    try:
        got = _header_functions(fh.name)
    finally:
        os.unlink(fh.name)
    assert got == [
        ("f1", "const char *", []),
        ("f2", "ds_status", ["ds_model * *", "const char *", "const ds_model_params *"]),
        ("f3", "void", ["ds_model *"]),
        ("f4", "uint64_t", ["const ds_model *", "uint64_t"]),
    ]
    assert _accepted("ds_model * *") == {ctypes.POINTER(_lib.ds_model_p)}


def test_fn_registry():
    f = _lib.fn("ds_version", ctypes.c_uint32)
    assert f is _lib.ds_version
    with pytest.raises(TypeError, match="different signature"):
        _lib.fn("ds_version", ctypes.c_int64)
    assert _lib.fn("ds_no_such_function", None, optional=True) is None
    with pytest.raises(ImportError, match="ds_no_such_function"):
        _lib.fn("ds_no_such_function", None)
    assert _lib.opaque("ds_model") is _lib.ds_model
    with pytest.raises(TypeError):
        _lib.register_type("ds_model", ctypes.c_int)
