/*
 * tests/forward/test_forward_synth.c — the deepseek2 forward pass on small random models built
 * in memory (no file, no loader), checked against a naive double-precision reference written
 * here from deepseek-architectures.md §2 (non-absorbed MLA: k_nope/v from kv_b per head).
 *
 * Also: prefill vs single steps vs chunked prefill, split vs combined kv_b forms, f16/bf16
 * caches, context full, cancellation, truncation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "forward/deepseek2.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- model description ------------------------------------------------------------------ */

typedef struct cfg {
    uint32_t d, H, d_n, d_r, d_v, d_c, d_q, n_layer, n_dense, n_ff;
    uint32_t E, k, n_shared, n_ff_exp, n_group, n_group_used, vocab;
    uint32_t gating;
    bool norm, bias;
    float scale;
    bool yarn;
    float factor, mscale_all_dim;
    uint32_t wtype; /* 0 F32, 1 F16, 30 BF16 for all matrices */
    uint64_t seed;
} cfg;

/* a weight: master values (already rounded to the storage type) + the ds_weight view */
typedef struct mw {
    float *v;   /* ne0*ne1*ne2 values, row-major [ne2][ne1][ne0] */
    ds_weight w;
} mw;

typedef struct slayer {
    mw attn_norm, attn_q, attn_q_a, attn_q_a_norm, attn_q_b, attn_kv_a_mqa, attn_kv_a_norm;
    mw kv_b;  /* master [H*(d_n+d_v)][d_c]; w = attn_kv_b (combined form) */
    mw k_b, v_b;
    mw attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, gate_inp, probs_b;
    mw gate_exps, up_exps, down_exps, gate_sh, up_sh, down_sh;
} slayer;

typedef struct synth {
    cfg c;
    mw embd, out_norm, out;
    slayer *L;
    ds_model_data md_split, md_comb;
    void *allocs[1024];
    int n_allocs;
    uint64_t rng;
} synth;

static void *sx_alloc(synth *s, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    assert_true(s->n_allocs < 1024);
    s->allocs[s->n_allocs++] = p;
    return p;
}

static double rnd(synth *s) /* uniform [-1, 1) */
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (double)(s->rng >> 11) / 4503599627370496.0 - 1.0;
}

static float round_to(uint32_t type, float v)
{
    if (type == 1)
        return ds_f16_to_f32(ds_f32_to_f16(v));
    if (type == 30)
        return ds_bf16_to_f32(ds_f32_to_bf16(v));
    return v;
}

/* make a weight view of `type` over vals (rounded in place) */
static void bind(synth *s, mw *m, const char *name, uint32_t type, int64_t ne0, int64_t ne1,
                 int64_t ne2)
{
    size_t n = (size_t)(ne0 * ne1 * ne2);
    size_t es = type == 0 ? 4 : 2;
    void *data = sx_alloc(s, n * es);
    for (size_t i = 0; i < n; i++) {
        m->v[i] = round_to(type, m->v[i]);
        if (type == 0)
            ((float *)data)[i] = m->v[i];
        else if (type == 1)
            ((uint16_t *)data)[i] = ds_f32_to_f16(m->v[i]);
        else
            ((uint16_t *)data)[i] = ds_f32_to_bf16(m->v[i]);
    }
    memset(&m->w, 0, sizeof m->w);
    m->w.name = name;
    m->w.type = type;
    m->w.ne[0] = ne0;
    m->w.ne[1] = ne1;
    m->w.ne[2] = ne2;
    m->w.ne[3] = 1;
    m->w.row_bytes = (size_t)ne0 * es;
    m->w.nbytes = n * es;
    m->w.data = data;
}

/* random matrix {ne0 in, ne1 out, ne2}, uniform with amplitude amp / sqrt(in) */
static void mat(synth *s, mw *m, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, double amp)
{
    size_t n = (size_t)(ne0 * ne1 * ne2);
    m->v = sx_alloc(s, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        m->v[i] = (float)(amp * rnd(s) / sqrt((double)ne0));
    bind(s, m, name, s->c.wtype, ne0, ne1, ne2);
}

static void vec(synth *s, mw *m, const char *name, int64_t n, double center, double amp)
{
    m->v = sx_alloc(s, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        m->v[i] = (float)(center + amp * rnd(s));
    bind(s, m, name, 0, n, 1, 1);
}

static synth *synth_build(const cfg *c)
{
    synth *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->c = *c;
    s->rng = c->seed * 0x9E3779B97F4A7C15ull + 12345;
    const uint32_t d = c->d, H = c->H, dqk = c->d_n + c->d_r;
    /* the embedding in the matrix type too (dequantized by the forward) */
    s->embd.v = sx_alloc(s, (size_t)d * c->vocab * sizeof(float));
    for (size_t i = 0; i < (size_t)d * c->vocab; i++)
        s->embd.v[i] = (float)rnd(s);
    bind(s, &s->embd, "token_embd", c->wtype, d, c->vocab, 1);
    vec(s, &s->out_norm, "output_norm", d, 1.0, 0.2);
    mat(s, &s->out, "output", d, c->vocab, 1, 2.0);

    s->L = sx_alloc(s, c->n_layer * sizeof(slayer));
    ds2_layer *dl = sx_alloc(s, c->n_layer * sizeof(ds2_layer));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        slayer *L = &s->L[l];
        vec(s, &L->attn_norm, "attn_norm", d, 1.0, 0.2);
        if (c->d_q) {
            mat(s, &L->attn_q_a, "attn_q_a", d, c->d_q, 1, 1.7);
            vec(s, &L->attn_q_a_norm, "attn_q_a_norm", c->d_q, 1.0, 0.2);
            mat(s, &L->attn_q_b, "attn_q_b", c->d_q, (int64_t)H * dqk, 1, 1.7);
        } else {
            mat(s, &L->attn_q, "attn_q", d, (int64_t)H * dqk, 1, 1.7);
        }
        mat(s, &L->attn_kv_a_mqa, "attn_kv_a_mqa", d, c->d_c + c->d_r, 1, 1.7);
        vec(s, &L->attn_kv_a_norm, "attn_kv_a_norm", c->d_c, 1.0, 0.2);
        mat(s, &L->kv_b, "attn_kv_b", c->d_c, (int64_t)H * (c->d_n + c->d_v), 1, 1.7);
        /* split form from the same (rounded) values */
        L->k_b.v = sx_alloc(s, (size_t)H * c->d_c * c->d_n * sizeof(float));
        L->v_b.v = sx_alloc(s, (size_t)H * c->d_v * c->d_c * sizeof(float));
        for (uint32_t i = 0; i < H; i++) {
            for (uint32_t n = 0; n < c->d_n; n++)
                for (uint32_t cc = 0; cc < c->d_c; cc++)
                    L->k_b.v[((size_t)i * c->d_c + cc) * c->d_n + n] =
                        L->kv_b.v[((size_t)i * (c->d_n + c->d_v) + n) * c->d_c + cc];
            for (uint32_t v = 0; v < c->d_v; v++)
                for (uint32_t cc = 0; cc < c->d_c; cc++)
                    L->v_b.v[((size_t)i * c->d_v + v) * c->d_c + cc] =
                        L->kv_b.v[((size_t)i * (c->d_n + c->d_v) + c->d_n + v) * c->d_c + cc];
        }
        bind(s, &L->k_b, "attn_k_b", c->wtype, c->d_n, c->d_c, H);
        bind(s, &L->v_b, "attn_v_b", c->wtype, c->d_c, c->d_v, H);
        mat(s, &L->attn_output, "attn_output", (int64_t)H * c->d_v, d, 1, 1.0);
        vec(s, &L->ffn_norm, "ffn_norm", d, 1.0, 0.2);
        bool moe = l >= c->n_dense && c->E > 0;
        if (!moe) {
            mat(s, &L->ffn_gate, "ffn_gate", d, c->n_ff, 1, 1.7);
            mat(s, &L->ffn_up, "ffn_up", d, c->n_ff, 1, 1.7);
            mat(s, &L->ffn_down, "ffn_down", c->n_ff, d, 1, 1.0);
        } else {
            /* router: always F32 like the generator's; larger amplitude spreads the scores */
            uint32_t wt = s->c.wtype;
            s->c.wtype = 0;
            mat(s, &L->gate_inp, "ffn_gate_inp", d, c->E, 1, 4.0);
            s->c.wtype = wt;
            if (c->bias)
                vec(s, &L->probs_b, "exp_probs_b", c->E, 0.0, 0.3);
            mat(s, &L->gate_exps, "ffn_gate_exps", d, c->n_ff_exp, c->E, 1.7);
            mat(s, &L->up_exps, "ffn_up_exps", d, c->n_ff_exp, c->E, 1.7);
            mat(s, &L->down_exps, "ffn_down_exps", c->n_ff_exp, d, c->E, 1.0);
            if (c->n_shared) {
                uint32_t sw = c->n_shared * c->n_ff_exp;
                mat(s, &L->gate_sh, "ffn_gate_shexp", d, sw, 1, 1.7);
                mat(s, &L->up_sh, "ffn_up_shexp", d, sw, 1, 1.7);
                mat(s, &L->down_sh, "ffn_down_shexp", sw, d, 1, 1.0);
            }
        }
        ds2_layer *y = &dl[l];
        y->is_moe = moe;
        y->attn_norm = L->attn_norm.w;
        y->attn_q = L->attn_q.w;
        y->attn_q_a = L->attn_q_a.w;
        y->attn_q_a_norm = L->attn_q_a_norm.w;
        y->attn_q_b = L->attn_q_b.w;
        y->attn_kv_a_mqa = L->attn_kv_a_mqa.w;
        y->attn_kv_a_norm = L->attn_kv_a_norm.w;
        y->attn_kv_b = L->kv_b.w;
        y->attn_k_b = L->k_b.w;
        y->attn_v_b = L->v_b.w;
        y->attn_output = L->attn_output.w;
        y->ffn_norm = L->ffn_norm.w;
        y->ffn_gate = L->ffn_gate.w;
        y->ffn_up = L->ffn_up.w;
        y->ffn_down = L->ffn_down.w;
        y->ffn_gate_inp = L->gate_inp.w;
        y->exp_probs_b = L->probs_b.w;
        y->ffn_gate_exps = L->gate_exps.w;
        y->ffn_up_exps = L->up_exps.w;
        y->ffn_down_exps = L->down_exps.w;
        y->ffn_gate_shexp = L->gate_sh.w;
        y->ffn_up_shexp = L->up_sh.w;
        y->ffn_down_shexp = L->down_sh.w;
    }

    ds_model_data *md = &s->md_split;
    md->arch = DS_ARCH_DEEPSEEK2;
    strcpy(md->arch_name, "deepseek2");
    ds2_hparams *hp = &md->hp;
    hp->n_vocab = c->vocab;
    hp->n_ctx_train = 4096;
    hp->n_embd = d;
    hp->n_layer = c->n_layer;
    hp->n_head = H;
    hp->n_head_kv = 1;
    hp->n_ff = c->n_ff;
    hp->q_lora_rank = c->d_q;
    hp->kv_lora_rank = c->d_c;
    hp->qk_nope = c->d_n;
    hp->qk_rope = c->d_r;
    hp->v_head = c->d_v;
    hp->n_expert = c->E;
    hp->n_expert_used = c->k;
    hp->n_expert_shared = c->n_shared;
    hp->n_ff_exp = c->n_ff_exp;
    hp->n_leading_dense = c->n_dense;
    hp->n_group = c->n_group;
    hp->n_group_used = c->n_group_used;
    hp->gating = c->gating;
    hp->expert_weights_norm = c->norm;
    hp->expert_weights_scale = c->scale;
    hp->rms_eps = 1e-6f;
    hp->rope_freq_base = 10000.0f;
    hp->rope_scaling = c->yarn ? DS_ROPE_SCALING_YARN : DS_ROPE_SCALING_NONE;
    hp->rope_factor = c->yarn ? c->factor : 1.0f;
    hp->rope_orig_ctx = 4096;
    hp->mscale_all_dim = c->mscale_all_dim;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->kv_split = true;
    md->w.token_embd = s->embd.w;
    md->w.output_norm = s->out_norm.w;
    md->w.output = s->out.w;
    md->w.layers = dl;
    s->md_comb = s->md_split;
    s->md_comb.hp.kv_split = false;
    return s;
}

static void synth_free(synth *s)
{
    for (int i = 0; i < s->n_allocs; i++)
        free(s->allocs[i]);
    free(s);
}

/* ---- naive double-precision reference (§2) ---------------------------------------------- */

static void r_matvec(const mw *m, int64_t expert, const double *x, double *y)
{
    const int64_t K = m->w.ne[0], N = m->w.ne[1];
    const float *base = m->v + (size_t)expert * N * K;
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
            s += (double)base[n * K + k] * x[k];
        y[n] = s;
    }
}

static void r_rmsnorm(double *y, const double *x, const float *w, uint32_t n)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + 1e-6);
    for (uint32_t i = 0; i < n; i++)
        y[i] = x[i] * r * w[i];
}

static void r_rope(const cfg *c, double *x, uint32_t pos)
{
    const uint32_t dr = c->d_r;
    const double theta = 10000.0;
    double lo = 0, hi = 0;
    if (c->yarn) {
        lo = floor(dr * log(4096.0 / (32.0 * 2 * M_PI)) / (2 * log(theta)));
        hi = ceil(dr * log(4096.0 / (1.0 * 2 * M_PI)) / (2 * log(theta)));
        if (lo < 0)
            lo = 0;
        if (hi > dr - 1)
            hi = dr - 1;
    }
    for (uint32_t j = 0; j < dr / 2; j++) {
        double f = pow(theta, -2.0 * j / dr);
        if (c->yarn) {
            double r = (j - lo) / fmax(hi - lo, 0.001);
            r = r < 0 ? 0 : r > 1 ? 1 : r;
            f = f * (1 - r) + f / c->factor * r;
        }
        double a = pos * f, x0 = x[2 * j], x1 = x[2 * j + 1];
        x[2 * j] = x0 * cos(a) - x1 * sin(a);
        x[2 * j + 1] = x0 * sin(a) + x1 * cos(a);
    }
}

static void r_swiglu(const mw *g, const mw *u, const mw *dn, int64_t e, const double *h,
                     double *out, uint32_t width)
{
    double *a = calloc(width, sizeof(double)), *b = calloc(width, sizeof(double));
    r_matvec(g, e, h, a);
    r_matvec(u, e, h, b);
    for (uint32_t i = 0; i < width; i++)
        a[i] = a[i] / (1.0 + exp(-a[i])) * b[i];
    r_matvec(dn, e, a, out);
    free(a);
    free(b);
}

/* router: returns chosen experts and weights */
static void r_route(const cfg *c, const double *logit, const float *bias, int *ids, double *w)
{
    const uint32_t E = c->E;
    double p[256], q[256];
    if (c->gating == DS_GATING_SIGMOID) {
        for (uint32_t e = 0; e < E; e++)
            p[e] = 1.0 / (1.0 + exp(-logit[e]));
    } else {
        double mx = -INFINITY, s = 0;
        for (uint32_t e = 0; e < E; e++)
            mx = fmax(mx, logit[e]);
        for (uint32_t e = 0; e < E; e++)
            s += (p[e] = exp(logit[e] - mx));
        for (uint32_t e = 0; e < E; e++)
            p[e] /= s;
    }
    for (uint32_t e = 0; e < E; e++)
        q[e] = p[e] + (bias ? bias[e] : 0.0);
    if (c->n_group > 1) {
        uint32_t gsz = E / c->n_group;
        double gs[64];
        bool keep[64] = {false};
        for (uint32_t g = 0; g < c->n_group; g++) {
            /* sort the group descending (tiny) */
            double v[64];
            for (uint32_t j = 0; j < gsz; j++)
                v[j] = q[g * gsz + j];
            for (uint32_t a = 0; a < gsz; a++)
                for (uint32_t b = a + 1; b < gsz; b++)
                    if (v[b] > v[a]) {
                        double t = v[a];
                        v[a] = v[b];
                        v[b] = t;
                    }
            gs[g] = c->gating == DS_GATING_SIGMOID ? v[0] + v[1] : v[0];
        }
        for (uint32_t u = 0; u < c->n_group_used; u++) {
            int best = -1;
            for (uint32_t g = 0; g < c->n_group; g++)
                if (!keep[g] && (best < 0 || gs[g] > gs[best]))
                    best = (int)g;
            keep[best] = true;
        }
        for (uint32_t g = 0; g < c->n_group; g++)
            if (!keep[g])
                for (uint32_t j = 0; j < gsz; j++)
                    q[g * gsz + j] = -INFINITY;
    }
    bool used[256] = {false};
    double sum = 0;
    for (uint32_t u = 0; u < c->k; u++) {
        int best = -1;
        for (uint32_t e = 0; e < E; e++)
            if (!used[e] && (best < 0 || q[e] > q[best]))
                best = (int)e;
        used[best] = true;
        ids[u] = best;
        w[u] = p[best];
        sum += p[best];
    }
    for (uint32_t u = 0; u < c->k; u++) {
        if (c->norm)
            w[u] /= sum;
        w[u] *= c->scale;
    }
}

/* logits[n][vocab] for tokens[0..n) from position 0 */
static void reference(const synth *s, const int32_t *tok, uint32_t n, double *logits)
{
    const cfg *c = &s->c;
    const uint32_t d = c->d, H = c->H, dqk = c->d_n + c->d_r, dkvb = c->d_n + c->d_v;
    double m = c->yarn ? 1.0 + 0.1 * c->mscale_all_dim * log(c->factor) : 1.0;
    const double scale = m * m / sqrt((double)dqk);
    /* naive cache: K [l][s][H][dqk], V [l][s][H][d_v] */
    double *K = calloc((size_t)c->n_layer * n * H * dqk, sizeof(double));
    double *V = calloc((size_t)c->n_layer * n * H * c->d_v, sizeof(double));
    size_t big = (size_t)H * (dqk + dkvb) + d * 4 + 4096;
    double *x = calloc(d, sizeof(double)), *h = calloc(big, sizeof(double));
    double *q = calloc((size_t)H * dqk, sizeof(double)), *qa = calloc(c->d_q + 1, sizeof(double));
    double *kv = calloc(c->d_c + c->d_r, sizeof(double)), *kvb = calloc((size_t)H * dkvb, sizeof(double));
    double *o = calloc((size_t)H * c->d_v, sizeof(double)), *t1 = calloc(d, sizeof(double));
    double *t2 = calloc(d, sizeof(double)), *sc = calloc(n, sizeof(double));
    double *rl = calloc(c->E + 1, sizeof(double));
    for (uint32_t t = 0; t < n; t++) {
        for (uint32_t i = 0; i < d; i++)
            x[i] = s->embd.v[(size_t)tok[t] * d + i];
        for (uint32_t l = 0; l < c->n_layer; l++) {
            const slayer *L = &s->L[l];
            r_rmsnorm(h, x, L->attn_norm.v, d);
            if (c->d_q) {
                r_matvec(&L->attn_q_a, 0, h, qa);
                r_rmsnorm(qa, qa, L->attn_q_a_norm.v, c->d_q);
                r_matvec(&L->attn_q_b, 0, qa, q);
            } else {
                r_matvec(&L->attn_q, 0, h, q);
            }
            r_matvec(&L->attn_kv_a_mqa, 0, h, kv);
            r_rmsnorm(kv, kv, L->attn_kv_a_norm.v, c->d_c);
            r_rope(c, kv + c->d_c, t);
            r_matvec(&L->kv_b, 0, kv, kvb);
            for (uint32_t i = 0; i < H; i++) {
                double *k = K + (((size_t)l * n + t) * H + i) * dqk;
                double *v = V + (((size_t)l * n + t) * H + i) * c->d_v;
                memcpy(k, kvb + (size_t)i * dkvb, c->d_n * sizeof(double));
                memcpy(k + c->d_n, kv + c->d_c, c->d_r * sizeof(double));
                memcpy(v, kvb + (size_t)i * dkvb + c->d_n, c->d_v * sizeof(double));
                r_rope(c, q + (size_t)i * dqk + c->d_n, t);
            }
            for (uint32_t i = 0; i < H; i++) {
                double mx = -INFINITY, sum = 0;
                for (uint32_t u = 0; u <= t; u++) {
                    const double *k = K + (((size_t)l * n + u) * H + i) * dqk;
                    double dot = 0;
                    for (uint32_t j = 0; j < dqk; j++)
                        dot += q[(size_t)i * dqk + j] * k[j];
                    sc[u] = scale * dot;
                    mx = fmax(mx, sc[u]);
                }
                for (uint32_t u = 0; u <= t; u++)
                    sum += (sc[u] = exp(sc[u] - mx));
                for (uint32_t j = 0; j < c->d_v; j++) {
                    double acc = 0;
                    for (uint32_t u = 0; u <= t; u++)
                        acc += sc[u] / sum * V[(((size_t)l * n + u) * H + i) * c->d_v + j];
                    o[(size_t)i * c->d_v + j] = acc;
                }
            }
            r_matvec(&L->attn_output, 0, o, t1);
            for (uint32_t i = 0; i < d; i++)
                x[i] += t1[i];
            r_rmsnorm(h, x, L->ffn_norm.v, d);
            if (l < c->n_dense || c->E == 0) {
                r_swiglu(&L->ffn_gate, &L->ffn_up, &L->ffn_down, 0, h, t1, c->n_ff);
            } else {
                int ids[16];
                double w[16];
                r_matvec(&L->gate_inp, 0, h, rl);
                r_route(c, rl, c->bias ? L->probs_b.v : NULL, ids, w);
                memset(t1, 0, d * sizeof(double));
                for (uint32_t u = 0; u < c->k; u++) {
                    r_swiglu(&L->gate_exps, &L->up_exps, &L->down_exps, ids[u], h, t2, c->n_ff_exp);
                    for (uint32_t i = 0; i < d; i++)
                        t1[i] += w[u] * t2[i];
                }
                if (c->n_shared) {
                    r_swiglu(&L->gate_sh, &L->up_sh, &L->down_sh, 0, h, t2, c->n_shared * c->n_ff_exp);
                    for (uint32_t i = 0; i < d; i++)
                        t1[i] += t2[i];
                }
            }
            for (uint32_t i = 0; i < d; i++)
                x[i] += t1[i];
        }
        r_rmsnorm(h, x, s->out_norm.v, d);
        r_matvec(&s->out, 0, h, logits + (size_t)t * c->vocab);
    }
    free(K); free(V); free(x); free(h); free(q); free(qa); free(kv); free(kvb); free(o);
    free(t1); free(t2); free(sc); free(rl);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static ds_mm *g_mm;

static bool g_kv_segments; /* mkstate: f16/bf16 caches through f32 segments */

static ds2_state *mkstate(const ds_model_data *md, uint32_t n_ctx, uint32_t n_batch,
                          ds_kv_type kt)
{
    ds2_state_params p = {.n_ctx = n_ctx, .kv_type = kt, .n_batch = n_batch,
                          .kv_segments = g_kv_segments};
    ds2_state *st = NULL;
    ds_err err;
    ds_err_clear(&err);
    ds_status s = ds2_state_create(&st, md, g_mm, &p, &err);
    if (s != DS_OK)
        fprintf(stderr, "state_create: %s\n", err.msg);
    assert_int_equal(s, DS_OK);
    return st;
}

static void fwd(ds2_state *st, const int32_t *tok, uint32_t n, float *logits, bool all)
{
    ds_err err;
    ds_err_clear(&err);
    ds_status s = ds2_forward(st, tok, n, logits, all, &err);
    if (s != DS_OK)
        fprintf(stderr, "forward: %s\n", err.msg);
    assert_int_equal(s, DS_OK);
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void gen_tokens(int32_t *tok, uint32_t n, uint32_t vocab, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int32_t)((x >> 8) % vocab);
    }
}

/* configurations */
static cfg cfg_lite(void) /* V2-Lite-like: no q-LoRA, softmax, no norm, scale 1, no groups */
{
    cfg c = {.d = 32, .H = 4, .d_n = 8, .d_r = 8, .d_v = 6, .d_c = 16, .d_q = 0, .n_layer = 3,
             .n_dense = 1, .n_ff = 40, .E = 8, .k = 3, .n_shared = 2, .n_ff_exp = 12,
             .n_group = 1, .n_group_used = 1, .vocab = 53, .gating = DS_GATING_SOFTMAX,
             .norm = false, .bias = false, .scale = 1.0f, .yarn = true, .factor = 40.0f,
             .mscale_all_dim = 0.707f, .wtype = 0, .seed = 1};
    return c;
}

static cfg cfg_v3(void) /* V3-like: q-LoRA, sigmoid + bias, norm, scale 2.5, groups 4 -> 2 */
{
    cfg c = {.d = 32, .H = 4, .d_n = 8, .d_r = 8, .d_v = 6, .d_c = 16, .d_q = 24, .n_layer = 4,
             .n_dense = 2, .n_ff = 40, .E = 16, .k = 4, .n_shared = 1, .n_ff_exp = 12,
             .n_group = 4, .n_group_used = 2, .vocab = 61, .gating = DS_GATING_SIGMOID,
             .norm = true, .bias = true, .scale = 2.5f, .yarn = true, .factor = 40.0f,
             .mscale_all_dim = 1.0f, .wtype = 0, .seed = 2};
    return c;
}

static cfg cfg_v2(void) /* V2-like: q-LoRA, softmax, groups by max 4 -> 2, scale 16 */
{
    cfg c = cfg_v3();
    c.gating = DS_GATING_SOFTMAX;
    c.norm = false;
    c.bias = false;
    c.scale = 16.0f;
    c.n_dense = 1;
    c.mscale_all_dim = 0.707f;
    c.seed = 3;
    return c;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void check_against_reference_n(cfg c, bool split, uint32_t n_batch, ds_kv_type kt,
                                      double tol, uint32_t n)
{
    synth *s = synth_build(&c);
    const uint32_t V = c.vocab;
    int32_t *tok = calloc(n, sizeof(int32_t));
    gen_tokens(tok, n, V, (uint32_t)c.seed);
    double *ref = calloc((size_t)n * V, sizeof(double));
    reference(s, tok, n, ref);
    float *refd = calloc((size_t)n * V, sizeof(float));
    for (size_t i = 0; i < (size_t)n * V; i++)
        refd[i] = (float)ref[i];
    float *got = calloc((size_t)n * V, sizeof(float));
    ds2_state *st = mkstate(split ? &s->md_split : &s->md_comb, n + 3, n_batch, kt);
    fwd(st, tok, n, got, true);
    assert_int_equal(ds2_state_pos(st), n);
    double m = max_abs(refd, (size_t)n * V), dd = max_diff(refd, got, (size_t)n * V);
    if (dd > tol * m)
        fprintf(stderr, "max |logit| %g, max diff %g (split %d, batch %u, kv %d)\n", m, dd, split,
                n_batch, kt);
    if (getenv("FWD_SYNTH_VERBOSE")) {
        int bad = 0;
        for (uint32_t t = 0; t < n; t++)
            bad += max_diff(refd + (size_t)t * V, got + (size_t)t * V, V) > tol * m;
        fprintf(stderr, "tokens over tolerance: %d\n", bad);
    }
    if (getenv("FWD_SYNTH_VERBOSE"))
        fprintf(stderr, "n %u: max |logit| %g, max diff %g (split %d, batch %u, kv %d)\n", n, m,
                dd, split, n_batch, kt);
    assert_true(dd <= tol * m);
    assert_true(m > 0.1);
    ds2_state_free(st);
    free(ref);
    free(refd);
    free(got);
    free(tok);
    synth_free(s);
}

static void check_against_reference(cfg c, bool split, uint32_t n_batch, ds_kv_type kt, double tol)
{
    check_against_reference_n(c, split, n_batch, kt, tol, 11);
}

static void test_reference_lite(void **state)
{
    (void)state;
    check_against_reference(cfg_lite(), true, 16, DS_KV_F32, 1e-4);
    check_against_reference(cfg_lite(), false, 16, DS_KV_F32, 1e-4);
    check_against_reference(cfg_lite(), true, 1, DS_KV_F32, 1e-4);
}

static void test_reference_v3(void **state)
{
    (void)state;
    check_against_reference(cfg_v3(), true, 16, DS_KV_F32, 1e-4);
    check_against_reference(cfg_v3(), false, 4, DS_KV_F32, 1e-4);
}

static void test_reference_v2(void **state)
{
    (void)state;
    check_against_reference(cfg_v2(), true, 5, DS_KV_F32, 1e-4);
    cfg c = cfg_v2();
    c.yarn = false; /* plain rope, scale 1/sqrt(d_qk) */
    check_against_reference(c, false, 16, DS_KV_F32, 1e-4);
}

static void test_reference_kv_types(void **state)
{
    (void)state;
    check_against_reference(cfg_lite(), true, 16, DS_KV_F16, 5e-3);
    check_against_reference(cfg_v3(), false, 3, DS_KV_BF16, 3e-2);
}

/* long sequences: online-softmax blocks (64 positions) and f16/bf16 cache segments (1024 rows)
 * are crossed, with chunk boundaries that are not multiples of either */
static void test_reference_long(void **state)
{
    (void)state;
    cfg c = cfg_lite();
    c.n_layer = 2;
    check_against_reference_n(c, true, 100, DS_KV_F32, 2e-4, 1100);
    /* chunks of 1 and 5 tokens (attend_core) past ATT_SPLIT_MIN keys: each token's keys in two
     * halves on two jobs, merged */
    check_against_reference_n(c, true, 1, DS_KV_F32, 2e-4, 420);
    check_against_reference_n(c, true, 5, DS_KV_F32, 2e-4, 420);
    check_against_reference_n(c, false, 333, DS_KV_F16, 5e-3, 1100);
    cfg c3 = cfg_v3();
    c3.n_layer = 3;
    check_against_reference_n(c3, true, 700, DS_KV_F32, 2e-4, 1030);
    check_against_reference_n(c3, true, 700, DS_KV_F16, 3e-2, 1030);
    /* (bf16 on the V3-like model flips the routing of a couple of tokens out of 1030: a
     * property of bf16, so bf16 is checked on the model without group-limited routing) */
    check_against_reference_n(c, true, 700, DS_KV_BF16, 3e-2, 1030);
    /* decode-sized chunks over f16/bf16 caches past ATT_SPLIT_MIN keys: read in place by the
     * AVX-512 kernels (halves on two jobs, as f32), and through f32 segments (the path
     * without them) */
    for (int seg = 0; seg < 2; seg++) {
        g_kv_segments = seg;
        check_against_reference_n(c, true, 1, DS_KV_F16, 5e-3, 420);
        check_against_reference_n(c, true, 5, DS_KV_BF16, 3e-2, 420);
    }
    g_kv_segments = false;
}

/* A prefill on two threads (the routed experts as one task per expert, moe_tasks; run_jobs
 * pieces) gives the logits of the same prefill on one thread (expert by expert) bit for bit:
 * every product is computed row by row the same way and the expert outputs are combined in
 * the same order. Chunks of 40 tokens (> 16: expert tasks) and of 3 (job groups). */
static void test_threads_identical(void **state)
{
    (void)state;
    ds_mm *mm1 = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_mm_create(&mm1, 1, DS_PRECISION_F32, &err), DS_OK);
    const cfg cs[2] = {cfg_lite(), cfg_v3()};
    const uint32_t batches[2] = {40, 3};
    for (int ci = 0; ci < 2; ci++) {
        synth *s = synth_build(&cs[ci]);
        const uint32_t n = 90, V = cs[ci].vocab;
        int32_t tok[90];
        gen_tokens(tok, n, V, 5);
        for (int bi = 0; bi < 2; bi++) {
            float *a = calloc((size_t)n * V, sizeof(float)), *b = calloc((size_t)n * V, sizeof(float));
            ds2_state_params p = {.n_ctx = n, .kv_type = DS_KV_F32, .n_batch = batches[bi]};
            ds2_state *s1 = NULL, *s2 = NULL;
            assert_int_equal(ds2_state_create(&s1, &s->md_split, mm1, &p, &err), DS_OK);
            assert_int_equal(ds2_state_create(&s2, &s->md_split, g_mm, &p, &err), DS_OK);
            fwd(s1, tok, n, a, true);
            fwd(s2, tok, n, b, true);
            assert_memory_equal(a, b, (size_t)n * V * sizeof(float));
            ds2_state_free(s1);
            ds2_state_free(s2);
            free(a);
            free(b);
        }
        synth_free(s);
    }
    ds_mm_free(mm1);
}

/* prefill N then M single steps == one prefill of N+M == N+M single steps == chunked */
static void test_prefill_vs_steps(void **state)
{
    (void)state;
    const cfg cs[2] = {cfg_lite(), cfg_v3()};
    for (int ci = 0; ci < 2; ci++) {
        synth *s = synth_build(&cs[ci]);
        const uint32_t N = 6, M = 5, n = N + M, V = cs[ci].vocab;
        int32_t tok[11];
        gen_tokens(tok, n, V, 77);
        float *a = calloc((size_t)n * V, sizeof(float)), *b = calloc((size_t)n * V, sizeof(float));
        float *c = calloc((size_t)n * V, sizeof(float)), *e = calloc((size_t)n * V, sizeof(float));

        ds2_state *st = mkstate(&s->md_split, 64, 16, DS_KV_F32);
        fwd(st, tok, n, a, true); /* one prefill */
        ds2_state_free(st);

        st = mkstate(&s->md_split, 64, 16, DS_KV_F32);
        fwd(st, tok, N, b, true); /* prefill N, then M steps */
        for (uint32_t i = N; i < n; i++)
            fwd(st, tok + i, 1, b + (size_t)i * V, false);
        ds2_state_free(st);

        st = mkstate(&s->md_split, 64, 1, DS_KV_F32);
        for (uint32_t i = 0; i < n; i++) /* all single steps */
            fwd(st, tok + i, 1, c + (size_t)i * V, true);
        ds2_state_free(st);

        st = mkstate(&s->md_split, 64, 3, DS_KV_F32); /* chunks of 3 inside one call */
        fwd(st, tok, n, e, true);
        /* last-token-only output equals the last row */
        float *last = calloc(V, sizeof(float));
        ds2_state_truncate(st, n - 2, NULL);
        fwd(st, tok + n - 2, 2, last, false);
        assert_true(max_diff(last, e + (size_t)(n - 1) * V, V) <= 1e-5 * max_abs(last, V));
        free(last);
        ds2_state_free(st);

        double m = max_abs(a, (size_t)n * V);
        assert_true(max_diff(a, b, (size_t)n * V) <= 1e-3 * m);
        assert_true(max_diff(a, c, (size_t)n * V) <= 1e-3 * m);
        assert_true(max_diff(a, e, (size_t)n * V) <= 1e-3 * m);
        free(a);
        free(b);
        free(c);
        free(e);
        synth_free(s);
    }
}

/* the split and the combined kv_b forms give the same logits */
static void test_split_vs_combined(void **state)
{
    (void)state;
    const uint32_t types[3] = {0, 1, 30};
    for (int ti = 0; ti < 3; ti++) {
        cfg c = cfg_v3();
        c.wtype = types[ti];
        synth *s = synth_build(&c);
        const uint32_t n = 9, V = c.vocab;
        int32_t tok[9];
        gen_tokens(tok, n, V, 5);
        float *a = calloc((size_t)n * V, sizeof(float)), *b = calloc((size_t)n * V, sizeof(float));
        ds2_state *st = mkstate(&s->md_split, 16, 4, DS_KV_F32);
        fwd(st, tok, n, a, true);
        ds2_state_free(st);
        st = mkstate(&s->md_comb, 16, 4, DS_KV_F32);
        fwd(st, tok, n, b, true);
        ds2_state_free(st);
        double m = max_abs(a, (size_t)n * V), dd = max_diff(a, b, (size_t)n * V);
        if (dd > 1e-4 * m)
            fprintf(stderr, "type %u: split vs combined max diff %g of %g\n", types[ti], dd, m);
        assert_true(dd <= 1e-4 * m);
        free(a);
        free(b);
        synth_free(s);
    }
}

static void test_context_full(void **state)
{
    (void)state;
    cfg c = cfg_lite();
    synth *s = synth_build(&c);
    int32_t tok[10];
    gen_tokens(tok, 10, c.vocab, 9);
    float *lg = calloc((size_t)10 * c.vocab, sizeof(float));
    ds2_state *st = mkstate(&s->md_split, 8, 4, DS_KV_F32);
    fwd(st, tok, 6, lg, false);
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds2_forward(st, tok + 6, 3, lg, true, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds2_state_pos(st), 6);
    fwd(st, tok + 6, 2, lg, false);
    assert_int_equal(ds2_state_pos(st), 8);
    assert_int_equal(ds2_forward(st, tok + 8, 1, lg, false, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds2_state_pos(st), 8);
    /* room again after truncation */
    assert_int_equal(ds2_state_truncate(st, 9, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds2_state_truncate(st, 7, &err), DS_OK);
    fwd(st, tok + 7, 1, lg, false);
    /* a bad token is rejected before anything runs */
    int32_t bad[2] = {0, (int32_t)c.vocab};
    assert_int_equal(ds2_state_truncate(st, 5, &err), DS_OK);
    assert_int_equal(ds2_forward(st, bad, 2, lg, false, &err), DS_ERR_INVALID_ARG);
    bad[1] = -1;
    assert_int_equal(ds2_forward(st, bad, 2, lg, false, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds2_state_pos(st), 5);
    /* bytes */
    const ds_kv_cache *kv = ds2_state_kv(st);
    assert_int_equal(ds_kv_bytes_per_token(kv), (uint64_t)c.n_layer * (c.d_c + c.d_r) * 4);
    assert_true(ds2_state_bytes(st) > ds_kv_bytes(kv));
    assert_int_equal(ds2_state_n_vocab(st), c.vocab);
    assert_int_equal(ds2_state_n_ctx(st), 8);
    ds2_state_free(st);
    free(lg);
    synth_free(s);
}

static int g_abort_calls, g_abort_after;
static int abort_cb(void *ud)
{
    (void)ud;
    return ++g_abort_calls > g_abort_after;
}

/* cancellation leaves the cache at the last completed chunk; continuing gives the same result */
static void test_cancel(void **state)
{
    (void)state;
    cfg c = cfg_v3();
    synth *s = synth_build(&c);
    const uint32_t n = 10, V = c.vocab;
    int32_t tok[10];
    gen_tokens(tok, n, V, 11);
    float *a = calloc((size_t)n * V, sizeof(float)), *b = calloc((size_t)n * V, sizeof(float));
    ds2_state *st = mkstate(&s->md_split, 16, 4, DS_KV_F32);
    fwd(st, tok, n, a, true);
    ds2_state_free(st);

    ds2_state_params p = {.n_ctx = 16, .kv_type = DS_KV_F32, .n_batch = 4, .abort_fn = abort_cb};
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds2_state_create(&st, &s->md_split, g_mm, &p, &err), DS_OK);
    /* checks: one per layer per chunk, plus one between chunks: abort in the 2nd chunk */
    g_abort_calls = 0;
    g_abort_after = (int)c.n_layer + 2;
    assert_int_equal(ds2_forward(st, tok, n, b, true, &err), DS_ERR_CANCELLED);
    assert_int_equal(ds2_state_pos(st), 4);
    g_abort_after = 1 << 30;
    fwd(st, tok + 4, n - 4, b + (size_t)4 * V, true);
    double m = max_abs(a, (size_t)n * V);
    assert_true(max_diff(a, b, (size_t)n * V) <= 1e-3 * m);
    /* truncate and redo */
    assert_int_equal(ds2_state_truncate(st, 3, &err), DS_OK);
    fwd(st, tok + 3, n - 3, b + (size_t)3 * V, true);
    assert_true(max_diff(a, b, (size_t)n * V) <= 1e-3 * m);
    ds2_state_free(st);
    free(a);
    free(b);
    synth_free(s);
}

static void test_bad_params(void **state)
{
    (void)state;
    cfg c = cfg_lite();
    synth *s = synth_build(&c);
    ds2_state *st = NULL;
    ds_err err;
    ds_err_clear(&err);
    ds2_state_params p = {.n_ctx = 0, .kv_type = DS_KV_F32, .n_batch = 4};
    assert_int_equal(ds2_state_create(&st, &s->md_split, g_mm, &p, &err), DS_ERR_INVALID_ARG);
    assert_null(st);
    p.n_ctx = 8;
    ds_model_data bad = s->md_split;
    bad.hp.n_group = 3; /* does not divide 8 experts */
    assert_int_equal(ds2_state_create(&st, &bad, g_mm, &p, &err), DS_ERR_UNSUPPORTED);
    bad = s->md_split;
    bad.hp.kv_lora_rank = 15; /* shapes no longer match */
    assert_int_equal(ds2_state_create(&st, &bad, g_mm, &p, &err), DS_ERR_FORMAT);
    assert_null(st);
    ds2_state_free(NULL);
    synth_free(s);
}

static int setup(void **state)
{
    (void)state;
    ds_err err;
    ds_err_clear(&err);
    return ds_mm_create(&g_mm, 2, DS_PRECISION_F32, &err) == DS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ds_mm_free(g_mm);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_lite),
        cmocka_unit_test(test_reference_v3),
        cmocka_unit_test(test_reference_v2),
        cmocka_unit_test(test_reference_kv_types),
        cmocka_unit_test(test_reference_long),
        cmocka_unit_test(test_prefill_vs_steps),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_split_vs_combined),
        cmocka_unit_test(test_context_full),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
