/*
 * libdeepseek — chat templates, streaming text decoding and reasoning splitting.
 *
 * Three independent helpers that sit between a host and the token stream of a session:
 *
 *   1. Chat templates (ds_chat_*): render a conversation into the exact prompt text (or token
 *      ids) the DeepSeek chat models were trained on. There is no general Jinja engine: the
 *      library knows the few DeepSeek template families and recognizes them from the
 *      `tokenizer.chat_template` text stored with the model. Unknown templates are refused
 *      (DS_ERR_UNSUPPORTED), never guessed.
 *
 *   2. Streaming decoder (ds_text_stream_*): turns generated token ids, one at a time, into
 *      UTF-8 text that never ends inside a character, even when a character's bytes are split
 *      over several tokens.
 *
 *   3. Reasoning splitter (ds_reasoning_*): separates the `<think>…</think>` reasoning of R1-style
 *      models from the answer in a stream of text, even when a tag is split across pieces.
 *
 * Typical generation loop (error handling shortened):
 *
 * @code
 *   ds_chat_message msgs[] = { {"system", "Be brief."}, {"user", "Why is the sky blue?"} };
 *   size_t n = 0;
 *   ds_chat_format_tokens(tok, DS_CHAT_TEMPLATE_AUTO, msgs, 2, 1, 0, NULL, 0, &n); // size query
 *   int32_t *ids = malloc(n * sizeof *ids);
 *   ds_chat_format_tokens(tok, DS_CHAT_TEMPLATE_AUTO, msgs, 2, 1, 0, ids, n, &n);
 *   // ... feed ids to the model ...
 *
 *   ds_chat_template t;  ds_chat_detect(tok, &t);
 *   ds_text_stream *ts;  ds_text_stream_open(&ts, tok, 0);
 *   ds_reasoning *rs;    ds_reasoning_open(&rs, t == DS_CHAT_TEMPLATE_DEEPSEEK_R1
 *                                                ? DS_REASONING_START_INSIDE : 0);
 *   char text[1024];  size_t len;
 *   ds_text_kind kind;  const char *seg;  size_t seg_len;
 *   for (;;) {
 *       int32_t id = next_token();                         // from the sampler
 *       if (ds_tokenizer_is_eog(tok, id)) break;
 *       ds_text_stream_push(ts, id, text, sizeof text, &len);
 *       ds_reasoning_push(rs, text, len);
 *       while (ds_reasoning_next(rs, &kind, &seg, &seg_len) == DS_OK)
 *           show(kind, seg, seg_len);
 *   }
 *   ds_text_stream_flush(ts, text, sizeof text, &len);
 *   ds_reasoning_push(rs, text, len);
 *   ds_reasoning_finish(rs);
 *   while (ds_reasoning_next(rs, &kind, &seg, &seg_len) == DS_OK) show(kind, seg, seg_len);
 *   ds_reasoning_close(rs); ds_text_stream_close(ts);
 * @endcode
 *
 * Conventions (ownership words, status codes, error messages, threads) are those at the top of
 * deepseek/deepseek.h. Functions that take a `const ds_tokenizer *` only read it, so any number
 * of threads may format prompts with one tokenizer at the same time (the tokenizer's own rules
 * apply). On failure the detailed message is in ds_last_error(). A ds_text_stream or ds_reasoning handle must not be
 * used from two threads at the same time; different handles are independent.
 *
 * The header compiles alone as C99 and as C++ (C++11 or later).
 */
#ifndef DEEPSEEK_CHAT_H
#define DEEPSEEK_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/deepseek.h"
#include "deepseek/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================================
 * Chat templates
 * ======================================================================================== */

/**
 * The chat template families libdeepseek can render. Values are ABI.
 *
 * DEEPSEEK2 — DeepSeek-LLM chat, DeepSeekMoE chat, DeepSeek-V2(-Lite)-Chat (llama.cpp: "deepseek2"):
 * @code
 *   <BOS>{system}\n\nUser: {u1}\n\nAssistant: {a1}<EOS>User: {u2}\n\nAssistant:
 * @endcode
 *   System messages render in place as content + "\n\n"; generation prompt "Assistant:" (no
 *   trailing space).
 *
 * DEEPSEEK3 — DeepSeek-V3, V3-0324 (llama.cpp: "deepseek3", but rendered as the official
 * template, which has no "\n\n" after the system prompt):
 * @code
 *   <BOS>{system}<｜User｜>{u1}<｜Assistant｜>{a1}<EOS><｜User｜>{u2}<｜Assistant｜>
 * @endcode
 *   All system messages are joined with "\n\n" and placed right after BOS.
 *
 * DEEPSEEK_R1 — DeepSeek-R1, R1-0528 and the R1-Distill-Qwen/Llama models: as DEEPSEEK3, but the
 *   generation prompt is "<｜Assistant｜><think>\n" (thinking forced on) and past assistant turns
 *   lose everything up to and including their last "</think>" (their reasoning), exactly as
 *   the official template's `content.split('</think>')[-1]`.
 *
 * Tool calls (roles "tool", assistant tool_calls) are not supported.
 */
typedef enum ds_chat_template {
    DS_CHAT_TEMPLATE_AUTO = 0,        /**< detect from the model's template (ds_chat_detect) */
    DS_CHAT_TEMPLATE_DEEPSEEK2 = 1,   /**< DeepSeek-LLM / MoE / V2 "User: … Assistant:" */
    DS_CHAT_TEMPLATE_DEEPSEEK3 = 2,   /**< V3 "<｜User｜>…<｜Assistant｜>" */
    DS_CHAT_TEMPLATE_DEEPSEEK_R1 = 3  /**< R1 and its distills: V3 form + forced "<think>\n" */
} ds_chat_template;

/** One message of a conversation. Both strings are NUL-terminated UTF-8 and are only read
 *  during the call that receives them (copied). */
typedef struct ds_chat_message {
    const char *role;     /**< "system", "user" or "assistant" */
    const char *content;  /**< the message text; for R1 assistant turns it may include reasoning */
} ds_chat_message;

/**
 * Short lowercase name of a template ("deepseek2", "deepseek3", "deepseek-r1", "auto").
 * @return library owns; static text. NULL for an unknown value.
 * @note thread-safe.
 */
DS_API const char *ds_chat_template_name(ds_chat_template tmpl);

/**
 * Recognize the template family of a model from its template text
 * (ds_tokenizer_chat_template(), i.e. the GGUF `tokenizer.chat_template` key or the
 * `chat_template` of tokenizer_config.json). Recognition looks for robust signatures, insensitive
 * to whitespace and quote style:
 *   - `'Assistant: ' + message['content'] + eos_token` → DS_CHAT_TEMPLATE_DEEPSEEK2;
 *   - `<｜User｜>` and `<｜Assistant｜>` with a `<think>` / `</think>` tag → DS_CHAT_TEMPLATE_DEEPSEEK_R1;
 *   - `<｜User｜>` and `<｜Assistant｜>` otherwise → DS_CHAT_TEMPLATE_DEEPSEEK3.
 * The V3.1 hybrid-thinking template (`<｜Assistant｜></think>`) and the DeepSeek-Coder v1 instruct
 * template ("### Instruction:") are recognized and refused.
 * @param tok  the tokenizer; only read.
 * @param out  receives the family; left unchanged on failure.
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL argument); DS_ERR_UNSUPPORTED (the model has no
 *         template, or it is not one of the families above; the message says which and asks for
 *         an explicit ds_chat_template). Never a silent guess.
 * @note thread-safe for concurrent use of one tokenizer.
 */
DS_API ds_status ds_chat_detect(const ds_tokenizer *tok, ds_chat_template *out);

/**
 * Render a conversation as prompt text, reproducing the official template exactly (see
 * ds_chat_template). The text starts with the tokenizer's BOS string (its BOS id rendered as
 * text, not a hard-coded id; nothing if the tokenizer has no BOS). Assistant turns end with the
 * tokenizer's EOS string for DEEPSEEK2 (the template's `eos_token`) and with the literal
 * "<｜end▁of▁sentence｜>" for DEEPSEEK3 / DEEPSEEK_R1 (the official template writes it literally).
 * @param tok       the tokenizer; only read.
 * @param tmpl      the template; DS_CHAT_TEMPLATE_AUTO runs ds_chat_detect().
 * @param msgs      `n` messages, copied; may be NULL when n is 0. Roles other than "system",
 *                  "user", "assistant" and NULL strings are refused (DS_ERR_INVALID_ARG,
 *                  naming the message index).
 * @param add_assistant_prompt nonzero: end with the generation prompt ("Assistant:",
 *                  "<｜Assistant｜>" or "<｜Assistant｜><think>\n").
 * @param buf       caller owns; receives the UTF-8 text followed by a NUL. May be NULL when
 *                  capacity is 0 (size query).
 * @param capacity  bytes available at buf; the call needs capacity >= *len + 1.
 * @param len       receives the text length in bytes, not counting the NUL, on DS_OK and on
 *                  DS_ERR_BUFFER_TOO_SMALL (then buf holds "" if capacity > 0).
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL; DS_ERR_INVALID_ARG; DS_ERR_UNSUPPORTED (AUTO and
 *         detection failed, or an unknown template value); DS_ERR_NO_MEMORY.
 * @note thread-safe for concurrent use of one tokenizer.
 */
DS_API ds_status ds_chat_format(const ds_tokenizer *tok, ds_chat_template tmpl,
                                const ds_chat_message *msgs, size_t n, int add_assistant_prompt,
                                char *buf, size_t capacity, size_t *len);

/** Flags of ds_chat_format_tokens(). */
enum {
    /** Treat message contents as plain text: special-token strings inside a message (e.g. a
     *  user typing "<｜end▁of▁sentence｜>") become ordinary text tokens instead of control
     *  tokens. Without this flag the whole rendered text is tokenized with special-token
     *  matching everywhere, which is what the reference implementations (HF
     *  apply_chat_template, llama.cpp) do. The special tokens of the template itself are
     *  matched either way. USER_DEFINED tokens (e.g. "<think>" in R1 vocabularies) are
     *  recognized by the tokenizer in any text, so they stay single tokens in both modes. */
    DS_CHAT_LITERAL_CONTENT = 1u << 0
};

/**
 * Render a conversation (as ds_chat_format) and tokenize it, with special-token matching and
 * without adding another BOS (the template emits it).
 * @param flags     0 or DS_CHAT_LITERAL_CONTENT.
 * @param tokens    caller owns; receives the ids. May be NULL when capacity is 0 (size query).
 * @param capacity  number of ids tokens can hold.
 * @param n_tokens  receives the number of ids on DS_OK and on DS_ERR_BUFFER_TOO_SMALL.
 * @return as ds_chat_format, plus DS_ERR_UNSUPPORTED when the vocabulary lacks a special token
 *         that the template needs as a single token (e.g. <｜User｜> for DEEPSEEK3 on a
 *         DeepSeek-LLM vocabulary), and the tokenizer's own errors.
 * @note thread-safe for concurrent use of one tokenizer.
 */
DS_API ds_status ds_chat_format_tokens(const ds_tokenizer *tok, ds_chat_template tmpl,
                                       const ds_chat_message *msgs, size_t n,
                                       int add_assistant_prompt, uint32_t flags,
                                       int32_t *tokens, size_t capacity, size_t *n_tokens);

/* ========================================================================================
 * Streaming decoder: token ids → complete UTF-8
 * ======================================================================================== */

/** Incremental detokenizer. Holds at most 3 bytes of an unfinished character between calls.
 *  Thread-safety: one handle must not be used by two threads at once. The tokenizer it was
 *  opened with must stay open until the stream is closed. */
typedef struct ds_text_stream ds_text_stream;

/** Flags of ds_text_stream_open(). */
enum {
    /** Render special (control) tokens as their text (e.g. "<｜end▁of▁sentence｜>"); without
     *  it they produce no text, as in a decode with skip_special_tokens. */
    DS_TEXT_STREAM_RENDER_SPECIAL = 1u << 0
};

/** Output bytes one ds_text_stream_push can produce for a token whose raw bytes are
 *  `piece_len` long: every byte may become U+FFFD (3 bytes), plus one U+FFFD for a held-back
 *  tail that the piece proves invalid. 4 * piece_len + 3 is therefore always enough. */
#define DS_TEXT_STREAM_MAX_OUTPUT(piece_len) (3u * (size_t)(piece_len) + 3u)

/**
 * Open a streaming decoder.
 * @param out   receives the handle (caller owns; close with ds_text_stream_close); NULL on failure.
 * @param tok   the tokenizer; only read; must outlive the stream.
 * @param flags 0 or DS_TEXT_STREAM_RENDER_SPECIAL; other bits are refused.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY.
 * @note thread-safe.
 */
DS_API ds_status ds_text_stream_open(ds_text_stream **out, const ds_tokenizer *tok, uint32_t flags);

/** Close a stream. Accepts NULL. */
DS_API void ds_text_stream_close(ds_text_stream *stream);

/** Forget any held-back bytes (start a new text). Accepts NULL. */
DS_API void ds_text_stream_reset(ds_text_stream *stream);

/**
 * Decode one more token. The token's raw bytes (ds_token_to_piece) are appended to the held-back
 * tail, and the longest prefix that does not end inside a possibly valid, unfinished UTF-8
 * character is written to buf; the unfinished tail (at most 3 bytes) is held back for the next
 * call.
 *
 * Invalid bytes are replaced by U+FFFD (EF BF BD) following the Unicode / WHATWG "maximal
 * subpart" practice (as Python's errors="replace" and Rust's from_utf8_lossy): one U+FFFD for
 * each maximal prefix of a would-be sequence that cannot be completed — a stray continuation
 * byte, a byte C0, C1 or F5–FF, or a well-started sequence cut short by a byte that cannot
 * continue it (decoding resumes at that byte). Surrogates (ED A0–BF) and overlong forms
 * (E0 80–9F, F0 80–8F) are invalid at their second byte. A held-back tail that the next piece
 * proves invalid is replaced the same way. Hence the concatenation of all output of a stream
 * (including ds_text_stream_flush) equals a one-shot lossy decode of the concatenated bytes.
 *
 * @param token     a token id of the tokenizer.
 * @param buf       caller owns; receives the text (not NUL-terminated; a NUL is added after it
 *                  when capacity > *len, as a convenience). May be NULL when capacity is 0.
 * @param capacity  bytes at buf. DS_TEXT_STREAM_MAX_OUTPUT(piece length) (≤ 4 * piece length
 *                  + 3) is always enough; a token with no bytes (a control token without
 *                  DS_TEXT_STREAM_RENDER_SPECIAL) produces nothing.
 * @param len       receives the bytes written; on DS_ERR_BUFFER_TOO_SMALL the bytes needed.
 * @return DS_OK (possibly with *len == 0 while a character is unfinished);
 *         DS_ERR_BUFFER_TOO_SMALL (nothing consumed: the stream is unchanged, retry with a
 *         larger buffer); DS_ERR_INVALID_ARG (NULL argument, or a token id out of range);
 *         DS_ERR_NO_MEMORY; the tokenizer's own errors.
 */
DS_API ds_status ds_text_stream_push(ds_text_stream *stream, int32_t token, char *buf,
                                     size_t capacity, size_t *len);

/**
 * End the text: a held-back unfinished character becomes one U+FFFD. The stream is then empty
 * (as after ds_text_stream_reset) and may be reused.
 * @param buf       as ds_text_stream_push.
 * @param capacity  as ds_text_stream_push; 3 bytes are always enough.
 * @param len       as ds_text_stream_push.
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL (stream unchanged); DS_ERR_INVALID_ARG.
 */
DS_API ds_status ds_text_stream_flush(ds_text_stream *stream, char *buf, size_t capacity,
                                      size_t *len);

/* ========================================================================================
 * Reasoning splitter: "<think>…</think>" vs answer
 * ======================================================================================== */

/** What a piece of generated text is. Values are ABI. */
typedef enum ds_text_kind {
    DS_TEXT_ANSWER = 0,     /**< the visible answer */
    DS_TEXT_REASONING = 1   /**< reasoning, between <think> and </think> */
} ds_text_kind;

/** Flags of ds_reasoning_open(). */
enum {
    /** The text starts inside reasoning: the prompt already ended with "<think>\n" (the
     *  DEEPSEEK_R1 generation prompt), so the model's output begins with reasoning and only a
     *  "</think>" is expected. */
    DS_REASONING_START_INSIDE = 1u << 0
};

/**
 * Splits streamed text into reasoning and answer.
 *
 * Rules (the R1 conventions, as llama.cpp and vLLM parse them):
 *   - At the start of the text, a "<think>" tag, optionally preceded by whitespace, opens the
 *     reasoning; the tag and that whitespace are not output. With DS_REASONING_START_INSIDE the
 *     text is reasoning from its first byte (a leading "<think>" is still swallowed, in case
 *     the model repeats the one from the prompt).
 *   - The first "</think>" after that ends the reasoning; the tag is not output. Everything
 *     after it is answer, including the "\n\n" that R1 writes after the tag.
 *   - Anywhere else the tags are ordinary text (one reasoning block per text).
 *   - A tag may be split across pushes at any byte: text that could still become a tag is
 *     held back (at most 7 bytes, or leading whitespace at the very start) until the next push
 *     or ds_reasoning_finish() decides.
 *   - Text that never closes its reasoning is all reasoning.
 * Segments are never empty and never split a UTF-8 character that was whole in the input (the
 * tags are ASCII). The output is the input minus the two tags (and whitespace before "<think>").
 *
 * Use: ds_reasoning_push() the text (any split); then call ds_reasoning_next() until it stops
 * returning DS_OK; at the end call ds_reasoning_finish() and drain with ds_reasoning_next()
 * until it returns DS_DONE.
 *
 * Thread-safety: one handle must not be used by two threads at once.
 */
typedef struct ds_reasoning ds_reasoning;

/**
 * Open a splitter.
 * @param out   receives the handle (caller owns; close with ds_reasoning_close); NULL on failure.
 * @param flags 0 or DS_REASONING_START_INSIDE; other bits are refused.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY.
 * @note thread-safe.
 */
DS_API ds_status ds_reasoning_open(ds_reasoning **out, uint32_t flags);

/** Close a splitter. Accepts NULL. */
DS_API void ds_reasoning_close(ds_reasoning *r);

/** Start a new text with the flags given at open (drops held-back and unread text). Accepts NULL. */
DS_API void ds_reasoning_reset(ds_reasoning *r);

/**
 * Append text.
 * @param text `len` bytes, copied; may be NULL when len is 0.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_STATE (after ds_reasoning_finish, before reset);
 *         DS_ERR_NO_MEMORY.
 */
DS_API ds_status ds_reasoning_push(ds_reasoning *r, const char *text, size_t len);

/**
 * Mark the end of the text: held-back bytes that did not become a tag are released as text of
 * the current kind. Call ds_reasoning_next() afterwards to drain.
 * @return DS_OK; DS_ERR_INVALID_ARG.
 */
DS_API ds_status ds_reasoning_finish(ds_reasoning *r);

/**
 * Take the next classified segment.
 * @param kind receives the segment's ds_text_kind.
 * @param text receives a pointer to the segment's bytes (not NUL-terminated); library owns,
 *             valid until the next call on this handle.
 * @param len  receives the segment's length (> 0).
 * @return DS_OK (a segment); DS_AGAIN (nothing more until more text is pushed);
 *         DS_DONE (after ds_reasoning_finish, everything has been returned);
 *         DS_ERR_INVALID_ARG. On DS_AGAIN/DS_DONE, *text is NULL and *len is 0.
 */
DS_API ds_status ds_reasoning_next(ds_reasoning *r, ds_text_kind *kind, const char **text,
                                   size_t *len);

/** Kind of the text that is currently being received: DS_TEXT_REASONING between the opening and
 *  closing tag (or from the start with DS_REASONING_START_INSIDE), DS_TEXT_ANSWER otherwise.
 *  NULL gives DS_TEXT_ANSWER. */
DS_API ds_text_kind ds_reasoning_kind(const ds_reasoning *r);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_CHAT_H */
