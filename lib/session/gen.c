/*
 * lib/session/gen.c — the text of a generation.
 *
 * Pipeline per generated token:
 *   token --ds_text_stream--> UTF-8 text (never ends inside a character)
 *         --stop strings----> text that cannot be part of a stop string any more is released;
 *                             a suffix that is a proper prefix of some stop string is held
 *                             (`hold`) until the next token decides; a match releases the text
 *                             before it and ends the generation
 *         --ds_reasoning----> classified segments (reasoning / answer) when splitting is on
 *         --> the queue of the current step (ds_session_text pops it).
 * Adjacent segments of the same kind within one step are merged.
 */
#include "session/session_internal.h"

#include <stdlib.h>
#include <string.h>

static bool grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return false;
    *buf = b;
    *cap = c;
    return true;
}

ds_status ds_gen_init(ds_session *s, ds_err *err)
{
    if (!s->tok)
        return DS_OK;
    uint32_t f = s->params.render_special ? DS_TEXT_STREAM_RENDER_SPECIAL : 0;
    if (ds_text_stream_open(&s->ts, s->tok, f) != DS_OK ||
        ds_reasoning_open(&s->rs_plain, 0) != DS_OK ||
        ds_reasoning_open(&s->rs_inside, DS_REASONING_START_INSIDE) != DS_OK)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "ds_session_open: cannot create the text decoder");
    s->hold_cap = 1024;
    s->piece_cap = 1024;
    s->qcap = 1024;
    s->cap_segs = 8;
    s->hold = malloc(s->hold_cap);
    s->piece = malloc(s->piece_cap);
    s->qbuf = malloc(s->qcap);
    s->segs = malloc(s->cap_segs * sizeof *s->segs);
    if (!s->hold || !s->piece || !s->qbuf || !s->segs)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "ds_session_open: out of memory");
    return DS_OK;
}

void ds_gen_free(ds_session *s)
{
    ds_text_stream_close(s->ts);
    ds_reasoning_close(s->rs_plain);
    ds_reasoning_close(s->rs_inside);
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    free(s->hold);
    free(s->piece);
    free(s->qbuf);
    free(s->segs);
}

uint64_t ds_gen_bytes(const ds_session *s)
{
    uint64_t b = s->hold_cap + s->piece_cap + s->qcap + s->cap_segs * sizeof *s->segs;
    for (size_t i = 0; i < s->n_stops; i++)
        b += s->stop_len[i] + 1;
    return b;
}

void ds_gen_clear_queue(ds_session *s)
{
    s->qlen = 0;
    s->n_segs = 0;
    s->next_seg = 0;
}

/* Does the text of the tokens before the generation end with "<think>" + whitespace? */
static bool prompt_opens_think(const ds_session *s)
{
    static const char tag[] = "<think>";
    const size_t tl = sizeof tag - 1;
    char buf[512];
    size_t len = 0;
    /* the text of the last few tokens, built from the end */
    for (size_t k = 0; k < 8 && k < s->n_tokens; k++) {
        char piece[256];
        size_t pl = 0;
        int32_t t = s->tokens[s->n_tokens - 1 - k];
        if (ds_token_to_piece(s->tok, t, DS_DETOKENIZE_SPECIAL, piece, sizeof piece, &pl) != DS_OK)
            break; /* an unusually long piece: it is not a think tag */
        if (pl + len > sizeof buf)
            break;
        memmove(buf + pl, buf, len);
        memcpy(buf, piece, pl);
        len += pl;
        size_t e = len;
        while (e > 0 && (buf[e - 1] == ' ' || buf[e - 1] == '\n' || buf[e - 1] == '\t' ||
                         buf[e - 1] == '\r'))
            e--;
        if (e >= tl)
            return memcmp(buf + e - tl, tag, tl) == 0;
    }
    return false;
}

void ds_gen_start(ds_session *s)
{
    s->n_generated = 0;
    s->stop = DS_STOP_NONE;
    s->hold_len = 0;
    ds_gen_clear_queue(s);
    if (!s->tok)
        return;
    ds_text_stream_reset(s->ts);
    s->rs = NULL;
    if (s->reasoning_on) {
        s->rs = prompt_opens_think(s) ? s->rs_inside : s->rs_plain;
        ds_reasoning_reset(s->rs);
    }
}

static void queue_push(ds_session *s, ds_text_kind kind, const char *text, size_t len)
{
    if (len == 0)
        return;
    if (!grow(&s->qbuf, &s->qcap, s->qlen + len))
        return; /* out of memory: the text is lost, the generation goes on */
    memcpy(s->qbuf + s->qlen, text, len);
    if (s->n_segs > s->next_seg && s->segs[s->n_segs - 1].kind == kind &&
        s->segs[s->n_segs - 1].off + s->segs[s->n_segs - 1].len == s->qlen) {
        s->segs[s->n_segs - 1].len += len;
    } else {
        if (s->n_segs == s->cap_segs) {
            ds_text_seg *n = realloc(s->segs, 2 * s->cap_segs * sizeof *n);
            if (!n)
                return;
            s->segs = n;
            s->cap_segs *= 2;
        }
        s->segs[s->n_segs++] = (ds_text_seg){kind, s->qlen, len};
    }
    s->qlen += len;
}

static void drain_reasoning(ds_session *s)
{
    ds_text_kind kind;
    const char *t;
    size_t n;
    while (ds_reasoning_next(s->rs, &kind, &t, &n) == DS_OK)
        queue_push(s, kind, t, n);
}

/* text that is final (no stop string can start in it) */
static void release(ds_session *s, const char *text, size_t len)
{
    if (len == 0)
        return;
    if (!s->rs) {
        queue_push(s, DS_TEXT_ANSWER, text, len);
        return;
    }
    if (ds_reasoning_push(s->rs, text, len) == DS_OK)
        drain_reasoning(s);
}

/* Longest suffix of buf[0..n) that is a proper prefix of some stop string. */
static size_t held_suffix(const ds_session *s, const char *buf, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < s->n_stops; i++) {
        size_t L = s->stop_len[i];
        size_t k = L - 1 < n ? L - 1 : n;
        for (; k > best; k--)
            if (memcmp(buf + n - k, s->stops[i], k) == 0)
                break;
        if (k > best)
            best = k;
    }
    return best;
}

/* Feed decoded text through the stop-string matcher. Returns true on a match. */
static bool text_in(ds_session *s, const char *text, size_t len)
{
    if (s->n_stops == 0) { /* (text held for stop strings that were cleared goes first) */
        release(s, s->hold, s->hold_len);
        s->hold_len = 0;
        release(s, text, len);
        return false;
    }
    if (!grow(&s->hold, &s->hold_cap, s->hold_len + len)) {
        release(s, text, len);
        return false;
    }
    memcpy(s->hold + s->hold_len, text, len);
    s->hold_len += len;
    /* the earliest match of any stop string */
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < s->n_stops; i++) {
        const size_t L = s->stop_len[i];
        if (L > s->hold_len)
            continue;
        const char *p = memmem(s->hold, s->hold_len, s->stops[i], L);
        if (p && (size_t)(p - s->hold) < first)
            first = (size_t)(p - s->hold);
    }
    if (first != SIZE_MAX) {
        release(s, s->hold, first);
        s->hold_len = 0;
        return true;
    }
    size_t h = held_suffix(s, s->hold, s->hold_len);
    release(s, s->hold, s->hold_len - h);
    memmove(s->hold, s->hold + s->hold_len - h, h);
    s->hold_len = h;
    return false;
}

bool ds_gen_token(ds_session *s, int32_t token)
{
    if (!s->tok)
        return false;
    size_t need = 0;
    ds_status st = ds_text_stream_push(s->ts, token, s->piece, s->piece_cap, &need);
    if (st == DS_ERR_BUFFER_TOO_SMALL) {
        if (!grow(&s->piece, &s->piece_cap, need + 1))
            return false;
        st = ds_text_stream_push(s->ts, token, s->piece, s->piece_cap, &need);
    }
    if (st != DS_OK)
        return false;
    return text_in(s, s->piece, need);
}

void ds_gen_finish(ds_session *s, ds_stop_reason reason)
{
    s->stop = reason;
    if (!s->tok)
        return;
    bool matched = reason == DS_STOP_STRING;
    if (!matched) {
        size_t n = 0;
        if (ds_text_stream_flush(s->ts, s->piece, s->piece_cap, &n) == DS_OK && n > 0)
            matched = text_in(s, s->piece, n);
        if (!matched)
            release(s, s->hold, s->hold_len);
        s->hold_len = 0;
    } else {
        ds_text_stream_reset(s->ts);
    }
    if (s->rs) {
        ds_reasoning_finish(s->rs);
        drain_reasoning(s);
    }
}
