/*
 * tests/kernels/test_gemv.c — single-row products: the row kernels of every weight type at
 * every ISA level this CPU has, and ds_mm_run/ds_mm_run_rows with M == 1 (threads, expert
 * stacks, row slices, misaligned Y, both precisions), against a double-precision reference on
 * the exactly decoded weights.
 *
 * Tolerances (|y - ref| <= tol):
 *   f32 paths (F32/F16/BF16 weights, Q8_0 in F32 precision): 1e-5 * sum_k |x_k w_k|;
 *   Q8_0 with int8 activations (FAST): the quantization bound of kr_q8_bound (about 0.57 *
 *   amax_block/127 * sum|w| per block) + 1e-5 * sum|x w|.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include "kref.h"

static const uint32_t k_types[] = {DS_GGML_F32, DS_GGML_F16, DS_GGML_BF16, DS_GGML_Q8_0};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

typedef struct tw {         /* a test weight: data + its decoded values */
    ds_weight w;
    void *data;
    double *ref;            /* n_exp * N * K */
} tw;

static void tw_make(tw *t, uint32_t type, int64_t K, int64_t N, int64_t n_exp, uint64_t seed)
{
    kr_rng r = {seed};
    size_t rb = kr_row_bytes(type, K);
    t->data = malloc(rb * N * n_exp + 64);
    t->ref = malloc(sizeof(double) * K * N * n_exp);
    kr_fill_weights(&r, type, N * n_exp, K, t->data, rb, t->ref);
    t->w = (ds_weight){.name = "blk.0.test.weight", .type = type, .ne = {K, N, n_exp, 1},
                       .row_bytes = rb, .nbytes = rb * N * n_exp, .data = t->data};
}

static void tw_free(tw *t)
{
    free(t->data);
    free(t->ref);
}

static void fill_x(kr_rng *r, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = kr_uniform(r) * 2.0f;
}

/* Check y[0..N) against rows [n0, n0+N) of weight matrix `wref` (N_all x K). */
static void check_y(const char *what, const float *y, const double *wref, const float *x,
                    int64_t n0, int64_t N, int64_t K, bool q8)
{
    for (int64_t n = 0; n < N; n++) {
        double ref, mag;
        const double *wr = wref + (n0 + n) * K;
        kr_ref_mm(wr, x, 1, K, 1, K, &ref, &mag);
        double tol = 1e-5 * mag + 1e-30;
        if (q8)
            tol += kr_q8_bound(wr, x, K);
        if (!(fabs(y[n] - ref) <= tol))
            fail_msg("%s: row %lld: %.9g vs %.9g (tol %.3g, |x||w| %.3g)", what,
                     (long long)(n0 + n), y[n], ref, tol, mag);
    }
}

/* ---- row kernels -------------------------------------------------------------------------- */

/* One row-kernel call with nx activation rows (strided) against the reference. */
static void check_kernels(const ds_type_kernels *tk, const tw *t, int64_t N, int64_t K, int nx,
                          kr_rng *r)
{
    int64_t ldx = K + 3, ldy = N + 5;
    float *x = malloc(sizeof(float) * nx * ldx);
    float *y = malloc(sizeof(float) * (nx * ldy + 1));
    int8_t *xq = malloc((size_t)nx * K);
    float *xd = malloc(sizeof(float) * nx * (K / 32 + 1));
    fill_x(r, x, nx * ldx);
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        char what[96];
        for (int64_t i = 0; i <= nx * ldy; i++)
            y[i] = -1.0f;
        ds_pick_gemv_f32(tk, (ds_isa)isa)(t->data, t->w.row_bytes, N, K, x, ldx, nx, y, ldy);
        for (int m = 0; m < nx; m++) {
            snprintf(what, sizeof what, "%s K=%lld nx=%d row %d isa %s f32",
                     kr_type_name(t->w.type), (long long)K, nx, m, ds_isa_name((ds_isa)isa));
            check_y(what, y + m * ldy, t->ref, x + m * ldx, 0, N, K, false);
            assert_true(y[m * ldy + N] == -1.0f);   /* row padding untouched */
        }
        ds_gemv_q8_fn q8 = ds_pick_gemv_q8(tk, (ds_isa)isa);
        if (q8) {
            for (int m = 0; m < nx; m++)
                ds_quantize_act_q8((ds_isa)isa, x + m * ldx, xq + m * K, xd + m * (K / 32), K);
            ds_qact xa = {xq, xd, NULL, NULL};
            q8(t->data, t->w.row_bytes, N, K, &xa, nx, y, ldy);
            for (int m = 0; m < nx; m++) {
                snprintf(what, sizeof what, "%s K=%lld nx=%d row %d isa %s int8",
                         kr_type_name(t->w.type), (long long)K, nx, m,
                         ds_isa_name((ds_isa)isa));
                check_y(what, y + m * ldy, t->ref, x + m * ldx, 0, N, K, true);
                assert_true(y[m * ldy + N] == -1.0f);
            }
            /* one row at a time (the decode kernels) gives the same bits as the row's place
             * in a multi-row call */
            float *y1 = malloc(sizeof(float) * N);
            for (int m = 0; m < nx && nx > 1; m++) {
                ds_qact xm = {xq + m * K, xd + m * (K / 32), NULL, NULL};
                q8(t->data, t->w.row_bytes, N, K, &xm, 1, y1, N);
                assert_memory_equal(y1, y + m * ldy, sizeof(float) * N);
            }
            free(y1);
        }
    }
    free(x);
    free(y);
    free(xq);
    free(xd);
}

static void test_row_kernels(void **state)
{
    (void)state;
    const int64_t ks_block[] = {32, 96, 160, 1056, 4128};
    const int64_t ks_any[] = {1, 7, 33, 100, 1057};
    kr_rng r = {5};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = k_types[ti];
        const ds_type_kernels *tk = ds_type_kernels_get(type);
        assert_non_null(tk);
        for (int pass = 0; pass < 2; pass++) {
            const int64_t *ks = pass ? ks_any : ks_block;
            if (pass && tk->block_elems != 1)
                continue;
            for (int ki = 0; ki < 5; ki++) {
                int64_t K = ks[ki], N = 19;
                tw t;
                tw_make(&t, type, K, N, 1, 100 + ki);
                /* 1..4 rows in one pass; 5 and 9 rows take several passes */
                const int nxs[] = {1, 2, 3, 4, 5, 9};
                for (int ni = 0; ni < 6; ni++)
                    if (K < 2000 || nxs[ni] <= 4)
                        check_kernels(tk, &t, N, K, nxs[ni], &r);
                tw_free(&t);
            }
        }
    }
}

/* Extreme Q8_0 values: weights -128/127 with the activation at +-amax, where a saturating
 * maddubs or a wrong sign trick would show. */
static void test_q8_extremes(void **state)
{
    (void)state;
    const int64_t K = 256;
    uint8_t w[8 * 34];
    double wref[256];
    for (int b = 0; b < 8; b++) {
        w[34 * b] = 0x00;
        w[34 * b + 1] = 0x3C;   /* d = 1 */
        for (int i = 0; i < 32; i++)
            w[34 * b + 2 + i] = (uint8_t)((i + b) & 1 ? 0x80 : 0x7F);   /* -128, 127 */
        kr_q8_0_decode(w + 34 * b, wref + 32 * b);
    }
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = (i % 3 == 0) ? -1.0f : 1.0f;
    const ds_type_kernels *tk = ds_type_kernels_get(DS_GGML_Q8_0);
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        int8_t xq[256];
        float xd[8], y;
        ds_quantize_act_q8((ds_isa)isa, x, xq, xd, K);
        ds_qact xa = {xq, xd, NULL, NULL};
        ds_pick_gemv_q8(tk, (ds_isa)isa)(w, 8 * 34, 1, K, &xa, 1, &y, 1);
        check_y("q8 extremes", &y, wref, x, 0, 1, K, true);
        ds_pick_gemv_f32(tk, (ds_isa)isa)(w, 8 * 34, 1, K, x, K, 1, &y, 1);
        check_y("q8 extremes f32", &y, wref, x, 0, 1, K, false);
    }
}

/* ---- ds_mm with M == 1 -------------------------------------------------------------------- */

static void test_mm_gemv(void **state)
{
    (void)state;
    kr_rng r = {9};
    const int64_t shapes[][2] = {{1056, 200}, {96, 37}, {4128, 130}, {32, 1}};
    for (int threads = 1; threads <= 2; threads++) {
        for (int prec = 0; prec <= 1; prec++) {
            ds_mm *mm = NULL;
            ds_err err;
            assert_int_equal(ds_mm_create(&mm, threads, prec, &err), DS_OK);
            assert_int_equal(ds_mm_threads(mm), threads);
            for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
                assert_int_equal(ds_mm_set_isa(mm, (ds_isa)isa), isa);
                for (size_t ti = 0; ti < N_TYPES; ti++) {
                    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                        uint32_t type = k_types[ti];
                        int64_t K = shapes[si][0], N = shapes[si][1], n_exp = si == 1 ? 3 : 1;
                        tw t;
                        tw_make(&t, type, K, N, n_exp, 1000 + si * 10 + ti);
                        float *x = malloc(sizeof(float) * K);
                        float *ybuf = malloc(sizeof(float) * (N + 40));
                        fill_x(&r, x, K);
                        bool q8 = type == DS_GGML_Q8_0 && prec == DS_PRECISION_FAST;
                        char what[128];
                        for (int64_t e = 0; e < n_exp; e++) {
                            /* Y misaligned by 1..3 floats: chunk boundaries still on lines */
                            float *y = ybuf + 1 + (e % 3);
                            for (int64_t i = 0; i < N + 36; i++)
                                ybuf[i] = NAN;
                            ds_err_clear(&err);
                            ds_status rc = ds_mm_run(mm, &t.w, e, x, 1, K, y, N, &err);
                            if (rc != DS_OK)
                                fail_msg("ds_mm_run: %s", err.msg);
                            snprintf(what, sizeof what, "mm %s K=%lld N=%lld e=%lld thr=%d "
                                     "prec=%d isa=%s", kr_type_name(type), (long long)K,
                                     (long long)N, (long long)e, threads, prec,
                                     ds_isa_name((ds_isa)isa));
                            check_y(what, y, t.ref + e * N * K, x, 0, N, K, q8);
                            assert_true(isnan(y[-1]) && isnan(y[N]));
                        }
                        /* a slice of rows of the last expert */
                        int64_t n0 = N / 3, n1 = N - N / 4;
                        if (n1 > n0) {
                            float *y = ybuf + 5;
                            for (int64_t i = 0; i < N + 36; i++)
                                ybuf[i] = NAN;
                            assert_int_equal(ds_mm_run_rows(mm, &t.w, n_exp - 1, n0, n1, x, 1,
                                                            K, y, n1 - n0, &err), DS_OK);
                            strcat(what, " slice");
                            check_y(what, y, t.ref + (n_exp - 1) * N * K, x, n0, n1 - n0, K, q8);
                            assert_true(isnan(y[-1]) && isnan(y[n1 - n0]));
                        }
                        free(x);
                        free(ybuf);
                        tw_free(&t);
                    }
                }
            }
            ds_mm_free(mm);
        }
    }
}

static void test_mm_errors(void **state)
{
    (void)state;
    ds_mm *mm = NULL;
    ds_err err;
    assert_int_equal(ds_mm_create(&mm, 0, DS_PRECISION_FAST, &err), DS_ERR_INVALID_ARG);
    assert_null(mm);
    assert_int_equal(ds_mm_create(&mm, 1, 7, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_mm_create(&mm, 1, DS_PRECISION_FAST, &err), DS_OK);
    uint8_t data[144 * 4] = {0};
    float x[256 * 2] = {0}, y[8];
    ds_weight w = {.name = "blk.3.ffn_down.weight", .type = DS_GGML_IQ2_XXS,
                   .ne = {256, 4, 1, 1}, .row_bytes = 66, .nbytes = 66 * 4, .data = data};
    for (int64_t M = 1; M <= 2; M++) {
        ds_err_clear(&err);
        assert_int_equal(ds_mm_run(mm, &w, 0, x, M, 256, y, 4, &err), DS_ERR_UNSUPPORTED);
        assert_int_equal(err.status, DS_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "blk.3.ffn_down.weight"));
        assert_non_null(strstr(err.msg, ds_ggml_type_name(DS_GGML_IQ2_XXS)));
    }
    ds_weight f = {.name = "t", .type = DS_GGML_F32, .ne = {4, 2, 3, 1}, .row_bytes = 16,
                   .nbytes = 96, .data = data};
    assert_int_equal(ds_mm_run(mm, &f, 3, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);   /* expert */
    assert_int_equal(ds_mm_run(mm, &f, -1, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_mm_run(mm, &f, 0, x, 1, 3, y, 2, &err), DS_ERR_INVALID_ARG);    /* ldx */
    assert_int_equal(ds_mm_run(mm, &f, 0, x, 2, 4, y, 1, &err), DS_ERR_INVALID_ARG);    /* ldy */
    assert_int_equal(ds_mm_run_rows(mm, &f, 0, 1, 3, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_mm_run_rows(mm, &f, 0, 1, 1, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_mm_run(mm, &f, 0, x, 0, 4, y, 2, &err), DS_OK);                 /* M=0 */
    ds_weight q = {.name = "q", .type = DS_GGML_Q8_0, .ne = {48, 2, 1, 1}, .row_bytes = 51,
                   .nbytes = 102, .data = data};
    assert_int_equal(ds_mm_run(mm, &q, 0, x, 1, 48, y, 2, &err), DS_ERR_INVALID_ARG);   /* K%32 */
    ds_weight absent = {.name = "absent", .type = DS_GGML_F32, .ne = {4, 2, 1, 1}};
    assert_int_equal(ds_mm_run(mm, &absent, 0, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "absent"));
    assert_int_equal(ds_mm_run(NULL, &f, 0, x, 1, 4, y, 2, &err), DS_ERR_INVALID_ARG);
    ds_mm_free(mm);
    ds_mm_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_kernels),
        cmocka_unit_test(test_q8_extremes),
        cmocka_unit_test(test_mm_gemv),
        cmocka_unit_test(test_mm_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
