/*
 * lib/forward/deepseek2.h — the deepseek2 forward pass (DeepSeek-V2, V2-Lite, V3, R1).
 *
 * Owns: composing one layer loop from the model's bound weights (lib/model), the matmul and
 * vector kernels (lib/kernels), the MoE router (lib/moe) and the latent KV cache (lib/kv):
 * embedding, RMSNorm, multi-head latent attention with q-LoRA or without, YaRN RoPE, dense
 * SwiGLU and DeepSeekMoE layers, final norm and output head.
 *
 * A ds2_state is the per-sequence state (KV cache + scratch). It is used by one thread at a
 * time; many states may share one model and one ds_mm concurrently.
 */
#ifndef DS_FORWARD_DEEPSEEK2_H
#define DS_FORWARD_DEEPSEEK2_H

#include "kernels/kernels.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "util/error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ds2_state ds2_state;

/* KV cache element types: ds_kv_type (DS_KV_F32, DS_KV_F16, DS_KV_BF16) from kv/kv_cache.h */

/* Abort check: return nonzero to cancel; checked between layers and between prefill chunks. */
typedef int (*ds2_abort_fn)(void *user_data);

typedef struct ds2_state_params {
    uint32_t n_ctx;          /* context length (tokens the cache holds) */
    ds_kv_type kv_type;
    uint32_t n_batch;        /* max tokens per prefill chunk (scratch is sized for it) */
    ds2_abort_fn abort_fn;   /* may be NULL */
    void *abort_user_data;
    bool kv_segments;        /* tests: attention reads an f16/bf16 cache through f32 segments
                                (the path of CPUs without the AVX-512 kernels,
                                ds_heads_h16_fast()) instead of in place */
} ds2_state_params;

ds_status ds2_state_create(ds2_state **out, const ds_model_data *md, ds_mm *mm,
                           const ds2_state_params *p, ds_err *err);
void ds2_state_free(ds2_state *st);

/* Tokens currently in the cache (the position of the next token). */
uint32_t ds2_state_pos(const ds2_state *st);
/* Drop cached tokens from the end so that pos == new_pos (new_pos <= pos). */
ds_status ds2_state_truncate(ds2_state *st, uint32_t new_pos, ds_err *err);
/* Bytes the state allocated (cache + scratch). */
uint64_t ds2_state_bytes(const ds2_state *st);

/*
 * Run `n` tokens at positions pos..pos+n-1 (processed internally in chunks of n_batch) and
 * append them to the cache. logits: if all_logits, n rows of n_vocab floats; else 1 row (for
 * the last token). logits may be NULL (no output wanted). On failure (including
 * DS_ERR_CONTEXT_FULL checked before anything runs, and DS_ERR_CANCELLED from abort_fn) the
 * cache is left at the last fully processed chunk boundary and pos reflects it.
 */
ds_status ds2_forward(ds2_state *st, const int32_t *tokens, uint32_t n, float *logits,
                      bool all_logits, ds_err *err);

/*
 * Batched decode: one token for each of n distinct states of the same model (at any positions),
 * in ONE pass over the weights — every projection and expert runs as one matrix product over
 * the n rows; attention runs per state over its own cache. The scratch of states[0] is used
 * (groups of its n_batch rows; larger batches run group after group). logits: NULL or n rows of
 * n_vocab floats. Each state's abort_fn is polled between layers. On failure (DS_ERR_CANCELLED,
 * DS_ERR_CONTEXT_FULL of any state — checked before anything runs —, ...) no state of the
 * failing group advances. Per-row results equal those of ds2_forward on each state alone up to
 * the rounding of M-row versus 1-row matrix products. None of the states may be used by another
 * thread during the call.
 */
ds_status ds2_forward_batch(ds2_state *const *states, const int32_t *tokens, uint32_t n,
                            float *logits, ds_err *err);

/* Bytes ds2_state_bytes() would report for a state created with these params, computed
 * without allocating the scratch or the cache (memory budgets). n_threads: as the ds_mm's. */
ds_status ds2_state_estimate(const ds_model_data *md, int n_threads, const ds2_state_params *p,
                             uint64_t *bytes, ds_err *err);

/* Width of one logits row (rows of output.weight; equals hp.n_vocab). */
uint32_t ds2_state_n_vocab(const ds2_state *st);
/* Context length the state was created with. */
uint32_t ds2_state_n_ctx(const ds2_state *st);
/* The state's latent cache (read-only view, e.g. for bytes-per-token reporting). */
const ds_kv_cache *ds2_state_kv(const ds2_state *st);

#endif
