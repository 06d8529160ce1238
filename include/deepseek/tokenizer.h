/*
 * libdeepseek — tokenizer API: DeepSeek byte-level BPE (text <-> token ids).
 *
 * Follows the API conventions written at the top of deepseek/deepseek.h (handles, ds_status,
 * ownership words, thread-safety, no global state, never prints).
 *
 * What it covers. The byte-level BPE tokenizers of the DeepSeek family and their relatives:
 * pre-tokenizers "deepseek-llm" (DeepSeek LLM, MoE-16B, V2 family), "deepseek-coder" (Coder v1),
 * "deepseek-v3" (V3, R1, V3.1), "qwen2" (alias "deepseek-r1-qwen": R1-Distill-Qwen) and
 * "llama-bpe" (alias "llama3": R1-Distill-Llama). The vocabulary comes from a GGUF file
 * (tokenizer.ggml.* keys; a vocab-only GGUF is fine) or from a Hugging Face tokenizer.json.
 *
 * Exactness. Token ids equal those of the reference tokenizers (Hugging Face `tokenizers` for
 * tokenizer.json, llama.cpp for GGUF) on valid UTF-8 text, with two documented choices:
 *   - ASCII `~` is a symbol (\p{S}, as in Unicode and Hugging Face) also for GGUF vocabularies
 *     (llama.cpp omits it from \p{S}; this changes deepseek-v3 splits around `~`).
 *   - Invalid UTF-8 input is tokenized losslessly, see ds_tokenize().
 *
 * Token kinds. Every id has a kind (ds_token_type). NORMAL tokens are byte-level encoded and
 * come out of BPE. USER_DEFINED tokens (GGUF type 4; non-special added tokens of a
 * tokenizer.json that do not look like `<|...|>` / `<｜...｜>`) are always recognised in input
 * text and render as their literal text. CONTROL tokens (BOS, EOS, pad, chat and tool markers,
 * place-holders; for tokenizer.json: added tokens that are `special` or look special, as the
 * GGUF converter classifies them) are recognised in input text only with DS_TOKENIZE_SPECIAL and
 * render as nothing unless DS_DETOKENIZE_SPECIAL is given. UNUSED ids (`[PADn]` padding up to
 * the model's vocab size) behave like CONTROL.
 *
 * Threads. A ds_tokenizer is immutable after it is opened: every function below that takes a
 * `const ds_tokenizer *` may be called from any number of threads at the same time on the same
 * handle. Only ds_tokenizer_close() needs exclusive access.
 *
 * Errors. Because the handle is shared and immutable, a failing call records its detailed message
 * only per thread: ds_last_error() (ds_tokenizer_errmsg() returns the same text).
 */
#ifndef DEEPSEEK_TOKENIZER_H
#define DEEPSEEK_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/deepseek.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A loaded vocabulary, merge table, special-token set and pre-tokenizer.
 *  Immutable after open; may be shared by any number of threads. */
typedef struct ds_tokenizer ds_tokenizer;

/** Kind of a token id (values equal GGUF `tokenizer.ggml.token_type`). */
typedef enum ds_token_type {
    DS_TOKEN_TYPE_UNDEFINED = 0,
    DS_TOKEN_TYPE_NORMAL = 1,       /**< ordinary byte-level BPE token */
    DS_TOKEN_TYPE_UNKNOWN = 2,
    DS_TOKEN_TYPE_CONTROL = 3,      /**< special: BOS/EOS/pad/markers; parsed only with DS_TOKENIZE_SPECIAL */
    DS_TOKEN_TYPE_USER_DEFINED = 4, /**< added token, always parsed, rendered literally */
    DS_TOKEN_TYPE_UNUSED = 5,       /**< padding id without a real string */
    DS_TOKEN_TYPE_BYTE = 6
} ds_token_type;

/** Flags of ds_tokenize(). */
enum {
    /** Prepend BOS (if the tokenizer has one), whatever the model's add_bos setting is. */
    DS_TOKENIZE_ADD_BOS = 1u << 0,
    /** Never prepend BOS. Neither ADD_BOS nor NO_BOS: follow the model's add_bos setting
     *  (ds_tokenizer_add_bos()). Both: DS_ERR_INVALID_ARG. */
    DS_TOKENIZE_NO_BOS = 1u << 1,
    /** Recognise CONTROL tokens written in the text (e.g. "<｜User｜>") as their ids. Without
     *  it their text is tokenized as ordinary text. USER_DEFINED tokens are recognised always. */
    DS_TOKENIZE_SPECIAL = 1u << 2
};

/** Flags of ds_token_to_piece() and ds_detokenize(). */
enum {
    /** Render CONTROL and UNUSED tokens as their literal text (else they produce no bytes). */
    DS_DETOKENIZE_SPECIAL = 1u << 0
};

/**
 * Open a tokenizer from a file.
 * @param out  receives the handle (caller owns; close with ds_tokenizer_close); NULL on failure.
 * @param path UTF-8 path, copied. One of:
 *             - a GGUF file (a vocab-only GGUF is enough): `tokenizer.ggml.model` must be "gpt2";
 *               tokens, token_type, merges, bos/eos/padding ids, add_bos_token,
 *               `tokenizer.ggml.pre` and `tokenizer.chat_template` are read;
 *             - a Hugging Face `tokenizer.json` (byte-level BPE model). A sibling
 *               `tokenizer_config.json`, if present, supplies add_bos_token, bos_token,
 *               eos_token, pad_token and chat_template;
 *             - a directory containing `tokenizer.json` (and optionally tokenizer_config.json).
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_IO (cannot open/read); DS_ERR_FORMAT (malformed
 *         file; the message names the key or JSON member); DS_ERR_UNSUPPORTED (not a byte-level
 *         BPE tokenizer, an unknown pre-tokenizer or normalizer); DS_ERR_NO_MEMORY.
 *         The message is in ds_last_error().
 * @note thread-safe (different calls do not interact).
 */
DS_API ds_status ds_tokenizer_open(ds_tokenizer **out, const char *path);

/** Close a tokenizer opened with ds_tokenizer_open(). Accepts NULL. Must not be called on the
 *  tokenizer returned by ds_model_tokenizer() (the model owns that one). */
DS_API void ds_tokenizer_close(ds_tokenizer *tok);

/**
 * The tokenizer of an open model (built from the model file's tokenizer metadata).
 * @return library owns, valid until ds_model_close(model); NULL if the model has no (supported)
 *         tokenizer or model is NULL. Do not pass it to ds_tokenizer_close().
 * @note thread-safe.
 */
DS_API const ds_tokenizer *ds_model_tokenizer(const ds_model *model);

/**
 * Detailed message of the last failure of a libdeepseek call on the calling thread (the
 * tokenizer handle is shared between threads, so messages are kept per thread only; this is the
 * same text as ds_last_error()).
 * @return library owns; valid until the next libdeepseek call on this thread. "" if none.
 * @note thread-safe.
 */
DS_API const char *ds_tokenizer_errmsg(const ds_tokenizer *tok);

/**
 * Tokenize text.
 * @param text     UTF-8 text, `len` bytes (need not be NUL-terminated; may contain NUL bytes);
 *                 may be NULL when len is 0. Copied (not kept).
 *                 Invalid UTF-8 never fails and is not replaced: every maximal run of bytes that
 *                 are not part of a valid UTF-8 sequence becomes a pre-token of its own (BPE
 *                 merges only inside the run); the valid text on each side is pre-tokenized as
 *                 usual. Tokenization is therefore lossless: ds_detokenize() of the result
 *                 (without DS_TOKENIZE_SPECIAL, or with it when DS_DETOKENIZE_SPECIAL is also
 *                 used) gives back exactly `text` (plus the BOS text if BOS was added and
 *                 rendered) — for every byte string when the vocabulary has a token for every
 *                 byte (deepseek-v3 does). deepseek-llm/coder lack byte tokens for C0, C1 and
 *                 F5–FF (bytes that never occur in valid UTF-8); as in llama.cpp these map to
 *                 the look-alike added tokens ("À", "õ", ...) and come back as their UTF-8.
 * @param flags    DS_TOKENIZE_* flags (0 = the model's BOS setting, specials as plain text).
 * @param tokens   caller owns; receives up to `capacity` ids. May be NULL when capacity is 0.
 * @param n_tokens receives the number of ids of the full result (also on BUFFER_TOO_SMALL).
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL (the result needs *n_tokens ids; the first
 *         `capacity` ids were written — call again with a larger buffer); DS_ERR_INVALID_ARG
 *         (NULL tok/n_tokens, text NULL with len > 0, tokens NULL with capacity > 0, both BOS
 *         flags, unknown flag bits); DS_ERR_NO_MEMORY.
 * @note thread-safe: may run concurrently on the same tokenizer.
 */
DS_API ds_status ds_tokenize(const ds_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                             int32_t *tokens, size_t capacity, size_t *n_tokens);

/**
 * The bytes of one token: for NORMAL tokens the raw bytes after byte-level decoding (they need
 * not be valid UTF-8 on their own — a character may be split over several tokens); for
 * USER_DEFINED tokens their literal text; for CONTROL/UNUSED tokens nothing, or their literal
 * text with DS_DETOKENIZE_SPECIAL.
 * @param flags  DS_DETOKENIZE_* flags.
 * @param buf    caller owns; receives the bytes. May be NULL when capacity is 0 (size query).
 *               When capacity > *len a NUL byte is written after the piece for convenience (the
 *               piece itself may contain NUL bytes: use *len).
 * @param len    receives the piece length in bytes, excluding the NUL (also on BUFFER_TOO_SMALL).
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL (capacity < *len; nothing useful written);
 *         DS_ERR_INVALID_ARG (token out of range, NULL tok/len, buf NULL with capacity > 0).
 * @note thread-safe. O(1): pieces are precomputed at open.
 */
DS_API ds_status ds_token_to_piece(const ds_tokenizer *tok, int32_t token, uint32_t flags,
                                   char *buf, size_t capacity, size_t *len);

/**
 * Concatenate the pieces (as ds_token_to_piece) of `n` tokens. No text is added or removed
 * (no prefix-space stripping, no clean-up of spaces). The result is raw bytes; it is valid UTF-8
 * whenever the token sequence came from tokenizing valid UTF-8 (a streaming, UTF-8-safe
 * decoder is in deepseek/chat.h).
 * @param tokens caller owns, read only; may be NULL when n is 0.
 * @param buf    caller owns; may be NULL when capacity is 0. NUL-terminated when capacity > *len.
 * @param len    receives the total length in bytes excluding the NUL (also on BUFFER_TOO_SMALL).
 * @return DS_OK; DS_ERR_BUFFER_TOO_SMALL (the first `capacity` bytes were written);
 *         DS_ERR_INVALID_ARG (an id out of range: the message names its index; NULL arguments).
 * @note thread-safe.
 */
DS_API ds_status ds_detokenize(const ds_tokenizer *tok, const int32_t *tokens, size_t n,
                               uint32_t flags, char *buf, size_t capacity, size_t *len);

/** Number of token ids (ids are 0 .. n_vocab-1). 0 if tok is NULL. @note thread-safe. */
DS_API int32_t ds_tokenizer_n_vocab(const ds_tokenizer *tok);

/** Beginning-of-sequence id, or -1 if none. @note thread-safe. */
DS_API int32_t ds_tokenizer_bos(const ds_tokenizer *tok);
/** End-of-sequence id, or -1 if none. @note thread-safe. */
DS_API int32_t ds_tokenizer_eos(const ds_tokenizer *tok);
/** Padding id, or -1 if none. @note thread-safe. */
DS_API int32_t ds_tokenizer_pad(const ds_tokenizer *tok);

/** Nonzero if ds_tokenize() without a BOS flag prepends BOS (GGUF add_bos_token /
 *  tokenizer_config.json add_bos_token; default 0). @note thread-safe. */
DS_API int ds_tokenizer_add_bos(const ds_tokenizer *tok);

/**
 * Look a token up by its exact stored text (the byte-level-encoded vocabulary string for NORMAL
 * tokens, e.g. "Ġworld"; the literal text for added tokens, e.g. "<｜User｜>").
 * @param text NUL-terminated UTF-8; copied.
 * @param id   receives the id.
 * @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. @note thread-safe.
 */
DS_API ds_status ds_tokenizer_token_id(const ds_tokenizer *tok, const char *text, int32_t *id);

/** Stored text of a token (see ds_tokenizer_token_id), NUL-terminated.
 *  @return library owns, valid until the tokenizer is closed; NULL if id is out of range.
 *  @note thread-safe. */
DS_API const char *ds_tokenizer_token_text(const ds_tokenizer *tok, int32_t id);

/** Kind of a token (a ds_token_type); DS_TOKEN_TYPE_UNDEFINED if id is out of range.
 *  @note thread-safe. */
DS_API ds_token_type ds_tokenizer_token_type(const ds_tokenizer *tok, int32_t id);

/** Nonzero if the token is CONTROL or UNUSED, i.e. it renders as nothing without
 *  DS_DETOKENIZE_SPECIAL. 0 if out of range. @note thread-safe. */
DS_API int ds_tokenizer_is_special(const ds_tokenizer *tok, int32_t id);

/** Nonzero if generation should stop at this token: EOS, the EOT/EOM ids, and any token whose
 *  text is `<｜end▁of▁sentence｜>`, `<|EOT|>`, `<|endoftext|>`, `<|im_end|>`, `<|eot_id|>`,
 *  `<|eom_id|>`, `<|end|>`, `<end_of_turn>` or `<EOT>`. @note thread-safe. */
DS_API int ds_tokenizer_is_eog(const ds_tokenizer *tok, int32_t id);

/** Pre-tokenizer name: "deepseek-llm", "deepseek-coder", "deepseek-v3", "qwen2", "llama-bpe",
 *  "default" (GGUF without tokenizer.ggml.pre), the GGUF alias as stored ("deepseek-r1-qwen",
 *  "llama3"), or "custom" (a tokenizer.json regex sequence that is none of the known ones).
 *  @return library owns, valid until close; never NULL for a valid handle. @note thread-safe. */
DS_API const char *ds_tokenizer_pre_name(const ds_tokenizer *tok);

/** Raw chat template text (GGUF tokenizer.chat_template or tokenizer_config.json chat_template),
 *  NUL-terminated. @return library owns, valid until close; NULL if there is none.
 *  @note thread-safe. */
DS_API const char *ds_tokenizer_chat_template(const ds_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_TOKENIZER_H */
