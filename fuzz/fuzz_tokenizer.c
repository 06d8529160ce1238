/*
 * fuzz/fuzz_tokenizer.c — libFuzzer target: tokenize and detokenize arbitrary bytes.
 *
 * Vocabulary: $DS_FUZZ_VOCAB, default ../shared/fixtures/tokenizers/deepseek-llm/
 * ggml-vocab-deepseek-llm.gguf (any path ds_tokenizer_open accepts works, e.g. the V3
 * tokenizer.json). The first input byte selects the flags; the rest is the text.
 *
 * Checked on every input (abort() on violation):
 *   - no crash, no sanitizer report, tokenization never fails except for memory;
 *   - the size query and the filling call agree, and a too-small buffer gets a prefix;
 *   - every id is in range; the concatenation of ds_token_to_piece equals ds_detokenize;
 *   - round trip: for valid UTF-8 text detokenize(tokenize(text)) == text (with or without
 *     special-token parsing, rendering specials when they were parsed). For invalid UTF-8 it
 *     must hold too when the vocabulary has a token for every byte that occurs (true for V3;
 *     deepseek-llm/coder have no byte tokens for C0, C1, F5-FF, which map to look-alike
 *     user-defined tokens, so those bytes are excluded from the check).
 */
#include "deepseek/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ds_tokenizer *g_tok;
static bool g_byte_ok[256];   /* the byte has its own byte-level token */

static void init_once(void)
{
    if (g_tok)
        return;
    const char *path = getenv("DS_FUZZ_VOCAB");
    if (!path || !*path)
        path = "../shared/fixtures/tokenizers/deepseek-llm/ggml-vocab-deepseek-llm.gguf";
    if (ds_tokenizer_open(&g_tok, path) != DS_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot open %s: %s\n", path, ds_last_error());
        abort();
    }
    /* which bytes round-trip on their own: a single-byte text must detokenize to itself */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t ids[8];
        size_t n = 0, len = 0;
        char out[64];
        g_byte_ok[b] = ds_tokenize(g_tok, &c, 1, DS_TOKENIZE_NO_BOS, ids, 8, &n) == DS_OK &&
                       ds_detokenize(g_tok, ids, n, 0, out, sizeof out, &len) == DS_OK && len == 1 &&
                       out[0] == c;
    }
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return false;
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            uint8_t d = s[i + k];
            if (d < lo || d > hi)
                return false;
            lo = 0x80;
            hi = 0xBF;
        }
        i += need + 1;
    }
    return true;
}

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_tokenizer: check failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    uint32_t tflags = 0;
    if (sel & 1) tflags |= DS_TOKENIZE_SPECIAL;
    switch ((sel >> 1) & 3) {
    case 0: tflags |= DS_TOKENIZE_NO_BOS; break;
    case 1: tflags |= DS_TOKENIZE_ADD_BOS; break;
    default: break; /* the vocabulary's add_bos setting */
    }
    uint32_t dflags = (tflags & DS_TOKENIZE_SPECIAL) ? DS_DETOKENIZE_SPECIAL : 0;

    /* size query */
    size_t need = 0;
    ds_status st = ds_tokenize(g_tok, text, len, tflags, NULL, 0, &need);
    CHECK(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
    CHECK((st == DS_OK) == (need == 0));

    int32_t *ids = malloc((need + 1) * sizeof *ids);
    CHECK(ids != NULL);
    size_t n = 0;
    CHECK(ds_tokenize(g_tok, text, len, tflags, ids, need, &n) == DS_OK);
    CHECK(n == need);

    /* a too-small buffer receives a prefix */
    if (n >= 2) {
        size_t cap = n / 2;
        int32_t *part = malloc(cap * sizeof *part);
        CHECK(part != NULL);
        size_t n2 = 0;
        CHECK(ds_tokenize(g_tok, text, len, tflags, part, cap, &n2) == DS_ERR_BUFFER_TOO_SMALL);
        CHECK(n2 == n);
        CHECK(memcmp(part, ids, cap * sizeof *part) == 0);
        free(part);
    }

    int32_t n_vocab = ds_tokenizer_n_vocab(g_tok);
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] >= 0 && ids[i] < n_vocab);

    /* detokenize, and compare with the concatenated pieces */
    size_t out_len = 0;
    st = ds_detokenize(g_tok, ids, n, dflags, NULL, 0, &out_len);
    CHECK(st == DS_OK || st == DS_ERR_BUFFER_TOO_SMALL);
    char *out = malloc(out_len + 1);
    CHECK(out != NULL);
    size_t got = 0;
    CHECK(ds_detokenize(g_tok, ids, n, dflags, out, out_len + 1, &got) == DS_OK);
    CHECK(got == out_len);
    char *cat = malloc(out_len + 1);
    CHECK(cat != NULL);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl = 0;
        st = ds_token_to_piece(g_tok, ids[i], dflags, cat + off, out_len + 1 - off, &pl);
        CHECK(st == DS_OK);
        off += pl;
        CHECK(off <= out_len);
    }
    CHECK(off == out_len);
    CHECK(memcmp(cat, out, out_len) == 0);

    /* round trip (a BOS that was added renders as its text with specials, or as nothing) */
    bool check_rt = true;
    if (!valid_utf8((const uint8_t *)text, len))
        for (size_t i = 0; i < len && check_rt; i++)
            check_rt = g_byte_ok[(uint8_t)text[i]];
    if (check_rt) {
        size_t skip = 0;
        int32_t bos = ds_tokenizer_bos(g_tok);
        bool bos_added = bos >= 0 && ((tflags & DS_TOKENIZE_ADD_BOS) ||
                                      (!(tflags & DS_TOKENIZE_NO_BOS) && ds_tokenizer_add_bos(g_tok)));
        if (bos_added) {
            CHECK(n >= 1 && ids[0] == bos);
            size_t pl = 0;
            ds_token_to_piece(g_tok, bos, dflags, NULL, 0, &pl);
            skip = pl;
        }
        CHECK(out_len == skip + len);
        CHECK(memcmp(out + skip, text, len) == 0);
    }

    free(cat);
    free(out);
    free(ids);
    return 0;
}
