/*
 * lib/forward/deepseek2.c — the deepseek2 forward pass (see deepseek2.h).
 *
 * Math: shared/docs/deepseek-architectures.md §2 and §8. Per layer, for a chunk of T tokens at
 * positions p0..p0+T-1 (every projection is one ds_mm_run with M = T):
 *
 *   h = RMSNorm(x; attn_norm)
 *   q = attn_q h  |  attn_q_b RMSNorm(attn_q_a h; attn_q_a_norm)        [T][H][d_n + d_r]
 *   kv = attn_kv_a_mqa h = [c_kv ; k_pe];  c_kv = RMSNorm(c_kv; kv_a_norm); k_pe = RoPE(k_pe)
 *   cache[l][p] = [c_kv ; k_pe]                                          (lib/kv)
 *   per head i:  qc_i = [W_UK_i^T q_nope_i ; RoPE(q_pe_i)]               [d_c + d_r]
 *                score(t, s) = scale * qc_i(t) . cache[l][s],  s <= p0 + t
 *                ctx_i(t) = sum_s softmax(score)(s) c_kv(s)              [d_c]
 *                o_i(t) = W_UV_i ctx_i(t)                                [d_v]
 *   x += attn_output [o_0 ; ... ; o_{H-1}]
 *   x += FFN(RMSNorm(x; ffn_norm))    dense SwiGLU, or MoE (routed experts + shared expert)
 *
 * Absorption, per kv form:
 *   split (attn_k_b {d_n, d_c, H}, attn_v_b {d_c, d_v, H}): head i of attn_k_b is W_UK_i^T
 *     stored as d_c rows of d_n, so q_abs_i = ds_mm_run(attn_k_b, expert i, q_nope_i);
 *     o_i = ds_mm_run(attn_v_b, expert i, ctx_i).
 *   combined (attn_kv_b {d_c, H*(d_n+d_v)}): W_UV_i is rows [i(d_n+d_v)+d_n, (i+1)(d_n+d_v))
 *     and is used in place with ds_mm_run_rows; W_UK_i (rows [i(d_n+d_v), i(d_n+d_v)+d_n)) is
 *     needed transposed, so at state creation each layer gets a copy laid out exactly like
 *     attn_k_b ({d_n, d_c, H}), in the weight's own type for F32/F16/BF16 (an exact transpose)
 *     and dequantized to F32 for quantized types. Both forms then run the same code.
 *
 * Attention runs flash-style: every (token, head) pair keeps a running max, sum and d_c-wide
 * accumulator (online softmax in f32) over key blocks that start at absolute positions, so
 * the arithmetic for a token does not depend on how the sequence was cut into chunks (up to
 * the rounding of the products). Chunks of ATT_MM_MIN_T or more tokens (prefill) use matrix
 * products (attend_mm): the heads share the latent cache, so a block of ATT_KB keys against a
 * tile of (token, head) rows is one f32 product for the scores and one for the context. Single
 * tokens (decode, and every row of a batched decode) use the per-(token, head) loops over key
 * blocks of ATT_BLOCK rows (attend_core): an f32 cache is read in place, and so is an f16/bf16
 * one where the AVX-512 kernels convert rows as they load them (ds_dot_heads_h16; elsewhere it
 * is converted to f32 in segments of ATT_SEG rows shared by all heads), OpenMP parallelises
 * over (token, head) pairs. With the cache read in place, a token with at least ATT_SPLIT_MIN
 * keys attends over the two halves of its keys as two jobs (split at a multiple of ATT_BLOCK
 * fixed by its position), merged afterwards: at decode each thread streams half of the cache.
 * The per-head products (W_UK^T, W_UV) run as one OpenMP loop over heads.
 *
 * Products of a few rows (decode) that do not depend on each other run as one job group
 * (ds_mm_run_jobs: q and kv_a; gate and up; all experts' gate and up, then all their down products)
 * in one OpenMP region whose threads take pieces of rows from a shared cursor (large first,
 * small at the end), instead of one fork/join and one static half/half split per product; the
 * results are identical. The routed experts of a larger chunk (prefill) run as one task per
 * expert (moe_tasks), each thread taking whole experts, largest first.
 *
 * The router logits are computed here in f32 from the dequantized router rows (§2.5: "compute
 * in fp32"), independently of the ds_mm precision, because expert selection is discontinuous.
 *
 * Scratch is allocated once at state creation for n_batch tokens; ds2_forward allocates
 * nothing.
 *
 * Batched decode (ds2_forward_batch): one token each for several states runs through the same
 * layer code as a chunk of the first state (its scratch, its ds_mm), so every projection and
 * expert product has M = number of states; only the cache write and the attention look at
 * `bst`, the per-row owner state (its cache and position). ds2_state_estimate runs the same
 * construction with `measure` set, counting the bytes instead of allocating them.
 */
#include "forward/deepseek2.h"

#include "forward/rope.h"
#include "moe/router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define ATT_BLOCK 64   /* online-softmax block (absolute positions) */
#define ATT_SEG 1024   /* rows of an f16/bf16 cache converted to f32 at a time */
#define ATT_HGROUP 8   /* heads of a token that attend_rows_heads takes together */
/* attend_core, f32 cache: a token that sees at least ATT_SPLIT_MIN keys attends over two halves
 * of them (split at a multiple of ATT_BLOCK) as separate jobs, merged afterwards */
#define ATT_SPLIT_MIN 256
#define ATT_KB 128     /* keys per block of the matmul attention (absolute positions) */
#define ATT_QROWS 1024 /* (token, head) rows per query tile of the matmul attention */
#define ATT_MM_MIN_T 8 /* chunks of at least this many tokens use the matmul attention */
#define PAR_MIN_WORK 131072.0 /* multiply-adds below which a loop runs on one thread */
#define JOB_MOE_MAX_T 16 /* MoE blocks of at most this many tokens run as job groups */

/* per-layer state-owned views */
typedef struct ds2_lstate {
    const float *attn_norm, *q_a_norm, *kv_a_norm, *ffn_norm; /* f32 vectors */
    const float *exp_bias;                                     /* NULL when absent */
    ds_weight kb;      /* W_UK^T per head, {d_n, d_c, H}: attn_k_b or the transposed copy */
    uint32_t ff_width; /* dense n_ff, or 0 */
    uint32_t sh_width; /* shared expert width, or 0 */
} ds2_lstate;

struct ds2_state {
    const ds_model_data *md;
    const ds2_hparams *hp;
    ds_mm *mm;
    ds2_state_params p;
    ds_kv_cache *kv;
    ds_rope rope;
    float attn_scale;

    uint32_t d, H, d_n, d_r, d_v, d_c, d_q, d_qk, W, n_vocab, E, k_used;
    uint32_t n_exp_ff; /* routed expert width */
    uint32_t ff_max;   /* widest FFN intermediate over all layers */
    int nt;

    ds2_lstate *ls;
    const float *output_norm;
    ds_router router; /* bias is set per layer */

    /* owned allocations */
    void **owned;
    size_t n_owned, cap_owned;
    uint64_t bytes;
    bool measure;  /* sizing pass (ds2_state_estimate): st_alloc only counts */

    /* batched decode (ds2_forward_batch): while set, token t of the running chunk belongs to
     * state bst[t] (its cache and position); NULL for an ordinary single-sequence chunk */
    ds2_state *const *bst;

    /* scratch (n_batch = B tokens) */
    float *x;      /* [B][d] residual */
    float *h;      /* [B][d] normed */
    float *qa;     /* [B][d_q] */
    float *q;      /* [B][H*d_qk] */
    float *kvr;    /* [B][W] */
    float *qc;     /* [B][H][W] */
    float *ctx;    /* [B][H][d_c] */
    float *ml;     /* [B][H][2] running max and sum */
    float *ctx2, *ml2; /* [min(B, ATT_MM_MIN_T - 1)][H][d_c], [..][H][2]: the second halves of
                          attend_core's split tokens */
    float *o;      /* [B][H*d_v] */
    float *tmp;    /* [B][d] */
    float *fg, *fu;/* [B][ff_max] */
    float *rl;     /* [B][E] router logits */
    float *rscr;   /* router scratch */
    float *rrow;   /* [nt][d] dequantized router rows */
    float *xg;     /* [B][d] gathered expert inputs */
    float *dg;     /* [B][d] expert outputs */
    float *cs;     /* [B][d_r] cos/sin */
    float *kseg;   /* [seg_rows][W] converted cache segment (f16/bf16 caches read through
                      segments; NULL when attention reads the cache in place) */
    uint32_t seg_rows;
    /* matmul attention (chunks of >= ATT_MM_MIN_T tokens; NULL when n_batch is smaller) */
    uint32_t att_tq; /* tokens per query tile */
    float *kblk;   /* [ATT_KB][W] key block, f32, zero-padded */
    float *cblk;   /* [d_c][ATT_KB] latent part of the key block, transposed */
    float *sc;     /* [att_tq * H][ATT_KB] scores, then probabilities */
    float *ctmp;   /* [att_tq * H][d_c] a block's context */
    float *corr;   /* [att_tq * H] rescaling of the running context (< 0: row skipped) */
    int32_t *ids;  /* [B][k] */
    float *wts;    /* [B][k] */
    uint32_t *off; /* [E+1] */
    int32_t *gtok; /* [B*k] */
    float *gw;     /* [B*k] */
    /* GEMV jobs (few-row products, several threads): the routed experts of up to moe_tmax
     * tokens at once (moe_jobs); NULL with one thread or no experts */
    uint32_t moe_tmax; /* min(n_batch, JOB_MOE_MAX_T), or 0 */
    float *xgk;    /* [moe_tmax*k][d] gathered expert inputs */
    float *fgk, *fuk; /* [moe_tmax*k][n_exp_ff] */
    float *dgk;    /* [moe_tmax*k][d] expert outputs */
    ds_mm_job *jobs; /* [2 * moe_tmax * k + 4] */
    /* expert tasks (MoE blocks of more than moe_tmax tokens, several threads: prefill): one
     * thread per expert at a time (moe_tasks); NULL with one thread, no experts or
     * n_batch <= moe_tmax */
    float *xa;     /* [B*k][d] every assignment's gathered input, then its expert output */
    float *fgt, *fut; /* [nt][B][n_exp_ff] each thread's gate/up (fg/fu when wide enough) */
    uint32_t *eord;   /* [E] the chunk's experts with tokens, most tokens first */
};


/* ---- allocation helpers -------------------------------------------------------------- */

static bool mul_sz(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

static void *st_alloc(ds2_state *st, size_t n_elems, size_t esize, ds_err *err, const char *what)
{
    size_t n;
    if (!mul_sz(n_elems, esize, &n) || n > SIZE_MAX - 64) {
        ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: size of %s overflows", what);
        return NULL;
    }
    if (n == 0)
        n = 64;
    n = (n + 63) & ~(size_t)63;
    if (st->measure) { /* sizing pass: count only; the pointer must never be written */
        static const uint64_t sizing_dummy[8];
        st->bytes += n;
        return (void *)sizing_dummy;
    }
    if (st->n_owned == st->cap_owned) {
        size_t cap = st->cap_owned ? st->cap_owned * 2 : 64;
        void **o = realloc(st->owned, cap * sizeof *o);
        if (!o) {
            ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: out of memory");
            return NULL;
        }
        st->owned = o;
        st->cap_owned = cap;
    }
    void *p = aligned_alloc(64, n);
    if (!p) {
        ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: cannot allocate %zu bytes for %s", n, what);
        return NULL;
    }
    memset(p, 0, n);
    st->owned[st->n_owned++] = p;
    st->bytes += n;
    return p;
}

/* sizes of 2-3 factors with overflow check (SIZE_MAX on overflow, which st_alloc rejects) */
static size_t sz3(size_t a, size_t b, size_t c)
{
    size_t r;
    if (!mul_sz(a, b, &r) || !mul_sz(r, c, &r))
        return SIZE_MAX;
    return r;
}

/* ---- weight checks -------------------------------------------------------------------- */

static ds_status check_w(const ds_weight *w, const char *what, uint32_t layer, int64_t ne0,
                         int64_t ne1, int64_t ne2, ds_err *err)
{
    if (!w->data)
        return ds_err_set(err, DS_ERR_FORMAT, "deepseek2: layer %u: tensor %s is missing", layer,
                          what);
    int64_t e1 = w->ne[1] > 0 ? w->ne[1] : 1, e2 = w->ne[2] > 0 ? w->ne[2] : 1;
    if (w->ne[0] != ne0 || e1 != ne1 || e2 != ne2)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "deepseek2: layer %u: tensor %s has shape {%lld, %lld, %lld}, expected "
                          "{%lld, %lld, %lld}",
                          layer, w->name ? w->name : what, (long long)w->ne[0], (long long)e1,
                          (long long)e2, (long long)ne0, (long long)ne1, (long long)ne2);
    return DS_OK;
}

/* An f32 view of a small vector weight of n elements: the mapping itself for F32, else a
 * dequantized copy. */
static ds_status vec_f32(ds2_state *st, const ds_weight *w, const char *what, uint32_t layer,
                         int64_t n, const float **out, ds_err *err)
{
    ds_status s = check_w(w, what, layer, n, 1, 1, err);
    if (s != DS_OK)
        return s;
    if (w->type == 0 /* F32 */) {
        *out = w->data;
        return DS_OK;
    }
    float *v = st_alloc(st, (size_t)n, sizeof(float), err, what);
    if (!v)
        return err ? err->status : DS_ERR_NO_MEMORY;
    if (st->measure) {
        *out = NULL;
        return DS_OK;
    }
    if (!ds_dequant_row(w->type, w->data, v, n))
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "deepseek2: layer %u: tensor %s has unsupported type %u", layer,
                          w->name ? w->name : what, w->type);
    *out = v;
    return DS_OK;
}

/* Build W_UK^T per head ({d_n, d_c, H}) from the combined attn_kv_b {d_c, H*(d_n+d_v)}. */
static ds_status build_kb_transposed(ds2_state *st, const ds2_layer *ly, uint32_t l,
                                     ds_weight *kb, ds_err *err)
{
    const ds_weight *kvb = &ly->attn_kv_b;
    const uint32_t H = st->H, d_n = st->d_n, d_c = st->d_c, d_v = st->d_v;
    const bool raw16 = kvb->type == 1 /* F16 */ || kvb->type == 30 /* BF16 */;
    const size_t es = raw16 ? 2 : 4;
    void *data = st_alloc(st, sz3(H, d_c, d_n), es, err, "transposed attn_kv_b");
    if (!data)
        return err ? err->status : DS_ERR_NO_MEMORY;
    if (st->measure)
        return DS_OK;
    float *row = NULL;
    if (!raw16 && kvb->type != 0) {
        row = malloc((size_t)d_c * sizeof(float));
        if (!row)
            return ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: out of memory");
    }
    for (uint32_t i = 0; i < H; i++) {
        for (uint32_t n = 0; n < d_n; n++) {
            size_t r = (size_t)i * (d_n + d_v) + n;
            const uint8_t *src = (const uint8_t *)kvb->data + r * kvb->row_bytes;
            size_t base = (size_t)i * d_c * d_n + n; /* element [i][c][n] = base + c*d_n */
            if (raw16) {
                const uint16_t *s16 = (const uint16_t *)src;
                uint16_t *d16 = data;
                for (uint32_t c = 0; c < d_c; c++)
                    d16[base + (size_t)c * d_n] = s16[c];
            } else {
                const float *sf = (const float *)src;
                if (row) {
                    if (!ds_dequant_row(kvb->type, src, row, d_c)) {
                        free(row);
                        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                                          "deepseek2: layer %u: attn_kv_b has unsupported type %u",
                                          l, kvb->type);
                    }
                    sf = row;
                }
                float *df = data;
                for (uint32_t c = 0; c < d_c; c++)
                    df[base + (size_t)c * d_n] = sf[c];
            }
        }
    }
    free(row);
    memset(kb, 0, sizeof *kb);
    kb->name = "attn_k_b (transposed from attn_kv_b)";
    kb->type = raw16 ? kvb->type : 0;
    kb->ne[0] = d_n;
    kb->ne[1] = d_c;
    kb->ne[2] = H;
    kb->ne[3] = 1;
    kb->row_bytes = (size_t)d_n * es;
    kb->nbytes = (size_t)H * d_c * d_n * es;
    kb->data = data;
    return DS_OK;
}

/* ---- state ------------------------------------------------------------------------------ */

void ds2_state_free(ds2_state *st)
{
    if (!st)
        return;
    ds_kv_free(st->kv);
    for (size_t i = 0; i < st->n_owned; i++)
        free(st->owned[i]);
    free(st->owned);
    free(st->ls);
    free(st);
}

#define TRY(expr)                                                                                \
    do {                                                                                         \
        ds_status s_ = (expr);                                                                   \
        if (s_ != DS_OK)                                                                         \
            return s_;                                                                           \
    } while (0)

static ds_status bind_layers(ds2_state *st, ds_err *err)
{
    const ds2_hparams *hp = st->hp;
    const uint32_t d = st->d, H = st->H;
    uint32_t ff_max = 1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const ds2_layer *ly = &st->md->w.layers[l];
        ds2_lstate *ls = &st->ls[l];
        TRY(vec_f32(st, &ly->attn_norm, "attn_norm", l, d, &ls->attn_norm, err));
        if (st->d_q) {
            TRY(check_w(&ly->attn_q_a, "attn_q_a", l, d, st->d_q, 1, err));
            TRY(vec_f32(st, &ly->attn_q_a_norm, "attn_q_a_norm", l, st->d_q, &ls->q_a_norm, err));
            TRY(check_w(&ly->attn_q_b, "attn_q_b", l, st->d_q, (int64_t)H * st->d_qk, 1, err));
        } else {
            TRY(check_w(&ly->attn_q, "attn_q", l, d, (int64_t)H * st->d_qk, 1, err));
        }
        TRY(check_w(&ly->attn_kv_a_mqa, "attn_kv_a_mqa", l, d, st->W, 1, err));
        TRY(vec_f32(st, &ly->attn_kv_a_norm, "attn_kv_a_norm", l, st->d_c, &ls->kv_a_norm, err));
        if (hp->kv_split) {
            TRY(check_w(&ly->attn_k_b, "attn_k_b", l, st->d_n, st->d_c, H, err));
            TRY(check_w(&ly->attn_v_b, "attn_v_b", l, st->d_c, st->d_v, H, err));
            ls->kb = ly->attn_k_b;
        } else {
            TRY(check_w(&ly->attn_kv_b, "attn_kv_b", l, st->d_c,
                        (int64_t)H * (st->d_n + st->d_v), 1, err));
            TRY(build_kb_transposed(st, ly, l, &ls->kb, err));
        }
        TRY(check_w(&ly->attn_output, "attn_output", l, (int64_t)H * st->d_v, d, 1, err));
        TRY(vec_f32(st, &ly->ffn_norm, "ffn_norm", l, d, &ls->ffn_norm, err));
        if (!ly->is_moe) {
            uint32_t nff = (uint32_t)ly->ffn_gate.ne[1];
            if (nff == 0)
                return ds_err_set(err, DS_ERR_FORMAT, "deepseek2: layer %u: ffn_gate missing", l);
            TRY(check_w(&ly->ffn_gate, "ffn_gate", l, d, nff, 1, err));
            TRY(check_w(&ly->ffn_up, "ffn_up", l, d, nff, 1, err));
            TRY(check_w(&ly->ffn_down, "ffn_down", l, nff, d, 1, err));
            ls->ff_width = nff;
            if (nff > ff_max)
                ff_max = nff;
        } else {
            if (st->E == 0)
                return ds_err_set(err, DS_ERR_FORMAT,
                                  "deepseek2: layer %u is MoE but the model has no experts", l);
            TRY(check_w(&ly->ffn_gate_inp, "ffn_gate_inp", l, d, st->E, 1, err));
            if (ly->exp_probs_b.data)
                TRY(vec_f32(st, &ly->exp_probs_b, "exp_probs_b", l, st->E, &ls->exp_bias, err));
            TRY(check_w(&ly->ffn_gate_exps, "ffn_gate_exps", l, d, st->n_exp_ff, st->E, err));
            TRY(check_w(&ly->ffn_up_exps, "ffn_up_exps", l, d, st->n_exp_ff, st->E, err));
            TRY(check_w(&ly->ffn_down_exps, "ffn_down_exps", l, st->n_exp_ff, d, st->E, err));
            if (st->n_exp_ff > ff_max)
                ff_max = st->n_exp_ff;
            if (ly->ffn_gate_shexp.data) {
                uint32_t sw = (uint32_t)ly->ffn_gate_shexp.ne[1];
                TRY(check_w(&ly->ffn_gate_shexp, "ffn_gate_shexp", l, d, sw, 1, err));
                TRY(check_w(&ly->ffn_up_shexp, "ffn_up_shexp", l, d, sw, 1, err));
                TRY(check_w(&ly->ffn_down_shexp, "ffn_down_shexp", l, sw, d, 1, err));
                ls->sh_width = sw;
                if (sw > ff_max)
                    ff_max = sw;
            } else if (hp->n_expert_shared > 0) {
                return ds_err_set(err, DS_ERR_FORMAT,
                                  "deepseek2: layer %u: shared expert tensors missing", l);
            }
        }
    }
    st->ff_max = ff_max;
    return DS_OK;
}

static ds_status alloc_scratch(ds2_state *st, ds_err *err)
{
    const size_t B = st->p.n_batch, H = st->H, k = st->k_used ? st->k_used : 1;
    const size_t E = st->E ? st->E : 1;
#define A(field, n, T, what)                                                                     \
    do {                                                                                         \
        st->field = st_alloc(st, (n), sizeof(T), err, what);                                     \
        if (!st->field)                                                                          \
            return err ? err->status : DS_ERR_NO_MEMORY;                                         \
    } while (0)
    A(x, sz3(B, st->d, 1), float, "residual");
    A(h, sz3(B, st->d, 1), float, "normed");
    A(qa, sz3(B, st->d_q ? st->d_q : 1, 1), float, "q_a");
    A(q, sz3(B, H, st->d_qk), float, "q");
    A(kvr, sz3(B, st->W, 1), float, "kv_a");
    A(qc, sz3(B, H, st->W), float, "absorbed q");
    A(ctx, sz3(B, H, st->d_c), float, "latent context");
    A(ml, sz3(B, H, 2), float, "softmax state");
    {
        const size_t bs = B < ATT_MM_MIN_T - 1 ? B : ATT_MM_MIN_T - 1;
        A(ctx2, sz3(bs, H, st->d_c), float, "latent context (second halves)");
        A(ml2, sz3(bs, H, 2), float, "softmax state (second halves)");
    }
    A(o, sz3(B, H, st->d_v), float, "head outputs");
    A(tmp, sz3(B, st->d, 1), float, "block output");
    A(fg, sz3(B, st->ff_max, 1), float, "ffn gate");
    A(fu, sz3(B, st->ff_max, 1), float, "ffn up");
    A(rl, sz3(B, E, 1), float, "router logits");
    A(rscr, st->E ? ds_router_scratch_floats(&st->router) : 1, float, "router scratch");
    A(rrow, sz3((size_t)st->nt, st->d, 1), float, "router rows");
    A(xg, sz3(B, st->d, 1), float, "expert inputs");
    A(dg, sz3(B, st->d, 1), float, "expert outputs");
    A(cs, sz3(B, st->d_r ? st->d_r : 2, 1), float, "rope cos/sin");
    st->seg_rows = st->p.n_ctx < ATT_SEG ? st->p.n_ctx : ATT_SEG;
    /* an f16/bf16 cache is converted to f32 segments only without the AVX-512 kernels that
     * read it in place (or when the params ask for the segments) */
    st->kseg = NULL;
    if (st->p.kv_type != DS_KV_F32 && (st->p.kv_segments || !ds_heads_h16_fast()))
        A(kseg, sz3(st->seg_rows, st->W, 1), float, "cache segment");
    if (B >= ATT_MM_MIN_T) {
        size_t tq = ATT_QROWS / H;
        st->att_tq = (uint32_t)(tq < 1 ? 1 : tq > B ? B : tq);
        const size_t qr = (size_t)st->att_tq * H;
        A(kblk, sz3(ATT_KB, st->W, 1), float, "attention key block");
        A(cblk, sz3(st->d_c, ATT_KB, 1), float, "attention latent block");
        A(sc, sz3(qr, ATT_KB, 1), float, "attention scores");
        A(ctmp, sz3(qr, st->d_c, 1), float, "attention block context");
        A(corr, qr, float, "attention rescaling");
    }
    A(ids, sz3(B, k, 1), int32_t, "expert ids");
    A(wts, sz3(B, k, 1), float, "expert weights");
    A(off, E + 1, uint32_t, "expert offsets");
    A(gtok, sz3(B, k, 1), int32_t, "grouped tokens");
    A(gw, sz3(B, k, 1), float, "grouped weights");
    if (st->nt > 1 && st->E) {
        st->moe_tmax = B < JOB_MOE_MAX_T ? (uint32_t)B : JOB_MOE_MAX_T;
        const size_t rows = (size_t)st->moe_tmax * k;
        A(xgk, sz3(rows, st->d, 1), float, "expert job inputs");
        A(fgk, sz3(rows, st->n_exp_ff, 1), float, "expert job gate");
        A(fuk, sz3(rows, st->n_exp_ff, 1), float, "expert job up");
        A(dgk, sz3(rows, st->d, 1), float, "expert job outputs");
        A(jobs, 2 * rows + 4, ds_mm_job, "matmul jobs");
    }
    if (st->nt > 1 && st->E && B > st->moe_tmax) {
        A(xa, sz3(B, k, st->d), float, "expert task rows");
        A(eord, E, uint32_t, "expert order");
        if ((size_t)st->nt * st->n_exp_ff <= st->ff_max) {
            st->fgt = st->fg; /* thread t's [B][n_exp_ff] fits at fg + t * B * n_exp_ff */
            st->fut = st->fu;
        } else {
            A(fgt, sz3((size_t)st->nt, B, st->n_exp_ff), float, "expert task gate");
            A(fut, sz3((size_t)st->nt, B, st->n_exp_ff), float, "expert task up");
        }
    }
#undef A
    return DS_OK;
}

/* Build a state; with measure, nothing large is allocated (st_alloc only counts bytes), no
 * cache is created and *bytes receives what ds2_state_bytes() of the real state would be. */
static ds_status state_build(ds2_state **out, const ds_model_data *md, ds_mm *mm,
                             int measure_threads, const ds2_state_params *p, uint64_t *bytes,
                             ds_err *err)
{
    const bool measure = bytes != NULL;
    if (!out)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: out is NULL");
    *out = NULL;
    if (!md || (!mm && !measure) || !p)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: NULL model, ds_mm or parameters");
    if (md->arch != DS_ARCH_DEEPSEEK2 || !md->w.layers)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: model data is not a bound deepseek2 model");
    if (p->n_ctx == 0 || p->n_batch == 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: n_ctx and n_batch must be > 0");
    const ds2_hparams *hp = &md->hp;
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0 || hp->kv_lora_rank == 0 ||
        hp->qk_nope == 0 || hp->v_head == 0 || hp->qk_rope % 2 != 0)
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "deepseek2: unsupported dimensions (d %u, layers %u, heads %u, d_c %u, "
                          "d_n %u, d_r %u, d_v %u)",
                          hp->n_embd, hp->n_layer, hp->n_head, hp->kv_lora_rank, hp->qk_nope,
                          hp->qk_rope, hp->v_head);

    ds2_state *st = calloc(1, sizeof *st);
    if (!st)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: out of memory");
    st->md = md;
    st->hp = hp;
    st->mm = mm;
    st->p = *p;
    st->measure = measure;
    st->d = hp->n_embd;
    st->H = hp->n_head;
    st->d_n = hp->qk_nope;
    st->d_r = hp->qk_rope;
    st->d_v = hp->v_head;
    st->d_c = hp->kv_lora_rank;
    st->d_q = hp->q_lora_rank;
    st->d_qk = st->d_n + st->d_r;
    st->W = st->d_c + st->d_r;
    st->E = hp->n_expert;
    st->k_used = hp->n_expert_used;
    st->n_exp_ff = hp->n_ff_exp;
    st->nt = measure ? measure_threads : ds_mm_threads(mm);
    if (st->nt < 1)
        st->nt = 1;
    ds_status s = DS_OK;

    st->ls = calloc(hp->n_layer, sizeof *st->ls);
    if (!st->ls) {
        s = ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: out of memory");
        goto fail;
    }

    /* global tensors */
    const ds2_weights *w = &md->w;
    if (!w->token_embd.data || w->token_embd.ne[0] != hp->n_embd || w->token_embd.ne[1] < 1) {
        s = ds_err_set(err, DS_ERR_FORMAT, "deepseek2: token_embd missing or not {%u, vocab}",
                       hp->n_embd);
        goto fail;
    }
    if (!w->output.data || w->output.ne[0] != hp->n_embd || w->output.ne[1] < 1 ||
        w->output.ne[1] > UINT32_MAX) {
        s = ds_err_set(err, DS_ERR_FORMAT, "deepseek2: output missing or not {%u, vocab}",
                       hp->n_embd);
        goto fail;
    }
    st->n_vocab = (uint32_t)w->output.ne[1];
    if (hp->n_vocab != 0 && hp->n_vocab != st->n_vocab) {
        s = ds_err_set(err, DS_ERR_FORMAT,
                       "deepseek2: output has %u rows but the vocabulary size is %u", st->n_vocab,
                       hp->n_vocab);
        goto fail;
    }
    if ((s = vec_f32(st, &w->output_norm, "output_norm", 0, st->d, &st->output_norm, err)))
        goto fail;

    /* rope and softmax scale */
    if (st->d_r) {
        if (ds_rope_init(&st->rope, st->d_r, hp->rope_freq_base, hp->rope_scaling,
                         hp->rope_factor, hp->rope_orig_ctx, hp->yarn_beta_fast,
                         hp->yarn_beta_slow) != 0) {
            s = ds_err_set(err, DS_ERR_UNSUPPORTED,
                           "deepseek2: unsupported rope (d_r %u, freq_base %g)", st->d_r,
                           (double)hp->rope_freq_base);
            goto fail;
        }
    }
    st->attn_scale = ds_rope_attn_scale(st->d_qk, hp->rope_scaling, hp->rope_factor,
                                        hp->mscale_all_dim);

    /* router */
    if (st->E) {
        st->router.n_expert = st->E;
        st->router.n_used = hp->n_expert_used;
        st->router.n_group = hp->n_group ? hp->n_group : 1;
        st->router.n_group_used = hp->n_group_used ? hp->n_group_used : st->router.n_group;
        st->router.gating = hp->gating;
        st->router.norm = hp->expert_weights_norm;
        st->router.scale = hp->expert_weights_scale;
        st->router.bias = NULL;
        if ((s = ds_router_check(&st->router, err)) != DS_OK) {
            ds_err_prefix(err, "deepseek2");
            goto fail;
        }
    }

    if ((s = bind_layers(st, err)) != DS_OK)
        goto fail;

    /* the embedding type must be dequantizable */
    {
        float *probe = malloc((size_t)st->d * sizeof(float));
        if (!probe) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY, "deepseek2: out of memory");
            goto fail;
        }
        bool ok = ds_dequant_row(w->token_embd.type, w->token_embd.data, probe, st->d);
        free(probe);
        if (!ok) {
            s = ds_err_set(err, DS_ERR_UNSUPPORTED,
                           "deepseek2: token_embd has type %u, which cannot be dequantized",
                           w->token_embd.type);
            goto fail;
        }
    }

    if ((s = alloc_scratch(st, err)) != DS_OK)
        goto fail;
    if (measure) {
        uint64_t kvb = ds_kv_bytes_for(hp->n_layer, p->n_ctx, st->d_c, st->d_r, p->kv_type);
        if (kvb == 0) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY,
                           "deepseek2: the KV cache for %u tokens (%s) overflows", p->n_ctx,
                           ds_kv_type_name(p->kv_type));
            goto fail;
        }
        *bytes = st->bytes + kvb + sizeof *st + (uint64_t)hp->n_layer * sizeof *st->ls;
        ds2_state_free(st);
        return DS_OK;
    }
    if ((s = ds_kv_create(&st->kv, hp->n_layer, p->n_ctx, st->d_c, st->d_r, p->kv_type, err)) !=
        DS_OK)
        goto fail;
    *out = st;
    return DS_OK;
fail:
    ds2_state_free(st);
    return s;
}

ds_status ds2_state_create(ds2_state **out, const ds_model_data *md, ds_mm *mm,
                           const ds2_state_params *p, ds_err *err)
{
    return state_build(out, md, mm, 0, p, NULL, err);
}

ds_status ds2_state_estimate(const ds_model_data *md, int n_threads, const ds2_state_params *p,
                             uint64_t *bytes, ds_err *err)
{
    if (!bytes)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: bytes is NULL");
    *bytes = 0;
    ds2_state *st = NULL;
    return state_build(&st, md, NULL, n_threads, p, bytes, err);
}

uint32_t ds2_state_pos(const ds2_state *st) { return ds_kv_pos(st->kv); }
uint32_t ds2_state_n_vocab(const ds2_state *st) { return st->n_vocab; }
uint32_t ds2_state_n_ctx(const ds2_state *st) { return ds_kv_n_ctx(st->kv); }
const ds_kv_cache *ds2_state_kv(const ds2_state *st) { return st->kv; }

ds_status ds2_state_truncate(ds2_state *st, uint32_t new_pos, ds_err *err)
{
    if (!st)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: NULL state");
    return ds_kv_truncate(st->kv, new_pos, err);
}

uint64_t ds2_state_bytes(const ds2_state *st)
{
    if (!st)
        return 0;
    return st->bytes + ds_kv_bytes(st->kv) + sizeof *st +
           (uint64_t)st->hp->n_layer * sizeof *st->ls;
}

/* ---- the layer pieces ------------------------------------------------------------------- */

#define MM(W_, ex, X, M, ldx, Y, ldy) TRY(ds_mm_run(st->mm, (W_), (ex), (X), (M), (ldx), (Y), (ldy), err))
/* the same as a one-product job group (ds_mm_run_jobs): dynamic row chunks for few rows */
#define MMJ(W_, ex, X, M, ldx, Y, ldy)                                                           \
    do {                                                                                         \
        const ds_mm_job job_ = {(W_), (ex), (X), (M), (ldx), (Y), (ldy)};                           \
        TRY(ds_mm_run_jobs(st->mm, &job_, 1, err));                                                        \
    } while (0)

/* Online-softmax update of nh heads of one token (queries q + h*W, running max and sum
 * ml + 2h, accumulators acc + h*d_c) with keys rows[0..n) (absolute positions b0.., already
 * limited to the token's causal range; elements of type rt: f32, or f16/bf16 for the
 * ds_*_heads_h16 kernels). Keys are taken in sub-blocks of ATT_BLOCK that start at absolute
 * multiples of ATT_BLOCK, so the arithmetic does not depend on how the rows were segmented
 * or chunked. Each head sees the same operations as it would alone: the heads kernels load a
 * key row once for up to four heads (scores in tiles of 4 rows x 4 heads; accumulators kept
 * in registers across the block's rows, the bits of ds_axpy_f32 per key row in order), the
 * block's maxima and exp(score - max) with their sums vectorised (ds_max_f32,
 * ds_exp_sum_f32). */
static void attend_rows_heads(const float *q, uint32_t nh, const void *rows, ds_kv_type rt,
                              uint32_t b0, uint32_t n, uint32_t W, uint32_t d_c, float scale,
                              float *ml, float *acc)
{
    const size_t es = ds_kv_type_size(rt);
    const bool bf16 = rt == DS_KV_BF16;
    float sc[ATT_HGROUP][ATT_BLOCK];
    float mn[ATT_HGROUP], sm[ATT_HGROUP];
    uint32_t s0 = 0;
    while (s0 < n) {
        uint32_t blk_end = ((b0 + s0) / ATT_BLOCK + 1) * ATT_BLOCK - b0; /* next boundary */
        uint32_t s1 = blk_end < n ? blk_end : n;
        const void *blk = (const char *)rows + (size_t)s0 * W * es;
        if (rt == DS_KV_F32)
            ds_dot_heads_f32(q, (int)nh, W, blk, (int)(s1 - s0), W, W, scale, &sc[0][0],
                             ATT_BLOCK);
        else
            ds_dot_heads_h16(q, (int)nh, W, blk, (int)(s1 - s0), W, W, scale, &sc[0][0],
                             ATT_BLOCK, bf16);
        for (uint32_t h = 0; h < nh; h++) /* block maxima first */
            mn[h] = ds_max_f32(sc[h], s1 - s0);
        for (uint32_t h = 0; h < nh; h++) {
            const float bm = mn[h], m_old = ml[2 * h];
            float sum = ml[2 * h + 1];
            const float m_new = m_old > bm ? m_old : bm;
            if (m_old != -INFINITY && m_old != m_new) {
                const float corr = expf(m_old - m_new);
                sum *= corr;
                float *a = acc + (size_t)h * d_c;
                for (uint32_t c = 0; c < d_c; c++)
                    a[c] *= corr;
            }
            mn[h] = m_new;
            sm[h] = sum;
        }
        for (uint32_t h = 0; h < nh; h++)
            sm[h] += ds_exp_sum_f32(sc[h], s1 - s0, mn[h]);
        if (rt == DS_KV_F32)
            ds_axpy_heads_f32(acc, (int)nh, d_c, &sc[0][0], ATT_BLOCK, blk, (int)(s1 - s0), W,
                              d_c);
        else
            ds_axpy_heads_h16(acc, (int)nh, d_c, &sc[0][0], ATT_BLOCK, blk, (int)(s1 - s0), W,
                              d_c, bf16);
        for (uint32_t h = 0; h < nh; h++) {
            ml[2 * h] = mn[h];
            ml[2 * h + 1] = sm[h];
        }
        s0 = s1;
    }
}

/* The end of nh heads' online softmax: each accumulator (acc + h*d_c) divided by its sum
 * (ml[2h + 1]). */
static void normalise_heads(float *acc, const float *ml, uint32_t nh, uint32_t d_c)
{
    for (uint32_t h = 0; h < nh; h++) {
        const float inv = 1.0f / ml[2 * h + 1];
        float *a = acc + (size_t)h * d_c;
        for (uint32_t c = 0; c < d_c; c++)
            a[c] *= inv;
    }
}

/* The second half (acc2, ml2: unnormalised accumulator, max and sum) of a split token's keys
 * merged into the first (acc, ml), and the result normalised. */
static void merge_halves(float *acc, const float *ml, const float *acc2, const float *ml2,
                         uint32_t nh, uint32_t d_c)
{
    for (uint32_t h = 0; h < nh; h++) {
        const float m1 = ml[2 * h], m2 = ml2[2 * h], m = m1 > m2 ? m1 : m2;
        const float c1 = expf(m1 - m), c2 = expf(m2 - m);
        const float inv = 1.0f / (ml[2 * h + 1] * c1 + ml2[2 * h + 1] * c2);
        float *a = acc + (size_t)h * d_c;
        const float *b = acc2 + (size_t)h * d_c;
        for (uint32_t c = 0; c < d_c; c++)
            a[c] = (a[c] * c1 + b[c] * c2) * inv;
    }
}

/* Whether attend_core splits the keys of the token at pos, and where (a function of the
 * position only, so that a token's arithmetic depends neither on the chunking nor on the
 * thread count): the multiple of ATT_BLOCK nearest the middle. */
static uint32_t att_split_at(uint32_t pos)
{
    const uint32_t n = pos + 1;
    return n < ATT_SPLIT_MIN ? 0 : (n / 2 + ATT_BLOCK / 2) / ATT_BLOCK * ATT_BLOCK;
}

/* Attention over the cache for T tokens at p0.. (rows of this chunk already written).
 * In: st->qc [T][H][W]. Out: st->ctx [T][H][d_c]. One job per (token, group of up to
 * ATT_HGROUP heads; smaller groups when there would be fewer jobs than threads), OpenMP over
 * jobs (round-robin, which balances the causal triangle). An f32 cache is read in place, an
 * f16/bf16 one too with the AVX-512 kernels (which give the bits the f32 kernels give on the
 * rows' f32 values); where the cache's state has a segment buffer kseg (no such kernels, or
 * ds2_state_params.kv_segments) it is converted segment by segment (ATT_SEG rows, shared by
 * all jobs).
 * ctx2, ml2: room for the second halves of T tokens' keys (att_split_at; cache read in place). */
static void attend_core(const ds2_state *st, const ds_kv_cache *kv, float *kseg, uint32_t seg,
                        uint32_t l, uint32_t p0, uint32_t T, const float *qc, float *ctx,
                        float *ml, float *ctx2, float *ml2)
{
    const uint32_t H = st->H, W = st->W, d_c = st->d_c;
    const int64_t n_jobs = (int64_t)T * H;
    const uint32_t p_end = p0 + T;
    const float scale = st->attn_scale;

    for (int64_t j = 0; j < n_jobs; j++) {
        ml[2 * j] = -INFINITY;
        ml[2 * j + 1] = 0.0f;
    }
    memset(ctx, 0, (size_t)n_jobs * d_c * sizeof(float));

    /* one thread for tiny work (fork/join would cost more) */
    const double work = (double)n_jobs * ((double)p0 + 0.5 * T + 1.0) * (W + d_c);
    const int nt = work < PAR_MIN_WORK ? 1 : st->nt;
    /* rows read in place unless the cache's state has a segment buffer (alloc_scratch gives
     * one only to f16/bf16 caches without the AVX-512 kernels) */
    const ds_kv_type rt = ds_kv_get_type(kv);
    const bool direct = !kseg;
    /* head groups: ATT_HGROUP heads, fewer when a token would have fewer jobs than the
     * threads need (a token whose keys are split has two per group; with the cache read in
     * place the first token splits if any does) */
    uint32_t hg = H < ATT_HGROUP ? H : ATT_HGROUP;
    const uint32_t halves = direct && att_split_at(p0) ? 2 : 1;
    const uint32_t want = (uint32_t)(((uint32_t)nt + T * halves - 1) / (T * halves));
    if ((H + hg - 1) / hg < want)
        hg = (H + want - 1) / want;
    const uint32_t ng = (H + hg - 1) / hg;
    const int64_t n_grp = (int64_t)T * ng;

    if (direct) {
        /* A token with at least ATT_SPLIT_MIN keys is two jobs per head group, one per half of
         * its keys (the second half into ctx2/ml2, merged below): at decode each thread then
         * streams half of the cache, which comes from DRAM every token. The jobs are listed
         * token by token and group by group with the halves adjacent, so that round-robin
         * gives the two halves to different threads. */
        const char *base = ds_kv_raw_rows(kv, l, 0, p_end);
        const size_t rb = (size_t)W * ds_kv_type_size(rt); /* bytes per cache row */
        int64_t n_jobs2 = n_grp;
        for (uint32_t t = 0; t < T; t++)
            if (att_split_at(p0 + t)) {
                n_jobs2 += ng;
                for (uint32_t h = 0; h < H; h++) {
                    ml2[2 * ((size_t)t * H + h)] = -INFINITY;
                    ml2[2 * ((size_t)t * H + h) + 1] = 0.0f;
                }
                memset(ctx2 + (size_t)t * H * d_c, 0, (size_t)H * d_c * sizeof(float));
            }
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
        for (int64_t j = 0; j < n_jobs2; j++) {
            uint32_t t = 0;
            int64_t r = j; /* job r of token t */
            for (;; t++) {
                const int64_t per = att_split_at(p0 + t) ? 2 * (int64_t)ng : (int64_t)ng;
                if (r < per)
                    break;
                r -= per;
            }
            const uint32_t pos = p0 + t, mid = att_split_at(pos);
            const uint32_t g = (uint32_t)(mid ? r / 2 : r), half = (uint32_t)(mid ? r % 2 : 0);
            const uint32_t h0 = g * hg, nh = H - h0 < hg ? H - h0 : hg;
            const int64_t j0 = (int64_t)t * H + h0;
            if (half == 0) {
                attend_rows_heads(qc + (size_t)j0 * W, nh, base, rt, 0, mid ? mid : pos + 1, W,
                                  d_c, scale, ml + 2 * j0, ctx + (size_t)j0 * d_c);
                if (!mid)
                    normalise_heads(ctx + (size_t)j0 * d_c, ml + 2 * j0, nh, d_c);
            } else {
                attend_rows_heads(qc + (size_t)j0 * W, nh, base + (size_t)mid * rb, rt, mid,
                                  pos + 1 - mid, W, d_c, scale, ml2 + 2 * j0,
                                  ctx2 + (size_t)j0 * d_c);
            }
        }
        for (uint32_t t = 0; t < T; t++)
            if (att_split_at(p0 + t))
                merge_halves(ctx + (size_t)t * H * d_c, ml + 2 * (size_t)t * H,
                             ctx2 + (size_t)t * H * d_c, ml2 + 2 * (size_t)t * H, H, d_c);
        return;
    }

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        for (uint32_t g0 = 0; g0 < p_end; g0 += seg) {
            const uint32_t g1 = p_end - g0 < seg ? p_end : g0 + seg;
#pragma omp for schedule(static)
            for (int64_t s = g0; s < (int64_t)g1; s++)
                ds_kv_read_f32(kv, l, (uint32_t)s, (uint32_t)s + 1, kseg + (size_t)(s - g0) * W);
#pragma omp for schedule(static, 1)
            for (int64_t g = 0; g < n_grp; g++) {
                const uint32_t t = (uint32_t)(g / ng), h0 = (uint32_t)(g % ng) * hg;
                const uint32_t nh = H - h0 < hg ? H - h0 : hg, pos = p0 + t;
                if (g0 > pos)
                    continue;
                const uint32_t e = g1 < pos + 1 ? g1 : pos + 1;
                const int64_t j0 = (int64_t)t * H + h0;
                attend_rows_heads(qc + (size_t)j0 * W, nh, kseg, DS_KV_F32, g0, e - g0, W, d_c,
                                  scale, ml + 2 * j0, ctx + (size_t)j0 * d_c);
                if (e == pos + 1) /* the job's last key: normalise */
                    normalise_heads(ctx + (size_t)j0 * d_c, ml + 2 * j0, nh, d_c);
            }
        }
    }
}

/* Attention of a chunk with matrix products (the chunk's own cache, no batch): all heads
 * share the latent cache, so for a block of ATT_KB keys (starting at an absolute multiple of
 * ATT_KB) the scores of every (token, head) row of a query tile are one product
 * S = Q K^T ([rows x W] x [W x ATT_KB]) and the block's context one product P C
 * ([rows x ATT_KB] x [ATT_KB x d_c]), both in f32 in every precision (the keys are an F32
 * weight for ds_mm; bf16 inputs here were measured to move FAST-precision logits by up to
 * 7e-4 relative between a chunked and a whole prefill, beyond the 1e-4 the session tests
 * allow). Between them the online softmax in f32 as in attend_rows_heads, per block instead
 * of per ATT_BLOCK keys: masked keys (after the row's position, or rows of the block beyond
 * the chunk) get probability 0; a row without a visible key in the block is left alone. Query
 * tiles are fixed slices of att_tq tokens and the block width is ATT_KB (less only at the end
 * of the cache), so the products come in few shapes (oneDNN primitives are per shape). */
static ds_status attend_mm(ds2_state *st, uint32_t l, uint32_t p0, uint32_t T, ds_err *err)
{
    const uint32_t H = st->H, W = st->W, d_c = st->d_c, tq = st->att_tq;
    const ds_kv_cache *kv = st->kv;
    const uint32_t n_ctx = ds_kv_n_ctx(kv), p_end = p0 + T;
    const float scale = st->attn_scale;
    const int64_t n_rows = (int64_t)T * H;
    float *const ml = st->ml, *const ctx = st->ctx;
    const int nt = st->nt;

    for (int64_t j = 0; j < n_rows; j++) {
        ml[2 * j] = -INFINITY;
        ml[2 * j + 1] = 0.0f;
    }
    memset(ctx, 0, (size_t)n_rows * d_c * sizeof(float));

    for (uint32_t kb = 0; kb < p_end; kb += ATT_KB) {
        const uint32_t nb = n_ctx - kb < ATT_KB ? n_ctx - kb : ATT_KB; /* block width */
        const uint32_t nv = p_end - kb < nb ? p_end - kb : nb;          /* rows written */
        /* the key block: the f32 cache in place when every row is written, else a copy */
        const float *keys = NULL;
        if (nv == nb)
            keys = ds_kv_rows_f32(kv, l, kb);
        if (!keys) {
            if (!ds_kv_read_f32(kv, l, kb, kb + nv, st->kblk))
                return ds_err_set(err, DS_ERR_INTERNAL, "deepseek2: cache rows %u..%u", kb,
                                  kb + nv);
            memset(st->kblk + (size_t)nv * W, 0, (size_t)(nb - nv) * W * sizeof(float));
            keys = st->kblk;
        }
        /* its latent part transposed ([d_c][nb]), 16 latent columns at a time */
        const bool par_t = nt > 1 && (double)nb * d_c >= PAR_MIN_WORK;
        (void)par_t; /* only read by OpenMP */
#pragma omp parallel for schedule(static) num_threads(nt) if (par_t)
        for (int64_t c0 = 0; c0 < (int64_t)d_c; c0 += 16) {
            const uint32_t c1 = (uint32_t)c0 + 16 < d_c ? (uint32_t)c0 + 16 : d_c;
            for (uint32_t s = 0; s < nb; s++) {
                const float *src = keys + (size_t)s * W;
                for (uint32_t c = (uint32_t)c0; c < c1; c++)
                    st->cblk[(size_t)c * nb + s] = src[c];
            }
        }
        const ds_weight wk = {.name = "attention keys (cache)", .type = 0 /* F32 */,
                              .ne = {W, nb, 1, 1}, .row_bytes = (size_t)W * sizeof(float),
                              .nbytes = (size_t)nb * W * sizeof(float), .data = keys};
        const ds_weight wc = {.name = "attention latents (cache)", .type = 0 /* F32 */,
                              .ne = {nb, d_c, 1, 1}, .row_bytes = (size_t)nb * sizeof(float),
                              .nbytes = (size_t)nb * d_c * sizeof(float), .data = st->cblk};

        const uint32_t t_first = kb > p0 ? kb - p0 : 0; /* first token that sees this block */
        for (uint32_t ta = t_first / tq * tq; ta < T; ta += tq) {
            const uint32_t tb = T - ta < tq ? T : ta + tq;
            const int64_t rows = (int64_t)(tb - ta) * H, r0 = (int64_t)ta * H;
            MM(&wk, 0, st->qc + (size_t)r0 * W, rows, W, st->sc, nb);
            const bool par = nt > 1 && (double)rows * nb * 8.0 >= PAR_MIN_WORK;
            (void)par;
#pragma omp parallel for schedule(static) num_threads(nt) if (par)
            for (int64_t r = 0; r < rows; r++) {
                const uint32_t pos = p0 + ta + (uint32_t)(r / H);
                float *srow = st->sc + (size_t)r * nb;
                if (pos < kb) { /* nothing visible in this block */
                    memset(srow, 0, (size_t)nb * sizeof(float));
                    st->corr[r] = -1.0f;
                    continue;
                }
                const uint32_t vis = pos - kb + 1 < nb ? pos - kb + 1 : nb;
                float bm = -INFINITY;
                for (uint32_t s = 0; s < vis; s++) {
                    const float v = scale * srow[s];
                    srow[s] = v;
                    if (v > bm)
                        bm = v;
                }
                float *mlr = ml + 2 * (r0 + r);
                const float m_old = mlr[0], m_new = m_old > bm ? m_old : bm;
                const float c = m_old == -INFINITY ? 0.0f : m_old == m_new ? 1.0f
                                                                           : expf(m_old - m_new);
                float sum = 0.0f;
                for (uint32_t s = 0; s < vis; s++) {
                    const float a = expf(srow[s] - m_new);
                    srow[s] = a;
                    sum += a;
                }
                for (uint32_t s = vis; s < nb; s++)
                    srow[s] = 0.0f;
                mlr[0] = m_new;
                mlr[1] = mlr[1] * c + sum;
                st->corr[r] = c;
            }
            MM(&wc, 0, st->sc, rows, nb, st->ctmp, d_c);
#pragma omp parallel for schedule(static) num_threads(nt) if (par)
            for (int64_t r = 0; r < rows; r++) {
                const float c = st->corr[r];
                if (c < 0.0f)
                    continue;
                float *acc = ctx + (size_t)(r0 + r) * d_c;
                const float *add = st->ctmp + (size_t)r * d_c;
                for (uint32_t j = 0; j < d_c; j++)
                    acc[j] = acc[j] * c + add[j];
            }
        }
    }
    for (int64_t j = 0; j < n_rows; j++) {
        const float inv = 1.0f / ml[2 * j + 1];
        float *acc = ctx + (size_t)j * d_c;
        for (uint32_t c = 0; c < d_c; c++)
            acc[c] *= inv;
    }
    return DS_OK;
}

static ds_status attend(ds2_state *st, uint32_t l, uint32_t p0, uint32_t T, ds_err *err)
{
    if (!st->bst) {
        if (st->kblk && T >= ATT_MM_MIN_T)
            return attend_mm(st, l, p0, T, err);
        attend_core(st, st->kv, st->kseg, st->seg_rows, l, p0, T, st->qc, st->ctx, st->ml,
                    st->ctx2, st->ml2);
        return DS_OK;
    }
    /* batched decode: token t attends over its own state's cache at that state's position,
     * exactly as a one-token chunk of that state would (an f16/bf16 cache is converted in the
     * owning state's segment buffer, which is idle during the batch) */
    const size_t H = st->H;
    for (uint32_t t = 0; t < T; t++) {
        const ds2_state *o = st->bst[t];
        attend_core(st, o->kv, o->kseg, o->seg_rows, l, ds_kv_pos(o->kv), 1,
                    st->qc + (size_t)t * H * st->W, st->ctx + (size_t)t * H * st->d_c,
                    st->ml + (size_t)t * H * 2, st->ctx2, st->ml2);
    }
    return DS_OK;
}

/* Per-head products (q_abs_i = W_UK_i^T q_nope_i, o_i = W_UV_i ctx_i) for all heads in one
 * ds_mm_run_heads (one OpenMP loop over heads; at decode the GEMV kernels are called directly,
 * without a ds_mm call per head). The destinations are the head's columns of qc or o; ds_mm
 * gives oneDNN a dense block for such strided outputs (mm.c, dense_dst). The combined
 * attn_kv_b form takes each head's d_v rows of the tensor (ds_mm_run_rows per head). */
static ds_status per_head(ds2_state *st, uint32_t l, bool uv, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const ds2_lstate *ls = &st->ls[l];
    const uint32_t H = st->H, d_n = st->d_n, d_c = st->d_c, d_v = st->d_v, W = st->W;
    const size_t qld = (size_t)H * st->d_qk, qcld = (size_t)H * W;
    const size_t cld = (size_t)H * d_c, old = (size_t)H * d_v;
    if (!uv)
        return ds_mm_run_heads(st->mm, &ls->kb, H, st->q, st->d_qk, (int64_t)qld, T, st->qc, W,
                               (int64_t)qcld, err);
    if (st->hp->kv_split)
        return ds_mm_run_heads(st->mm, &ly->attn_v_b, H, st->ctx, d_c, (int64_t)cld, T, st->o,
                               d_v, (int64_t)old, err);
    ds_status first = DS_OK;
    ds_err first_err;
    ds_err_clear(&first_err);
    /* fork only when there is enough work (MACs) to pay for it */
    const bool par = st->nt > 1 && H > 1 && (double)H * d_c * d_v * T >= PAR_MIN_WORK;
    (void)par; /* only read by OpenMP */
#pragma omp parallel for schedule(static) num_threads(st->nt) if (par)
    for (int64_t i = 0; i < (int64_t)H; i++) {
        ds_err e;
        ds_err_clear(&e);
        int64_t r0 = i * (int64_t)(d_n + d_v) + d_n;
        ds_status s = ds_mm_run_rows(st->mm, &ly->attn_kv_b, 0, r0, r0 + d_v,
                                     st->ctx + (size_t)i * d_c, T, (int64_t)cld,
                                     st->o + (size_t)i * d_v, (int64_t)old, &e);
        if (s != DS_OK) {
#pragma omp critical(ds2_per_head_err)
            if (first == DS_OK) {
                first = s;
                first_err = e;
            }
        }
    }
    if (first != DS_OK && err)
        *err = first_err;
    return first;
}

static ds_status mla(ds2_state *st, uint32_t l, uint32_t p0, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const ds2_lstate *ls = &st->ls[l];
    const uint32_t d = st->d, H = st->H, d_n = st->d_n, d_r = st->d_r, d_c = st->d_c,
                   d_v = st->d_v, d_qk = st->d_qk, W = st->W;
    const float eps = st->hp->rms_eps;
    const size_t qld = (size_t)H * d_qk;

    for (uint32_t t = 0; t < T; t++)
        ds_rmsnorm(st->h + (size_t)t * d, st->x + (size_t)t * d, ls->attn_norm, d, eps);

    /* queries (or their low-rank part) and the latent with the rope key: one job group */
    {
        const ds_mm_job proj[2] = {
            st->d_q ? (ds_mm_job){&ly->attn_q_a, 0, st->h, T, d, st->qa, st->d_q}
                    : (ds_mm_job){&ly->attn_q, 0, st->h, T, d, st->q, (int64_t)qld},
            {&ly->attn_kv_a_mqa, 0, st->h, T, d, st->kvr, W}};
        TRY(ds_mm_run_jobs(st->mm, proj, 2, err));
    }
    if (st->d_q) {
        for (uint32_t t = 0; t < T; t++)
            ds_rmsnorm(st->qa + (size_t)t * st->d_q, st->qa + (size_t)t * st->d_q, ls->q_a_norm,
                       st->d_q, eps);
        MMJ(&ly->attn_q_b, 0, st->qa, T, st->d_q, st->q, qld);
    }

    /* latent and rope key -> cache */
    for (uint32_t t = 0; t < T; t++) {
        float *r = st->kvr + (size_t)t * W;
        ds_rmsnorm(r, r, ls->kv_a_norm, d_c, eps);
        if (d_r)
            ds_rope_apply(&st->rope, st->cs + (size_t)t * d_r, r + d_c);
    }
    if (!st->bst) {
        TRY(ds_kv_write(st->kv, l, p0, T, st->kvr, W, st->kvr + d_c, W, err));
    } else {
        for (uint32_t t = 0; t < T; t++) {
            ds_kv_cache *kv = st->bst[t]->kv;
            const float *r = st->kvr + (size_t)t * W;
            TRY(ds_kv_write(kv, l, ds_kv_pos(kv), 1, r, W, r + d_c, W, err));
        }
    }

    /* absorbed queries: qc[t][i] = [W_UK_i^T q_nope_i ; RoPE(q_pe_i)] */
    TRY(per_head(st, l, false, T, err));
    for (uint32_t t = 0; t < T; t++) {
        for (uint32_t i = 0; i < H; i++) {
            float *dst = st->qc + ((size_t)t * H + i) * W + d_c;
            memcpy(dst, st->q + t * qld + (size_t)i * d_qk + d_n, (size_t)d_r * sizeof(float));
            if (d_r)
                ds_rope_apply(&st->rope, st->cs + (size_t)t * d_r, dst);
        }
    }

    TRY(attend(st, l, p0, T, err));

    /* o_i = W_UV_i ctx_i */
    TRY(per_head(st, l, true, T, err));
    MMJ(&ly->attn_output, 0, st->o, T, (size_t)H * d_v, st->tmp, d);
    for (uint32_t t = 0; t < T; t++)
        ds_axpy_f32(st->x + (size_t)t * d, 1.0f, st->tmp + (size_t)t * d, d);
    return DS_OK;
}

/* The MoE block of a few tokens (T <= moe_tmax, several threads: decode, batched decode) as
 * two job groups: the gate and up products of every selected expert and of the shared expert,
 * then their down products (an expert or shared product of more than 4 rows (MM_JOB_MAX_M) runs
 * alone through ds_mm_run). The expert inputs are gathered in assignment order (grouped by
 * expert; an expert with one token reads that token's row in place) and the outputs combined
 * in that order, as in the expert-by-expert path, so the result is identical. Writes the block
 * output to st->tmp. */
static ds_status moe_jobs(ds2_state *st, uint32_t l, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const ds2_lstate *ls = &st->ls[l];
    const uint32_t d = st->d, E = st->E, F = st->n_exp_ff, sw = ls->sh_width;
    const uint32_t n_asg = st->off[E];
    ds_mm_job *jobs = st->jobs;
    int n = 0;
    for (uint32_t e = 0; e < E; e++) {
        const uint32_t a = st->off[e], cnt = st->off[e + 1] - a;
        if (cnt == 0)
            continue;
        /* an expert of one token reads the token's row in place (at decode every expert's
         * gate and up then share one quantized activation, ds_mm_run_jobs); several tokens'
         * rows are gathered */
        const float *x = st->h + (size_t)st->gtok[a] * d;
        if (cnt > 1) {
            for (uint32_t j = a; j < a + cnt; j++)
                memcpy(st->xgk + (size_t)j * d, st->h + (size_t)st->gtok[j] * d,
                       (size_t)d * sizeof(float));
            x = st->xgk + (size_t)a * d;
        }
        jobs[n++] = (ds_mm_job){&ly->ffn_gate_exps, e, x, cnt, d, st->fgk + (size_t)a * F, F};
        jobs[n++] = (ds_mm_job){&ly->ffn_up_exps, e, x, cnt, d, st->fuk + (size_t)a * F, F};
    }
    if (sw) {
        jobs[n++] = (ds_mm_job){&ly->ffn_gate_shexp, 0, st->h, T, d, st->fg, sw};
        jobs[n++] = (ds_mm_job){&ly->ffn_up_shexp, 0, st->h, T, d, st->fu, sw};
    }
    TRY(ds_mm_run_jobs(st->mm, jobs, n, err));
    ds_silu_mul(st->fgk, st->fgk, st->fuk, (int64_t)n_asg * F);
    if (sw)
        ds_silu_mul(st->fg, st->fg, st->fu, (int64_t)T * sw);
    n = 0;
    for (uint32_t e = 0; e < E; e++) {
        const uint32_t a = st->off[e], cnt = st->off[e + 1] - a;
        if (cnt == 0)
            continue;
        jobs[n++] = (ds_mm_job){&ly->ffn_down_exps, e, st->fgk + (size_t)a * F, cnt, F,
                             st->dgk + (size_t)a * d, d};
    }
    if (sw)
        jobs[n++] = (ds_mm_job){&ly->ffn_down_shexp, 0, st->fg, T, sw, st->dg, d};
    TRY(ds_mm_run_jobs(st->mm, jobs, n, err));
    memset(st->tmp, 0, (size_t)T * d * sizeof(float));
    for (uint32_t j = 0; j < n_asg; j++)
        ds_axpy_f32(st->tmp + (size_t)st->gtok[j] * d, st->gw[j], st->dgk + (size_t)j * d, d);
    if (sw)
        for (uint32_t t = 0; t < T; t++)
            ds_axpy_f32(st->tmp + (size_t)t * d, 1.0f, st->dg + (size_t)t * d, d);
    return DS_OK;
}

/* The routed experts of a chunk of more than moe_tmax tokens (prefill) with several threads:
 * one task per expert with tokens, the threads taking them dynamically, largest first, so
 * that each expert's gather, gate, up, SwiGLU and down products run on one thread without a
 * fork/join between them (ds_mm_run inside the region runs on its thread alone; measured
 * against one two-thread product after another in BENCHMARKS.md). Assignment j's input is
 * gathered into row j of xa and its expert output written over it; the outputs are then
 * combined in assignment order (expert by expert) with the columns split across the threads,
 * which for every element is the sum, in the order, of the expert-by-expert path.
 * Writes the routed part of the block output to st->tmp. */
static ds_status moe_tasks(ds2_state *st, uint32_t l, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const uint32_t d = st->d, E = st->E, F = st->n_exp_ff, n_asg = st->off[E];
    uint32_t na = 0;
    for (uint32_t e = 0; e < E; e++) { /* insertion sort: most tokens first, then by id */
        const uint32_t c = st->off[e + 1] - st->off[e];
        if (c == 0)
            continue;
        uint32_t i = na++;
        for (; i > 0 && st->off[st->eord[i - 1] + 1] - st->off[st->eord[i - 1]] < c; i--)
            st->eord[i] = st->eord[i - 1];
        st->eord[i] = e;
    }
    const size_t tb = (size_t)st->p.n_batch * F;
    ds_status first = DS_OK;
    ds_err first_err;
    ds_err_clear(&first_err);
#pragma omp parallel for schedule(dynamic, 1) num_threads(st->nt)
    for (int64_t i = 0; i < (int64_t)na; i++) {
        const uint32_t e = st->eord[i], a = st->off[e], cnt = st->off[e + 1] - a;
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *g = st->fgt + (size_t)t * tb, *u = st->fut + (size_t)t * tb;
        float *xr = st->xa + (size_t)a * d;
        for (uint32_t j = 0; j < cnt; j++)
            memcpy(xr + (size_t)j * d, st->h + (size_t)st->gtok[a + j] * d,
                   (size_t)d * sizeof(float));
        ds_err ee;
        ds_err_clear(&ee);
        ds_status s = ds_mm_run(st->mm, &ly->ffn_gate_exps, e, xr, cnt, d, g, F, &ee);
        if (s == DS_OK)
            s = ds_mm_run(st->mm, &ly->ffn_up_exps, e, xr, cnt, d, u, F, &ee);
        if (s == DS_OK) {
            ds_silu_mul(g, g, u, (int64_t)cnt * F);
            s = ds_mm_run(st->mm, &ly->ffn_down_exps, e, g, cnt, F, xr, d, &ee);
        }
        if (s != DS_OK) {
#pragma omp critical(ds2_task_err)
            if (first == DS_OK) {
                first = s;
                first_err = ee;
            }
        }
    }
    if (first != DS_OK) {
        if (err)
            *err = first_err;
        return first;
    }
    /* combine: column slices of whole 64-byte lines, one per thread */
    const int nt = st->nt;
    const uint32_t cw = (uint32_t)(((d + (uint32_t)nt - 1) / (uint32_t)nt + 15) & ~15u);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int c = 0; c < nt; c++) {
        const uint32_t c0 = (uint32_t)c * cw;
        if (c0 >= d)
            continue;
        const uint32_t n = d - c0 < cw ? d - c0 : cw;
        for (uint32_t t = 0; t < T; t++)
            memset(st->tmp + (size_t)t * d + c0, 0, (size_t)n * sizeof(float));
        for (uint32_t j = 0; j < n_asg; j++)
            ds_axpy_f32(st->tmp + (size_t)st->gtok[j] * d + c0, st->gw[j],
                        st->xa + (size_t)j * d + c0, n);
    }
    return DS_OK;
}

/* g = silu(g) * u over n elements, split across the threads when large (a prefill's gate
 * activations; ds_silu_mul measured 0.28 ns per element with AVX-512, 0.55 with AVX2, 3.8 in
 * plain C) */
static void silu_mul_par(const ds2_state *st, float *g, const float *u, int64_t n)
{
    const int64_t piece = 16384;
    if (st->nt == 1 || n < 4 * piece) {
        ds_silu_mul(g, g, u, n);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(st->nt)
    for (int64_t i = 0; i < n; i += piece)
        ds_silu_mul(g + i, g + i, u + i, n - i < piece ? n - i : piece);
}

/* SwiGLU over M rows of X (d wide) into Y (d wide). */
static ds_status swiglu(ds2_state *st, const ds_weight *g, const ds_weight *u,
                        const ds_weight *dn, int64_t expert, uint32_t width, const float *X,
                        uint32_t M, float *Y, ds_err *err)
{
    const uint32_t d = st->d;
    const ds_mm_job gu[2] = {{g, expert, X, M, d, st->fg, width}, {u, expert, X, M, d, st->fu, width}};
    TRY(ds_mm_run_jobs(st->mm, gu, 2, err));
    silu_mul_par(st, st->fg, st->fu, (int64_t)M * width);
    MMJ(dn, expert, st->fg, M, width, Y, d);
    return DS_OK;
}

/* The routed experts of a chunk, one after the other: one batched SwiGLU per selected expert
 * over its tokens (each product on all the threads), its output added to the tokens' rows in
 * expert order. Writes the routed part of the block output to st->tmp. */
static ds_status moe_serial(ds2_state *st, uint32_t l, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const uint32_t d = st->d, E = st->E;
    memset(st->tmp, 0, (size_t)T * d * sizeof(float));
    for (uint32_t e = 0; e < E; e++) {
        const uint32_t a = st->off[e], b = st->off[e + 1], cnt = b - a;
        if (cnt == 0)
            continue;
        bool contiguous = true;
        for (uint32_t j = 0; j < cnt; j++)
            if (st->gtok[a + j] != (int32_t)j) {
                contiguous = false;
                break;
            }
        const float *X = st->h;
        if (!contiguous) {
            for (uint32_t j = 0; j < cnt; j++)
                memcpy(st->xg + (size_t)j * d, st->h + (size_t)st->gtok[a + j] * d,
                       (size_t)d * sizeof(float));
            X = st->xg;
        }
        TRY(swiglu(st, &ly->ffn_gate_exps, &ly->ffn_up_exps, &ly->ffn_down_exps, e, st->n_exp_ff,
                   X, cnt, st->dg, err));
        for (uint32_t j = 0; j < cnt; j++)
            ds_axpy_f32(st->tmp + (size_t)st->gtok[a + j] * d, st->gw[a + j],
                        st->dg + (size_t)j * d, d);
    }
    return DS_OK;
}

/* Router logits in f32: rl[t][e] = dot(dequant(gate_inp row e), h[t]). */
static ds_status router_logits(ds2_state *st, const ds_weight *gw, uint32_t T, ds_err *err)
{
    const uint32_t d = st->d, E = st->E;
    const bool f32 = gw->type == 0;
    int bad = 0;
    const bool par = st->nt > 1 && (double)E * d * T >= PAR_MIN_WORK;
    (void)par; /* only read by OpenMP */
#pragma omp parallel for schedule(static) num_threads(st->nt) reduction(| : bad) if (par)
    for (int64_t e = 0; e < (int64_t)E; e++) {
        const void *src = (const uint8_t *)gw->data + (size_t)e * gw->row_bytes;
        const float *row;
        if (f32) {
            row = src;
        } else {
#ifdef _OPENMP
            float *buf = st->rrow + (size_t)omp_get_thread_num() * d;
#else
            float *buf = st->rrow;
#endif
            if (!ds_dequant_row(gw->type, src, buf, d)) {
                bad |= 1;
                continue;
            }
            row = buf;
        }
        for (uint32_t t = 0; t < T; t++)
            st->rl[(size_t)t * E + e] = ds_dot_f32(row, st->h + (size_t)t * d, d);
    }
    if (bad)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "deepseek2: router tensor %s has type %u",
                          gw->name ? gw->name : "ffn_gate_inp", gw->type);
    return DS_OK;
}

static ds_status ffn(ds2_state *st, uint32_t l, uint32_t T, ds_err *err)
{
    const ds2_layer *ly = &st->md->w.layers[l];
    const ds2_lstate *ls = &st->ls[l];
    const uint32_t d = st->d;
    const float eps = st->hp->rms_eps;

    for (uint32_t t = 0; t < T; t++)
        ds_rmsnorm(st->h + (size_t)t * d, st->x + (size_t)t * d, ls->ffn_norm, d, eps);

    if (!ly->is_moe) {
        TRY(swiglu(st, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down, 0, ls->ff_width, st->h, T,
                   st->tmp, err));
        for (uint32_t t = 0; t < T; t++)
            ds_axpy_f32(st->x + (size_t)t * d, 1.0f, st->tmp + (size_t)t * d, d);
        return DS_OK;
    }

    /* routing */
    const uint32_t E = st->E, k = st->k_used;
    TRY(router_logits(st, &ly->ffn_gate_inp, T, err));
    ds_router r = st->router;
    r.bias = ls->exp_bias;
    ds_router_select_batch(&r, st->rl, E, T, st->ids, st->wts, st->rscr);
    if (!ds_moe_group_tokens(st->ids, st->wts, T, k, E, st->off, st->gtok, st->gw))
        return ds_err_set(err, DS_ERR_INTERNAL, "deepseek2: router produced a bad expert id");

    if (st->jobs && T <= st->moe_tmax) {
        TRY(moe_jobs(st, l, T, err));
        for (uint32_t t = 0; t < T; t++)
            ds_axpy_f32(st->x + (size_t)t * d, 1.0f, st->tmp + (size_t)t * d, d);
        return DS_OK;
    }

    /* routed experts */
    TRY(st->xa ? moe_tasks(st, l, T, err) : moe_serial(st, l, T, err));

    /* shared expert (no gate) */
    if (ls->sh_width) {
        TRY(swiglu(st, &ly->ffn_gate_shexp, &ly->ffn_up_shexp, &ly->ffn_down_shexp, 0,
                   ls->sh_width, st->h, T, st->dg, err));
        for (uint32_t t = 0; t < T; t++)
            ds_axpy_f32(st->tmp + (size_t)t * d, 1.0f, st->dg + (size_t)t * d, d);
    }
    for (uint32_t t = 0; t < T; t++)
        ds_axpy_f32(st->x + (size_t)t * d, 1.0f, st->tmp + (size_t)t * d, d);
    return DS_OK;
}

static bool aborted(const ds2_state *st)
{
    return st->p.abort_fn && st->p.abort_fn(st->p.abort_user_data);
}

/* One chunk of T <= n_batch tokens. out: NULL, or the logits of the rows [out_row0, T) written
 * to out (row r of the chunk at out + (r - out_row0) * n_vocab). */
static ds_status run_chunk(ds2_state *st, const int32_t *tokens, uint32_t T, float *out,
                           uint32_t out_row0, ds_err *err)
{
    const uint32_t d = st->d;
    const uint32_t p0 = ds_kv_pos(st->kv);
    const ds_weight *emb = &st->md->w.token_embd;

    TRY(ds_kv_check_room(st->kv, T, err));
    for (uint32_t t = 0; t < T; t++) {
        const void *row = (const uint8_t *)emb->data + (size_t)tokens[t] * emb->row_bytes;
        if (!ds_dequant_row(emb->type, row, st->x + (size_t)t * d, d))
            return ds_err_set(err, DS_ERR_UNSUPPORTED, "deepseek2: token_embd type %u", emb->type);
        if (st->d_r)
            ds_rope_cos_sin(&st->rope, p0 + t, st->cs + (size_t)t * st->d_r);
    }

    for (uint32_t l = 0; l < st->hp->n_layer; l++) {
        if (aborted(st))
            return ds_err_set(err, DS_ERR_CANCELLED, "deepseek2: cancelled at layer %u", l);
        TRY(mla(st, l, p0, T, err));
        TRY(ffn(st, l, T, err));
    }

    if (out) {
        const uint32_t n = T - out_row0;
        for (uint32_t r = 0; r < n; r++)
            ds_rmsnorm(st->h + (size_t)r * d, st->x + (size_t)(out_row0 + r) * d, st->output_norm,
                       d, st->hp->rms_eps);
        MMJ(&st->md->w.output, 0, st->h, n, d, out, st->n_vocab);
    }
    return ds_kv_commit(st->kv, p0 + T, err);
}

ds_status ds2_forward(ds2_state *st, const int32_t *tokens, uint32_t n, float *logits,
                      bool all_logits, ds_err *err)
{
    if (!st || (n > 0 && !tokens))
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: NULL state or tokens");
    if (n == 0)
        return DS_OK;
    TRY(ds_kv_check_room(st->kv, n, err));
    const int64_t n_rows = st->md->w.token_embd.ne[1];
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_rows)
            return ds_err_set(err, DS_ERR_INVALID_ARG,
                              "deepseek2: token %d at index %u is outside the vocabulary (%lld)",
                              tokens[i], i, (long long)n_rows);

    const uint32_t B = st->p.n_batch;
    for (uint32_t c0 = 0; c0 < n; c0 += B) {
        const uint32_t T = n - c0 < B ? n - c0 : B;
        const bool last = c0 + T == n;
        if (c0 > 0 && aborted(st))
            return ds_err_set(err, DS_ERR_CANCELLED, "deepseek2: cancelled after %u tokens", c0);
        float *out = NULL;
        uint32_t row0 = 0;
        if (logits && all_logits) {
            out = logits + (size_t)c0 * st->n_vocab;
        } else if (logits && last) {
            out = logits;
            row0 = T - 1;
        }
        ds_status s = run_chunk(st, tokens + c0, T, out, row0, err);
        if (s != DS_OK)
            return s;
    }
    return DS_OK;
}

/* ---- batched decode ------------------------------------------------------------------------ */

/* One token for each of T states (T <= n_batch of the compute state c, which is bst[0]). */
static ds_status run_batch_chunk(ds2_state *c, ds2_state *const *bst, const int32_t *tokens,
                                 uint32_t T, float *out, ds_err *err)
{
    const uint32_t d = c->d;
    const ds_weight *emb = &c->md->w.token_embd;
    for (uint32_t t = 0; t < T; t++) {
        const void *row = (const uint8_t *)emb->data + (size_t)tokens[t] * emb->row_bytes;
        if (!ds_dequant_row(emb->type, row, c->x + (size_t)t * d, d))
            return ds_err_set(err, DS_ERR_UNSUPPORTED, "deepseek2: token_embd type %u", emb->type);
        if (c->d_r)
            ds_rope_cos_sin(&c->rope, ds_kv_pos(bst[t]->kv), c->cs + (size_t)t * c->d_r);
    }
    ds_status s = DS_OK;
    c->bst = bst;
    for (uint32_t l = 0; l < c->hp->n_layer && s == DS_OK; l++) {
        for (uint32_t t = 0; t < T; t++)
            if (aborted(bst[t])) {
                s = ds_err_set(err, DS_ERR_CANCELLED,
                               "deepseek2: batch cancelled at layer %u (sequence %u)", l, t);
                break;
            }
        if (s == DS_OK)
            s = mla(c, l, 0, T, err);
        if (s == DS_OK)
            s = ffn(c, l, T, err);
    }
    c->bst = NULL;
    if (s != DS_OK)
        return s;
    if (out) {
        ds2_state *st = c; /* for MM */
        for (uint32_t r = 0; r < T; r++)
            ds_rmsnorm(st->h + (size_t)r * d, st->x + (size_t)r * d, st->output_norm, d,
                       st->hp->rms_eps);
        MMJ(&st->md->w.output, 0, st->h, T, d, out, st->n_vocab);
    }
    for (uint32_t t = 0; t < T; t++)
        TRY(ds_kv_commit(bst[t]->kv, ds_kv_pos(bst[t]->kv) + 1, err));
    return DS_OK;
}

ds_status ds2_forward_batch(ds2_state *const *states, const int32_t *tokens, uint32_t n,
                            float *logits, ds_err *err)
{
    if (!states || (n > 0 && !tokens))
        return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: NULL states or tokens");
    if (n == 0)
        return DS_OK;
    ds2_state *c = states[0];
    for (uint32_t i = 0; i < n; i++) {
        const ds2_state *st = states[i];
        if (!st)
            return ds_err_set(err, DS_ERR_INVALID_ARG, "deepseek2: batch state %u is NULL", i);
        if (st->md != c->md)
            return ds_err_set(err, DS_ERR_INVALID_ARG,
                              "deepseek2: batch state %u belongs to another model", i);
        for (uint32_t j = 0; j < i; j++)
            if (states[j] == st)
                return ds_err_set(err, DS_ERR_INVALID_ARG,
                                  "deepseek2: state %u appears twice in the batch (%u and %u)",
                                  i, j, i);
        TRY(ds_kv_check_room(st->kv, 1, err));
        if (tokens[i] < 0 || tokens[i] >= c->md->w.token_embd.ne[1])
            return ds_err_set(err, DS_ERR_INVALID_ARG,
                              "deepseek2: token %d of batch sequence %u is outside the "
                              "vocabulary (%lld)",
                              tokens[i], i, (long long)c->md->w.token_embd.ne[1]);
    }
    /* the compute state's scratch holds n_batch rows: larger batches run in groups (each group
     * commits its states; a failure in a later group leaves the earlier groups advanced) */
    const uint32_t B = c->p.n_batch;
    for (uint32_t g = 0; g < n; g += B) {
        const uint32_t T = n - g < B ? n - g : B;
        TRY(run_batch_chunk(c, states + g, tokens + g, T,
                            logits ? logits + (size_t)g * c->n_vocab : NULL, err));
    }
    return DS_OK;
}
