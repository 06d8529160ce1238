/*
 * tests/forward/test_forward_model.c — the deepseek2 forward pass on GGUF files written by
 * tools/make-test-model.py and bound by the model loader.
 *
 * Usage: test-forward-model SPLIT.gguf COMBINED.gguf [more pairs...]
 * Each pair is the same seeded model in the split (attn_k_b/attn_v_b) and the combined
 * (attn_kv_b) form. On DS_PRECISION_F32:
 *   (a) prefill N then M single steps == one prefill of N+M == N+M single steps == chunked
 *       prefill (max |diff| <= 1e-3 * max |logit|),
 *   (b) split and combined forms give the same logits,
 *   (c) context full leaves the state usable and never passes n_ctx.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "forward/deepseek2.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "util/mapping.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loaded {
    ds_mapping map;
    gguf_file gf;
    ds_model_data md;
} loaded;

static int g_argc;
static char **g_argv;
static ds_mm *g_mm;

static loaded *load(const char *path)
{
    loaded *m = calloc(1, sizeof *m);
    assert_non_null(m);
    ds_err err;
    ds_err_clear(&err);
    ds_status s = ds_mapping_open(&m->map, path, 0, NULL, NULL, NULL, NULL, &err);
    if (s == DS_OK)
        s = gguf_parse(&m->gf, m->map.data, m->map.size, &err);
    if (s == DS_OK)
        s = ds_model_data_load(&m->md, &m->gf, false, &err);
    if (s != DS_OK)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    assert_int_equal(s, DS_OK);
    return m;
}

static void unload(loaded *m)
{
    ds_model_data_free(&m->md);
    gguf_free(&m->gf);
    ds_mapping_close(&m->map);
    free(m);
}

static ds2_state *mkstate(const ds_model_data *md, uint32_t n_ctx, uint32_t n_batch, ds_kv_type kt)
{
    ds2_state_params p = {.n_ctx = n_ctx, .kv_type = kt, .n_batch = n_batch};
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
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i]))
            return INFINITY;
        m = fmax(m, fabs((double)a[i] - b[i]));
    }
    return m;
}

static void gen_tokens(int32_t *tok, uint32_t n, uint32_t vocab, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 7;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int32_t)((x >> 8) % vocab);
    }
}

static void check_close(const char *what, const float *a, const float *b, size_t n)
{
    double m = max_abs(a, n), d = max_diff(a, b, n);
    fprintf(stderr, "  %-32s max|logit| %.4g  max|diff| %.3g\n", what, m, d);
    assert_true(m > 0.0);
    assert_true(d <= 1e-3 * m);
}

enum { N = 7, M = 6, NT = N + M };

static void run_pair(const char *split_path, const char *comb_path)
{
    fprintf(stderr, "%s / %s\n", split_path, comb_path);
    loaded *ms = load(split_path), *mc = load(comb_path);
    assert_true(ms->md.hp.kv_split);
    assert_false(mc->md.hp.kv_split);
    const uint32_t V = ms->md.hp.n_vocab;
    int32_t tok[NT];
    gen_tokens(tok, NT, V, 3);
    float *a = calloc((size_t)NT * V, sizeof(float)), *b = calloc((size_t)NT * V, sizeof(float));
    float *c = calloc((size_t)NT * V, sizeof(float)), *e = calloc((size_t)NT * V, sizeof(float));
    float *f = calloc((size_t)NT * V, sizeof(float));
    assert_true(a && b && c && e && f);

    /* (a) one prefill; prefill N + M steps; NT single steps; chunks of 4 */
    ds2_state *st = mkstate(&ms->md, 32, 64, DS_KV_F32);
    fwd(st, tok, NT, a, true);
    ds2_state_free(st);

    st = mkstate(&ms->md, 32, 64, DS_KV_F32);
    fwd(st, tok, N, b, true);
    for (uint32_t i = N; i < NT; i++)
        fwd(st, tok + i, 1, b + (size_t)i * V, false);
    ds2_state_free(st);

    st = mkstate(&ms->md, 32, 1, DS_KV_F32);
    for (uint32_t i = 0; i < NT; i++)
        fwd(st, tok + i, 1, c + (size_t)i * V, true);
    ds2_state_free(st);

    st = mkstate(&ms->md, 32, 4, DS_KV_F32);
    fwd(st, tok, NT, e, true);
    ds2_state_free(st);

    check_close("prefill N + M steps", a, b, (size_t)NT * V);
    check_close("single steps", a, c, (size_t)NT * V);
    check_close("chunked prefill (4)", a, e, (size_t)NT * V);

    /* (b) the combined form gives the same logits */
    st = mkstate(&mc->md, 32, 64, DS_KV_F32);
    fwd(st, tok, NT, f, true);
    ds2_state_free(st);
    check_close("combined vs split", a, f, (size_t)NT * V);
    st = mkstate(&mc->md, 32, 1, DS_KV_F32);
    for (uint32_t i = 0; i < NT; i++)
        fwd(st, tok + i, 1, f + (size_t)i * V, true);
    ds2_state_free(st);
    check_close("combined steps vs split", a, f, (size_t)NT * V);

    /* f16 / bf16 caches stay close */
    st = mkstate(&ms->md, 32, 64, DS_KV_F16);
    fwd(st, tok, NT, f, true);
    ds2_state_free(st);
    double mx = max_abs(a, (size_t)NT * V), d16 = max_diff(a, f, (size_t)NT * V);
    fprintf(stderr, "  %-32s max|diff| %.3g\n", "f16 cache", d16);
    assert_true(d16 <= 2e-2 * mx);

    /* (c) context full */
    st = mkstate(&ms->md, 8, 4, DS_KV_BF16);
    ds_err err;
    ds_err_clear(&err);
    fwd(st, tok, 5, f, false);
    assert_int_equal(ds2_forward(st, tok + 5, 4, f, false, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds2_state_pos(st), 5);
    fwd(st, tok + 5, 3, f, false);
    assert_int_equal(ds2_state_pos(st), 8);
    assert_int_equal(ds2_forward(st, tok + 8, 1, f, false, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_kv_bytes_per_token(ds2_state_kv(st)),
                     ds2_kv_bytes_per_token(&ms->md.hp, 2));
    ds2_state_free(st);

    free(a);
    free(b);
    free(c);
    free(e);
    free(f);
    unload(ms);
    unload(mc);
}

static void test_models(void **state)
{
    (void)state;
    assert_true(g_argc >= 3 && (g_argc - 1) % 2 == 0);
    for (int i = 1; i + 1 < g_argc; i += 2)
        run_pair(g_argv[i], g_argv[i + 1]);
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

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
