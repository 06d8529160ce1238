/*
 * lib/tokenizer/tok_build.c — building the immutable tokenizer tables.
 *
 * Owns: the GPT-2 byte<->unicode table (formats.md §5.3), UTF-8 helpers, the builder the two
 * loaders (GGUF, tokenizer.json) fill, and tok_build_finish(), which turns a builder into the
 * tables the hot paths use:
 *   - text -> id hash (open addressing), id -> text / piece arenas (pieces = bytes after
 *     byte-level decoding, precomputed so detokenization is a memcpy);
 *   - the merge table keyed by (left id, right id) -> (rank, merged id): BPE then works on ids,
 *     never on strings (a merge whose parts or result are not tokens is skipped — it can never
 *     fire in a well-formed byte-level vocabulary);
 *   - a byte trie over the added tokens for leftmost-longest matching in input text.
 */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * Byte <-> unicode (GPT-2 bytes_to_unicode)
 * --------------------------------------------------------------------------------------- */

static bool byte_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_printable(b))
        return b;
    /* the k-th non-printable byte (in increasing order) maps to U+0100 + k:
     * 0x00-0x20 -> k = b, 0x7F-0xA0 -> k = b - 0x7F + 33, 0xAD -> 67 */
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 33u + (b - 0x7Fu);
    return 0x100u + 67u; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_printable(cp) ? (int)cp : -1;
    if (cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    return -1;
}

/* ---------------------------------------------------------------------------------------
 * UTF-8
 * --------------------------------------------------------------------------------------- */

size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    *cp = 0xFFFFFFFFu;
    if (n == 0)
        return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        uint8_t d = s[i];
        if (d < lo || d > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return need;
}

bool tok_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* ---------------------------------------------------------------------------------------
 * Hashing
 * --------------------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return x;
}

uint64_t tok_hash_bytes(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xFF51AFD7ED558CCDull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9E3779B97F4A7C15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = (h ^ mix64(w ^ ((uint64_t)len << 56))) * 0x9E3779B97F4A7C15ull;
    return mix64(h);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint64_t c = 16;
    while (c < n)
        c <<= 1;
    return (uint32_t)c;
}

/* ---------------------------------------------------------------------------------------
 * Builder
 * --------------------------------------------------------------------------------------- */

ds_status tok_builder_init(tok_builder *b, int32_t n_vocab, ds_err *err)
{
    memset(b, 0, sizeof *b);
    b->bos = b->eos = b->pad = b->eot = b->eom = -1;
    b->pre_preset = -1;
    if (n_vocab <= 0 || n_vocab > (1 << 24))
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer: vocabulary size %d out of range (1..16777216)",
                          (int)n_vocab);
    b->n_vocab = n_vocab;
    b->text_at = calloc((size_t)n_vocab, sizeof *b->text_at);
    b->text_len = calloc((size_t)n_vocab, sizeof *b->text_len);
    b->type = calloc((size_t)n_vocab, 1);
    b->tflags = calloc((size_t)n_vocab, 1);
    b->arena_cap = (size_t)n_vocab * 16 + 4096;
    b->arena = malloc(b->arena_cap);
    if (!b->text_at || !b->text_len || !b->type || !b->tflags || !b->arena) {
        tok_builder_free(b);
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory (%d tokens)", (int)n_vocab);
    }
    for (int32_t i = 0; i < n_vocab; i++)
        b->type[i] = DS_TOKEN_TYPE_NORMAL;
    return DS_OK;
}

void tok_builder_free(tok_builder *b)
{
    if (!b)
        return;
    free(b->arena);
    free(b->text_at);
    free(b->text_len);
    free(b->type);
    free(b->tflags);
    free(b->merge_at);
    free(b->merge_left_len);
    free(b->merge_right_len);
    free(b->chat_template);
    free(b->pre_name);
    for (int i = 0; i < b->n_pre_custom; i++)
        free(b->pre_custom[i]);
    memset(b, 0, sizeof *b);
}

/* Append bytes + NUL to the arena; returns the offset or SIZE_MAX when out of memory. */
static size_t arena_put(tok_builder *b, const char *s1, size_t l1, const char *s2, size_t l2)
{
    size_t need = l1 + 1 + (s2 ? l2 + 1 : 0);
    if (b->arena_len + need > b->arena_cap) {
        size_t nc = b->arena_cap * 2;
        while (nc < b->arena_len + need)
            nc *= 2;
        char *na = realloc(b->arena, nc);
        if (!na)
            return SIZE_MAX;
        b->arena = na;
        b->arena_cap = nc;
    }
    size_t at = b->arena_len;
    char *o = b->arena + at;
    if (l1)
        memcpy(o, s1, l1);
    o[l1] = 0;
    if (s2) {
        if (l2)
            memcpy(o + l1 + 1, s2, l2);
        o[l1 + 1 + l2] = 0;
    }
    b->arena_len += need;
    return at;
}

static inline const char *b_text(const tok_builder *b, int32_t id)
{
    return b->text_at[id] ? b->arena + b->text_at[id] - 1 : NULL;
}

ds_status tok_builder_set_text(tok_builder *b, int32_t id, const char *s, size_t len, ds_err *err)
{
    if (id < 0 || id >= b->n_vocab)
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer: token id %d out of range", (int)id);
    if (len > (1u << 20))
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer: token %d text too long (%zu bytes)", (int)id, len);
    size_t at = arena_put(b, s, len, NULL, 0);
    if (at == SIZE_MAX)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
    b->text_at[id] = (uint64_t)at + 1;
    b->text_len[id] = (uint32_t)len;
    return DS_OK;
}

ds_status tok_builder_add_merge(tok_builder *b, const char *l, size_t ll, const char *r, size_t rl,
                                ds_err *err)
{
    if (b->n_merges == b->cap_merges) {
        size_t nc = b->cap_merges ? b->cap_merges * 2 : 1024;
        uint64_t *na = realloc(b->merge_at, nc * sizeof *na);
        if (na) b->merge_at = na;
        uint32_t *nll = realloc(b->merge_left_len, nc * sizeof *nll);
        if (nll) b->merge_left_len = nll;
        uint32_t *nrl = realloc(b->merge_right_len, nc * sizeof *nrl);
        if (nrl) b->merge_right_len = nrl;
        if (!na || !nll || !nrl)
            return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory (merges)");
        b->cap_merges = nc;
    }
    if (ll > (1u << 20) || rl > (1u << 20))
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer: merge %zu too long", b->n_merges);
    size_t at = arena_put(b, l, ll, r, rl);
    if (at == SIZE_MAX)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory (merges)");
    b->merge_at[b->n_merges] = at;
    b->merge_left_len[b->n_merges] = (uint32_t)ll;
    b->merge_right_len[b->n_merges] = (uint32_t)rl;
    b->n_merges++;
    return DS_OK;
}

/* ---------------------------------------------------------------------------------------
 * Finishing
 * --------------------------------------------------------------------------------------- */

static int32_t str_lookup(const ds_tokenizer *t, const char *s, size_t len)
{
    uint32_t mask = t->str_mask;
    uint32_t i = (uint32_t)tok_hash_bytes(s, len) & mask;
    for (;;) {
        uint32_t v = t->str_index[i];
        if (!v)
            return -1;
        int32_t id = (int32_t)v - 1;
        uint32_t o = t->text_off[id];
        if (t->text_off[id + 1] - o - 1 == len && memcmp(t->text_arena + o, s, len) == 0)
            return id;
        i = (i + 1) & mask;
    }
}

static bool looks_special_eog(const char *s)
{
    static const char *const eog_texts[] = {
        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", /* <｜end▁of▁sentence｜> */
        "<|EOT|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
        "<end_of_turn>", "<EOT>",
    };
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++)
        if (strcmp(s, eog_texts[i]) == 0)
            return true;
    return false;
}

static uint32_t trie_child(const ds_tokenizer *t, uint32_t node, uint8_t byte)
{
    uint32_t key = ((node << 8) | byte) + 1;
    uint32_t i = (uint32_t)mix64(key) & t->edge_mask;
    for (;;) {
        uint32_t k = t->edges[i].key;
        if (k == key)
            return t->edges[i].child;
        if (!k)
            return 0;
        i = (i + 1) & t->edge_mask;
    }
}

static void trie_set(ds_tokenizer *t, uint32_t node, uint8_t byte, uint32_t child)
{
    uint32_t key = ((node << 8) | byte) + 1;
    uint32_t i = (uint32_t)mix64(key) & t->edge_mask;
    while (t->edges[i].key)
        i = (i + 1) & t->edge_mask;
    t->edges[i].key = key;
    t->edges[i].child = child;
}

static bool trie_matchable(uint8_t type)
{
    return type == DS_TOKEN_TYPE_CONTROL || type == DS_TOKEN_TYPE_USER_DEFINED ||
           type == DS_TOKEN_TYPE_UNKNOWN;
}

static ds_status build_trie(ds_tokenizer *t, ds_err *err)
{
    uint64_t total = 1;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (trie_matchable(t->type[i]))
            total += t->text_off[i + 1] - t->text_off[i] - 1;
    if (total >= (1u << 23))
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer: added tokens too large (%llu bytes)",
                          (unsigned long long)total);
    t->node_tok = malloc(total * sizeof *t->node_tok);
    t->edge_mask = pow2_at_least(total * 2) - 1;
    t->edges = calloc((size_t)t->edge_mask + 1, sizeof *t->edges);
    if (!t->node_tok || !t->edges)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory (added tokens)");
    t->n_nodes = 1;
    t->node_tok[0] = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!trie_matchable(t->type[id]))
            continue;
        const uint8_t *s = (const uint8_t *)t->text_arena + t->text_off[id];
        size_t len = t->text_off[id + 1] - t->text_off[id] - 1;
        if (len == 0)
            continue;
        uint32_t node = 0;
        for (size_t k = 0; k < len; k++) {
            uint32_t c = trie_child(t, node, s[k]);
            if (!c) {
                c = t->n_nodes++;
                t->node_tok[c] = -1;
                trie_set(t, node, s[k], c);
            }
            node = c;
        }
        if (t->node_tok[node] < 0)
            t->node_tok[node] = id; /* the first id with a given text wins */
        t->first_any[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
        if (t->type[id] == DS_TOKEN_TYPE_USER_DEFINED)
            t->first_user[s[0] >> 3] |= (uint8_t)(1u << (s[0] & 7));
    }
    return DS_OK;
}

uint32_t tok_trie_child(const ds_tokenizer *t, uint32_t node, uint8_t byte)
{
    return trie_child(t, node, byte);
}

static void merge_insert(ds_tokenizer *t, int32_t l, int32_t r, uint32_t rank, int32_t id)
{
    uint64_t key = ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
    uint64_t i = mix64(key) & t->merge_mask;
    for (;;) {
        if (t->merges[i].key == key)
            return; /* duplicate pair: the lower rank (earlier) wins */
        if (!t->merges[i].key) {
            t->merges[i].key = key;
            t->merges[i].rank = rank;
            t->merges[i].id = id;
            t->n_merges++;
            return;
        }
        i = (i + 1) & t->merge_mask;
    }
}

ds_status tok_build_finish(tok_builder *b, ds_tokenizer **out, ds_err *err)
{
    *out = NULL;
    ds_status st = DS_OK;
    ds_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        tok_builder_free(b);
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
    }
    int32_t n = b->n_vocab;
    t->n_vocab = n;

    /* ids without text: "[PAD<id>]", UNUSED (what the GGUF converter writes) */
    for (int32_t i = 0; i < n; i++) {
        if (!b->text_at[i]) {
            char tmp[32];
            int l = snprintf(tmp, sizeof tmp, "[PAD%d]", (int)i);
            if ((st = tok_builder_set_text(b, i, tmp, (size_t)l, err)) != DS_OK)
                goto fail;
            b->type[i] = DS_TOKEN_TYPE_UNUSED;
        }
    }

    /* text arena */
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += (uint64_t)b->text_len[i] + 1;
    if (total >= UINT32_MAX) {
        st = ds_err_set(err, DS_ERR_FORMAT, "tokenizer: token texts too large");
        goto fail;
    }
    t->text_arena = malloc(total);
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->type = malloc((size_t)n);
    t->tflags = malloc((size_t)n);
    if (!t->text_arena || !t->text_off || !t->type || !t->tflags)
        goto nomem;
    memcpy(t->type, b->type, (size_t)n);
    memcpy(t->tflags, b->tflags, (size_t)n);
    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        memcpy(t->text_arena + off, b_text(b, i), b->text_len[i] + 1);
        off += b->text_len[i] + 1;
    }
    t->text_off[n] = off;

    /* text -> id */
    t->str_mask = pow2_at_least((uint64_t)n * 2) - 1;
    t->str_index = calloc((size_t)t->str_mask + 1, sizeof *t->str_index);
    if (!t->str_index)
        goto nomem;
    for (int32_t i = 0; i < n; i++) {
        const char *s = t->text_arena + t->text_off[i];
        size_t len = b->text_len[i];
        uint32_t j = (uint32_t)tok_hash_bytes(s, len) & t->str_mask;
        for (;;) {
            uint32_t v = t->str_index[j];
            if (!v) {
                t->str_index[j] = (uint32_t)i + 1;
                break;
            }
            int32_t o = (int32_t)v - 1;
            if (b->text_len[o] == len && memcmp(b_text(b, o), s, len) == 0) {
                if (b->last_wins)
                    t->str_index[j] = (uint32_t)i + 1;
                break;
            }
            j = (j + 1) & t->str_mask;
        }
    }

    /* pieces: byte-level decoding for NORMAL-like tokens (HF fallback: the token's own UTF-8
     * when one of its characters is outside the table), literal text for the others */
    t->piece_arena = malloc(total);
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    if (!t->piece_arena || !t->piece_off)
        goto nomem;
    off = 0;
    for (int32_t i = 0; i < n; i++) {
        t->piece_off[i] = off;
        const uint8_t *s = (const uint8_t *)b_text(b, i);
        size_t len = b->text_len[i];
        uint8_t ty = b->type[i];
        bool decoded = false;
        if (ty == DS_TOKEN_TYPE_NORMAL || ty == DS_TOKEN_TYPE_UNDEFINED) {
            uint32_t o2 = off;
            decoded = true;
            for (size_t k = 0; k < len;) {
                uint32_t cp;
                size_t l = tok_utf8_decode(s + k, len - k, &cp);
                int byte = l ? tok_cp_to_byte(cp) : -1;
                if (byte < 0) {
                    decoded = false;
                    break;
                }
                t->piece_arena[o2++] = (char)byte;
                k += l;
            }
            if (decoded)
                off = o2;
        }
        if (!decoded) {
            memcpy(t->piece_arena + off, s, len);
            off += (uint32_t)len;
        }
    }
    t->piece_off[n] = off;

    /* NORMAL piece bytes -> id (ignore_merges lookups) */
    t->ignore_merges = b->ignore_merges;
    if (t->ignore_merges) {
        t->piece_mask = pow2_at_least((uint64_t)n * 2) - 1;
        t->piece_index = calloc((size_t)t->piece_mask + 1, sizeof *t->piece_index);
        if (!t->piece_index)
            goto nomem;
        for (int32_t i = 0; i < n; i++) {
            if (t->type[i] != DS_TOKEN_TYPE_NORMAL)
                continue;
            const char *s = t->piece_arena + t->piece_off[i];
            size_t len = t->piece_off[i + 1] - t->piece_off[i];
            uint32_t j = (uint32_t)tok_hash_bytes(s, len) & t->piece_mask;
            for (;;) {
                uint32_t v = t->piece_index[j];
                if (!v) {
                    t->piece_index[j] = (uint32_t)i + 1;
                    break;
                }
                int32_t o = (int32_t)v - 1;
                if (t->piece_off[o + 1] - t->piece_off[o] == len &&
                    memcmp(t->piece_arena + t->piece_off[o], s, len) == 0)
                    break;
                j = (j + 1) & t->piece_mask;
            }
        }
    }

    /* single bytes */
    for (int k = 0; k < 256; k++) {
        char tmp[4];
        size_t l = utf8_put(tmp, tok_byte_to_cp((uint8_t)k));
        t->byte_id[k] = str_lookup(t, tmp, l);
    }

    /* merges */
    t->merge_mask = pow2_at_least((uint64_t)b->n_merges * 2 + 2) - 1;
    t->merges = calloc(t->merge_mask + 1, sizeof *t->merges);
    if (!t->merges)
        goto nomem;
    {
        size_t cap = 256;
        char *cat = malloc(cap);
        if (!cat)
            goto nomem;
        for (size_t i = 0; i < b->n_merges; i++) {
            size_t ll = b->merge_left_len[i], rl = b->merge_right_len[i];
            const char *ls = b->arena + b->merge_at[i], *rs = ls + ll + 1;
            int32_t l = str_lookup(t, ls, ll);
            int32_t r = str_lookup(t, rs, rl);
            if (l < 0 || r < 0)
                continue;
            if (ll + rl > cap) {
                cap = (ll + rl) * 2;
                char *nc = realloc(cat, cap);
                if (!nc) {
                    free(cat);
                    goto nomem;
                }
                cat = nc;
            }
            memcpy(cat, ls, ll);
            memcpy(cat + ll, rs, rl);
            int32_t m = str_lookup(t, cat, ll + rl);
            if (m < 0)
                continue;
            merge_insert(t, l, r, (uint32_t)i, m);
        }
        free(cat);
    }

    if ((st = build_trie(t, err)) != DS_OK)
        goto fail;

    /* specials */
    t->bos = b->bos;
    t->eos = b->eos;
    t->pad = b->pad;
    t->add_bos = b->add_bos && b->bos >= 0;
    for (int32_t i = 0; i < n; i++)
        if (t->type[i] != DS_TOKEN_TYPE_NORMAL && looks_special_eog(t->text_arena + t->text_off[i]))
            t->tflags[i] |= TOKF_EOG;
    if (b->eos >= 0) t->tflags[b->eos] |= TOKF_EOG;
    if (b->eot >= 0) t->tflags[b->eot] |= TOKF_EOG;
    if (b->eom >= 0) t->tflags[b->eom] |= TOKF_EOG;

    t->chat_template = b->chat_template;
    b->chat_template = NULL;

    {
        const char *pats[TOK_MAX_PRE_STEPS];
        for (int i = 0; i < b->n_pre_custom; i++)
            pats[i] = b->pre_custom[i];
        st = tok_pretok_compile(&t->pre, b->pre_preset, pats, b->pre_preset >= 0 ? 0 : b->n_pre_custom,
                                b->pre_name, err);
        if (st != DS_OK)
            goto fail;
    }

    tok_builder_free(b);
    *out = t;
    return DS_OK;

nomem:
    st = ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
fail:
    tok_builder_free(b);
    ds_tokenizer_free(t);
    return st;
}

void ds_tokenizer_free(ds_tokenizer *t)
{
    if (!t)
        return;
    free(t->text_arena);
    free(t->text_off);
    free(t->piece_arena);
    free(t->piece_off);
    free(t->type);
    free(t->tflags);
    free(t->str_index);
    free(t->piece_index);
    free(t->merges);
    free(t->node_tok);
    free(t->edges);
    free(t->chat_template);
    tok_pretok_free(&t->pre);
    free(t);
}

int32_t tok_str_lookup(const ds_tokenizer *t, const char *s, size_t len)
{
    return str_lookup(t, s, len);
}
