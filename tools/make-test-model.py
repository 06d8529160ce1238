#!/usr/bin/python3
"""Generate a seeded random DeepSeek-V2/V3 (`deepseek2` GGUF layout) test model.

Every weight is a pure function of (--seed, tensor name, element index): it is
generated in float32 first and only then converted to the storage type, so the
same seed gives the same underlying weights for every --type / --type-map and
for both --kv-form layouts (split attn_k_b/attn_v_b are cut out of the same
kv_b matrix that the combined form stores).  See tools/README.md.
"""

import argparse
import math
import os
import sys
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as gw  # noqa: E402
from gguf_writer import GGMLType, GGUFValueType  # noqa: E402

ARCH = "deepseek2"
# Elements per RNG chunk.  Part of the value definition: chunk i of a tensor is
# drawn from np.random.default_rng([seed, crc32(name), i]).  Do not change.
RNG_CHUNK = 1 << 20

TYPE_NAMES = {"f32": GGMLType.F32, "f16": GGMLType.F16, "bf16": GGMLType.BF16, "q8_0": GGMLType.Q8_0}
FILE_TYPE = {GGMLType.F32: 0, GGMLType.F16: 1, GGMLType.Q8_0: 7, GGMLType.BF16: 32}

_TINY = dict(
    n_layer=2, n_embd=64, n_head=4, q_lora_rank=0, kv_lora_rank=32, qk_nope=16, qk_rope=8,
    v_head=16, n_ff=128, n_expert=8, n_expert_used=2, n_expert_shared=1, n_ff_exp=32,
    n_leading_dense=1, n_group=1, n_group_used=1, gating="softmax", expert_weights_norm=False,
    expert_weights_scale=1.0, exp_probs_b=False, yarn=True, yarn_factor=40.0, yarn_orig_ctx=4096,
    mscale_all_dim=0.707, rope_freq_base=10000.0, n_ctx_train=4096, vocab=512, rms_eps=1e-6,
)
PRESETS = {
    "tiny": dict(_TINY),
    "v3-tiny": dict(_TINY, n_layer=3, n_leading_dense=1, q_lora_rank=48, gating="sigmoid",
                    exp_probs_b=True, expert_weights_norm=True, expert_weights_scale=2.5,
                    n_group=4, n_group_used=2, mscale_all_dim=1.0),
    "v2-lite": dict(_TINY, n_layer=4, n_embd=2048, n_head=16, q_lora_rank=0, kv_lora_rank=512,
                    qk_nope=128, qk_rope=64, v_head=128, n_ff=10944, n_expert=64, n_expert_used=6,
                    n_expert_shared=2, n_ff_exp=1408, n_leading_dense=1, n_group=1, n_group_used=1,
                    gating="softmax", expert_weights_norm=False, expert_weights_scale=1.0,
                    exp_probs_b=False, mscale_all_dim=0.707, vocab=102400, n_ctx_train=163840),
}

INT_OPTS = ["n_layer", "n_embd", "n_head", "q_lora_rank", "kv_lora_rank", "qk_nope", "qk_rope",
            "v_head", "n_ff", "n_expert", "n_expert_used", "n_expert_shared", "n_ff_exp",
            "n_leading_dense", "n_group", "n_group_used", "n_ctx_train", "vocab", "yarn_orig_ctx"]
FLOAT_OPTS = ["expert_weights_scale", "mscale_all_dim", "rope_freq_base", "yarn_factor", "rms_eps"]
BOOL_OPTS = ["expert_weights_norm", "exp_probs_b", "yarn"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Write a seeded random deepseek2 test model as GGUF.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-o", "--output", required=True, metavar="OUT.gguf", help="output file")
    p.add_argument("--seed", type=int, default=42, help="RNG seed (>= 0)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="base hyperparameters")
    p.add_argument("--name", default=None, help="general.name (default: libdeepseek-test-PRESET)")
    p.add_argument("--type", choices=sorted(TYPE_NAMES), default="f32",
                   help="storage type of the weight matrices (1-D tensors and the router stay F32)")
    p.add_argument("--type-map", default="", metavar="SUBSTR=TYPE,...",
                   help="per-tensor type overrides for matrices whose name contains SUBSTR "
                        "(last match wins), e.g. attn_k_b=f32,ffn_down_exps=q8_0")
    p.add_argument("--kv-form", choices=["split", "combined"], default="split",
                   help="split: MLA attn_k_b/attn_v_b (+ *_mla keys, head_count_kv=1); "
                        "combined: legacy attn_kv_b")
    p.add_argument("--vocab-from", metavar="PATH.gguf", default=None,
                   help="copy all tokenizer.* keys from this GGUF; vocab size = its token count")
    p.add_argument("--alignment", type=int, default=32, help="general.alignment")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: #cpus, max 8)")
    p.add_argument("-v", "--verbose", action="store_true", help="print the configuration and tensors")

    g = p.add_argument_group("hyperparameter overrides (default: from --preset)")
    g.add_argument("--n-layer", type=int, metavar="N")
    g.add_argument("--n-embd", type=int, metavar="N")
    g.add_argument("--n-head", type=int, metavar="N")
    g.add_argument("--q-lora-rank", type=int, metavar="N", help="0 = no q-LoRA (plain attn_q)")
    g.add_argument("--kv-lora-rank", type=int, metavar="N")
    g.add_argument("--qk-nope", type=int, metavar="N")
    g.add_argument("--qk-rope", type=int, metavar="N")
    g.add_argument("--v-head", type=int, metavar="N")
    g.add_argument("--n-ff", type=int, metavar="N", help="dense FFN width")
    g.add_argument("--n-expert", type=int, metavar="N", help="routed experts (0 = dense only)")
    g.add_argument("--n-expert-used", type=int, metavar="N")
    g.add_argument("--n-expert-shared", type=int, metavar="N")
    g.add_argument("--n-ff-exp", type=int, metavar="N", help="expert FFN width")
    g.add_argument("--n-leading-dense", type=int, metavar="N", help="leading dense blocks")
    g.add_argument("--n-group", type=int, metavar="N", help="expert groups")
    g.add_argument("--n-group-used", type=int, metavar="N", help="expert groups used")
    g.add_argument("--gating", choices=["softmax", "sigmoid"])
    g.add_argument("--expert-weights-norm", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--expert-weights-scale", type=float, metavar="X")
    g.add_argument("--exp-probs-b", action=argparse.BooleanOptionalAction, default=None,
                   help="emit the V3 expert selection bias blk.N.exp_probs_b.bias")
    g.add_argument("--yarn", action=argparse.BooleanOptionalAction, default=None,
                   help="YaRN rope scaling (factor 40, original ctx 4096)")
    g.add_argument("--yarn-factor", type=float, metavar="X")
    g.add_argument("--yarn-orig-ctx", type=int, metavar="N")
    g.add_argument("--mscale-all-dim", type=float, metavar="X",
                   help="yarn_log_multiplier = 0.1 * mscale_all_dim (preset default 0.707 / 1.0)")
    g.add_argument("--rope-freq-base", type=float, metavar="X")
    g.add_argument("--n-ctx-train", type=int, metavar="N")
    g.add_argument("--vocab", type=int, metavar="N", help="vocab size when --vocab-from is not given")
    g.add_argument("--rms-eps", type=float, metavar="X")
    return p.parse_args(argv)


class Config:
    pass


def build_config(args):
    hp = dict(PRESETS[args.preset])
    for k in INT_OPTS + FLOAT_OPTS + BOOL_OPTS + ["gating"]:
        v = getattr(args, k)
        if v is not None:
            hp[k] = v
    c = Config()
    c.__dict__.update(hp)
    return c


def validate(c, die):
    pos = ["n_layer", "n_embd", "n_head", "kv_lora_rank", "qk_rope", "v_head", "vocab",
           "n_ctx_train", "n_group", "n_group_used"]
    for k in pos:
        if getattr(c, k) <= 0:
            die(f"--{k.replace('_', '-')} must be > 0")
    for k in ["q_lora_rank", "qk_nope", "n_expert", "n_expert_used", "n_expert_shared",
              "n_leading_dense"]:
        if getattr(c, k) < 0:
            die(f"--{k.replace('_', '-')} must be >= 0")
    if c.qk_rope % 2:
        die("--qk-rope must be even")
    if c.n_ff <= 0 and (c.n_leading_dense > 0 or c.n_expert == 0):
        die("--n-ff must be > 0 when there are dense layers")
    if c.n_expert > 0:
        if c.n_ff_exp <= 0:
            die("--n-ff-exp must be > 0")
        if not 1 <= c.n_expert_used <= c.n_expert:
            die("--n-expert-used must be in 1..n_expert")
        if c.n_expert % c.n_group:
            die("--n-expert must be a multiple of --n-group")
        if c.n_group_used > c.n_group:
            die("--n-group-used must be <= --n-group")
        if c.n_group_used * (c.n_expert // c.n_group) < c.n_expert_used:
            die("the selected groups hold fewer experts than --n-expert-used")
    if c.n_leading_dense > c.n_layer:
        die("--n-leading-dense must be <= --n-layer")
    if c.yarn and c.yarn_factor <= 0:
        die("--yarn-factor must be > 0")


def tensor_seed(seed, name):
    return [seed, zlib.crc32(name.encode())]


def uniform_source(seed, name, numel, mean, std):
    """Uniform values with the given mean and standard deviation (half-width sqrt(3)*std)."""
    half = math.sqrt(3.0) * std
    scale = np.float32(2.0 * half)
    shift = np.float32(mean - half)
    base = tensor_seed(seed, name)

    def make(i, start, count):
        x = np.random.default_rng(base + [i]).random(count, dtype=np.float32)
        x *= scale
        x += shift
        return x

    return gw.ChunkedSource(numel, make, RNG_CHUNK)


def materialize(src):
    return np.concatenate([src.make_chunk(i, s, n) for i, s, n in src.chunks()])


def snap_kv_b(w):
    """Put kv_b on a grid k * 2^-e (|k| <= 127) with |k| = 127 wherever (row+col) % 32 == 0.

    Such values are exact in F16, BF16, F32 and in Q8_0 along either axis (every
    32-block, row-wise or column-wise, has amax = 127 * 2^-e, so d = 2^-e and q = k).
    Hence combined attn_kv_b and split attn_k_b/attn_v_b dequantize to exactly the
    same matrix for every storage type.
    """
    amax = float(np.abs(w).max())
    step = 2.0 ** math.ceil(math.log2(amax / 127.0)) if amax > 0 else 2.0 ** -10
    k = np.rint(w.astype(np.float64) / step)
    r, c = np.indices(w.shape)
    mark = (r + c) % 32 == 0
    k[mark] = np.where(k[mark] < 0, -127.0, 127.0)
    return (k * step).astype(np.float32)


def plan_tensors(c, seed, kv_form):
    """List of (name, ne, source, is_router). ne in ggml order."""
    d, H, V, L = c.n_embd, c.n_head, c.vocab, c.n_layer
    dqk = c.qk_nope + c.qk_rope
    res = 1.0 / math.sqrt(2.0 * L)  # extra scale for residual-branch output projections
    out = []

    def w(name, ne, std, mean=0.0, router=False):
        numel = int(np.prod(ne))
        out.append((name, ne, uniform_source(seed, name, numel, mean, std), router))

    def norm(name, n):
        w(name, [n], 0.1 / math.sqrt(3.0), mean=1.0)  # 1 +- 0.1

    w("token_embd.weight", [d, V], 1.0)
    for i in range(L):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight", d)
        if c.q_lora_rank > 0:
            w(p + "attn_q_a.weight", [d, c.q_lora_rank], 1 / math.sqrt(d))
            norm(p + "attn_q_a_norm.weight", c.q_lora_rank)
            w(p + "attn_q_b.weight", [c.q_lora_rank, H * dqk], 1 / math.sqrt(c.q_lora_rank))
        else:
            w(p + "attn_q.weight", [d, H * dqk], 1 / math.sqrt(d))
        w(p + "attn_kv_a_mqa.weight", [d, c.kv_lora_rank + c.qk_rope], 1 / math.sqrt(d))
        norm(p + "attn_kv_a_norm.weight", c.kv_lora_rank)

        # kv_b: torch [H*(nope+v), kv_lora]; generated once under the combined name.
        kvb_name = p + "attn_kv_b.weight"
        n_rows = H * (c.qk_nope + c.v_head)
        kvb = snap_kv_b(materialize(uniform_source(
            seed, kvb_name, n_rows * c.kv_lora_rank, 0.0, 1 / math.sqrt(c.kv_lora_rank)))
            .reshape(n_rows, c.kv_lora_rank))
        if kv_form == "combined":
            out.append((kvb_name, [c.kv_lora_rank, n_rows], kvb, False))
        else:
            per_head = kvb.reshape(H, c.qk_nope + c.v_head, c.kv_lora_rank)
            k_b = np.ascontiguousarray(per_head[:, :c.qk_nope, :].transpose(0, 2, 1))  # [H, kv_lora, nope]
            v_b = np.ascontiguousarray(per_head[:, c.qk_nope:, :])                     # [H, v, kv_lora]
            out.append((p + "attn_k_b.weight", [c.qk_nope, c.kv_lora_rank, H], k_b, False))
            out.append((p + "attn_v_b.weight", [c.kv_lora_rank, c.v_head, H], v_b, False))

        w(p + "attn_output.weight", [H * c.v_head, d], res / math.sqrt(H * c.v_head))
        norm(p + "ffn_norm.weight", d)
        if c.n_expert == 0 or i < c.n_leading_dense:
            w(p + "ffn_gate.weight", [d, c.n_ff], 1 / math.sqrt(d))
            w(p + "ffn_up.weight", [d, c.n_ff], 1 / math.sqrt(d))
            w(p + "ffn_down.weight", [c.n_ff, d], res / math.sqrt(c.n_ff))
        else:
            E, F = c.n_expert, c.n_ff_exp
            w(p + "ffn_gate_inp.weight", [d, E], 1 / math.sqrt(d), router=True)
            if c.exp_probs_b:
                w(p + "exp_probs_b.bias", [E], 0.1 / math.sqrt(3.0))  # uniform +-0.1
            w(p + "ffn_gate_exps.weight", [d, F, E], 1 / math.sqrt(d))
            w(p + "ffn_up_exps.weight", [d, F, E], 1 / math.sqrt(d))
            w(p + "ffn_down_exps.weight", [F, d, E], res / math.sqrt(F))
            if c.n_expert_shared > 0:
                S = F * c.n_expert_shared
                w(p + "ffn_gate_shexp.weight", [d, S], 1 / math.sqrt(d))
                w(p + "ffn_up_shexp.weight", [d, S], 1 / math.sqrt(d))
                w(p + "ffn_down_shexp.weight", [S, d], res / math.sqrt(S))
    norm("output_norm.weight", d)
    w("output.weight", [d, V], 3.0 / math.sqrt(d))  # logits std ~3
    return out


def parse_type_map(s, die):
    out = []
    for item in filter(None, (x.strip() for x in s.split(","))):
        if "=" not in item:
            die(f"bad --type-map entry {item!r} (want SUBSTR=TYPE)")
        sub, ty = item.rsplit("=", 1)
        if ty.strip().lower() not in TYPE_NAMES or not sub.strip():
            die(f"bad --type-map entry {item!r} (types: {', '.join(sorted(TYPE_NAMES))})")
        out.append((sub.strip(), TYPE_NAMES[ty.strip().lower()]))
    return out


def pick_type(name, ne, is_router, base, type_map, log):
    if len(ne) == 1:
        return GGMLType.F32  # norms, exp_probs_b
    t = GGMLType.F32 if is_router else base
    for sub, ty in type_map:
        if sub in name:
            t = ty
    blk = GGMLType.BLOCK[t][0]
    if ne[0] % blk:
        log(f"note: {name}: ne[0]={ne[0]} is not a multiple of {blk}, "
            f"storing {GGMLType.NAMES[t]} as F16")
        t = GGMLType.F16
    return t


def main(argv=None):
    args = parse_args(argv)
    prog = os.path.basename(sys.argv[0])

    def die(msg):
        print(f"{prog}: error: {msg}", file=sys.stderr)
        sys.exit(2)

    def log(msg):
        if args.verbose:
            print(msg, file=sys.stderr)

    if args.seed < 0:
        die("--seed must be >= 0")
    c = build_config(args)
    tok_kv = []
    if args.vocab_from:
        try:
            r = gw.GGUFReader(args.vocab_from)
        except (OSError, ValueError) as e:
            die(f"cannot read {args.vocab_from}: {e}")
        tok_kv = [(k, v) for k, v in r.kv.items() if k.startswith("tokenizer.")]
        toks = r.get("tokenizer.ggml.tokens")
        if toks is None:
            die(f"{args.vocab_from} has no tokenizer.ggml.tokens")
        if args.vocab is not None and args.vocab != len(toks):
            die(f"--vocab {args.vocab} does not match the {len(toks)} tokens of --vocab-from")
        c.vocab = len(toks)
        r.close()
    validate(c, die)
    base_type = TYPE_NAMES[args.type]
    type_map = parse_type_map(args.type_map, die)
    if args.threads is not None and args.threads <= 0:
        die("--threads must be > 0")

    H = c.n_head
    n_dense = c.n_layer if c.n_expert == 0 else c.n_leading_dense
    try:
        w = gw.GGUFWriter(args.output, alignment=args.alignment, threads=args.threads)
    except ValueError as e:
        die(str(e))
    A = ARCH + "."
    w.add_string("general.architecture", ARCH)
    w.add_string("general.name", args.name or f"libdeepseek-test-{args.preset}")
    w.add_uint32("general.alignment", args.alignment)
    w.add_uint32(A + "vocab_size", c.vocab)
    w.add_uint32(A + "context_length", c.n_ctx_train)
    w.add_uint32(A + "embedding_length", c.n_embd)
    w.add_uint32(A + "block_count", c.n_layer)
    w.add_uint32(A + "feed_forward_length", c.n_ff)
    w.add_uint32(A + "leading_dense_block_count", n_dense)
    w.add_uint32(A + "attention.head_count", H)
    if c.q_lora_rank > 0:
        w.add_uint32(A + "attention.q_lora_rank", c.q_lora_rank)
    w.add_uint32(A + "attention.kv_lora_rank", c.kv_lora_rank)
    if args.kv_form == "split":
        w.add_uint32(A + "attention.head_count_kv", 1)
        w.add_uint32(A + "attention.key_length", c.kv_lora_rank + c.qk_rope)
        w.add_uint32(A + "attention.value_length", c.kv_lora_rank)
        w.add_uint32(A + "attention.key_length_mla", c.qk_nope + c.qk_rope)
        w.add_uint32(A + "attention.value_length_mla", c.v_head)
    else:
        w.add_uint32(A + "attention.head_count_kv", H)
        w.add_uint32(A + "attention.key_length", c.qk_nope + c.qk_rope)
        w.add_uint32(A + "attention.value_length", c.v_head)
    w.add_float32(A + "attention.layer_norm_rms_epsilon", c.rms_eps)
    w.add_uint32(A + "rope.dimension_count", c.qk_rope)
    w.add_float32(A + "rope.freq_base", c.rope_freq_base)
    if c.yarn:
        w.add_string(A + "rope.scaling.type", "yarn")
        w.add_float32(A + "rope.scaling.factor", c.yarn_factor)
        w.add_uint32(A + "rope.scaling.original_context_length", c.yarn_orig_ctx)
    else:
        w.add_string(A + "rope.scaling.type", "none")
    # required by llama.cpp c392e50's deepseek2 loader even without YaRN
    w.add_float32(A + "rope.scaling.yarn_log_multiplier", 0.1 * c.mscale_all_dim)
    w.add_uint32(A + "expert_count", c.n_expert)
    w.add_uint32(A + "expert_used_count", c.n_expert_used if c.n_expert else 0)
    w.add_uint32(A + "expert_shared_count", c.n_expert_shared if c.n_expert else 0)
    w.add_uint32(A + "expert_feed_forward_length", c.n_ff_exp if c.n_expert else 0)
    w.add_float32(A + "expert_weights_scale", c.expert_weights_scale)
    w.add_bool(A + "expert_weights_norm", c.expert_weights_norm)
    w.add_uint32(A + "expert_gating_func", 1 if c.gating == "softmax" else 2)
    w.add_uint32(A + "expert_group_count", c.n_group)
    w.add_uint32(A + "expert_group_used_count", c.n_group_used)
    w.add_uint32("general.file_type", FILE_TYPE[base_type])
    w.add_uint32("general.quantization_version", 2)
    for k, v in tok_kv:
        w.add_value(k, v)

    if args.verbose:
        log(f"config ({args.preset}, kv-form {args.kv_form}, type {args.type}, seed {args.seed}):")
        for k in sorted(c.__dict__):
            log(f"  {k} = {c.__dict__[k]}")
    t0 = time.time()
    total = 0
    for name, ne, src, router in plan_tensors(c, args.seed, args.kv_form):
        t = pick_type(name, ne, router, base_type, type_map, log)
        w.add_tensor(name, ne, t, src)
        total += int(np.prod(ne))

    def progress(t):
        log(f"  {t.name:32s} {str(t.ne):24s} {GGMLType.NAMES[t.ggml_type]:5s} "
            f"{t.nbytes:>12d} B  {time.time() - t0:7.2f} s")

    try:
        w.write(progress if args.verbose else None)
    except OSError as e:
        die(f"cannot write {args.output}: {e}")
    log(f"wrote {args.output}: {len(w.tensors)} tensors, {total} parameters, "
        f"{os.path.getsize(args.output)} bytes in {time.time() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
