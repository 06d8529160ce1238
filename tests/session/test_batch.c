/*
 * tests/session/test_batch.c — ds_session_step_batch: several sessions at different positions
 * stepped in one forward pass give the tokens (and, up to matmul rounding, the logits) of
 * stepping each alone; bit-identical logits with the portable scalar kernels; per-session
 * results (stopped, not fed, context full), mixed KV types, batches larger than n_batch,
 * cancellation and argument errors.
 */
#include "sess_util.h"

#include "api/api_internal.h"

static ds_model *g_tiny, *g_other;

static int setup(void **state)
{
    (void)state;
    g_tiny = tu_model("DS_SESS_TINY");
    g_other = tu_model("DS_SESS_OTHER");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ds_model_close(g_tiny);
    ds_model_close(g_other);
    return 0;
}

enum { MAXB = 8 };

/* n sessions fed prompts of different lengths; twins for single steps */
static void make_pairs(size_t n, const ds_session_params *p, ds_session **b, ds_session **a)
{
    for (size_t i = 0; i < n; i++) {
        int32_t prompt[64];
        size_t len = 5 + 9 * i;
        tu_prompt(prompt, len, 512, 50 + (uint32_t)i);
        ds_session_params q = *p;
        q.seed = p->seed + i;
        b[i] = tu_open(g_tiny, &q);
        a[i] = tu_open(g_tiny, &q);
        tu_feed(b[i], prompt, len);
        tu_feed(a[i], prompt, len);
    }
}

static double compare_run(size_t n, const ds_session_params *p, int steps, bool bitwise)
{
    ds_session *b[MAXB], *a[MAXB];
    make_pairs(n, p, b, a);
    double worst = 0;
    for (int k = 0; k < steps; k++) {
        int32_t tb[MAXB];
        ds_status rs[MAXB];
        assert_int_equal(ds_session_step_batch(b, n, tb, rs), DS_OK);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(rs[i], DS_OK);
            assert_int_equal(tb[i], tu_step(a[i]));
            size_t nv;
            const float *lb = tu_logits(b[i], &nv), *la = tu_logits(a[i], &nv);
            double d = tu_rel_diff(la, lb, nv);
            if (d > worst)
                worst = d;
            if (bitwise)
                assert_memory_equal(la, lb, nv * sizeof(float));
        }
    }
    for (size_t i = 0; i < n; i++) {
        const int32_t *ta, *tb;
        size_t na, nb;
        ds_session_tokens(a[i], &ta, &na);
        ds_session_tokens(b[i], &tb, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, na * sizeof *ta);
        ds_session_close(a[i]);
        ds_session_close(b[i]);
    }
    return worst;
}

static void test_batch_equals_single(void **state)
{
    (void)state;
    ds_session_params p = tu_params(256);
    double d = compare_run(3, &p, 12, false); /* greedy */
    fprintf(stderr, "greedy, 3 sessions: max relative logit difference %.3g\n", d);
    assert_true(d < 1e-5);
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.seed = 100;
    p.repeat_penalty = 1.2f;
    d = compare_run(4, &p, 12, false); /* seeded sampling */
    fprintf(stderr, "sampled, 4 sessions: max relative logit difference %.3g\n", d);
    assert_true(d < 1e-5);
    d = compare_run(7, &p, 8, false); /* beyond the GEMV rows: oneDNN */
    fprintf(stderr, "sampled, 7 sessions: max relative logit difference %.3g\n", d);
    assert_true(d < 1e-5);
    d = compare_run(1, &p, 4, true); /* one session: the same computation */
    assert_true(d == 0);
}

static void test_batch_bitwise_scalar(void **state)
{
    (void)state;
    ds_isa prev = ds_mm_isa(g_tiny->mm);
    ds_mm_set_isa(g_tiny->mm, DS_ISA_SCALAR);
    ds_session_params p = tu_params(256);
    p.temperature = 0.7f;
    p.seed = 5;
    double d = compare_run(4, &p, 10, true);
    assert_true(d == 0);
    ds_mm_set_isa(g_tiny->mm, prev);
}

static void test_batch_per_session_results(void **state)
{
    (void)state;
    int32_t prompt[16];
    tu_prompt(prompt, 16, 512, 60);
    ds_session_params p = tu_params(20);
    ds_session *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = tu_open(g_tiny, &p);
    tu_feed(s[0], prompt, 10);
    /* s[1] never fed: STATE */
    tu_feed(s[2], prompt, 16);
    ds_session_params lim = tu_params(64);
    lim.max_tokens = 2;
    assert_int_equal(ds_session_set_sampling(s[2], &lim), DS_OK);
    tu_feed(s[3], prompt, 16);
    int32_t t[4];
    ds_status r[4];
    assert_int_equal(ds_session_step_batch(s, 4, t, r), DS_OK);
    assert_int_equal(r[0], DS_OK);
    assert_int_equal(r[1], DS_ERR_STATE);
    assert_int_equal(t[1], -1);
    assert_int_equal(r[2], DS_OK);
    assert_int_equal(r[3], DS_OK);
    assert_int_equal(ds_session_step_batch(s, 4, t, r), DS_OK);
    assert_int_equal(r[2], DS_DONE); /* its second token: the limit */
    assert_true(t[2] >= 0);
    assert_int_equal(ds_session_stop_reason(s[2]), DS_STOP_LIMIT);
    for (int k = 0; k < 2; k++)
        assert_int_equal(ds_session_step_batch(s, 4, t, r), DS_OK);
    assert_int_equal(r[2], DS_DONE);
    assert_int_equal(t[2], -1);
    assert_int_equal(ds_session_n_tokens(s[3]), 20);
    assert_int_equal(ds_session_step_batch(s, 4, t, r), DS_OK);
    assert_int_equal(r[3], DS_ERR_CONTEXT_FULL);
    assert_int_equal(r[0], DS_OK);
    assert_int_equal(ds_session_n_tokens(s[0]), 15);
    /* nothing runnable at all: DS_OK with every result */
    ds_session *only[2] = {s[1], s[3]};
    assert_int_equal(ds_session_step_batch(only, 2, t, r), DS_OK);
    assert_int_equal(r[0], DS_ERR_STATE);
    assert_int_equal(r[1], DS_ERR_CONTEXT_FULL);
    for (int i = 0; i < 4; i++)
        ds_session_close(s[i]);
}

static void test_batch_mixed_and_large(void **state)
{
    (void)state;
    /* KV types mixed in one batch, and a compute session whose n_batch (2) is smaller than
     * the batch (groups) */
    ds_session *b[5], *a[5];
    for (int i = 0; i < 5; i++) {
        ds_session_params p = tu_params(128);
        p.kv_type = (uint32_t)(i % 3);
        p.n_batch = i == 0 ? 2 : 64;
        int32_t prompt[40];
        size_t len = 3 + 7 * (size_t)i;
        tu_prompt(prompt, len, 512, 70 + (uint32_t)i);
        b[i] = tu_open(g_tiny, &p);
        a[i] = tu_open(g_tiny, &p);
        tu_feed(b[i], prompt, len);
        tu_feed(a[i], prompt, len);
    }
    for (int k = 0; k < 8; k++) {
        int32_t t[5];
        ds_status r[5];
        assert_int_equal(ds_session_step_batch(b, 5, t, r), DS_OK);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(r[i], DS_OK);
            assert_int_equal(t[i], tu_step(a[i]));
        }
    }
    for (int i = 0; i < 5; i++) {
        size_t nv;
        const float *la = tu_logits(a[i], &nv), *lb = tu_logits(b[i], &nv);
        assert_true(tu_rel_diff(la, lb, nv) < 1e-5);
        ds_session_close(a[i]);
        ds_session_close(b[i]);
    }
}

static void test_batch_errors_and_cancel(void **state)
{
    (void)state;
    int32_t prompt[8];
    tu_prompt(prompt, 8, 512, 80);
    ds_session_params p = tu_params(64);
    p.temperature = 1.0f;
    ds_session *s[3], *r[3];
    for (int i = 0; i < 3; i++) {
        p.seed = (uint64_t)i;
        s[i] = tu_open(g_tiny, &p);
        r[i] = tu_open(g_tiny, &p);
        tu_feed(s[i], prompt, 8);
        tu_feed(r[i], prompt, 8);
    }
    int32_t t[3];
    ds_status rs[3];
    assert_int_equal(ds_session_step_batch(NULL, 3, t, rs), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_step_batch(s, 0, t, rs), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_step_batch(s, 3, NULL, rs), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_step_batch(s, 3, t, NULL), DS_ERR_INVALID_ARG);
    ds_session *dup[3] = {s[0], s[1], s[0]};
    assert_int_equal(ds_session_step_batch(dup, 3, t, rs), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_last_error(), "twice"));
    ds_session *withnull[2] = {s[0], NULL};
    assert_int_equal(ds_session_step_batch(withnull, 2, t, rs), DS_ERR_INVALID_ARG);
    ds_session *o = tu_open(g_other, &p);
    tu_feed(o, prompt, 8);
    ds_session *mixed[2] = {s[0], o};
    assert_int_equal(ds_session_step_batch(mixed, 2, t, rs), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_last_error(), "another model"));
    ds_session_close(o);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ds_session_n_tokens(s[i]), 8);

    /* a cancelled member cancels the pass: nobody advances, RNGs rewound */
    ds_session_cancel(s[1]);
    assert_int_equal(ds_session_step_batch(s, 3, t, rs), DS_ERR_CANCELLED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rs[i], DS_ERR_CANCELLED);
        assert_int_equal(t[i], -1);
        assert_int_equal(ds_session_n_tokens(s[i]), 8);
    }
    /* the request was consumed; the sessions continue exactly like the references */
    for (int k = 0; k < 6; k++) {
        assert_int_equal(ds_session_step_batch(s, 3, t, rs), DS_OK);
        for (int i = 0; i < 3; i++)
            assert_int_equal(t[i], tu_step(r[i]));
    }
    for (int i = 0; i < 3; i++) {
        ds_session_close(s[i]);
        ds_session_close(r[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_batch_bitwise_scalar),
        cmocka_unit_test(test_batch_per_session_results),
        cmocka_unit_test(test_batch_mixed_and_large),
        cmocka_unit_test(test_batch_errors_and_cancel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
