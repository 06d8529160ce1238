/*
 * lib/tokenizer/reasoning.c — split streamed text into "<think>…</think>" reasoning and answer.
 *
 * Owns: the ds_reasoning state machine (public API in include/deepseek/chat.h).
 *
 * States:
 *   PRE        start of the text: hold back whitespace* + a prefix of "<think>"; a complete
 *              "<think>" enters REASONING (tag and whitespace dropped), anything else enters
 *              the default state (ANSWER, or REASONING with DS_REASONING_START_INSIDE) with
 *              the held bytes still unread.
 *   REASONING  output up to "</think>"; hold back a suffix that is a proper prefix of it.
 *   ANSWER     output everything.
 *
 * Input is copied into one growable buffer; segments handed out point into it and stay valid
 * until the next call (the next call may compact or grow the buffer).
 */
#include "deepseek/chat.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

enum { ST_PRE = 0, ST_REASONING = 1, ST_ANSWER = 2 };

static const char OPEN_TAG[] = "<think>";
static const char CLOSE_TAG[] = "</think>";
#define OPEN_LEN (sizeof OPEN_TAG - 1)
#define CLOSE_LEN (sizeof CLOSE_TAG - 1)

struct ds_reasoning {
    uint32_t flags;
    int state;
    int finished;
    char *buf;      /* unread input is buf[pos, len) */
    size_t len;
    size_t pos;
    size_t cap;
};

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

ds_status ds_reasoning_open(ds_reasoning **out, uint32_t flags)
{
    if (out)
        *out = NULL;
    if (!out)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_reasoning_open: out is NULL");
    if (flags & ~(uint32_t)DS_REASONING_START_INSIDE)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_reasoning_open: unknown flags 0x%x",
                             (unsigned)(flags & ~(uint32_t)DS_REASONING_START_INSIDE));
    ds_reasoning *r = calloc(1, sizeof *r);
    if (!r)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_reasoning_open: out of memory");
    r->flags = flags;
    r->state = ST_PRE;
    *out = r;
    return DS_OK;
}

void ds_reasoning_close(ds_reasoning *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

void ds_reasoning_reset(ds_reasoning *r)
{
    if (!r)
        return;
    r->state = ST_PRE;
    r->finished = 0;
    r->len = 0;
    r->pos = 0;
}

ds_status ds_reasoning_push(ds_reasoning *r, const char *text, size_t len)
{
    if (!r || (!text && len))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_reasoning_push: %s is NULL",
                             r ? "text" : "r");
    if (r->finished)
        return ds_err_thread(DS_ERR_STATE,
                             "ds_reasoning_push: the text was finished; call ds_reasoning_reset first");
    if (len == 0)
        return DS_OK;
    /* compact: drop what was already handed out */
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (len > SIZE_MAX - r->len)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_reasoning_push: text too long");
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 64;
        while (cap < r->len + len)
            cap = cap > SIZE_MAX / 2 ? r->len + len : cap * 2;
        char *nb = realloc(r->buf, cap);
        if (!nb)
            return ds_err_thread(DS_ERR_NO_MEMORY, "ds_reasoning_push: out of memory (%zu bytes)",
                                 cap);
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, text, len);
    r->len += len;
    return DS_OK;
}

ds_status ds_reasoning_finish(ds_reasoning *r)
{
    if (!r)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_reasoning_finish: r is NULL");
    r->finished = 1;
    return DS_OK;
}

ds_text_kind ds_reasoning_kind(const ds_reasoning *r)
{
    if (!r)
        return DS_TEXT_ANSWER;
    if (r->state == ST_REASONING)
        return DS_TEXT_REASONING;
    if (r->state == ST_PRE && (r->flags & DS_REASONING_START_INSIDE))
        return DS_TEXT_REASONING;
    return DS_TEXT_ANSWER;
}

/* Length of the longest suffix of p[0, n) that is a proper, non-empty prefix of tag. */
static size_t partial_tag_suffix(const char *p, size_t n, const char *tag, size_t tag_len)
{
    size_t k = n < tag_len - 1 ? n : tag_len - 1;
    for (; k > 0; k--)
        if (memcmp(p + n - k, tag, k) == 0)
            return k;
    return 0;
}

/* First occurrence of tag in p[0, n), or n. */
static size_t find_tag(const char *p, size_t n, const char *tag, size_t tag_len)
{
    if (n < tag_len)
        return n;
    for (size_t i = 0; i + tag_len <= n; i++) {
        const char *hit = memchr(p + i, tag[0], n - tag_len + 1 - i);
        if (!hit)
            return n;
        i = (size_t)(hit - p);
        if (memcmp(hit, tag, tag_len) == 0)
            return i;
    }
    return n;
}

ds_status ds_reasoning_next(ds_reasoning *r, ds_text_kind *kind, const char **text, size_t *len)
{
    if (text)
        *text = NULL;
    if (len)
        *len = 0;
    if (!r || !kind || !text || !len)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_reasoning_next: NULL argument");

    for (;;) {
        size_t n = r->len - r->pos;
        const char *p = r->buf ? r->buf + r->pos : "";
        switch (r->state) {
        case ST_PRE: {
            size_t i = 0;
            while (i < n && is_space((unsigned char)p[i]))
                i++;
            size_t rest = n - i;
            size_t cmp = rest < OPEN_LEN ? rest : OPEN_LEN;
            if (memcmp(p + i, OPEN_TAG, cmp) == 0) {
                if (rest >= OPEN_LEN) {
                    r->pos += i + OPEN_LEN;
                    r->state = ST_REASONING;
                    continue;
                }
                if (!r->finished)
                    return DS_AGAIN; /* could still become "<think>" */
            }
            r->state = (r->flags & DS_REASONING_START_INSIDE) ? ST_REASONING : ST_ANSWER;
            continue;
        }
        case ST_REASONING: {
            size_t j = find_tag(p, n, CLOSE_TAG, CLOSE_LEN);
            if (j == 0 && n >= CLOSE_LEN) {
                r->pos += CLOSE_LEN;
                r->state = ST_ANSWER;
                continue;
            }
            size_t end = j;
            if (j == n && !r->finished)
                end = n - partial_tag_suffix(p, n, CLOSE_TAG, CLOSE_LEN);
            if (end == 0)
                return r->finished ? DS_DONE : DS_AGAIN;
            *kind = DS_TEXT_REASONING;
            *text = p;
            *len = end;
            r->pos += end;
            return DS_OK;
        }
        default: /* ST_ANSWER */
            if (n == 0)
                return r->finished ? DS_DONE : DS_AGAIN;
            *kind = DS_TEXT_ANSWER;
            *text = p;
            *len = n;
            r->pos += n;
            return DS_OK;
        }
    }
}
