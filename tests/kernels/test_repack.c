/*
 * tests/kernels/test_repack.c — the R16 layout (lib/kernels/repack.c) of Q5_0, Q4_K and Q6_K:
 * the conversion and its inverse, the R16 GEMV kernels, and ds_mm_run on R16 weights on
 * every path (R16 kernel; rows restored for the f32 precision, the lower ISA levels and the
 * oneDNN tiles).
 *
 *   - pack then unpack restores every byte (random blocks with wild scales, kref_quants.h);
 *     packing touches only the group's own bytes;
 *   - the R16 kernel against the row-major int8 GEMV of the same activation: both are exact
 *     int32 sums per block scaled in f32 (Q5_0's offset from the activation's s in both),
 *     summed in another order, so
 *     |y_r16 - y_rows| <= 1e-5 tau (tau = sum_e mag_e |x~_e|, as test_quant.c);
 *   - ds_mm_run on the R16 weight without an R16 kernel gives the same bits as on the rows
 *     (the rows are restored exactly and the same kernels run); with it, the bound above;
 *     batches (oneDNN, several tiles, blocked and plain weight layouts) the same bits as the
 *     rows;
 *   - ranges that are not whole groups are refused with DS_ERR_INVALID_ARG.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include "kref_quants.h"

static const uint32_t types[] = {DS_GGML_Q5_0, DS_GGML_Q4_K, DS_GGML_Q6_K};
#define N_TYPES (sizeof types / sizeof types[0])

typedef struct rw {
    ds_weight rows, r16;
    uint8_t *d_rows, *d_r16;
    double *ref, *mag;
} rw;

static size_t row_bytes(uint32_t t, int64_t K)
{
    const ds_type_kernels *tk = ds_type_kernels_get(t);
    return (size_t)(K / tk->block_elems) * tk->block_bytes;
}

/* random weights (N x n_exp rows) in both layouts */
static void rw_make(rw *w, uint32_t t, int64_t K, int64_t N, int64_t n_exp, uint64_t seed)
{
    kr_rng r = {seed};
    const size_t rb = row_bytes(t, K), bytes = rb * (size_t)(N * n_exp);
    w->d_rows = malloc(bytes);
    w->d_r16 = malloc(bytes);
    w->ref = malloc(sizeof(double) * (size_t)(K * N * n_exp));
    w->mag = malloc(sizeof(double) * (size_t)(K * N * n_exp));
    if (t == DS_GGML_Q8_0)
        kr_fill_weights(&r, t, N * n_exp, K, w->d_rows, rb, w->ref);
    else
        kq_fill_rows(&r, t, N * n_exp, K, w->d_rows, rb, w->ref, w->mag);
    if (t == DS_GGML_Q8_0) /* |w| bounds the terms of a Q8_0 product */
        for (int64_t i = 0; i < K * N * n_exp; i++)
            w->mag[i] = fabs(w->ref[i]);
    for (int64_t g = 0; g < N * n_exp / 16; g++)
        ds_r16_pack_group(t, w->d_rows + (size_t)g * 16 * rb, rb, K,
                          w->d_r16 + (size_t)g * 16 * rb);
    w->rows = (ds_weight){.name = "blk.0.ffn_up_exps.weight", .type = t,
                          .ne = {K, N, n_exp, 1}, .row_bytes = rb, .nbytes = bytes,
                          .data = w->d_rows};
    w->r16 = w->rows;
    w->r16.data = w->d_r16;
    w->r16.layout = DS_LAYOUT_R16;
}

static void rw_free(rw *w)
{
    free(w->d_rows);
    free(w->d_r16);
    free(w->ref);
    free(w->mag);
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = types[ti];
        const int64_t K = t >= DS_GGML_Q2_K ? 768 : 96;
        rw w;
        rw_make(&w, t, K, 48, 1, 7 + t);
        const size_t rb = w.rows.row_bytes;
        /* pack is a permutation of the bytes: not the identity */
        assert_memory_not_equal(w.d_rows, w.d_r16, 16 * rb);
        uint8_t *back = malloc(48 * rb + 32);
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            memset(back, 0xA5, 48 * rb + 32);
            for (int g = 0; g < 3; g++)
                ds_r16_unpack_group((ds_isa)isa, t, w.d_r16 + (size_t)g * 16 * rb, K,
                                    back + (size_t)g * 16 * rb, rb);
            assert_memory_equal(back, w.d_rows, 48 * rb);
            for (int i = 0; i < 32; i++)
                assert_int_equal(back[48 * rb + (size_t)i], 0xA5);
        }
        free(back);
        rw_free(&w);
    }
}

/* The R16 kernel vs the row kernel on the same quantized activation (nx rows). */
static void check_kernel(uint32_t t, int64_t K, int64_t N, int nx, kr_rng *r)
{
    ds_r16_gemv_fn k16 = ds_r16_gemv(t, ds_isa_best());
    if (!k16)
        return;
    const ds_type_kernels *tk = ds_type_kernels_get(t);
    rw w;
    rw_make(&w, t, K, N, 1, 100 + (uint64_t)K + t);
    const int64_t ldx = K, ldy = N + 3;
    float *x = malloc(sizeof(float) * (size_t)(nx * ldx));
    float *y = malloc(sizeof(float) * (size_t)(nx * ldy));
    float *yr = malloc(sizeof(float) * (size_t)(nx * ldy));
    for (int64_t i = 0; i < nx * ldx; i++)
        x[i] = kr_uniform(r) * 2.0f;
    void *qbuf = aligned_alloc(64, (ds_qact_size(tk->act, nx, K) + 63) & ~(size_t)63);
    ds_qact xa;
    ds_qact_quantize(ds_isa_best(), tk->act, x, nx, ldx, K, qbuf, &xa);
    ds_pick_gemv_q8(tk, ds_isa_best())(w.d_rows, w.rows.row_bytes, N, K, &xa, nx, yr, ldy);
    k16(w.d_r16, N / 16, K, &xa, nx, y, ldy);
    float *xt = malloc(sizeof(float) * (size_t)K);
    for (int m = 0; m < nx; m++) {
        const ds_qact row = ds_qact_rows(&xa, K, m);
        const int bs = tk->act == DS_ACT_Q8_K ? 256 : 32;
        for (int64_t i = 0; i < K; i++)
            xt[i] = row.d[i / bs] * row.q[i];
        for (int64_t n = 0; n < N; n++) {
            double tau = 0, want = 0;
            for (int64_t i = 0; i < K; i++) {
                tau += w.mag[n * K + i] * fabs(xt[i]);
                want += w.ref[n * K + i] * xt[i];
            }
            const double got = y[m * ldy + n], rows = yr[m * ldy + n];
            if (!(fabs(got - rows) <= 1e-5 * tau + 1e-30) ||
                !(fabs(got - want) <= 1e-5 * tau + 1e-30))
                fail_msg("%s K=%lld nx=%d: y[%d][%lld] = %.9g, rows %.9g, exact %.9g (tau %.3g)",
                         ds_ggml_type_name(t), (long long)K, nx, m, (long long)n, got, rows,
                         want, tau);
        }
    }
    free(xt);
    free(qbuf);
    free(x);
    free(y);
    free(yr);
    rw_free(&w);
}

static void test_kernels(void **state)
{
    (void)state;
    if (!ds_r16_gemv(DS_GGML_Q4_K, ds_isa_best())) {
        print_message("skipped: this CPU has no AVX512-VNNI (no R16 kernels)\n");
        return;
    }
    kr_rng r = {5};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = types[ti];
        const int64_t ks[] = {t >= DS_GGML_Q2_K ? 256 : 32, t >= DS_GGML_Q2_K ? 2048 : 1408};
        for (int ki = 0; ki < 2; ki++)
            for (int nx = 1; nx <= 9; nx++)
                check_kernel(t, ks[ki], 16 * (ki ? 5 : 7), nx, &r); /* odd group counts */
    }
}

/* ds_mm_run / ds_mm_run_rows on the R16 weight vs the rows weight */
static void check_mm(uint32_t t, int precision, int threads, ds_isa isa, int64_t M, kr_rng *r)
{
    const int64_t K = t >= DS_GGML_Q2_K ? 512 : 160, N = 96, E = 2;
    rw w;
    rw_make(&w, t, K, N, E, 300 + t);
    ds_mm *mm;
    ds_err err;
    assert_int_equal(ds_mm_create(&mm, threads, precision, &err), DS_OK);
    ds_mm_set_isa(mm, isa);
    if (M > 8) /* several dequantized tiles (of 64 x threads rows in bf16), the last partial */
        ds_mm_set_tile_bytes(mm, (size_t)K * 2 * 64 * (size_t)threads);
    const bool has_k16 = precision == DS_PRECISION_FAST && ds_r16_gemv(t, ds_mm_isa(mm));
    const bool gemv = ds_mm_path_of(mm, t, M) <= DS_MM_GEMV_Q8;
    float *x = malloc(sizeof(float) * (size_t)(M * K));
    float *y = malloc(sizeof(float) * (size_t)(M * N)), *yr = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++)
        x[i] = kr_uniform(r) * 2.0f;
    for (int64_t e = 0; e < E; e++) {
        assert_int_equal(ds_mm_run(mm, &w.rows, e, x, M, K, yr, N, &err), DS_OK);
        if (ds_mm_run(mm, &w.r16, e, x, M, K, y, N, &err) != DS_OK)
            fail_msg("%s", err.msg);
        if (!(gemv && has_k16)) {
            assert_memory_equal(y, yr, sizeof(float) * (size_t)(M * N));
        } else {
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double tau = 0;
                    for (int64_t i = 0; i < K; i++)
                        tau += w.mag[(e * N + n) * K + i] * fabs(x[m * K + i]);
                    /* both use the same quantized x; |x~| <= |x| (1 + 2^-7) */
                    if (!(fabs(y[m * N + n] - yr[m * N + n]) <= 1.01e-5 * tau))
                        fail_msg("%s M=%lld e=%lld: %.9g vs rows %.9g (tau %.3g)",
                                 ds_ggml_type_name(t), (long long)M, (long long)e,
                                 y[m * N + n], yr[m * N + n], tau);
                }
        }
        /* a slice of whole groups */
        assert_int_equal(ds_mm_run_rows(mm, &w.r16, e, 32, 64, x, M, K, y, 32, &err), DS_OK);
        assert_int_equal(ds_mm_run_rows(mm, &w.rows, e, 32, 64, x, M, K, yr, 32, &err), DS_OK);
        if (!(gemv && has_k16))
            assert_memory_equal(y, yr, sizeof(float) * (size_t)(M * 32));
    }
    /* not whole groups */
    assert_int_equal(ds_mm_run_rows(mm, &w.r16, 0, 8, 64, x, M, K, y, 56, &err),
                     DS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "16-row"));
    ds_mm_free(mm);
    free(x);
    free(y);
    free(yr);
    rw_free(&w);
}

static void test_mm(void **state)
{
    (void)state;
    kr_rng r = {9};
    const int64_t Ms[] = {1, 3, 6, 40};
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (int prec = 0; prec <= 1; prec++)
            for (int th = 1; th <= 2; th++)
                for (int isa = 0; isa <= (int)ds_isa_best(); isa++)
                    for (int mi = 0; mi < 4; mi++)
                        check_mm(types[ti], prec, th, (ds_isa)isa, Ms[mi], &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_mm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
