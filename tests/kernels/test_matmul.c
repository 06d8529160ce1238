/*
 * tests/kernels/test_matmul.c — batched products (M > 1, oneDNN) for every weight type, both
 * precisions and every ISA level of this CPU (the ISA level decides bf16 vs f32 compute in FAST
 * precision), odd shapes, strides, expert stacks, row slices, multi-tile dequantization, the
 * primitive cache bound, and one ds_mm used from two pthreads at once. ds_mm_run_heads against
 * ds_mm_run per head, bit for bit (its direct GEMV path and its per-head fallback), and
 * ds_mm_run_jobs against ds_mm_run per job.
 *
 * Tolerances (|y - ref| <= tol * sum_k |x_k w_k|, reference in double on decoded weights):
 *   f32 compute: 1e-5;  bf16 compute (FAST, AVX-512 with AVX512_BF16): 1e-2 (X and, for
 *   F16/Q8_0, the weights are rounded to bf16: <= 2 * 2^-9 relative per product).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include <pthread.h>

#include "kref.h"

static const uint32_t k_types[] = {DS_GGML_F32, DS_GGML_F16, DS_GGML_BF16, DS_GGML_Q8_0};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

typedef struct tw {
    ds_weight w;
    void *data;
    double *ref;
} tw;

static void tw_make(tw *t, uint32_t type, int64_t K, int64_t N, int64_t n_exp, uint64_t seed)
{
    kr_rng r = {seed};
    size_t rb = kr_row_bytes(type, K);
    t->data = malloc(rb * N * n_exp);
    t->ref = malloc(sizeof(double) * K * N * n_exp);
    kr_fill_weights(&r, type, N * n_exp, K, t->data, rb, t->ref);
    t->w = (ds_weight){.name = "blk.1.ffn_up_exps.weight", .type = type,
                       .ne = {K, N, n_exp, 1}, .row_bytes = rb, .nbytes = rb * N * n_exp,
                       .data = t->data};
}

static void tw_free(tw *t)
{
    free(t->data);
    free(t->ref);
}

/* Error bound of Y[m][n] for the path ds_mm takes (see the header comment). */
static double tol_of(ds_mm *mm, uint32_t type, int64_t M, const double *wrow, const float *xrow,
                     int64_t K, double mag)
{
    switch (ds_mm_path_of(mm, type, M)) {
    case DS_MM_DNNL_BF16: return 1e-2 * mag;
    case DS_MM_GEMV_Q8: return 1e-5 * mag + kr_q8_bound(wrow, xrow, K);
    default: return 1e-5 * mag;
    }
}

/* Run Y = X * W[expert][n0:n1]^T with M rows and check it. Returns 0 or fails. */
static void run_check(ds_mm *mm, const tw *t, int64_t expert, int64_t n0, int64_t n1,
                      int64_t M, int64_t ldx_pad, int64_t ldy_pad, uint64_t seed)
{
    int64_t K = t->w.ne[0], N = t->w.ne[1], Nr = n1 - n0;
    int64_t ldx = K + ldx_pad, ldy = Nr + ldy_pad;
    float *X = malloc(sizeof(float) * M * ldx);
    float *Y = malloc(sizeof(float) * (M * ldy + 1));
    double *ref = malloc(sizeof(double) * M * Nr), *mag = malloc(sizeof(double) * M * Nr);
    kr_rng r = {seed};
    for (int64_t i = 0; i < M * ldx; i++)
        X[i] = kr_uniform(&r) * 2.0f;
    for (int64_t i = 0; i < M * ldy + 1; i++)
        Y[i] = NAN;
    ds_err err;
    ds_err_clear(&err);
    ds_status rc = ds_mm_run_rows(mm, &t->w, expert, n0, n1, X, M, ldx, Y, ldy, &err);
    if (rc != DS_OK)
        fail_msg("ds_mm_run_rows: %s", err.msg);
    kr_ref_mm(t->ref + (expert * N + n0) * K, X, M, ldx, Nr, K, ref, mag);
    const double *wsl = t->ref + (expert * N + n0) * K;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < Nr; n++) {
            double y = Y[m * ldy + n], want = ref[m * Nr + n];
            double tol = tol_of(mm, t->w.type, M, wsl + n * K, X + m * ldx, K, mag[m * Nr + n]);
            if (!(fabs(y - want) <= tol + 1e-30))
                fail_msg("%s M=%lld K=%lld N=%lld rows [%lld,%lld) e=%lld isa=%s prec=%d "
                         "thr=%d: Y[%lld][%lld] = %.9g vs %.9g (|x||w| %.3g)",
                         kr_type_name(t->w.type), (long long)M, (long long)K, (long long)N,
                         (long long)n0, (long long)n1, (long long)expert,
                         ds_isa_name(ds_mm_isa(mm)), ds_mm_precision(mm), ds_mm_threads(mm),
                         (long long)m, (long long)n, y, want, mag[m * Nr + n]);
        }
        for (int64_t n = Nr; n < ldy && m * ldy + n < M * ldy; n++)   /* padding untouched */
            if (!isnan(Y[m * ldy + n]))
                fail_msg("padding of Y written at [%lld][%lld]", (long long)m, (long long)n);
    }
    assert_true(isnan(Y[M * ldy]));
    free(X);
    free(Y);
    free(ref);
    free(mag);
}

static void test_matmul_shapes(void **state)
{
    (void)state;
    /* (K, N, n_exp): K = 32 * odd, N not a multiple of 16 */
    const int64_t shapes[][3] = {{96, 37, 1}, {1056, 40, 3}};
    const int64_t Ms[] = {2, 4, 5, 7, 8, 9, 64, 300};   /* around the GEMV/oneDNN switch */
    int paths[4] = {0};
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        for (int isa = (int)ds_isa_best(); isa >= 0; isa--) {
            ds_mm_set_isa(mm, (ds_isa)isa);
            for (size_t ti = 0; ti < N_TYPES; ti++) {
                for (size_t si = 0; si < 2; si++) {
                    tw t;
                    tw_make(&t, k_types[ti], shapes[si][0], shapes[si][1], shapes[si][2],
                            77 + ti * 3 + si);
                    int64_t N = shapes[si][1], ne = shapes[si][2];
                    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
                        int64_t M = Ms[mi];
                        paths[ds_mm_path_of(mm, k_types[ti], M)]++;
                        /* keep the run short: large batches only at the two top levels
                         * (the level decides bf16 vs f32; the scalar level differs from
                         * AVX2 only in dequantization kernels, tested on their own) */
                        if ((M == 300 && isa != (int)ds_isa_best()) ||
                            (M == 64 && isa + 1 < (int)ds_isa_best()))
                            continue;
                        run_check(mm, &t, ne - 1, 0, N, M, 0, 0, 1000 + mi);
                    }
                    /* strides, a slice of rows, expert 1 */
                    run_check(mm, &t, ne > 1 ? 1 : 0, 5, N - 7, 7, 3, 5, 2000 + si);
                    run_check(mm, &t, 0, N - 1, N, 3, 0, 0, 3000 + si);   /* one row */
                    tw_free(&t);
                }
            }
        }
        ds_mm_free(mm);
    }
    /* every path ran (bf16 only where the CPU has it) */
    ds_cpu_features f;
    ds_cpu_detect(&f);
    assert_true(paths[DS_MM_GEMV_F32] && paths[DS_MM_GEMV_Q8] && paths[DS_MM_DNNL_F32]);
    if (ds_isa_best() == DS_ISA_AVX512 && f.avx512bf16)
        assert_true(paths[DS_MM_DNNL_BF16] > 0);
}

/* Several dequantization tiles: with 48 KB tiles a 1056-wide matrix is cut into 16-row
 * tiles (bf16) or 16-row tiles of f32, plus a remainder tile. */
static void test_matmul_tiles(void **state)
{
    (void)state;
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        ds_mm_set_tile_bytes(mm, 48 << 10);
        const uint32_t types[] = {DS_GGML_Q8_0, DS_GGML_F16, DS_GGML_BF16};
        for (size_t ti = 0; ti < 3; ti++) {
            tw t;
            tw_make(&t, types[ti], 1056, 100, 2, 500 + ti);
            run_check(mm, &t, 1, 0, 100, 9, 0, 0, 9);    /* M > 8: oneDNN on tiles */
            run_check(mm, &t, 0, 3, 97, 33, 2, 1, 10);   /* tiles of a row slice */
            tw_free(&t);
        }
        ds_mm_set_tile_bytes(mm, 0);
        tw t;   /* the default 4 MB tiles: 3 tiles of a 4128-wide matrix in bf16 */
        tw_make(&t, DS_GGML_Q8_0, 4128, prec == DS_PRECISION_FAST ? 1000 : 520, 1, 7);
        run_check(mm, &t, 0, 0, t.w.ne[1], 9, 0, 0, 11);
        tw_free(&t);
        ds_mm_free(mm);
    }
}

/* More distinct shapes than the cache holds: entries are evicted, results stay right. */
static void test_matmul_cache(void **state)
{
    (void)state;
    ds_mm *mm = NULL;
    ds_err err;
    assert_int_equal(ds_mm_create(&mm, 1, DS_PRECISION_F32, &err), DS_OK);
    tw t;
    tw_make(&t, DS_GGML_F32, 32, 17, 1, 3);
    for (int64_t M = 2; M < 2 + 300; M++) {
        run_check(mm, &t, 0, 0, 17, M, 0, 0, (uint64_t)M);
        assert_true(ds_mm_cached_primitives(mm) <= 256);
    }
    assert_true(ds_mm_cached_primitives(mm) >= 200);
    run_check(mm, &t, 0, 0, 17, 2, 0, 0, 1);   /* evicted shape comes back */
    tw_free(&t);
    ds_mm_free(mm);
}

/* ---- two threads on one ds_mm --------------------------------------------------------- */

typedef struct job {
    ds_mm *mm;
    const tw *t;
    int id;
    int failures;
    char msg[DS_ERRMSG_MAX];
} job;

static void *worker(void *arg)
{
    job *j = arg;
    int64_t K = j->t->w.ne[0], N = j->t->w.ne[1];
    const int64_t Ms[] = {1, 9, 64, 1, 33, 9};
    for (int rep = 0; rep < 6; rep++) {
        int64_t M = Ms[(rep + j->id) % 6];
        float *X = malloc(sizeof(float) * M * K), *Y = malloc(sizeof(float) * M * N);
        double *ref = malloc(sizeof(double) * M * N), *mag = malloc(sizeof(double) * M * N);
        kr_rng r = {(uint64_t)(j->id * 100 + rep)};
        for (int64_t i = 0; i < M * K; i++)
            X[i] = kr_uniform(&r);
        ds_err err;
        if (ds_mm_run(j->mm, &j->t->w, 0, X, M, K, Y, N, &err) != DS_OK) {
            j->failures++;
            snprintf(j->msg, sizeof j->msg, "%s", err.msg);
        } else {
            kr_ref_mm(j->t->ref, X, M, K, N, K, ref, mag);
            for (int64_t i = 0; i < M * N; i++) {
                double bound = tol_of(j->mm, j->t->w.type, M, j->t->ref + (i % N) * K,
                                      X + (i / N) * K, K, mag[i]);
                if (!(fabs(Y[i] - ref[i]) <= bound + 1e-30)) {
                    j->failures++;
                    snprintf(j->msg, sizeof j->msg, "thread %d M=%lld: %g vs %g", j->id,
                             (long long)M, Y[i], ref[i]);
                    break;
                }
            }
        }
        free(X);
        free(Y);
        free(ref);
        free(mag);
    }
    return NULL;
}

static void test_matmul_concurrent(void **state)
{
    (void)state;
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        tw t;
        tw_make(&t, DS_GGML_Q8_0, 1056, 100, 1, 42);
        tw t2;
        tw_make(&t2, DS_GGML_BF16, 1056, 100, 1, 43);
        pthread_t th[2];
        job jobs[2] = {{mm, &t, 0, 0, ""}, {mm, &t2, 1, 0, ""}};
        job jobs_same[2] = {{mm, &t, 2, 0, ""}, {mm, &t, 3, 0, ""}};   /* same primitives */
        for (int round = 0; round < 2; round++) {
            job *js = round ? jobs_same : jobs;
            for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&th[i], NULL, worker, &js[i]), 0);
            for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
            for (int i = 0; i < 2; i++)
                if (js[i].failures)
                    fail_msg("worker %d: %s", js[i].id, js[i].msg);
        }
        tw_free(&t);
        tw_free(&t2);
        ds_mm_free(mm);
    }
}

/* Calls from inside an OpenMP parallel loop (as lib/forward does per head): each call runs
 * on one thread of the outer team, all sharing the ds_mm. */
static void test_matmul_nested_omp(void **state)
{
    (void)state;
    for (int prec = 0; prec <= 1; prec++) {
        ds_mm *mm = NULL;
        ds_err err;
        assert_int_equal(ds_mm_create(&mm, 2, prec, &err), DS_OK);
        tw t;
        tw_make(&t, DS_GGML_Q8_0, 96, 40, 6, 11);
        int failures = 0;
#pragma omp parallel for schedule(static, 1) num_threads(2) reduction(+ : failures)
        for (int i = 0; i < 12; i++) {
            int64_t M = (i % 3 == 0) ? 1 : (i % 3 == 1) ? 7 : 33;
            float X[33 * 96], Y[33 * 40];
            double ref[33 * 40], mag[33 * 40];
            kr_rng r = {(uint64_t)i};
            for (int64_t j = 0; j < M * 96; j++)
                X[j] = kr_uniform(&r);
            ds_err e;
            if (ds_mm_run(mm, &t.w, i % 6, X, M, 96, Y, 40, &e) != DS_OK) {
                failures++;
                continue;
            }
            kr_ref_mm(t.ref + (i % 6) * 40 * 96, X, M, 96, 40, 96, ref, mag);
            for (int64_t j = 0; j < M * 40; j++)
                if (!(fabs(Y[j] - ref[j]) <= tol_of(mm, DS_GGML_Q8_0, M,
                                                     t.ref + ((i % 6) * 40 + j % 40) * 96,
                                                     X + (j / 40) * 96, 96, mag[j]) + 1e-30))
                    failures++;
        }
        assert_int_equal(failures, 0);
        tw_free(&t);
        ds_mm_free(mm);
    }
}

/* Random blocks of a legacy / K-quant type with a sane f16 d at byte offset doff of each block
 * (every other bit pattern is a valid block). */
static void fill_blocks(void *data, size_t nbytes, size_t bb, size_t doff, uint64_t seed)
{
    kr_rng r = {seed};
    uint8_t *p = data;
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (uint8_t)kr_next(&r);
    for (size_t b = 0; b + bb <= nbytes; b += bb) {
        p[b + doff] = (uint8_t)kr_next(&r);
        p[b + doff + 1] = 0x20; /* 2^-7 .. 2^-6 */
    }
}

/* ds_mm_run_heads == ds_mm_run per head, bit for bit: types with the int8 GEMV (Q8_0, Q5_0,
 * Q6_K) and without (F32), M on the GEMV path (1, 3) and on oneDNN's (20), both precisions,
 * 1 and 2 threads, strided heads in X and Y (Y's gaps must stay untouched); then bad
 * arguments. */
static void test_matmul_heads(void **state)
{
    (void)state;
    enum { H = 6, K = 256, N = 48 };
    const int64_t xh = K + 7, yh = N + 5, ldx = H * xh, ldy = H * yh;
    const struct { uint32_t type; size_t bb, be, doff; const char *name; } ts[] = {
        {DS_GGML_Q8_0, 34, 32, 0, "Q8_0"}, {DS_GGML_Q5_0, 22, 32, 0, "Q5_0"},
        {DS_GGML_Q6_K, 210, 256, 208, "Q6_K"}, {DS_GGML_F32, 4, 1, 0, "F32"}};
    for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++) {
        tw t;
        tw_make(&t, ts[ti].type == DS_GGML_F32 ? DS_GGML_F32 : DS_GGML_Q8_0, K, N, H, 5 + ti);
        if (ts[ti].type != DS_GGML_F32 && ts[ti].type != DS_GGML_Q8_0) {
            size_t rb = (size_t)K / ts[ti].be * ts[ti].bb;
            free(t.data);
            t.data = malloc(rb * N * H);
            fill_blocks(t.data, rb * N * H, ts[ti].bb, ts[ti].doff, 77 + ti);
            t.w.type = ts[ti].type;
            t.w.row_bytes = rb;
            t.w.nbytes = rb * N * H;
            t.w.data = t.data;
        }
        for (int prec = 0; prec <= 1; prec++)
            for (int nt = 1; nt <= 2; nt++) {
                ds_mm *mm = NULL;
                ds_err err;
                assert_int_equal(ds_mm_create(&mm, nt, prec, &err), DS_OK);
                const int64_t Ms[] = {1, 3, 20};
                for (int mi = 0; mi < 3; mi++) {
                    const int64_t M = Ms[mi];
                    float *X = malloc(sizeof(float) * M * ldx);
                    float *Y = malloc(sizeof(float) * M * ldy);
                    float *Z = malloc(sizeof(float) * M * ldy);
                    kr_rng r = {(uint64_t)(100 * ti + mi)};
                    for (int64_t i = 0; i < M * ldx; i++)
                        X[i] = kr_uniform(&r) * 2.0f;
                    for (int64_t i = 0; i < M * ldy; i++)
                        Y[i] = Z[i] = NAN;
                    assert_int_equal(ds_mm_run_heads(mm, &t.w, H, X, xh, ldx, M, Y, yh, ldy, &err),
                                     DS_OK);
                    for (int64_t h = 0; h < H; h++)
                        assert_int_equal(ds_mm_run(mm, &t.w, h, X + h * xh, M, ldx, Z + h * yh,
                                                   ldy, &err),
                                         DS_OK);
                    if (memcmp(Y, Z, sizeof(float) * M * ldy) != 0) /* NaN gaps compare too */
                        fail_msg("%s M=%lld prec=%d threads=%d: ds_mm_run_heads differs from "
                                 "ds_mm_run per head", ts[ti].name, (long long)M,
                                 prec, nt);
                    free(X);
                    free(Y);
                    free(Z);
                }
                float x1[K], y1[N];
                memset(x1, 0, sizeof x1);
                assert_int_equal(ds_mm_run_heads(mm, &t.w, H + 1, x1, 0, K, 1, y1, 0, N, &err),
                                 DS_ERR_INVALID_ARG);
                assert_non_null(strstr(err.msg, "out of range"));
                assert_int_equal(ds_mm_run_heads(mm, &t.w, 2, NULL, K, K, 1, y1, 0, N, &err),
                                 DS_ERR_INVALID_ARG);
                assert_int_equal(ds_mm_run_heads(mm, &t.w, -1, x1, 0, K, 1, y1, 0, N, &err),
                                 DS_ERR_INVALID_ARG);
                assert_int_equal(ds_mm_run_heads(mm, &t.w, 0, x1, 0, K, 1, y1, 0, N, &err), DS_OK);
                ds_mm_free(mm);
            }
        tw_free(&t);
    }
}

/* ds_mm_run_jobs == ds_mm_run per job, bit for bit: a group mixing direct GEMV pieces (Q8_0,
 * Q5_0, several pieces each), F32 (pieces through ds_mm_run_rows), an empty job and a 7-row
 * job (oneDNN, run alone), and jobs reading the rows of an earlier one (the same rows and
 * activation format: one quantization shared; another format or row count: their own), both
 * precisions, 1 and 2 threads; then a bad job. */
static void test_matmul_jobs(void **state)
{
    (void)state;
    enum { K = 1024, N = 544, NJ = 8 };
    tw q8, f32, q5;
    tw_make(&q8, DS_GGML_Q8_0, K, N, 2, 31);
    tw_make(&f32, DS_GGML_F32, K, 64, 1, 32);
    tw_make(&q5, DS_GGML_Q8_0, K, N, 1, 33);
    {
        size_t rb = (size_t)K / 32 * 22;
        free(q5.data);
        q5.data = malloc(rb * N);
        fill_blocks(q5.data, rb * N, 22, 0, 34);
        q5.w.type = DS_GGML_Q5_0;
        q5.w.row_bytes = rb;
        q5.w.nbytes = rb * N;
        q5.w.data = q5.data;
    }
    const int64_t ms[NJ] = {1, 2, 1, 0, 7, 1, 1, 2};
    const ds_weight *ws[NJ] = {&q8.w, &q5.w, &f32.w, &q8.w, &q8.w, &q8.w, &q5.w, &q8.w};
    const int64_t ex[NJ] = {1, 0, 0, 0, 1, 0, 0, 1};
    const int xo[NJ] = {0, 1, 2, 3, 4, 0, 0, 0}; /* row offsets into X: 5-7 reuse job 0's */
    float *X = malloc(sizeof(float) * 8 * K);
    kr_rng r = {9};
    for (int64_t i = 0; i < 8 * K; i++)
        X[i] = kr_uniform(&r) * 2.0f;
    float *Y = malloc(sizeof(float) * NJ * 8 * N), *Z = malloc(sizeof(float) * NJ * 8 * N);
    for (int prec = 0; prec <= 1; prec++)
        for (int nt = 1; nt <= 2; nt++) {
            ds_mm *mm = NULL;
            ds_err err;
            assert_int_equal(ds_mm_create(&mm, nt, prec, &err), DS_OK);
            ds_mm_job jobs[NJ];
            for (int j = 0; j < NJ; j++)
                jobs[j] = (ds_mm_job){ws[j], ex[j], X + xo[j], ms[j], K + 8,
                                      Y + (size_t)j * 8 * N, ws[j]->ne[1] + 3};
            for (size_t i = 0; i < (size_t)NJ * 8 * N; i++)
                Y[i] = Z[i] = NAN;
            assert_int_equal(ds_mm_run_jobs(mm, jobs, NJ, &err), DS_OK);
            for (int j = 0; j < NJ; j++)
                assert_int_equal(ds_mm_run(mm, ws[j], ex[j], X + xo[j], ms[j], K + 8,
                                           Z + (size_t)j * 8 * N, ws[j]->ne[1] + 3, &err),
                                 DS_OK);
            if (memcmp(Y, Z, sizeof(float) * NJ * 8 * N) != 0)
                fail_msg("prec=%d threads=%d: ds_mm_run_jobs differs from ds_mm_run per job",
                         prec, nt);
            jobs[2].expert = 1; /* F32 weight has one expert */
            assert_int_equal(ds_mm_run_jobs(mm, jobs, NJ, &err), DS_ERR_INVALID_ARG);
            assert_non_null(strstr(err.msg, "out of range"));
            ds_mm_free(mm);
        }
    free(X);
    free(Y);
    free(Z);
    tw_free(&q8);
    tw_free(&f32);
    tw_free(&q5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_shapes),
        cmocka_unit_test(test_matmul_tiles),
        cmocka_unit_test(test_matmul_cache),
        cmocka_unit_test(test_matmul_concurrent),
        cmocka_unit_test(test_matmul_nested_omp),
        cmocka_unit_test(test_matmul_heads),
        cmocka_unit_test(test_matmul_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
