/*
 * tests/session/test_api.c — the session loop on the tiny test model (token ids, no tokenizer):
 * params and open failures, feed/logits/step and their failure paths, rewind/reset, logits_all,
 * stop by token limit, cancellation (ds_session_cancel during a long prefill, abort_fn,
 * progress), memory budget and accounting, per-session threads, text API without a tokenizer.
 */
#include "sess_util.h"

#include <pthread.h>
#include <unistd.h>

static ds_model *g_tiny, *g_wide;

static int setup(void **state)
{
    (void)state;
    g_tiny = tu_model("DS_SESS_TINY");
    g_wide = tu_model("DS_SESS_WIDE");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ds_model_close(g_tiny);
    ds_model_close(g_wide);
    return 0;
}

/* ---- params and open ---------------------------------------------------------------------- */

static void test_default_params(void **state)
{
    (void)state;
    ds_session_params p;
    assert_int_equal(ds_session_default_params(&p, sizeof p), DS_OK);
    assert_int_equal(p.struct_size, sizeof p);
    assert_int_equal(p.n_batch, 256);
    assert_int_equal(p.kv_type, DS_KV_F32);
    assert_true(p.top_p == 1.0f && p.repeat_penalty == 1.0f && p.temperature == 0.0f);
    assert_int_equal(p.penalty_last_n, 64);
    assert_int_equal(p.memory_budget, 0);
    assert_int_equal(ds_session_default_params(NULL, sizeof p), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_default_params(&p, 2), DS_ERR_INVALID_ARG);
    /* an older, smaller struct: only its bytes are written */
    uint8_t buf[sizeof p + 8];
    memset(buf, 0xAB, sizeof buf);
    assert_int_equal(ds_session_default_params((ds_session_params *)(void *)buf, 16), DS_OK);
    assert_int_equal(buf[16], 0xAB);
}

static void expect_open_fail(ds_model *m, const ds_session_params *p, ds_status want,
                             const char *needle)
{
    ds_session *s = (ds_session *)(uintptr_t)1;
    ds_status st = ds_session_open(&s, m, p);
    assert_int_equal(st, want);
    assert_null(s);
    if (needle && !strstr(ds_last_error(), needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", ds_last_error(), needle);
        fail();
    }
}

static void test_open_failures(void **state)
{
    (void)state;
    ds_session *s = NULL;
    assert_int_equal(ds_session_open(NULL, g_tiny, NULL), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_open(&s, NULL, NULL), DS_ERR_INVALID_ARG);
    assert_null(s);
    ds_session_params p = tu_params(64);
    p.kv_type = 9;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "kv_type");
    p = tu_params(64);
    p.n_batch = 0;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "n_batch");
    p = tu_params(1u << 25);
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "n_ctx");
    p = tu_params(64);
    p.temperature = -1;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "temperature");
    p = tu_params(64);
    p.top_p = 0;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "top_p");
    p = tu_params(64);
    p.min_p = 2;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "min_p");
    p = tu_params(64);
    p.repeat_penalty = 0;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "repeat_penalty");
    p = tu_params(64);
    p.penalty_last_n = -2;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "penalty_last_n");
    p = tu_params(64);
    p.n_threads = -1;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "n_threads");
    p = tu_params(64);
    p.reasoning = 7;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "reasoning");
    p = tu_params(64);
    p.struct_size = 2;
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "struct_size");
    p = tu_params(64);
    p.struct_size = sizeof p + 4; /* a newer host */
    expect_open_fail(g_tiny, &p, DS_ERR_INVALID_ARG, "struct_size");

    /* a vocab-only model has no weights */
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.vocab_only = 1;
    ds_model *vm = NULL;
    assert_int_equal(ds_model_open(&vm, getenv("DS_SESS_TINY"), &mp), DS_OK);
    expect_open_fail(vm, NULL, DS_ERR_UNSUPPORTED, "vocab-only");
    uint64_t b = 0;
    assert_int_equal(ds_session_memory_needed(vm, NULL, &b), DS_ERR_UNSUPPORTED);
    ds_model_close(vm);

    /* defaults: n_ctx resolved */
    s = tu_open(g_tiny, NULL);
    assert_int_equal(ds_session_n_ctx(s), 4096);
    assert_string_equal(ds_session_errmsg(s), "");
    ds_session_close(s);
    ds_session_close(NULL);
    assert_int_equal(ds_session_n_ctx(NULL), 0);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void test_feed_step_basics(void **state)
{
    (void)state;
    ds_session_params p = tu_params(32);
    ds_session *s = tu_open(g_tiny, &p);
    const float *l = NULL;
    size_t nv = 0;
    int32_t tok = 0;
    /* nothing fed */
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_ERR_STATE);
    assert_int_equal(ds_session_step(s, &tok), DS_ERR_STATE);
    assert_int_equal(tok, -1);
    assert_non_null(strstr(ds_session_errmsg(s), "feed"));
    assert_int_equal(ds_session_feed(s, NULL, 0), DS_OK);
    assert_int_equal(ds_session_feed(s, NULL, 3), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_feed(NULL, NULL, 0), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_step(NULL, &tok), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_step(s, NULL), DS_ERR_INVALID_ARG);

    /* a bad token: nothing fed */
    int32_t bad[3] = {1, 512, 2};
    assert_int_equal(ds_session_feed(s, bad, 3), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_session_errmsg(s), "index 1"));
    bad[1] = -1;
    assert_int_equal(ds_session_feed(s, bad, 3), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_n_tokens(s), 0);

    int32_t prompt[20];
    tu_prompt(prompt, 20, 512, 1);
    tu_feed(s, prompt, 20);
    assert_int_equal(ds_session_n_tokens(s), 20);
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_OK);
    assert_int_equal(nv, 512);
    assert_int_equal(ds_session_logits(s, 0, &l, NULL), DS_OK); /* one row: index 0 = last */
    assert_int_equal(ds_session_logits(s, 1, &l, &nv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_logits(s, -2, &l, &nv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_logits(s, -1, NULL, &nv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_logits(NULL, -1, &l, &nv), DS_ERR_INVALID_ARG);

    /* greedy step = argmax of the logits */
    tu_logits(s, &nv);
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_OK);
    int32_t best = 0;
    for (size_t i = 1; i < nv; i++)
        if (l[i] > l[best])
            best = (int32_t)i;
    int32_t t = tu_step(s);
    assert_int_equal(t, best);
    assert_int_equal(ds_session_n_tokens(s), 21);
    assert_int_equal(ds_session_n_generated(s), 1);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_NONE);
    const int32_t *toks = NULL;
    size_t n = 0;
    assert_int_equal(ds_session_tokens(s, &toks, &n), DS_OK);
    assert_int_equal(n, 21);
    assert_memory_equal(toks, prompt, sizeof prompt);
    assert_int_equal(toks[20], t);
    assert_int_equal(ds_session_tokens(s, NULL, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_tokens(NULL, &toks, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_n_tokens(NULL), 0);
    assert_int_equal(ds_session_n_generated(NULL), 0);

    /* too many tokens: nothing fed */
    assert_int_equal(ds_session_feed(s, prompt, 12), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_session_n_tokens(s), 21);
    assert_non_null(strstr(ds_session_errmsg(s), "do not fit"));
    /* the logits survive a refused feed */
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_OK);

    /* fill the context with steps, then CONTEXT_FULL, nothing sampled */
    tu_feed(s, prompt, 10);
    assert_int_equal(ds_session_n_tokens(s), 31);
    tu_step(s);
    assert_int_equal(ds_session_step(s, &tok), DS_ERR_CONTEXT_FULL);
    assert_int_equal(tok, -1);
    assert_int_equal(ds_session_n_tokens(s), 32);
    ds_session_close(s);
}

static void test_feed_chunks_and_logits_all(void **state)
{
    (void)state;
    int32_t prompt[50];
    tu_prompt(prompt, 50, 512, 2);
    ds_session_params p = tu_params(64);
    p.n_batch = 16;
    p.logits_all = 1;
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, prompt, 50); /* chunks 16 16 16 2: the last chunk's rows are kept */
    const float *l = NULL;
    size_t nv;
    assert_int_equal(ds_session_logits(s, 1, &l, &nv), DS_OK);
    assert_int_equal(ds_session_logits(s, 2, &l, &nv), DS_ERR_INVALID_ARG);
    /* the last row equals a plain session's logits after the same chunks (up to the rounding
     * of a 2-row against a 1-row output product) */
    ds_session_params q = tu_params(64);
    q.n_batch = 16;
    ds_session *r = tu_open(g_tiny, &q);
    tu_feed(r, prompt, 50);
    const float *lr = tu_logits(r, &nv);
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_OK);
    assert_true(tu_rel_diff(l, lr, nv) < 1e-5);
    /* steps continue from the feed with logits_all: one row */
    assert_int_equal(tu_step(s), tu_step(r));
    assert_int_equal(ds_session_logits(s, 1, &l, &nv), DS_ERR_INVALID_ARG);
    assert_int_equal(tu_step(s), tu_step(r));
    ds_session_close(s);
    ds_session_close(r);
}

static void test_rewind_refeed_equals_fresh(void **state)
{
    (void)state;
    int32_t a[40], b[12];
    tu_prompt(a, 40, 512, 3);
    tu_prompt(b, 12, 512, 4);
    ds_session_params p = tu_params(128);
    p.n_batch = 8; /* the prefix 0..31 is cut into the same chunks in both runs */
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, a, 40);
    for (int i = 0; i < 3; i++)
        tu_step(s);
    assert_int_equal(ds_session_rewind(s, 12), DS_OK); /* back to 31 tokens */
    assert_int_equal(ds_session_n_tokens(s), 31);
    assert_int_equal(ds_session_n_generated(s), 0);
    const float *l;
    size_t nv;
    assert_int_equal(ds_session_logits(s, -1, &l, &nv), DS_ERR_STATE);
    assert_int_equal(ds_session_rewind(s, 32), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_n_tokens(s), 31);
    assert_int_equal(ds_session_rewind(NULL, 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_rewind(s, 0), DS_OK);
    assert_int_equal(ds_session_rewind(s, 7), DS_OK); /* 24 tokens: a chunk boundary */
    tu_feed(s, b, 12);

    ds_session *f = tu_open(g_tiny, &p);
    tu_feed(f, a, 24);
    tu_feed(f, b, 12);
    const float *lf = tu_logits(f, &nv);
    const float *ls = tu_logits(s, &nv);
    assert_memory_equal(ls, lf, nv * sizeof(float));
    const int32_t *ts, *tf;
    size_t ns, nf;
    ds_session_tokens(s, &ts, &ns);
    ds_session_tokens(f, &tf, &nf);
    assert_int_equal(ns, nf);
    assert_memory_equal(ts, tf, ns * sizeof *ts);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tu_step(s), tu_step(f));

    /* a fresh feed of the whole sequence in one chunk agrees up to rounding */
    ds_session_params q = tu_params(128);
    ds_session *o = tu_open(g_tiny, &q);
    int32_t all[36];
    memcpy(all, a, 24 * sizeof *a);
    memcpy(all + 24, b, 12 * sizeof *b);
    tu_feed(o, all, 36);
    ds_session_rewind(s, 8); /* drop the 4 steps and the last 4 tokens of b */
    tu_feed(s, b + 8, 4);    /* same tokens again */
    const float *lo = tu_logits(o, &nv), *lsr = tu_logits(s, &nv);
    double rd = tu_rel_diff(lo, lsr, nv);
    fprintf(stderr, "one chunk vs rewound and re-fed: max relative difference %.3g\n", rd);
    assert_true(rd < 1e-4);
    ds_session_close(o);
    ds_session_close(s);
    ds_session_close(f);
}

static void test_reset_and_seeded_runs(void **state)
{
    (void)state;
    int32_t prompt[16];
    tu_prompt(prompt, 16, 512, 5);
    ds_session_params p = tu_params(128);
    p.temperature = 0.9f;
    p.top_k = 50;
    p.top_p = 0.95f;
    p.min_p = 0.02f;
    p.seed = 1234;
    ds_session *a = tu_open(g_tiny, &p);
    ds_session *b = tu_open(g_tiny, &p);
    p.seed = 99;
    ds_session *c = tu_open(g_tiny, &p);
    int32_t ta[40], tb[40], tc[40];
    tu_feed(a, prompt, 16);
    tu_feed(b, prompt, 16);
    tu_feed(c, prompt, 16);
    int diff = 0;
    for (int i = 0; i < 40; i++) {
        ta[i] = tu_step(a);
        tb[i] = tu_step(b);
        tc[i] = tu_step(c);
        diff += ta[i] != tc[i];
    }
    assert_memory_equal(ta, tb, sizeof ta);
    assert_true(diff > 0); /* another seed, another run */
    /* reset: same run again */
    assert_int_equal(ds_session_reset(a), DS_OK);
    assert_int_equal(ds_session_n_tokens(a), 0);
    assert_int_equal(ds_session_reset(NULL), DS_ERR_INVALID_ARG);
    tu_feed(a, prompt, 16);
    for (int i = 0; i < 40; i++)
        assert_int_equal(tu_step(a), ta[i]);
    /* set_seed reseeds now */
    ds_session_reset(b);
    assert_int_equal(ds_session_set_seed(b, 99), DS_OK);
    tu_feed(b, prompt, 16);
    for (int i = 0; i < 40; i++)
        assert_int_equal(tu_step(b), tc[i]);
    assert_int_equal(ds_session_set_seed(NULL, 1), DS_ERR_INVALID_ARG);
    ds_session_close(a);
    ds_session_close(b);
    ds_session_close(c);
}

static void test_set_sampling(void **state)
{
    (void)state;
    int32_t prompt[8];
    tu_prompt(prompt, 8, 512, 6);
    ds_session_params p = tu_params(64);
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, prompt, 8);
    ds_session_params q;
    ds_session_default_params(&q, sizeof q);
    q.temperature = -3;
    assert_int_equal(ds_session_set_sampling(s, &q), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_session_errmsg(s), "temperature"));
    assert_int_equal(ds_session_set_sampling(NULL, &q), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_sampling(s, NULL), DS_ERR_INVALID_ARG);
    q.temperature = 1.5f;
    q.max_tokens = 3;
    q.n_ctx = 5; /* ignored */
    assert_int_equal(ds_session_set_sampling(s, &q), DS_OK);
    assert_int_equal(ds_session_n_ctx(s), 64);
    tu_step(s);
    tu_step(s);
    int32_t t = -5;
    assert_int_equal(ds_session_step(s, &t), DS_DONE); /* the third token: limit */
    assert_true(t >= 0);
    assert_int_equal(ds_session_n_tokens(s), 11);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_LIMIT);
    assert_int_equal(ds_session_step(s, &t), DS_DONE); /* stays stopped */
    assert_int_equal(t, -1);
    assert_int_equal(ds_session_n_tokens(s), 11);
    /* a feed starts a new generation */
    tu_feed(s, prompt, 1);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_NONE);
    assert_int_equal(ds_session_n_generated(s), 0);
    tu_step(s);
    ds_session_close(s);
    assert_string_equal(ds_stop_reason_name(DS_STOP_LIMIT), "limit");
    assert_string_equal(ds_stop_reason_name(DS_STOP_EOS), "eos");
    assert_string_equal(ds_stop_reason_name(DS_STOP_STRING), "stop-string");
    assert_string_equal(ds_stop_reason_name(DS_STOP_NONE), "none");
    assert_null(ds_stop_reason_name((ds_stop_reason)42));
    assert_int_equal(ds_session_stop_reason(NULL), DS_STOP_NONE);
}

static void test_logit_bias(void **state)
{
    (void)state;
    int32_t prompt[8];
    tu_prompt(prompt, 8, 512, 7);
    ds_session *s = tu_open(g_tiny, NULL);
    tu_feed(s, prompt, 8);
    assert_int_equal(ds_session_set_logit_bias(s, 512, 1.0f), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_logit_bias(s, -1, 1.0f), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_logit_bias(s, 3, NAN), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_logit_bias(s, 3, INFINITY), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_logit_bias(NULL, 3, 1.0f), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_clear_logit_bias(NULL), DS_ERR_INVALID_ARG);
    size_t nv;
    const float *l = tu_logits(s, &nv);
    int32_t best = 0;
    for (size_t i = 1; i < nv; i++)
        if (l[i] > l[best])
            best = (int32_t)i;
    /* ban the best: the second best comes */
    int32_t second = best == 0 ? 1 : 0;
    for (size_t i = 0; i < nv; i++)
        if ((int32_t)i != best && l[i] > l[second])
            second = (int32_t)i;
    assert_int_equal(ds_session_set_logit_bias(s, best, -INFINITY), DS_OK);
    assert_int_equal(ds_session_set_logit_bias(s, 77, 0.5f), DS_OK);
    assert_int_equal(ds_session_set_logit_bias(s, 77, 0.0f), DS_OK); /* removes */
    assert_int_equal(tu_step(s), second);
    ds_session_rewind(s, 1);
    tu_feed(s, prompt, 0);
    /* a large bias forces a token; replace and clear */
    ds_session_rewind(s, 0);
    tu_feed(s, &second, 1);
    tu_force(s, 300);
    assert_int_equal(tu_step(s), 300);
    assert_int_equal(ds_session_set_logit_bias(s, 300, -1e6f), DS_OK); /* replaces */
    assert_true(tu_step(s) != 300);
    /* everything banned: STATE, nothing changes */
    for (int32_t i = 0; i < 512; i++)
        assert_int_equal(ds_session_set_logit_bias(s, i, -INFINITY), DS_OK);
    size_t n0 = ds_session_n_tokens(s);
    int32_t t;
    assert_int_equal(ds_session_step(s, &t), DS_ERR_STATE);
    assert_non_null(strstr(ds_session_errmsg(s), "no token"));
    assert_int_equal(ds_session_n_tokens(s), n0);
    assert_int_equal(ds_session_clear_logit_bias(s), DS_OK);
    tu_step(s);
    ds_session_close(s);
}

/* ---- cancellation and progress ------------------------------------------------------------ */

typedef struct cancel_ctx {
    ds_session *s;
    volatile int chunks;
    double t_cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} cancel_ctx;

static void on_progress(void *u, uint64_t done, uint64_t total)
{
    cancel_ctx *c = u;
    (void)done;
    (void)total;
    pthread_mutex_lock(&c->mu);
    c->chunks++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *canceller(void *u)
{
    cancel_ctx *c = u;
    pthread_mutex_lock(&c->mu);
    while (c->chunks < 2)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    usleep(20000); /* well inside the third chunk */
    c->t_cancel = tu_now();
    ds_session_cancel(c->s);
    return NULL;
}

static void test_cancel_long_prefill(void **state)
{
    (void)state;
    enum { N = 2048, B = 128 };
    int32_t *prompt = malloc(N * sizeof *prompt);
    tu_prompt(prompt, N, 512, 8);
    cancel_ctx c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    ds_session_params p = tu_params(N + 16);
    p.n_batch = B;
    p.progress_fn = on_progress;
    p.progress_user_data = &c;
    c.s = tu_open(g_wide, &p);
    pthread_t th;
    pthread_create(&th, NULL, canceller, &c);
    double t0 = tu_now();
    ds_status st = ds_session_feed(c.s, prompt, N);
    double t1 = tu_now();
    pthread_join(th, NULL);
    assert_int_equal(st, DS_ERR_CANCELLED);
    fprintf(stderr, "prefill cancelled after %.1f ms, %.2f ms after the cancel; %zu tokens kept\n",
            (t1 - t0) * 1e3, (t1 - c.t_cancel) * 1e3, ds_session_n_tokens(c.s));
    assert_true(t1 - c.t_cancel < 0.100);
    /* consistent: whole chunks kept, token list = prefix of the prompt */
    size_t kept = ds_session_n_tokens(c.s);
    assert_true(kept >= 2 * B && kept % B == 0 && kept < N);
    const int32_t *toks;
    size_t n;
    ds_session_tokens(c.s, &toks, &n);
    assert_memory_equal(toks, prompt, kept * sizeof *toks);
    const float *l;
    size_t nv;
    assert_int_equal(ds_session_logits(c.s, -1, &l, &nv), DS_ERR_STATE);
    /* the request was consumed: the rest feeds, and the result equals an uninterrupted run */
    tu_feed(c.s, prompt + kept, N - kept);
    ds_session_params q = tu_params(N + 16);
    q.n_batch = B;
    ds_session *r = tu_open(g_wide, &q);
    tu_feed(r, prompt, N);
    const float *lc = tu_logits(c.s, &nv), *lr = tu_logits(r, &nv);
    assert_memory_equal(lc, lr, nv * sizeof(float));
    assert_int_equal(tu_step(c.s), tu_step(r));
    ds_session_close(r);
    ds_session_close(c.s);
    free(prompt);
}

static void test_cancel_step_and_pending(void **state)
{
    (void)state;
    int32_t prompt[10];
    tu_prompt(prompt, 10, 512, 9);
    ds_session_params p = tu_params(64);
    p.temperature = 1.0f;
    p.seed = 5;
    ds_session *s = tu_open(g_tiny, &p);
    ds_session *r = tu_open(g_tiny, &p);
    tu_feed(s, prompt, 10);
    tu_feed(r, prompt, 10);
    /* a cancel with no call running applies to the next one, which returns CANCELLED without
     * a change (the RNG is rewound: the next step samples what it would have) */
    ds_session_cancel(s);
    ds_session_cancel(NULL);
    int32_t t = 7;
    assert_int_equal(ds_session_step(s, &t), DS_ERR_CANCELLED);
    assert_int_equal(t, -1);
    assert_int_equal(ds_session_n_tokens(s), 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_step(s), tu_step(r));
    ds_session_close(s);
    ds_session_close(r);
}

static int abort_after(void *u)
{
    int *n = u;
    return --*n < 0;
}

static void test_abort_fn(void **state)
{
    (void)state;
    int32_t prompt[64];
    tu_prompt(prompt, 64, 512, 10);
    int budget = 5; /* polls: 2 layers per chunk */
    ds_session_params p = tu_params(128);
    p.n_batch = 16;
    p.abort_fn = abort_after;
    p.abort_user_data = &budget;
    ds_session *s = tu_open(g_tiny, &p);
    assert_int_equal(ds_session_feed(s, prompt, 64), DS_ERR_CANCELLED);
    assert_int_equal(ds_session_n_tokens(s), 32);
    assert_non_null(strstr(ds_session_errmsg(s), "cancel"));
    budget = 1000;
    tu_feed(s, prompt + 32, 32);
    assert_int_equal(ds_session_n_tokens(s), 64);
    tu_step(s);
    ds_session_close(s);
}

static void count_progress(void *u, uint64_t done, uint64_t total)
{
    uint64_t *v = u;
    assert_true(done <= total);
    assert_true(done > v[1]);
    v[0]++;
    v[1] = done;
    v[2] = total;
}

static void test_progress(void **state)
{
    (void)state;
    int32_t prompt[100];
    tu_prompt(prompt, 100, 512, 11);
    uint64_t v[3] = {0, 0, 0};
    ds_session_params p = tu_params(128);
    p.n_batch = 32;
    p.progress_fn = count_progress;
    p.progress_user_data = v;
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, prompt, 100);
    assert_int_equal(v[0], 4);
    assert_int_equal(v[1], 100);
    assert_int_equal(v[2], 100);
    tu_step(s); /* steps do not report progress */
    assert_int_equal(v[0], 4);
    ds_session_close(s);
}

/* ---- memory ----------------------------------------------------------------------------- */

static void test_memory_budget(void **state)
{
    (void)state;
    ds_session_params p = tu_params(2048);
    uint64_t need = 0;
    assert_int_equal(ds_session_memory_needed(g_tiny, &p, &need), DS_OK);
    assert_int_equal(ds_session_memory_needed(NULL, &p, &need), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_memory_needed(g_tiny, &p, NULL), DS_ERR_INVALID_ARG);
    ds_session *s = tu_open(g_tiny, &p);
    uint64_t have = ds_session_memory(s);
    fprintf(stderr, "2048-token tiny session: needed %llu, allocated %llu bytes\n",
            (unsigned long long)need, (unsigned long long)have);
    assert_true(have <= need);
    assert_true(have * 1.02 + 8192 >= need); /* the estimate is close */
    ds_session_close(s);
    assert_int_equal(ds_session_memory(NULL), 0);

    /* refusal with a clear message */
    ds_session_params one = tu_params(1);
    uint64_t need1 = 0;
    assert_int_equal(ds_session_memory_needed(g_tiny, &one, &need1), DS_OK);
    assert_true(need1 < need);
    p.memory_budget = need1 + (need - need1) / 2;
    expect_open_fail(g_tiny, &p, DS_ERR_NO_MEMORY, "memory budget");
    assert_non_null(strstr(ds_last_error(), "fit_context_to_budget"));
    /* fit: the largest context that fits */
    p.fit_context_to_budget = 1;
    s = tu_open(g_tiny, &p);
    uint32_t n_ctx = ds_session_n_ctx(s);
    assert_true(n_ctx > 0 && n_ctx < 2048);
    assert_true(ds_session_memory(s) <= p.memory_budget);
    ds_session_params q = tu_params(n_ctx + 1);
    uint64_t more = 0;
    ds_session_memory_needed(g_tiny, &q, &more);
    assert_true(more > p.memory_budget);
    int32_t prompt[8];
    tu_prompt(prompt, 8, 512, 12);
    tu_feed(s, prompt, 8);
    tu_step(s);
    ds_session_close(s);
    /* not even one token */
    p.memory_budget = need1 - 1;
    expect_open_fail(g_tiny, &p, DS_ERR_NO_MEMORY, "1-token");
    /* a generous budget changes nothing */
    p.memory_budget = need;
    p.fit_context_to_budget = 0;
    s = tu_open(g_tiny, &p);
    assert_int_equal(ds_session_n_ctx(s), 2048);
    ds_session_close(s);
}

static void test_model_memory(void **state)
{
    (void)state;
    ds_model_memory_info mi;
    mi.struct_size = sizeof mi;
    assert_int_equal(ds_model_memory(g_tiny, &mi), DS_OK);
    ds_model_info info;
    info.struct_size = sizeof info;
    ds_model_info_get(g_tiny, &info);
    assert_int_equal(mi.weights, info.file_size);
    assert_true(mi.mapped);
    assert_true(mi.other > 0);
    assert_int_equal(ds_model_memory(NULL, &mi), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_memory(g_tiny, NULL), DS_ERR_INVALID_ARG);
    mi.struct_size = 2;
    assert_int_equal(ds_model_memory(g_tiny, &mi), DS_ERR_INVALID_ARG);
    mi.struct_size = 8; /* an older struct: only its bytes */
    mi.weights = 77;
    assert_int_equal(ds_model_memory(g_tiny, &mi), DS_OK);
    assert_int_equal(mi.weights, 77);
}

static void test_session_threads(void **state)
{
    (void)state;
    int32_t prompt[24];
    tu_prompt(prompt, 24, 512, 13);
    ds_session_params p = tu_params(64);
    ds_session *a = tu_open(g_wide, &p);
    p.n_threads = 1;
    ds_session *b = tu_open(g_wide, &p);
    tu_feed(a, prompt, 24);
    tu_feed(b, prompt, 24);
    size_t nv;
    const float *la = tu_logits(a, &nv), *lb = tu_logits(b, &nv);
    assert_true(tu_rel_diff(la, lb, nv) < 1e-4);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tu_step(a), tu_step(b));
    ds_session_close(a);
    ds_session_close(b);
}

static void test_no_tokenizer_text(void **state)
{
    (void)state;
    ds_session *s = tu_open(g_tiny, NULL);
    assert_int_equal(ds_session_feed_text(s, "hi", 2, 0), DS_ERR_UNSUPPORTED);
    assert_non_null(strstr(ds_session_errmsg(s), "tokenizer"));
    assert_int_equal(ds_session_feed_text(NULL, "hi", 2, 0), DS_ERR_INVALID_ARG);
    const char *stops[] = {"x"};
    assert_int_equal(ds_session_set_stop_strings(s, stops, 1), DS_ERR_UNSUPPORTED);
    assert_int_equal(ds_session_set_stop_strings(s, NULL, 0), DS_OK);
    int32_t prompt[4] = {1, 2, 3, 4};
    tu_feed(s, prompt, 4);
    tu_step(s);
    ds_text_kind k;
    const char *t = (const char *)1;
    size_t n = 5;
    assert_int_equal(ds_session_text(s, &k, &t, &n), DS_AGAIN);
    assert_null(t);
    assert_int_equal(n, 0);
    assert_int_equal(ds_session_text(s, &k, NULL, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_text(NULL, &k, &t, &n), DS_ERR_INVALID_ARG);
    ds_session_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_open_failures),
        cmocka_unit_test(test_feed_step_basics),
        cmocka_unit_test(test_feed_chunks_and_logits_all),
        cmocka_unit_test(test_rewind_refeed_equals_fresh),
        cmocka_unit_test(test_reset_and_seeded_runs),
        cmocka_unit_test(test_set_sampling),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_cancel_long_prefill),
        cmocka_unit_test(test_cancel_step_and_pending),
        cmocka_unit_test(test_abort_fn),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_model_memory),
        cmocka_unit_test(test_session_threads),
        cmocka_unit_test(test_no_tokenizer_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
