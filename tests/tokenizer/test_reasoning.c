/*
 * tests/tokenizer/test_reasoning.c — the <think>…</think> splitter (ds_reasoning_*).
 *
 * Expected outputs are written by hand from the rules in include/deepseek/chat.h; the split
 * tests feed every text in every possible pair of pieces and one byte at a time, and a random
 * test checks that any chunking gives the same result as one push.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepseek/chat.h"

/* Collected output: the reasoning text and the answer text, plus the sequence of kinds of
 * the (merged) segments, e.g. "RA". */
typedef struct collected {
    char reasoning[1024];
    size_t rlen;
    char answer[1024];
    size_t alen;
    char kinds[16];
    size_t nkinds;
    int n_empty; /* segments of length 0 (must stay 0) */
} collected;

static void drain(ds_reasoning *r, collected *c, ds_status expect_end)
{
    ds_text_kind kind;
    const char *seg;
    size_t len;
    ds_status st;
    while ((st = ds_reasoning_next(r, &kind, &seg, &len)) == DS_OK) {
        if (len == 0)
            c->n_empty++;
        char k = kind == DS_TEXT_REASONING ? 'R' : 'A';
        if (c->nkinds == 0 || c->kinds[c->nkinds - 1] != k) {
            assert_true(c->nkinds + 1 < sizeof c->kinds);
            c->kinds[c->nkinds++] = k;
            c->kinds[c->nkinds] = '\0';
        }
        if (kind == DS_TEXT_REASONING) {
            assert_true(c->rlen + len < sizeof c->reasoning);
            memcpy(c->reasoning + c->rlen, seg, len);
            c->rlen += len;
            c->reasoning[c->rlen] = '\0';
        } else {
            assert_true(c->alen + len < sizeof c->answer);
            memcpy(c->answer + c->alen, seg, len);
            c->alen += len;
            c->answer[c->alen] = '\0';
        }
    }
    assert_int_equal(st, expect_end);
    assert_null(seg);
    assert_int_equal(len, 0);
}

/* Push text in pieces cut at the given offsets (sorted, strictly inside), then finish. */
static void run_split(uint32_t flags, const char *text, const size_t *cuts, size_t n_cuts,
                      collected *c)
{
    memset(c, 0, sizeof *c);
    ds_reasoning *r = NULL;
    assert_int_equal(ds_reasoning_open(&r, flags), DS_OK);
    size_t n = strlen(text), prev = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        assert_int_equal(ds_reasoning_push(r, text + prev, end - prev), DS_OK);
        drain(r, c, DS_AGAIN);
        prev = end;
    }
    assert_int_equal(ds_reasoning_finish(r), DS_OK);
    drain(r, c, DS_DONE);
    /* DONE is sticky */
    ds_text_kind k;
    const char *s;
    size_t l;
    assert_int_equal(ds_reasoning_next(r, &k, &s, &l), DS_DONE);
    ds_reasoning_close(r);
    assert_int_equal(c->n_empty, 0);
}

typedef struct split_case {
    uint32_t flags;
    const char *input;
    const char *reasoning;
    const char *answer;
    const char *kinds;
} split_case;

#define INSIDE DS_REASONING_START_INSIDE

static const split_case cases[] = {
    /* the R1 output form */
    {0, "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "\nLet me think.\n",
     "\n\nThe answer is 4.", "RA"},
    /* the prompt ended with <think>\n: only the closing tag comes */
    {INSIDE, "Let me think.\n</think>\n\nFour.", "Let me think.\n", "\n\nFour.", "RA"},
    /* a model repeating <think> although the prompt had it */
    {INSIDE, "<think>\nhmm</think>ok", "\nhmm", "ok", "RA"},
    /* leading whitespace before <think> is dropped with the tag */
    {0, "\n \t<think>r</think>a", "r", "a", "RA"},
    {INSIDE, "\n\n<think>r</think>a", "r", "a", "RA"},
    /* leading whitespace that does not lead to <think> is text of the default kind */
    {0, "\n\nHello", "", "\n\nHello", "A"},
    {INSIDE, "\n\nHello</think>x", "\n\nHello", "x", "RA"},
    /* no reasoning at all: tags later in the answer are text */
    {0, "Hello <think>x</think> y", "", "Hello <think>x</think> y", "A"},
    {0, "a<think>", "", "a<think>", "A"},
    /* only one reasoning block; a second </think> or <think> is answer text */
    {0, "<think>a</think>b</think>c<think>d", "a", "b</think>c<think>d", "RA"},
    /* reasoning never closed: all reasoning, including a partial closing tag */
    {0, "<think>abc</thi", "abc</thi", "", "R"},
    {INSIDE, "abc</thin", "abc</thin", "", "R"},
    /* a partial opening tag at the end is text */
    {0, "<thi", "", "<thi", "A"},
    {0, "  <think", "", "  <think", "A"},
    /* near misses */
    {0, "<thinking>x", "", "<thinking>x", "A"},
    {0, "<think>a</think >b</think>c", "a</think >b", "c", "RA"},
    {0, "<think>a<</think>b", "a<", "b", "RA"},
    {0, "<think>a</</think>b", "a</", "b", "RA"},
    {0, "<think>a<think></think>b", "a<think>", "b", "RA"},
    /* empty parts */
    {0, "<think></think>", "", "", ""},
    {0, "<think></think>x", "", "x", "A"},
    {INSIDE, "</think>x", "", "x", "A"},
    {INSIDE, "", "", "", ""},
    {0, "", "", "", ""},
    {0, "   ", "", "   ", "A"},
    {INSIDE, "   ", "   ", "", "R"},
    /* multi-byte UTF-8 around the tags */
    {0, "<think>日本</think>😀é", "日本", "😀é", "RA"},
};

static void check(const split_case *k, const collected *c, const char *how)
{
    if (strcmp(c->reasoning, k->reasoning) != 0 || strcmp(c->answer, k->answer) != 0 ||
        strcmp(c->kinds, k->kinds) != 0) {
        print_error("input \"%s\" (flags %u, %s): got R=\"%s\" A=\"%s\" kinds=%s\n", k->input,
                    (unsigned)k->flags, how, c->reasoning, c->answer, c->kinds);
        fail();
    }
}

static void test_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collected c;
        run_split(cases[i].flags, cases[i].input, NULL, 0, &c);
        check(&cases[i], &c, "one push");
    }
}

/* Every split into two pieces, and into three pieces at every pair of offsets. */
static void test_every_boundary(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].input);
        for (size_t a = 0; a <= n; a++) {
            for (size_t b = a; b <= n; b++) {
                size_t cuts[2] = {a, b};
                collected c;
                run_split(cases[i].flags, cases[i].input, cuts, 2, &c);
                char how[64];
                snprintf(how, sizeof how, "cut at %zu and %zu", a, b);
                check(&cases[i], &c, how);
            }
        }
    }
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].input);
        size_t cuts[128];
        assert_true(n < 128);
        for (size_t j = 1; j < n; j++)
            cuts[j - 1] = j;
        collected c;
        run_split(cases[i].flags, cases[i].input, cuts, n ? n - 1 : 0, &c);
        check(&cases[i], &c, "one byte at a time");
    }
}

/* Random texts over an alphabet rich in tag characters: any chunking gives what one push gives,
 * and the output is the input without the tags. */
static void test_random_chunking(void **state)
{
    (void)state;
    static const char *const atoms[] = {"<think>", "</think>", "<", "</", "<th", "</thi", "think",
                                        ">", "a", " ", "\n", "é", "</think", "<think"};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    for (int iter = 0; iter < 3000; iter++) {
        char text[256];
        size_t n = 0;
        int atoms_n = (int)(NEXT() % 12);
        for (int j = 0; j < atoms_n; j++) {
            const char *a = atoms[NEXT() % (sizeof atoms / sizeof atoms[0])];
            size_t al = strlen(a);
            memcpy(text + n, a, al);
            n += al;
        }
        text[n] = '\0';
        uint32_t flags = (NEXT() & 1) ? INSIDE : 0;
        collected whole, parts;
        run_split(flags, text, NULL, 0, &whole);
        size_t cuts[256], nc = 0;
        for (size_t j = 1; j < n; j++)
            if (NEXT() % 3 == 0)
                cuts[nc++] = j;
        run_split(flags, text, cuts, nc, &parts);
        if (strcmp(whole.reasoning, parts.reasoning) || strcmp(whole.answer, parts.answer) ||
            strcmp(whole.kinds, parts.kinds)) {
            print_error("text \"%s\" flags %u: whole R=\"%s\" A=\"%s\"; chunked R=\"%s\" A=\"%s\"\n",
                        text, (unsigned)flags, whole.reasoning, whole.answer, parts.reasoning,
                        parts.answer);
            fail();
        }
        /* kinds: at most one switch, and only from reasoning to answer */
        assert_true(strlen(whole.kinds) <= 2);
        if (strlen(whole.kinds) == 2)
            assert_string_equal(whole.kinds, "RA");
        /* the output is the input minus at most one "<think>" (plus whitespace before it) and
         * one "</think>" */
        size_t removed = n - whole.rlen - whole.alen;
        assert_true(removed == 0 || removed >= 7);
    }
#undef NEXT
}

static void test_api_states(void **state)
{
    (void)state;
    ds_reasoning *r = NULL;
    ds_text_kind kind;
    const char *seg = (const char *)1;
    size_t len = 99;

    assert_int_equal(ds_reasoning_open(NULL, 0), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_reasoning_open(&r, 0x80), DS_ERR_INVALID_ARG);
    assert_null(r);
    assert_int_equal(ds_reasoning_open(&r, 0), DS_OK);
    assert_non_null(r);

    /* nothing pushed yet */
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_AGAIN);
    assert_null(seg);
    assert_int_equal(len, 0);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_ANSWER);

    assert_int_equal(ds_reasoning_push(r, "<thi", 4), DS_OK);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_AGAIN); /* held back */
    assert_int_equal(ds_reasoning_push(r, "nk>abc", 6), DS_OK);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_ANSWER); /* not decided before next() */
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_OK);
    assert_int_equal(kind, DS_TEXT_REASONING);
    assert_int_equal(len, 3);
    assert_memory_equal(seg, "abc", 3);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_REASONING);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_AGAIN);

    assert_int_equal(ds_reasoning_push(r, "d</", 3), DS_OK);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_OK);
    assert_int_equal(len, 1);
    assert_memory_equal(seg, "d", 1);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_AGAIN);
    assert_int_equal(ds_reasoning_push(r, "think>\n\nok", 10), DS_OK);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_OK);
    assert_int_equal(kind, DS_TEXT_ANSWER);
    assert_int_equal(len, 4);
    assert_memory_equal(seg, "\n\nok", 4);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_ANSWER);

    /* NULL/empty pushes */
    assert_int_equal(ds_reasoning_push(r, NULL, 0), DS_OK);
    assert_int_equal(ds_reasoning_push(r, NULL, 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_reasoning_push(NULL, "x", 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_reasoning_next(r, NULL, &seg, &len), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_reasoning_next(NULL, &kind, &seg, &len), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_reasoning_finish(NULL), DS_ERR_INVALID_ARG);

    /* finish, then push is a state error until reset */
    assert_int_equal(ds_reasoning_finish(r), DS_OK);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_DONE);
    assert_int_equal(ds_reasoning_push(r, "x", 1), DS_ERR_STATE);
    assert_true(strlen(ds_last_error()) > 0);

    ds_reasoning_reset(r);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_ANSWER);
    assert_int_equal(ds_reasoning_push(r, "<think>x", 8), DS_OK);
    assert_int_equal(ds_reasoning_next(r, &kind, &seg, &len), DS_OK);
    assert_int_equal(kind, DS_TEXT_REASONING);
    assert_memory_equal(seg, "x", 1);
    ds_reasoning_close(r);

    /* START_INSIDE: kind is reasoning from the start */
    assert_int_equal(ds_reasoning_open(&r, DS_REASONING_START_INSIDE), DS_OK);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_REASONING);
    ds_reasoning_reset(r);
    assert_int_equal(ds_reasoning_kind(r), DS_TEXT_REASONING);
    ds_reasoning_close(r);

    ds_reasoning_close(NULL);
    ds_reasoning_reset(NULL);
    assert_int_equal(ds_reasoning_kind(NULL), DS_TEXT_ANSWER);
}

/* A long stream pushed piece by piece keeps memory bounded (the buffer is compacted) and
 * segments stay valid until the next call. */
static void test_long_stream(void **state)
{
    (void)state;
    ds_reasoning *r = NULL;
    assert_int_equal(ds_reasoning_open(&r, DS_REASONING_START_INSIDE), DS_OK);
    size_t total_r = 0, total_a = 0;
    for (int i = 0; i < 100000; i++) {
        const char *piece = i == 50000 ? "</think>" : (i % 2 ? "lorem " : "ipsum<");
        assert_int_equal(ds_reasoning_push(r, piece, strlen(piece)), DS_OK);
        ds_text_kind kind;
        const char *seg;
        size_t len;
        while (ds_reasoning_next(r, &kind, &seg, &len) == DS_OK)
            *(kind == DS_TEXT_REASONING ? &total_r : &total_a) += len;
    }
    ds_reasoning_finish(r);
    ds_text_kind kind;
    const char *seg;
    size_t len;
    while (ds_reasoning_next(r, &kind, &seg, &len) == DS_OK)
        *(kind == DS_TEXT_REASONING ? &total_r : &total_a) += len;
    assert_int_equal(total_r, 50000 * 6);
    assert_int_equal(total_a, 49999 * 6);
    ds_reasoning_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_every_boundary),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_random_chunking),
        cmocka_unit_test(test_api_states),
        cmocka_unit_test(test_long_stream),
    };
    return cmocka_run_group_tests_name("reasoning", tests, NULL, NULL);
}
