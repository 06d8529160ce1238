/* tests/forward/test_rope.c — YaRN frequencies, adjacent-pair rotation, softmax scale (§2.3-2.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "deepseek/deepseek.h"
#include "forward/rope.h"

#include <math.h>

static void test_yarn_range_v2(void **state)
{
    (void)state;
    /* corr(32) = 10.47 -> low 10, corr(1) = 22.51 -> high 23 */
    assert_float_equal(ds_rope_yarn_corr_dim(64, 4096, 32.0, 10000.0), 10.4718, 1e-3);
    assert_float_equal(ds_rope_yarn_corr_dim(64, 4096, 1.0, 10000.0), 22.5134, 1e-3);
    ds_rope r;
    assert_int_equal(ds_rope_init(&r, 64, 10000.0f, DS_ROPE_SCALING_YARN, 40.0f, 4096, 32.0f, 1.0f), 0);
    assert_int_equal(r.n_pairs, 32);
    assert_int_equal(r.corr_low, 10);
    assert_int_equal(r.corr_high, 23);
    for (uint32_t j = 0; j < 32; j++) {
        double f = pow(10000.0, -2.0 * j / 64.0);
        double ramp = (j - 10.0) / 13.0;
        if (ramp < 0)
            ramp = 0;
        if (ramp > 1)
            ramp = 1;
        double want = f * (1 - ramp) + f / 40.0 * ramp;
        assert_float_equal(r.freq[j], want, 1e-12 * (f > 1e-6 ? 1 : f));
        if (j <= 10)
            assert_float_equal(r.freq[j], f, 1e-15); /* extrapolation: unchanged */
        if (j >= 23)
            assert_float_equal(r.freq[j], f / 40.0, 1e-15); /* interpolation: divided by s */
    }
    assert_float_equal(r.freq[0], 1.0, 0.0);
    /* j = 16: ramp 6/13 */
    double f16 = pow(10000.0, -0.5);
    assert_float_equal(r.freq[16], f16 * (7.0 / 13.0) + f16 / 40.0 * (6.0 / 13.0), 1e-15);
}

static void test_no_scaling(void **state)
{
    (void)state;
    ds_rope r;
    assert_int_equal(ds_rope_init(&r, 64, 10000.0f, DS_ROPE_SCALING_NONE, 1.0f, 0, 32.0f, 1.0f), 0);
    for (uint32_t j = 0; j < 32; j++)
        assert_float_equal(r.freq[j], pow(10000.0, -2.0 * j / 64.0), 1e-15);
    /* YaRN with factor 1 is a no-op too */
    assert_int_equal(ds_rope_init(&r, 64, 10000.0f, DS_ROPE_SCALING_YARN, 1.0f, 4096, 32.0f, 1.0f), 0);
    assert_float_equal(r.freq[31], pow(10000.0, -62.0 / 64.0), 1e-15);
    assert_int_equal(ds_rope_init(&r, 63, 10000.0f, DS_ROPE_SCALING_NONE, 1.0f, 0, 32.0f, 1.0f), -1);
    assert_int_equal(ds_rope_init(&r, 0, 10000.0f, DS_ROPE_SCALING_NONE, 1.0f, 0, 32.0f, 1.0f), -1);
}

static void test_attn_scale(void **state)
{
    (void)state;
    assert_float_equal(ds_rope_attn_scale(192, DS_ROPE_SCALING_YARN, 40.0f, 0.707f), 0.1147214, 1e-6);
    assert_float_equal(ds_rope_attn_scale(192, DS_ROPE_SCALING_YARN, 40.0f, 1.0f), 0.1352338, 1e-6);
    assert_float_equal(ds_rope_attn_scale(192, DS_ROPE_SCALING_NONE, 40.0f, 1.0f), 0.0721688, 1e-6);
    assert_float_equal(ds_rope_attn_scale(192, DS_ROPE_SCALING_YARN, 40.0f, 0.0f), 0.0721688, 1e-6);
    assert_float_equal(ds_rope_yarn_mscale(40.0, 0.707), 1.260804, 1e-6);
    assert_float_equal(ds_rope_yarn_mscale(40.0, 1.0), 1.368888, 1e-6);
    assert_float_equal(ds_rope_yarn_mscale(1.0, 1.0), 1.0, 0.0);
}

/* Adjacent pairs (x[2j], x[2j+1]) rotate by pos * f'_j with unit magnitude. */
static void test_rotation(void **state)
{
    (void)state;
    ds_rope r;
    assert_int_equal(ds_rope_init(&r, 64, 10000.0f, DS_ROPE_SCALING_YARN, 40.0f, 4096, 32.0f, 1.0f), 0);
    float cs[64], x[64], y[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)((i % 2) ? -0.5 + 0.01 * i : 1.0 - 0.02 * i);

    /* position 0: identity */
    ds_rope_cos_sin(&r, 0, cs);
    for (int i = 0; i < 64; i++)
        y[i] = x[i];
    ds_rope_apply(&r, cs, y);
    for (int i = 0; i < 64; i++)
        assert_float_equal(y[i], x[i], 0.0);

    const uint32_t positions[3] = {1, 5, 5000};
    for (int pi = 0; pi < 3; pi++) {
        uint32_t p = positions[pi];
        ds_rope_cos_sin(&r, p, cs);
        for (int i = 0; i < 64; i++)
            y[i] = x[i];
        ds_rope_apply(&r, cs, y);
        for (uint32_t j = 0; j < 32; j++) {
            double a = (double)p * r.freq[j];
            assert_float_equal(cs[2 * j], cos(a), 1e-7);
            assert_float_equal(cs[2 * j + 1], sin(a), 1e-7);
            assert_float_equal(cs[2 * j] * cs[2 * j] + cs[2 * j + 1] * cs[2 * j + 1], 1.0, 1e-6);
            double x0 = x[2 * j], x1 = x[2 * j + 1];
            assert_float_equal(y[2 * j], x0 * cos(a) - x1 * sin(a), 1e-5);
            assert_float_equal(y[2 * j + 1], x0 * sin(a) + x1 * cos(a), 1e-5);
        }
    }
    /* a unit vector in pair 0 at position 1 turns by exactly 1 radian (f_0 = 1) */
    float u[64] = {1.0f, 0.0f};
    ds_rope_cos_sin(&r, 1, cs);
    ds_rope_apply(&r, cs, u);
    assert_float_equal(u[0], cos(1.0), 1e-7);
    assert_float_equal(u[1], sin(1.0), 1e-7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yarn_range_v2),
        cmocka_unit_test(test_no_scaling),
        cmocka_unit_test(test_attn_scale),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
