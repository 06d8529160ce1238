/*
 * tests/session/test_sampler.c — the sampler (lib/sample) against the order documented in
 * deepseek/session.h: RNG reference values, greedy ties, logit bias, repetition / frequency /
 * presence penalties (exact adjusted logits and the resulting distributions), top-k, top-p,
 * min-p, and the penalties through the session API.
 */
#include "sess_util.h"

#include "sample/sampler.h"

static ds_model *g_tiny;

static int setup(void **state)
{
    (void)state;
    g_tiny = tu_model("DS_SESS_TINY");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ds_model_close(g_tiny);
    return 0;
}

static const ds_sampler_cfg k_greedy = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f};

static void test_rng_reference(void **state)
{
    (void)state;
    /* xoshiro256** seeded with splitmix64, computed independently (Python integers) */
    ds_rng r;
    ds_rng_seed(&r, 42);
    assert_true(ds_rng_next(&r) == 0x15780b2e0c2ec716ull);
    assert_true(ds_rng_next(&r) == 0x6104d9866d113a7eull);
    assert_true(ds_rng_next(&r) == 0xae17533239e499a1ull);
    ds_rng_seed(&r, 0);
    assert_true(ds_rng_next(&r) == 0x99ec5f36cb75f2b4ull);
    assert_true(ds_rng_next(&r) == 0xbf6e1f784956452aull);
    for (int i = 0; i < 1000; i++) {
        double u = ds_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

/* Greedy over long vectors (SIMD blocks and tails): the first usable logit of the largest
 * value, against a plain scan, with NaN and -inf sprinkled in, ties across 16-element
 * boundaries, a +inf, and nothing usable. */
static void test_greedy_long(void **state)
{
    (void)state;
    enum { N = 4099 };
    static float v[N];
    void *scr = malloc(ds_sampler_scratch_bytes(N, 16));
    ds_rng r;
    ds_rng_seed(&r, 3);
    for (int round = 0; round < 200; round++) {
        const size_t n = 1 + (size_t)(ds_rng_next(&r) % N);
        for (size_t i = 0; i < n; i++) {
            const uint64_t k = ds_rng_next(&r) % 64;
            v[i] = k == 0 ? NAN : k == 1 ? -INFINITY : (float)(ds_rng_next(&r) % 200) - 100.0f;
        }
        if (round % 7 == 3)
            v[ds_rng_next(&r) % n] = INFINITY;
        if (round % 11 == 5)
            for (size_t i = 0; i < n; i++)
                v[i] = i % 2 ? NAN : -INFINITY;
        int32_t want = -1;
        for (size_t i = 0; i < n; i++)
            if (!isnan(v[i]) && v[i] != -INFINITY && (want < 0 || v[i] > v[want]))
                want = (int32_t)i;
        assert_int_equal(ds_sample(&k_greedy, &r, v, n, NULL, 0, NULL, 0, scr), want);
    }
    free(scr);
}

static void test_greedy_and_edges(void **state)
{
    (void)state;
    void *scr = malloc(ds_sampler_scratch_bytes(8, 16));
    ds_rng r;
    ds_rng_seed(&r, 1);
    const float tie[5] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f};
    assert_int_equal(ds_sample(&k_greedy, &r, tie, 5, NULL, 0, NULL, 0, scr), 1); /* lowest id */
    ds_sampler_cfg c = k_greedy;
    c.temperature = 1.0f;
    c.top_k = 1; /* top_k 1 is greedy */
    assert_int_equal(ds_sample(&c, &r, tie, 5, NULL, 0, NULL, 0, scr), 1);
    const float nan_[4] = {NAN, -INFINITY, 0.5f, NAN};
    assert_int_equal(ds_sample(&k_greedy, &r, nan_, 4, NULL, 0, NULL, 0, scr), 2);
    c.top_k = 0;
    assert_int_equal(ds_sample(&c, &r, nan_, 4, NULL, 0, NULL, 0, scr), 2);
    const float none[3] = {-INFINITY, NAN, -INFINITY};
    assert_int_equal(ds_sample(&k_greedy, &r, none, 3, NULL, 0, NULL, 0, scr), -1);
    assert_int_equal(ds_sample(&c, &r, none, 3, NULL, 0, NULL, 0, scr), -1);
    assert_int_equal(ds_sample(&c, &r, none, 0, NULL, 0, NULL, 0, scr), -1);
    /* the RNG is not used by greedy */
    ds_rng a = r;
    ds_sample(&k_greedy, &r, tie, 5, NULL, 0, NULL, 0, scr);
    assert_memory_equal(&a, &r, sizeof a);
    /* bias: -inf bans, a large bias wins; out-of-range entries are ignored */
    ds_logit_bias b[3] = {{1, -INFINITY}, {3, -INFINITY}, {9, 100.0f}};
    assert_int_equal(ds_sample(&k_greedy, &r, tie, 5, b, 3, NULL, 0, scr), 0);
    ds_logit_bias b2[1] = {{2, 10.0f}};
    assert_int_equal(ds_sample(&k_greedy, &r, tie, 5, b2, 1, NULL, 0, scr), 2);
    free(scr);
}

static void test_penalty_math(void **state)
{
    (void)state;
    void *scr = malloc(ds_sampler_scratch_bytes(4, 8));
    ds_rng r;
    ds_rng_seed(&r, 3);
    const float l[4] = {3.0f, 2.0f, -1.0f, 0.5f};
    const int32_t win[5] = {0, 0, 2, 77 /* ignored: outside the vocabulary */, -1};
    ds_sampler_cfg c = k_greedy;
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 0);
    /* repetition 2: 3 -> 1.5 (positive: divided), -1 -> -2 (negative: multiplied) */
    c.repeat_penalty = 2.0f;
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 1);
    c.repeat_penalty = 1.4f; /* 3 / 1.4 = 2.14 > 2 */
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 0);
    /* frequency: 3 - 2 * 0.6 = 1.8 < 2 (count 2), presence: 3 - 1.1 < 2 */
    c.repeat_penalty = 1.0f;
    c.frequency_penalty = 0.6f;
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 1);
    c.frequency_penalty = 0.4f; /* 3 - 0.8 = 2.2 */
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 0);
    c.frequency_penalty = 0.0f;
    c.presence_penalty = 1.1f;
    assert_int_equal(ds_sample(&c, &r, l, 4, NULL, 0, win, 5, scr), 1);
    /* penalties apply after the bias: bias token 2 to 3.5, penalize it below token 0 */
    ds_logit_bias b[1] = {{2, 4.5f}};
    c.presence_penalty = 0.0f;
    assert_int_equal(ds_sample(&c, &r, l, 4, b, 1, NULL, 0, scr), 2);
    const int32_t win2[1] = {2};
    c.frequency_penalty = 0.75f; /* 3.5 - 0.75 = 2.75 < 3 */
    assert_int_equal(ds_sample(&c, &r, l, 4, b, 1, win2, 1, scr), 0);
    free(scr);
}

/* frequencies of n draws */
static void draw(const ds_sampler_cfg *c, const float *l, size_t nv, const int32_t *win, size_t nw,
                 int n, double *freq)
{
    void *scr = malloc(ds_sampler_scratch_bytes(nv, nw));
    ds_rng r;
    ds_rng_seed(&r, 2024);
    for (size_t i = 0; i < nv; i++)
        freq[i] = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = ds_sample(c, &r, l, nv, NULL, 0, win, nw, scr);
        assert_true(t >= 0 && (size_t)t < nv);
        freq[t] += 1.0 / n;
    }
    free(scr);
}

static void expect_freq(const double *f, const double *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fabs(f[i] - p[i]) > 0.015) {
            fprintf(stderr, "token %zu: frequency %.4f, expected %.4f\n", i, f[i], p[i]);
            fail();
        }
    }
}

static void test_distributions(void **state)
{
    (void)state;
    enum { N = 20000 };
    const float l[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    double f[4];
    ds_sampler_cfg c = k_greedy;
    c.temperature = 1.0f;
    draw(&c, l, 4, NULL, 0, N, f);
    expect_freq(f, (const double[]){0.5, 0.25, 0.125, 0.125}, 4);
    /* temperature 2: p ∝ sqrt(p) */
    c.temperature = 2.0f;
    draw(&c, l, 4, NULL, 0, N, f);
    double z = sqrt(0.5) + sqrt(0.25) + 2 * sqrt(0.125);
    expect_freq(f, (const double[]){sqrt(0.5) / z, 0.5 / z, sqrt(0.125) / z, sqrt(0.125) / z}, 4);
    c.temperature = 1.0f;
    /* top-k 2 */
    c.top_k = 2;
    draw(&c, l, 4, NULL, 0, N, f);
    expect_freq(f, (const double[]){2.0 / 3, 1.0 / 3, 0, 0}, 4);
    c.top_k = 0;
    /* top-p 0.6: 0.5 < 0.6 <= 0.75 keeps two */
    c.top_p = 0.6f;
    draw(&c, l, 4, NULL, 0, N, f);
    expect_freq(f, (const double[]){2.0 / 3, 1.0 / 3, 0, 0}, 4);
    c.top_p = 1.0f;
    /* min-p 0.3: p >= 0.15 keeps two */
    c.min_p = 0.3f;
    draw(&c, l, 4, NULL, 0, N, f);
    expect_freq(f, (const double[]){2.0 / 3, 1.0 / 3, 0, 0}, 4);
    c.min_p = 0.0f;
    /* presence ln 2 on token 0 halves its weight: 0.25 : 0.25 : 0.125 : 0.125 */
    const int32_t win[1] = {0};
    c.presence_penalty = logf(2.0f);
    draw(&c, l, 4, win, 1, N, f);
    expect_freq(f, (const double[]){1.0 / 3, 1.0 / 3, 1.0 / 6, 1.0 / 6}, 4);
    /* frequency ln 2 with token 1 twice: weight / 4 */
    const int32_t win2[2] = {1, 1};
    c.presence_penalty = 0.0f;
    c.frequency_penalty = logf(2.0f);
    draw(&c, l, 4, win2, 2, N, f);
    z = 0.5 + 0.0625 + 0.25;
    expect_freq(f, (const double[]){0.5 / z, 0.0625 / z, 0.125 / z, 0.125 / z}, 4);
    /* repetition 2 on negative logits multiplies: token 3 (ln 1/8) -> 2 ln 1/8 = ln 1/64 */
    const int32_t win3[1] = {3};
    c.frequency_penalty = 0.0f;
    c.repeat_penalty = 2.0f;
    draw(&c, l, 4, win3, 1, N, f);
    z = 0.5 + 0.25 + 0.125 + 1.0 / 64;
    expect_freq(f, (const double[]){0.5 / z, 0.25 / z, 0.125 / z, 1.0 / 64 / z}, 4);
}

/* The penalties through the session: the step equals the argmax of the documented formula
 * applied to the session's raw logits over the window of the last penalty_last_n tokens. */
static void check_session_penalties(float rep, float freq, float pres, int32_t last_n)
{
    enum { N = 700 };
    int32_t prompt[N];
    tu_prompt(prompt, N, 512, 31);
    ds_session_params p = tu_params(N + 8);
    p.repeat_penalty = rep;
    p.frequency_penalty = freq;
    p.presence_penalty = pres;
    p.penalty_last_n = last_n;
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, prompt, N);
    size_t nv;
    const float *l = tu_logits(s, &nv);
    float *adj = malloc(nv * sizeof *adj);
    memcpy(adj, l, nv * sizeof *adj);
    int *cnt = calloc(nv, sizeof *cnt);
    size_t w = last_n < 0 ? N : (size_t)last_n;
    for (size_t i = N - w; i < N; i++)
        cnt[prompt[i]]++;
    int32_t plain = 0, want = 0;
    for (size_t i = 0; i < nv; i++) {
        if (cnt[i]) {
            if (rep != 1.0f)
                adj[i] = adj[i] > 0 ? adj[i] / rep : adj[i] * rep;
            adj[i] -= cnt[i] * freq + pres;
        }
        if (l[i] > l[plain])
            plain = (int32_t)i;
        if (adj[i] > adj[want])
            want = (int32_t)i;
    }
    int32_t got = tu_step(s);
    assert_int_equal(got, want);
    fprintf(stderr, "penalties rep %.2f freq %.2f pres %.2f last_n %d: token %d (plain greedy %d)\n",
            (double)rep, (double)freq, (double)pres, last_n, got, plain);
    free(adj);
    free(cnt);
    ds_session_close(s);
}

static void test_session_penalties(void **state)
{
    (void)state;
    check_session_penalties(1.0f, 0.0f, 0.0f, 64);
    check_session_penalties(3.0f, 0.0f, 0.0f, -1);
    check_session_penalties(1.0f, 1.5f, 0.0f, -1);
    check_session_penalties(1.0f, 0.0f, 2.0f, 100);
    check_session_penalties(1.3f, 0.4f, 0.3f, 300);
    check_session_penalties(3.0f, 1.0f, 1.0f, 0); /* window 0: off */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reference),
        cmocka_unit_test(test_greedy_and_edges),
        cmocka_unit_test(test_greedy_long),
        cmocka_unit_test(test_penalty_math),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_session_penalties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
