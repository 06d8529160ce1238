#!/usr/bin/python3
"""Rebuild the demo model's F32 GGUF from the committed Hugging Face directory, with NumPy only.

The repository ships the demo model as models/demo/hf/ (BF16 safetensors, the exact values the
model was exported with) and models/demo/deepseek-v3-demo-q8_0.gguf. The F32 GGUF (32 MB) is not
committed; this script makes it without PyTorch:

    /usr/bin/python3 tools/train-demo/hf_to_gguf.py -o OUT.gguf
        [--hf models/demo/hf] [--like models/demo/deepseek-v3-demo-q8_0.gguf]

Every metadata key and the tensor list (names, shapes, order) are taken from the `--like` GGUF;
every tensor's values come from the safetensors file, mapped from the Hugging Face names
(deepseek-architectures.md §4.1 → §4.2): kv_b_proj is split per head into attn_k_b (W_UK
transposed) and attn_v_b (W_UV), expert matrices are stacked along the slowest axis.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gguf_writer as gw  # noqa: E402


def read_safetensors(path):
    """name -> float32 numpy array (BF16, F16 and F32 tensors)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(buf, dtype=np.uint8, count=b - a, offset=base + a)
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "BF16":
            v = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            v = raw.view(np.float16).astype(np.float32)
        elif dt == "F32":
            v = raw.view(np.float32).copy()
        else:
            raise ValueError(f"{name}: unsupported dtype {dt}")
        out[name] = v.reshape(shape)
    return out


def hf_value(st, name, hp):
    """The float32 value of GGUF tensor `name` (numpy shape = reversed ggml ne)."""
    simple = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    if name in simple:
        return st[simple[name]]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
    if not m:
        raise KeyError(name)
    l, rest = int(m.group(1)), m.group(2)
    p = f"model.layers.{l}."
    per_layer = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_q_a.weight": "self_attn.q_a_proj.weight",
        "attn_q_a_norm.weight": "self_attn.q_a_layernorm.weight",
        "attn_q_b.weight": "self_attn.q_b_proj.weight",
        "attn_kv_a_mqa.weight": "self_attn.kv_a_proj_with_mqa.weight",
        "attn_kv_a_norm.weight": "self_attn.kv_a_layernorm.weight",
        "attn_kv_b.weight": "self_attn.kv_b_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
        "ffn_gate_inp.weight": "mlp.gate.weight",
        "exp_probs_b.bias": "mlp.gate.e_score_correction_bias",
        "ffn_gate_shexp.weight": "mlp.shared_experts.gate_proj.weight",
        "ffn_up_shexp.weight": "mlp.shared_experts.up_proj.weight",
        "ffn_down_shexp.weight": "mlp.shared_experts.down_proj.weight",
    }
    if rest in per_layer:
        return st[p + per_layer[rest]]
    experts = {"ffn_gate_exps.weight": "gate_proj", "ffn_up_exps.weight": "up_proj",
               "ffn_down_exps.weight": "down_proj"}
    if rest in experts:
        return np.stack([st[f"{p}mlp.experts.{e}.{experts[rest]}.weight"]
                         for e in range(hp["n_expert"])])
    if rest in ("attn_k_b.weight", "attn_v_b.weight"):
        kvb = st[p + "self_attn.kv_b_proj.weight"]          # [H*(dn+dv), dc]
        H, dn, dv = hp["n_head"], hp["dn"], hp["dv"]
        heads = kvb.reshape(H, dn + dv, -1)
        if rest == "attn_k_b.weight":
            return np.ascontiguousarray(heads[:, :dn, :].transpose(0, 2, 1))   # (H, dc, dn)
        return np.ascontiguousarray(heads[:, dn:, :])                         # (H, dv, dc)
    raise KeyError(name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--hf", default=os.path.join(ROOT, "models", "demo", "hf"))
    ap.add_argument("--like", default=os.path.join(ROOT, "models", "demo",
                                                   "deepseek-v3-demo-q8_0.gguf"))
    a = ap.parse_args(argv)
    like = gw.GGUFReader(a.like)
    st = read_safetensors(os.path.join(a.hf, "model.safetensors"))
    arch = like.get("general.architecture")
    kl = like.get(f"{arch}.attention.key_length_mla") or like.get(f"{arch}.attention.key_length")
    hp = {
        "n_head": like.get(f"{arch}.attention.head_count"),
        "dn": kl - like.get(f"{arch}.rope.dimension_count"),
        "dv": like.get(f"{arch}.attention.value_length_mla") or like.get(f"{arch}.attention.value_length"),
        "n_expert": like.get(f"{arch}.expert_count", 0),
    }
    w = gw.GGUFWriter(a.out, alignment=like.alignment)
    for key, val in like.kv.items():
        if key == "general.file_type":
            w.add_uint32(key, 0)        # LLAMA_FTYPE_ALL_F32
            continue
        w.add_value(key, val)
    for name, info in like.tensors.items():
        v = np.ascontiguousarray(hf_value(st, name, hp), dtype=np.float32)
        want = tuple(reversed(info.ne))
        if v.shape != want:
            raise SystemExit(f"{name}: safetensors gives shape {v.shape}, GGUF expects {want}")
        w.add_tensor(name, info.ne, gw.GGMLType.F32, v)
    w.write()
    like.close()


if __name__ == "__main__":
    main()
