/*
 * tests/session/test_save.c — save and restore: save -> load -> continue gives exactly the tokens
 * of an uninterrupted run (temperature sampling with penalties and a logit bias), through
 * buffers and files, into the same and into another session; rejected inputs (corrupted,
 * truncated, future version, wrong model, too long, inconsistent) leave the session untouched;
 * buffer-size and I/O failure paths.
 */
#include "sess_util.h"

#include <unistd.h>

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

static ds_session_params sampled_params(uint32_t n_ctx)
{
    ds_session_params p = tu_params(n_ctx);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.9f;
    p.min_p = 0.01f;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.2f;
    p.presence_penalty = 0.1f;
    p.penalty_last_n = 32;
    p.seed = 777;
    return p;
}

/* save into a malloc'd buffer */
static uint8_t *save_buf(ds_session *s, size_t *n)
{
    size_t cap = 0;
    assert_int_equal(ds_session_save_size(s, &cap), DS_OK);
    uint8_t *b = malloc(cap);
    ds_status st = ds_session_save_buffer(s, b, cap, n);
    if (st != DS_OK)
        fprintf(stderr, "save: %s\n", ds_session_errmsg(s));
    assert_int_equal(st, DS_OK);
    assert_true(*n <= cap && *n > 64);
    return b;
}

static void test_save_load_continue(void **state)
{
    (void)state;
    int32_t prompt[30];
    tu_prompt(prompt, 30, 512, 41);
    ds_session_params p = sampled_params(256);
    /* uninterrupted */
    ds_session *ref = tu_open(g_tiny, &p);
    assert_int_equal(ds_session_set_logit_bias(ref, 5, 2.0f), DS_OK);
    assert_int_equal(ds_session_set_logit_bias(ref, 9, -INFINITY), DS_OK);
    tu_feed(ref, prompt, 30);
    int32_t want[60];
    for (int i = 0; i < 60; i++)
        want[i] = tu_step(ref);

    /* interrupted after 25 steps: save, then continue in (a) the same session after a reset,
     * (b) a fresh session with other n_ctx / n_batch and other sampler settings, (c) a file */
    ds_session *s = tu_open(g_tiny, &p);
    ds_session_set_logit_bias(s, 5, 2.0f);
    ds_session_set_logit_bias(s, 9, -INFINITY);
    tu_feed(s, prompt, 30);
    for (int i = 0; i < 25; i++)
        assert_int_equal(tu_step(s), want[i]);
    size_t n = 0;
    uint8_t *buf = save_buf(s, &n);
    char path[] = "/tmp/ds-sess-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ds_session_save(s, path), DS_OK);
    for (int i = 25; i < 60; i++)
        assert_int_equal(tu_step(s), want[i]);

    /* (a) */
    ds_session_reset(s);
    ds_session_clear_logit_bias(s);
    assert_int_equal(ds_session_load_buffer(s, buf, n), DS_OK);
    assert_int_equal(ds_session_n_tokens(s), 55);
    assert_int_equal(ds_session_n_generated(s), 25);
    for (int i = 25; i < 60; i++)
        assert_int_equal(tu_step(s), want[i]);

    /* (b) */
    ds_session_params q = tu_params(100);
    q.n_batch = 7;
    q.temperature = 0.0f;
    ds_session *t = tu_open(g_tiny, &q);
    assert_int_equal(ds_session_load_buffer(t, buf, n), DS_OK);
    for (int i = 25; i < 60; i++)
        assert_int_equal(tu_step(t), want[i]);
    const int32_t *ta, *tb;
    size_t na, nb;
    ds_session_tokens(t, &ta, &na);
    ds_session_tokens(ref, &tb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ta, tb, na * sizeof *ta);
    size_t nv;
    const float *la = tu_logits(t, &nv), *lb = tu_logits(ref, &nv);
    assert_memory_equal(la, lb, nv * sizeof(float));

    /* (c) */
    ds_session *u = tu_open(g_tiny, NULL);
    assert_int_equal(ds_session_load(u, path), DS_OK);
    for (int i = 25; i < 60; i++)
        assert_int_equal(tu_step(u), want[i]);

    unlink(path);
    free(buf);
    ds_session_close(ref);
    ds_session_close(s);
    ds_session_close(t);
    ds_session_close(u);
}

static void test_kv_types(void **state)
{
    (void)state;
    int32_t prompt[40];
    tu_prompt(prompt, 40, 512, 42);
    for (int kt = DS_KV_F16; kt <= DS_KV_BF16; kt++) {
        ds_session_params p = sampled_params(128);
        p.kv_type = (uint32_t)kt;
        ds_session *ref = tu_open(g_tiny, &p);
        tu_feed(ref, prompt, 40);
        int32_t want[20];
        for (int i = 0; i < 20; i++)
            want[i] = tu_step(ref);
        ds_session *s = tu_open(g_tiny, &p);
        tu_feed(s, prompt, 40);
        for (int i = 0; i < 10; i++)
            tu_step(s);
        size_t n;
        uint8_t *buf = save_buf(s, &n);
        /* the same type continues exactly */
        ds_session *t = tu_open(g_tiny, &p);
        assert_int_equal(ds_session_load_buffer(t, buf, n), DS_OK);
        for (int i = 10; i < 20; i++)
            assert_int_equal(tu_step(t), want[i]);
        /* an f32 session takes the rows converted exactly; it continues close to the original */
        ds_session_params q = tu_params(128);
        ds_session *f = tu_open(g_tiny, &q);
        assert_int_equal(ds_session_load_buffer(f, buf, n), DS_OK);
        assert_int_equal(ds_session_n_tokens(f), 50);
        tu_step(f);
        size_t n2;
        uint8_t *buf2 = save_buf(f, &n2); /* f32 rows now: a larger file */
        assert_true(n2 > n);
        free(buf2);
        free(buf);
        ds_session_close(ref);
        ds_session_close(s);
        ds_session_close(t);
        ds_session_close(f);
    }
}

/* an independent bitwise CRC-32C (Castagnoli, reflected) */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void reseal(uint8_t *b, size_t n)
{
    uint32_t c = crc32c(0, b, 56);
    /* continue over the payload */
    uint32_t crc = ~c;
    for (size_t i = 64; i < n; i++) {
        crc ^= b[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    crc = ~crc;
    b[56] = (uint8_t)crc;
    b[57] = (uint8_t)(crc >> 8);
    b[58] = (uint8_t)(crc >> 16);
    b[59] = (uint8_t)(crc >> 24);
}

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* the session's observable state */
typedef struct snap {
    int32_t tokens[256];
    size_t n;
    float logits[512];
    uint32_t gen;
} snap;

static void take(ds_session *s, snap *x)
{
    const int32_t *t;
    ds_session_tokens(s, &t, &x->n);
    memcpy(x->tokens, t, x->n * sizeof *t);
    size_t nv = 0;
    const float *l = tu_logits(s, &nv);
    memcpy(x->logits, l, nv * sizeof(float));
    x->gen = ds_session_n_generated(s);
}

static void expect_reject(ds_session *s, const uint8_t *b, size_t n, ds_status want,
                          const char *needle)
{
    snap before, after;
    take(s, &before);
    ds_status st = ds_session_load_buffer(s, b, n);
    if (st != want)
        fprintf(stderr, "expected %d, got %d: %s\n", want, st, ds_session_errmsg(s));
    assert_int_equal(st, want);
    if (needle && !strstr(ds_session_errmsg(s), needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", ds_session_errmsg(s), needle);
        fail();
    }
    assert_string_equal(ds_last_error(), ds_session_errmsg(s));
    take(s, &after);
    if (memcmp(before.logits, after.logits, sizeof before.logits) != 0)
        fprintf(stderr, "the logits changed on a rejected load (%s)\n", ds_session_errmsg(s));
    assert_int_equal(before.n, after.n);
    assert_memory_equal(before.tokens, after.tokens, before.n * sizeof(int32_t));
    assert_memory_equal(before.logits, after.logits, sizeof before.logits);
    assert_int_equal(before.gen, after.gen);
}

static void test_rejected_files(void **state)
{
    (void)state;
    int32_t prompt[20];
    tu_prompt(prompt, 20, 512, 43);
    ds_session_params p = sampled_params(128);
    /* the file */
    ds_session *w = tu_open(g_tiny, &p);
    tu_feed(w, prompt, 20);
    for (int i = 0; i < 5; i++)
        tu_step(w);
    size_t n;
    uint8_t *good = save_buf(w, &n);
    /* the victim, and a reference that sees no load attempts */
    ds_session *s = tu_open(g_tiny, &p);
    ds_session *r = tu_open(g_tiny, &p);
    int32_t other[12];
    tu_prompt(other, 12, 512, 44);
    tu_feed(s, other, 12);
    tu_feed(r, other, 12);
    tu_step(s);
    tu_step(r);

    uint8_t *b = malloc(n + 16);
    /* corrupted payload byte / header byte: checksum */
    memcpy(b, good, n);
    b[n / 2] ^= 0x10;
    expect_reject(s, b, n, DS_ERR_FORMAT, "checksum");
    memcpy(b, good, n);
    b[20] ^= 1; /* inside the fingerprint */
    expect_reject(s, b, n, DS_ERR_FORMAT, "checksum");
    /* truncated, extended, empty, tiny, bad magic */
    expect_reject(s, good, n - 1, DS_ERR_FORMAT, "truncated");
    expect_reject(s, good, 100, DS_ERR_FORMAT, "truncated");
    memcpy(b, good, n);
    b[n] = 0;
    expect_reject(s, b, n + 1, DS_ERR_FORMAT, "unexpected");
    expect_reject(s, good, 10, DS_ERR_FORMAT, "magic");
    expect_reject(s, b, 0, DS_ERR_FORMAT, "magic");
    memcpy(b, good, n);
    b[0] = 'X';
    expect_reject(s, b, n, DS_ERR_FORMAT, "magic");
    /* a future version */
    memcpy(b, good, n);
    put32(b + 8, 2);
    expect_reject(s, b, n, DS_ERR_UNSUPPORTED, "newer");
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_UNSUPPORTED, "version 2");
    put32(b + 8, 0);
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, "version 0");
    /* resealed inconsistencies get past the checksum and are caught by the parser */
    memcpy(b, good, n);
    put32(b + 48, get32(b + 48) - 1); /* header token count */
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, "disagree");
    memcpy(b, good, n);
    put32(b + 24, get32(b + 24) + 4); /* uncompressed size */
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, NULL);
    memcpy(b, good, n);
    put32(b + 52, 7); /* kv type */
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, "KV type");
    memcpy(b, good, n);
    put32(b + 40, 5); /* compression */
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, "compression");
    memcpy(b, good, n);
    b[70] ^= 0xFF; /* inside the zstd frame */
    reseal(b, n);
    expect_reject(s, b, n, DS_ERR_FORMAT, NULL);
    /* another model */
    ds_session *o = tu_open(g_other, &p);
    tu_feed(o, prompt, 20);
    size_t no;
    uint8_t *ob = save_buf(o, &no);
    expect_reject(s, ob, no, DS_ERR_MODEL_MISMATCH, "another model");
    ds_session_close(o);
    free(ob);
    /* too long for the session */
    ds_session_params small = sampled_params(16);
    ds_session *sm = tu_open(g_tiny, &small);
    tu_feed(sm, other, 3);
    expect_reject(sm, good, n, DS_ERR_CONTEXT_FULL, "n_ctx");
    ds_session_close(sm);
    /* argument errors */
    assert_int_equal(ds_session_load_buffer(NULL, good, n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_load_buffer(s, NULL, 5), DS_ERR_INVALID_ARG);

    /* after all that, s is exactly r */
    for (int i = 0; i < 10; i++)
        assert_int_equal(tu_step(s), tu_step(r));
    /* and the good file still loads */
    assert_int_equal(ds_session_load_buffer(s, good, n), DS_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_step(s), tu_step(w));
    free(b);
    free(good);
    ds_session_close(w);
    ds_session_close(s);
    ds_session_close(r);
}

static void test_buffers_and_io(void **state)
{
    (void)state;
    int32_t prompt[10];
    tu_prompt(prompt, 10, 512, 45);
    ds_session *s = tu_open(g_tiny, NULL);
    /* an empty session round-trips; its logits stay unreadable */
    size_t n = 0, cap = 0;
    uint8_t *b = save_buf(s, &n);
    ds_session *t = tu_open(g_tiny, NULL);
    tu_feed(t, prompt, 10);
    assert_int_equal(ds_session_load_buffer(t, b, n), DS_OK);
    assert_int_equal(ds_session_n_tokens(t), 0);
    const float *l;
    size_t nv;
    assert_int_equal(ds_session_logits(t, -1, &l, &nv), DS_ERR_STATE);
    free(b);

    tu_feed(s, prompt, 10);
    assert_int_equal(ds_session_save_size(s, &cap), DS_OK);
    assert_int_equal(ds_session_save_size(NULL, &cap), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_save_size(s, NULL), DS_ERR_INVALID_ARG);
    /* size query and too-small buffers */
    size_t exact_n = 0;
    assert_int_equal(ds_session_save_buffer(s, NULL, 0, &exact_n), DS_ERR_BUFFER_TOO_SMALL);
    assert_true(exact_n > 64 && exact_n <= cap);
    uint8_t small[80];
    assert_int_equal(ds_session_save_buffer(s, small, sizeof small, &n), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, exact_n);
    assert_int_equal(ds_session_save_buffer(s, small, 10, &n), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(ds_session_save_buffer(s, NULL, 10, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_save_buffer(NULL, small, 10, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_save_buffer(s, small, 10, NULL), DS_ERR_INVALID_ARG);
    /* an exact-size buffer works */
    b = save_buf(s, &n);
    uint8_t *exact = malloc(n);
    size_t n2 = 0;
    assert_int_equal(ds_session_save_buffer(s, exact, n, &n2), DS_OK);
    assert_int_equal(n2, n);
    assert_memory_equal(exact, b, n);
    free(exact);
    free(b);
    /* I/O */
    assert_int_equal(ds_session_save(s, "/nonexistent-dir/x.sess"), DS_ERR_IO);
    assert_non_null(strstr(ds_session_errmsg(s), "/nonexistent-dir"));
    assert_int_equal(ds_session_load(s, "/nonexistent-dir/x.sess"), DS_ERR_IO);
    assert_int_equal(ds_session_load(s, "/tmp"), DS_ERR_IO);
    assert_int_equal(ds_session_save(NULL, "/tmp/x"), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_save(s, NULL), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_load(NULL, "/tmp/x"), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_load(s, NULL), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_n_tokens(s), 10);
    tu_step(s);
    ds_session_close(s);
    ds_session_close(t);
}

static void test_stopped_state(void **state)
{
    (void)state;
    int32_t prompt[10];
    tu_prompt(prompt, 10, 512, 46);
    ds_session_params p = sampled_params(64);
    p.max_tokens = 4;
    ds_session *s = tu_open(g_tiny, &p);
    tu_feed(s, prompt, 10);
    int32_t t;
    for (int i = 0; i < 3; i++)
        tu_step(s);
    assert_int_equal(ds_session_step(s, &t), DS_DONE);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_LIMIT);
    size_t n;
    uint8_t *b = save_buf(s, &n);
    ds_session *u = tu_open(g_tiny, NULL);
    assert_int_equal(ds_session_load_buffer(u, b, n), DS_OK);
    assert_int_equal(ds_session_stop_reason(u), DS_STOP_LIMIT);
    assert_int_equal(ds_session_n_generated(u), 4);
    assert_int_equal(ds_session_step(u, &t), DS_DONE);
    assert_int_equal(t, -1);
    /* a feed starts a new generation, with the loaded max_tokens */
    tu_feed(u, prompt, 2);
    tu_feed(s, prompt, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_step(u), tu_step(s));
    int32_t t2;
    assert_int_equal(ds_session_step(u, &t), DS_DONE);
    assert_int_equal(ds_session_step(s, &t2), DS_DONE);
    assert_int_equal(t, t2);
    free(b);
    ds_session_close(s);
    ds_session_close(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_continue),
        cmocka_unit_test(test_kv_types),
        cmocka_unit_test(test_rejected_files),
        cmocka_unit_test(test_buffers_and_io),
        cmocka_unit_test(test_stopped_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
