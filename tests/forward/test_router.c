/* tests/forward/test_router.c — lib/moe/router: hand-computed routing cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "moe/router.h"

#include <math.h>
#include <string.h>

#define TOL 1e-5

static void route(const ds_router *r, const float *logits, int32_t *ids, float *w)
{
    float scratch[256];
    assert_true(ds_router_scratch_floats(r) <= 256);
    assert_int_equal(ds_router_check(r, NULL), DS_OK);
    ds_router_select(r, logits, ids, w, scratch);
}

/* V2-Lite style: softmax, no renormalisation, scale 1; then V2 style scale 16. */
static void test_softmax_noscale(void **state)
{
    (void)state;
    const float logits[4] = {1.0f, 2.0f, 3.0f, 0.0f};
    /* softmax: e^1, e^2, e^3, e^0 over 31.19287 */
    const double p[4] = {0.0871443187, 0.2368828181, 0.6439142599, 0.0320586033};
    ds_router r = {.n_expert = 4, .n_used = 2, .n_group = 1, .n_group_used = 1,
                   .gating = DS_GATING_SOFTMAX, .norm = false, .scale = 1.0f, .bias = NULL};
    int32_t ids[2];
    float w[2];
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 1);
    assert_float_equal(w[0], p[2], TOL);
    assert_float_equal(w[1], p[1], TOL);

    r.scale = 16.0f;
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 1);
    assert_float_equal(w[0], 16.0 * p[2], 16 * TOL);
    assert_float_equal(w[1], 16.0 * p[1], 16 * TOL);
}

/* V3 style: sigmoid + selection bias + renormalisation + scale 2.5. The bias changes which
 * experts are chosen but the weights are the unbiased sigmoids. */
static void test_sigmoid_bias_norm_scale(void **state)
{
    (void)state;
    const float logits[4] = {0.0f, 1.0f, -1.0f, 2.0f};
    /* sigmoid: 0.5, 0.7310586, 0.2689414, 0.8807971 */
    const float bias[4] = {0.0f, 0.0f, 1.0f, 0.0f};
    ds_router r = {.n_expert = 4, .n_used = 2, .n_group = 1, .n_group_used = 1,
                   .gating = DS_GATING_SIGMOID, .norm = true, .scale = 2.5f, .bias = NULL};
    int32_t ids[2];
    float w[2];

    /* without bias: experts 3 and 1 */
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 1);
    double s = 0.8807970780 + 0.7310585786;
    assert_float_equal(w[0], 2.5 * 0.8807970780 / s, TOL);
    assert_float_equal(w[1], 2.5 * 0.7310585786 / s, TOL);

    /* with bias: q = [0.5, 0.731, 1.269, 0.881] -> experts 2 and 3, weights from sigmoid only */
    r.bias = bias;
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    s = 0.2689414214 + 0.8807970780;
    assert_float_equal(w[0], 2.5 * 0.2689414214 / s, TOL); /* 0.5847878 */
    assert_float_equal(w[1], 2.5 * 0.8807970780 / s, TOL); /* 1.9152122 */
    assert_float_equal(w[0] + w[1], 2.5, TOL);

    /* without renormalisation the weights are the raw sigmoids times the scale */
    r.norm = false;
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_float_equal(w[0], 2.5 * 0.2689414214, TOL);
    assert_float_equal(w[1], 2.5 * 0.8807970780, TOL);
}

/* Scores per group (4 groups of 2):  g0 [0.9 0.1]  g1 [0.6 0.6]  g2 [0.2 0.2]  g3 [0.1 0.3]
 * max:        g0 = 0.9 wins    -> experts 0, 1
 * top-2 sum:  g1 = 1.2 wins    -> experts 2, 3 (tie 0.6/0.6 -> lower index first) */
static const float grp_v[8] = {0.9f, 0.1f, 0.6f, 0.6f, 0.2f, 0.2f, 0.1f, 0.3f};

static void test_groups_max_softmax(void **state)
{
    (void)state;
    float logits[8];
    for (int i = 0; i < 8; i++)
        logits[i] = logf(grp_v[i]); /* softmax -> v / 3 */
    ds_router r = {.n_expert = 8, .n_used = 2, .n_group = 4, .n_group_used = 1,
                   .gating = DS_GATING_SOFTMAX, .norm = false, .scale = 1.0f, .bias = NULL};
    int32_t ids[2];
    float w[2];
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_float_equal(w[0], 0.3, TOL);
    assert_float_equal(w[1], 0.1 / 3.0, TOL);

    /* without groups the second expert is 2 (0.2 > 0.0333) */
    r.n_group = 1;
    r.n_group_used = 1;
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);
    assert_float_equal(w[1], 0.2, TOL);
}

static void test_groups_top2sum_sigmoid(void **state)
{
    (void)state;
    float logits[8];
    for (int i = 0; i < 8; i++)
        logits[i] = logf(grp_v[i] / (1.0f - grp_v[i])); /* sigmoid -> v */
    ds_router r = {.n_expert = 8, .n_used = 2, .n_group = 4, .n_group_used = 1,
                   .gating = DS_GATING_SIGMOID, .norm = true, .scale = 1.0f, .bias = NULL};
    int32_t ids[2];
    float w[2];
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_float_equal(w[0], 0.5, TOL);
    assert_float_equal(w[1], 0.5, TOL);

    /* two groups kept: g1 (1.2) and g0 (1.0) -> experts 0 (0.9) and 2 (0.6, before 3) */
    r.n_group_used = 2;
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 2);
    assert_float_equal(w[0], 0.9 / 1.5, TOL);
    assert_float_equal(w[1], 0.6 / 1.5, TOL);
}

/* n_group == 1, and n_group_used == n_group, are no-ops. */
static void test_groups_noop(void **state)
{
    (void)state;
    const float logits[8] = {0.3f, -1.0f, 2.0f, 0.1f, 1.5f, -0.2f, 0.7f, 1.4f};
    const uint32_t gating[2] = {DS_GATING_SOFTMAX, DS_GATING_SIGMOID};
    for (int gi = 0; gi < 2; gi++) {
        ds_router a = {.n_expert = 8, .n_used = 3, .n_group = 1, .n_group_used = 1,
                       .gating = gating[gi], .norm = gi == 1, .scale = 1.5f, .bias = NULL};
        ds_router b = a;
        b.n_group = 4;
        b.n_group_used = 4;
        int32_t ia[3], ib[3];
        float wa[3], wb[3];
        route(&a, logits, ia, wa);
        route(&b, logits, ib, wb);
        assert_memory_equal(ia, ib, sizeof ia);
        assert_memory_equal(wa, wb, sizeof wa);
        assert_int_equal(ia[0], 2);
        assert_int_equal(ia[1], 4);
        assert_int_equal(ia[2], 7);
    }
}

/* Masked experts are -inf, not 0: with a negative selection score in the kept group (V3 bias),
 * a 0-filled masked group would win. */
static void test_groups_mask_neg_inf(void **state)
{
    (void)state;
    const float v[6] = {0.9f, 0.8f, 0.1f, 0.2f, 0.2f, 0.2f};
    float logits[6], bias[6];
    for (int i = 0; i < 6; i++) {
        logits[i] = logf(v[i] / (1.0f - v[i]));
        bias[i] = -1.0f;
    }
    ds_router r = {.n_expert = 6, .n_used = 2, .n_group = 2, .n_group_used = 1,
                   .gating = DS_GATING_SIGMOID, .norm = false, .scale = 1.0f, .bias = bias};
    int32_t ids[2];
    float w[2];
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    assert_float_equal(w[0], 0.9, TOL);
    assert_float_equal(w[1], 0.8, TOL);
}

/* Ties go to the lower index. */
static void test_ties(void **state)
{
    (void)state;
    const float logits[6] = {1.0f, 2.0f, 2.0f, 1.0f, 2.0f, 1.0f};
    ds_router r = {.n_expert = 6, .n_used = 2, .n_group = 1, .n_group_used = 1,
                   .gating = DS_GATING_SOFTMAX, .norm = false, .scale = 1.0f, .bias = NULL};
    int32_t ids[2];
    float w[2];
    route(&r, logits, ids, w);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_float_equal(w[0], w[1], 0.0);

    const float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    r.n_expert = 4;
    r.n_used = 3;
    int32_t ids3[3];
    float w3[3];
    route(&r, flat, ids3, w3);
    assert_int_equal(ids3[0], 0);
    assert_int_equal(ids3[1], 1);
    assert_int_equal(ids3[2], 2);
    assert_float_equal(w3[0], 0.25, TOL);

    /* tied groups: lower group index kept */
    const float g[4] = {0.0f, 1.0f, 1.0f, 0.0f};
    ds_router rg = {.n_expert = 4, .n_used = 1, .n_group = 2, .n_group_used = 1,
                    .gating = DS_GATING_SOFTMAX, .norm = false, .scale = 1.0f, .bias = NULL};
    route(&rg, g, ids, w);
    assert_int_equal(ids[0], 1);
}

static void test_check(void **state)
{
    (void)state;
    ds_router r = {.n_expert = 8, .n_used = 4, .n_group = 4, .n_group_used = 1,
                   .gating = DS_GATING_SOFTMAX, .norm = false, .scale = 1.0f, .bias = NULL};
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_router_check(&r, &err), DS_ERR_UNSUPPORTED); /* 1 group of 2 < 4 */
    r.n_group_used = 2;
    assert_int_equal(ds_router_check(&r, &err), DS_OK);
    r.n_group = 3;
    assert_int_equal(ds_router_check(&r, &err), DS_ERR_UNSUPPORTED); /* 3 does not divide 8 */
    r.n_group = 1;
    r.n_group_used = 1;
    r.gating = DS_GATING_NONE;
    assert_int_equal(ds_router_check(&r, &err), DS_ERR_UNSUPPORTED);
    r.gating = DS_GATING_SIGMOID;
    r.n_used = 9;
    assert_int_equal(ds_router_check(&r, &err), DS_ERR_UNSUPPORTED);
}

static void test_batch_and_grouping(void **state)
{
    (void)state;
    /* 3 tokens, 4 experts, k = 2 */
    const float logits[3][4] = {{3, 0, 2, -1}, {2, 1, -5, -5}, {-1, 1, 3, 0}};
    ds_router r = {.n_expert = 4, .n_used = 2, .n_group = 1, .n_group_used = 1,
                   .gating = DS_GATING_SOFTMAX, .norm = true, .scale = 1.0f, .bias = NULL};
    float scratch[64];
    int32_t ids[6];
    float w[6];
    ds_router_select_batch(&r, &logits[0][0], 4, 3, ids, w, scratch);
    const int32_t want[6] = {0, 2, 0, 1, 2, 1};
    assert_memory_equal(ids, want, sizeof want);
    for (int t = 0; t < 3; t++)
        assert_float_equal(w[2 * t] + w[2 * t + 1], 1.0, TOL);

    uint32_t off[5];
    int32_t tok[6];
    float gw[6];
    assert_true(ds_moe_group_tokens(ids, w, 3, 2, 4, off, tok, gw));
    const uint32_t want_off[5] = {0, 2, 4, 6, 6};
    assert_memory_equal(off, want_off, sizeof want_off);
    const int32_t want_tok[6] = {0, 1, 1, 2, 0, 2};
    assert_memory_equal(tok, want_tok, sizeof want_tok);
    assert_float_equal(gw[0], w[0], 0.0); /* expert 0, token 0 */
    assert_float_equal(gw[1], w[2], 0.0); /* expert 0, token 1 */
    assert_float_equal(gw[2], w[3], 0.0); /* expert 1, token 1 */
    assert_float_equal(gw[3], w[5], 0.0); /* expert 1, token 2 */
    assert_float_equal(gw[4], w[1], 0.0); /* expert 2, token 0 */
    assert_float_equal(gw[5], w[4], 0.0); /* expert 2, token 2 */

    int32_t bad[2] = {0, 4};
    assert_false(ds_moe_group_tokens(bad, w, 1, 2, 4, off, tok, gw));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_noscale),
        cmocka_unit_test(test_sigmoid_bias_norm_scale),
        cmocka_unit_test(test_groups_max_softmax),
        cmocka_unit_test(test_groups_top2sum_sigmoid),
        cmocka_unit_test(test_groups_noop),
        cmocka_unit_test(test_groups_mask_neg_inf),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_batch_and_grouping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
