/*
 * tests/tokenizer/test_tok_unit.c — white-box and contract tests of the tokenizer core.
 *
 * Self-contained parts (synthetic GGUF / tokenizer.json built in memory or in a temp dir):
 * byte<->unicode table, UTF-8 decoding, GGUF loading and its error paths (wrong model,
 * wrong token_type element type, ids out of range, unknown pre-tokenizer, bad merges), copy
 * semantics (the tokenizer outlives the GGUF buffer), tokenizer.json variants (pair-form merges,
 * ignore_merges, user-defined added tokens with lstrip/rstrip, custom Split regexes, unsupported
 * members), API argument checks and buffer-size queries.
 * Fixture-based parts (skipped if $DS_SHARED_DIR is absent): pre-token splits of formats.md, the
 * documented invalid-UTF-8 behaviour, pseudo-random round trips over all Unicode planes, long
 * runs (no quadratic blow-up), and concurrent use of one tokenizer from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "deepseek/tokenizer.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tok_test_util.h"

/* ========================================================================================
 * helpers
 * ======================================================================================== */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int32_t *tok_all(const ds_tokenizer *t, const char *s, size_t len, uint32_t flags, size_t *n)
{
    size_t need = 0;
    ds_status st = ds_tokenize(t, s, len, flags, NULL, 0, &need);
    assert_true(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    size_t got = 0;
    assert_int_equal(ds_tokenize(t, s, len, flags, ids, need, &got), DS_OK);
    assert_int_equal(got, need);
    *n = got;
    return ids;
}

static char *detok_all(const ds_tokenizer *t, const int32_t *ids, size_t n, uint32_t flags, size_t *len)
{
    size_t need = 0;
    ds_status st = ds_detokenize(t, ids, n, flags, NULL, 0, &need);
    assert_true(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
    char *b = malloc(need + 1);
    assert_non_null(b);
    size_t got = 0;
    assert_int_equal(ds_detokenize(t, ids, n, flags, b, need + 1, &got), DS_OK);
    assert_int_equal(got, need);
    assert_int_equal(b[got], 0);
    *len = got;
    return b;
}

static bool roundtrip_ok(const ds_tokenizer *t, const char *s, size_t len, uint32_t tflags, uint32_t dflags)
{
    size_t n = 0, bl = 0;
    int32_t *ids = tok_all(t, s, len, tflags, &n);
    char *back = detok_all(t, ids, n, dflags, &bl);
    bool ok = bl == len && memcmp(back, s, len) == 0;
    free(ids);
    free(back);
    return ok;
}

/* ---- a tiny GGUF writer ---- */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s, size_t n) { gu64(b, n); gput(b, s, n); }
static void gkey(gbuf *b, const char *k, uint32_t type) { gstr(b, k, strlen(k)); gu32(b, type); }

typedef struct gguf_spec {
    const char *model;          /* NULL: omit */
    const char *pre;            /* NULL: omit */
    bool types_f32;             /* write token_type as FLOAT32 */
    bool types_short;           /* one entry too few */
    bool omit_merges;
    bool bad_merge;             /* a merge without a space */
    int64_t bos;                /* -1: omit */
    bool add_bos;
    const char *chat_template;  /* NULL: omit */
} gguf_spec;

/* Vocabulary: 256 byte tokens (byte-level encoded), then "aa", "aaaa", "Ġa", "<|ctl|>" (CONTROL),
 * "[UD]" (USER_DEFINED). Merges: "a a", "aa aa", "Ġ a". */
#define SYN_N_TOKENS 261
static gbuf make_gguf(const gguf_spec *sp)
{
    gbuf b = { 0 };
    gput(&b, "GGUF", 4);
    gu32(&b, 3);
    gu64(&b, 0); /* tensors */
    uint64_t n_kv = 1 + (sp->model != NULL) + (sp->pre != NULL) + 2 + !sp->omit_merges + (sp->bos >= 0) + 1 +
                    (sp->chat_template != NULL);
    gu64(&b, n_kv);
    gkey(&b, "general.architecture", GGUF_STRING);
    gstr(&b, "llama", 5);
    if (sp->model) {
        gkey(&b, "tokenizer.ggml.model", GGUF_STRING);
        gstr(&b, sp->model, strlen(sp->model));
    }
    if (sp->pre) {
        gkey(&b, "tokenizer.ggml.pre", GGUF_STRING);
        gstr(&b, sp->pre, strlen(sp->pre));
    }
    /* tokens */
    gkey(&b, "tokenizer.ggml.tokens", GGUF_ARRAY);
    gu32(&b, GGUF_STRING);
    gu64(&b, SYN_N_TOKENS);
    for (int i = 0; i < 256; i++) {
        char tmp[4];
        size_t l = tt_put_utf8(tmp, tok_byte_to_cp((uint8_t)i));
        gstr(&b, tmp, l);
    }
    gstr(&b, "aa", 2);
    gstr(&b, "aaaa", 4);
    gstr(&b, "\xC4\xA0" "a", 3);
    gstr(&b, "<|ctl|>", 7);
    gstr(&b, "[UD]", 4);
    /* token types */
    gkey(&b, "tokenizer.ggml.token_type", GGUF_ARRAY);
    uint64_t nt = sp->types_short ? SYN_N_TOKENS - 1 : SYN_N_TOKENS;
    gu32(&b, sp->types_f32 ? GGUF_FLOAT32 : GGUF_INT32);
    gu64(&b, nt);
    for (uint64_t i = 0; i < nt; i++) {
        int32_t ty = i == 259 ? 3 : i == 260 ? 4 : 1;
        if (sp->types_f32) {
            float f = (float)ty;
            gput(&b, &f, 4);
        } else {
            gput(&b, &ty, 4);
        }
    }
    if (!sp->omit_merges) {
        gkey(&b, "tokenizer.ggml.merges", GGUF_ARRAY);
        gu32(&b, GGUF_STRING);
        gu64(&b, 3);
        if (sp->bad_merge)
            gstr(&b, "aa", 2);
        else
            gstr(&b, "a a", 3);
        gstr(&b, "aa aa", 5);
        gstr(&b, "\xC4\xA0 a", 4);
    }
    if (sp->bos >= 0) {
        gkey(&b, "tokenizer.ggml.bos_token_id", GGUF_UINT32);
        gu32(&b, (uint32_t)sp->bos);
    }
    gkey(&b, "tokenizer.ggml.add_bos_token", GGUF_BOOL);
    uint8_t ab = sp->add_bos;
    gput(&b, &ab, 1);
    if (sp->chat_template) {
        gkey(&b, "tokenizer.chat_template", GGUF_STRING);
        gstr(&b, sp->chat_template, strlen(sp->chat_template));
    }
    return b;
}

static ds_status build_from_spec(const gguf_spec *sp, ds_tokenizer **out, ds_err *err)
{
    gbuf b = make_gguf(sp);
    gguf_file f;
    ds_status st = gguf_parse(&f, b.p, b.n, err);
    if (st == DS_OK) {
        st = ds_tokenizer_from_gguf(out, &f, err);
        gguf_free(&f);
    }
    memset(b.p, 0xA5, b.n); /* the tokenizer must not point into the buffer */
    free(b.p);
    return st;
}

static gguf_spec base_spec(void)
{
    gguf_spec s;
    memset(&s, 0, sizeof s);
    s.model = "gpt2";
    s.pre = "deepseek-v3";
    s.bos = 259;
    s.add_bos = true;
    return s;
}

/* ========================================================================================
 * self-contained tests
 * ======================================================================================== */

static void test_byte_table(void **state)
{
    (void)state;
    assert_int_equal(tok_byte_to_cp(' '), 0x120);
    assert_int_equal(tok_byte_to_cp('\n'), 0x10A);
    assert_int_equal(tok_byte_to_cp('\t'), 0x109);
    assert_int_equal(tok_byte_to_cp(0x00), 0x100);
    assert_int_equal(tok_byte_to_cp(0x7F), 0x121);
    assert_int_equal(tok_byte_to_cp(0xA0), 0x142);
    assert_int_equal(tok_byte_to_cp(0xAD), 0x143);
    assert_int_equal(tok_byte_to_cp('A'), 'A');
    assert_int_equal(tok_byte_to_cp(0xFF), 0xFF);
    int seen[0x144] = { 0 };
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        assert_true(cp < 0x144);
        assert_int_equal(seen[cp], 0);
        seen[cp] = 1;
        assert_int_equal(tok_cp_to_byte(cp), b);
    }
    int mapped = 0;
    for (uint32_t cp = 0; cp < 0x400; cp++)
        mapped += tok_cp_to_byte(cp) >= 0;
    assert_int_equal(mapped, 256);
}

static void test_utf8_decode(void **state)
{
    (void)state;
    uint32_t cp;
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xC3\xA9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xC0\x80", 2, &cp), 0);     /* overlong */
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xE0\x80\x80", 3, &cp), 0); /* overlong */
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xED\xA0\x80", 3, &cp), 0); /* surrogate */
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xF4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\x80", 1, &cp), 0);
    assert_int_equal(tok_utf8_decode((const uint8_t *)"\xE4\xBD", 2, &cp), 0);     /* truncated */
    assert_true(tok_utf8_valid((const uint8_t *)"plain ascii text, long enough", 29));
    assert_false(tok_utf8_valid((const uint8_t *)"abcdefgh\xFF", 9));
}

static void test_gguf_valid_and_copied(void **state)
{
    (void)state;
    gguf_spec sp = base_spec();
    sp.chat_template = "{{ bos_token }}";
    ds_tokenizer *t = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_OK);
    /* the GGUF buffer is gone (overwritten and freed): everything below uses copies */
    assert_int_equal(ds_tokenizer_n_vocab(t), SYN_N_TOKENS);
    assert_string_equal(ds_tokenizer_pre_name(t), "deepseek-v3");
    assert_string_equal(ds_tokenizer_chat_template(t), "{{ bos_token }}");
    assert_int_equal(ds_tokenizer_bos(t), 259);
    assert_int_equal(ds_tokenizer_eos(t), -1);
    assert_int_equal(ds_tokenizer_pad(t), -1);
    assert_true(ds_tokenizer_add_bos(t));
    assert_string_equal(ds_tokenizer_token_text(t, 257), "aaaa");
    int32_t ids[16];
    size_t n = 0;
    /* "aaaaa a": pre-tokens "aaaaa", " a" -> aaaa + a, Ġa ; default flags add BOS */
    assert_int_equal(ds_tokenize(t, "aaaaa a", 7, 0, ids, 16, &n), DS_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 259);
    assert_int_equal(ids[1], 257);
    assert_int_equal(ids[2], 'a'); /* ids 0..255 are the byte tokens */
    assert_int_equal(ids[3], 258);
    /* CONTROL only with the flag; USER_DEFINED always */
    assert_int_equal(ds_tokenize(t, "<|ctl|>[UD]", 11, DS_TOKENIZE_NO_BOS, ids, 16, &n), DS_OK);
    assert_true(n > 2);
    assert_int_equal(ids[n - 1], 260);
    assert_int_equal(ds_tokenize(t, "<|ctl|>[UD]", 11, DS_TOKENIZE_NO_BOS | DS_TOKENIZE_SPECIAL, ids, 16, &n), DS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 259);
    assert_int_equal(ids[1], 260);
    /* pieces */
    char piece[32];
    size_t pl = 0;
    assert_int_equal(ds_token_to_piece(t, 258, 0, piece, sizeof piece, &pl), DS_OK);
    assert_int_equal(pl, 2);
    assert_memory_equal(piece, " a", 2);
    assert_int_equal(ds_token_to_piece(t, 259, 0, piece, sizeof piece, &pl), DS_OK);
    assert_int_equal(pl, 0);
    assert_int_equal(ds_token_to_piece(t, 259, DS_DETOKENIZE_SPECIAL, piece, sizeof piece, &pl), DS_OK);
    assert_int_equal(pl, 7);
    assert_string_equal(piece, "<|ctl|>");
    assert_int_equal(ds_token_to_piece(t, 260, 0, piece, sizeof piece, &pl), DS_OK);
    assert_string_equal(piece, "[UD]");
    assert_int_equal(ds_token_to_piece(t, 0, 0, piece, sizeof piece, &pl), DS_OK); /* byte 0x00 */
    assert_int_equal(pl, 1);
    assert_int_equal(piece[0], 0);
    ds_tokenizer_free(t);
}

static void test_gguf_errors(void **state)
{
    (void)state;
    ds_tokenizer *t = (ds_tokenizer *)1;
    ds_err err;
    gguf_spec sp;

    sp = base_spec();
    sp.model = "llama";
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_UNSUPPORTED);
    assert_null(t);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.model"));

    sp = base_spec();
    sp.model = NULL;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_NOT_FOUND);

    sp = base_spec();
    sp.types_f32 = true;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "token_type"));

    sp = base_spec();
    sp.types_short = true;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "token_type"));

    sp = base_spec();
    sp.bos = SYN_N_TOKENS;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bos_token_id"));

    sp = base_spec();
    sp.pre = "no-such-pre";
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "no-such-pre"));

    sp = base_spec();
    sp.omit_merges = true;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_FORMAT);

    sp = base_spec();
    sp.bad_merge = true;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "merges"));

    /* no tokenizer.ggml.pre: llama.cpp's default split list */
    sp = base_spec();
    sp.pre = NULL;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_OK);
    assert_string_equal(ds_tokenizer_pre_name(t), "default");
    ds_tokenizer_free(t);

    /* aliases keep their stored name */
    const char *aliases[] = { "deepseek-r1-qwen", "qwen2", "llama3", "llama-bpe", "deepseek-llm", "deepseek-coder" };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        sp = base_spec();
        sp.pre = aliases[i];
        assert_int_equal(build_from_spec(&sp, &t, &err), DS_OK);
        assert_string_equal(ds_tokenizer_pre_name(t), aliases[i]);
        ds_tokenizer_free(t);
    }
}

static void test_api_args(void **state)
{
    (void)state;
    gguf_spec sp = base_spec();
    ds_tokenizer *t = NULL;
    ds_err err;
    assert_int_equal(build_from_spec(&sp, &t, &err), DS_OK);
    int32_t ids[4];
    size_t n = 99;
    assert_int_equal(ds_tokenize(NULL, "a", 1, 0, ids, 4, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_tokenize(t, "a", 1, 0, ids, 4, NULL), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_tokenize(t, NULL, 1, 0, ids, 4, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_tokenize(t, "a", 1, 0, NULL, 4, &n), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_tokenize(t, "a", 1, DS_TOKENIZE_ADD_BOS | DS_TOKENIZE_NO_BOS, ids, 4, &n), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_last_error(), "BOS"));
    assert_string_equal(ds_tokenizer_errmsg(t), ds_last_error());
    assert_int_equal(ds_tokenize(t, "a", 1, 1u << 20, ids, 4, &n), DS_ERR_INVALID_ARG);
    /* empty text: only BOS (default add_bos) or nothing */
    assert_int_equal(ds_tokenize(t, NULL, 0, 0, ids, 4, &n), DS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ds_tokenize(t, "", 0, DS_TOKENIZE_NO_BOS, NULL, 0, &n), DS_OK);
    assert_int_equal(n, 0);
    /* size query and partial fill: "a b c d e" = a, Ġ b ... */
    const char *s = "x y z w v u";
    size_t need = 0;
    assert_int_equal(ds_tokenize(t, s, strlen(s), DS_TOKENIZE_NO_BOS, NULL, 0, &need), DS_ERR_BUFFER_TOO_SMALL);
    assert_true(need > 4);
    int32_t full[64];
    assert_int_equal(ds_tokenize(t, s, strlen(s), DS_TOKENIZE_NO_BOS, full, 64, &n), DS_OK);
    assert_int_equal(n, need);
    int32_t part[4] = { -7, -7, -7, -7 };
    assert_int_equal(ds_tokenize(t, s, strlen(s), DS_TOKENIZE_NO_BOS, part, 3, &n), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, need);
    assert_memory_equal(part, full, 3 * sizeof(int32_t));
    assert_int_equal(part[3], -7);
    /* token_to_piece */
    char pb[8];
    size_t pl = 0;
    assert_int_equal(ds_token_to_piece(t, -1, 0, pb, 8, &pl), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_token_to_piece(t, SYN_N_TOKENS, 0, pb, 8, &pl), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_token_to_piece(t, 257, 0, NULL, 0, &pl), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(pl, 4);
    assert_int_equal(ds_token_to_piece(t, 257, 0, pb, 4, &pl), DS_OK); /* exact fit, no NUL */
    assert_memory_equal(pb, "aaaa", 4);
    assert_int_equal(ds_token_to_piece(t, 257, 0, pb, 3, &pl), DS_ERR_BUFFER_TOO_SMALL);
    /* detokenize */
    int32_t seq[] = { 259, 257, 258 };
    char db[16];
    size_t dl = 0;
    assert_int_equal(ds_detokenize(t, seq, 3, 0, db, sizeof db, &dl), DS_OK);
    assert_int_equal(dl, 6);
    assert_string_equal(db, "aaaa a");
    assert_int_equal(ds_detokenize(t, seq, 3, DS_DETOKENIZE_SPECIAL, db, sizeof db, &dl), DS_OK);
    assert_string_equal(db, "<|ctl|>aaaa a");
    assert_int_equal(ds_detokenize(t, seq, 3, DS_DETOKENIZE_SPECIAL, db, 5, &dl), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(dl, 13);
    assert_memory_equal(db, "<|ctl", 5);
    int32_t bad[] = { 1, 5000 };
    assert_int_equal(ds_detokenize(t, bad, 2, 0, db, sizeof db, &dl), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_last_error(), "tokens[1]"));
    assert_int_equal(ds_detokenize(t, NULL, 0, 0, NULL, 0, &dl), DS_OK);
    assert_int_equal(dl, 0);
    /* lookups */
    int32_t id = 0;
    assert_int_equal(ds_tokenizer_token_id(t, "aa", &id), DS_OK);
    assert_int_equal(id, 256);
    assert_int_equal(ds_tokenizer_token_id(t, NULL, &id), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_tokenizer_token_type(t, 260), DS_TOKEN_TYPE_USER_DEFINED);
    assert_int_equal(ds_tokenizer_token_type(t, 9999), DS_TOKEN_TYPE_UNDEFINED);
    assert_true(ds_tokenizer_is_special(t, 259));
    assert_false(ds_tokenizer_is_special(t, 260));
    assert_false(ds_tokenizer_is_special(t, -3));
    /* NULL handles */
    assert_int_equal(ds_tokenizer_n_vocab(NULL), 0);
    assert_int_equal(ds_tokenizer_bos(NULL), -1);
    assert_null(ds_tokenizer_chat_template(NULL));
    ds_tokenizer_close(NULL);
    ds_tokenizer *o = (ds_tokenizer *)1;
    assert_int_equal(ds_tokenizer_open(&o, "/nonexistent/tokenizer.json"), DS_ERR_IO);
    assert_null(o);
    assert_int_equal(ds_tokenizer_open(NULL, "x"), DS_ERR_INVALID_ARG);
    ds_tokenizer_free(t);
}

/* ---- tokenizer.json variants ---- */

static char g_tmpdir[256];

static void write_text(const char *name, const char *text)
{
    char *p = tt_path(g_tmpdir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

/* A tokenizer.json: 256 byte tokens + "ab", "abab", "Ġab" (merges a b, ab ab, Ġ ab). */
static cJSON *syn_json(bool pair_merges)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < 256; i++) {
        char tmp[5] = { 0 };
        tt_put_utf8(tmp, tok_byte_to_cp((uint8_t)i));
        cJSON_AddNumberToObject(vocab, tmp, i);
    }
    cJSON_AddNumberToObject(vocab, "ab", 256);
    cJSON_AddNumberToObject(vocab, "abab", 257);
    cJSON_AddNumberToObject(vocab, "\xC4\xA0" "ab", 258);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    const char *m[3][2] = { { "a", "b" }, { "ab", "ab" }, { "\xC4\xA0", "ab" } };
    for (int i = 0; i < 3; i++) {
        if (pair_merges) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(m[i][0]));
            cJSON_AddItemToArray(pair, cJSON_CreateString(m[i][1]));
            cJSON_AddItemToArray(merges, pair);
        } else {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%s %s", m[i][0], m[i][1]);
            cJSON_AddItemToArray(merges, cJSON_CreateString(tmp));
        }
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddFalseToObject(pre, "add_prefix_space");
    cJSON_AddTrueToObject(pre, "use_regex");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddNullToObject(root, "normalizer");
    return root;
}

static void add_added(cJSON *root, int id, const char *content, bool special, bool lstrip, bool rstrip)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr)
        arr = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "special", special);
    cJSON_AddBoolToObject(o, "lstrip", lstrip);
    cJSON_AddBoolToObject(o, "rstrip", rstrip);
    cJSON_AddItemToArray(arr, o);
}

static ds_status open_json(cJSON *root, ds_tokenizer **t)
{
    char *s = cJSON_PrintUnformatted(root);
    write_text("tokenizer.json", s);
    free(s);
    cJSON_Delete(root);
    char *p = tt_path(g_tmpdir, "tokenizer.json");
    ds_status st = ds_tokenizer_open(t, p);
    free(p);
    return st;
}

static void test_json_variants(void **state)
{
    (void)state;
    ds_tokenizer *a = NULL, *b = NULL;
    assert_int_equal(open_json(syn_json(false), &a), DS_OK);
    assert_int_equal(open_json(syn_json(true), &b), DS_OK);
    assert_string_equal(ds_tokenizer_pre_name(a), "gpt2");
    assert_int_equal(ds_tokenizer_bos(a), -1);
    assert_false(ds_tokenizer_add_bos(a));
    const char *s = "ababab ab abc";
    size_t na = 0, nb = 0;
    int32_t *ia = tok_all(a, s, strlen(s), 0, &na), *ib = tok_all(b, s, strlen(s), 0, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    /* "ababab" -> abab ab; " ab" -> Ġab; " abc" -> Ġab c */
    static const int32_t exp[] = { 257, 256, 258, 258, 'c' };
    assert_int_equal(na, 5);
    assert_memory_equal(ia, exp, sizeof exp);
    free(ia);
    free(ib);
    ds_tokenizer_close(a);
    ds_tokenizer_close(b);

    /* added tokens: non-special plain text is USER_DEFINED (always matched); rstrip absorbs
     * following whitespace; a special one is CONTROL */
    cJSON *r = syn_json(false);
    add_added(r, 259, "[NOTE]", false, false, true);
    add_added(r, 260, "<s>", true, false, false);
    add_added(r, 261, "<|looks|>", false, false, false);
    assert_int_equal(open_json(r, &a), DS_OK);
    assert_int_equal(ds_tokenizer_token_type(a, 259), DS_TOKEN_TYPE_USER_DEFINED);
    assert_int_equal(ds_tokenizer_token_type(a, 260), DS_TOKEN_TYPE_CONTROL);
    assert_int_equal(ds_tokenizer_token_type(a, 261), DS_TOKEN_TYPE_CONTROL);
    int32_t ids[32];
    size_t n = 0;
    assert_int_equal(ds_tokenize(a, "ab[NOTE]   ab", 13, 0, ids, 32, &n), DS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], 259);
    assert_int_equal(ids[2], 256); /* the spaces went into [NOTE] (rstrip) */
    assert_int_equal(ds_tokenize(a, "<s>ab", 5, DS_TOKENIZE_SPECIAL, ids, 32, &n), DS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 260);
    assert_int_equal(ds_tokenize(a, "<s>ab", 5, 0, ids, 32, &n), DS_OK);
    assert_true(n > 2);
    ds_tokenizer_close(a);

    /* tokenizer_config.json: BOS/EOS by content, add_bos_token, chat_template list form */
    write_text("tokenizer_config.json",
               "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\","
               " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
    r = syn_json(false);
    add_added(r, 259, "<s>", true, false, false);
    add_added(r, 260, "</s>", true, false, false);
    assert_int_equal(open_json(r, &a), DS_OK);
    assert_int_equal(ds_tokenizer_bos(a), 259);
    assert_int_equal(ds_tokenizer_eos(a), 260);
    assert_true(ds_tokenizer_is_eog(a, 260));
    assert_true(ds_tokenizer_add_bos(a));
    assert_string_equal(ds_tokenizer_chat_template(a), "D");
    assert_int_equal(ds_tokenize(a, "ab", 2, 0, ids, 32, &n), DS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 259);
    ds_tokenizer_close(a);
    char *cp = tt_path(g_tmpdir, "tokenizer_config.json");
    unlink(cp);
    free(cp);

    /* a custom Split sequence (not a known preset) and Digits */
    r = syn_json(false);
    cJSON_DeleteItemFromObject(r, "pre_tokenizer");
    cJSON *pre = cJSON_AddObjectToObject(r, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(pat, "Regex", "\\s+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
    cJSON *dig = cJSON_CreateObject();
    cJSON_AddStringToObject(dig, "type", "Digits");
    cJSON_AddTrueToObject(dig, "individual_digits");
    cJSON_AddItemToArray(list, dig);
    assert_int_equal(open_json(r, &a), DS_OK);
    assert_string_equal(ds_tokenizer_pre_name(a), "custom");
    /* "abab ab" with only whitespace splitting: abab, Ġ, ab */
    assert_int_equal(ds_tokenize(a, "abab ab", 7, 0, ids, 32, &n), DS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 257);
    assert_int_equal(ids[1], ' '); /* ids 0..255 are the byte tokens */
    ds_tokenizer_close(a);

    /* unsupported / malformed */
    r = syn_json(false);
    cJSON_DeleteItemFromObject(r, "normalizer");
    cJSON *norm = cJSON_AddObjectToObject(r, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Lowercase");
    a = (ds_tokenizer *)1;
    assert_int_equal(open_json(r, &a), DS_ERR_UNSUPPORTED);
    assert_null(a);
    assert_non_null(strstr(ds_last_error(), "normalizer"));

    r = syn_json(false);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "model"), "type", cJSON_CreateString("WordPiece"));
    assert_int_equal(open_json(r, &a), DS_ERR_UNSUPPORTED);

    r = syn_json(false);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "pre_tokenizer"), "add_prefix_space", cJSON_CreateTrue());
    assert_int_equal(open_json(r, &a), DS_ERR_UNSUPPORTED);

    r = syn_json(false);
    cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "model"), "merges"), cJSON_CreateString("nospace"));
    assert_int_equal(open_json(r, &a), DS_ERR_FORMAT);
    assert_non_null(strstr(ds_last_error(), "merges[3]"));

    write_text("tokenizer.json", "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [");
    char *p = tt_path(g_tmpdir, "tokenizer.json");
    assert_int_equal(ds_tokenizer_open(&a, p), DS_ERR_FORMAT);
    assert_non_null(strstr(ds_last_error(), "invalid JSON"));
    unlink(p);
    free(p);
}

/* tokenizer.json files with the Qwen2 / Llama-3 regexes are recognised. */
static void test_json_presets(void **state)
{
    (void)state;
    const char *qwen = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
    const char *llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
    const char *pats[2] = { qwen, llama3 };
    const char *names[2] = { "qwen2", "llama-bpe" };
    for (int k = 0; k < 2; k++) {
        cJSON *r = syn_json(false);
        cJSON_DeleteItemFromObject(r, "pre_tokenizer");
        cJSON *pre = cJSON_AddObjectToObject(r, "pre_tokenizer");
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", pats[k]);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddFalseToObject(split, "invert");
        cJSON_AddItemToArray(list, split);
        cJSON *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddFalseToObject(bl, "add_prefix_space");
        cJSON_AddFalseToObject(bl, "use_regex");
        cJSON_AddItemToArray(list, bl);
        ds_tokenizer *t = NULL;
        assert_int_equal(open_json(r, &t), DS_OK);
        assert_string_equal(ds_tokenizer_pre_name(t), names[k]);
        assert_true(roundtrip_ok(t, "It's 12345 ab's 'S x", 20, 0, 0));
        ds_tokenizer_close(t);
    }
}

/* ========================================================================================
 * fixture-based tests
 * ======================================================================================== */

static ds_tokenizer *g_v3, *g_llm, *g_coder;

static ds_tokenizer *open_fixture(const char *rel)
{
    char *p = tt_path(tt_shared_dir(), rel);
    ds_tokenizer *t = NULL;
    if (p && tt_exists(p) && ds_tokenizer_open(&t, p) != DS_OK) {
        printf("open %s failed: %s\n", p, ds_last_error());
        t = NULL;
    }
    free(p);
    return t;
}

#define REQUIRE(t)                                                                      \
    do {                                                                                \
        if (!(t)) {                                                                     \
            printf("SKIPPED: tokenizer fixtures not found under %s\n", tt_shared_dir()); \
            skip();                                                                     \
            return;                                                                     \
        }                                                                               \
    } while (0)

typedef struct pieces {
    char out[64][64];
    int n;
    const char *base;
} pieces;

static int collect(void *user, size_t off, size_t len)
{
    pieces *p = user;
    if (p->n < 64) {
        size_t l = len < 63 ? len : 63;
        memcpy(p->out[p->n], p->base + off, l);
        p->out[p->n][l] = 0;
    }
    p->n++;
    return 0;
}

static void check_split(const ds_tokenizer *t, const char *text, const char *const *exp, int n_exp)
{
    pieces p;
    memset(&p, 0, sizeof p);
    p.base = text;
    tok_matcher m;
    assert_int_equal(tok_matcher_init(&m), DS_OK);
    m.valid_utf = tok_utf8_valid((const uint8_t *)text, strlen(text));
    tok_pretok_split(&t->pre, &m, text, strlen(text), collect, &p);
    tok_matcher_free(&m);
    bool ok = p.n == n_exp;
    for (int i = 0; ok && i < n_exp; i++)
        ok = strcmp(p.out[i], exp[i]) == 0;
    if (!ok) {
        printf("split of [%s]:", text);
        for (int i = 0; i < p.n && i < 64; i++)
            printf(" [%s]", p.out[i]);
        printf("\n");
        fail_msg("unexpected pre-tokenization");
    }
}

static void test_pretok_splits(void **state)
{
    (void)state;
    REQUIRE(g_v3);
    { const char *e[] = { "Hello", " world" }; check_split(g_v3, "Hello world", e, 2); }
    { const char *e[] = { "123", "45", " apples" }; check_split(g_v3, "12345 apples", e, 3); }
    { const char *e[] = { "I", "'m", " here", ".\n\n", " ", " x" }; check_split(g_v3, "I'm here.\n\n  x", e, 6); }
    { const char *e[] = { " (", "foo", ")" }; check_split(g_v3, " (foo)", e, 3); }
    /* HF semantics for `~` (llama.cpp would give a, " ", ~, ~b) */
    { const char *e[] = { "a", " ~~", "b" }; check_split(g_v3, "a ~~b", e, 3); }
    { const char *e[] = { "x", " ~=", " y" }; check_split(g_v3, "x ~= y", e, 3); }
    { const char *e[] = { "~/.", "bashrc" }; check_split(g_v3, "~/.bashrc", e, 2); }
    /* U+0085 is whitespace (Unicode White_Space), so "\x85\n" is one "\s*[\r\n]+" piece */
    { const char *e[] = { "x", "\xC2\x85\n", "y" }; check_split(g_v3, "x\xC2\x85\ny", e, 3); }
    /* digits: groups of 3 from the left; \p{N} includes other numbers */
    { const char *e[] = { "\xC2\xB2\xC2\xB3\xC2\xBD", "4" }; check_split(g_v3, "\xC2\xB2\xC2\xB3\xC2\xBD" "4", e, 2); }
    REQUIRE(g_llm);
    { const char *e[] = { "Hello", " world" }; check_split(g_llm, "Hello world", e, 2); }
    /* \s+$ at the end of a piece; emoji are not matched by any llm split */
    { const char *e[] = { "a", "  \xF0\x9F\x98\x80", "   " }; check_split(g_llm, "a  \xF0\x9F\x98\x80   ", e, 3); }
    { const char *e[] = { "\n", "\n", "x" }; check_split(g_llm, "\n\nx", e, 3); }
    /* K (U+212A KELVIN SIGN) is a letter in [1]; ASCII punctuation is not */
    { const char *e[] = { "\xE2\x84\xAA", "!" }; check_split(g_llm, "\xE2\x84\xAA!", e, 2); }
    REQUIRE(g_coder);
    { const char *e[] = { "1", "2", "3" }; check_split(g_coder, "123", e, 3); }
}

/* Invalid UTF-8: never fails, invalid bytes are gap pieces, lossless for V3. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    REQUIRE(g_v3);
    static const char *const bad[] = {
        "\x80", "\xBF\xBF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xED\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFE\xFF", "\xFF", "\xE4\xBD", "\xF0\x9F\x98",
        "abc\xFF" "def", "\xE4\xBD" "abc", "x \x80 y", "\xC3\x28", "12\xFF" "34", "\xE4\xBD\xA0\xFF\xE5\xA5\xBD",
        "<\xEF\xBD\x9CUser\xEF\xBD\x9C>\xFF", "  \xFF\n\xFF  ", "\x80\x80\x80\x80\x80\x80\x80\x80",
    };
    ds_tokenizer *all[3] = { g_v3, g_llm, g_coder };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]);
        for (int k = 0; k < 3; k++) {
            if (!all[k])
                continue;
            size_t n = 0, bl = 0;
            int32_t *ids = tok_all(all[k], bad[i], len, DS_TOKENIZE_SPECIAL | DS_TOKENIZE_NO_BOS, &n);
            char *back = detok_all(all[k], ids, n, DS_DETOKENIZE_SPECIAL, &bl);
            if (k == 0) {
                /* V3 has all 256 byte tokens: exact round trip */
                assert_int_equal(bl, len);
                assert_memory_equal(back, bad[i], len);
            }
            free(ids);
            free(back);
        }
    }
    /* the documented split: "abc" | "\xFF" | "def" (the invalid byte is its own gap piece) */
    size_t n1 = 0, n2 = 0, n3 = 0;
    int32_t *whole = tok_all(g_v3, "abc\xFF" "def", 7, DS_TOKENIZE_NO_BOS, &n1);
    int32_t *abc = tok_all(g_v3, "abc", 3, DS_TOKENIZE_NO_BOS, &n2);
    int32_t *def = tok_all(g_v3, "def", 3, DS_TOKENIZE_NO_BOS, &n3);
    int32_t ff = -1;
    assert_int_equal(ds_tokenizer_token_id(g_v3, "\xC3\xBF", &ff), DS_OK); /* "ÿ" = byte 0xFF */
    assert_int_equal(n1, n2 + 1 + n3);
    assert_memory_equal(whole, abc, n2 * sizeof *abc);
    assert_int_equal(whole[n2], ff);
    assert_memory_equal(whole + n2 + 1, def, n3 * sizeof *def);
    free(whole);
    free(abc);
    free(def);
    /* random byte soup: no crash, V3 lossless */
    uint64_t seed = 0xBADC0FFEEull;
    char buf[512];
    for (int it = 0; it < 300; it++) {
        size_t len = (size_t)(tt_rand(&seed) % sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (char)(tt_rand(&seed) & 0xFF);
        assert_true(roundtrip_ok(g_v3, buf, len, DS_TOKENIZE_NO_BOS, 0));
        if (g_llm) {
            size_t n = 0;
            free(tok_all(g_llm, buf, len, DS_TOKENIZE_SPECIAL, &n));
        }
    }
}

/* Random valid UTF-8 from all planes; detokenize(tokenize(s)) == s for every tokenizer. */
static uint32_t random_cp(uint64_t *s)
{
    uint64_t r = tt_rand(s) % 100;
    uint32_t cp;
    do {
        if (r < 30) cp = 0x20 + (uint32_t)(tt_rand(s) % 0x5F);            /* printable ASCII */
        else if (r < 36) cp = (uint32_t)(tt_rand(s) % 0x20);              /* controls, \t \n \r */
        else if (r < 42) cp = 0x80 + (uint32_t)(tt_rand(s) % 0x580);      /* Latin-1..Cyrillic */
        else if (r < 55) cp = 0x4E00 + (uint32_t)(tt_rand(s) % 0x51A6);   /* CJK */
        else if (r < 60) cp = 0x3040 + (uint32_t)(tt_rand(s) % 0xC0);     /* kana */
        else if (r < 64) cp = 0xAC00 + (uint32_t)(tt_rand(s) % 0x2BA4);   /* Hangul */
        else if (r < 70) cp = 0x1F300 + (uint32_t)(tt_rand(s) % 0x700);   /* emoji */
        else if (r < 74) cp = 0x0300 + (uint32_t)(tt_rand(s) % 0x70);     /* combining marks */
        else if (r < 78) cp = 0x2000 + (uint32_t)(tt_rand(s) % 0x70);     /* general punct, spaces */
        else if (r < 85) cp = (uint32_t)(tt_rand(s) % 0x10000);           /* BMP */
        else cp = 0x10000 + (uint32_t)(tt_rand(s) % 0x100000);            /* planes 1-16 */
    } while (cp >= 0xD800 && cp <= 0xDFFF);
    return cp;
}

static void test_random_roundtrip(void **state)
{
    (void)state;
    REQUIRE(g_v3);
    ds_tokenizer *all[3] = { g_v3, g_llm, g_coder };
    const char *names[3] = { "deepseek-v3", "deepseek-llm", "deepseek-coder" };
    static const char *const specials[] = { "<\xEF\xBD\x9CUser\xEF\xBD\x9C>", "<|EOT|>",
                                            "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
                                            "\xC3\xBC", "[PAD100300]" };
    uint64_t seed = 20241128;
    size_t cap = 1 << 16;
    char *buf = malloc(cap + 64);
    size_t total_bytes = 0;
    int cases = 0, fails[3] = { 0, 0, 0 };
    for (int it = 0; it < 400; it++) {
        size_t target = (size_t)(tt_rand(&seed) % (it % 50 == 0 ? cap : 4096));
        size_t len = 0;
        while (len < target) {
            if (tt_rand(&seed) % 200 == 0) {
                const char *sp = specials[tt_rand(&seed) % 5];
                memcpy(buf + len, sp, strlen(sp));
                len += strlen(sp);
            } else {
                len += tt_put_utf8(buf + len, random_cp(&seed));
            }
        }
        total_bytes += len;
        cases++;
        for (int k = 0; k < 3; k++) {
            if (!all[k])
                continue;
            if (!roundtrip_ok(all[k], buf, len, DS_TOKENIZE_NO_BOS, 0) ||
                !roundtrip_ok(all[k], buf, len, DS_TOKENIZE_SPECIAL | DS_TOKENIZE_NO_BOS, DS_DETOKENIZE_SPECIAL))
                fails[k]++;
        }
    }
    printf("random round trip: %d strings, %.2f MB: failures v3 %d, llm %d, coder %d\n", cases,
           (double)total_bytes / 1e6, fails[0], fails[1], fails[2]);
    for (int k = 0; k < 3; k++)
        if (fails[k])
            fail_msg("%s: %d round-trip failures", names[k], fails[k]);
    free(buf);
}

/* Long runs must be fast (no quadratic behaviour in BPE or the regexes). */
static void test_long_runs(void **state)
{
    (void)state;
    REQUIRE(g_v3);
    const size_t N = 100000;
    char *s = malloc(N * 4 + 16);
    ds_tokenizer *all[3] = { g_v3, g_llm, g_coder };
    for (int kind = 0; kind < 8; kind++) {
        size_t len = 0;
        switch (kind) {
        case 0: memset(s, 'a', N); len = N; break;                          /* one letter */
        case 1: memset(s, ' ', N); s[N] = 'x'; len = N + 1; break;          /* spaces then a word */
        case 2: memset(s, ' ', N); len = N; len += tt_put_utf8(s + len, 0x1F600); break; /* \s+$ probe */
        case 3: memset(s, '7', N); len = N; break;                          /* digits */
        case 4: for (size_t i = 0; i < N; i++) s[i] = "ab"[i & 1]; len = N; break;
        case 5: for (size_t i = 0; i < N / 3; i++) len += tt_put_utf8(s + len, 0x4E00 + (uint32_t)(i % 7)); break;
        case 6: memset(s, '!', N); len = N; break;                          /* punctuation */
        case 7: for (size_t i = 0; i < N; i++) s[i] = "\t \n"[i % 3]; len = N; break;
        }
        for (int k = 0; k < 3; k++) {
            if (!all[k])
                continue;
            double t0 = now_s();
            size_t n = 0, bl = 0;
            int32_t *ids = tok_all(all[k], s, len, DS_TOKENIZE_NO_BOS, &n);
            double dt = now_s() - t0;
            char *back = detok_all(all[k], ids, n, 0, &bl);
            assert_int_equal(bl, len);
            assert_memory_equal(back, s, len);
            if (dt > 5.0)
                fail_msg("long run kind %d with tokenizer %d took %.2f s", kind, k, dt);
            free(ids);
            free(back);
        }
    }
    free(s);
}

typedef struct thread_arg {
    const ds_tokenizer *t;
    const char *text;
    size_t len;
    const int32_t *expect;
    size_t n_expect;
    int ok;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    a->ok = 1;
    size_t cap = a->n_expect + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    for (int it = 0; it < 8 && a->ok; it++) {
        size_t n = 0;
        if (ds_tokenize(a->t, a->text, a->len, DS_TOKENIZE_SPECIAL, ids, cap, &n) != DS_OK || n != a->n_expect ||
            memcmp(ids, a->expect, n * sizeof *ids) != 0)
            a->ok = 0;
    }
    free(ids);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    REQUIRE(g_v3);
    size_t cap = 200000;
    char *text = malloc(cap + 64);
    size_t len = 0;
    uint64_t seed = 7;
    while (len < cap)
        len += tt_put_utf8(text + len, random_cp(&seed));
    size_t n = 0;
    int32_t *expect = tok_all(g_v3, text, len, DS_TOKENIZE_SPECIAL, &n);
    enum { NT = 4 };
    pthread_t th[NT];
    thread_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (thread_arg){ g_v3, text, len, expect, n, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 1);
    }
    free(expect);
    free(text);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/ds-tok-test-XXXXXX");
    if (!mkdtemp(g_tmpdir))
        return -1;
    g_v3 = open_fixture("fixtures/tokenizers/deepseek-v3/tokenizer.json");
    g_llm = open_fixture("fixtures/tokenizers/deepseek-llm/ggml-vocab-deepseek-llm.gguf");
    g_coder = open_fixture("fixtures/tokenizers/deepseek-coder/ggml-vocab-deepseek-coder.gguf");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ds_tokenizer_close(g_v3);
    ds_tokenizer_close(g_llm);
    ds_tokenizer_close(g_coder);
    char *p = tt_path(g_tmpdir, "tokenizer.json");
    unlink(p);
    free(p);
    p = tt_path(g_tmpdir, "tokenizer_config.json");
    unlink(p);
    free(p);
    rmdir(g_tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_table),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_gguf_valid_and_copied),
        cmocka_unit_test(test_gguf_errors),
        cmocka_unit_test(test_api_args),
        cmocka_unit_test(test_json_variants),
        cmocka_unit_test(test_json_presets),
        cmocka_unit_test(test_pretok_splits),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_long_runs),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
