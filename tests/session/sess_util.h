/*
 * tests/session/sess_util.h — helpers shared by the session tests: opening the generated test
 * models (paths in DS_SESS_* environment variables, set by tests/session/meson.build), opening
 * sessions, comparing logits, forcing tokens through the logit bias, timing.
 */
#ifndef DS_TESTS_SESS_UTIL_H
#define DS_TESTS_SESS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "deepseek/chat.h"
#include "deepseek/deepseek.h"
#include "deepseek/session.h"
#include "deepseek/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Open the model named by environment variable `env`; NULL (and a message) if it is not set. */
static inline ds_model *tu_model_env(const char *env)
{
    const char *path = getenv(env);
    if (!path || !*path) {
        fprintf(stderr, "note: %s is not set (no such test model: DS_SHARED_DIR fixtures absent?)\n",
                env);
        return NULL;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.n_threads = 2;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, path, &mp);
    if (s != DS_OK)
        fprintf(stderr, "ds_model_open(%s): %s\n", path, ds_last_error());
    assert_int_equal(s, DS_OK);
    return m;
}

static inline ds_model *tu_model(const char *env)
{
    ds_model *m = tu_model_env(env);
    assert_non_null(m);
    return m;
}

static inline ds_session_params tu_params(uint32_t n_ctx)
{
    ds_session_params p;
    ds_session_default_params(&p, sizeof p);
    p.n_ctx = n_ctx;
    return p;
}

static inline ds_session *tu_open(ds_model *m, const ds_session_params *p)
{
    ds_session *s = NULL;
    ds_status st = ds_session_open(&s, m, p);
    if (st != DS_OK)
        fprintf(stderr, "ds_session_open: %s\n", ds_last_error());
    assert_int_equal(st, DS_OK);
    assert_non_null(s);
    return s;
}

static inline void tu_feed(ds_session *s, const int32_t *t, size_t n)
{
    ds_status st = ds_session_feed(s, t, n);
    if (st != DS_OK)
        fprintf(stderr, "ds_session_feed: %s\n", ds_session_errmsg(s));
    assert_int_equal(st, DS_OK);
}

static inline int32_t tu_step(ds_session *s)
{
    int32_t t = -2;
    ds_status st = ds_session_step(s, &t);
    if (st != DS_OK)
        fprintf(stderr, "ds_session_step: %d %s\n", st, ds_session_errmsg(s));
    assert_int_equal(st, DS_OK);
    return t;
}

/* a deterministic pseudo-random prompt of n ids in [1, vocab) */
static inline void tu_prompt(int32_t *out, size_t n, uint32_t vocab, uint32_t seed)
{
    uint64_t x = seed * 2654435761u + 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (int32_t)(1 + (x >> 33) % (vocab - 1));
    }
}

static inline const float *tu_logits(ds_session *s, size_t *nv)
{
    const float *l = NULL;
    ds_status st = ds_session_logits(s, -1, &l, nv);
    assert_int_equal(st, DS_OK);
    return l;
}

/* max |a - b| relative to max |a| */
static inline double tu_rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, ma = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md)
            md = d;
        if (fabs(a[i]) > ma)
            ma = fabs(a[i]);
    }
    return md / ma;
}

static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Make the next greedy step produce `tok` (a huge bias on it only). */
static inline void tu_force(ds_session *s, int32_t tok)
{
    assert_int_equal(ds_session_clear_logit_bias(s), DS_OK);
    assert_int_equal(ds_session_set_logit_bias(s, tok, 1e6f), DS_OK);
}

#endif
