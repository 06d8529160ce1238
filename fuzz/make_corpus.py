#!/usr/bin/python3
"""Write a seed corpus of small valid GGUF files for fuzz/fuzz_gguf.

usage: /usr/bin/python3 fuzz/make_corpus.py OUT_DIR

Files (each a few KB):
  ds2-combined.gguf   deepseek2, legacy attn_kv_b, no q-LoRA, F16 (+F32 norms), YaRN keys
  ds2-split.gguf      deepseek2, MLA attn_k_b/attn_v_b, q-LoRA, Q8_0/BF16, sigmoid routing,
                      expert groups, exp_probs_b, alignment 64
  ds2-dense.gguf      deepseek2 with dense layers only
  meta-all-types.gguf every metadata value type, string arrays, nested arrays, no tensors
  tensors-mixed.gguf  non-deepseek tensors of several types and ranks, GGUF v2
Uses tools/gguf_writer.py when it is there (and numpy is importable); otherwise writes the
bytes itself with struct.
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))

try:
    import numpy as np
    import gguf_writer as gw
except Exception:  # no numpy or no writer: fall back to the minimal writer below
    gw = None

# ---- a minimal GGUF v3 writer (fallback) ----------------------------------------------------

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
F32, F16, Q8_0, BF16 = 0, 1, 8, 30
_FMT = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
        FLOAT32: "<f", BOOL: "<B", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
_BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q8_0: (32, 34)}


def _s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b


def _val(t, v):
    if t == STRING:
        return _s(v)
    if t == ARRAY:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(_val(et, x) for x in items)
    return struct.pack(_FMT[t], v)


class MiniWriter:
    def __init__(self, alignment=32, version=3):
        self.kv = []
        self.tensors = []
        self.alignment = alignment
        self.version = version

    def add(self, key, t, v):
        self.kv.append((key, t, v))

    def add_tensor(self, name, ne, ttype, seed=1):
        be, bb = _BLOCK[ttype]
        n = ne[0] // be * bb
        for d in ne[1:]:
            n *= d
        data = bytes(((i * 131 + seed * 17) >> 3) & 0x3F for i in range(n))  # small finite values
        self.tensors.append((name, ne, ttype, data))

    def tobytes(self):
        a = self.alignment
        out = [b"GGUF", struct.pack("<IQQ", self.version, len(self.tensors), len(self.kv))]
        for k, t, v in self.kv:
            out.append(_s(k) + struct.pack("<I", t) + _val(t, v))
        off = 0
        offs = []
        for name, ne, tt, data in self.tensors:
            offs.append(off)
            off += (len(data) + a - 1) // a * a
        for (name, ne, tt, data), o in zip(self.tensors, offs):
            out.append(_s(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
                       + struct.pack("<IQ", tt, o))
        b = b"".join(out)
        if self.tensors:
            b += b"\0" * ((-len(b)) % a)
            for name, ne, tt, data in self.tensors:
                b += data + b"\0" * ((-len(data)) % a)
        return b


# ---- deepseek2 layouts ------------------------------------------------------------------------

def ds2_spec(c):
    """(metadata list, tensor list) of a deepseek2 model described by dict c."""
    d, H, dq, dc = c["n_embd"], c["n_head"], c["q_lora"], c["kv_lora"]
    dn, dr, dv, V = c["qk_nope"], c["qk_rope"], c["v_head"], c["vocab"]
    kv = [("general.architecture", STRING, "deepseek2"),
          ("general.name", STRING, c["name"]),
          ("deepseek2.block_count", UINT32, c["n_layer"]),
          ("deepseek2.context_length", UINT32, 512),
          ("deepseek2.embedding_length", UINT32, d),
          ("deepseek2.feed_forward_length", UINT32, c["n_ff"]),
          ("deepseek2.attention.head_count", UINT32, H),
          ("deepseek2.attention.head_count_kv", UINT32, 1 if c["split"] else H),
          ("deepseek2.attention.kv_lora_rank", UINT32, dc),
          ("deepseek2.attention.layer_norm_rms_epsilon", FLOAT32, 1e-6),
          ("deepseek2.rope.dimension_count", UINT32, dr),
          ("deepseek2.rope.freq_base", FLOAT32, 10000.0),
          ("deepseek2.leading_dense_block_count", UINT32, c["dense"]),
          ("deepseek2.vocab_size", UINT32, V)]
    if dq:
        kv.append(("deepseek2.attention.q_lora_rank", UINT32, dq))
    if c["split"]:
        kv += [("deepseek2.attention.key_length", UINT32, dc + dr),
               ("deepseek2.attention.value_length", UINT32, dc),
               ("deepseek2.attention.key_length_mla", UINT32, dn + dr),
               ("deepseek2.attention.value_length_mla", UINT32, dv)]
    else:
        kv += [("deepseek2.attention.key_length", UINT32, dn + dr),
               ("deepseek2.attention.value_length", UINT32, dv)]
    if c.get("yarn"):
        kv += [("deepseek2.rope.scaling.type", STRING, "yarn"),
               ("deepseek2.rope.scaling.factor", FLOAT32, 40.0),
               ("deepseek2.rope.scaling.original_context_length", UINT32, 64),
               ("deepseek2.rope.scaling.yarn_log_multiplier", FLOAT32, 0.0707)]
    E = c["n_expert"]
    if c["dense"] < c["n_layer"]:
        kv += [("deepseek2.expert_count", UINT32, E),
               ("deepseek2.expert_used_count", UINT32, c["n_used"]),
               ("deepseek2.expert_shared_count", UINT32, c["n_shared"]),
               ("deepseek2.expert_feed_forward_length", UINT32, c["ff_exp"]),
               ("deepseek2.expert_weights_scale", FLOAT32, 2.5),
               ("deepseek2.expert_weights_norm", BOOL, 1),
               ("deepseek2.expert_gating_func", UINT32, c["gating"]),
               ("deepseek2.expert_group_count", UINT32, c["groups"]),
               ("deepseek2.expert_group_used_count", UINT32, c["groups_used"])]
    # token arrays without tokenizer.ggml.model: ds_model_open does not build a tokenizer
    kv += [("tokenizer.ggml.tokens", ARRAY, (STRING, [f"t{i}" for i in range(V)])),
           ("tokenizer.ggml.token_type", ARRAY, (INT32, [1] * V)),
           ("tokenizer.ggml.bos_token_id", UINT32, 0)]

    mt = c["mtype"]

    def mat(e0):
        return mt if e0 % _BLOCK[mt][0] == 0 else F16

    t = [("token_embd.weight", [d, V], mat(d)), ("output_norm.weight", [d], F32),
         ("output.weight", [d, V], mat(d))]
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        t.append((p + "attn_norm.weight", [d], F32))
        if dq:
            t += [(p + "attn_q_a.weight", [d, dq], mat(d)), (p + "attn_q_a_norm.weight", [dq], F32),
                  (p + "attn_q_b.weight", [dq, H * (dn + dr)], mat(dq))]
        else:
            t.append((p + "attn_q.weight", [d, H * (dn + dr)], mat(d)))
        t += [(p + "attn_kv_a_mqa.weight", [d, dc + dr], mat(d)),
              (p + "attn_kv_a_norm.weight", [dc], F32)]
        if c["split"]:
            t += [(p + "attn_k_b.weight", [dn, dc, H], mat(dn)),
                  (p + "attn_v_b.weight", [dc, dv, H], mat(dc))]
        else:
            t.append((p + "attn_kv_b.weight", [dc, H * (dn + dv)], mat(dc)))
        t += [(p + "attn_output.weight", [H * dv, d], mat(H * dv)), (p + "ffn_norm.weight", [d], F32)]
        if i < c["dense"]:
            f = c["n_ff"]
            t += [(p + "ffn_gate.weight", [d, f], mat(d)), (p + "ffn_up.weight", [d, f], mat(d)),
                  (p + "ffn_down.weight", [f, d], mat(f))]
        else:
            fe, fs = c["ff_exp"], c["ff_exp"] * c["n_shared"]
            t.append((p + "ffn_gate_inp.weight", [d, E], F32))
            if c.get("probs_b"):
                t.append((p + "exp_probs_b.bias", [E], F32))
            t += [(p + "ffn_gate_exps.weight", [d, fe, E], mat(d)),
                  (p + "ffn_up_exps.weight", [d, fe, E], mat(d)),
                  (p + "ffn_down_exps.weight", [fe, d, E], mat(fe))]
            if fs:
                t += [(p + "ffn_gate_shexp.weight", [d, fs], mat(d)),
                      (p + "ffn_up_shexp.weight", [d, fs], mat(d)),
                      (p + "ffn_down_shexp.weight", [fs, d], mat(fs))]
    return kv, t


BASE = dict(name="corpus-ds2", n_layer=2, n_embd=32, n_head=2, q_lora=0, kv_lora=16, qk_nope=8,
            qk_rope=4, v_head=8, vocab=32, n_ff=32, n_expert=4, n_used=2, n_shared=1, ff_exp=16,
            dense=1, gating=1, groups=1, groups_used=1, split=False, mtype=F16, yarn=True)
MODELS = {
    "ds2-combined.gguf": dict(BASE, mtype=F16),
    "ds2-split.gguf": dict(BASE, split=True, q_lora=32, kv_lora=32, v_head=16, ff_exp=32,
                           gating=2, groups=2, groups_used=1, probs_b=True, mtype=Q8_0,
                           alignment=64, yarn=False),
    "ds2-dense.gguf": dict(BASE, dense=2, n_layer=2, mtype=BF16),
}

ALL_TYPES = [("t.u8", UINT8, 200), ("t.i8", INT8, -100), ("t.u16", UINT16, 60000),
             ("t.i16", INT16, -30000), ("t.u32", UINT32, 4000000000), ("t.i32", INT32, -7),
             ("t.f32", FLOAT32, 1.5), ("t.bool", BOOL, 1), ("t.str", STRING, "hello \u2713"),
             ("t.u64", UINT64, 2**64 - 1), ("t.i64", INT64, -2**63), ("t.f64", FLOAT64, 0.1),
             ("t.arr.u8", ARRAY, (UINT8, [1, 2, 255])),
             ("t.arr.f32", ARRAY, (FLOAT32, [0.5, -2.25])),
             ("t.arr.bool", ARRAY, (BOOL, [1, 0])),
             ("t.arr.str", ARRAY, (STRING, ["a", "", "q\"b\\", "\u00fc"])),
             ("t.arr.nested", ARRAY, (ARRAY, [(INT32, [1, 2]), (INT32, [3]), (INT32, [])])),
             ("t.arr.nested.str", ARRAY, (ARRAY, [(STRING, ["x", "y"]), (STRING, ["z"])]))]


def build_mini(kv, tensors, alignment=32, version=3):
    w = MiniWriter(alignment, version)
    if alignment != 32:
        w.add("general.alignment", UINT32, alignment)
    for k, t, v in kv:
        w.add(k, t, v)
    for i, (name, ne, tt) in enumerate(tensors):
        w.add_tensor(name, ne, tt, seed=i + 1)
    return w.tobytes()


def write_with_gw(path, kv, tensors, alignment=32):
    """Same content through tools/gguf_writer.py."""
    w = gw.GGUFWriter(path, alignment=alignment, threads=1)

    def arr(v):
        et, items = v
        if et == ARRAY:
            return gw.GGUFArray(ARRAY, [arr(x) for x in items])
        return gw._make_array(et, items)

    for k, t, v in kv:
        if t == ARRAY:
            w.add_value(k, gw.GGUFValue(ARRAY, arr(v)))
        elif t == BOOL:
            w.add_bool(k, bool(v))
        else:
            w.add_kv(k, t, v)
    rng = np.random.default_rng(1234)
    for name, ne, tt in tensors:
        n = 1
        for x in ne:
            n *= x
        w.add_tensor(name, ne, tt, rng.uniform(-0.5, 0.5, n).astype(np.float32))
    w.write()


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    files = {}
    for fname, c in MODELS.items():
        kv, t = ds2_spec(c)
        files[fname] = (kv, t, c.get("alignment", 32), 3)
    files["meta-all-types.gguf"] = ([("general.architecture", STRING, "deepseek2")] + ALL_TYPES,
                                    [], 32, 3)
    files["tensors-mixed.gguf"] = ([("general.architecture", STRING, "none")],
                                   [("a", [3], F32), ("b.q8", [64, 2], Q8_0),
                                    ("c.f16", [2, 3, 4, 5], F16), ("d.bf16", [1], BF16)], 32, 2)
    for fname, (kv, t, align, version) in files.items():
        path = os.path.join(out, fname)
        if gw is not None and version == 3:
            write_with_gw(path, kv, t, align)
        else:
            with open(path, "wb") as f:
                f.write(build_mini(kv, t, align, version))
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
