/*
 * lib/tokenizer/tok_bpe.c — tokenization and detokenization (the hot paths) and the public
 * accessors of include/deepseek/tokenizer.h.
 *
 * Owns: added-token matching, driving the pre-tokenizer, byte-level BPE by merge rank
 * (formats.md §5.5), BOS handling, pieces and detokenization (§6.1).
 *
 * Tokenization of one call:
 *   1. Added tokens are matched in the raw text, leftmost-longest over a byte trie (HF
 *      semantics): USER_DEFINED always, CONTROL/UNKNOWN only with DS_TOKENIZE_SPECIAL. The
 *      matched span becomes its id; lstrip/rstrip (tokenizer.json) absorb neighbouring
 *      whitespace. The text between matches is a "fragment".
 *   2. Each fragment runs through the pre-tokenizer (tok_pretok.c), depth-first, piece by piece.
 *   3. Each piece runs BPE on its raw bytes: symbols start as the ids of the single-byte tokens;
 *      repeatedly the adjacent pair with the lowest merge rank (leftmost on ties) is merged.
 *      A doubly linked symbol list plus a binary min-heap keyed (rank, position) with lazy
 *      invalidation makes it O(n log n) per piece, so a 100 KB run of one letter is fast.
 *      Results of pieces are memoised per call in a small hash (text repeats a lot).
 * All per-call state is on the caller's stack or allocated per call: the tokenizer itself is
 * never written, so any number of threads may tokenize with one handle.
 */
#include "tokenizer/tokenizer.h"

#include "format/gguf.h"
#include "util/mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------
 * Per-call state
 * --------------------------------------------------------------------------------------- */

#define CACHE_MAX_PIECE 32       /* only pieces up to this many bytes are memoised */
#define CACHE_MAX_SLOTS 4096     /* power of two; fewer for shorter texts */

typedef struct cache_slot {
    uint64_t hash;               /* 0 = empty */
    uint32_t tok_off;            /* in cache_toks */
    uint16_t n_toks;
    uint16_t len;
    char bytes[CACHE_MAX_PIECE];
} cache_slot;

typedef struct tok_ctx {
    const ds_tokenizer *t;
    const char *base;            /* the fragment being pre-tokenized */
    int32_t *out;
    size_t cap;
    size_t n;
    bool oom;
    /* BPE scratch */
    int32_t *sym;
    int32_t *prev;
    int32_t *next;
    int32_t *res;                /* result of one piece */
    uint64_t *heap;
    size_t scratch_cap;
    /* memo */
    cache_slot *cache;
    size_t cache_mask;
    int32_t *cache_toks;
    size_t cache_toks_n, cache_toks_cap;
    tok_matcher m;
} tok_ctx;

static inline void emit(tok_ctx *c, int32_t id)
{
    if (c->n < c->cap)
        c->out[c->n] = id;
    c->n++;
}

static bool scratch_reserve(tok_ctx *c, size_t n)
{
    if (n <= c->scratch_cap)
        return true;
    size_t cap = c->scratch_cap ? c->scratch_cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t *s = realloc(c->sym, cap * sizeof *s);
    if (s) c->sym = s;
    int32_t *p = realloc(c->prev, cap * sizeof *p);
    if (p) c->prev = p;
    int32_t *x = realloc(c->next, cap * sizeof *x);
    if (x) c->next = x;
    int32_t *r = realloc(c->res, cap * sizeof *r);
    if (r) c->res = r;
    uint64_t *h = realloc(c->heap, cap * 2 * sizeof *h);
    if (h) c->heap = h;
    if (!s || !p || !x || !r || !h)
        return false;
    c->scratch_cap = cap;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * BPE
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

static inline const tok_merge_slot *merge_find(const ds_tokenizer *t, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
    uint64_t i = mix64(key) & t->merge_mask;
    for (;;) {
        const tok_merge_slot *s = &t->merges[i];
        if (s->key == key)
            return s;
        if (!s->key)
            return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    uint64_t v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m)
            break;
        size_t r = l + 1;
        size_t k = (r < m && h[r] < h[l]) ? r : l;
        if (v <= h[k])
            break;
        h[i] = h[k];
        i = k;
    }
    h[i] = v;
    return top;
}

static int32_t piece_lookup(const ds_tokenizer *t, const char *s, size_t len)
{
    uint32_t i = (uint32_t)tok_hash_bytes(s, len) & t->piece_mask;
    for (;;) {
        uint32_t v = t->piece_index[i];
        if (!v)
            return -1;
        int32_t id = (int32_t)v - 1;
        uint32_t o = t->piece_off[id];
        if (t->piece_off[id + 1] - o == len && memcmp(t->piece_arena + o, s, len) == 0)
            return id;
        i = (i + 1) & t->piece_mask;
    }
}

/* BPE of one piece (len >= 1) into c->res (at most len ids). Returns the number of ids, or -1 on
 * allocation failure. */
static ptrdiff_t bpe_piece(tok_ctx *c, const uint8_t *p, size_t len)
{
    const ds_tokenizer *t = c->t;
    if (len > (size_t)INT32_MAX - 1 || !scratch_reserve(c, len))
        return -1;
    int32_t *res = c->res;
    if (t->ignore_merges) {
        int32_t id = piece_lookup(t, (const char *)p, len);
        if (id >= 0) {
            res[0] = id;
            return 1;
        }
    }
    if (len == 1) {
        if (t->byte_id[p[0]] >= 0) {
            res[0] = t->byte_id[p[0]];
            return 1;
        }
        return 0;
    }
    int32_t *sym = c->sym, *prev = c->prev, *next = c->next;
    uint64_t *heap = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < len; i++) {
        sym[i] = t->byte_id[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = (int32_t)i + 1;
    }
    next[len - 1] = -1;
    for (size_t i = 0; i + 1 < len; i++) {
        const tok_merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
        if (m)
            heap_push(heap, &hn, ((uint64_t)m->rank << 32) | i);
    }
    const int32_t DEAD = INT32_MIN;
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t rank = (uint32_t)(top >> 32);
        int32_t left = (int32_t)(uint32_t)top;
        if (sym[left] == DEAD)
            continue;
        int32_t right = next[left];
        if (right < 0)
            continue;
        const tok_merge_slot *m = merge_find(t, sym[left], sym[right]);
        if (!m || m->rank != rank)
            continue; /* stale entry */
        sym[left] = m->id;
        sym[right] = DEAD;
        int32_t nr = next[right];
        next[left] = nr;
        if (nr >= 0)
            prev[nr] = left;
        int32_t pl = prev[left];
        if (pl >= 0) {
            const tok_merge_slot *a = merge_find(t, sym[pl], sym[left]);
            if (a)
                heap_push(heap, &hn, ((uint64_t)a->rank << 32) | (uint32_t)pl);
        }
        if (nr >= 0) {
            const tok_merge_slot *b = merge_find(t, sym[left], sym[nr]);
            if (b)
                heap_push(heap, &hn, ((uint64_t)b->rank << 32) | (uint32_t)left);
        }
    }
    ptrdiff_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        if (sym[i] >= 0)   /* a byte without a token (incomplete alphabet) is dropped, as llama.cpp */
            res[k++] = sym[i];
    return k;
}

static bool bpe_cached(tok_ctx *c, const uint8_t *p, size_t len)
{
    if (len == 0)
        return true;
    cache_slot *slot = NULL;
    uint64_t h = 0;
    if (c->cache && len <= CACHE_MAX_PIECE) {
        h = tok_hash_bytes(p, len) | 1;
        slot = &c->cache[h & c->cache_mask];
        if (slot->hash == h && slot->len == len && memcmp(slot->bytes, p, len) == 0) {
            const int32_t *ids = c->cache_toks + slot->tok_off;
            for (uint16_t i = 0; i < slot->n_toks; i++)
                emit(c, ids[i]);
            return true;
        }
    }
    ptrdiff_t k = bpe_piece(c, p, len);
    if (k < 0)
        return false;
    for (ptrdiff_t i = 0; i < k; i++)
        emit(c, c->res[i]);
    if (!slot || k == 0)
        return true;
    size_t need = c->cache_toks_n + (size_t)k;
    if (need > c->cache_toks_cap) {
        if (c->cache_toks_cap >= (1u << 20)) {
            /* memo pool full: start over (keeps memory bounded on huge inputs) */
            memset(c->cache, 0, (c->cache_mask + 1) * sizeof *c->cache);
            c->cache_toks_n = 0;
        } else {
            size_t nc = c->cache_toks_cap ? c->cache_toks_cap * 2 : 4096;
            int32_t *nt = realloc(c->cache_toks, nc * sizeof *nt);
            if (!nt)
                return true; /* the memo is optional */
            c->cache_toks = nt;
            c->cache_toks_cap = nc;
        }
    }
    memcpy(c->cache_toks + c->cache_toks_n, c->res, (size_t)k * sizeof(int32_t));
    slot->hash = h;
    slot->len = (uint16_t)len;
    slot->n_toks = (uint16_t)k;
    slot->tok_off = (uint32_t)c->cache_toks_n;
    memcpy(slot->bytes, p, len);
    c->cache_toks_n += (size_t)k;
    return true;
}

static int on_piece(void *user, size_t off, size_t len)
{
    tok_ctx *c = user;
    if (!bpe_cached(c, (const uint8_t *)c->base + off, len)) {
        c->oom = true;
        return 1;
    }
    return 0;
}

static bool pretok_valid(tok_ctx *c, const char *s, size_t len)
{
    if (len == 0)
        return true;
    c->base = s;
    tok_pretok_split(&c->t->pre, &c->m, s, len, on_piece, c);
    return !c->oom;
}

/* One fragment (text between added tokens). Invalid UTF-8: every maximal run of bytes that are
 * not part of a valid UTF-8 sequence is a piece of its own (byte-level BPE, no regex), and the
 * valid text on each side is pre-tokenized separately. The regex engine only ever sees valid
 * UTF-8. */
static bool do_fragment(tok_ctx *c, const char *s, size_t len)
{
    if (c->m.valid_utf)
        return pretok_valid(c, s, len);
    const uint8_t *u = (const uint8_t *)s;
    size_t seg = 0, i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(u + i, len - i, &cp);
        if (l) {
            i += l;
            continue;
        }
        size_t bad = i;
        while (i < len && u[i] >= 0x80 && tok_utf8_decode(u + i, len - i, &cp) == 0)
            i++;
        if (!pretok_valid(c, s + seg, bad - seg))
            return false;
        if (!bpe_cached(c, u + bad, i - bad)) {
            c->oom = true;
            return false;
        }
        seg = i;
    }
    return pretok_valid(c, s + seg, len - seg);
}

/* ---------------------------------------------------------------------------------------
 * Added tokens
 * --------------------------------------------------------------------------------------- */

static bool is_ws_cp(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Length of the whitespace run starting at s[i] (forward). */
static size_t ws_forward(const char *s, size_t len, size_t i)
{
    size_t j = i;
    while (j < len) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + j, len - j, &cp);
        if (!l || !is_ws_cp(cp))
            break;
        j += l;
    }
    return j - i;
}

/* Start of the whitespace run ending at s[end] (backward, not before lo). */
static size_t ws_backward(const char *s, size_t lo, size_t end)
{
    size_t j = end;
    while (j > lo) {
        size_t k = j - 1;
        while (k > lo && j - k < 4 && ((uint8_t)s[k] & 0xC0) == 0x80)
            k--;
        uint32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + k, j - k, &cp);
        if (l != j - k || !is_ws_cp(cp))
            break;
        j = k;
    }
    return j;
}

static ds_status tokenize_text(tok_ctx *c, const char *text, size_t len, bool special)
{
    const ds_tokenizer *t = c->t;
    const uint8_t *first = special ? t->first_any : t->first_user;
    const uint8_t *u = (const uint8_t *)text;
    size_t frag = 0, pos = 0;
    while (pos < len) {
        uint8_t b0 = u[pos];
        if (!(first[b0 >> 3] & (1u << (b0 & 7)))) {
            pos++;
            continue;
        }
        /* longest allowed added token starting at pos */
        uint32_t node = 0;
        int32_t best = -1;
        size_t best_end = 0;
        for (size_t k = pos; k < len; k++) {
            node = tok_trie_child(t, node, u[k]);
            if (!node)
                break;
            int32_t id = t->node_tok[node];
            if (id >= 0 && (special || t->type[id] == DS_TOKEN_TYPE_USER_DEFINED)) {
                best = id;
                best_end = k + 1;
            }
        }
        if (best < 0) {
            pos++;
            continue;
        }
        size_t frag_end = pos;
        if (t->tflags[best] & TOKF_LSTRIP)
            frag_end = ws_backward(text, frag, pos);
        if (!do_fragment(c, text + frag, frag_end - frag))
            return DS_ERR_NO_MEMORY;
        emit(c, best);
        pos = best_end;
        if (t->tflags[best] & TOKF_RSTRIP)
            pos += ws_forward(text, len, pos);
        frag = pos;
    }
    if (!do_fragment(c, text + frag, len - frag))
        return DS_ERR_NO_MEMORY;
    return DS_OK;
}

/* ---------------------------------------------------------------------------------------
 * Public API
 * --------------------------------------------------------------------------------------- */

DS_API ds_status ds_tokenize(const ds_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                             int32_t *tokens, size_t capacity, size_t *n_tokens)
{
    if (n_tokens)
        *n_tokens = 0;
    if (!tok || !n_tokens)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenize: %s is NULL", tok ? "n_tokens" : "tokenizer");
    if (!text && len > 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenize: text is NULL but len is %zu", len);
    if (!tokens && capacity > 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenize: tokens is NULL but capacity is %zu", capacity);
    const uint32_t known = DS_TOKENIZE_ADD_BOS | DS_TOKENIZE_NO_BOS | DS_TOKENIZE_SPECIAL;
    if (flags & ~known)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenize: unknown flag bits 0x%x", flags & ~known);
    if ((flags & DS_TOKENIZE_ADD_BOS) && (flags & DS_TOKENIZE_NO_BOS))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenize: both DS_TOKENIZE_ADD_BOS and DS_TOKENIZE_NO_BOS");

    tok_ctx c;
    memset(&c, 0, sizeof c);
    c.t = tok;
    c.out = tokens;
    c.cap = capacity;
    if (tok_matcher_init(&c.m) != DS_OK)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_tokenize: out of memory");
    c.m.valid_utf = tok_utf8_valid((const uint8_t *)text, len);
    if (len > 256) { /* the memo is optional: NULL just disables it */
        size_t slots = 64;
        while (slots < CACHE_MAX_SLOTS && slots * 16 < len)
            slots *= 2;
        c.cache = calloc(slots, sizeof *c.cache);
        c.cache_mask = slots - 1;
    }

    bool bos = (flags & DS_TOKENIZE_ADD_BOS) ? true : (flags & DS_TOKENIZE_NO_BOS) ? false : tok->add_bos;
    if (bos && tok->bos >= 0)
        emit(&c, tok->bos);
    ds_status st = len ? tokenize_text(&c, text, len, (flags & DS_TOKENIZE_SPECIAL) != 0) : DS_OK;

    tok_matcher_free(&c.m);
    free(c.sym);
    free(c.prev);
    free(c.next);
    free(c.res);
    free(c.heap);
    free(c.cache);
    free(c.cache_toks);
    if (st != DS_OK)
        return ds_err_thread(st, "ds_tokenize: out of memory");
    *n_tokens = c.n;
    if (c.n > capacity)
        return ds_err_thread(DS_ERR_BUFFER_TOO_SMALL, "ds_tokenize: %zu tokens do not fit in %zu", c.n, capacity);
    return DS_OK;
}

static inline bool renders(const ds_tokenizer *t, int32_t id, uint32_t flags)
{
    uint8_t ty = t->type[id];
    if (ty == DS_TOKEN_TYPE_CONTROL || ty == DS_TOKEN_TYPE_UNUSED)
        return (flags & DS_DETOKENIZE_SPECIAL) != 0;
    return true;
}

DS_API ds_status ds_token_to_piece(const ds_tokenizer *tok, int32_t token, uint32_t flags,
                                   char *buf, size_t capacity, size_t *len)
{
    if (len)
        *len = 0;
    if (!tok || !len)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_token_to_piece: %s is NULL", tok ? "len" : "tokenizer");
    if (!buf && capacity > 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_token_to_piece: buf is NULL but capacity is %zu", capacity);
    if (token < 0 || token >= tok->n_vocab)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_token_to_piece: token %d out of range [0, %d)",
                             (int)token, (int)tok->n_vocab);
    size_t n = 0;
    const char *src = NULL;
    if (renders(tok, token, flags)) {
        src = tok->piece_arena + tok->piece_off[token];
        n = tok->piece_off[token + 1] - tok->piece_off[token];
    }
    *len = n;
    if (capacity < n)
        return ds_err_thread(DS_ERR_BUFFER_TOO_SMALL, "ds_token_to_piece: piece of %zu bytes does not fit in %zu",
                             n, capacity);
    if (n)
        memcpy(buf, src, n);
    if (capacity > n)
        buf[n] = 0;
    return DS_OK;
}

DS_API ds_status ds_detokenize(const ds_tokenizer *tok, const int32_t *tokens, size_t n,
                               uint32_t flags, char *buf, size_t capacity, size_t *len)
{
    if (len)
        *len = 0;
    if (!tok || !len)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_detokenize: %s is NULL", tok ? "len" : "tokenizer");
    if (!tokens && n > 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_detokenize: tokens is NULL but n is %zu", n);
    if (!buf && capacity > 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_detokenize: buf is NULL but capacity is %zu", capacity);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tokens[i];
        if (id < 0 || id >= tok->n_vocab)
            return ds_err_thread(DS_ERR_INVALID_ARG, "ds_detokenize: tokens[%zu] = %d out of range [0, %d)",
                                 i, (int)id, (int)tok->n_vocab);
        if (!renders(tok, id, flags))
            continue;
        size_t pl = tok->piece_off[id + 1] - tok->piece_off[id];
        if (total < capacity) {
            size_t k = capacity - total < pl ? capacity - total : pl;
            memcpy(buf + total, tok->piece_arena + tok->piece_off[id], k);
        }
        total += pl;
    }
    *len = total;
    if (total > capacity)
        return ds_err_thread(DS_ERR_BUFFER_TOO_SMALL, "ds_detokenize: %zu bytes do not fit in %zu", total, capacity);
    if (capacity > total)
        buf[total] = 0;
    return DS_OK;
}

DS_API int32_t ds_tokenizer_n_vocab(const ds_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
DS_API int32_t ds_tokenizer_bos(const ds_tokenizer *tok) { return tok ? tok->bos : -1; }
DS_API int32_t ds_tokenizer_eos(const ds_tokenizer *tok) { return tok ? tok->eos : -1; }
DS_API int32_t ds_tokenizer_pad(const ds_tokenizer *tok) { return tok ? tok->pad : -1; }
DS_API int ds_tokenizer_add_bos(const ds_tokenizer *tok) { return tok && tok->add_bos; }

DS_API ds_status ds_tokenizer_token_id(const ds_tokenizer *tok, const char *text, int32_t *id)
{
    if (id)
        *id = -1;
    if (!tok || !text || !id)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenizer_token_id: NULL argument");
    int32_t r = tok_str_lookup(tok, text, strlen(text));
    if (r < 0)
        return ds_err_thread(DS_ERR_NOT_FOUND, "ds_tokenizer_token_id: no token \"%.200s\"", text);
    *id = r;
    return DS_OK;
}

DS_API const char *ds_tokenizer_token_text(const ds_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return NULL;
    return tok->text_arena + tok->text_off[id];
}

DS_API ds_token_type ds_tokenizer_token_type(const ds_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return DS_TOKEN_TYPE_UNDEFINED;
    return (ds_token_type)tok->type[id];
}

DS_API int ds_tokenizer_is_special(const ds_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return 0;
    return tok->type[id] == DS_TOKEN_TYPE_CONTROL || tok->type[id] == DS_TOKEN_TYPE_UNUSED;
}

DS_API int ds_tokenizer_is_eog(const ds_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->n_vocab)
        return 0;
    return (tok->tflags[id] & TOKF_EOG) != 0;
}

DS_API const char *ds_tokenizer_pre_name(const ds_tokenizer *tok)
{
    return tok ? tok->pre.name : NULL;
}

DS_API const char *ds_tokenizer_chat_template(const ds_tokenizer *tok)
{
    return tok ? tok->chat_template : NULL;
}

DS_API const char *ds_tokenizer_errmsg(const ds_tokenizer *tok)
{
    (void)tok;
    return ds_last_error();
}

/* ---------------------------------------------------------------------------------------
 * Opening from a path
 * --------------------------------------------------------------------------------------- */

static ds_status open_gguf(const char *path, ds_tokenizer **out, ds_err *err)
{
    ds_mapping map;
    ds_status st = ds_mapping_open(&map, path, DS_LOAD_MMAP, NULL, NULL, NULL, NULL, err);
    if (st != DS_OK)
        return st;
    gguf_file f;
    st = gguf_parse(&f, map.data, map.size, err);
    if (st == DS_OK) {
        st = ds_tokenizer_from_gguf(out, &f, err);
        if (st == DS_ERR_NOT_FOUND)
            st = ds_err_set(err, DS_ERR_FORMAT, "%s: GGUF file has no tokenizer (tokenizer.ggml.model missing)",
                            path);
        gguf_free(&f);
    }
    ds_mapping_close(&map);
    return st;
}

DS_API ds_status ds_tokenizer_open(ds_tokenizer **out, const char *path)
{
    if (out)
        *out = NULL;
    if (!out || !path)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_tokenizer_open: %s is NULL", out ? "path" : "out");
    ds_err err;
    ds_err_clear(&err);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        ds_err_set(&err, DS_ERR_IO, "%s: cannot open tokenizer: no such file or directory", path);
        return ds_err_publish(&err);
    }
    ds_status st;
    if (S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path);
        char *p = malloc(n + sizeof "/tokenizer.json");
        if (!p)
            return ds_err_thread(DS_ERR_NO_MEMORY, "ds_tokenizer_open: out of memory");
        memcpy(p, path, n);
        memcpy(p + n, "/tokenizer.json", sizeof "/tokenizer.json");
        st = tok_load_json(p, out, &err);
        free(p);
    } else {
        /* GGUF by magic, else JSON */
        char magic[4] = { 0 };
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            ds_err_set(&err, DS_ERR_IO, "%s: cannot open", path);
            return ds_err_publish(&err);
        }
        size_t got = fread(magic, 1, 4, fp);
        fclose(fp);
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0)
            st = open_gguf(path, out, &err);
        else
            st = tok_load_json(path, out, &err);
    }
    if (st != DS_OK) {
        *out = NULL;
        return ds_err_publish(&err);
    }
    return DS_OK;
}

DS_API void ds_tokenizer_close(ds_tokenizer *tok)
{
    ds_tokenizer_free(tok);
}
