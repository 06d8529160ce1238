/*
 * lib/kv/kv_cache.h — the latent KV cache of one sequence (absorbed MLA form).
 *
 * Owns: per layer and per token one row [c_kv (d_c) ; k_pe (d_r)] — the latent after
 * kv_a_norm and the rope key after RoPE — and nothing else (deepseek-architectures.md §2.2).
 * Rows are stored as f32, f16 or bf16 (converted with the kernels' conversions). The cache is
 * sized for n_ctx tokens at creation and never grows. Writes are checked before anything is
 * written: a write that would pass n_ctx fails with DS_ERR_CONTEXT_FULL and touches nothing.
 *
 * Positions: `pos` is the number of committed tokens. A forward pass writes the rows of a chunk
 * layer by layer at positions pos..pos+T-1 (beyond pos) and commits them with
 * ds_kv_commit() once every layer has run; until then, a failed or cancelled chunk leaves the
 * cache at the previous pos (the uncommitted rows are simply overwritten later).
 *
 * Threads: a cache belongs to one sequence and is used by one thread at a time; the read
 * functions may be called concurrently with each other (they do not modify the cache).
 */
#ifndef DS_KV_KV_CACHE_H
#define DS_KV_KV_CACHE_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* KV cache element types */
/* ds_kv_type (DS_KV_F32, DS_KV_F16, DS_KV_BF16) is public: include/deepseek/deepseek.h (lead moved it there) */

typedef struct ds_kv_cache ds_kv_cache;

/* Bytes of one element of `type` (0 for an unknown type). */
size_t ds_kv_type_size(ds_kv_type type);
const char *ds_kv_type_name(ds_kv_type type);

/* Create a cache of n_layer x n_ctx rows of (d_c + d_r) elements. All sizes are checked for
 * overflow. DS_ERR_INVALID_ARG for zero sizes or an unknown type, DS_ERR_NO_MEMORY. */
ds_status ds_kv_create(ds_kv_cache **out, uint32_t n_layer, uint32_t n_ctx, uint32_t d_c,
                       uint32_t d_r, ds_kv_type type, ds_err *err);
void ds_kv_free(ds_kv_cache *kv);

uint32_t ds_kv_pos(const ds_kv_cache *kv);
uint32_t ds_kv_n_ctx(const ds_kv_cache *kv);
uint32_t ds_kv_n_layer(const ds_kv_cache *kv);
uint32_t ds_kv_row_width(const ds_kv_cache *kv);   /* d_c + d_r */
ds_kv_type ds_kv_get_type(const ds_kv_cache *kv);
/* Bytes one token occupies over all layers. */
uint64_t ds_kv_bytes_per_token(const ds_kv_cache *kv);
/* Bytes the cache allocated (rows + bookkeeping). */
uint64_t ds_kv_bytes(const ds_kv_cache *kv);

/* Bytes ds_kv_bytes() would report for a cache of these sizes (for memory budgets); 0 on
 * overflow or an unknown type. */
uint64_t ds_kv_bytes_for(uint32_t n_layer, uint32_t n_ctx, uint32_t d_c, uint32_t d_r,
                         ds_kv_type type);

/* DS_OK if n more tokens fit after pos, else DS_ERR_CONTEXT_FULL (message names the sizes). */
ds_status ds_kv_check_room(const ds_kv_cache *kv, uint32_t n, ds_err *err);

/*
 * Write n rows of layer `layer` at positions p0..p0+n-1. Row j is taken from
 * c_kv + j*ld_c (d_c floats) and k_pe + j*ld_r (d_r floats). p0 may be at or beyond pos (rows
 * of an uncommitted chunk) but p0 + n must not pass n_ctx: DS_ERR_CONTEXT_FULL, nothing
 * written. DS_ERR_INVALID_ARG for a bad layer.
 */
ds_status ds_kv_write(ds_kv_cache *kv, uint32_t layer, uint32_t p0, uint32_t n,
                      const float *c_kv, size_t ld_c, const float *k_pe, size_t ld_r,
                      ds_err *err);

/* Set pos to new_pos (new_pos <= n_ctx) after the rows below it were written for all layers. */
ds_status ds_kv_commit(ds_kv_cache *kv, uint32_t new_pos, ds_err *err);

/* Drop tokens from the end: pos = new_pos. DS_ERR_INVALID_ARG if new_pos > pos. */
ds_status ds_kv_truncate(ds_kv_cache *kv, uint32_t new_pos, ds_err *err);

/*
 * Read rows [s0, s1) of `layer` as f32 into dst (row j at dst + j*(d_c+d_r), [c_kv ; k_pe]).
 * Rows must lie below n_ctx (they may be uncommitted rows of the running chunk). Returns false
 * for an out-of-range request (nothing read).
 */
bool ds_kv_read_f32(const ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t s1,
                    float *dst);

/*
 * Save/restore (lib/session): rows [s0, s0+n) of `layer` in the stored element type, which are
 * contiguous (n * row_width * ds_kv_type_size bytes). NULL for an out-of-range request.
 */
const void *ds_kv_raw_rows(const ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t n);

/* Write n rows stored as `src_type` elements (row j at src + j * row_width elements) at
 * positions s0.. of `layer`: copied when src_type is the cache's type, else converted through
 * f32. Same bounds rules as ds_kv_write (nothing written on failure). */
ds_status ds_kv_write_raw(ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t n,
                          const void *src, ds_kv_type src_type, ds_err *err);

/* Direct pointer to row s of `layer` if the cache stores f32 (rows are contiguous, stride
 * d_c + d_r floats), else NULL. NULL also for an out-of-range row. */
const float *ds_kv_rows_f32(const ds_kv_cache *kv, uint32_t layer, uint32_t s);

#endif
