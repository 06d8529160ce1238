/*
 * libdeepseek — sessions: one sequence being processed by a model (its KV cache, its tokens,
 * its last logits, its sampler state). The host owns the loop: it feeds tokens, steps, reads
 * logits and text, and rewinds.
 *
 * Thread-safety: a ds_session is used by one thread at a time. Different sessions of the same
 * model may be used from different threads at the same time (they share the model's read-only
 * weights). Conventions: see the top of deepseek/deepseek.h.
 *
 * @code
 *   ds_session_params sp;
 *   ds_session_default_params(&sp, sizeof sp);
 *   ds_session *s;
 *   if (ds_session_open(&s, model, &sp) != DS_OK) { puts(ds_last_error()); return; }
 *   ds_session_feed(s, prompt, n_prompt);           // prefill
 *   int32_t tok;
 *   while (ds_session_step(s, &tok) == DS_OK) {     // sample, append, run one token
 *       ... use tok ...
 *   }
 *   ds_session_close(s);
 * @endcode
 */
#ifndef DEEPSEEK_SESSION_H
#define DEEPSEEK_SESSION_H

#include "deepseek/deepseek.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ds_session ds_session;

/** Open-time settings of a session. Fill with ds_session_default_params(). */
typedef struct ds_session_params {
    uint32_t struct_size;   /**< sizeof(ds_session_params) as the host was compiled */
    uint32_t n_ctx;         /**< context length in tokens; 0 = min(model's training context, 4096) */
    uint32_t n_batch;       /**< tokens per prefill chunk (cancellation granularity); default 256 */
    uint32_t kv_type;       /**< a ds_kv_type; default DS_KV_F32 */
    uint32_t logits_all;    /**< nonzero: keep the logits of every token of the last feed */
    uint32_t reserved0;
    uint64_t seed;          /**< sampler seed; default 0 */
    float temperature;      /**< 0 = greedy (default) */
    int32_t top_k;          /**< 0 = off */
    float top_p;            /**< 1 = off */
    float min_p;            /**< 0 = off */
} ds_session_params;

/** Fill `params` with the defaults (see ds_model_default_params for struct_size). */
DS_API ds_status ds_session_default_params(ds_session_params *params, size_t struct_size);

/**
 * Open a session on a model. The KV cache for n_ctx tokens and all scratch memory are
 * allocated here; nothing is allocated per token afterwards.
 * @param out    receives the handle (caller owns; ds_session_close); NULL on failure.
 * @param model  must stay open until the session is closed.
 * @param params NULL for the defaults; copied.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_UNSUPPORTED (a vocab-only model); DS_ERR_NO_MEMORY.
 * @note thread-safe with respect to other sessions of the same model.
 */
DS_API ds_status ds_session_open(ds_session **out, ds_model *model, const ds_session_params *params);

/** Close a session. Accepts NULL. */
DS_API void ds_session_close(ds_session *session);

/** Detailed message of the last failure on this session. Library owns; valid until the next
 *  call on the session. */
DS_API const char *ds_session_errmsg(const ds_session *session);

/**
 * Append `n` tokens and run them through the model (one prefill, in chunks of n_batch).
 * Afterwards the logits of the last token (or of all n with logits_all) are readable.
 * @param tokens caller owns; copied.
 * @return DS_OK; DS_ERR_INVALID_ARG (a token id outside the vocabulary — nothing is fed);
 *         DS_ERR_CONTEXT_FULL (the n tokens do not fit — nothing is fed); DS_ERR_CANCELLED
 *         (the session keeps the chunks completed before the cancellation); DS_ERR_NO_MEMORY.
 */
DS_API ds_status ds_session_feed(ds_session *session, const int32_t *tokens, size_t n);

/**
 * Logits of a token of the last feed or step.
 * @param index -1 for the last token; with logits_all, 0 .. n-1 of the last feed.
 * @param logits receives a pointer to n_vocab floats; library owns, valid until the next
 *        feed/step/rewind/reset/close on this session.
 * @param n_vocab if not NULL, receives the vocabulary size.
 * @return DS_OK; DS_ERR_STATE (nothing fed yet); DS_ERR_INVALID_ARG (index out of range).
 */
DS_API ds_status ds_session_logits(ds_session *session, int64_t index, const float **logits,
                                   size_t *n_vocab);

/**
 * Sample the next token from the last logits (greedy, or temperature / top-k / top-p / min-p
 * with the session's seeded RNG), append it and run it through the model.
 * @param token receives the sampled token.
 * @return DS_OK; DS_ERR_STATE (nothing fed yet); DS_ERR_CONTEXT_FULL (no room: the token is
 *         not sampled); DS_ERR_CANCELLED.
 */
DS_API ds_status ds_session_step(ds_session *session, int32_t *token);

/** Tokens in the session (its position). */
DS_API size_t ds_session_n_tokens(const ds_session *session);

/**
 * The tokens in the session. @param tokens receives a library-owned pointer valid until the
 * next call that changes the session. @return DS_OK or DS_ERR_INVALID_ARG.
 */
DS_API ds_status ds_session_tokens(const ds_session *session, const int32_t **tokens, size_t *n);

/**
 * Drop the last `n` tokens (the cache is truncated, not rebuilt). The logits are invalid until
 * the next feed. @return DS_OK; DS_ERR_INVALID_ARG if n exceeds the token count.
 */
DS_API ds_status ds_session_rewind(ds_session *session, size_t n);

/** Drop every token. @return DS_OK or DS_ERR_INVALID_ARG. */
DS_API ds_status ds_session_reset(ds_session *session);

/** Bytes of memory the session allocated (KV cache, scratch, logits). */
DS_API uint64_t ds_session_memory(const ds_session *session);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_SESSION_H */
