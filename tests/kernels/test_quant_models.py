"""Whole models with quantized weights: the library's logits against the NumPy reference.

For each configuration a seeded random F32 model is generated with tools/make-test-model.py
(n_embd 256 etc. so that rows are multiples of the 256-element K-quant super-block), rewritten by
tests/kernels/quantize_gguf.py into a mix of quantized types, plus an F32 copy holding exactly the
dequantized values (checked bit for bit against the library's dequantizers by the dequant-check
program). The quantized file runs through `ds logits --all` (a 64-token prefill); the F32 copy
runs through tests/reference/ds2_reference.py (float64). Per position:

* f32 path (--precision f32): max |Δ| <= 1e-3 * max |reference logit|.
* fast path (--precision bf16: int8 activations in the GEMVs, bf16 batches): cosine >= 0.999,
  and the same argmax wherever the reference's top-two margin exceeds 1% of its logit range.
  As in tests/forward/test_vs_reference.py, positions where a router decision of the reference is
  a near-tie (kept vs dropped group score, or the k-th vs (k+1)-th selection score among the
  experts of the kept groups, within 0.5% of the score range) are excluded from these two
  checks (and must be fewer than 20%). Note the "among the kept groups": comparing the k-th and
  (k+1)-th score over all experts misses ties inside the kept groups when an expert of a
  dropped group scores in between.

Run: /usr/bin/python3 -m pytest tests/kernels/test_quant_models.py   (needs DS_BUILD_ROOT or a
`build/` directory with examples/ds and tests/kernels/dequant-check).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "reference"))
from ds2_reference import Deepseek2  # noqa: E402

BUILD = Path(os.environ.get("DS_BUILD_ROOT", ROOT / "build"))
DS = BUILD / "examples" / "ds"
CHECK = BUILD / "tests" / "kernels" / "dequant-check"
GEN = ROOT / "tools" / "make-test-model.py"
QUANT = Path(__file__).resolve().parent / "quantize_gguf.py"
PY = "/usr/bin/python3"
N_TOKENS = 64

DIMS = ["--n-embd", "256", "--n-ff", "512", "--n-ff-exp", "256", "--kv-lora-rank", "256",
        "--qk-nope", "64", "--qk-rope", "32", "--v-head", "64"]
LITE = ["--preset", "tiny"] + DIMS
V3 = ["--preset", "v3-tiny", "--q-lora-rank", "256"] + DIMS

# name: (generator args, quantize_gguf args, types that must appear)
CONFIGS = {
    # DeepSeek Q4_K_M rules (formats.md §3): Q4_K, Q6_K for output / attn_v_b / ffn_down of the
    # use_more_bits layers, Q5_0 fallback for attn_k_b (rows of 64), F32 norms and router
    "q4km-lite-split": (LITE + ["--kv-form", "split"], ["--q4-k-m"], {"Q4_K", "Q6_K", "Q5_0"}),
    "q4km-lite-combined": (LITE + ["--kv-form", "combined"], ["--q4-k-m"], {"Q4_K", "Q6_K"}),
    "q4km-v3": (V3 + ["--kv-form", "split"], ["--q4-k-m"], {"Q4_K", "Q6_K", "Q5_0"}),
    "legacy": (LITE + ["--kv-form", "split"],
               ["--default", "Q4_0", "--map",
                "ffn_up=Q4_1,ffn_down=Q5_0,attn=Q5_1,output.=Q8_0,token_embd=Q4_1"],
               {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}),
    "q2k-mix": (LITE + ["--kv-form", "combined"],
                ["--default", "Q2_K", "--map", "attn=Q3_K,ffn_down=Q5_K,output.=Q6_K"],
                {"Q2_K", "Q3_K", "Q5_K", "Q6_K"}),
    "q3k-mix": (V3 + ["--kv-form", "split"],
                ["--default", "Q3_K", "--map", "ffn_gate=Q2_K,token_embd=Q5_K,shexp=Q4_K"],
                {"Q2_K", "Q3_K", "Q4_K", "Q5_K"}),
}


def _need_tools():
    for p in (DS, CHECK):
        if not p.exists():
            pytest.skip(f"SKIPPED: {p} is not built")


def _make(tmp_path, name, gen_args, q_args, seed=5):
    f32 = tmp_path / f"{name}-f32.gguf"
    quant = tmp_path / f"{name}.gguf"
    ref = tmp_path / f"{name}-ref.gguf"
    subprocess.run([PY, str(GEN), "-o", str(f32), "--seed", str(seed), "--type", "f32",
                    "--threads", "1", *gen_args], check=True, capture_output=True)
    subprocess.run([PY, str(QUANT), str(f32), str(quant), str(ref), *q_args], check=True,
                   capture_output=True)
    return quant, ref


def _prompt(n_vocab, n=N_TOKENS, seed=3):
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, n_vocab, size=n)]


def _ds_logits(model, tokens, precision):
    r = subprocess.run([str(DS), "logits", "-m", str(model), "--tokens", ",".join(map(str, tokens)),
                        "--all", "--precision", precision, "-t", "2"],
                       check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    return np.asarray(j["logits"], dtype=np.float64), j["n_vocab"]


class RoutingRecorder(Deepseek2):
    """The reference, also recording per token whether a routing decision was a near-tie."""

    def __init__(self, path):
        super().__init__(path)
        self.near_tie = None

    def route(self, l, h):
        p = f"blk.{l}."
        logits = h @ self.W(p + "ffn_gate_inp.weight").T
        if self.gating == "sigmoid":
            sc = 1 / (1 + np.exp(-logits))
        else:
            e = np.exp(logits - logits.max(-1, keepdims=True))
            sc = e / e.sum(-1, keepdims=True)
        if self.has(p + "exp_probs_b.bias"):
            sc = sc + self.W(p + "exp_probs_b.bias")
        T, E = sc.shape
        span = sc.max(-1) - sc.min(-1) + 1e-30
        tie = np.zeros(T, dtype=bool)
        cand = sc
        if self.n_group > 1:
            g = sc.reshape(T, self.n_group, E // self.n_group)
            gs = g.max(-1) if self.group_score == "max" else np.sort(g, -1)[..., -2:].sum(-1)
            order = np.argsort(-gs, -1, kind="stable")
            gsorted = np.take_along_axis(gs, order, -1)
            tie |= (gsorted[:, self.topk_group - 1] - gsorted[:, self.topk_group]) < 0.005 * span
            # the top-k is chosen among the experts of the kept groups only
            kept = np.zeros((T, self.n_group), dtype=bool)
            np.put_along_axis(kept, order[:, :self.topk_group], True, -1)
            cand = np.where(np.repeat(kept, E // self.n_group, axis=1), sc, -np.inf)
        srt = -np.sort(-cand, -1)
        if self.n_expert_used < np.isfinite(srt).sum(-1).min():
            tie |= (srt[:, self.n_expert_used - 1] - srt[:, self.n_expert_used]) < 0.005 * span
        self.near_tie = tie if self.near_tie is None else (self.near_tie | tie)
        return super().route(l, h)


def _check_approx(name, got, ref, mask):
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    ok = (cos >= 0.999) | mask
    assert np.all(ok), f"{name}: cosine < 0.999 at positions {np.where(~ok)[0]} ({cos[~ok]})"
    srt = np.sort(ref, axis=1)
    clear = (srt[:, -1] - srt[:, -2] > 0.01 * (srt[:, -1] - srt[:, 0])) & ~mask
    same = np.argmax(got, axis=1) == np.argmax(ref, axis=1)
    assert np.all(same[clear]), f"{name}: argmax differs at positions {np.where(clear & ~same)[0]}"
    return float(cos[~mask].min()) if (~mask).any() else 1.0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_quantized_model_logits(tmp_path, name):
    _need_tools()
    gen_args, q_args, must_have = CONFIGS[name]
    quant, ref_file = _make(tmp_path, name, gen_args, q_args)
    chk = subprocess.run([str(CHECK), str(quant), str(ref_file)], capture_output=True, text=True)
    assert chk.returncode == 0, f"{name}: dequantized tensors differ from the reference file:\n" \
                                f"{chk.stdout}{chk.stderr}"
    present = {item.split(":")[0] for item in chk.stdout.split()}
    assert must_have <= present, f"{name}: types {must_have - present} missing ({chk.stdout})"

    ref_model = RoutingRecorder(str(ref_file))
    info = json.loads(subprocess.run([str(DS), "info", "-m", str(quant)], check=True,
                                     capture_output=True, text=True).stdout)
    tokens = _prompt(info["n_vocab"])
    ref = np.asarray(ref_model.forward(tokens), dtype=np.float64)

    got, nv = _ds_logits(quant, tokens, "f32")
    assert got.shape == ref.shape == (N_TOKENS, nv)
    assert np.all(np.isfinite(got))
    tol = 1e-3 * np.max(np.abs(ref))
    err = np.max(np.abs(got - ref))
    assert err <= tol, f"{name} (f32 path): max |Δ| {err:.3g} > {tol:.3g}"

    fast, _ = _ds_logits(quant, tokens, "bf16")
    assert np.all(np.isfinite(fast))
    ties = ref_model.near_tie if ref_model.near_tie is not None else np.zeros(N_TOKENS, bool)
    assert ties.sum() < 0.2 * N_TOKENS, f"{name}: {ties.sum()} near-tie positions"
    cmin = _check_approx(name + " (fast path)", fast, ref, ties)
    print(f"{name}: f32 max|Δ| {err:.3g} (tol {tol:.3g}); fast min cosine {cmin:.6f}, "
          f"{int(ties.sum())} near-tie positions excluded; {chk.stdout.strip()}")
