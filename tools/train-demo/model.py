#!/usr/bin/python3
"""A small DeepSeek-V3 (`deepseek2` GGUF arch) model in PyTorch, written from
/work/shared/docs/deepseek-architectures.md §2 (naive MLA form).

Forward pass (pre-norm residual):
    x = Emb[tok]
    per layer: x += MLA(RMSNorm(x)); x += FFN(RMSNorm(x))   FFN = SwiGLU for layer < n_dense,
                                                            else MoE (sigmoid router)
    logits = lm_head(RMSNorm(x))  (untied)

MLA with q-LoRA:  c_q = RMSNorm(W_qa h); q = W_qb c_q, per head [nope ; rope];
    kv = W_kva h = [c_kv ; k_pe]; c_kv = RMSNorm(c_kv); kvb = W_kvb c_kv, per head [k_nope ; v];
    RoPE on q_pe (every head) and k_pe (shared), ADJACENT pairs (x[2j], x[2j+1]),
    YaRN frequencies (beta_fast 32, beta_slow 1), unit cos/sin magnitude,
    softmax scale = mscale^2 / sqrt(nope + rope), mscale = 1 + 0.1 * mscale_all_dim * ln(factor).
MoE: p = sigmoid(W_gate h) (fp32); selection on p + b (b = e_score_correction_bias, not
    trained by gradient, updated with the aux-loss-free rule b_i += gamma * sign(mean_load - load_i));
    weights = p of the chosen experts, normalised to sum 1, times routed_scaling_factor;
    out = sum_e w_e * expert_e(h) + shared(h).
"""

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 3072
    d: int = 256
    n_layer: int = 4
    n_dense: int = 1
    n_head: int = 4
    q_lora: int = 128
    kv_lora: int = 64
    nope: int = 32
    rope: int = 16
    v_head: int = 32
    n_ff: int = 768
    n_expert: int = 8
    n_expert_used: int = 2
    n_shared: int = 1
    n_ff_exp: int = 256
    routed_scale: float = 2.5
    rms_eps: float = 1e-6
    rope_theta: float = 10000.0
    yarn: bool = True
    yarn_factor: float = 4.0
    yarn_orig_ctx: int = 256
    mscale_all_dim: float = 1.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    ctx: int = 256          # training sequence length
    bias_gamma: float = 2e-3

    def asdict(self):
        return asdict(self)


def yarn_get_mscale(s, m):
    return 1.0 if s <= 1 else 1.0 + 0.1 * m * math.log(s)


def rope_freqs(cfg):
    """Per-pair angular frequencies f'_j, j = 0..rope/2-1 (float64)."""
    dr = cfg.rope
    j = torch.arange(dr // 2, dtype=torch.float64)
    f = cfg.rope_theta ** (-2.0 * j / dr)
    if cfg.yarn and cfg.yarn_factor > 1:
        s = cfg.yarn_factor

        def corr(b):
            return dr * math.log(cfg.yarn_orig_ctx / (b * 2 * math.pi)) / (2 * math.log(cfg.rope_theta))

        low = max(math.floor(corr(cfg.beta_fast)), 0)
        high = min(math.ceil(corr(cfg.beta_slow)), dr - 1)
        r = ((j - low) / max(high - low, 0.001)).clamp(0, 1)
        f = f * (1 - r) + (f / s) * r
    return f


def attn_scale(cfg):
    m = yarn_get_mscale(cfg.yarn_factor, cfg.mscale_all_dim) if cfg.yarn else 1.0
    return m * m / math.sqrt(cfg.nope + cfg.rope)


def apply_rope(x, cos, sin):
    """x [..., T, dr]; adjacent pairs (x[2j], x[2j+1]) rotated by angle p*f_j."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack([y0, y1], dim=-1).flatten(-2)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        xf = x.float() if x.dtype != torch.float64 else x
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.to(y.dtype) * y).to(x.dtype)


class MLA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        H = cfg.n_head
        self.q_a_proj = nn.Linear(cfg.d, cfg.q_lora, bias=False)
        self.q_a_layernorm = RMSNorm(cfg.q_lora, cfg.rms_eps)
        self.q_b_proj = nn.Linear(cfg.q_lora, H * (cfg.nope + cfg.rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(cfg.d, cfg.kv_lora + cfg.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora, cfg.rms_eps)
        self.kv_b_proj = nn.Linear(cfg.kv_lora, H * (cfg.nope + cfg.v_head), bias=False)
        self.o_proj = nn.Linear(H * cfg.v_head, cfg.d, bias=False)
        self.scale = attn_scale(cfg)

    def forward(self, h, cos, sin, mask):
        c = self.cfg
        B, T, _ = h.shape
        H = c.n_head
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(h)))
        q = q.view(B, T, H, c.nope + c.rope).transpose(1, 2)           # B H T dqk
        q_nope, q_pe = q[..., :c.nope], q[..., c.nope:]
        kv = self.kv_a_proj_with_mqa(h)
        c_kv, k_pe = kv[..., :c.kv_lora], kv[..., c.kv_lora:]
        kvb = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(B, T, H, c.nope + c.v_head)
        kvb = kvb.transpose(1, 2)
        k_nope, v = kvb[..., :c.nope], kvb[..., c.nope:]
        q_pe = apply_rope(q_pe, cos, sin)
        k_pe = apply_rope(k_pe.unsqueeze(1), cos, sin)                  # B 1 T dr
        qf = torch.cat([q_nope, q_pe], -1)
        kf = torch.cat([k_nope, k_pe.expand(B, H, T, c.rope)], -1)
        s = (qf @ kf.transpose(-1, -2)) * self.scale
        s = s + mask
        a = torch.softmax(s.float() if s.dtype == torch.float16 else s, dim=-1).to(v.dtype)
        o = (a @ v).transpose(1, 2).reshape(B, T, H * c.v_head)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, d, ff):
        super().__init__()
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        E, d, fe = cfg.n_expert, cfg.d, cfg.n_ff_exp
        self.gate = nn.Linear(d, E, bias=False)                               # router
        self.register_buffer("e_score_correction_bias", torch.zeros(E))       # selection only
        self.w1 = nn.Parameter(torch.empty(E, fe, d))   # gate_proj, torch [out, in] per expert
        self.w3 = nn.Parameter(torch.empty(E, fe, d))   # up_proj
        self.w2 = nn.Parameter(torch.empty(E, d, fe))   # down_proj
        self.shared = MLP(d, fe * cfg.n_shared)
        self.last_load = None

    def forward(self, x):
        c = self.cfg
        B, T, d = x.shape
        h = x.reshape(-1, d)
        wdt = torch.float64 if h.dtype == torch.float64 else torch.float32
        logits = F.linear(h.to(wdt), self.gate.weight.to(wdt))
        p = torch.sigmoid(logits)
        q = p + self.e_score_correction_bias.to(wdt)
        idx = torch.topk(q, c.n_expert_used, dim=-1).indices                # N k
        w = p.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * c.routed_scale
        w = w.to(h.dtype)
        out = self.shared(h)
        load = torch.zeros(c.n_expert, dtype=torch.float32)
        for e in range(c.n_expert):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            load[e] = tok.numel()
            if tok.numel() == 0:
                continue
            he = h[tok]
            y = F.linear(F.silu(F.linear(he, self.w1[e])) * F.linear(he, self.w3[e]), self.w2[e])
            out = out.index_add(0, tok, y * w[tok, slot].unsqueeze(-1))
        self.last_load = load
        return out.view(B, T, d)

    @torch.no_grad()
    def update_bias(self):
        if self.last_load is None:
            return
        load = self.last_load
        self.e_score_correction_bias += self.cfg.bias_gamma * torch.sign(load.mean() - load)


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d, cfg.rms_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d, cfg.rms_eps)
        self.is_moe = layer >= cfg.n_dense
        self.mlp = MoE(cfg) if self.is_moe else MLP(cfg.d, cfg.n_ff)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DeepSeekV3(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.d)
        self.layers = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.d, cfg.rms_eps)
        self.lm_head = nn.Linear(cfg.d, cfg.vocab, bias=False)
        self.register_buffer("freqs", rope_freqs(cfg), persistent=False)
        self.reset_parameters()

    def reset_parameters(self, std=0.02):
        g = torch.Generator().manual_seed(0)
        res = std / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                nn.init.ones_(p)
                continue
            s = res if ("o_proj" in name or "down_proj" in name or name.endswith(".w2")) else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * s)

    def rope_tables(self, T, dtype, offset=0):
        pos = torch.arange(offset, offset + T, dtype=torch.float64)
        ang = pos[:, None] * self.freqs[None, :].to(torch.float64)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    def forward(self, tokens):
        B, T = tokens.shape
        x = self.embed_tokens(tokens)
        cos, sin = self.rope_tables(T, x.dtype)
        mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))

    def moe_layers(self):
        return [l.mlp for l in self.layers if l.is_moe]

    def n_params(self):
        return sum(p.numel() for p in self.parameters()) + \
            sum(m.e_score_correction_bias.numel() for m in self.moe_layers())
