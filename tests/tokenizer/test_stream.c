/*
 * tests/tokenizer/test_stream.c — the streaming UTF-8 decoder (ds_text_stream_*).
 *
 * Part 1 (no fixtures): the lossy decoder against a table whose expected outputs are those of
 * Python's bytes.decode("utf-8", "replace") (the "maximal subpart" practice), and random byte
 * strings pushed in random chunks, which must give the one-shot decode.
 * Part 2 (needs $DS_SHARED_DIR): real vocabularies — byte-level tokens of an emoji pushed one at
 * a time, invalid byte tokens, special tokens, random token sequences, buffer-size errors.
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
#include "tokenizer/chat_internal.h"

#define R "\357\277\275" /* U+FFFD */

/* ---- helpers ------------------------------------------------------------------------------- */

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* Strict UTF-8 validity (no overlongs, surrogates or values above U+10FFFF). */
static int valid_utf8(const char *s, size_t n)
{
    size_t held = 0;
    /* a valid string decodes to itself with no replacement: compare lengths and bytes */
    char *out = malloc(3 * n + 4);
    size_t m = ds_utf8_lossy((const uint8_t *)s, n, 0, out, &held);
    int ok = m == n && memcmp(out, s, n) == 0;
    /* an input that already contained U+FFFD would also pass; that is fine for our uses */
    free(out);
    return ok;
}

typedef struct lossy_case {
    const char *hex;
    const char *expected;
} lossy_case;

/* Expected outputs checked against CPython 3: bytes.fromhex(hex).decode("utf-8", "replace"). */
static const lossy_case lossy_cases[] = {
    {"", ""},
    {"616263", "abc"},
    {"c3a9", "\303\251"},
    {"80", R},
    {"8080", R R},
    {"c080", R R},              /* C0/C1 are never valid */
    {"c1bf", R R},
    {"e08080", R R R},          /* overlong: E0 must be followed by A0–BF */
    {"e0a0", R},                /* truncated at the end: one U+FFFD */
    {"e0a041", R "A"},          /* truncated by a non-continuation: one U+FFFD, then A */
    {"eda080", R R R},          /* surrogate */
    {"ed9fbf", "\355\237\277"}, /* U+D7FF */
    {"f09f9880", "\360\237\230\200"},
    {"f09f98", R},
    {"f09f9841", R "A"},
    {"f0808080", R R R R},      /* overlong 4-byte */
    {"f4908080", R R R R},      /* above U+10FFFF */
    {"f48fbfbf", "\364\217\277\277"},
    {"f580", R R},
    {"fffe", R R},
    {"c3", R},
    {"c3c3a9", R "\303\251"},
    {"e282", R},
    {"e282ac", "\342\202\254"},
    /* the example of Unicode §3.9 (table 3-8): a R R R b R c R R d */
    {"61f18080e180c262806380bf64", "a" R R R "b" R "c" R R "d"},
    {"efbfbd", R},
    {"e0", R},
    {"f0", R},
    {"f09f", R},
    {"41c2", "A" R},
    {"c2c2", R R},
    {"e0a0e0a080", R "\340\240\200"},
    {"dfbf", "\337\277"},
    {"c280", "\302\200"},
    {"f090808041", "\360\220\200\200" "A"},
};

static void test_lossy_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof lossy_cases / sizeof lossy_cases[0]; i++) {
        uint8_t in[64];
        char out[256];
        size_t n = unhex(lossy_cases[i].hex, in), held = 99;
        size_t m = ds_utf8_lossy(in, n, 0, out, &held);
        assert_int_equal(held, 0);
        assert_int_equal(m, ds_utf8_lossy(in, n, 0, NULL, &held)); /* measuring agrees */
        out[m] = '\0';
        if (strcmp(out, lossy_cases[i].expected) != 0) {
            print_error("bytes %s: wrong lossy decode\n", lossy_cases[i].hex);
            fail();
        }
        assert_true(m <= DS_TEXT_STREAM_MAX_OUTPUT(n));
    }
}

/* Hold-back: a possibly valid unfinished tail at the end is held, up to 3 bytes. */
static void test_hold_back(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        size_t held;
        const char *out;
    } cases[] = {
        {"41c3", 1, "A"},
        {"41e0a0", 2, "A"},
        {"41e080", 0, "A" R R},    /* E0 80 can never be completed: not held */
        {"41eda0", 0, "A" R R},    /* surrogate start: not held */
        {"f09f98", 3, ""},
        {"f09f9880", 0, "\360\237\230\200"},
        {"f4", 1, ""},
        {"f490", 0, R R},
        {"f5", 0, R},
        {"80", 0, R},
        {"c3a9e2", 1, "\303\251"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t in[16];
        char out[64];
        size_t n = unhex(cases[i].hex, in), held = 99;
        size_t m = ds_utf8_lossy(in, n, 1, out, &held);
        out[m] = '\0';
        if (held != cases[i].held || strcmp(out, cases[i].out) != 0) {
            print_error("bytes %s: held %zu (want %zu)\n", cases[i].hex, held, cases[i].held);
            fail();
        }
    }
}

/* Push `n` bytes in chunks cut where cut[i] is nonzero; collect output (each push's output must
 * be valid UTF-8 on its own). */
static size_t push_chunks(ds_text_stream *s, const uint8_t *in, size_t n, const uint8_t *cut,
                          char *out)
{
    size_t o = 0, start = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && !cut[i])
            continue;
        char buf[512];
        size_t len = 99;
        size_t piece = i - start;
        assert_int_equal(ds_text_stream_push_bytes(s, in + start, piece, buf,
                                                   DS_TEXT_STREAM_MAX_OUTPUT(piece), &len),
                         DS_OK);
        assert_true(len <= DS_TEXT_STREAM_MAX_OUTPUT(piece));
        assert_true(valid_utf8(buf, len));
        memcpy(out + o, buf, len);
        o += len;
        start = i;
    }
    char buf[8];
    size_t len = 99;
    assert_int_equal(ds_text_stream_flush(s, buf, 3, &len), DS_OK);
    assert_true(len == 0 || len == 3);
    memcpy(out + o, buf, len);
    return o + len;
}

static void test_random_bytes_chunked(void **state)
{
    (void)state;
    /* building blocks: valid characters of every length, their prefixes, and invalid bytes */
    static const char *const atoms[] = {
        "41", "20", "c3a9", "e282ac", "f09f9880", "f48fbfbf", "ed9fbf", "e0a080",
        "c3", "e282", "f09f98", "f09f", "e0a0", "80", "bf", "c0", "c1", "f5", "ff",
        "e080", "eda0", "f080", "f490", "0a",
    };
    ds_text_stream *s = NULL;
    assert_int_equal(ds_text_stream_create(&s, NULL, 0), DS_OK);
    uint64_t rng = 0x2545F4914F6CDD1Dull;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t in[256], cut[256] = {0};
        size_t n = 0;
        int k = (int)(NEXT() % 16);
        for (int j = 0; j < k; j++)
            n += unhex(atoms[NEXT() % (sizeof atoms / sizeof atoms[0])], in + n);
        for (size_t j = 1; j < n; j++)
            cut[j] = (NEXT() % 3) == 0;
        char want[1024], got[1024];
        size_t held;
        size_t wn = ds_utf8_lossy(in, n, 0, want, &held);
        size_t gn = push_chunks(s, in, n, cut, got);
        if (gn != wn || memcmp(want, got, wn) != 0) {
            print_error("iteration %d: chunked decode differs from one-shot decode\n", iter);
            fail();
        }
    }
#undef NEXT
    ds_text_stream_close(s);
}

/* Every split of an emoji's 4 bytes: nothing is output before the last byte. */
static void test_emoji_split_bytes(void **state)
{
    (void)state;
    ds_text_stream *s = NULL;
    assert_int_equal(ds_text_stream_create(&s, NULL, 0), DS_OK);
    const uint8_t emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    char buf[32];
    size_t len;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ds_text_stream_push_bytes(s, emoji + i, 1, buf, sizeof buf, &len), DS_OK);
        assert_int_equal(len, 0);
    }
    assert_int_equal(ds_text_stream_push_bytes(s, emoji + 3, 1, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, emoji, 4);
    assert_int_equal(buf[4], '\0'); /* convenience NUL */
    /* a held tail proved invalid by the next piece: one U+FFFD, then the piece */
    assert_int_equal(ds_text_stream_push_bytes(s, emoji, 2, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(ds_text_stream_push_bytes(s, "A", 1, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, R "A", 4);
    /* the worst case of DS_TEXT_STREAM_MAX_OUTPUT: held tail invalidated by an invalid byte */
    assert_int_equal(ds_text_stream_push_bytes(s, emoji, 1, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(ds_text_stream_push_bytes(s, "\xff", 1, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, DS_TEXT_STREAM_MAX_OUTPUT(1));
    assert_memory_equal(buf, R R, 6);
    /* flush of an unfinished tail: one U+FFFD, then the stream is empty */
    assert_int_equal(ds_text_stream_push_bytes(s, emoji, 3, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(ds_text_stream_flush(s, buf, 2, &len), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 3);
    assert_int_equal(ds_text_stream_flush(s, buf, 3, &len), DS_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, R, 3);
    assert_int_equal(ds_text_stream_flush(s, buf, 3, &len), DS_OK);
    assert_int_equal(len, 0);
    /* reset drops a held tail */
    assert_int_equal(ds_text_stream_push_bytes(s, emoji, 3, buf, sizeof buf, &len), DS_OK);
    ds_text_stream_reset(s);
    assert_int_equal(ds_text_stream_push_bytes(s, "B", 1, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], 'B');
    /* buffer too small: nothing consumed */
    assert_int_equal(ds_text_stream_push_bytes(s, emoji, 2, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(ds_text_stream_push_bytes(s, emoji + 2, 2, buf, 3, &len),
                     DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 4);
    assert_int_equal(ds_text_stream_push_bytes(s, emoji + 2, 2, buf, 4, &len), DS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, emoji, 4);
    ds_text_stream_close(s);
}

/* ---- with real vocabularies ------------------------------------------------------------------ */

static const char *shared_dir(void)
{
    const char *d = getenv("DS_SHARED_DIR");
    return d && d[0] ? d : NULL;
}

static ds_tokenizer *open_fixture(const char *rel)
{
    const char *d = shared_dir();
    if (!d) {
        print_message("SKIP: DS_SHARED_DIR is not set; the tokenizer fixtures are not available\n");
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s", d, rel);
    ds_tokenizer *tok = NULL;
    ds_status st = ds_tokenizer_open(&tok, path);
    if (st != DS_OK)
        print_error("ds_tokenizer_open(%s): %s\n", path, ds_last_error());
    assert_int_equal(st, DS_OK);
    return tok;
}

#define V3_TOKENIZER "deepseek-v3/tokenizer.json"
#define LLM_GGUF "deepseek-llm/ggml-vocab-deepseek-llm.gguf"

/* The byte-level token of one raw byte (GPT-2 bytes_to_unicode). */
static int32_t byte_token(const ds_tokenizer *tok, uint8_t b)
{
    unsigned cp;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        cp = b;
    else {
        unsigned k = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE)))
                k++;
        cp = 256 + k;
    }
    char s[4];
    if (cp < 0x80) {
        s[0] = (char)cp;
        s[1] = 0;
    } else {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        s[2] = 0;
    }
    int32_t id = -1;
    assert_int_equal(ds_tokenizer_token_id(tok, s, &id), DS_OK);
    return id;
}

static void push_tok(ds_text_stream *s, int32_t id, const char *want, size_t want_len)
{
    char buf[256];
    size_t len = 99;
    assert_int_equal(ds_text_stream_push(s, id, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, want_len);
}

static void test_tokens_emoji_bytes(void **state)
{
    (void)state;
    ds_tokenizer *tok = open_fixture(V3_TOKENIZER);
    if (!tok) {
        skip();
        return;
    }
    ds_text_stream *s = NULL;
    assert_int_equal(ds_text_stream_open(&s, tok, 0), DS_OK);
    /* 😀 = F0 9F 98 80 as four byte tokens */
    push_tok(s, byte_token(tok, 0xF0), "", 0);
    push_tok(s, byte_token(tok, 0x9F), "", 0);
    push_tok(s, byte_token(tok, 0x98), "", 0);
    push_tok(s, byte_token(tok, 0x80), "\360\237\230\200", 4);
    /* 日 = E6 97 A5 split 2 + 1, with a control token (no bytes) in between */
    push_tok(s, byte_token(tok, 0xE6), "", 0);
    push_tok(s, byte_token(tok, 0x97), "", 0);
    push_tok(s, ds_tokenizer_eos(tok), "", 0);
    push_tok(s, byte_token(tok, 0xA5), "\346\227\245", 3);
    /* invalid: a lone continuation byte, a lead byte followed by ASCII, FF */
    push_tok(s, byte_token(tok, 0x80), R, 3);
    push_tok(s, byte_token(tok, 0xE6), "", 0);
    int32_t a = byte_token(tok, 'A');
    push_tok(s, a, R "A", 4);
    push_tok(s, byte_token(tok, 0xFF), R, 3);
    /* a held tail at the end becomes U+FFFD at flush */
    push_tok(s, byte_token(tok, 0xF0), "", 0);
    push_tok(s, byte_token(tok, 0x9F), "", 0);
    char buf[8];
    size_t len;
    assert_int_equal(ds_text_stream_flush(s, buf, sizeof buf, &len), DS_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, R, 3);
    /* bad arguments */
    assert_int_equal(ds_text_stream_push(s, -1, buf, sizeof buf, &len), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_text_stream_push(s, ds_tokenizer_n_vocab(tok), buf, sizeof buf, &len),
                     DS_ERR_INVALID_ARG);
    assert_int_equal(ds_text_stream_push(s, a, NULL, 4, &len), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_text_stream_push(s, a, buf, sizeof buf, NULL), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_text_stream_push(NULL, a, buf, sizeof buf, &len), DS_ERR_INVALID_ARG);
    /* buffer too small: the size is reported and nothing is consumed */
    push_tok(s, byte_token(tok, 0xE6), "", 0);
    push_tok(s, byte_token(tok, 0x97), "", 0);
    assert_int_equal(ds_text_stream_push(s, byte_token(tok, 0xA5), NULL, 0, &len),
                     DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 3);
    push_tok(s, byte_token(tok, 0xA5), "\346\227\245", 3);
    ds_text_stream_close(s);

    ds_text_stream *bad = (ds_text_stream *)1;
    assert_int_equal(ds_text_stream_open(&bad, tok, 0x100), DS_ERR_INVALID_ARG);
    assert_null(bad);
    assert_int_equal(ds_text_stream_open(&bad, NULL, 0), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_text_stream_open(NULL, tok, 0), DS_ERR_INVALID_ARG);
    ds_text_stream_close(NULL);
    ds_text_stream_reset(NULL);
    ds_tokenizer_close(tok);
}

static void test_tokens_specials(void **state)
{
    (void)state;
    ds_tokenizer *tok = open_fixture(V3_TOKENIZER);
    if (!tok) {
        skip();
        return;
    }
    static const char eos_text[] = "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>";
    ds_text_stream *plain = NULL, *special = NULL;
    assert_int_equal(ds_text_stream_open(&plain, tok, 0), DS_OK);
    assert_int_equal(ds_text_stream_open(&special, tok, DS_TEXT_STREAM_RENDER_SPECIAL), DS_OK);
    push_tok(plain, ds_tokenizer_eos(tok), "", 0);
    push_tok(special, ds_tokenizer_eos(tok), eos_text, strlen(eos_text));
    /* a held tail followed by a rendered special: the tail is invalid → U+FFFD + special text */
    push_tok(special, byte_token(tok, 0xE6), "", 0);
    char want[64];
    snprintf(want, sizeof want, "%s%s", R, eos_text);
    push_tok(special, ds_tokenizer_eos(tok), want, strlen(want));
    ds_text_stream_close(plain);
    ds_text_stream_close(special);
    ds_tokenizer_close(tok);
}

/* Tokenize valid text, decode one token at a time: the pieces concatenate to the text, and every
 * piece is valid UTF-8. */
static void roundtrip_text(const ds_tokenizer *tok, const char *text)
{
    int32_t ids[1024];
    size_t n = 0;
    assert_int_equal(ds_tokenize(tok, text, strlen(text), DS_TOKENIZE_NO_BOS, ids, 1024, &n),
                     DS_OK);
    ds_text_stream *s = NULL;
    assert_int_equal(ds_text_stream_open(&s, tok, 0), DS_OK);
    char out[4096];
    size_t o = 0;
    int held_some = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        size_t len = 0, plen = 0;
        ds_token_to_piece(tok, ids[i], 0, NULL, 0, &plen);
        assert_int_equal(ds_text_stream_push(s, ids[i], buf, DS_TEXT_STREAM_MAX_OUTPUT(plen), &len),
                         DS_OK);
        assert_true(valid_utf8(buf, len));
        if (len != plen)
            held_some = 1;
        memcpy(out + o, buf, len);
        o += len;
    }
    size_t len = 0;
    assert_int_equal(ds_text_stream_flush(s, out + o, 3, &len), DS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(o, strlen(text));
    assert_memory_equal(out, text, o);
    (void)held_some;
    ds_text_stream_close(s);
}

static void test_tokens_roundtrip(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "Hello, world!",
        "日本語のテキストと中文文本，以及한국어.",
        "emoji 😀👍🏽🧑‍🤝‍🧑 and flags 🇫🇷🇯🇵",
        "rare CJK: 𠀀𠀁𪚥 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∮ E⋅da = Q",
        "mixed\tcontrol\r\nchars and \xC2\xA0nbsp",
        "<think>\nreasoning\n</think>\n\nanswer",
    };
    static const char *const fixtures[] = {V3_TOKENIZER, LLM_GGUF};
    for (size_t f = 0; f < 2; f++) {
        ds_tokenizer *tok = open_fixture(fixtures[f]);
        if (!tok) {
            skip();
            return;
        }
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
            roundtrip_text(tok, texts[i]);
        ds_tokenizer_close(tok);
    }
}

/* Random token sequences (any ids, so often invalid UTF-8): decoding one token at a time gives
 * the one-shot lossy decode of the full detokenization, with and without special rendering. */
static void test_tokens_random(void **state)
{
    (void)state;
    static const char *const fixtures[] = {V3_TOKENIZER, LLM_GGUF};
    for (size_t f = 0; f < 2; f++) {
        ds_tokenizer *tok = open_fixture(fixtures[f]);
        if (!tok) {
            skip();
            return;
        }
        int32_t nv = ds_tokenizer_n_vocab(tok);
        assert_true(nv > 256);
        /* byte tokens, to make split and invalid characters frequent */
        int32_t bytes[256];
        for (int b = 0; b < 256; b++)
            bytes[b] = byte_token(tok, (uint8_t)b);
        uint64_t rng = 0xD1B54A32D192ED03ull ^ f;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
        for (int iter = 0; iter < 400; iter++) {
            int32_t ids[64];
            size_t n = (size_t)(NEXT() % 64);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = NEXT() % 10;
                if (r < 4)
                    ids[i] = bytes[0x80 + NEXT() % 0x80]; /* a non-ASCII byte */
                else if (r < 5)
                    ids[i] = bytes[NEXT() % 0x80];
                else
                    ids[i] = (int32_t)(NEXT() % (uint64_t)nv);
            }
            for (int special = 0; special < 2; special++) {
                uint32_t dflags = special ? DS_DETOKENIZE_SPECIAL : 0;
                size_t raw_len = 0;
                ds_status st = ds_detokenize(tok, ids, n, dflags, NULL, 0, &raw_len);
                assert_true(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
                char *raw = malloc(raw_len + 1);
                assert_int_equal(ds_detokenize(tok, ids, n, dflags, raw, raw_len + 1, &raw_len),
                                 DS_OK);
                size_t held;
                char *want = malloc(3 * raw_len + 4);
                size_t wn = ds_utf8_lossy((const uint8_t *)raw, raw_len, 0, want, &held);

                ds_text_stream *s = NULL;
                assert_int_equal(
                    ds_text_stream_open(&s, tok, special ? DS_TEXT_STREAM_RENDER_SPECIAL : 0),
                    DS_OK);
                char *got = malloc(3 * raw_len + 4);
                size_t gn = 0;
                for (size_t i = 0; i < n; i++) {
                    size_t plen = 0, len = 0;
                    ds_token_to_piece(tok, ids[i], dflags, NULL, 0, &plen);
                    char *buf = malloc(DS_TEXT_STREAM_MAX_OUTPUT(plen) + 1);
                    assert_int_equal(ds_text_stream_push(s, ids[i], buf,
                                                         DS_TEXT_STREAM_MAX_OUTPUT(plen), &len),
                                     DS_OK);
                    assert_true(valid_utf8(buf, len));
                    memcpy(got + gn, buf, len);
                    gn += len;
                    free(buf);
                }
                size_t len = 0;
                assert_int_equal(ds_text_stream_flush(s, got + gn, 3, &len), DS_OK);
                gn += len;
                if (gn != wn || memcmp(got, want, wn) != 0) {
                    print_error("%s: iteration %d (special %d): streamed text differs\n",
                                fixtures[f], iter, special);
                    fail();
                }
                ds_text_stream_close(s);
                free(raw);
                free(want);
                free(got);
            }
        }
#undef NEXT
        ds_tokenizer_close(tok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossy_table),
        cmocka_unit_test(test_hold_back),
        cmocka_unit_test(test_random_bytes_chunked),
        cmocka_unit_test(test_emoji_split_bytes),
        cmocka_unit_test(test_tokens_emoji_bytes),
        cmocka_unit_test(test_tokens_specials),
        cmocka_unit_test(test_tokens_roundtrip),
        cmocka_unit_test(test_tokens_random),
    };
    return cmocka_run_group_tests_name("text_stream", tests, NULL, NULL);
}
