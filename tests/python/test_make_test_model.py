"""Tests for tools/gguf_writer.py and tools/make-test-model.py.

Run with:  /usr/bin/python3 -m pytest tests/python
"""

import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
TOOL = os.path.join(TOOLS, "make-test-model.py")
sys.path.insert(0, TOOLS)

import gguf_writer as gw  # noqa: E402
from gguf_writer import GGMLType, GGUFValueType as VT  # noqa: E402

SHARED = os.environ.get("DS_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))
VOCAB_LLM = os.path.join(SHARED, "fixtures", "tokenizers", "deepseek-llm",
                         "ggml-vocab-deepseek-llm.gguf")

TYPES = ["f32", "f16", "bf16", "q8_0"]
FORMS = ["split", "combined"]
TYPE_ID = {"f32": GGMLType.F32, "f16": GGMLType.F16, "bf16": GGMLType.BF16, "q8_0": GGMLType.Q8_0}

TINY = dict(n_layer=2, n_embd=64, n_head=4, q_lora=0, kv_lora=32, nope=16, rope=8, v=16, n_ff=128,
            n_expert=8, n_used=2, n_shared=1, n_ff_exp=32, n_dense=1, vocab=512)


def run_tool(*args, check=True):
    p = subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"make-test-model failed ({p.returncode}):\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    out = {}
    for t in TYPES:
        for f in FORMS:
            path = d / f"tiny-{t}-{f}.gguf"
            run_tool("-o", path, "--type", t, "--kv-form", f)
            out[(t, f)] = str(path)
    return out


def align_up(x, a):
    return (x + a - 1) // a * a


# ----------------------------------------------------------------------------
# Independent raw header parse (does not use gguf_writer.GGUFReader)
# ----------------------------------------------------------------------------

def raw_parse(data):
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        s = data[pos:pos + n]
        pos += n
        return s

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(t):
        nonlocal pos
        if t == 8:
            string()
        elif t == 9:
            et, n = take("<i"), take("<Q")
            for _ in range(n):
                skip_value(et)
        else:
            pos += sizes[t]

    assert data[:4] == b"GGUF"
    pos = 4
    version, n_t, n_kv = take("<I"), take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        key = string().decode()
        t = take("<i")
        start = pos
        skip_value(t)
        kv[key] = (t, data[start:pos])
    infos = []
    for _ in range(n_t):
        name = string().decode()
        nd = take("<I")
        ne = [take("<Q") for _ in range(nd)]
        infos.append((name, ne, take("<i"), take("<Q")))
    return version, kv, infos, pos


NBYTES = {0: (1, 4), 1: (1, 2), 8: (32, 34), 30: (1, 2)}


def nbytes(ne, t):
    b, s = NBYTES[t]
    return ne[0] // b * s * int(np.prod(ne[1:], dtype=np.int64))


@pytest.mark.parametrize("ty", TYPES)
@pytest.mark.parametrize("form", FORMS)
def test_header_alignment_offsets(tiny_models, ty, form):
    data = open(tiny_models[(ty, form)], "rb").read()
    version, kv, infos, end = raw_parse(data)
    assert version == 3
    assert kv["general.alignment"] == (VT.UINT32, struct.pack("<I", 32))
    data_start = align_up(end, 32)
    assert data[end:data_start] == b"\0" * (data_start - end)
    off = 0
    for name, ne, t, o in infos:
        assert len(name.encode()) < 64
        assert o == off, name  # llama.cpp's strict running-sum rule
        assert o % 32 == 0
        n = nbytes(ne, t)
        pad = data[data_start + o + n:data_start + align_up(o + n, 32)]
        assert pad == b"\0" * len(pad)
        off += align_up(n, 32)
    assert len(data) == data_start + off
    # the module's reader agrees
    r = gw.GGUFReader(tiny_models[(ty, form)])
    assert r.data_start == data_start and r.version == 3
    assert [(i.name, list(i.ne), i.ggml_type, i.offset) for i in r.tensors.values()] == \
        [(n, ne, t, o) for n, ne, t, o in infos]


def expected_kv_types(form, q_lora=False, yarn=True):
    u32, f32, s, b = VT.UINT32, VT.FLOAT32, VT.STRING, VT.BOOL
    A = "deepseek2."
    k = {
        "general.architecture": s, "general.name": s, "general.alignment": u32,
        "general.file_type": u32, "general.quantization_version": u32,
        A + "vocab_size": u32, A + "context_length": u32, A + "embedding_length": u32,
        A + "block_count": u32, A + "feed_forward_length": u32,
        A + "leading_dense_block_count": u32, A + "attention.head_count": u32,
        A + "attention.head_count_kv": u32, A + "attention.kv_lora_rank": u32,
        A + "attention.key_length": u32, A + "attention.value_length": u32,
        A + "attention.layer_norm_rms_epsilon": f32, A + "rope.dimension_count": u32,
        A + "rope.freq_base": f32, A + "rope.scaling.type": s,
        A + "rope.scaling.yarn_log_multiplier": f32,
        A + "expert_count": u32, A + "expert_used_count": u32, A + "expert_shared_count": u32,
        A + "expert_feed_forward_length": u32, A + "expert_weights_scale": f32,
        A + "expert_weights_norm": b, A + "expert_gating_func": u32,
        A + "expert_group_count": u32, A + "expert_group_used_count": u32,
    }
    if yarn:
        k[A + "rope.scaling.factor"] = f32
        k[A + "rope.scaling.original_context_length"] = u32
    if form == "split":
        k[A + "attention.key_length_mla"] = u32
        k[A + "attention.value_length_mla"] = u32
    if q_lora:
        k[A + "attention.q_lora_rank"] = u32
    return k


@pytest.mark.parametrize("ty", TYPES)
@pytest.mark.parametrize("form", FORMS)
def test_metadata(tiny_models, ty, form):
    r = gw.GGUFReader(tiny_models[(ty, form)])
    exp = expected_kv_types(form)
    assert {k: v.type for k, v in r.kv.items()} == exp
    g = r.get
    A = "deepseek2."
    assert g("general.architecture") == "deepseek2"
    assert g("general.file_type") == {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}[ty]
    assert g("general.quantization_version") == 2
    assert g(A + "block_count") == 2 and g(A + "embedding_length") == 64
    assert g(A + "vocab_size") == 512 and g(A + "context_length") == 4096
    assert g(A + "attention.head_count") == 4
    assert g(A + "attention.kv_lora_rank") == 32
    if form == "split":
        assert g(A + "attention.head_count_kv") == 1
        assert g(A + "attention.key_length") == 32 + 8
        assert g(A + "attention.value_length") == 32
        assert g(A + "attention.key_length_mla") == 16 + 8
        assert g(A + "attention.value_length_mla") == 16
    else:
        assert g(A + "attention.head_count_kv") == 4
        assert g(A + "attention.key_length") == 16 + 8
        assert g(A + "attention.value_length") == 16
    assert g(A + "rope.dimension_count") == 8
    assert g(A + "rope.scaling.type") == "yarn"
    assert g(A + "rope.scaling.factor") == 40.0
    assert g(A + "rope.scaling.original_context_length") == 4096
    assert g(A + "rope.scaling.yarn_log_multiplier") == pytest.approx(0.0707, rel=1e-6)
    assert g(A + "attention.layer_norm_rms_epsilon") == pytest.approx(1e-6, rel=1e-6)
    assert g(A + "expert_gating_func") == 1
    assert g(A + "expert_weights_norm") is False
    assert g(A + "expert_weights_scale") == 1.0
    assert (g(A + "expert_count"), g(A + "expert_used_count"), g(A + "expert_shared_count"),
            g(A + "expert_feed_forward_length"), g(A + "leading_dense_block_count")) == (8, 2, 1, 32, 1)
    assert (g(A + "expert_group_count"), g(A + "expert_group_used_count")) == (1, 1)


def expected_tensors(p, form):
    """name -> ne for a config dict p (keys as TINY)."""
    d, H, V = p["n_embd"], p["n_head"], p["vocab"]
    dqk = p["nope"] + p["rope"]
    t = {"token_embd.weight": [d, V], "output_norm.weight": [d], "output.weight": [d, V]}
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        t[b + "attn_norm.weight"] = [d]
        if p["q_lora"]:
            t[b + "attn_q_a.weight"] = [d, p["q_lora"]]
            t[b + "attn_q_a_norm.weight"] = [p["q_lora"]]
            t[b + "attn_q_b.weight"] = [p["q_lora"], H * dqk]
        else:
            t[b + "attn_q.weight"] = [d, H * dqk]
        t[b + "attn_kv_a_mqa.weight"] = [d, p["kv_lora"] + p["rope"]]
        t[b + "attn_kv_a_norm.weight"] = [p["kv_lora"]]
        if form == "split":
            t[b + "attn_k_b.weight"] = [p["nope"], p["kv_lora"], H]
            t[b + "attn_v_b.weight"] = [p["kv_lora"], p["v"], H]
        else:
            t[b + "attn_kv_b.weight"] = [p["kv_lora"], H * (p["nope"] + p["v"])]
        t[b + "attn_output.weight"] = [H * p["v"], d]
        t[b + "ffn_norm.weight"] = [d]
        if i < p["n_dense"] or p["n_expert"] == 0:
            t[b + "ffn_gate.weight"] = [d, p["n_ff"]]
            t[b + "ffn_up.weight"] = [d, p["n_ff"]]
            t[b + "ffn_down.weight"] = [p["n_ff"], d]
        else:
            E, F = p["n_expert"], p["n_ff_exp"]
            t[b + "ffn_gate_inp.weight"] = [d, E]
            if p.get("probs_b"):
                t[b + "exp_probs_b.bias"] = [E]
            t[b + "ffn_gate_exps.weight"] = [d, F, E]
            t[b + "ffn_up_exps.weight"] = [d, F, E]
            t[b + "ffn_down_exps.weight"] = [F, d, E]
            if p["n_shared"]:
                S = F * p["n_shared"]
                t[b + "ffn_gate_shexp.weight"] = [d, S]
                t[b + "ffn_up_shexp.weight"] = [d, S]
                t[b + "ffn_down_shexp.weight"] = [S, d]
    return t


def expected_type(name, ne, ty):
    if len(ne) == 1 or "ffn_gate_inp" in name:
        return GGMLType.F32
    t = TYPE_ID[ty]
    if t == GGMLType.Q8_0 and ne[0] % 32:
        return GGMLType.F16
    return t


@pytest.mark.parametrize("ty", TYPES)
@pytest.mark.parametrize("form", FORMS)
def test_shapes_and_types(tiny_models, ty, form):
    r = gw.GGUFReader(tiny_models[(ty, form)])
    exp = expected_tensors(TINY, form)
    assert {n: list(i.ne) for n, i in r.tensors.items()} == exp
    for n, i in r.tensors.items():
        assert i.ggml_type == expected_type(n, i.ne, ty), n


def kv_b_from(r, layer):
    """Reconstruct the torch-layout kv_b [H*(nope+v), kv_lora] from either form."""
    b = f"blk.{layer}."
    if b + "attn_kv_b.weight" in r.tensors:
        return r.tensor_f32(b + "attn_kv_b.weight")
    k_b = r.tensor_f32(b + "attn_k_b.weight")  # [H, kv_lora, nope] = W_UK_i^T
    v_b = r.tensor_f32(b + "attn_v_b.weight")  # [H, v, kv_lora]   = W_UV_i
    per_head = np.concatenate([k_b.transpose(0, 2, 1), v_b], axis=1)
    return per_head.reshape(-1, per_head.shape[-1])


@pytest.mark.parametrize("ty", TYPES)
def test_split_and_combined_hold_same_kv_b(tiny_models, ty):
    rs = gw.GGUFReader(tiny_models[(ty, "split")])
    rc = gw.GGUFReader(tiny_models[(ty, "combined")])
    r32 = gw.GGUFReader(tiny_models[("f32", "combined")])
    for layer in range(TINY["n_layer"]):
        a, b = kv_b_from(rs, layer), kv_b_from(rc, layer)
        assert a.shape == (TINY["n_head"] * (TINY["nope"] + TINY["v"]), TINY["kv_lora"])
        assert np.array_equal(a, b)
        # kv_b is snapped to a grid that every storage type represents exactly
        assert np.array_equal(a, kv_b_from(r32, layer))


def test_split_and_combined_same_kv_b_q8_0_wide(tmp_path):
    # nope = 32: attn_k_b is really stored as Q8_0 (blocks along a different axis)
    paths = {}
    for f in FORMS:
        paths[f] = tmp_path / f"{f}.gguf"
        run_tool("-o", paths[f], "--type", "q8_0", "--kv-form", f, "--qk-nope", 32, "--v-head", 32,
                 "--kv-lora-rank", 64, "--n-layer", 1, "--seed", 7)
    rs, rc = gw.GGUFReader(str(paths["split"])), gw.GGUFReader(str(paths["combined"]))
    assert rs.tensors["blk.0.attn_k_b.weight"].ggml_type == GGMLType.Q8_0
    assert rs.tensors["blk.0.attn_v_b.weight"].ggml_type == GGMLType.Q8_0
    assert rc.tensors["blk.0.attn_kv_b.weight"].ggml_type == GGMLType.Q8_0
    assert np.array_equal(kv_b_from(rs, 0), kv_b_from(rc, 0))


@pytest.mark.parametrize("ty", ["f16", "bf16", "q8_0"])
def test_weights_independent_of_type(tiny_models, ty):
    """Every tensor of a --type T file equals the f32 file's tensor converted to T."""
    r32 = gw.GGUFReader(tiny_models[("f32", "split")])
    rt = gw.GGUFReader(tiny_models[(ty, "split")])
    for name, info in rt.tensors.items():
        ref = r32.tensor_f32(name)
        expect = gw.convert_f32(ref, info.ggml_type).view(np.uint8)
        assert np.array_equal(np.asarray(rt.tensor_raw(name)), expect), name


def test_determinism(tmp_path, tiny_models):
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    run_tool("-o", a, "--type", "q8_0", "--preset", "v3-tiny", "--seed", 5)
    run_tool("-o", b, "--type", "q8_0", "--preset", "v3-tiny", "--seed", 5, "--threads", 1)
    run_tool("-o", c, "--type", "q8_0", "--preset", "v3-tiny", "--seed", 6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # and the tiny default seed is 42
    d = tmp_path / "d.gguf"
    run_tool("-o", d, "--seed", 42)
    assert d.read_bytes() == open(tiny_models[("f32", "split")], "rb").read()


def test_tensor_values_do_not_depend_on_other_tensors(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    # (scales depend on fan-in and n_layer, so keep those; change other tensors)
    run_tool("-o", a)
    run_tool("-o", b, "--n-expert", 16, "--n-ff-exp", 64, "--vocab", 1024, "--exp-probs-b",
             "--type", "f16")
    ra, rb = gw.GGUFReader(str(a)), gw.GGUFReader(str(b))
    for n in ["blk.0.attn_q.weight", "blk.1.attn_output.weight", "blk.0.ffn_down.weight",
              "blk.1.attn_kv_a_mqa.weight"]:
        assert np.array_equal(ra.tensor_f32(n).astype(np.float16), rb.tensor_f32(n)), n


# ----------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------

def test_q8_0_roundtrip_error_bound():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(32 * 4096) * np.repeat(10.0 ** rng.uniform(-4, 2, 4096), 32))
    x = x.astype(np.float32)
    x[:32] = 0.0  # an all-zero block
    q = gw.quantize_q8_0(x)
    assert q.shape == (4096, 34)
    y = gw.dequantize_q8_0(q)
    blocks = x.reshape(-1, 32)
    d = np.abs(blocks).max(axis=1) / np.float32(127)
    err = np.abs(y.reshape(-1, 32) - blocks).max(axis=1)
    d16 = q[:, :2].copy().view("<f2")[:, 0].astype(np.float64)
    # half a step, plus the f16 rounding error of d times |q| <= 127
    bound = 0.5 * d + 127 * np.abs(d16 - d)
    assert np.all(err <= bound * (1 + 1e-6) + 1e-30)
    normal = d >= 2.0 ** -14  # d is a normal f16: relative rounding error <= 2^-11
    assert normal.sum() > 1000
    assert np.all(err[normal] <= d[normal] * (0.5 + 127 * 2.0 ** -11) * (1 + 1e-6))
    assert np.all(y[:32] == 0)
    # the largest element of every block maps to +-127
    qs = q[:, 2:].view(np.int8)
    assert np.all(np.abs(qs[1:]).max(axis=1) == 127)


def test_q8_0_matches_ggml_reference_semantics():
    # d = amax/127, id = 1/d, q = roundf(x*id): ties round away from zero
    x = np.zeros(32, np.float32)
    x[0] = 127.0
    x[1], x[2], x[3], x[4] = 2.5, -2.5, 3.5, -0.5
    x[5] = np.float32(0.5) - np.float32(2.0 ** -25)  # plain floor(x+0.5) gets this wrong
    q = gw.quantize_q8_0(x)
    assert q[0, :2].view("<f2")[0] == 1.0
    assert list(q[0, 2:8].view(np.int8)) == [127, 3, -3, 4, -1, 0]
    # compare with a slow scalar transcription of quantize_row_q8_0_ref
    rng = np.random.default_rng(1)
    v = (rng.standard_normal(32 * 64) * 3).astype(np.float32)
    v[::7] = np.round(v[::7] * 2) / 2  # plenty of exact halves
    fast = gw.quantize_q8_0(v)
    for bi in range(64):
        blk = v[bi * 32:(bi + 1) * 32]
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127))
        inv = np.float32(1) / d if d else np.float32(0)
        ref = [int(math.copysign(math.floor(abs(float(np.float32(e * inv))) + 0.5), e)) for e in blk]
        assert list(fast[bi, 2:].view(np.int8)) == ref
        assert fast[bi, :2].view("<f2")[0] == np.float16(d)


def test_bf16_rounding():
    bits = np.array([0x3F800000, 0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F808001,
                     0x7F7FFFFF, 0xFF800000, 0x7FC00001, 0x7F800001, 0x00000001], np.uint32)
    got = gw.f32_to_bf16(bits.view(np.float32))
    assert list(got) == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x3F81,
                         0x7F80, 0xFF80, 0x7FC0, 0x7FC0, 0x0000]
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    back = gw.bf16_to_f32(gw.f32_to_bf16(x))
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0 ** -8)


def test_f16_rounding():
    x = np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 65504, 65520, -2.0 ** -24], np.float32)
    got = gw.f32_to_f16(x)
    assert list(got.view("<u2")) == [0x3C00, 0x3C02, 0x7BFF, 0x7C00, 0x8001]


# ----------------------------------------------------------------------------
# Writer/reader round trip of every metadata type
# ----------------------------------------------------------------------------

def test_metadata_roundtrip_every_type(tmp_path):
    path = str(tmp_path / "kv.gguf")
    w = gw.GGUFWriter(path, alignment=64)
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 2**32 - 1)
    w.add_int32("t.i32", -2**31)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo \x00 wörld")
    w.add_string("t.bytes", b"\xff\xfe raw")
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -2**63)
    w.add_float64("t.f64", math.pi)
    w.add_array("t.arr.i32", VT.INT32, [1, -2, 3])
    w.add_array("t.arr.bool", VT.BOOL, [True, False, True])
    w.add_array("t.arr.f64", VT.FLOAT64, [0.25, -1e300])
    w.add_array("t.arr.empty", VT.UINT16, [])
    w.add_array("t.arr.str", VT.STRING, ["a", "", "Ġ t", b"\x80bad utf8"])
    w.add_array("t.arr.nested", VT.ARRAY,
                [(VT.UINT8, [1, 2]), (VT.STRING, ["x"]),
                 (VT.ARRAY, [(VT.INT64, [-5])]), (VT.FLOAT32, [])])
    rng = np.random.default_rng(3)
    data = {t: rng.standard_normal((3, 64)).astype(np.float32) for t in NBYTES}
    for t, x in data.items():
        w.add_tensor(f"t{t}", [64, 3], t, x)
    w.add_tensor("odd", [5], GGMLType.F32, np.arange(5, dtype=np.float32))
    w.write()

    raw = open(path, "rb").read()
    version, kv, infos, end = raw_parse(raw)
    assert kv["general.alignment"] == (VT.UINT32, struct.pack("<I", 64))  # auto-added
    r = gw.GGUFReader(path)
    assert r.alignment == 64 and r.data_start % 64 == 0
    g = r.get
    assert (g("t.u8"), g("t.i8"), g("t.u16"), g("t.i16")) == (255, -128, 65535, -32768)
    assert (g("t.u32"), g("t.i32"), g("t.u64"), g("t.i64")) == (2**32 - 1, -2**31, 2**64 - 1, -2**63)
    assert g("t.f32") == 1.5 and g("t.bool") is True and g("t.f64") == math.pi
    assert g("t.str") == "héllo \x00 wörld"
    assert g("t.bytes").encode("utf-8", "surrogateescape") == b"\xff\xfe raw"
    assert r.kv["t.u8"].type == VT.UINT8 and r.kv["t.i64"].type == VT.INT64
    assert g("t.arr.i32").elem_type == VT.INT32 and g("t.arr.i32").tolist() == [1, -2, 3]
    assert g("t.arr.bool").tolist() == [True, False, True]
    assert g("t.arr.f64").tolist() == [0.25, -1e300]
    assert g("t.arr.empty").elem_type == VT.UINT16 and len(g("t.arr.empty")) == 0
    s = g("t.arr.str")
    assert s.elem_type == VT.STRING and s.tolist()[:3] == ["a", "", "Ġ t"]
    assert s.values[3].encode("utf-8", "surrogateescape") == b"\x80bad utf8"
    n = g("t.arr.nested")
    assert n.elem_type == VT.ARRAY
    assert [a.elem_type for a in n.values] == [VT.UINT8, VT.STRING, VT.ARRAY, VT.FLOAT32]
    assert n.tolist() == [[1, 2], ["x"], [[-5]], []]
    # copying values through the writer reproduces the KV bytes exactly
    path2 = str(tmp_path / "kv2.gguf")
    w2 = gw.GGUFWriter(path2, alignment=64)
    for k, v in r.kv.items():
        w2.add_value(k, v)
    w2.write()
    _, kv2, _, _ = raw_parse(open(path2, "rb").read())
    assert kv2 == kv
    # tensors
    off = 0
    for name, ne, t, o in infos:
        assert o == off and o % 64 == 0
        off += align_up(nbytes(ne, t), 64)
    assert len(raw) == align_up(end, 64) + off
    for t, x in data.items():
        y = r.tensor_f32(f"t{t}")
        assert y.shape == (3, 64)
        tol = {0: 0, 1: 1e-3, 30: 1e-2, 8: 2e-2}[t]
        assert np.allclose(y, x, rtol=tol, atol=tol * 4)
    assert list(r.tensor_f32("odd")) == [0, 1, 2, 3, 4]


def test_writer_rejects_bad_input(tmp_path):
    w = gw.GGUFWriter(str(tmp_path / "x.gguf"))
    w.add_uint32("a", 1)
    with pytest.raises(KeyError):
        w.add_uint32("a", 2)
    with pytest.raises(ValueError):
        w.add_uint8("b", 256)
    with pytest.raises(ValueError):
        w.add_tensor("q", [16, 2], GGMLType.Q8_0, np.zeros(32, np.float32))
    with pytest.raises(ValueError):
        w.add_tensor("x" * 64, [4], GGMLType.F32, np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        gw.GGUFWriter(str(tmp_path / "y.gguf"), alignment=24)


# ----------------------------------------------------------------------------
# CLI options
# ----------------------------------------------------------------------------

def test_help_and_executable():
    p = subprocess.run([TOOL, "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for opt in ["--preset", "--kv-form", "--type-map", "--vocab-from", "--exp-probs-b",
                "--no-yarn", "--mscale-all-dim", "--n-group-used", "--no-expert-weights-norm"]:
        assert opt in p.stdout
    with open(TOOL) as f:
        assert f.readline().strip() == "#!/usr/bin/python3"


def test_silent_on_success(tmp_path):
    p = run_tool("-o", tmp_path / "m.gguf")
    assert p.stdout == "" and p.stderr == ""
    p = run_tool("-o", tmp_path / "m.gguf", "--verbose")
    assert "token_embd.weight" in p.stderr


@pytest.mark.parametrize("args", [
    ["--n-expert-used", 9],
    ["--n-group", 3],
    ["--type-map", "attn_q=q4_k"],
    ["--type-map", "nonsense"],
    ["--qk-rope", 7],
    ["--n-leading-dense", 5],
    ["--seed", -1],
    ["--vocab-from", "/nonexistent.gguf"],
])
def test_bad_arguments(tmp_path, args):
    out = tmp_path / "bad.gguf"
    p = run_tool("-o", out, *args, check=False)
    assert p.returncode == 2
    assert not out.exists()


def test_v3_tiny_preset(tmp_path):
    path = tmp_path / "v3.gguf"
    run_tool("-o", path, "--preset", "v3-tiny", "--type", "q8_0")
    r = gw.GGUFReader(str(path))
    A = "deepseek2."
    assert {k: v.type for k, v in r.kv.items()} == expected_kv_types("split", q_lora=True)
    assert r.get(A + "attention.q_lora_rank") == 48
    assert r.get(A + "expert_gating_func") == 2
    assert r.get(A + "expert_weights_norm") is True
    assert r.get(A + "expert_weights_scale") == 2.5
    assert r.get(A + "expert_group_count") == 4 and r.get(A + "expert_group_used_count") == 2
    assert r.get(A + "rope.scaling.yarn_log_multiplier") == pytest.approx(0.1)
    assert r.get(A + "block_count") == 3 and r.get(A + "leading_dense_block_count") == 1
    p = dict(TINY, n_layer=3, q_lora=48, probs_b=True)
    assert {n: list(i.ne) for n, i in r.tensors.items()} == expected_tensors(p, "split")
    for n, i in r.tensors.items():
        assert i.ggml_type == expected_type(n, i.ne, "q8_0"), n
    b = r.tensor_f32("blk.1.exp_probs_b.bias")
    assert b.dtype == np.float32 and np.all(np.abs(b) <= 0.1 + 1e-6) and np.any(b != 0)


def test_v2_lite_preset_metadata(tmp_path):
    # real V2-Lite attention shapes; shrink the big dims so the test stays fast
    path = tmp_path / "lite.gguf"
    run_tool("-o", path, "--preset", "v2-lite", "--n-layer", 2, "--vocab", 256, "--n-ff", 256,
             "--n-ff-exp", 32, "--type", "q8_0")
    r = gw.GGUFReader(str(path))
    A = "deepseek2."
    g = r.get
    assert g(A + "embedding_length") == 2048 and g(A + "attention.head_count") == 16
    assert A + "attention.q_lora_rank" not in r.kv
    assert (g(A + "attention.key_length"), g(A + "attention.value_length")) == (576, 512)
    assert (g(A + "attention.key_length_mla"), g(A + "attention.value_length_mla")) == (192, 128)
    assert g(A + "context_length") == 163840 and g(A + "expert_count") == 64
    assert g(A + "expert_used_count") == 6 and g(A + "expert_shared_count") == 2
    assert r.tensors["blk.0.attn_q.weight"].ne == (2048, 16 * 192)
    assert r.tensors["blk.0.attn_k_b.weight"].ne == (128, 512, 16)
    assert r.tensors["blk.0.attn_v_b.weight"].ne == (512, 128, 16)
    assert r.tensors["blk.0.attn_k_b.weight"].ggml_type == GGMLType.Q8_0
    assert r.tensors["blk.1.ffn_gate_exps.weight"].ne == (2048, 32, 64)
    assert r.tensors["blk.1.ffn_gate_shexp.weight"].ne == (2048, 64)


def test_type_map_and_router(tmp_path):
    path = tmp_path / "m.gguf"
    run_tool("-o", path, "--type", "bf16",
             "--type-map", "ffn_down_exps=q8_0,blk.1.attn=f16,attn_output=f32,attn_norm=f16")
    r = gw.GGUFReader(str(path))
    T = {n: i.ggml_type for n, i in r.tensors.items()}
    assert T["blk.1.ffn_down_exps.weight"] == GGMLType.Q8_0
    assert T["blk.1.attn_q.weight"] == GGMLType.F16
    assert T["blk.1.attn_output.weight"] == GGMLType.F32  # last match wins
    assert T["blk.0.attn_q.weight"] == GGMLType.BF16
    assert T["blk.1.attn_norm.weight"] == GGMLType.F32  # 1-D tensors always F32
    assert T["blk.1.ffn_gate_inp.weight"] == GGMLType.F32  # router stays F32 under --type
    assert T["token_embd.weight"] == GGMLType.BF16
    run_tool("-o", path, "--type", "q8_0", "--type-map", "ffn_gate_inp=f16")
    r = gw.GGUFReader(str(path))
    assert r.tensors["blk.1.ffn_gate_inp.weight"].ggml_type == GGMLType.F16  # explicit override


def test_dense_only_no_yarn(tmp_path):
    path = tmp_path / "dense.gguf"
    run_tool("-o", path, "--n-expert", 0, "--no-yarn", "--n-layer", 3, "--q-lora-rank", 32)
    r = gw.GGUFReader(str(path))
    A = "deepseek2."
    assert {k: v.type for k, v in r.kv.items()} == expected_kv_types("split", q_lora=True, yarn=False)
    assert r.get(A + "rope.scaling.type") == "none"
    assert r.get(A + "leading_dense_block_count") == 3 and r.get(A + "expert_count") == 0
    p = dict(TINY, n_layer=3, n_expert=0, q_lora=32)
    assert {n: list(i.ne) for n, i in r.tensors.items()} == expected_tensors(p, "split")


@pytest.mark.skipif(not os.path.exists(VOCAB_LLM), reason="vocab fixture not available")
def test_vocab_from(tmp_path):
    path = tmp_path / "voc.gguf"
    run_tool("-o", path, "--vocab-from", VOCAB_LLM, "--type", "q8_0", "--n-layer", 1)
    r, src = gw.GGUFReader(str(path)), gw.GGUFReader(VOCAB_LLM)
    src_tok = {k: v for k, v in src.kv.items() if k.startswith("tokenizer.")}
    dst_tok = {k: v for k, v in r.kv.items() if k.startswith("tokenizer.")}
    assert list(dst_tok) == list(src_tok)
    for k, v in src_tok.items():
        assert dst_tok[k].type == v.type, k
        a, b = dst_tok[k].value, v.value
        if isinstance(a, gw.GGUFArray):
            assert a.elem_type == b.elem_type and a.tolist() == b.tolist(), k
        else:
            assert a == b, k
    n = len(src.get("tokenizer.ggml.tokens"))
    assert n == 102400
    assert r.get("deepseek2.vocab_size") == n
    assert r.tensors["token_embd.weight"].ne == (64, n)
    assert r.tensors["output.weight"].ne == (64, n)
    assert not any(k.startswith("llama.") for k in r.kv)
    # without --vocab-from there is no tokenizer
    run_tool("-o", path)
    assert not any(k.startswith("tokenizer.") for k in gw.GGUFReader(str(path)).kv)


# ----------------------------------------------------------------------------
# A float64 numpy forward pass (reference semantics of deepseek-architectures.md §2):
# split (absorbed MLA) and combined (naive) files must give the same logits,
# and the init scales must give realistic activations.
# ----------------------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, freqs):
    # adjacent pairs (x[2j], x[2j+1]) rotated by pos * freqs[j]
    ang = pos[:, None] * freqs[None, :]
    c, s = np.cos(ang), np.sin(ang)
    while c.ndim < x.ndim:
        c, s = c[:, None, :], s[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def forward(path, tokens):
    r = gw.GGUFReader(path)
    g = lambda k, d=None: r.get("deepseek2." + k, d)  # noqa: E731
    W = lambda n: r.tensor_f32(n).astype(np.float64)  # noqa: E731
    eps = g("attention.layer_norm_rms_epsilon")
    H, L, dr = g("attention.head_count"), g("block_count"), g("rope.dimension_count")
    kvl = g("attention.kv_lora_rank")
    split = "attention.key_length_mla" in [k.split("deepseek2.")[-1] for k in r.kv]
    dqk = g("attention.key_length_mla") if split else g("attention.key_length")
    dv = g("attention.value_length_mla") if split else g("attention.value_length")
    dn = dqk - dr
    theta = g("rope.freq_base")
    freqs = theta ** (-np.arange(0, dr, 2) / dr)
    mscale = 1.0
    if g("rope.scaling.type") == "yarn":
        s, lo_ctx = g("rope.scaling.factor"), g("rope.scaling.original_context_length")
        corr = lambda b: dr * math.log(lo_ctx / (b * 2 * math.pi)) / (2 * math.log(theta))  # noqa
        low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), dr - 1)
        ramp = np.clip((np.arange(dr // 2) - low) / max(high - low, 0.001), 0, 1)
        freqs = freqs * (1 - ramp) + freqs / s * ramp
        mscale = 1 + g("rope.scaling.yarn_log_multiplier") * math.log(s)
    scale = mscale ** 2 / math.sqrt(dqk)
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    x = W("token_embd.weight")[tokens]
    n_dense = g("leading_dense_block_count")
    chosen = set()
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731
    for li in range(L):
        p = f"blk.{li}."
        h = rmsnorm(x, W(p + "attn_norm.weight"), eps)
        if p + "attn_q_a.weight" in r.tensors:
            cq = rmsnorm(h @ W(p + "attn_q_a.weight").T, W(p + "attn_q_a_norm.weight"), eps)
            q = cq @ W(p + "attn_q_b.weight").T
        else:
            q = h @ W(p + "attn_q.weight").T
        q = q.reshape(T, H, dqk)
        q_nope, q_pe = q[..., :dn], rope(q[..., dn:], pos, freqs)
        kv = h @ W(p + "attn_kv_a_mqa.weight").T
        ckv = rmsnorm(kv[:, :kvl], W(p + "attn_kv_a_norm.weight"), eps)
        k_pe = rope(kv[:, kvl:], pos, freqs)
        pe_scores = np.einsum("thd,sd->hts", q_pe, k_pe)
        if split:
            k_b, v_b = W(p + "attn_k_b.weight"), W(p + "attn_v_b.weight")  # [H,kvl,dn], [H,dv,kvl]
            q_abs = np.einsum("thn,hcn->thc", q_nope, k_b)
            sc = (np.einsum("thc,sc->hts", q_abs, ckv) + pe_scores) * scale + mask
            a = np.exp(sc - sc.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = np.einsum("hts,sc->thc", a, ckv)
            o = np.einsum("thc,hvc->thv", o, v_b)
        else:
            kvb = (ckv @ W(p + "attn_kv_b.weight").T).reshape(T, H, dn + dv)
            k_nope, v = kvb[..., :dn], kvb[..., dn:]
            sc = (np.einsum("thn,shn->hts", q_nope, k_nope) + pe_scores) * scale + mask
            a = np.exp(sc - sc.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = np.einsum("hts,shv->thv", a, v)
        x = x + o.reshape(T, H * dv) @ W(p + "attn_output.weight").T
        h = rmsnorm(x, W(p + "ffn_norm.weight"), eps)
        if li < n_dense:
            f = silu(h @ W(p + "ffn_gate.weight").T) * (h @ W(p + "ffn_up.weight").T)
            x = x + f @ W(p + "ffn_down.weight").T
            continue
        logits = h @ W(p + "ffn_gate_inp.weight").T
        if g("expert_gating_func") == 2:
            probs = 1 / (1 + np.exp(-logits))
        else:
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
        sel = probs + (W(p + "exp_probs_b.bias") if p + "exp_probs_b.bias" in r.tensors else 0)
        E, k = probs.shape[1], g("expert_used_count")
        ng, ngu = g("expert_group_count"), g("expert_group_used_count")
        gate, up, down = W(p + "ffn_gate_exps.weight"), W(p + "ffn_up_exps.weight"), \
            W(p + "ffn_down_exps.weight")
        out = np.zeros_like(x)
        for t in range(T):
            st = sel[t].copy()
            if ng > 1:
                grp = st.reshape(ng, -1)
                gs = np.sort(grp, axis=1)[:, -2:].sum(1) if g("expert_gating_func") == 2 \
                    else grp.max(1)
                keep = np.argsort(-gs, kind="stable")[:ngu]
                gm = np.full(ng, True)
                gm[keep] = False
                st[np.repeat(gm, E // ng)] = -np.inf
            ex = np.argsort(-st, kind="stable")[:k]
            wts = probs[t, ex]
            if g("expert_weights_norm"):
                wts = wts / wts.sum()
            wts = wts * g("expert_weights_scale")
            for e, we in zip(ex, wts):
                chosen.add((li, int(e)))
                f = silu(gate[e] @ h[t]) * (up[e] @ h[t])
                out[t] += we * (down[e] @ f)
        if p + "ffn_gate_shexp.weight" in r.tensors:
            f = silu(h @ W(p + "ffn_gate_shexp.weight").T) * (h @ W(p + "ffn_up_shexp.weight").T)
            out += f @ W(p + "ffn_down_shexp.weight").T
        x = x + out
    logits = rmsnorm(x, W("output_norm.weight"), eps) @ W("output.weight").T
    return logits, x, chosen


@pytest.mark.parametrize("preset,ty", [("tiny", "f32"), ("tiny", "q8_0"), ("v3-tiny", "f32"),
                                       ("v3-tiny", "bf16"), ("v3-tiny", "q8_0")])
def test_forward_split_equals_combined_and_scales(tmp_path, preset, ty):
    tokens = [1, 7, 300, 42, 42, 511, 0, 128, 64, 3, 99, 250]
    res = {}
    for f in FORMS:
        path = str(tmp_path / f"{f}.gguf")
        run_tool("-o", path, "--preset", preset, "--type", ty, "--kv-form", f)
        res[f] = forward(path, tokens)
    (ls, xs, cs), (lc, xc, cc) = res["split"], res["combined"]
    assert np.allclose(ls, lc, rtol=1e-9, atol=1e-9)
    assert cs == cc
    std = ls.std(axis=-1)
    assert np.all((std > 1) & (std < 5)), std
    assert np.all(np.isfinite(ls))
    rms = np.sqrt((xs ** 2).mean(-1))
    assert np.all((rms > 0.3) & (rms < 5)), rms
    # routing is not degenerate: several different experts are used per MoE layer
    for li in {li for li, _ in cs}:
        assert len({e for l2, e in cs if l2 == li}) >= 3
