/*
 * lib/tokenizer/chat_internal.h — internals of chat templates (chat.c) and the streaming UTF-8
 * decoder (stream.c), exposed for white-box tests.
 *
 * Owns: the string-level template renderer (no tokenizer needed: BOS/EOS are passed as
 * strings), template-family detection from template text, and the lossy UTF-8 decoding with
 * hold-back of an unfinished tail.
 */
#ifndef DS_TOKENIZER_CHAT_INTERNAL_H
#define DS_TOKENIZER_CHAT_INTERNAL_H

#include "deepseek/chat.h"
#include "util/error.h"

#include <stddef.h>
#include <stdint.h>

/* ---- rendered text with its origin ------------------------------------------------------ */

/* A span of the rendered text and where it came from: 0 = template text (never contains a
 * special-token string), 1 = message content, 2 = one special marker of the template (BOS, EOS,
 * "<｜User｜>", "<｜Assistant｜>", "<think>"), meant to become one token when the vocabulary
 * has it. */
enum { DS_CHAT_SPAN_TEMPLATE = 0, DS_CHAT_SPAN_CONTENT = 1, DS_CHAT_SPAN_SPECIAL = 2 };

typedef struct ds_chat_span {
    size_t off;
    size_t len;
    int origin;
} ds_chat_span;

typedef struct ds_chat_text {
    char *text;         /* NUL-terminated; caller frees with ds_chat_text_free */
    size_t len;
    size_t cap;
    ds_chat_span *spans; /* in order, adjacent spans of the same origin are merged */
    size_t n_spans;
    size_t cap_spans;
} ds_chat_text;

void ds_chat_text_free(ds_chat_text *t);

/* Detect the family from template text (NULL → no template). Fails with DS_ERR_UNSUPPORTED and
 * a message in err. */
ds_status ds_chat_detect_text(const char *tmpl_text, ds_chat_template *out, ds_err *err);

/* Render `msgs` with the given family (not AUTO). bos/eos may be "" but not NULL. On success
 * `out` holds the text (caller frees with ds_chat_text_free, also on failure). */
ds_status ds_chat_render(ds_chat_template tmpl, const char *bos, const char *eos,
                         const ds_chat_message *msgs, size_t n, int add_assistant_prompt,
                         ds_chat_text *out, ds_err *err);

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Decode `n` bytes lossily into `out` (which must hold DS_TEXT_STREAM_MAX_OUTPUT(n) bytes,
 * i.e. 3n+3; 3n is enough here). Invalid bytes become U+FFFD by the maximal-subpart rule.
 * If `hold` is nonzero, an unfinished but so far valid sequence at the very end (at most 3
 * bytes) is not decoded; its length is stored in *held (else *held = 0 and such a tail is one
 * U+FFFD). `out` may be NULL to only measure. Returns the output length. */
size_t ds_utf8_lossy(const uint8_t *in, size_t n, int hold, char *out, size_t *held);

/* A stream without argument checks; tok may be NULL for byte-only use (tests). */
ds_status ds_text_stream_create(ds_text_stream **out, const ds_tokenizer *tok, uint32_t flags);

/* Push raw bytes instead of a token (same semantics as ds_text_stream_push). */
ds_status ds_text_stream_push_bytes(ds_text_stream *s, const void *bytes, size_t n, char *buf,
                                    size_t capacity, size_t *len);

#endif
