"""Helpers shared by the tests that compare the library's logits with the NumPy reference
(tests/forward/test_vs_reference.py, tests/kernels/test_quant_models.py).

* RoutingRecorder: the reference, also recording for every token whether one of its routing
  decisions was a near-tie (the kept/dropped group scores, or the k-th and (k+1)-th selection
  scores among the experts of the kept groups, within 0.5 % of the score range). On the fast
  path (bf16 activations) such a decision may legitimately go the other way.
* check_approx: cosine >= 0.999 per position and the same argmax wherever the reference's
  top-two margin exceeds 1 % of its logit range, except at masked (near-tie) positions.
* ds_logits / prompt: run `ds logits --all` and make a seeded prompt.
"""
import json
import subprocess

import numpy as np

from ds2_reference import Deepseek2

TIE_FRACTION = 0.005


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
            if self.topk_group < self.n_group:
                tie |= (gsorted[:, self.topk_group - 1] - gsorted[:, self.topk_group]) < TIE_FRACTION * span
            # the top-k is chosen among the experts of the kept groups only
            kept = np.zeros((T, self.n_group), dtype=bool)
            np.put_along_axis(kept, order[:, :self.topk_group], True, -1)
            cand = np.where(np.repeat(kept, E // self.n_group, axis=1), sc, -np.inf)
        srt = -np.sort(-cand, -1)
        if self.n_expert_used < np.isfinite(srt).sum(-1).min():
            tie |= (srt[:, self.n_expert_used - 1] - srt[:, self.n_expert_used]) < TIE_FRACTION * span
        self.near_tie = tie if self.near_tie is None else (self.near_tie | tie)
        return super().route(l, h)

    def ties(self, n):
        return self.near_tie if self.near_tie is not None else np.zeros(n, dtype=bool)


def check_approx(name, got, ref, mask=None):
    """Cosine >= 0.999 per position and same argmax where the reference's top-2 margin is
    clear; positions in `mask` are exempt. Returns the smallest checked cosine."""
    if mask is None:
        mask = np.zeros(len(ref), dtype=bool)
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    ok = (cos >= 0.999) | mask
    assert np.all(ok), f"{name}: cosine < 0.999 at positions {np.where(~ok)[0]} ({cos[~ok]})"
    srt = np.sort(ref, axis=1)
    clear = (srt[:, -1] - srt[:, -2] > 0.01 * (srt[:, -1] - srt[:, 0])) & ~mask
    same = np.argmax(got, axis=1) == np.argmax(ref, axis=1)
    assert np.all(same[clear]), f"{name}: argmax differs at positions {np.where(clear & ~same)[0]}"
    return float(cos[~mask].min()) if (~mask).any() else 1.0


def ds_logits(ds, model, tokens, precision, threads=2, extra=()):
    """(logits [n_tokens, n_vocab] float64, n_vocab) from `ds logits --all` (plus `extra`
    options)."""
    r = subprocess.run([str(ds), "logits", "-m", str(model), "--tokens", ",".join(map(str, tokens)),
                        "--all", "--precision", precision, "-t", str(threads), *extra],
                       check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    return np.asarray(j["logits"], dtype=np.float64), j["n_vocab"]


def prompt(n_vocab, n, seed=3):
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, n_vocab, size=n)]
