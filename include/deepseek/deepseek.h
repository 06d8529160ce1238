/*
 * libdeepseek — embeddable inference for the DeepSeek family of language models.
 *
 * This header is the contract. Everything a host may rely on is written here.
 *
 * ------------------------------------------------------------------------------------------
 * API conventions (followed by every function in every libdeepseek header)
 * ------------------------------------------------------------------------------------------
 *
 * Handles. Objects are opaque handles (ds_model, ds_tokenizer, later ds_session) created and
 *   destroyed in pairs: ds_<object>_open() / ds_<object>_close(). A constructor returns a
 *   ds_status and hands the handle back through an out-parameter, which is set to NULL on
 *   failure. Destructors return void, accept NULL and never fail.
 *
 * Status codes. Every fallible function returns ds_status: DS_OK (0) on success, a negative
 *   DS_ERR_* code on failure, a positive code for non-error signals (DS_DONE, DS_AGAIN).
 *   The numeric values are part of the ABI and never change. ds_status_string() gives a
 *   short static description of a code.
 *
 * Error messages. The detailed message of the last failure (naming what was wrong: for a file,
 *   the section, the tensor or key, the byte offset) is kept twice:
 *     - per handle:  ds_model_errmsg(model), ds_tokenizer_errmsg(tok) — library-owned text,
 *       valid until the next call on that handle;
 *     - per thread:  ds_last_error() — the last failure of any call made by the calling thread,
 *       including failures before a handle exists (a failed ds_model_open). Library-owned,
 *       valid until the next libdeepseek call on the same thread.
 *
 * Parameters. Open-time settings are structs that begin with `uint32_t struct_size`. Fill one
 *   with ds_model_default_params(&p, sizeof p) before changing fields; the library reads only
 *   the first struct_size bytes, so a host built against an older, smaller struct keeps working
 *   when fields are added; a struct_size larger than the library knows (a host built against a
 *   newer header) is refused with DS_ERR_INVALID_ARG. Structs are always passed by pointer,
 *   never by value.
 *
 * Ownership. Every function says who owns what it returns, in fixed words: "caller owns"
 *   (free it as documented), "library owns, valid until ..." (do not free), "copied" (the
 *   library keeps no reference to the argument after the call returns). Buffer-filling
 *   functions take a capacity and report the size they need, so a host can query first.
 *
 * Threads. Unless a function says otherwise: a handle is not safe to use from two threads at
 *   the same time; different handles are independent. A ds_model is immutable after open
 *   (except its log callback) and may be shared by any number of threads for read-only calls
 *   (info, metadata, tensors). Functions without a handle argument are thread-safe.
 *   Compute threads: one setting (ds_model_params.n_threads, per session ds_session_params.
 *   n_threads) is honored by the library's kernels and by oneDNN; both run on the OpenMP
 *   runtime of the calling thread, and nothing runs between calls. OpenMP workers spin briefly
 *   after each parallel region before they sleep; on a machine shared with other busy
 *   processes set OMP_WAIT_POLICY=passive in the environment (it is read when the process
 *   starts) so that they sleep at once.
 *
 * Logging. The library never writes to stdout or stderr. Diagnostics go to a log callback,
 *   set in the open parameters or later with ds_set_log_callback(); NULL means silence.
 *   Messages are preformatted UTF-8 lines without a trailing newline.
 *
 * Memory. The library never keeps global mutable state; all state lives in handles (plus the
 *   per-thread last-error text). Model weights stay in a read-only memory map of the file.
 *
 * The header compiles alone as C99 and as C++ (C++11 or later).
 */
#ifndef DEEPSEEK_DEEPSEEK_H
#define DEEPSEEK_DEEPSEEK_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/version.h"

#if defined(_WIN32) && !defined(__GNUC__)
#  if defined(DS_BUILDING_LIBRARY)
#    define DS_API __declspec(dllexport)
#  else
#    define DS_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define DS_API __attribute__((visibility("default")))
#else
#  define DS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================================
 * Status codes
 * ======================================================================================== */

/** Result of every fallible call. Values are ABI: they never change once published. */
typedef enum ds_status {
    DS_OK = 0,                    /**< success */
    DS_DONE = 1,                  /**< not an error: a sequence ended (end of generation) */
    DS_AGAIN = 2,                 /**< not an error: more input is needed before this call */
    DS_ERR_INVALID_ARG = -1,      /**< an argument is NULL, out of range or inconsistent */
    DS_ERR_IO = -2,               /**< a file could not be opened, read, mapped or written */
    DS_ERR_FORMAT = -3,           /**< a file or buffer is malformed (truncated, corrupted, hostile) */
    DS_ERR_UNSUPPORTED = -4,      /**< well-formed but not supported (architecture, tensor type, version) */
    DS_ERR_NO_MEMORY = -5,        /**< an allocation failed or a memory budget would be exceeded */
    DS_ERR_CONTEXT_FULL = -6,     /**< the context (KV cache) has no room for more tokens */
    DS_ERR_CANCELLED = -7,        /**< the operation was cancelled by the host */
    DS_ERR_BUFFER_TOO_SMALL = -8, /**< a caller buffer is too small; the size needed is reported */
    DS_ERR_NOT_FOUND = -9,        /**< a key, tensor, token or file entry does not exist */
    DS_ERR_STATE = -10,           /**< the call is not valid in the object's current state */
    DS_ERR_MODEL_MISMATCH = -11,  /**< data belongs to a different model (e.g. a saved session) */
    DS_ERR_INTERNAL = -12         /**< a bug in libdeepseek; please report it */
} ds_status;

/**
 * Short static description of a status code ("bad format", ...).
 * @return library owns; static text, valid forever. Unknown codes give "unknown status".
 * @note thread-safe.
 */
DS_API const char *ds_status_string(ds_status status);

/**
 * Detailed message of the last failed libdeepseek call made by the calling thread.
 * @return library owns; valid until the next libdeepseek call on this thread. Empty string if
 *         no call has failed on this thread.
 * @note thread-safe (the text is per thread).
 */
DS_API const char *ds_last_error(void);

/* ========================================================================================
 * Version
 * ======================================================================================== */

/** DS_VERSION_NUMBER of the library actually loaded (major*10000 + minor*100 + patch).
 *  @note thread-safe. */
DS_API uint32_t ds_version(void);

/** "major.minor.patch" of the library actually loaded.
 *  @return library owns; static text. @note thread-safe. */
DS_API const char *ds_version_string(void);

/* ========================================================================================
 * Logging
 * ======================================================================================== */

typedef enum ds_log_level {
    DS_LOG_ERROR = 0,
    DS_LOG_WARN = 1,
    DS_LOG_INFO = 2,
    DS_LOG_DEBUG = 3
} ds_log_level;

/**
 * Log callback. `message` is one preformatted UTF-8 line without a trailing newline; it is
 * library-owned and valid only during the call. The callback may be called from any thread
 * that calls into the library with the handle it was set on (never from a thread of its own
 * that the host did not start a call on, except worker threads of a call in progress).
 */
typedef void (*ds_log_fn)(void *user_data, ds_log_level level, const char *message);

/* ========================================================================================
 * Callbacks shared by models and sessions
 * ======================================================================================== */

/** Abort check: return nonzero to cancel the operation in progress (it then returns
 *  DS_ERR_CANCELLED). Called on the thread that made the call. */
typedef int (*ds_abort_fn)(void *user_data);

/** Progress of a long operation: `done` out of `total` units (bytes for model loading, tokens
 *  for a prefill); the last call has done == total. Called on the thread that made the call. */
typedef void (*ds_progress_fn)(void *user_data, uint64_t done, uint64_t total);

/* ========================================================================================
 * Model
 * ======================================================================================== */

/** An open model: a memory-mapped weight file, its metadata and its bound tensors.
 *  Thread-safety: immutable after open; read-only calls may run concurrently on any threads.
 *  ds_set_log_callback() may be called at any time (it is internally synchronized). */
typedef struct ds_model ds_model;

/** How the weights are brought into memory. */
typedef enum ds_load_mode {
    DS_LOAD_MMAP = 0,        /**< map the file read-only (shared page cache; the default) */
    DS_LOAD_READ = 1,        /**< read the file into anonymous memory */
    DS_LOAD_HUGEPAGES = 2    /**< read into anonymous memory advised for transparent huge pages */
} ds_load_mode;

/** Whether weights are repacked at load into a layout for the CPU's decode kernels. */
typedef enum ds_repack {
    DS_REPACK_NONE = 0,      /**< keep the file's layout (the default) */
    DS_REPACK_WEIGHTS = 1    /**< with DS_LOAD_READ or DS_LOAD_HUGEPAGES, on CPUs with
                                  AVX512-VNNI: convert the matrices that are only read whole
                                  (not attention kv_b, token embeddings, router) of the types
                                  whose 16-row kernels beat the row-major ones (Q5_0 today),
                                  in place (no extra memory; one pass at
                                  open). DS_LOAD_MMAP never repacks: the mapping stays shared
                                  with the page cache. Experimental: BENCHMARKS.md has what it
                                  gains */
} ds_repack;

/** Element type of the KV cache. F16 and BF16 halve its memory (rows rounded once when
 *  written); on AVX-512 CPUs decode attention reads them in place, and at long contexts they
 *  decode faster than F32 (half the bytes to read). F32 (the default) keeps the rows exact. */
typedef enum ds_kv_type {
    DS_KV_F32 = 0,
    DS_KV_F16 = 1,
    DS_KV_BF16 = 2
} ds_kv_type;

/** Numeric precision of the compute path. */
typedef enum ds_precision {
    DS_PRECISION_FAST = 0,   /**< bf16 matmuls with f32 accumulation where the CPU supports it */
    DS_PRECISION_F32 = 1     /**< exact f32 compute everywhere (for verification) */
} ds_precision;

/** Open-time settings of a model. Fill with ds_model_default_params(). */
typedef struct ds_model_params {
    uint32_t struct_size;      /**< sizeof(ds_model_params) as the host was compiled; set by ds_model_default_params */
    uint32_t load_mode;        /**< a ds_load_mode; default DS_LOAD_MMAP */
    int32_t n_threads;         /**< worker threads for compute; 0 = all online CPUs (default) */
    uint32_t precision;        /**< a ds_precision; default DS_PRECISION_FAST */
    uint32_t vocab_only;       /**< nonzero: open only the tokenizer metadata, bind no weights */
    ds_log_level log_level;    /**< most verbose level passed to log_fn; default DS_LOG_WARN */
    ds_log_fn log_fn;          /**< log callback; NULL = silence (default) */
    void *log_user_data;       /**< passed to log_fn */
    ds_progress_fn progress_fn; /**< loading progress in bytes of the file (DS_LOAD_READ and
                                     DS_LOAD_HUGEPAGES read the file; DS_LOAD_MMAP reports
                                     0 and total once each); NULL = none */
    void *progress_user_data;  /**< passed to progress_fn */
    ds_abort_fn abort_fn;      /**< polled while the file is read: nonzero cancels the open
                                    (DS_ERR_CANCELLED); NULL = none */
    void *abort_user_data;     /**< passed to abort_fn */
    uint32_t repack;           /**< a ds_repack; default DS_REPACK_NONE. Results agree with
                                    DS_REPACK_NONE to f32 rounding (sums in another order) */
} ds_model_params;

/**
 * Fill `params` with the defaults.
 * @param params      caller owns; written up to `struct_size` bytes.
 * @param struct_size sizeof(ds_model_params) as the caller was compiled.
 * @return DS_OK, or DS_ERR_INVALID_ARG if params is NULL or struct_size is too small to hold
 *         the first field.
 * @note thread-safe.
 */
DS_API ds_status ds_model_default_params(ds_model_params *params, size_t struct_size);

/**
 * Open a model file (GGUF). Every header field, metadata value and tensor record is validated
 * against the file size before use; the architecture's hyperparameters are read and every
 * tensor the architecture needs is checked for presence, shape and type.
 * @param out    receives the handle (caller owns; close with ds_model_close); NULL on failure.
 * @param path   UTF-8 file path; copied.
 * @param params NULL for the defaults; copied.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_IO (cannot open/map/read); DS_ERR_FORMAT (malformed
 *         file: the message names the section, key or tensor and the byte offset);
 *         DS_ERR_UNSUPPORTED (unknown architecture or tensor type, named); DS_ERR_NO_MEMORY;
 *         DS_ERR_CANCELLED (params->abort_fn asked to stop while the file was read).
 *         The message is in ds_last_error().
 * @note thread-safe (different calls do not interact).
 */
DS_API ds_status ds_model_open(ds_model **out, const char *path, const ds_model_params *params);

/** Close a model and release its memory. Accepts NULL. Every handle that depends on the model
 *  (sessions) must be closed first. */
DS_API void ds_model_close(ds_model *model);

/**
 * Detailed message of the last failure of a call on this model handle.
 * @return library owns; valid until the next call on this handle. "" if none.
 */
DS_API const char *ds_model_errmsg(const ds_model *model);

/**
 * Replace the log callback of an open model.
 * @param fn NULL for silence. @param level most verbose level delivered.
 * @return DS_OK or DS_ERR_INVALID_ARG.
 * @note thread-safe: may be called while other threads use the model.
 */
DS_API ds_status ds_set_log_callback(ds_model *model, ds_log_level level, ds_log_fn fn, void *user_data);

/** Expert gating function of a mixture-of-experts model. */
typedef enum ds_gating {
    DS_GATING_NONE = 0,
    DS_GATING_SOFTMAX = 1,
    DS_GATING_SIGMOID = 2
} ds_gating;

/** RoPE scaling type. */
typedef enum ds_rope_scaling {
    DS_ROPE_SCALING_NONE = 0,
    DS_ROPE_SCALING_LINEAR = 1,
    DS_ROPE_SCALING_YARN = 2
} ds_rope_scaling;

/** The facts of an open model. Filled by ds_model_info(). All counts are 0 where they do not
 *  apply (e.g. q_lora_rank for a model without q-LoRA, expert fields for a dense model). */
typedef struct ds_model_info {
    uint32_t struct_size;          /**< set by the caller: sizeof(ds_model_info) */
    const char *architecture;      /**< e.g. "deepseek2"; library owns, valid while the model is open */
    const char *name;              /**< general.name or ""; library owns, valid while the model is open */
    uint64_t file_size;            /**< bytes */
    uint64_t n_params;             /**< total parameter count of all tensors */
    uint64_t n_tensors;
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;                 /**< dense feed-forward width */
    uint32_t q_lora_rank;          /**< 0: no q-LoRA (V2-Lite) */
    uint32_t kv_lora_rank;
    uint32_t qk_nope_head_dim;
    uint32_t qk_rope_head_dim;
    uint32_t v_head_dim;
    uint32_t n_expert;
    uint32_t n_expert_used;
    uint32_t n_expert_shared;
    uint32_t n_ff_expert;
    uint32_t n_leading_dense;      /**< leading dense layers (first_k_dense_replace) */
    uint32_t n_expert_groups;      /**< 1 when routing is not group-limited */
    uint32_t n_expert_groups_used;
    uint32_t gating;               /**< a ds_gating */
    uint32_t expert_weights_norm;  /**< nonzero: top-k weights are renormalized */
    float expert_weights_scale;    /**< routed scaling factor */
    float rms_norm_eps;
    float rope_freq_base;
    uint32_t rope_scaling;         /**< a ds_rope_scaling */
    float rope_scaling_factor;
    uint32_t rope_orig_ctx;        /**< original context length for YaRN */
    float yarn_mscale_all_dim;     /**< mscale_all_dim (GGUF yarn_log_multiplier / 0.1) */
    float yarn_beta_fast;
    float yarn_beta_slow;
    uint32_t kv_split;             /**< nonzero: split attn_k_b/attn_v_b tensors; 0: combined attn_kv_b */
    uint64_t kv_bytes_per_token;   /**< latent KV cache bytes per token over all layers at f32 */
} ds_model_info;

/**
 * Fill `info` with the facts of the model.
 * @param info caller owns; the caller sets info->struct_size = sizeof(ds_model_info) first;
 *             only that many bytes are written. Pointers inside are library-owned and valid
 *             while the model is open.
 * @return DS_OK or DS_ERR_INVALID_ARG.
 * @note thread-safe.
 */
DS_API ds_status ds_model_info_get(const ds_model *model, ds_model_info *info);

/** GGUF metadata value types (as in the file). */
typedef enum ds_meta_type {
    DS_META_UINT8 = 0, DS_META_INT8 = 1, DS_META_UINT16 = 2, DS_META_INT16 = 3,
    DS_META_UINT32 = 4, DS_META_INT32 = 5, DS_META_FLOAT32 = 6, DS_META_BOOL = 7,
    DS_META_STRING = 8, DS_META_ARRAY = 9, DS_META_UINT64 = 10, DS_META_INT64 = 11,
    DS_META_FLOAT64 = 12
} ds_meta_type;

/** Number of metadata key/value pairs. @note thread-safe. */
DS_API uint64_t ds_model_meta_count(const ds_model *model);

/**
 * Key of the i-th metadata pair.
 * @return library owns, valid while the model is open; NULL if i is out of range.
 * @note thread-safe.
 */
DS_API const char *ds_model_meta_key(const ds_model *model, uint64_t i);

/**
 * Type of the value under `key`.
 * @return DS_OK, DS_ERR_NOT_FOUND, DS_ERR_INVALID_ARG. @note thread-safe.
 */
DS_API ds_status ds_model_meta_type(const ds_model *model, const char *key, ds_meta_type *type);

/**
 * An integer or bool value, converted to int64 if it fits.
 * @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG (not an integer/bool type, or out of
 *         range of int64). @note thread-safe.
 */
DS_API ds_status ds_model_meta_int(const ds_model *model, const char *key, int64_t *value);

/** A numeric value (integer, bool or float) as a double. Same codes as ds_model_meta_int. */
DS_API ds_status ds_model_meta_float(const ds_model *model, const char *key, double *value);

/**
 * Any value rendered as text: a string value as its raw bytes, numbers in decimal, arrays as
 * JSON (long arrays are rendered in full). Always NUL-terminated when capacity > 0.
 * @param buf      caller owns; may be NULL when capacity is 0 (size query: returns
 *                 DS_ERR_BUFFER_TOO_SMALL with *needed filled in).
 * @param needed   if not NULL, receives the bytes needed including the NUL.
 * @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_BUFFER_TOO_SMALL (buf holds a truncated prefix).
 * @note thread-safe.
 */
DS_API ds_status ds_model_meta_string(const ds_model *model, const char *key, char *buf,
                                      size_t capacity, size_t *needed);

/** Information about one tensor in the file. */
typedef struct ds_tensor_info {
    uint32_t struct_size;     /**< set by the caller: sizeof(ds_tensor_info) */
    const char *name;         /**< library owns, valid while the model is open */
    const char *type_name;    /**< ggml type name, e.g. "Q8_0"; library owns, static */
    uint32_t type;            /**< ggml type id */
    uint32_t n_dims;
    uint64_t ne[4];           /**< ggml order: ne[0] is the contiguous axis; unused dims are 1 */
    uint64_t offset;          /**< byte offset of the data in the file */
    uint64_t nbytes;
} ds_tensor_info;

/**
 * Facts of the i-th tensor (file order).
 * @param info caller owns; caller sets info->struct_size first.
 * @return DS_OK; DS_ERR_NOT_FOUND if i is out of range; DS_ERR_INVALID_ARG.
 * @note thread-safe.
 */
DS_API ds_status ds_model_tensor_info(const ds_model *model, uint64_t i, ds_tensor_info *info);

/**
 * Look a tensor up by name. @param index receives its file-order index.
 * @return DS_OK or DS_ERR_NOT_FOUND. @note thread-safe.
 */
DS_API ds_status ds_model_find_tensor(const ds_model *model, const char *name, uint64_t *index);

/* ========================================================================================
 * Memory the library allocated for the caller
 * ======================================================================================== */

/** Free memory that a libdeepseek function documented as "caller owns; free with ds_free".
 *  Accepts NULL. @note thread-safe. */
DS_API void ds_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_DEEPSEEK_H */
