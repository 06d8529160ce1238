/*
 * tests/kernels/test_vec.c — f32 vector ops (rmsnorm, softmax, silu_mul, exp_sum, max, dot, axpy,
 * the attention heads kernels over f32 and f16/bf16 rows) at every ISA level against
 * double-precision references, on lengths with SIMD tails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

#include "kref.h"

static const int64_t k_lens[] = {1, 7, 15, 16, 17, 31, 64, 100, 1000, 4099};
#define N_LENS (sizeof k_lens / sizeof k_lens[0])
#define MAXN 4099

static void fill(kr_rng *r, float *v, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = kr_uniform(r) * scale;
}

static void test_dot_axpy(void **state)
{
    (void)state;
    static float a[MAXN], b[MAXN], y[MAXN + 1], y0[MAXN];
    kr_rng r = {1};
    for (size_t li = 0; li < N_LENS; li++) {
        int64_t n = k_lens[li];
        fill(&r, a, n, 3.0f);
        fill(&r, b, n, 0.5f);
        fill(&r, y0, n, 1.0f);
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            ref += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            float got = ds_dot_f32_isa((ds_isa)isa, a, b, n);
            if (fabs(got - ref) > 1e-6 * mag + 1e-30)
                fail_msg("dot isa %s n=%lld: %.9g vs %.9g", ds_isa_name((ds_isa)isa),
                         (long long)n, got, ref);
            memcpy(y, y0, sizeof(float) * n);
            y[n] = 12345.0f;   /* guard: must stay untouched */
            ds_axpy_f32_isa((ds_isa)isa, y, 0.75f, a, n);
            for (int64_t i = 0; i < n; i++) {
                float want = fmaf(0.75f, a[i], y0[i]);   /* one rounding (FMA) or two */
                float want2 = y0[i] + 0.75f * a[i];
                if (y[i] != want && y[i] != want2)
                    fail_msg("axpy isa %s n=%lld i=%lld", ds_isa_name((ds_isa)isa),
                             (long long)n, (long long)i);
            }
            assert_true(y[n] == 12345.0f);
        }
        assert_true(fabs(ds_dot_f32(a, b, n) - ref) <= 1e-6 * mag + 1e-30);
    }
}

static void test_rmsnorm(void **state)
{
    (void)state;
    static float x[MAXN + 1], w[MAXN], y[MAXN + 1];
    kr_rng r = {2};
    const float eps = 1e-6f;
    for (size_t li = 0; li < N_LENS; li++) {
        int64_t n = k_lens[li];
        fill(&r, x, n, 4.0f);
        fill(&r, w, n, 2.0f);
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        double s = 1.0 / sqrt(ss / n + eps);
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            y[n] = 777.0f;
            ds_rmsnorm_isa((ds_isa)isa, y, x, w, n, eps);
            for (int64_t i = 0; i < n; i++) {
                double want = x[i] * s * w[i];
                if (fabs(y[i] - want) > 1e-5 * fabs(want) + 1e-6)
                    fail_msg("rmsnorm isa %s n=%lld i=%lld: %.9g vs %.9g",
                             ds_isa_name((ds_isa)isa), (long long)n, (long long)i, y[i], want);
            }
            assert_true(y[n] == 777.0f);
            /* in place (y aliases x) gives the same values */
            static float xx[MAXN];
            memcpy(xx, x, sizeof(float) * n);
            ds_rmsnorm_isa((ds_isa)isa, xx, xx, w, n, eps);
            assert_memory_equal(xx, y, sizeof(float) * n);
        }
        ds_rmsnorm(y, x, w, n, eps);
        assert_true(fabs(y[0] - x[0] * s * w[0]) <= 1e-5 * fabs(x[0] * s * w[0]) + 1e-6);
    }
}

static void test_softmax_silu(void **state)
{
    (void)state;
    static float x[MAXN], g[MAXN], u[MAXN], o[MAXN];
    kr_rng r = {3};
    for (size_t li = 0; li < N_LENS; li++) {
        int64_t n = k_lens[li];
        fill(&r, x, n, 20.0f);
        x[n / 2] = 500.0f;   /* large logits must not overflow */
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++)
            mx = fmax(mx, x[i]);
        for (int64_t i = 0; i < n; i++)
            sum += exp(x[i] - mx);
        static double want[MAXN];
        for (int64_t i = 0; i < n; i++)
            want[i] = exp(x[i] - mx) / sum;
        ds_softmax(x, n);
        double total = 0;
        for (int64_t i = 0; i < n; i++) {
            total += x[i];
            if (fabs(x[i] - want[i]) > 1e-6 * want[i] + 1e-30)
                fail_msg("softmax n=%lld i=%lld: %.9g vs %.9g", (long long)n, (long long)i,
                         x[i], want[i]);
        }
        assert_true(fabs(total - 1.0) < 1e-5);

        fill(&r, g, n, 30.0f);
        fill(&r, u, n, 2.0f);
        ds_silu_mul(o, g, u, n);
        for (int64_t i = 0; i < n; i++) {
            double ws = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            if (fabs(o[i] - ws) > 1e-6 * fabs(ws) + 1e-30)
                fail_msg("silu_mul i=%lld: %.9g vs %.9g", (long long)i, o[i], ws);
        }
    }
}

/* silu_mul at every ISA level: within 1e-6 (relative) of double precision on random and
 * large gates, the SIMD levels bit-identical to each other (the same operations), a guard
 * element after the end untouched, out aliasing gate, and the libm version's special values:
 * silu(0) = 0, silu(+inf) = +inf, silu(-inf) = NaN, silu(NaN) = NaN, silu(-100) = -0. */
static void test_silu_isa(void **state)
{
    (void)state;
    static float g[MAXN], u[MAXN], o[MAXN + 1], o2[MAXN + 1], a[MAXN];
    kr_rng r = {11};
    for (size_t li = 0; li < N_LENS; li++) {
        const int64_t n = k_lens[li];
        fill(&r, g, n, li % 2 ? 30.0f : 120.0f);
        fill(&r, u, n, 2.0f);
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            o[n] = 12345.0f;
            ds_silu_mul_isa((ds_isa)isa, o, g, u, n);
            assert_true(o[n] == 12345.0f);
            for (int64_t i = 0; i < n; i++) {
                double ws = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
                if (fabs(o[i] - ws) > 1e-6 * fabs(ws) + 1e-30)
                    fail_msg("silu_mul isa %s n=%lld i=%lld g=%.9g: %.9g vs %.9g",
                             ds_isa_name((ds_isa)isa), (long long)n, (long long)i, g[i], o[i],
                             ws);
            }
            memcpy(a, g, sizeof(float) * n);
            ds_silu_mul_isa((ds_isa)isa, a, a, u, n);   /* out == gate */
            assert_memory_equal(a, o, sizeof(float) * n);
            if (isa == DS_ISA_AVX2)
                memcpy(o2, o, sizeof(float) * n);
            if (isa == DS_ISA_AVX512)
                assert_memory_equal(o, o2, sizeof(float) * n);
        }
    }
    const float sg[6] = {0.0f, INFINITY, -INFINITY, NAN, -100.0f, 5.0f};
    const float su[6] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f};
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        ds_silu_mul_isa((ds_isa)isa, o, sg, su, 6);
        assert_true(o[0] == 0.0f);
        assert_true(isinf(o[1]) && o[1] > 0);
        assert_true(isnan(o[2]));
        assert_true(isnan(o[3]));
        assert_true(o[4] == 0.0f && signbit(o[4]));
        assert_true(o[5] == 0.0f);
    }
}

/* The softmax steps of decode attention's blocks at every ISA level: ds_max_f32_isa exactly
 * the largest value (NaN ignored, -inf for none), ds_exp_sum_f32_isa each exp(x - m) (the f32
 * difference, as the kernels form it) within
 * 4e-7 (relative) of double precision and the sum within 1e-6 of the double sum of the
 * outputs, a guard element after the end untouched; x - m below -87 gives exactly 0 and a NaN
 * stays NaN. */
static void test_exp_sum_max(void **state)
{
    (void)state;
    static float x[MAXN + 1], y[MAXN + 1];
    kr_rng r = {17};
    for (size_t li = 0; li < N_LENS; li++) {
        const int64_t n = k_lens[li];
        fill(&r, x, n, li % 2 ? 20.0f : 60.0f);
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            assert_true(ds_max_f32_isa((ds_isa)isa, x, n) == mx);
            memcpy(y, x, sizeof(float) * n);
            y[n] = 12345.0f;
            const float sum = ds_exp_sum_f32_isa((ds_isa)isa, y, n, mx);
            assert_true(y[n] == 12345.0f);
            double dsum = 0.0;
            for (int64_t i = 0; i < n; i++) {
                const double d = (double)(x[i] - mx), want = d < -87.0 ? 0.0 : exp(d);
                if (fabs(y[i] - want) > 4e-7 * want)
                    fail_msg("exp_sum isa %s n=%lld i=%lld x-m=%.9g: %.9g vs %.9g",
                             ds_isa_name((ds_isa)isa), (long long)n, (long long)i, d, y[i],
                             want);
                dsum += y[i];
            }
            if (fabs(sum - dsum) > 1e-6 * dsum)
                fail_msg("exp_sum isa %s n=%lld: sum %.9g vs %.9g", ds_isa_name((ds_isa)isa),
                         (long long)n, sum, dsum);
        }
    }
    const float sp[5] = {NAN, -100.0f, 0.0f, -INFINITY, 1.0f};
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        assert_true(ds_max_f32_isa((ds_isa)isa, sp, 5) == 1.0f);
        assert_true(ds_max_f32_isa((ds_isa)isa, sp, 1) == -INFINITY);
        assert_true(ds_max_f32_isa((ds_isa)isa, sp, 0) == -INFINITY);
        memcpy(y, sp, sizeof sp);
        ds_exp_sum_f32_isa((ds_isa)isa, y, 5, 0.0f);
        assert_true(isnan(y[0]));
        assert_true(y[1] == 0.0f && y[3] == 0.0f);
        assert_true(y[2] == 1.0f);
        assert_true(fabsf(y[4] - 2.71828183f) < 4e-7f * 2.71828183f);
    }
}

/* The multi-head attention kernels: bit for bit one ds_dot_f32_isa / ds_axpy_f32_isa call per
 * (head, row) at every ISA level, for head counts around the groups of four and lengths with
 * every SIMD tail (the MLA widths 576 / 512 among them), with strides wider than the length;
 * nothing outside the outputs is written. */
static void test_heads(void **state)
{
    (void)state;
    static const int k_nh[] = {1, 2, 3, 4, 5, 7, 8, 9, 16};
    static const int64_t k_len[] = {1, 15, 16, 17, 64, 80, 100, 512, 576};
    enum { MAXH = 16, MAXS = 13, MAXL = 576, LD = MAXL + 3, LDS = MAXS + 2 };
    static float q[MAXH * LD], rows[MAXS * LD], p[MAXH * LDS], sc[MAXH * LDS];
    static float acc[MAXH * LD], acc0[MAXH * LD], accw[MAXH * LD];
    kr_rng r = {7};
    fill(&r, q, MAXH * LD, 1.0f);
    fill(&r, rows, MAXS * LD, 2.0f);
    fill(&r, p, MAXH * LDS, 1.0f);
    fill(&r, acc0, MAXH * LD, 1.0f);
    for (size_t a = 0; a < sizeof k_nh / sizeof k_nh[0]; a++)
        for (size_t b = 0; b < sizeof k_len / sizeof k_len[0]; b++)
            for (int n = 1; n <= MAXS; n += (n < 6 ? 1 : 4)) {
                const int nh = k_nh[a];
                const int64_t len = k_len[b];
                for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
                    /* against the dot in double: f32 rounding of a sum of len products, each
                     * term's bound sum |q||x| times a few ulp per step of a summation tree */
                    for (int i = 0; i < MAXH * LDS; i++)
                        sc[i] = -7.0f;
                    ds_dot_heads_f32_isa((ds_isa)isa, q, nh, LD, rows, n, LD, len, 0.125f, sc, LDS);
                    for (int h = 0; h < MAXH; h++)
                        for (int s = 0; s < LDS; s++) {
                            const float got = sc[h * LDS + s];
                            if (h >= nh || s >= n) {
                                if (got != -7.0f)
                                    fail_msg("dot_heads isa %s nh %d n %d: wrote [%d][%d]",
                                             ds_isa_name((ds_isa)isa), nh, n, h, s);
                                continue;
                            }
                            double dot = 0.0, mag = 0.0;
                            for (int64_t i = 0; i < len; i++) {
                                dot += (double)q[h * LD + i] * rows[s * LD + i];
                                mag += fabs((double)q[h * LD + i] * rows[s * LD + i]);
                            }
                            if (fabs(got - 0.125 * dot) > 0.125 * mag * 4e-7 * 8 + 1e-30)
                                fail_msg("dot_heads isa %s nh %d len %lld n %d [%d][%d]: %.9g "
                                         "against %.9g",
                                         ds_isa_name((ds_isa)isa), nh, (long long)len, n, h, s,
                                         got, 0.125 * dot);
                        }
                    memcpy(acc, acc0, sizeof acc);
                    memcpy(accw, acc0, sizeof acc);
                    for (int s = 0; s < n; s++)
                        for (int h = 0; h < nh; h++)
                            ds_axpy_f32_isa((ds_isa)isa, accw + h * LD, p[h * LDS + s],
                                            rows + s * LD, len);
                    ds_axpy_heads_f32_isa((ds_isa)isa, acc, nh, LD, p, LDS, rows, n, LD, len);
                    if (memcmp(acc, accw, sizeof acc) != 0)
                        fail_msg("axpy_heads isa %s nh %d len %lld n %d", ds_isa_name((ds_isa)isa),
                                 nh, (long long)len, n);
                }
            }
}

/* The attention kernels over f16 / bf16 rows: at the AVX-512 level the bits of the f32 kernels
 * on the rows' exact f32 values (scores and accumulators), elsewhere within a few ulp of
 * double precision; nothing outside the outputs is written. */
static void test_heads_h16(void **state)
{
    (void)state;
    static const int k_nh[] = {1, 3, 4, 8, 16};
    static const int64_t k_len[] = {1, 15, 16, 17, 33, 64, 512, 576};
    static const int k_n[] = {1, 3, 4, 5, 13};
    enum { MAXH = 16, MAXS = 13, MAXL = 576, LD = MAXL + 3, LDS = MAXS + 2 };
    static float q[MAXH * LD], rf[MAXS * LD], p[MAXH * LDS], sc[MAXH * LDS], sw[MAXH * LDS];
    static float acc[MAXH * LD], acc0[MAXH * LD], accw[MAXH * LD];
    static uint16_t rh[MAXS * LD];
    kr_rng r = {23};
    fill(&r, q, MAXH * LD, 1.0f);
    fill(&r, p, MAXH * LDS, 1.0f);
    fill(&r, acc0, MAXH * LD, 1.0f);
    for (int bf = 0; bf < 2; bf++) {
        fill(&r, rf, MAXS * LD, 2.0f);
        for (int i = 0; i < MAXS * LD; i++) { /* the rows and their exact f32 values */
            rh[i] = bf ? ds_f32_to_bf16(rf[i]) : ds_f32_to_f16(rf[i]);
            rf[i] = bf ? ds_bf16_to_f32(rh[i]) : ds_f16_to_f32(rh[i]);
        }
        for (size_t a = 0; a < sizeof k_nh / sizeof k_nh[0]; a++)
            for (size_t b = 0; b < sizeof k_len / sizeof k_len[0]; b++)
                for (size_t c = 0; c < sizeof k_n / sizeof k_n[0]; c++)
                    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
                        const int nh = k_nh[a], n = k_n[c];
                        const int64_t len = k_len[b];
                        const bool exact = isa == DS_ISA_AVX512;
                        for (int i = 0; i < MAXH * LDS; i++)
                            sc[i] = sw[i] = -7.0f;
                        ds_dot_heads_h16_isa((ds_isa)isa, q, nh, LD, rh, n, LD, len, 0.125f, sc,
                                             LDS, bf);
                        if (exact)
                            ds_dot_heads_f32_isa((ds_isa)isa, q, nh, LD, rf, n, LD, len, 0.125f,
                                                 sw, LDS);
                        for (int h = 0; h < MAXH; h++)
                            for (int s = 0; s < LDS; s++) {
                                const float got = sc[h * LDS + s];
                                if (h >= nh || s >= n) {
                                    assert_true(got == -7.0f);
                                    continue;
                                }
                                double dot = 0.0, mag = 0.0;
                                for (int64_t i = 0; i < len; i++) {
                                    dot += (double)q[h * LD + i] * rf[s * LD + i];
                                    mag += fabs((double)q[h * LD + i] * rf[s * LD + i]);
                                }
                                if (exact ? memcmp(&got, &sw[h * LDS + s], sizeof got) != 0
                                          : fabs(got - 0.125 * dot) > 0.125 * mag * 4e-7 * 8 + 1e-30)
                                    fail_msg("dot_heads_h16 %s isa %s nh %d len %lld n %d [%d][%d]: "
                                             "%.9g against %.9g", bf ? "bf16" : "f16",
                                             ds_isa_name((ds_isa)isa), nh, (long long)len, n, h, s,
                                             got, exact ? sw[h * LDS + s] : 0.125 * dot);
                            }
                        memcpy(acc, acc0, sizeof acc);
                        memcpy(accw, acc0, sizeof acc);
                        ds_axpy_heads_h16_isa((ds_isa)isa, acc, nh, LD, p, LDS, rh, n, LD, len, bf);
                        if (exact) {
                            ds_axpy_heads_f32_isa((ds_isa)isa, accw, nh, LD, p, LDS, rf, n, LD, len);
                            if (memcmp(acc, accw, sizeof acc) != 0)
                                fail_msg("axpy_heads_h16 %s nh %d len %lld n %d: not the f32 bits",
                                         bf ? "bf16" : "f16", nh, (long long)len, n);
                            continue;
                        }
                        for (int h = 0; h < MAXH; h++)
                            for (int64_t i = 0; i < LD; i++) {
                                double want = acc0[h * LD + i], mag = fabs(want);
                                if (h < nh && i < len)
                                    for (int s = 0; s < n; s++) {
                                        want += (double)p[h * LDS + s] * rf[s * LD + i];
                                        mag += fabs((double)p[h * LDS + s] * rf[s * LD + i]);
                                    }
                                if (fabs(acc[h * LD + i] - want) > mag * 4e-7 * 4)
                                    fail_msg("axpy_heads_h16 %s isa %s nh %d len %lld n %d [%d][%lld]",
                                             bf ? "bf16" : "f16", ds_isa_name((ds_isa)isa), nh,
                                             (long long)len, n, h, (long long)i);
                            }
                    }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_axpy),
        cmocka_unit_test(test_heads),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_softmax_silu),
        cmocka_unit_test(test_silu_isa),
        cmocka_unit_test(test_exp_sum_max),
        cmocka_unit_test(test_heads_h16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
