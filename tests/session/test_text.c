/*
 * tests/session/test_text.c — text in and out of a session on a tiny model carrying the real
 * DeepSeek-LLM vocabulary (skipped when the shared tokenizer fixtures are absent): feed_text and
 * its BOS rule, end-of-generation stops, stop strings across token boundaries, UTF-8 characters
 * split over tokens, reasoning / answer splitting, render_special, save/restore in the middle of
 * a generation with held-back text, and the loop of the header example.
 * The generated tokens are chosen by forcing them through the logit bias (greedy sampling).
 */
#include "sess_util.h"

static ds_model *g_tok;
static const ds_tokenizer *g_tk;

static int setup(void **state)
{
    (void)state;
    g_tok = tu_model_env("DS_SESS_TOK");
    g_tk = g_tok ? ds_model_tokenizer(g_tok) : NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ds_model_close(g_tok);
    return 0;
}

#define NEED_TOKENIZER()                                                                        \
    do {                                                                                        \
        if (!g_tok) {                                                                           \
            fprintf(stderr, "skipped: no tokenizer model (DS_SHARED_DIR fixtures absent)\n");   \
            skip();                                                                             \
        }                                                                                       \
        assert_non_null(g_tk);                                                                  \
    } while (0)

static size_t tokenize(const char *text, uint32_t flags, int32_t *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(ds_tokenize(g_tk, text, strlen(text), flags, out, cap, &n), DS_OK);
    return n;
}

/* text of the last step, appended to ans / rsn */
typedef struct textbuf {
    char ans[4096], rsn[4096];
    size_t na, nr;
    int pieces;
} textbuf;

static ds_status drain(ds_session *s, textbuf *tb)
{
    ds_text_kind kind;
    const char *t;
    size_t n;
    ds_status st;
    while ((st = ds_session_text(s, &kind, &t, &n)) == DS_OK) {
        assert_true(n > 0);
        if (kind == DS_TEXT_REASONING) {
            memcpy(tb->rsn + tb->nr, t, n);
            tb->nr += n;
        } else {
            memcpy(tb->ans + tb->na, t, n);
            tb->na += n;
        }
        tb->pieces++;
    }
    tb->ans[tb->na] = tb->rsn[tb->nr] = '\0';
    return st;
}

/* force `tok` and step; returns the step status */
static ds_status force(ds_session *s, int32_t tok, int32_t *got)
{
    tu_force(s, tok);
    int32_t t = -7;
    ds_status st = ds_session_step(s, &t);
    if (got)
        *got = t;
    if (st == DS_OK)
        assert_int_equal(t, tok);
    return st;
}

static ds_session *open_fed(const ds_session_params *p, const char *prompt)
{
    ds_session *s = tu_open(g_tok, p);
    assert_int_equal(ds_session_feed_text(s, prompt, strlen(prompt), DS_TOKENIZE_SPECIAL), DS_OK);
    return s;
}

static void test_feed_text(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    ds_session_params p = tu_params(256);
    ds_session *s = tu_open(g_tok, &p);
    const char *a = "Hello world, this is a test.";
    const char *b = " And more text.";
    int32_t wa[64], wb[64];
    size_t na = tokenize(a, 0, wa, 64); /* the model's add_bos setting */
    size_t nb = tokenize(b, DS_TOKENIZE_NO_BOS, wb, 64);
    assert_int_equal(ds_session_feed_text(s, a, strlen(a), 0), DS_OK);
    assert_int_equal(ds_session_feed_text(s, b, strlen(b), 0), DS_OK); /* no BOS mid-session */
    const int32_t *t;
    size_t n;
    ds_session_tokens(s, &t, &n);
    assert_int_equal(n, na + nb);
    assert_memory_equal(t, wa, na * sizeof *t);
    assert_memory_equal(t + na, wb, nb * sizeof *t);
    if (ds_tokenizer_bos(g_tk) >= 0 && ds_tokenizer_add_bos(g_tk))
        assert_int_equal(t[0], ds_tokenizer_bos(g_tk));
    /* forced BOS mid-session */
    assert_int_equal(ds_session_feed_text(s, "x", 1, DS_TOKENIZE_ADD_BOS), DS_OK);
    ds_session_tokens(s, &t, &n);
    if (ds_tokenizer_bos(g_tk) >= 0)
        assert_int_equal(t[na + nb], ds_tokenizer_bos(g_tk));
    size_t before = ds_session_n_tokens(s);
    assert_int_equal(ds_session_feed_text(s, "x", 1, DS_TOKENIZE_ADD_BOS | DS_TOKENIZE_NO_BOS),
                     DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_feed_text(s, NULL, 3, 0), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_feed_text(s, "", 0, DS_TOKENIZE_NO_BOS), DS_OK);
    assert_int_equal(ds_session_feed_text(s, "x", 1, 1u << 20), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_n_tokens(s), before);
    /* specials: recognised only with the flag */
    ds_session_reset(s);
    const char *eos_text = ds_tokenizer_token_text(g_tk, ds_tokenizer_eos(g_tk));
    assert_int_equal(ds_session_feed_text(s, eos_text, strlen(eos_text),
                                          DS_TOKENIZE_SPECIAL | DS_TOKENIZE_NO_BOS), DS_OK);
    assert_int_equal(ds_session_n_tokens(s), 1);
    ds_session_reset(s);
    assert_int_equal(ds_session_feed_text(s, eos_text, strlen(eos_text), DS_TOKENIZE_NO_BOS), DS_OK);
    assert_true(ds_session_n_tokens(s) > 1);
    /* too long: nothing fed */
    ds_session_params q = tu_params(4);
    ds_session *sm = tu_open(g_tok, &q);
    assert_int_equal(ds_session_feed_text(sm, a, strlen(a), 0), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_session_n_tokens(sm), 0);
    ds_session_close(sm);
    ds_session_close(s);
}

static void test_eos(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    const int32_t eos = ds_tokenizer_eos(g_tk);
    assert_true(eos >= 0 && ds_tokenizer_is_eog(g_tk, eos));
    ds_session_params p = tu_params(128);
    ds_session *s = open_fed(&p, "Question:");
    int32_t w[8];
    size_t nw = tokenize(" yes", DS_TOKENIZE_NO_BOS, w, 8);
    textbuf tb = {0};
    for (size_t i = 0; i < nw; i++) {
        assert_int_equal(force(s, w[i], NULL), DS_OK);
        assert_int_equal(drain(s, &tb), DS_AGAIN);
    }
    size_t n0 = ds_session_n_tokens(s);
    int32_t got;
    assert_int_equal(force(s, eos, &got), DS_DONE);
    assert_int_equal(got, eos);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_EOS);
    assert_int_equal(ds_session_n_tokens(s), n0); /* not appended */
    assert_int_equal(drain(s, &tb), DS_DONE);
    assert_string_equal(tb.ans, " yes");
    assert_int_equal(ds_session_step(s, &got), DS_DONE);
    assert_int_equal(got, -1);
    /* the host feeds it to close the turn: a new generation */
    tu_feed(s, &eos, 1);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_NONE);
    ds_session_close(s);

    /* ignore_eos: an ordinary token; render_special shows its text */
    p.ignore_eos = 1;
    p.render_special = 1;
    s = open_fed(&p, "Question:");
    memset(&tb, 0, sizeof tb);
    assert_int_equal(force(s, eos, &got), DS_OK);
    assert_int_equal(ds_session_n_tokens(s), n0 - nw + 1);
    drain(s, &tb);
    assert_string_equal(tb.ans, ds_tokenizer_token_text(g_tk, eos));
    ds_session_close(s);
}

static void test_stop_strings(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    ds_session_params p = tu_params(256);
    ds_session *s = open_fed(&p, "Say:");
    /* errors first */
    const char *bad_empty[] = {""};
    const char *bad_null[] = {NULL};
    char longs[300];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    const char *bad_long[] = {longs};
    const char *many[65];
    for (int i = 0; i < 65; i++)
        many[i] = "x";
    assert_int_equal(ds_session_set_stop_strings(s, bad_empty, 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_stop_strings(s, bad_null, 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_stop_strings(s, bad_long, 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_stop_strings(s, many, 65), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_stop_strings(s, NULL, 2), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_session_set_stop_strings(NULL, NULL, 0), DS_ERR_INVALID_ARG);

    int32_t w[32];
    size_t nw = tokenize(" alpha beta gamma delta", DS_TOKENIZE_NO_BOS, w, 32);
    assert_true(nw >= 4);
    /* "ta gam" spans the tokens of " beta" and " gamma"; "zzz" never occurs */
    const char *stops[] = {"zzz", "ta gam"};
    assert_int_equal(ds_session_set_stop_strings(s, stops, 2), DS_OK);
    textbuf tb = {0};
    ds_status st = DS_OK;
    size_t i = 0;
    for (; i < nw && st == DS_OK; i++) {
        st = force(s, w[i], NULL);
        drain(s, &tb);
    }
    assert_int_equal(st, DS_DONE);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_STRING);
    assert_string_equal(tb.ans, " alpha be");
    assert_true(i < nw); /* stopped before " delta" */
    /* the completing token was appended */
    const int32_t *t;
    size_t n;
    ds_session_tokens(s, &t, &n);
    assert_int_equal(t[n - 1], w[i - 1]);
    ds_text_kind k;
    const char *x;
    size_t xl;
    assert_int_equal(ds_session_text(s, &k, &x, &xl), DS_DONE);

    /* text held back for a possible stop string is released at the end (limit) */
    ds_session_rewind(s, ds_session_n_tokens(s));
    tu_feed(s, w, 1);
    const char *stops2[] = {" gamma!"};
    ds_session_set_stop_strings(s, stops2, 1);
    ds_session_params lim = tu_params(0);
    lim.max_tokens = 3;
    ds_session_set_sampling(s, &lim);
    memset(&tb, 0, sizeof tb);
    for (i = 1; i < 4; i++) {
        st = force(s, w[i], NULL);
        drain(s, &tb);
    }
    assert_int_equal(st, DS_DONE);
    assert_int_equal(ds_session_stop_reason(s), DS_STOP_LIMIT);
    assert_string_equal(tb.ans, " beta gamma delta");
    /* clearing the stop strings while text is held keeps the order of the text */
    ds_session_rewind(s, ds_session_n_tokens(s));
    tu_feed(s, w, 1);
    ds_session_set_sampling(s, &p);
    const char *stops3[] = {"ta x"};
    ds_session_set_stop_strings(s, stops3, 1);
    memset(&tb, 0, sizeof tb);
    assert_int_equal(force(s, w[1], NULL), DS_OK); /* " beta": "ta" held */
    drain(s, &tb);
    assert_string_equal(tb.ans, " be");
    assert_int_equal(ds_session_set_stop_strings(s, NULL, 0), DS_OK);
    assert_int_equal(force(s, w[2], NULL), DS_OK);
    drain(s, &tb);
    assert_string_equal(tb.ans, " beta gamma");
    ds_session_close(s);
}

static void test_utf8_split(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    /* find a character that takes more than one token */
    const char *cands[] = {"\xF0\x9F\xA6\x99", "\xE9\xBE\x98", "\xF0\x9F\x98\x80", "\xE2\x98\x83"};
    int32_t w[16];
    size_t nw = 0;
    const char *ch = NULL;
    for (size_t c = 0; c < sizeof cands / sizeof *cands && !ch; c++) {
        nw = tokenize(cands[c], DS_TOKENIZE_NO_BOS, w, 16);
        if (nw > 1)
            ch = cands[c];
    }
    if (!ch) {
        fprintf(stderr, "skipped: every candidate character is one token\n");
        skip();
    }
    ds_session_params p = tu_params(128);
    ds_session *s = open_fed(&p, "Emoji:");
    textbuf tb = {0};
    for (size_t i = 0; i + 1 < nw; i++) {
        assert_int_equal(force(s, w[i], NULL), DS_OK);
        assert_int_equal(drain(s, &tb), DS_AGAIN);
        assert_int_equal(tb.na, 0); /* nothing until the character is complete */
    }
    assert_int_equal(force(s, w[nw - 1], NULL), DS_OK);
    drain(s, &tb);
    assert_string_equal(tb.ans, ch);
    /* a generation cut inside a character ends with U+FFFD */
    ds_session_rewind(s, nw);
    tu_feed(s, w, 0);
    int32_t pr[4];
    size_t np = tokenize(":", DS_TOKENIZE_NO_BOS, pr, 4);
    tu_feed(s, pr, np);
    ds_session_params lim = tu_params(0);
    lim.max_tokens = 1;
    ds_session_set_sampling(s, &lim);
    memset(&tb, 0, sizeof tb);
    assert_int_equal(force(s, w[0], NULL), DS_DONE);
    drain(s, &tb);
    assert_string_equal(tb.ans, "\xEF\xBF\xBD");
    ds_session_close(s);
}

static void force_text(ds_session *s, const char *text, textbuf *tb)
{
    int32_t w[64];
    size_t nw = tokenize(text, DS_TOKENIZE_NO_BOS, w, 64);
    for (size_t i = 0; i < nw; i++) {
        assert_int_equal(force(s, w[i], NULL), DS_OK);
        drain(s, tb);
    }
}

static void test_reasoning(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    ds_session_params p = tu_params(256);
    p.reasoning = DS_REASONING_MODE_ON;
    ds_session *s = open_fed(&p, "Q:");
    textbuf tb = {0};
    force_text(s, "<think>abc, then more</think>The answer.", &tb);
    ds_session_params lim = tu_params(0);
    lim.max_tokens = 1;
    ds_session_set_sampling(s, &lim);
    int32_t dot[4];
    assert_true(tokenize(".", DS_TOKENIZE_NO_BOS, dot, 4) == 1);
    assert_int_equal(force(s, dot[0], NULL), DS_DONE); /* the limit ends the generation */
    drain(s, &tb);
    assert_string_equal(tb.rsn, "abc, then more");
    assert_string_equal(tb.ans, "The answer..");
    ds_session_close(s);

    /* a prompt ending in "<think>\n" starts inside the reasoning */
    p.max_tokens = 0;
    s = open_fed(&p, "Q: why?<think>\n");
    memset(&tb, 0, sizeof tb);
    force_text(s, "hmm</think>ok", &tb);
    assert_string_equal(tb.rsn, "hmm");
    assert_string_equal(tb.ans, "ok");
    ds_session_close(s);

    /* off (and AUTO on a model whose template is not R1): all answer */
    p.reasoning = DS_REASONING_MODE_AUTO;
    s = open_fed(&p, "Q:");
    memset(&tb, 0, sizeof tb);
    force_text(s, "<think>x</think>y", &tb);
    assert_int_equal(tb.nr, 0);
    assert_string_equal(tb.ans, "<think>x</think>y");
    ds_session_close(s);
}

static void test_save_mid_generation(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    int32_t w[64];
    size_t nw = tokenize(" one two three four five six", DS_TOKENIZE_NO_BOS, w, 64);
    const char *stops[] = {"four fiv", "xyz"};
    ds_session_params p = tu_params(256);
    p.reasoning = DS_REASONING_MODE_ON;
    /* uninterrupted */
    ds_session *r = open_fed(&p, "Count:<think>\n");
    ds_session_set_stop_strings(r, stops, 2);
    textbuf all = {0};
    ds_status st = DS_OK;
    for (size_t i = 0; i < nw && st == DS_OK; i++) {
        st = force(r, w[i], NULL);
        drain(r, &all);
    }
    assert_int_equal(st, DS_DONE);
    /* interrupted after " one two three four" (text " four" partly held back) */
    ds_session *s = open_fed(&p, "Count:<think>\n");
    ds_session_set_stop_strings(s, stops, 2);
    textbuf part = {0};
    size_t k = 0;
    while (k < nw) {
        force(s, w[k], NULL);
        drain(s, &part);
        k++;
        if (strstr(ds_tokenizer_token_text(g_tk, w[k - 1]), "four"))
            break;
    }
    size_t cap = 0, n = 0;
    ds_session_save_size(s, &cap);
    uint8_t *buf = malloc(cap);
    assert_int_equal(ds_session_save_buffer(s, buf, cap, &n), DS_OK);
    ds_session *t = tu_open(g_tok, &p);
    assert_int_equal(ds_session_load_buffer(t, buf, n), DS_OK);
    assert_int_equal(ds_session_n_generated(t), k);
    st = DS_OK;
    for (size_t i = k; i < nw && st == DS_OK; i++) {
        st = force(t, w[i], NULL);
        drain(t, &part);
    }
    assert_int_equal(st, DS_DONE);
    assert_int_equal(ds_session_stop_reason(t), DS_STOP_STRING);
    assert_string_equal(part.rsn, all.rsn);
    assert_string_equal(part.ans, all.ans);
    assert_string_equal(all.rsn, " one two three ");
    free(buf);
    ds_session_close(r);
    ds_session_close(s);
    ds_session_close(t);
}

/* The loop of the example in deepseek/session.h, as written there. */
static void test_header_loop(void **state)
{
    (void)state;
    NEED_TOKENIZER();
    ds_model *model = g_tok;
    const char *prompt = "User: Why is the sky blue?\n\nAssistant:";
    char out[8192];
    size_t olen = 0;
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.temperature = 0.7f;
    sp.top_p = 0.95f;
    sp.seed = 42;
    sp.max_tokens = 40;
    ds_session *s;
    assert_int_equal(ds_session_open(&s, model, &sp), DS_OK);
    assert_int_equal(ds_session_feed_text(s, prompt, strlen(prompt), DS_TOKENIZE_SPECIAL), DS_OK);
    ds_status st;
    int32_t tok;
    int steps = 0;
    do {
        st = ds_session_step(s, &tok);
        if (st < 0)
            break;
        steps++;
        ds_text_kind kind;
        const char *text;
        size_t len;
        while (ds_session_text(s, &kind, &text, &len) == DS_OK) {
            memcpy(out + olen, text, len);
            olen += len;
        }
    } while (st == DS_OK);
    assert_int_equal(st, DS_DONE);
    assert_true(ds_session_stop_reason(s) == DS_STOP_LIMIT || ds_session_stop_reason(s) == DS_STOP_EOS);
    /* the text equals the detokenized generated tokens (lossy UTF-8 aside) */
    const int32_t *t;
    size_t n;
    ds_session_tokens(s, &t, &n);
    size_t g = ds_session_n_generated(s);
    char ref[8192];
    size_t rl = 0;
    ds_detokenize(g_tk, t + n - g, g, 0, ref, sizeof ref, &rl);
    if (rl == olen)
        assert_memory_equal(ref, out, olen);
    fprintf(stderr, "header loop: %d steps, %zu bytes of text, stop: %s\n", steps, olen,
            ds_stop_reason_name(ds_session_stop_reason(s)));
    ds_session_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed_text),
        cmocka_unit_test(test_eos),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_reasoning),
        cmocka_unit_test(test_save_mid_generation),
        cmocka_unit_test(test_header_loop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
