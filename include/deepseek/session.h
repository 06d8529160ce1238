/*
 * libdeepseek — sessions: one sequence being processed by a model (its latent KV cache, its
 * tokens, its last logits, its sampler and its text decoder). The host owns the loop: it feeds
 * tokens or text, steps (sample + append + run one token), reads logits and text, rewinds,
 * saves and restores. Conventions (handles, ds_status, ownership words, struct_size params):
 * see the top of deepseek/deepseek.h.
 *
 * ------------------------------------------------------------------------------------------
 * Threads — exactly what is and is not safe
 * ------------------------------------------------------------------------------------------
 *   - A ds_session is used by one thread at a time: no two calls on the same session may
 *     overlap, with one exception: ds_session_cancel() may be called from any thread at any
 *     time, also while another thread is inside a call on that session.
 *   - Different sessions are independent. Any number of sessions of the same model may run
 *     concurrently on different threads: they share the model's weights (read-only) and, unless
 *     the session has its own n_threads, the model's matmul context (internally synchronized).
 *     Results do not depend on what other sessions do at the same time.
 *   - ds_session_step_batch() uses every session of its array: none of them may be used by
 *     another thread during the call.
 *   - The model must stay open until all of its sessions are closed. ds_session_open(),
 *     ds_session_memory_needed() and ds_model_memory() may be called concurrently with
 *     anything else on the model.
 *   - Callbacks (abort_fn, progress_fn) run on the thread that made the call, between layers
 *     and between prefill chunks (never inside the compute kernels' worker threads).
 *
 * ------------------------------------------------------------------------------------------
 * Sampling — the documented order
 * ------------------------------------------------------------------------------------------
 * ds_session_step() turns the last logits into a token in this order (every step is skipped
 * when its setting is "off"):
 *   1. copy the model's logits (ds_session_logits() always shows them unchanged);
 *   2. logit bias: add the bias of each token set with ds_session_set_logit_bias()
 *      (-INFINITY bans a token);
 *   3. penalties over the window W = the last `penalty_last_n` tokens of the session (prompt
 *      and generated tokens alike; -1 = every token in the session). For each distinct token
 *      with c occurrences in W, its logit l becomes
 *        repetition:            l = l > 0 ? l / repeat_penalty : l * repeat_penalty
 *        frequency, presence:   l = l - c * frequency_penalty - presence_penalty;
 *   4. temperature <= 0 (or top_k == 1): greedy — the largest logit, lowest id on ties. Done;
 *      the RNG is not used;
 *   5. top-k: keep the k largest logits (ties: lower id first);
 *   6. softmax at the temperature, computed in double precision: p_i ∝ exp((l_i - l_max) / T);
 *   7. top-p: keep the smallest prefix (by descending probability) whose cumulative probability
 *      reaches top_p;
 *   8. min-p: drop tokens with p < min_p * p_max;
 *   9. draw one token with u = a uniform double in [0, 1) (53 bits) times the remaining mass.
 * Reproducibility. The RNG is xoshiro256** seeded with splitmix64(seed); each non-greedy step
 * consumes exactly one draw. A sampled run therefore depends only on the seed, the settings
 * and the logits: two sessions with the same seed and the same prompt give the same tokens, on
 * any machine whose forward pass gives the same logits (the forward pass is deterministic for
 * a given machine, build, model and thread count; the only floating-point function in the
 * sampling decision is exp() on doubles, which agrees across x86-64 glibc versions).
 *
 * ------------------------------------------------------------------------------------------
 * Generations, stopping and text
 * ------------------------------------------------------------------------------------------
 * A generation is the run of steps after a feed. Every ds_session_feed()/ds_session_feed_text()
 * (and rewind, reset, load) starts a new generation: the token count, the stop state, the text
 * decoder and the reasoning splitter start over. A generation stops, and ds_session_step()
 * returns DS_DONE with ds_session_stop_reason() telling why, when:
 *   - DS_STOP_EOS: the sampled token is an end-of-generation token (ds_tokenizer_is_eog(); only
 *     for models with a tokenizer, unless ignore_eos). The token is reported but NOT appended
 *     (feed it if the conversation should contain it);
 *   - DS_STOP_STRING: the generated text contains one of the stop strings
 *     (ds_session_set_stop_strings()); matched on the decoded text, across token boundaries.
 *     The token that completed the match is appended; the text from the stop string on is
 *     never returned;
 *   - DS_STOP_LIMIT: the step generated the max_tokens-th token of the generation (appended).
 * Once stopped, further steps return DS_DONE (nothing is sampled) until the next feed, rewind,
 * reset or load.
 *
 * Text. Every step's new text is available from ds_session_text() until the next step, feed,
 * rewind, reset or load: UTF-8 that never ends inside a character (ds_text_stream), with text
 * that might still become a stop string held back until it is decided, classified as reasoning
 * or answer (ds_reasoning) when reasoning splitting is on. A character cut at the end of a
 * generation becomes U+FFFD.
 *
 * Typical loop (error handling shortened):
 * @code
 *   ds_session_params sp;
 *   ds_session_default_params(&sp, sizeof sp);
 *   sp.temperature = 0.7f;  sp.top_p = 0.95f;  sp.seed = 42;  sp.max_tokens = 512;
 *   ds_session *s;
 *   if (ds_session_open(&s, model, &sp) != DS_OK) { puts(ds_last_error()); return; }
 *   ds_session_feed_text(s, prompt, strlen(prompt), DS_TOKENIZE_SPECIAL);   // prefill
 *   ds_status st;
 *   int32_t tok;
 *   do {
 *       st = ds_session_step(s, &tok);            // sample, append, run one token
 *       if (st < 0) { puts(ds_session_errmsg(s)); break; }
 *       ds_text_kind kind;  const char *text;  size_t len;
 *       while (ds_session_text(s, &kind, &text, &len) == DS_OK)
 *           show(kind == DS_TEXT_REASONING, text, len);
 *   } while (st == DS_OK);
 *   if (st == DS_DONE)
 *       printf("stopped: %s\n", ds_stop_reason_name(ds_session_stop_reason(s)));
 *   ds_session_close(s);
 * @endcode
 *
 * ------------------------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------------------------
 * Everything a session needs is allocated by ds_session_open(): the KV cache for n_ctx tokens,
 * the forward scratch for n_batch tokens, the logits, the token list and the sampler scratch.
 * ds_session_feed() and ds_session_step() allocate nothing afterwards, except the text queue
 * growing to the longest text of one step. Elsewhere: ds_session_feed_text() allocates the
 * token ids of its text, ds_session_step_batch() grows its arrays the first time a batch is
 * larger than before, save/load allocate temporary buffers (freed before they return).
 *
 * The header compiles alone as C99 and as C++ (C++11 or later).
 */
#ifndef DEEPSEEK_SESSION_H
#define DEEPSEEK_SESSION_H

#include "deepseek/deepseek.h"
#include "deepseek/chat.h"
#include "deepseek/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One sequence on a model. Used by one thread at a time (ds_session_cancel excepted). */
typedef struct ds_session ds_session;

/* ds_abort_fn and ds_progress_fn are declared in deepseek/deepseek.h. For sessions: the abort
 * check is polled between layers and between prefill chunks of every feed and step (nonzero
 * cancels: the call returns DS_ERR_CANCELLED); progress is called after each chunk of a feed
 * with the tokens of this feed done so far and the feed's total (last call: done == total). */

/** How generated text is split into reasoning and answer. Values are ABI. */
typedef enum ds_reasoning_mode {
    /** On when the model's chat template is DeepSeek-R1 (ds_chat_detect), else off. */
    DS_REASONING_MODE_AUTO = 0,
    /** All text is answer. */
    DS_REASONING_MODE_OFF = 1,
    /** Split `<think>…</think>` (ds_reasoning rules). A generation starts inside reasoning when
     *  the text of the tokens before it ends with "<think>" plus optional whitespace (the R1
     *  generation prompt); otherwise a leading "<think>" opens the reasoning. */
    DS_REASONING_MODE_ON = 2
} ds_reasoning_mode;

/** Why a generation stopped. Values are ABI. */
typedef enum ds_stop_reason {
    DS_STOP_NONE = 0,    /**< not stopped */
    DS_STOP_EOS = 1,     /**< an end-of-generation token was sampled (not appended) */
    DS_STOP_STRING = 2,  /**< a stop string appeared in the generated text */
    DS_STOP_LIMIT = 3    /**< max_tokens tokens were generated */
} ds_stop_reason;

/** Open-time settings of a session. Fill with ds_session_default_params(). The sampler fields
 *  (seed .. max_tokens, ignore_eos) can be changed later with ds_session_set_sampling(). */
typedef struct ds_session_params {
    uint32_t struct_size;   /**< sizeof(ds_session_params) as the host was compiled */
    uint32_t n_ctx;         /**< context length in tokens; 0 = min(model's training context, 4096) */
    uint32_t n_batch;       /**< tokens per prefill chunk (cancellation granularity); default 256 */
    uint32_t kv_type;       /**< a ds_kv_type; default DS_KV_F32 */
    uint32_t logits_all;    /**< nonzero: keep the logits of every token of the last feed */
    int32_t n_threads;      /**< compute threads of this session; 0 = the model's (default),
                                 sharing the model's matmul context */
    uint64_t seed;          /**< sampler seed; default 0 */
    float temperature;      /**< 0 = greedy (default) */
    int32_t top_k;          /**< 0 = off (default) */
    float top_p;            /**< 1 = off (default) */
    float min_p;            /**< 0 = off (default) */
    float repeat_penalty;   /**< > 0; 1 = off (default) */
    float frequency_penalty;/**< 0 = off (default) */
    float presence_penalty; /**< 0 = off (default) */
    int32_t penalty_last_n; /**< penalty window in tokens; 0 = penalties off; -1 = the whole
                                 session; default 64 */
    uint32_t max_tokens;    /**< stop a generation after this many tokens; 0 = no limit (default) */
    uint32_t reasoning;     /**< a ds_reasoning_mode; default DS_REASONING_MODE_AUTO */
    uint32_t render_special;/**< nonzero: control tokens appear in the text as their literal
                                 text (else they render as nothing; default 0) */
    uint32_t ignore_eos;    /**< nonzero: end-of-generation tokens are ordinary tokens (appended,
                                 no DS_STOP_EOS); for benchmarks. Default 0 */
    uint32_t fit_context_to_budget; /**< nonzero: with memory_budget, lower n_ctx to the largest
                                 context that fits instead of failing */
    uint32_t reserved0;     /**< 0 (padding) */
    uint64_t memory_budget; /**< bytes the session may allocate (see ds_session_memory_needed);
                                 0 = no limit (default) */
    ds_abort_fn abort_fn;   /**< polled during feeds and steps; NULL = none */
    void *abort_user_data;
    ds_progress_fn progress_fn; /**< prefill progress; NULL = none */
    void *progress_user_data;
} ds_session_params;

/** Fill `params` with the defaults (see ds_model_default_params for struct_size).
 *  @return DS_OK or DS_ERR_INVALID_ARG. @note thread-safe. */
DS_API ds_status ds_session_default_params(ds_session_params *params, size_t struct_size);

/**
 * Bytes a session with these params would allocate (KV cache, forward scratch, logits, token
 * list, sampler scratch) — what memory_budget is compared with. Not included: the model's
 * weights, and the oneDNN primitive caches (a few MB, shared per matmul context).
 * @param params NULL for the defaults; copied. n_ctx == 0 is resolved as in ds_session_open;
 *               memory_budget and fit_context_to_budget are ignored.
 * @param bytes  receives the total.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_UNSUPPORTED (a vocab-only model).
 * @note thread-safe.
 */
DS_API ds_status ds_session_memory_needed(const ds_model *model, const ds_session_params *params,
                                          uint64_t *bytes);

/**
 * Open a session on a model. The KV cache for n_ctx tokens and all scratch memory are
 * allocated here; nothing is allocated per token afterwards.
 * With memory_budget > 0, the session's memory (ds_session_memory_needed) is checked before
 * anything large is allocated: if it exceeds the budget, the call fails with DS_ERR_NO_MEMORY
 * and a message giving both sizes — or, with fit_context_to_budget, n_ctx is lowered to the
 * largest context that fits (ds_session_n_ctx() tells the result; DS_ERR_NO_MEMORY if not even
 * one token fits).
 * @param out    receives the handle (caller owns; ds_session_close); NULL on failure.
 * @param model  must stay open until the session is closed.
 * @param params NULL for the defaults; copied.
 * @return DS_OK; DS_ERR_INVALID_ARG (a setting out of range, named); DS_ERR_UNSUPPORTED (a
 *         vocab-only model); DS_ERR_NO_MEMORY (allocation failed or over budget).
 * @note thread-safe with respect to other sessions of the same model.
 */
DS_API ds_status ds_session_open(ds_session **out, ds_model *model, const ds_session_params *params);

/** Close a session. Accepts NULL. */
DS_API void ds_session_close(ds_session *session);

/** Detailed message of the last failure on this session. Library owns; valid until the next
 *  call on the session. "" if none. */
DS_API const char *ds_session_errmsg(const ds_session *session);

/** Context length of the session (after fit_context_to_budget). 0 for NULL. */
DS_API uint32_t ds_session_n_ctx(const ds_session *session);

/* ---- the loop -------------------------------------------------------------------------- */

/**
 * Append `n` tokens and run them through the model (one prefill, in chunks of n_batch; the
 * progress callback is called after each chunk). Starts a new generation. Afterwards the logits
 * of the last token (or of the last up-to-n_batch tokens with logits_all) are readable.
 * @param tokens caller owns; copied. May be NULL when n is 0 (then nothing happens).
 * @return DS_OK; DS_ERR_INVALID_ARG (a token id outside the vocabulary — nothing is fed);
 *         DS_ERR_CONTEXT_FULL (the n tokens do not fit — nothing is fed); DS_ERR_CANCELLED
 *         (the session keeps the chunks completed before the cancellation: the token list and
 *         the cache agree, ds_session_n_tokens() tells how many; the logits are not readable
 *         until the next feed); DS_ERR_NO_MEMORY.
 */
DS_API ds_status ds_session_feed(ds_session *session, const int32_t *tokens, size_t n);

/**
 * Tokenize UTF-8 text with the model's tokenizer and feed it (as ds_session_feed).
 * @param text  `len` bytes; copied. May be NULL when len is 0.
 * @param flags DS_TOKENIZE_* flags of deepseek/tokenizer.h: DS_TOKENIZE_SPECIAL recognizes
 *              control tokens written in the text; DS_TOKENIZE_ADD_BOS / DS_TOKENIZE_NO_BOS
 *              force BOS on or off. With neither BOS flag, BOS is added as the model's
 *              add_bos setting says, but only when the session is empty (position 0).
 * @return as ds_session_feed, plus DS_ERR_UNSUPPORTED (the model has no tokenizer) and the
 *         tokenizer's errors (DS_ERR_INVALID_ARG for bad flags).
 */
DS_API ds_status ds_session_feed_text(ds_session *session, const char *text, size_t len,
                                      uint32_t flags);

/**
 * Logits of a token of the last feed or step, as the model computed them (no bias, penalty or
 * temperature applied).
 * @param index -1 for the last token; with logits_all, 0 .. n-1 of the last feed's rows.
 * @param logits receives a pointer to n_vocab floats; library owns, valid until the next
 *        feed/step/rewind/reset/load/close on this session.
 * @param n_vocab if not NULL, receives the vocabulary size.
 * @return DS_OK; DS_ERR_STATE (nothing fed since the last open, rewind, reset, or failed feed);
 *         DS_ERR_INVALID_ARG (index out of range, NULL arguments).
 */
DS_API ds_status ds_session_logits(ds_session *session, int64_t index, const float **logits,
                                   size_t *n_vocab);

/**
 * Sample the next token from the last logits (see "Sampling" above), append it, run it through
 * the model and decode its text (ds_session_text).
 * @param token receives the token of this step, or -1 if none was sampled.
 * @return DS_OK (a token was generated and appended);
 *         DS_DONE (the generation stopped: ds_session_stop_reason() says why and
 *         ds_session_text() gives the last text; *token is the EOS token for DS_STOP_EOS (not
 *         appended), the appended token for DS_STOP_STRING / DS_STOP_LIMIT, or -1 when the
 *         generation had already stopped);
 *         DS_ERR_STATE (no logits: feed first; or every token is banned by the logit bias);
 *         DS_ERR_CONTEXT_FULL (no room: nothing sampled); DS_ERR_CANCELLED (nothing appended,
 *         the RNG is rewound, the logits stay readable: stepping again gives the same token).
 */
DS_API ds_status ds_session_step(ds_session *session, int32_t *token);

/**
 * One step for each of `n` sessions of the same model with ONE forward pass: the weights are
 * read once for all sessions (the projections and experts run as one matrix product with
 * M = number of sessions that run), attention runs per session over its own cache. Each
 * session samples, stops and decodes text exactly as in ds_session_step, and the logits equal
 * those of stepping each session alone up to float rounding: a matrix product of M rows may
 * accumulate in another order than a product of one row (SIMD kernels, oneDNN beyond 4-8
 * rows), which changes the last bits of a logit (measured below 1e-5 relative on the test
 * models; with the portable scalar kernels and up to 4 sessions the logits are identical).
 * The sampled tokens are therefore the same unless two candidates are that close.
 * @param sessions `n` distinct sessions of one model; the compute threads and the scratch of
 *                 the first session that runs are used.
 * @param tokens   receives each session's token as ds_session_step's *token.
 * @param results  receives each session's status as ds_session_step would return it:
 *                 DS_OK, DS_DONE, DS_ERR_STATE, DS_ERR_CONTEXT_FULL (those sessions are not
 *                 run), or the call's error when the forward pass failed.
 * @return DS_OK when every session has its result in results[] (check them);
 *         DS_ERR_INVALID_ARG (NULL arrays, n == 0, a repeated session, sessions of different
 *         models — nothing is done); DS_ERR_CANCELLED (any session's cancel or abort_fn: no
 *         session advances, their RNGs are rewound); DS_ERR_NO_MEMORY (batch scratch).
 *         On a negative return the message is in ds_last_error() and results[] holds the
 *         error for every session that was to run.
 */
DS_API ds_status ds_session_step_batch(ds_session *const *sessions, size_t n, int32_t *tokens,
                                       ds_status *results);

/** Why the current generation stopped (DS_STOP_NONE while it runs). NULL gives DS_STOP_NONE. */
DS_API ds_stop_reason ds_session_stop_reason(const ds_session *session);

/** Short static name of a stop reason ("none", "eos", "stop-string", "limit"); NULL for an
 *  unknown value. @note thread-safe. */
DS_API const char *ds_stop_reason_name(ds_stop_reason reason);

/** Tokens generated in the current generation (steps since the last feed, rewind, reset or
 *  load; an EOS that was not appended does not count). */
DS_API uint32_t ds_session_n_generated(const ds_session *session);

/**
 * Take the next piece of text produced by the last step.
 * @param kind receives DS_TEXT_ANSWER or DS_TEXT_REASONING (may be NULL).
 * @param text receives a pointer to UTF-8 bytes (not NUL-terminated); library owns, valid until
 *             the next call on the session.
 * @param len  receives the length (> 0 on DS_OK).
 * @return DS_OK (a piece; call again for more); DS_AGAIN (nothing more for this step);
 *         DS_DONE (nothing more and the generation has stopped); DS_ERR_INVALID_ARG.
 *         On DS_AGAIN/DS_DONE *text is NULL and *len 0. Models without a tokenizer have no text
 *         (DS_AGAIN / DS_DONE).
 */
DS_API ds_status ds_session_text(ds_session *session, ds_text_kind *kind, const char **text,
                                 size_t *len);

/** Tokens in the session (its position). 0 for NULL. */
DS_API size_t ds_session_n_tokens(const ds_session *session);

/**
 * The tokens in the session. @param tokens receives a library-owned pointer valid until the
 * next call that changes the session. @return DS_OK or DS_ERR_INVALID_ARG.
 */
DS_API ds_status ds_session_tokens(const ds_session *session, const int32_t **tokens, size_t *n);

/**
 * Drop the last `n` tokens (the cache is truncated, not rebuilt). Starts a new generation. The
 * logits are not readable until the next feed. @return DS_OK; DS_ERR_INVALID_ARG if n exceeds
 * the token count (nothing changes).
 */
DS_API ds_status ds_session_rewind(ds_session *session, size_t n);

/** Drop every token, reseed the RNG with the seed and start a new generation (the logit bias,
 *  stop strings and settings stay). @return DS_OK or DS_ERR_INVALID_ARG. */
DS_API ds_status ds_session_reset(ds_session *session);

/**
 * Request cancellation. The feed or step running on the session (or, if none is running, the
 * next one) returns DS_ERR_CANCELLED at its next check (between layers: milliseconds); the
 * request is consumed by the call that returns DS_ERR_CANCELLED.
 * @note thread-safe: may be called from any thread at any time, also during a call on the
 *       session (an atomic flag). Accepts NULL.
 */
DS_API void ds_session_cancel(ds_session *session);

/* ---- sampler settings ------------------------------------------------------------------ */

/**
 * Change the sampler settings: reads seed, temperature, top_k, top_p, min_p, repeat_penalty,
 * frequency_penalty, presence_penalty, penalty_last_n, max_tokens and ignore_eos from `params`
 * (filled with ds_session_default_params, then changed) and ignores its other fields. The RNG is not
 * reseeded (the new seed is used by ds_session_reset and ds_session_set_seed).
 * @return DS_OK; DS_ERR_INVALID_ARG (a value out of range: nothing changes).
 */
DS_API ds_status ds_session_set_sampling(ds_session *session, const ds_session_params *params);

/** Reseed the RNG now (and for later resets). @return DS_OK or DS_ERR_INVALID_ARG. */
DS_API ds_status ds_session_set_seed(ds_session *session, uint64_t seed);

/**
 * Add `bias` to the logit of `token` before sampling (step 2 of the order). Setting a token
 * again replaces its bias; 0 removes it. -INFINITY bans the token.
 * @return DS_OK; DS_ERR_INVALID_ARG (token outside the vocabulary, bias NaN or +INFINITY).
 */
DS_API ds_status ds_session_set_logit_bias(ds_session *session, int32_t token, float bias);

/** Remove every logit bias. @return DS_OK or DS_ERR_INVALID_ARG. */
DS_API ds_status ds_session_clear_logit_bias(ds_session *session);

/**
 * Set the stop strings (replacing the previous ones; n == 0 clears them). Matched on the
 * generated text as decoded, before the reasoning split.
 * @param strings `n` NUL-terminated, non-empty UTF-8 strings of at most 256 bytes; copied.
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL, empty or too long string; at most 64 strings);
 *         DS_ERR_UNSUPPORTED (the model has no tokenizer, so there is no text).
 */
DS_API ds_status ds_session_set_stop_strings(ds_session *session, const char *const *strings,
                                             size_t n);

/* ---- save and restore ------------------------------------------------------------------ */

/*
 * A saved session holds: the tokens, the latent KV cache rows in use (in the cache's element
 * type), the last logits row, the sampler settings and RNG state, the logit bias, the stop
 * strings and the generation state (generated count, stop reason; the text decoder state is
 * rebuilt from the generated tokens on load). Text pieces not yet taken with ds_session_text
 * are not saved. Stepping a loaded session gives exactly the tokens the saved session would
 * have given (its last logits and RNG state are in the file). Files are little-endian and do
 * not depend on the machine, only on the model. The format (lib/session/state_io.c): a header
 * with magic "DSSESS\r\n", format version, model fingerprint, sizes and a CRC-32C checksum,
 * then a zstd-compressed payload.
 *
 * Loading checks everything before it changes anything: a file of another model
 * (DS_ERR_MODEL_MISMATCH), a truncated or corrupted file (DS_ERR_FORMAT), a future format
 * version (DS_ERR_UNSUPPORTED), or more tokens than the session's n_ctx (DS_ERR_CONTEXT_FULL)
 * leave the session exactly as it was. The loading session may have another n_ctx, n_batch or
 * kv_type than the saving one (rows are converted; f16/bf16 -> f32 is exact). Its own
 * n_threads, callbacks and memory settings stay; the sampler settings come from the file.
 */

/** Upper bound of the bytes ds_session_save_buffer needs now (cheap: nothing is compressed).
 *  @return DS_OK or DS_ERR_INVALID_ARG. */
DS_API ds_status ds_session_save_size(ds_session *session, size_t *size);

/**
 * Save the session into a caller buffer.
 * @param buf      caller owns; may be NULL when capacity is 0 (size query: the state is
 *                 compressed to measure it).
 * @param size     receives the bytes written; on DS_ERR_BUFFER_TOO_SMALL the exact size needed
 *                 (valid until the session changes).
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL (nothing written); DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY.
 */
DS_API ds_status ds_session_save_buffer(ds_session *session, void *buf, size_t capacity,
                                        size_t *size);

/** Load a session from `size` bytes (copied). Errors as described above. */
DS_API ds_status ds_session_load_buffer(ds_session *session, const void *buf, size_t size);

/** Save the session to a file (written to a temporary file next to it, then renamed).
 *  @return DS_OK; DS_ERR_IO; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_session_save(ds_session *session, const char *path);

/** Load a session from a file. @return as ds_session_load_buffer, plus DS_ERR_IO. */
DS_API ds_status ds_session_load(ds_session *session, const char *path);

/* ---- memory ---------------------------------------------------------------------------- */

/** Bytes of memory the session allocated (KV cache, scratch, logits, tokens, sampler). */
DS_API uint64_t ds_session_memory(const ds_session *session);

/** Memory of an open model. */
typedef struct ds_model_memory_info {
    uint32_t struct_size;   /**< set by the caller: sizeof(ds_model_memory_info) */
    uint32_t mapped;        /**< nonzero: the weights are a shared read-only file mapping (page
                                 cache, shared between processes), else private memory */
    uint64_t weights;       /**< bytes of the model file held in memory (mapped or read) */
    uint64_t other;         /**< bytes of the model's own allocations: tensor and metadata
                                 tables, tokenizer (estimated), bound weight views */
} ds_model_memory_info;

/**
 * Memory of a model (not including its sessions: see ds_session_memory).
 * @param info caller owns; the caller sets info->struct_size first; that many bytes are written.
 * @return DS_OK or DS_ERR_INVALID_ARG. @note thread-safe.
 */
DS_API ds_status ds_model_memory(const ds_model *model, ds_model_memory_info *info);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_SESSION_H */
