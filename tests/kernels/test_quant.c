/*
 * tests/kernels/test_quant.c — the quantized block types Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K (lib/kernels/q_legacy.c, q_k.c) and their activation formats Q8_1 / Q8_K,
 * at every ISA level this CPU has, against the independent decoders of kref_quants.h.
 *
 * Dequantization: bit-exact (f32 and bf16; +0 and -0 compare equal) on random blocks with wild
 * f16 scales (zero, -0, subnormal, largest finite, negative), byte patterns 00/FF/55AA, and
 * every value of every scale/min byte (Q2_K, Q3_K, Q4_K/Q5_K 12-byte packing, Q6_K i8 scales).
 *
 * Products, with x in [-2, 2] and tau = sum_e mag_e |x_e| (mag: kref_quants.h term bound):
 *   f32 activations: |y - sum w x| <= 1e-5 tau.
 *   quantized activations, x~ = the dequantized activation the kernel was given:
 *     exact arithmetic:  |y - sum w x~| <= 1e-5 tau~   (int32 block sums are exact; only the
 *                        f32 scaling and summation round)
 *     against f32 x:     |y - sum w x| <= 1e-5 tau + sum_e |w_e| err_e with
 *       Q8_1 (legacy types, 32-blocks): err_e = amax/127 * (1/2 + 127 * 2^-11) (rounding to the
 *         nearest step plus the f16 rounding of the scale; kr_q8_bound);
 *       Q8_K (K-quants, 256-blocks): err_e = amax/127 * (1/2 + 1e-5) + |x_e| 2^-22 (nearest
 *         step of the f32 scale 1/iscale, plus the f32 rounding of iscale, iscale*x and 1/iscale).
 *   Batches (oneDNN): f32 tiles 1e-5 tau; bf16 tiles (FAST on AVX512_BF16) 1e-2 sum |w x|.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include "kref_quants.h"

static bool same_f32(float a, float b)
{
    return a == b && !isnan(a);   /* +0 == -0 */
}

static bool same_bf16(uint16_t a, uint16_t b)
{
    return a == b || ((a & 0x7FFF) == 0 && (b & 0x7FFF) == 0);
}

/* Dequantize `nblk` blocks of type t at every level and compare with the reference. */
static void check_dequant(uint32_t t, const uint8_t *blocks, int64_t nblk, const char *what)
{
    int be = kq_block_elems(t), bb = kq_block_bytes(t);
    int64_t n = nblk * be;
    double *ref = malloc(sizeof(double) * n);
    float *out = malloc(sizeof(float) * n);
    uint16_t *o16 = malloc(sizeof(uint16_t) * n);
    for (int64_t b = 0; b < nblk; b++)
        kq_ref_decode(t, blocks + b * bb, ref + b * be, NULL);
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        memset(out, 0xFF, sizeof(float) * n);
        assert_true(ds_dequant_row_isa((ds_isa)isa, t, blocks, out, n));
        for (int64_t i = 0; i < n; i++)
            if (!same_f32(out[i], (float)ref[i])) {
                const uint8_t *blk = blocks + (i / be) * bb;
                fail_msg("%s %s isa %s: element %lld (block %lld, e %lld) = %.9g, want %.9g "
                         "(block bytes %02x %02x %02x %02x ...)", kq_name(t), what,
                         ds_isa_name((ds_isa)isa), (long long)i, (long long)(i / be),
                         (long long)(i % be), out[i], ref[i], blk[0], blk[1], blk[2], blk[3]);
            }
        memset(o16, 0xFF, sizeof(uint16_t) * n);
        assert_true(ds_dequant_row_bf16_isa((ds_isa)isa, t, blocks, o16, n));
        for (int64_t i = 0; i < n; i++)
            if (!same_bf16(o16[i], kr_ref_bf16((float)ref[i])))
                fail_msg("%s %s isa %s: bf16 element %lld = %04x, want %04x", kq_name(t), what,
                         ds_isa_name((ds_isa)isa), (long long)i, o16[i],
                         kr_ref_bf16((float)ref[i]));
    }
    free(ref);
    free(out);
    free(o16);
}

static void test_types_registered(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        uint32_t t = kq_all_types[ti];
        const ds_type_kernels *tk = ds_type_kernels_get(t);
        assert_non_null(tk);
        assert_int_equal(tk->block_elems, (uint32_t)kq_block_elems(t));
        assert_int_equal(tk->block_bytes, (uint32_t)kq_block_bytes(t));
        assert_int_equal(tk->block_bytes, ds_ggml_type_get(t)->block_bytes);
        assert_int_equal(tk->act, t >= KQ_Q2_K ? DS_ACT_Q8_K : DS_ACT_Q8_1);
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            assert_non_null(ds_pick_to_f32(tk, (ds_isa)isa));
            assert_non_null(ds_pick_to_bf16(tk, (ds_isa)isa));
            assert_non_null(ds_pick_gemv_f32(tk, (ds_isa)isa));
            assert_non_null(ds_pick_gemv_q8(tk, (ds_isa)isa));
        }
        float out[256];
        uint8_t zero[256] = {0};
        assert_false(ds_dequant_row(t, zero, out, kq_block_elems(t) + 16));   /* not a block */
    }
}

/* Random blocks: wild f16 scales, random bytes, and every 7th block a byte pattern. */
static void test_dequant_random(void **state)
{
    (void)state;
    kr_rng r = {17};
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        uint32_t t = kq_all_types[ti];
        int64_t nblk = t >= KQ_Q2_K ? 600 : 4000;
        int bb = kq_block_bytes(t);
        uint8_t *blocks = malloc((size_t)nblk * bb);
        for (int64_t b = 0; b < nblk; b++)
            kq_rand_block(&r, t, blocks + b * bb, 1, b % 7 == 3 ? (int)(1 + b % 3) : 0);
        check_dequant(t, blocks, nblk, "random");
        /* odd lengths of whole blocks, and the public entry point */
        for (int64_t nb = 1; nb <= 5; nb += 2)
            check_dequant(t, blocks + bb, nb, "short");
        float *out = malloc(sizeof(float) * 256 * 3);
        assert_true(ds_dequant_row(t, blocks, out, 3 * kq_block_elems(t)));
        free(out);
        free(blocks);
    }
}

/* Every value 0..255 of each scale/min byte (the rest random), and special f16 pairs. */
static void test_dequant_fields(void **state)
{
    (void)state;
    struct { uint32_t t; int first, count; } fields[] = {
        {KQ_Q2_K, 0, 16},    /* 4-bit scale | 4-bit min */
        {KQ_Q3_K, 96, 12},   /* 6-bit signed scales */
        {KQ_Q4_K, 4, 12},    /* 6-bit scales and mins */
        {KQ_Q5_K, 4, 12},
        {KQ_Q6_K, 192, 16},  /* i8 scales */
        {KQ_Q5_K, 16, 4},    /* qh bytes (fifth bits of every sub-block) */
        {KQ_Q3_K, 0, 4},     /* hmask bytes */
        {KQ_Q5_0, 2, 4},     /* qh */
        {KQ_Q5_1, 4, 4},
    };
    kr_rng r = {23};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        uint32_t t = fields[f].t;
        int bb = kq_block_bytes(t);
        uint8_t *blocks = malloc((size_t)256 * bb);
        for (int pos = fields[f].first; pos < fields[f].first + fields[f].count; pos++) {
            for (int v = 0; v < 256; v++) {
                uint8_t *blk = blocks + v * bb;
                kq_rand_block(&r, t, blk, 0, 0);
                blk[pos] = (uint8_t)v;
            }
            char what[48];
            snprintf(what, sizeof what, "byte %d all values", pos);
            check_dequant(t, blocks, 256, what);
        }
        free(blocks);
    }
    /* f16 scales: every pair from a list of special values */
    static const uint16_t sp[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400,
                                  0x7BFF, 0xFBFF, 0x3C00, 0xB800, 0x1234};
    const int ns = (int)(sizeof sp / sizeof sp[0]);
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        uint32_t t = kq_all_types[ti];
        int bb = kq_block_bytes(t), d_off, m_off;
        kq_f16_fields(t, &d_off, &m_off);
        uint8_t *blocks = malloc((size_t)ns * ns * bb);
        for (int i = 0; i < ns; i++)
            for (int j = 0; j < ns; j++) {
                uint8_t *blk = blocks + (i * ns + j) * bb;
                kq_rand_block(&r, t, blk, 0, (i + j) % 4);
                kq_put_f16(blk + d_off, sp[i]);
                if (m_off >= 0)
                    kq_put_f16(blk + m_off, sp[j]);
            }
        check_dequant(t, blocks, ns * ns, "special f16");
        free(blocks);
    }
}

/* ---- activation quantization ---------------------------------------------------------- */

static void test_act_q8k(void **state)
{
    (void)state;
    enum { NB = 40, K = 256 * NB };
    static float x[K];
    static int8_t q[DS_ISA_COUNT][K];
    static float d[DS_ISA_COUNT][NB];
    static int16_t bs[DS_ISA_COUNT][K / 16];
    kr_rng r = {31};
    for (int i = 0; i < K; i++)
        x[i] = kr_uniform(&r) * (float)ldexp(1.0, (int)(i / 256 % 24) - 12);
    for (int i = 256; i < 512; i++)
        x[i] = 0.0f;                                  /* block 1: all zero */
    for (int i = 512; i < 768; i++)
        x[i] = 0.0f;
    x[600] = -3.0f;                                   /* block 2: a single negative value */
    x[800] = -1.5f;                                   /* block 3: -amax before +amax */
    x[900] = 1.5f;
    x[1100] = 2.5f;                                   /* block 4: +amax before -amax */
    x[1200] = -2.5f;
    x[1300] = 1e30f;                                  /* block 5: huge */
    for (int i = 1536; i < 1792; i++)                 /* block 6: f32 subnormals only */
        x[i] = (float)ldexp(kr_uniform(&r), -130);
    for (int i = 1792; i < 2048; i++)                 /* block 7: halves (rounding ties) */
        x[i] = (float)((int)(i % 64) - 32) * 0.5f;
    x[1792] = 127.0f;
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++)
        ds_quantize_act_q8k((ds_isa)isa, x, q[isa], d[isa], bs[isa], K);
    for (int b = 0; b < NB; b++) {
        const float *xb = x + 256 * b;
        /* the reference of formats.md §2.5, in the same f32 operations */
        float amax = 0, max = 0;
        for (int i = 0; i < 256; i++)
            if (fabsf(xb[i]) > amax) {
                amax = fabsf(xb[i]);
                max = xb[i];
            }
        float iscale = max != 0.0f ? -127.0f / max : 0.0f;
        bool zero = max == 0.0f || !isfinite(iscale);
        float want_d = zero ? 0.0f : 1.0f / iscale;
        if (kr_bits(d[0][b]) != kr_bits(want_d))
            fail_msg("block %d: d = %a, want %a", b, (double)d[0][b], (double)want_d);
        if (!zero)
            assert_true((d[0][b] < 0) == (max > 0));   /* negative when max > 0 */
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) {
                int j = 16 * g + i;
                int want = 0;
                if (!zero) {
                    float v = iscale * xb[j];
                    double fl = floor((double)v), fr = (double)v - fl;
                    double rv = fr > 0.5 ? fl + 1 : fr < 0.5 ? fl : (fmod(fl, 2.0) == 0 ? fl : fl + 1);
                    want = rv > 127 ? 127 : (int)rv;
                    /* |x - d q| <= |d|/2 (1 + 1e-5) + |x| 2^-22 */
                    double err = fabs((double)xb[j] - (double)d[0][b] * q[0][256 * b + j]);
                    if (err > fabs((double)d[0][b]) * 0.5 * (1 + 1e-5) + fabs(xb[j]) * 0x1p-22)
                        fail_msg("block %d elem %d: x %g q %d d %g", b, j, xb[j],
                                 q[0][256 * b + j], d[0][b]);
                }
                if (q[0][256 * b + j] != want)
                    fail_msg("block %d elem %d: q %d, want %d (x %a)", b, j, q[0][256 * b + j],
                             want, (double)xb[j]);
                assert_true(q[0][256 * b + j] >= -127);
                sum += want;
            }
            assert_int_equal(bs[0][16 * b + g], sum);
        }
    }
    assert_true(d[0][1] == 0.0f && d[0][6] == 0.0f);
    /* the max element always becomes -127 (iscale = -127/max), d carries the sign */
    assert_true(d[0][2] > 0 && q[0][600] == -127);                /* max = -3 */
    assert_true(d[0][3] > 0 && q[0][800] == -127 && q[0][900] == 127);
    assert_true(d[0][4] < 0 && q[0][1100] == -127 && q[0][1200] == 127);
    for (int isa = 1; isa <= (int)ds_isa_best(); isa++) {
        assert_memory_equal(q[isa], q[0], sizeof q[0]);
        assert_memory_equal(d[isa], d[0], sizeof d[0]);
        assert_memory_equal(bs[isa], bs[0], sizeof bs[0]);
    }
}

static void test_act_q8_1(void **state)
{
    (void)state;
    enum { K = 32 * 45 };
    static float x[K], xd0[K / 32], xd[K / 32], xs[K / 32];
    static int8_t q0[K], q[K];
    kr_rng r = {37};
    for (int i = 0; i < K; i++)
        x[i] = kr_uniform(&r) * (float)ldexp(1.0, (int)(i / 32 % 16) - 8);
    for (int i = 64; i < 96; i++)
        x[i] = 0.0f;
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        ds_quantize_act_q8((ds_isa)isa, x, q0, xd0, K);
        ds_quantize_act_q8_1((ds_isa)isa, x, q, xd, xs, K);
        assert_memory_equal(q, q0, K);                       /* Q8_0 quants and scales */
        assert_memory_equal(xd, xd0, sizeof xd);
        for (int b = 0; b < K / 32; b++) {
            int sum = 0;
            for (int i = 0; i < 32; i++)
                sum += q[32 * b + i];
            assert_true((double)xs[b] == (double)xd[b] * sum);   /* exact */
        }
    }
    /* ds_qact_quantize lays out rows consistently with ds_qact_rows */
    const ds_act_kind kinds[] = {DS_ACT_Q8_0, DS_ACT_Q8_1, DS_ACT_Q8_K};
    enum { M = 3, KK = 512, LDX = 520 };
    static float X[M * LDX];
    for (int i = 0; i < M * LDX; i++)
        X[i] = kr_uniform(&r);
    for (int ki = 0; ki < 3; ki++) {
        size_t sz = ds_qact_size(kinds[ki], M, KK);
        void *buf = aligned_alloc(64, (sz + 63) & ~(size_t)63);
        ds_qact a;
        ds_qact_quantize(ds_isa_best(), kinds[ki], X, M, LDX, KK, buf, &a);
        assert_true((const char *)a.q + M * KK <= (const char *)buf + sz);
        for (int m = 0; m < M; m++) {
            ds_qact row = ds_qact_rows(&a, KK, m);
            int8_t qq[KK];
            float dd[KK / 32], ss[KK / 32];
            int16_t bb[KK / 16];
            if (kinds[ki] == DS_ACT_Q8_K) {
                ds_quantize_act_q8k(ds_isa_best(), X + m * LDX, qq, dd, bb, KK);
                assert_memory_equal(row.bsums, bb, sizeof(int16_t) * KK / 16);
                assert_memory_equal(row.d, dd, sizeof(float) * KK / 256);
                assert_null(row.s);
            } else {
                ds_quantize_act_q8_1(ds_isa_best(), X + m * LDX, qq, dd, ss, KK);
                assert_memory_equal(row.d, dd, sizeof(float) * KK / 32);
                if (kinds[ki] == DS_ACT_Q8_1)
                    assert_memory_equal(row.s, ss, sizeof(float) * KK / 32);
                else
                    assert_null(row.s);
                assert_null(row.bsums);
            }
            assert_memory_equal(row.q, qq, KK);
        }
        free(buf);
    }
}

/* ---- products -------------------------------------------------------------------------- */

typedef struct qw {          /* a quantized test weight and its reference */
    ds_weight w;
    uint8_t *data;
    double *ref, *mag;       /* n_exp * N * K */
} qw;

static void qw_make(qw *t, uint32_t type, int64_t K, int64_t N, int64_t n_exp, uint64_t seed)
{
    kr_rng r = {seed};
    size_t rb = (size_t)(K / kq_block_elems(type)) * kq_block_bytes(type);
    t->data = malloc(rb * N * n_exp + 64);
    t->ref = malloc(sizeof(double) * K * N * n_exp);
    t->mag = malloc(sizeof(double) * K * N * n_exp);
    kq_fill_rows(&r, type, N * n_exp, K, t->data, rb, t->ref, t->mag);
    t->w = (ds_weight){.name = "blk.2.ffn_down_exps.weight", .type = type,
                       .ne = {K, N, n_exp, 1}, .row_bytes = rb, .nbytes = rb * N * n_exp,
                       .data = t->data};
}

static void qw_free(qw *t)
{
    free(t->data);
    free(t->ref);
    free(t->mag);
}

/* sum w x in double, tau = sum mag |x|, amag = sum |w x| */
static void ref_dot(const double *w, const double *mag, const float *x, int64_t K, double *dot,
                    double *tau, double *amag)
{
    double s = 0, t = 0, a = 0;
    for (int64_t i = 0; i < K; i++) {
        s += w[i] * x[i];
        t += mag[i] * fabs(x[i]);
        a += fabs(w[i] * x[i]);
    }
    *dot = s;
    *tau = t;
    *amag = a;
}

/* Error bound of the activation quantization of one row (see the header). */
static double act_bound(ds_act_kind kind, const double *w, const float *x, int64_t K)
{
    if (kind != DS_ACT_Q8_K)
        return kr_q8_bound(w, x, K);
    double bound = 0;
    for (int64_t b = 0; b < K / 256; b++) {
        double amax = 0;
        for (int i = 0; i < 256; i++)
            amax = fmax(amax, fabs(x[256 * b + i]));
        for (int i = 0; i < 256; i++)
            bound += fabs(w[256 * b + i]) *
                     (amax / 127.0 * (0.5 + 1e-5) + fabs(x[256 * b + i]) * 0x1p-22);
    }
    return bound;
}

/* The dequantized activation of row m of a ds_qact. */
static void act_dequant(ds_act_kind kind, const ds_qact *a, int64_t K, int m, float *out)
{
    ds_qact row = ds_qact_rows(a, K, m);
    int bs = kind == DS_ACT_Q8_K ? 256 : 32;
    for (int64_t i = 0; i < K; i++)
        out[i] = row.d[i / bs] * row.q[i];   /* exact: an integer times the scale */
}

static void check_row_kernels(uint32_t type, int64_t K, int64_t N, int nx, kr_rng *r)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    qw t;
    qw_make(&t, type, K, N, 1, 1000 + (uint64_t)K + type);
    int64_t ldx = K + 5, ldy = N + 3;
    float *x = malloc(sizeof(float) * nx * ldx), *xt = malloc(sizeof(float) * K);
    float *y = malloc(sizeof(float) * (nx * ldy + 1));
    for (int64_t i = 0; i < nx * ldx; i++)
        x[i] = kr_uniform(r) * 2.0f;
    size_t qsz = ds_qact_size(tk->act, nx, K);
    void *qbuf = aligned_alloc(64, (qsz + 63) & ~(size_t)63);
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        for (int64_t i = 0; i <= nx * ldy; i++)
            y[i] = -1.0f;
        ds_pick_gemv_f32(tk, (ds_isa)isa)(t.data, t.w.row_bytes, N, K, x, ldx, nx, y, ldy);
        for (int m = 0; m < nx; m++) {
            for (int64_t n = 0; n < N; n++) {
                double want, tau, amag;
                ref_dot(t.ref + n * K, t.mag + n * K, x + m * ldx, K, &want, &tau, &amag);
                if (!(fabs(y[m * ldy + n] - want) <= 1e-5 * tau + 1e-30))
                    fail_msg("%s K=%lld nx=%d isa %s f32: y[%d][%lld] = %.9g, want %.9g "
                             "(tau %.3g)", kq_name(type), (long long)K, nx,
                             ds_isa_name((ds_isa)isa), m, (long long)n, y[m * ldy + n], want,
                             tau);
            }
            assert_true(y[m * ldy + N] == -1.0f);
        }
        ds_qact xa;
        ds_qact_quantize((ds_isa)isa, tk->act, x, nx, ldx, K, qbuf, &xa);
        ds_pick_gemv_q8(tk, (ds_isa)isa)(t.data, t.w.row_bytes, N, K, &xa, nx, y, ldy);
        for (int m = 0; m < nx; m++) {
            act_dequant(tk->act, &xa, K, m, xt);
            for (int64_t n = 0; n < N; n++) {
                double got = y[m * ldy + n], want, tau, amag, want_t, tau_t, amag_t;
                ref_dot(t.ref + n * K, t.mag + n * K, x + m * ldx, K, &want, &tau, &amag);
                ref_dot(t.ref + n * K, t.mag + n * K, xt, K, &want_t, &tau_t, &amag_t);
                if (!(fabs(got - want_t) <= 1e-5 * tau_t + 1e-30))
                    fail_msg("%s K=%lld nx=%d isa %s int8: y[%d][%lld] = %.9g, exact product "
                             "with the quantized x %.9g (tau %.3g)", kq_name(type),
                             (long long)K, nx, ds_isa_name((ds_isa)isa), m, (long long)n, got,
                             want_t, tau_t);
                double bound = 1e-5 * tau + act_bound(tk->act, t.ref + n * K, x + m * ldx, K);
                if (!(fabs(got - want) <= bound))
                    fail_msg("%s K=%lld nx=%d isa %s int8: y[%d][%lld] = %.9g vs f32 x %.9g "
                             "(bound %.3g)", kq_name(type), (long long)K, nx,
                             ds_isa_name((ds_isa)isa), m, (long long)n, got, want, bound);
            }
            assert_true(y[m * ldy + N] == -1.0f);
        }
        /* one activation row at a time (the decode kernels) gives the same bits as the row's
         * place in a multi-row call */
        for (int m = 0; m < nx && nx > 1; m++) {
            float *y1 = malloc(sizeof(float) * N);
            ds_qact xm = ds_qact_rows(&xa, K, m);
            ds_pick_gemv_q8(tk, (ds_isa)isa)(t.data, t.w.row_bytes, N, K, &xm, 1, y1, N);
            assert_memory_equal(y1, y + m * ldy, sizeof(float) * N);
            free(y1);
        }
    }
    free(qbuf);
    free(x);
    free(xt);
    free(y);
    qw_free(&t);
}

/* The one-row decode kernels (four weight-row streams, two blocks per 512-bit vector) against
 * every row of two- and four-row calls (the same activation row), bit for bit, on a large matrix: many streams' worth of rows (N not a
 * multiple of 4) and long rows, where the per-block scale and correction sums of every type
 * accumulate over many blocks (check_row_kernels' 19 rows catch fewer rounding paths). */
static void test_row_bits_large(void **state)
{
    (void)state;
    kr_rng r = {43};
    /* 2 and 4 rows: Q4_K's batched VNNI kernel copies up to 8192 activation bytes to its stack
     * (2 x 4096 here) and reads more in place (4 x 4096) */
    const int nxs[] = {2, 4};
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        const uint32_t type = kq_all_types[ti];
        const ds_type_kernels *tk = ds_type_kernels_get(type);
        const int64_t K = type >= KQ_Q2_K ? 4096 : 1440, N = 1003;
        qw t;
        qw_make(&t, type, K, N, 1, 77 + type);
        float *x = malloc(sizeof(float) * 4 * K);
        float *y1 = malloc(sizeof(float) * N), *yn = malloc(sizeof(float) * 4 * N);
        for (int64_t i = 0; i < K; i++)
            x[i] = x[K + i] = x[2 * K + i] = x[3 * K + i] = kr_uniform(&r) * 2.0f;
        void *qbuf = aligned_alloc(64, (ds_qact_size(tk->act, 4, K) + 63) & ~(size_t)63);
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            for (size_t ni = 0; ni < sizeof nxs / sizeof nxs[0]; ni++) {
                const int nx = nxs[ni];
                ds_qact xa;
                ds_qact_quantize((ds_isa)isa, tk->act, x, nx, K, K, qbuf, &xa);
                ds_pick_gemv_q8(tk, (ds_isa)isa)(t.data, t.w.row_bytes, N, K, &xa, nx, yn, N);
                ds_qact x1 = ds_qact_rows(&xa, K, 0);
                ds_pick_gemv_q8(tk, (ds_isa)isa)(t.data, t.w.row_bytes, N, K, &x1, 1, y1, N);
                for (int m = 0; m < nx; m++)
                    for (int64_t n = 0; n < N; n++)
                        if (memcmp(&y1[n], &yn[m * N + n], sizeof(float)) != 0)
                            fail_msg("%s K=%lld isa %s: row %lld: one-row %.9g, row %d of %d "
                                     "%.9g",
                                     kq_name(type), (long long)K, ds_isa_name((ds_isa)isa),
                                     (long long)n, y1[n], m, nx, yn[m * N + n]);
            }
        }
        free(qbuf);
        free(x);
        free(y1);
        free(yn);
        qw_free(&t);
    }
}

static void test_row_kernels(void **state)
{
    (void)state;
    kr_rng r = {41};
    const int nxs[] = {1, 2, 3, 4, 5, 9};
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        uint32_t t = kq_all_types[ti];
        const int64_t ks_l[] = {32, 96, 1056}, ks_k[] = {256, 768, 2560};
        const int64_t *ks = t >= KQ_Q2_K ? ks_k : ks_l;
        for (int ki = 0; ki < 3; ki++)
            for (int ni = 0; ni < 6; ni++)
                if (ki < 2 || nxs[ni] <= 4)
                    check_row_kernels(t, ks[ki], 19, nxs[ni], &r);
    }
}

/* Weights whose products have the largest intermediate values: max quants with max scales and
 * activations at +-amax (maddubs saturation, sign handling, int32 range). */
static void test_extremes(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
        uint32_t t = kq_all_types[ti];
        int be = kq_block_elems(t), bb = kq_block_bytes(t), d_off, m_off;
        int64_t K = 2 * (be == 32 ? 256 : 256);
        int64_t nblk = K / be;
        uint8_t *w = malloc((size_t)nblk * bb * 2);
        double *ref = malloc(sizeof(double) * K * 2), *mag = malloc(sizeof(double) * K * 2);
        kq_f16_fields(t, &d_off, &m_off);
        for (int row = 0; row < 2; row++)
            for (int64_t b = 0; b < nblk; b++) {
                uint8_t *blk = w + (row * nblk + b) * bb;
                memset(blk, row ? 0x00 : 0xFF, bb);   /* all quants/scales max (or min) */
                if (t == KQ_Q6_K && row)
                    memset(blk + 192, 0x80, 16);       /* i8 scales -128 */
                kq_put_f16(blk + d_off, 0x3C00);
                if (m_off >= 0)
                    kq_put_f16(blk + m_off, 0x3800);
                kq_ref_decode(t, blk, ref + row * K + b * be, mag + row * K + b * be);
            }
        float x[512], y[2], xt[512];
        const ds_type_kernels *tk = ds_type_kernels_get(t);
        size_t qsz = ds_qact_size(tk->act, 1, K);
        void *qbuf = aligned_alloc(64, (qsz + 63) & ~(size_t)63);
        /* mixed signs, then all equal: every activation quant -127, so each 4-element sum of
         * the VNNI kernels is at its extreme (4 * 63 * 127 for Q6_K) before the 16-bit
         * narrowing */
        for (int xp = 0; xp < 2; xp++)
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            for (int i = 0; i < K; i++)
                x[i] = (xp == 0 && i % 3 == 0) ? -1.0f : 1.0f;
            ds_qact xa;
            ds_qact_quantize((ds_isa)isa, tk->act, x, 1, K, K, qbuf, &xa);
            act_dequant(tk->act, &xa, K, 0, xt);
            ds_pick_gemv_q8(tk, (ds_isa)isa)(w, (size_t)nblk * bb, 2, K, &xa, 1, y, 1);
            for (int row = 0; row < 2; row++) {
                double want, tau, amag;
                ref_dot(ref + row * K, mag + row * K, xt, K, &want, &tau, &amag);
                if (!(fabs(y[row] - want) <= 1e-5 * tau))
                    fail_msg("%s extremes x%d row %d isa %s: %.9g vs %.9g", kq_name(t), xp, row,
                             ds_isa_name((ds_isa)isa), y[row], want);
            }
            ds_pick_gemv_f32(tk, (ds_isa)isa)(w, (size_t)nblk * bb, 2, K, x, K, 1, y, 1);
            for (int row = 0; row < 2; row++) {
                double want, tau, amag;
                ref_dot(ref + row * K, mag + row * K, x, K, &want, &tau, &amag);
                if (!(fabs(y[row] - want) <= 1e-5 * tau))
                    fail_msg("%s extremes f32 row %d isa %s: %.9g vs %.9g", kq_name(t), row,
                             ds_isa_name((ds_isa)isa), y[row], want);
            }
        }
        free(qbuf);
        free(w);
        free(ref);
        free(mag);
    }
}

/* ---- ds_mm --------------------------------------------------------------------------------- */

static void mm_check(ds_mm *mm, const qw *t, int64_t expert, int64_t n0, int64_t n1, int64_t M,
                     uint64_t seed)
{
    int64_t K = t->w.ne[0], N = t->w.ne[1], Nr = n1 - n0;
    int64_t ldx = K + 7, ldy = Nr + 2;
    float *X = malloc(sizeof(float) * M * ldx), *Y = malloc(sizeof(float) * (M * ldy + 1));
    kr_rng r = {seed};
    for (int64_t i = 0; i < M * ldx; i++)
        X[i] = kr_uniform(&r) * 2.0f;
    for (int64_t i = 0; i <= M * ldy; i++)
        Y[i] = NAN;
    ds_err err;
    ds_err_clear(&err);
    if (ds_mm_run_rows(mm, &t->w, expert, n0, n1, X, M, ldx, Y, ldy, &err) != DS_OK)
        fail_msg("ds_mm_run_rows: %s", err.msg);
    ds_mm_path path = ds_mm_path_of(mm, t->w.type, M);
    const ds_type_kernels *tk = ds_type_kernels_get(t->w.type);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < Nr; n++) {
            const double *wr = t->ref + ((expert * N) + n0 + n) * K;
            const double *mr = t->mag + ((expert * N) + n0 + n) * K;
            double want, tau, amag;
            ref_dot(wr, mr, X + m * ldx, K, &want, &tau, &amag);
            double tol = path == DS_MM_DNNL_BF16 ? 1e-2 * amag + 1e-5 * tau : 1e-5 * tau;
            if (path == DS_MM_GEMV_Q8)
                tol += act_bound(tk->act, wr, X + m * ldx, K);
            double got = Y[m * ldy + n];
            if (!(fabs(got - want) <= tol + 1e-30))
                fail_msg("%s M=%lld K=%lld rows [%lld,%lld) e=%lld isa=%s prec=%d path=%d: "
                         "Y[%lld][%lld] = %.9g, want %.9g (tol %.3g)", kq_name(t->w.type),
                         (long long)M, (long long)K, (long long)n0, (long long)n1,
                         (long long)expert, ds_isa_name(ds_mm_isa(mm)), ds_mm_precision(mm),
                         (int)path, (long long)m, (long long)n, got, want, tol);
        }
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = Nr; n < ldy && m * ldy + n < M * ldy; n++)
            if (!isnan(Y[m * ldy + n]))
                fail_msg("padding of Y written");
    assert_true(isnan(Y[M * ldy]));
    free(X);
    free(Y);
}

static void test_mm(void **state)
{
    (void)state;
    const int64_t Ms[] = {1, 3, 8, 9, 12, 13, 16, 17, 33};   /* around both GEMV bounds */
    int paths[4] = {0};
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        for (int isa = (int)ds_isa_best(); isa >= 0; isa--) {
            ds_mm_set_isa(mm, (ds_isa)isa);
            for (size_t ti = 0; ti < KQ_N_TYPES; ti++) {
                uint32_t t = kq_all_types[ti];
                int64_t K = t >= KQ_Q2_K ? 768 : 352, N = 70;
                qw w;
                qw_make(&w, t, K, N, 2, 300 + ti);
                for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
                    if (Ms[mi] >= 13 && isa + 1 < (int)ds_isa_best())
                        continue;   /* batches decide bf16 vs f32 only at the top levels */
                    paths[ds_mm_path_of(mm, t, Ms[mi])]++;
                    mm_check(mm, &w, 1, 0, N, Ms[mi], 10 + mi);
                }
                mm_check(mm, &w, 0, 5, N - 3, 2, 20);     /* a slice of rows, expert 0 */
                mm_check(mm, &w, 1, N - 1, N, 1, 21);     /* one row */
                assert_int_equal(ds_mm_path_of(mm, t, 1),
                                 prec == DS_PRECISION_FAST ? DS_MM_GEMV_Q8 : DS_MM_GEMV_F32);
                qw_free(&w);
            }
        }
        ds_mm_free(mm);
    }
    assert_true(paths[DS_MM_GEMV_F32] && paths[DS_MM_GEMV_Q8] && paths[DS_MM_DNNL_F32]);
    /* the per-type GEMV bounds */
    ds_mm *mm = NULL;
    ds_err err;
    assert_int_equal(ds_mm_create(&mm, 1, DS_PRECISION_FAST, &err), DS_OK);
    assert_int_equal(ds_mm_path_of(mm, KQ_Q4_K, 16), DS_MM_GEMV_Q8);
    assert_true(ds_mm_path_of(mm, KQ_Q4_K, 17) >= DS_MM_DNNL_F32);
    assert_int_equal(ds_mm_path_of(mm, KQ_Q4_0, 12), DS_MM_GEMV_Q8);
    assert_true(ds_mm_path_of(mm, KQ_Q4_0, 13) >= DS_MM_DNNL_F32);
    assert_int_equal(ds_mm_path_of(mm, DS_GGML_Q8_0, 8), DS_MM_GEMV_Q8);
    assert_true(ds_mm_path_of(mm, DS_GGML_Q8_0, 9) >= DS_MM_DNNL_F32);
    assert_int_equal(ds_mm_path_of(mm, DS_GGML_F16, 8), DS_MM_GEMV_F32);
    assert_true(ds_mm_path_of(mm, DS_GGML_F16, 9) >= DS_MM_DNNL_F32);
    ds_mm_free(mm);
}

/* Several dequantization tiles per matrix, and large enough to split GEMV rows across threads
 * (> 128 KB of weights). */
static void test_mm_tiles_threads(void **state)
{
    (void)state;
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        ds_mm_set_tile_bytes(mm, 40 << 10);
        const uint32_t types[] = {KQ_Q4_K, KQ_Q6_K, KQ_Q4_0, KQ_Q5_1};
        for (size_t ti = 0; ti < 4; ti++) {
            qw w;
            qw_make(&w, types[ti], 1024, 300, 1, 700 + ti);
            mm_check(mm, &w, 0, 0, 300, 20, 30);     /* tiles */
            mm_check(mm, &w, 0, 7, 290, 17, 31);     /* tiles of a slice */
            mm_check(mm, &w, 0, 0, 300, 11, 34);     /* GEMV, three groups of rows */
            mm_check(mm, &w, 0, 0, 300, 1, 32);      /* GEMV, two threads */
            mm_check(mm, &w, 0, 1, 299, 4, 33);
            qw_free(&w);
        }
        ds_mm_free(mm);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_registered),
        cmocka_unit_test(test_dequant_random),
        cmocka_unit_test(test_dequant_fields),
        cmocka_unit_test(test_act_q8k),
        cmocka_unit_test(test_act_q8_1),
        cmocka_unit_test(test_row_kernels),
        cmocka_unit_test(test_row_bits_large),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_mm),
        cmocka_unit_test(test_mm_tiles_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
