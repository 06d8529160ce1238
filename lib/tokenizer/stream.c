/*
 * lib/tokenizer/stream.c — streaming detokenizer: token ids → complete UTF-8 text.
 *
 * Owns: ds_text_stream (public API in include/deepseek/chat.h) and the lossy UTF-8 decoder
 * with hold-back (ds_utf8_lossy, chat_internal.h). Algorithm: formats.md §6.2. Each push
 * appends the token's raw bytes to the 0–3 held-back bytes, decodes the longest prefix that
 * does not end inside a possibly valid unfinished character, and keeps that tail. Invalid
 * bytes become U+FFFD per the "maximal subpart" practice, so the concatenated output equals a
 * one-shot lossy decode of all bytes.
 */
#include "deepseek/chat.h"
#include "tokenizer/chat_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* ---- lossy UTF-8 ------------------------------------------------------------------------ */

/* For a lead byte: total sequence length (0 = never valid as a lead), and the allowed range of
 * the second byte (the others are always 80–BF). */
static int utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b == 0xE0) {
        *lo = 0xA0; /* no overlongs */
        return 3;
    }
    if (b == 0xED) {
        *hi = 0x9F; /* no surrogates */
        return 3;
    }
    if (b >= 0xE1 && b <= 0xEF)
        return 3;
    if (b == 0xF0) {
        *lo = 0x90; /* no overlongs */
        return 4;
    }
    if (b >= 0xF1 && b <= 0xF3)
        return 4;
    if (b == 0xF4) {
        *hi = 0x8F; /* not above U+10FFFF */
        return 4;
    }
    return 0; /* 80–C1 (continuation or overlong lead), F5–FF */
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

size_t ds_utf8_lossy(const uint8_t *in, size_t n, int hold, char *out, size_t *held)
{
    size_t i = 0, o = 0;
    *held = 0;
    while (i < n) {
        uint8_t b = in[i];
        if (b < 0x80) { /* fast path for ASCII */
            if (out)
                out[o] = (char)b;
            o++;
            i++;
            continue;
        }
        uint8_t lo, hi;
        int need = utf8_lead(b, &lo, &hi);
        if (need == 0) {
            if (out)
                memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            i++;
            continue;
        }
        size_t k = 1;
        while (k < (size_t)need && i + k < n) {
            uint8_t c = in[i + k];
            uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (c < l || c > h)
                break;
            k++;
        }
        if (k == (size_t)need) { /* complete, valid */
            if (out)
                memcpy(out + o, in + i, k);
            o += k;
            i += k;
            continue;
        }
        if (i + k == n && hold) { /* valid so far, cut by the end of the input */
            *held = k;
            break;
        }
        /* maximal subpart: k bytes that cannot be completed → one U+FFFD */
        if (out)
            memcpy(out + o, REPLACEMENT, 3);
        o += 3;
        i += k;
    }
    return o;
}

/* ---- ds_text_stream --------------------------------------------------------------------- */

struct ds_text_stream {
    const ds_tokenizer *tok;
    uint32_t flags;
    uint8_t *scratch;  /* held-back bytes (n_held) followed by the current piece */
    size_t cap;
    size_t n_held;
};

ds_status ds_text_stream_create(ds_text_stream **out, const ds_tokenizer *tok, uint32_t flags)
{
    *out = NULL;
    ds_text_stream *s = calloc(1, sizeof *s);
    if (!s)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_text_stream_open: out of memory");
    s->cap = 256;
    s->scratch = malloc(s->cap);
    if (!s->scratch) {
        free(s);
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_text_stream_open: out of memory");
    }
    s->tok = tok;
    s->flags = flags;
    *out = s;
    return DS_OK;
}

ds_status ds_text_stream_open(ds_text_stream **out, const ds_tokenizer *tok, uint32_t flags)
{
    if (out)
        *out = NULL;
    if (!out || !tok)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_text_stream_open: %s is NULL",
                             out ? "tok" : "out");
    if (flags & ~(uint32_t)DS_TEXT_STREAM_RENDER_SPECIAL)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_text_stream_open: unknown flags 0x%x",
                             (unsigned)(flags & ~(uint32_t)DS_TEXT_STREAM_RENDER_SPECIAL));
    return ds_text_stream_create(out, tok, flags);
}

void ds_text_stream_close(ds_text_stream *s)
{
    if (!s)
        return;
    free(s->scratch);
    free(s);
}

void ds_text_stream_reset(ds_text_stream *s)
{
    if (s)
        s->n_held = 0;
}

/* Put the raw bytes of `token` after the held-back bytes in s->scratch; *piece_len gets their
 * count. Grows the scratch buffer when needed (rare: only for unusually long pieces). */
static ds_status fetch_piece(ds_text_stream *s, int32_t token, size_t *piece_len)
{
    uint32_t pflags = (s->flags & DS_TEXT_STREAM_RENDER_SPECIAL) ? DS_DETOKENIZE_SPECIAL : 0;
    for (;;) {
        size_t room = s->cap - s->n_held, need = 0;
        ds_status st = ds_token_to_piece(s->tok, token, pflags, (char *)s->scratch + s->n_held,
                                         room, &need);
        if (st == DS_OK) {
            *piece_len = need;
            return DS_OK;
        }
        if (st != DS_ERR_BUFFER_TOO_SMALL)
            return st; /* the tokenizer set the thread's message */
        if (need <= room) /* defensive: a tokenizer that reports no larger size */
            return ds_err_thread(DS_ERR_INTERNAL,
                                 "ds_text_stream_push: token %d: piece size %zu not reported",
                                 (int)token, need);
        size_t cap = s->n_held + need + 64;
        uint8_t *nb = realloc(s->scratch, cap);
        if (!nb)
            return ds_err_thread(DS_ERR_NO_MEMORY, "ds_text_stream_push: out of memory (%zu bytes)",
                                 cap);
        s->scratch = nb;
        s->cap = cap;
    }
}

/* Decode the held bytes plus the piece_len bytes after them in s->scratch. */
static ds_status decode_scratch(ds_text_stream *s, size_t piece_len, char *buf, size_t capacity,
                                size_t *len)
{
    size_t total = s->n_held + piece_len, held = 0;
    size_t need = ds_utf8_lossy(s->scratch, total, 1, NULL, &held);
    *len = need;
    if (need > capacity) {
        if (capacity)
            buf[0] = '\0';
        return ds_err_thread(DS_ERR_BUFFER_TOO_SMALL,
                             "ds_text_stream_push: needs %zu bytes, capacity is %zu", need,
                             capacity);
    }
    ds_utf8_lossy(s->scratch, total, 1, buf, &held);
    if (capacity > need)
        buf[need] = '\0';
    memmove(s->scratch, s->scratch + total - held, held);
    s->n_held = held;
    return DS_OK;
}

ds_status ds_text_stream_push(ds_text_stream *s, int32_t token, char *buf, size_t capacity,
                              size_t *len)
{
    if (len)
        *len = 0;
    if (!s || !len || (!buf && capacity) || !s->tok)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_text_stream_push: NULL argument");
    size_t piece_len = 0;
    ds_status st = fetch_piece(s, token, &piece_len);
    if (st != DS_OK)
        return st;
    return decode_scratch(s, piece_len, buf, capacity, len);
}

ds_status ds_text_stream_push_bytes(ds_text_stream *s, const void *bytes, size_t n, char *buf,
                                    size_t capacity, size_t *len)
{
    *len = 0;
    if (s->n_held + n > s->cap) {
        size_t cap = s->n_held + n + 64;
        uint8_t *nb = realloc(s->scratch, cap);
        if (!nb)
            return ds_err_thread(DS_ERR_NO_MEMORY, "ds_text_stream_push: out of memory");
        s->scratch = nb;
        s->cap = cap;
    }
    if (n)
        memcpy(s->scratch + s->n_held, bytes, n);
    return decode_scratch(s, n, buf, capacity, len);
}

ds_status ds_text_stream_flush(ds_text_stream *s, char *buf, size_t capacity, size_t *len)
{
    if (len)
        *len = 0;
    if (!s || !len || (!buf && capacity))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_text_stream_flush: NULL argument");
    size_t held = 0;
    size_t need = ds_utf8_lossy(s->scratch, s->n_held, 0, NULL, &held);
    *len = need;
    if (need > capacity) {
        if (capacity)
            buf[0] = '\0';
        return ds_err_thread(DS_ERR_BUFFER_TOO_SMALL,
                             "ds_text_stream_flush: needs %zu bytes, capacity is %zu", need,
                             capacity);
    }
    ds_utf8_lossy(s->scratch, s->n_held, 0, buf, &held);
    if (capacity > need)
        buf[need] = '\0';
    s->n_held = 0;
    return DS_OK;
}
