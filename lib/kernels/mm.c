/*
 * lib/kernels/mm.c — matrix products Y = X * W^T: hand-written GEMV for one row and small
 * batches, oneDNN 2.x matmul primitives for larger batches.
 *
 * Design:
 *   - GEMV (M == 1, and small batches: MM_GEMV_MAX_M_*): rows of W are split across n_threads
 *     OpenMP threads in chunks whose boundaries fall on 64-byte lines of Y (threads never
 *     write the same line); each weight byte is read once per group of 4 activation rows.
 *     Float weights are converted on the fly and multiplied in f32. Quantized weights in FAST
 *     precision quantize the activation once per call into the type's pairing (Q8_0 for Q8_0,
 *     Q8_1 for Q4_0/Q4_1/Q5_0/Q5_1, Q8_K for the K-quants; formats.md §2.5) and use int8 dot
 *     products (VNNI / maddubs); in F32 precision they dequantize on the fly and multiply in
 *     f32. Measured on this 2-core
 *     VM (7168 x 16384 weights from DRAM, AVX-512, 2 threads): F32 26.8 GB/s, F16 24, BF16
 *     23, Q8_0 22-26 GB/s, against ~28-30 GB/s for a plain read loop.
 *   - Batches: one oneDNN primitive per (M, K, N, strides, data types), created on first use
 *     and kept in a small hash table under a mutex (LRU-evicted beyond MM_CACHE_CAP entries;
 *     entries in use are reference-counted and never evicted). Exact M is used rather than
 *     DNNL_RUNTIME_DIM_VAL: on oneDNN 2.6 a run-time M selects the generic `gemm:jit`
 *     implementation instead of brgemm/AMX, measured 10-30% slower for M >= 64 (2x for f32
 *     at M = 16), while a primitive costs ~0.2-0.8 ms to create.
 *     Primitives use a user scratchpad, so one primitive may run from several threads at once
 *     (oneDNN guarantees that only with per-execution scratchpads); memory objects wrap the
 *     caller's pointers per call (cheap).
 *   - Per-call resources (a stream, the scratchpad, the bf16 copy of X, a dequantized weight
 *     tile, the int8 activation) live in "slots" pooled in the ds_mm: a call takes a slot and
 *     gives it back, so after warm-up nothing is allocated per call (buffers keep their
 *     high-water size until ds_mm_free).
 *   - Weights: F32 used in place as a K x N matrix with strides {1, K} (always f32 compute: the
 *     F32 tensors are norms and the MoE router, whose top-k must not see bf16 rounding). BF16
 *     used in place with a bf16 copy of X in FAST precision. F16 and the quantized types (and
 *     BF16 in F32 precision) are dequantized into tiles of at most MM_TILE_BYTES (bf16 in FAST, f32 in F32
 *     precision) multiplied one after the other.
 *   - FAST precision uses bf16 only when the ds_mm ISA level is AVX-512 and the CPU has
 *     AVX512_BF16; otherwise it computes in f32 (also if oneDNN reports bf16 unimplemented).
 *   - Threads: before creating or executing a primitive the calling thread's OpenMP
 *     nthreads-var is set to n_threads (oneDNN's OpenMP runtime reads it) and restored after.
 *     A call from inside an OpenMP parallel region (the forward pass's job, per-head and
 *     per-expert loops) runs on its thread alone: nthreads-var 1, and primitives keyed by
 *     their thread count, since oneDNN fixes its work split when it creates one.
 */
#include "kernels/kernels_impl.h"

#include "format/ggml_types.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define MM_OMP(directive) _Pragma(directive)
#else
#define MM_OMP(directive)
#endif

#define MM_CACHE_CAP 256             /* cached primitives before LRU eviction */
#define MM_BUCKETS 128
/* Bound of a dequantized weight tile (per ds_mm slot). 16 MiB holds a whole V2-Lite expert
 * matrix (2048 x 1408 in bf16, 5.8 MB) and a shared-expert pair in one tile: one dequantization
 * region and one oneDNN call per matrix instead of two or three. Measured (512-token prefill,
 * V2-Lite-shaped, 2 threads, alternating runs): Q4_K_M 617 -> 684 tokens/s against 4 MiB
 * (8 MiB: 665, 32 MiB: 676), Q8_0 ~645 -> ~677; peak RSS +35 MB. */
#define MM_TILE_BYTES (16u << 20)
#define MM_GEMV_MIN_BYTES (128u << 10) /* below: one thread (fork/join costs more) */
#define MM_HEADS_PAR_MIN_MACS 131072.0 /* ds_mm_run_heads: below, one thread */
#define MM_JOB_MAX_M 4                 /* ds_mm_run_jobs: products of at most this many rows
                                          are split into pieces */
#define MM_JOB_PIECE_MAX (2u << 20)    /* most weight bytes per job piece */
#define MM_JOB_PIECE_MIN (128u << 10)  /* fewest weight bytes per job piece (but 16 rows) */
#define PACK_CHUNK_MAX 256           /* K-chunk of dequant_tile_packed (elements) */
/* per-thread scratch of dequant_tile_packed: 16 rows x PACK_CHUNK_MAX f32, then room for the
 * chunk's 16 quantized rows restored from R16 (at most 16 x 2 x PACK_CHUNK_MAX bytes) */
#define PACK_SCR_FLOATS (16 * PACK_CHUNK_MAX + 8 * PACK_CHUNK_MAX)
/* Batches up to this many rows use the GEMV kernels (weights read once per 4 rows) instead
 * of oneDNN. Measured on a 2-core Sapphire Rapids VM (2048 x 1408 weights): oneDNN on
 * in-place BF16 (AMX) wins from ~5 rows; dequantized tiles (F16, Q8_0) cost a fixed ~0.17 ns
 * per weight, which the GEMV matches up to ~8-12 rows. The block-quantized types set their own
 * bound (ds_type_kernels.gemv_max_m: 12 for the legacy types, 16 for the K-quants; re-measured
 * with 2048 x 1408 weights: tiles ~0.25-0.33 ns per weight whatever M, so the GEMV's per-row
 * cost crosses it at ~14 rows (Q4_0, also Q8_0) and ~20 rows (K-quants)). Q8_0 keeps 8 for now:
 * 12 would route some MoE batches differently and flip a near-tie routing decision that
 * tests/forward/test_vs_reference.py's tie detector does not recognise (see the report). */
#define MM_GEMV_MAX_M_INPLACE 4
#define MM_GEMV_MAX_M_TILED 8

typedef struct mm_key {
    int64_t m, k, n, ldx, ldy, ldw;
    int32_t src_dt, wei_dt;
    int32_t packed;                  /* 1: ask for blocked weights (BA16a64b2a, pack_bf16.c) */
    int32_t nthr;                    /* threads it runs on: n_threads, or 1 inside a parallel
                                      * region (oneDNN sizes its work split when created) */
} mm_key;

typedef struct mm_prim {
    mm_key key;
    uint64_t hash;
    dnnl_primitive_t prim;
    bool blocked;                    /* weights in BA16a64b2a (wei_md), else plain (key_mds) */
    dnnl_memory_desc_t wei_md;
    dnnl_memory_desc_t scratch_md;
    size_t scratch_bytes;
    int refs;
    uint64_t last_use;
    struct mm_prim *next;
} mm_prim;

typedef struct mm_slot {
    dnnl_stream_t stream;            /* created on first oneDNN use */
    void *scratch;
    size_t scratch_cap;
    void *xbuf;                      /* bf16 copy of X, or the int8 activation */
    size_t xcap;
    void *wbuf;                      /* dequantized weight tile */
    size_t wcap;
    void *pbuf;                      /* per-thread f32 rows for packing a tile */
    size_t pcap;
    void *dbuf;                      /* dense output of a tile (copied into Y) */
    size_t dcap;
    void *ubuf;                      /* R16 weights restored to rows (a tile, or per thread) */
    size_t ucap;
    struct mm_slot *next;
} mm_slot;

struct ds_mm {
    int n_threads;
    int precision;
    size_t tile_bytes;               /* MM_TILE_BYTES; tests make it small */
    atomic_int isa;
    atomic_int bf16_ok;              /* 0 once oneDNN reported bf16 matmul unimplemented */
    dnnl_engine_t engine;
    pthread_mutex_t lock;            /* guards everything below */
    mm_prim *buckets[MM_BUCKETS];
    int n_prims;
    uint64_t tick;
    mm_slot *free_slots;
};

/* ---- threads -------------------------------------------------------------------------- */

static int omp_enter(int n)
{
#ifdef _OPENMP
    int prev = omp_get_max_threads();
    if (prev != n)
        omp_set_num_threads(n);
    return prev;
#else
    return n;
#endif
}

/* This thread's number and the team size inside a parallel region (0 and 1 without OpenMP). */
static inline void omp_team(int *t, int *team)
{
#ifdef _OPENMP
    *t = omp_get_thread_num();
    *team = omp_get_num_threads();
#else
    *t = 0;
    *team = 1;
#endif
}

static void omp_leave(int prev, int n)
{
#ifdef _OPENMP
    if (prev != n)
        omp_set_num_threads(prev);
#else
    (void)prev;
    (void)n;
#endif
}

/* ---- context ---------------------------------------------------------------------------- */

ds_status ds_mm_create(ds_mm **out, int n_threads, int precision, ds_err *err)
{
    if (!out)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_create: out is NULL");
    *out = NULL;
    if (n_threads < 1)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_create: n_threads %d < 1", n_threads);
    if (precision != DS_PRECISION_FAST && precision != DS_PRECISION_F32)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_create: unknown precision %d",
                          precision);
    ds_mm *mm = calloc(1, sizeof *mm);
    if (!mm)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "ds_mm_create: out of memory");
    mm->n_threads = n_threads;
    mm->precision = precision;
    mm->tile_bytes = MM_TILE_BYTES;
    atomic_init(&mm->isa, (int)ds_isa_best());
    atomic_init(&mm->bf16_ok, 1);
    dnnl_status_t st = dnnl_engine_create(&mm->engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        free(mm);
        return ds_err_set(err, DS_ERR_INTERNAL, "ds_mm_create: oneDNN CPU engine: %s",
                          dnnl_status2str(st));
    }
    if (pthread_mutex_init(&mm->lock, NULL) != 0) {
        dnnl_engine_destroy(mm->engine);
        free(mm);
        return ds_err_set(err, DS_ERR_INTERNAL, "ds_mm_create: mutex init failed");
    }
    *out = mm;
    return DS_OK;
}

static void slot_destroy(mm_slot *s)
{
    if (s->stream)
        dnnl_stream_destroy(s->stream);
    free(s->scratch);
    free(s->xbuf);
    free(s->wbuf);
    free(s->pbuf);
    free(s->dbuf);
    free(s->ubuf);
    free(s);
}

void ds_mm_free(ds_mm *mm)
{
    if (!mm)
        return;
    for (int b = 0; b < MM_BUCKETS; b++) {
        for (mm_prim *p = mm->buckets[b], *next; p; p = next) {
            next = p->next;
            dnnl_primitive_destroy(p->prim);
            free(p);
        }
    }
    for (mm_slot *s = mm->free_slots, *next; s; s = next) {
        next = s->next;
        slot_destroy(s);
    }
    pthread_mutex_destroy(&mm->lock);
    dnnl_engine_destroy(mm->engine);
    free(mm);
}

int ds_mm_threads(const ds_mm *mm)
{
    return mm ? mm->n_threads : 0;
}

int ds_mm_precision(const ds_mm *mm)
{
    return mm ? mm->precision : DS_PRECISION_FAST;
}

ds_isa ds_mm_set_isa(ds_mm *mm, ds_isa isa)
{
    if (!mm)
        return DS_ISA_SCALAR;
    ds_isa eff = ds_isa_clamp(isa);
    atomic_store_explicit(&mm->isa, (int)eff, memory_order_relaxed);
    return eff;
}

void ds_mm_set_tile_bytes(ds_mm *mm, size_t bytes)
{
    if (mm)
        mm->tile_bytes = bytes ? bytes : MM_TILE_BYTES;
}

ds_isa ds_mm_isa(const ds_mm *mm)
{
    return mm ? (ds_isa)atomic_load_explicit(&((ds_mm *)mm)->isa, memory_order_relaxed)
              : DS_ISA_SCALAR;
}

/* ---- slots ------------------------------------------------------------------------------ */

static mm_slot *slot_get(ds_mm *mm)
{
    pthread_mutex_lock(&mm->lock);
    mm_slot *s = mm->free_slots;
    if (s)
        mm->free_slots = s->next;
    pthread_mutex_unlock(&mm->lock);
    if (!s)
        s = calloc(1, sizeof *s);
    return s;
}

static void slot_put(ds_mm *mm, mm_slot *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&mm->lock);
    s->next = mm->free_slots;
    mm->free_slots = s;
    pthread_mutex_unlock(&mm->lock);
}

/* Make *buf hold at least `need` bytes (64-byte aligned; contents not kept). */
static bool buf_reserve(void **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return true;
    size_t sz = (need + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, sz);
    if (!p)
        return false;
    free(*buf);
    *buf = p;
    *cap = sz;
    return true;
}

/* ---- primitive cache ---------------------------------------------------------------------- */

static uint64_t key_hash(const mm_key *k)
{
    const int64_t v[10] = {k->m,   k->k,      k->n,      k->ldx,    k->ldy,
                           k->ldw, k->src_dt, k->wei_dt, k->packed, k->nthr};
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 10; i++) {
        h ^= (uint64_t)v[i] + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
        h *= 0xBF58476D1CE4E5B9ull;
    }
    return h ^ (h >> 31);
}

static bool key_eq(const mm_key *a, const mm_key *b)
{
    return a->m == b->m && a->k == b->k && a->n == b->n && a->ldx == b->ldx &&
           a->ldy == b->ldy && a->ldw == b->ldw && a->src_dt == b->src_dt &&
           a->wei_dt == b->wei_dt && a->packed == b->packed && a->nthr == b->nthr;
}

static void key_mds(const mm_key *k, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                    dnnl_memory_desc_t *dst)
{
    dnnl_dims_t sd = {k->m, k->k}, ss = {k->ldx, 1};
    dnnl_dims_t wd = {k->k, k->n}, ws = {1, k->ldw};
    dnnl_dims_t dd = {k->m, k->n}, dst_s = {k->ldy, 1};
    dnnl_memory_desc_init_by_strides(src, 2, sd, (dnnl_data_type_t)k->src_dt, ss);
    dnnl_memory_desc_init_by_strides(wei, 2, wd, (dnnl_data_type_t)k->wei_dt, ws);
    dnnl_memory_desc_init_by_strides(dst, 2, dd, dnnl_f32, dst_s);
}

/* Caller holds the lock. */
static mm_prim *cache_find(ds_mm *mm, const mm_key *key, uint64_t h)
{
    for (mm_prim *p = mm->buckets[h % MM_BUCKETS]; p; p = p->next)
        if (p->hash == h && key_eq(&p->key, key))
            return p;
    return NULL;
}

/* Caller holds the lock: drop least-recently-used idle entries beyond the capacity. */
static void cache_evict(ds_mm *mm)
{
    while (mm->n_prims > MM_CACHE_CAP) {
        mm_prim **victim = NULL;
        for (int b = 0; b < MM_BUCKETS; b++)
            for (mm_prim **pp = &mm->buckets[b]; *pp; pp = &(*pp)->next)
                if ((*pp)->refs == 0 && (!victim || (*pp)->last_use < (*victim)->last_use))
                    victim = pp;
        if (!victim)
            return;
        mm_prim *v = *victim;
        *victim = v->next;
        dnnl_primitive_destroy(v->prim);
        free(v);
        mm->n_prims--;
    }
}

/* Is *md the K x N layout BA16a64b2a that pack_bf16.c writes (with K padded to 32 and N to
 * 64, dense)? */
static bool md_is_ba16a64b2a(const dnnl_memory_desc_t *md, int64_t K, int64_t N)
{
    const int64_t Kp = (K + 31) / 32 * 32, Np = (N + 63) / 64 * 64;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    return md->format_kind == dnnl_blocked && md->ndims == 2 && md->dims[0] == K &&
           md->dims[1] == N && md->padded_dims[0] == Kp && md->padded_dims[1] == Np &&
           md->offset0 == 0 && md->extra.flags == 0 && b->inner_nblks == 3 &&
           b->inner_blks[0] == 16 && b->inner_idxs[0] == 0 && b->inner_blks[1] == 64 &&
           b->inner_idxs[1] == 1 && b->inner_blks[2] == 2 && b->inner_idxs[2] == 0 &&
           b->strides[0] == 32 * 64 && b->strides[1] == Kp * 64;
}

static dnnl_status_t pd_create(ds_mm *mm, const dnnl_memory_desc_t *smd,
                               const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *dmd,
                               dnnl_primitive_desc_t *pd)
{
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, smd, wmd, NULL, dmd);
    if (st != dnnl_success)
        return st;
    dnnl_primitive_attr_t attr;
    if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success)
        return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    *pd = NULL;
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, mm->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* A primitive for `key`. With key->packed the weights' layout is left to oneDNN and kept
 * when it is BA16a64b2a (out->blocked); any other choice falls back to plain weights. */
static dnnl_status_t prim_create(ds_mm *mm, const mm_key *key, mm_prim *out)
{
    dnnl_memory_desc_t smd, wmd, dmd;
    key_mds(key, &smd, &wmd, &dmd);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    out->blocked = false;
    if (key->packed) {
        dnnl_memory_desc_t any;
        dnnl_dims_t wd = {key->k, key->n};
        st = dnnl_memory_desc_init_by_tag(&any, 2, wd, (dnnl_data_type_t)key->wei_dt,
                                          dnnl_format_tag_any);
        if (st == dnnl_success && pd_create(mm, &smd, &any, &dmd, &pd) == dnnl_success) {
            const dnnl_memory_desc_t *q = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
            if (q && md_is_ba16a64b2a(q, key->k, key->n)) {
                out->blocked = true;
                out->wei_md = *q;
            } else {
                dnnl_primitive_desc_destroy(pd);
                pd = NULL;
            }
        }
    }
    if (!pd && (st = pd_create(mm, &smd, &wmd, &dmd, &pd)) != dnnl_success)
        return st;
    st = dnnl_primitive_create(&out->prim, pd);
    if (st == dnnl_success) {
        const dnnl_memory_desc_t *smd_q =
            dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (smd_q) {
            out->scratch_md = *smd_q;
            out->scratch_bytes = dnnl_memory_desc_get_size(smd_q);
        } else {
            memset(&out->scratch_md, 0, sizeof out->scratch_md);
            out->scratch_bytes = 0;
        }
    }
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Find or create the primitive of `key` and take a reference to it. */
static dnnl_status_t cache_get(ds_mm *mm, const mm_key *key, mm_prim **out)
{
    uint64_t h = key_hash(key);
    pthread_mutex_lock(&mm->lock);
    mm_prim *p = cache_find(mm, key, h);
    if (p) {
        p->refs++;
        p->last_use = ++mm->tick;
        pthread_mutex_unlock(&mm->lock);
        *out = p;
        return dnnl_success;
    }
    pthread_mutex_unlock(&mm->lock);

    /* Create outside the lock (it takes a while); another thread may race us to it. */
    mm_prim *np = calloc(1, sizeof *np);
    if (!np)
        return dnnl_out_of_memory;
    np->key = *key;
    np->hash = h;
    dnnl_status_t st = prim_create(mm, key, np);
    if (st != dnnl_success) {
        free(np);
        return st;
    }
    pthread_mutex_lock(&mm->lock);
    p = cache_find(mm, key, h);
    if (p) {
        dnnl_primitive_destroy(np->prim);
        free(np);
    } else {
        p = np;
        p->next = mm->buckets[h % MM_BUCKETS];
        mm->buckets[h % MM_BUCKETS] = p;
        mm->n_prims++;
    }
    p->refs++;
    p->last_use = ++mm->tick;
    cache_evict(mm);
    pthread_mutex_unlock(&mm->lock);
    *out = p;
    return dnnl_success;
}

static void cache_put(ds_mm *mm, mm_prim *p)
{
    pthread_mutex_lock(&mm->lock);
    p->refs--;
    pthread_mutex_unlock(&mm->lock);
}

int ds_mm_cached_primitives(ds_mm *mm)
{
    if (!mm)
        return 0;
    pthread_mutex_lock(&mm->lock);
    int n = mm->n_prims;
    pthread_mutex_unlock(&mm->lock);
    return n;
}

/* ---- errors --------------------------------------------------------------------------------- */

static ds_status dnnl_fail(ds_err *err, dnnl_status_t st, const ds_weight *W, const char *what,
                           const mm_key *k)
{
    ds_status code = st == dnnl_out_of_memory ? DS_ERR_NO_MEMORY
                   : st == dnnl_unimplemented ? DS_ERR_UNSUPPORTED
                                              : DS_ERR_INTERNAL;
    return ds_err_set(err, code,
                      "matmul with tensor '%s' (%s, M=%lld K=%lld N=%lld, %s x %s): oneDNN %s "
                      "failed: %s",
                      W->name ? W->name : "?", ds_ggml_type_name(W->type), (long long)k->m,
                      (long long)k->k, (long long)k->n,
                      dnnl_dt2str((dnnl_data_type_t)k->src_dt),
                      dnnl_dt2str((dnnl_data_type_t)k->wei_dt), what, dnnl_status2str(st));
}

/* ---- oneDNN execution ---------------------------------------------------------------------- */

/* Run the primitive of `key` on src/wei/dst (the calling thread's OpenMP thread count is
 * already set). *st_out receives the oneDNN status for the caller's fallback decisions. */
static ds_status mm_exec_prim(ds_mm *mm, mm_slot *slot, mm_prim *p, const mm_key *key,
                              const void *src, const void *wei, float *dst,
                              const ds_weight *W, dnnl_status_t *st_out, ds_err *err)
{
    dnnl_status_t st;
    if (!slot->stream) {
        st = dnnl_stream_create(&slot->stream, mm->engine, dnnl_stream_default_flags);
        if (st != dnnl_success) {
            slot->stream = NULL;
            *st_out = st;
            return dnnl_fail(err, st, W, "stream creation", key);
        }
    }
    if (!buf_reserve(&slot->scratch, &slot->scratch_cap, p->scratch_bytes)) {
        *st_out = dnnl_out_of_memory;
        return ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': scratchpad of %zu "
                          "bytes", W->name ? W->name : "?", p->scratch_bytes);
    }
    dnnl_memory_desc_t smd, wmd, dmd;
    key_mds(key, &smd, &wmd, &dmd);
    if (p->blocked)
        wmd = p->wei_md;
    dnnl_memory_t mem[4] = {NULL, NULL, NULL, NULL};
    st = dnnl_memory_create(&mem[0], &smd, mm->engine, (void *)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mem[1], &wmd, mm->engine, (void *)wei);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mem[2], &dmd, mm->engine, dst);
    int nargs = 3;
    if (st == dnnl_success && p->scratch_bytes) {
        st = dnnl_memory_create(&mem[3], &p->scratch_md, mm->engine, slot->scratch);
        nargs = 4;
    }
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]},
                                   {DNNL_ARG_DST, mem[2]}, {DNNL_ARG_SCRATCHPAD, mem[3]}};
        st = dnnl_primitive_execute(p->prim, slot->stream, nargs, args);
    }
    for (int i = 0; i < 4; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    *st_out = st;
    if (st != dnnl_success)
        return dnnl_fail(err, st, W, "execution", key);
    return DS_OK;
}

/* Run the primitive of `key` (found or created) on src/wei/dst. */
static ds_status mm_exec(ds_mm *mm, mm_slot *slot, const mm_key *key, const void *src,
                         const void *wei, float *dst, const ds_weight *W,
                         dnnl_status_t *st_out, ds_err *err)
{
    mm_prim *p = NULL;
    dnnl_status_t st = cache_get(mm, key, &p);
    *st_out = st;
    if (st != dnnl_success)
        return dnnl_fail(err, st, W, "primitive creation", key);
    ds_status rc = mm_exec_prim(mm, slot, p, key, src, wei, dst, W, st_out, err);
    cache_put(mm, p);
    return rc;
}

/* X (M x K, stride ldx) -> bf16 (M x K, dense), rows in parallel. */
static void convert_x_bf16(ds_isa isa, const float *X, int64_t M, int64_t K, int64_t ldx,
                           uint16_t *out)
{
    MM_OMP("omp parallel for schedule(static)")
    for (int64_t m = 0; m < M; m++)
        ds_f32_to_bf16_row(isa, X + m * ldx, out + m * K, K);
}

static void dequant_tile(ds_isa isa, const ds_type_kernels *tk, bool to_bf16, const char *w,
                         size_t row_bytes, int64_t rows, int64_t K, void *out)
{
    ds_to_f32_fn f32 = ds_pick_to_f32(tk, isa);
    ds_to_bf16_fn bf16 = ds_pick_to_bf16(tk, isa);
    MM_OMP("omp parallel for schedule(static)")
    for (int64_t r = 0; r < rows; r++) {
        if (to_bf16)
            bf16(w + (size_t)r * row_bytes, (uint16_t *)out + r * K, K);
        else
            f32(w + (size_t)r * row_bytes, (float *)out + r * K, K);
    }
}

/* Rows [0, rows) of a K x rows weight tile (K % 32 == 0, block_elems dividing
 * PACK_CHUNK_MAX) -> bf16 in BA16a64b2a at out (rows padded with zeros to a multiple of 64).
 * Types with a ds_type_kernels.pack16 (Q8_0, Q4_K, Q4_0..Q5_1) go straight from their blocks. Others: each group of
 * 16 rows is done in K-chunks of C elements (whole blocks and whole 32-k slices, C <=
 * PACK_CHUNK_MAX, so that the f32 scratch of 16 x C stays in L1): dequantized into the
 * thread's scratch (scr: 16 x PACK_CHUNK_MAX floats per thread), then rounded and packed
 * (pack_bf16.c), while the same chunk of the next group is prefetched. R16 weights (r16):
 * the chunk's blocks of the 16 rows are first restored to rows in the scratch's tail. Measured on one core
 * (Q8_0, 2048-wide rows from DRAM): 5.5 G weights/s with whole rows and no prefetch, 11-12
 * with 128-256 chunks and the prefetch. */
static void dequant_tile_packed(ds_isa isa, const ds_type_kernels *tk, const char *w,
                                size_t row_bytes, int64_t rows, int64_t K, void *out,
                                void *scr, bool r16)
{
    ds_to_f32_fn f32 = ds_pick_to_f32(tk, isa);
    const int64_t be = tk->block_elems;
    int64_t C = be > 32 ? be : 32; /* lcm(block, 32): both divide PACK_CHUNK_MAX */
    while (C * 2 <= PACK_CHUNK_MAX && K % (C * 2) == 0)
        C *= 2;
    const int64_t n16 = (rows + 63) / 64 * 4;
    MM_OMP("omp parallel for schedule(static)")
    for (int64_t s = 0; s < n16; s++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *sc = (float *)scr + (size_t)tid * PACK_SCR_FLOATS;
        /* R16 weights: the chunk's blocks of the 16 rows restored after the f32 scratch */
        char *ur = (char *)(sc + 16 * PACK_CHUNK_MAX);
        uint16_t *dst = (uint16_t *)out + (size_t)(s / 4) * (size_t)K * 64;
        if (tk->pack16 && !r16) { /* the type's direct packer (no f32 scratch) */
            const int64_t r0 = s * 16, nr = rows - r0 < 0 ? 0 : (rows - r0 < 16 ? rows - r0 : 16);
            const char *wr = w + (size_t)(nr ? r0 : 0) * row_bytes;
            const char *nx = r0 + 32 <= rows ? wr + 16 * row_bytes : NULL;
            if (tk->pack16(isa, wr, row_bytes, (int)nr, K, dst, (int)(s % 4), nx))
                continue;
        }
        for (int64_t c = 0; c < K; c += C) {
            const size_t off = (size_t)(c / be) * tk->block_bytes, cb = (size_t)(C / be) * tk->block_bytes;
            if (r16) { /* rows % 16 == 0: group s is whole or padding; its blocks c/be.. are
                        * 16 * cb bytes at 16 * off */
                const char *g = w + (size_t)s * 16 * row_bytes + 16 * off;
                if (s * 16 >= rows) {
                    memset(sc, 0, (size_t)(16 * C) * sizeof(float));
                } else {
                    if ((s + 1) * 16 < rows)
                        for (size_t o = 0; o < 16 * cb; o += 64)
                            __builtin_prefetch(g + 16 * row_bytes + o, 0, 3);
                    ds_r16_unpack_group(isa, tk->type, g, C, ur, cb);
                    for (int64_t i = 0; i < 16; i++)
                        f32(ur + (size_t)i * cb, sc + i * C, C);
                }
                ds_pack_f32_bf16_16rows(isa, sc, C, C, dst + (c / 32) * 2048, (int)(s % 4));
                continue;
            }
            for (int64_t i = 0; i < 16; i++) {
                const int64_t r = s * 16 + i;
                if (r + 16 < rows) {
                    const char *q = w + (size_t)(r + 16) * row_bytes + off;
                    for (size_t o = 0; o < cb; o += 64)
                        __builtin_prefetch(q + o, 0, 3);
                }
                if (r < rows)
                    f32(w + (size_t)r * row_bytes + off, sc + i * C, C);
                else
                    memset(sc + i * C, 0, (size_t)C * sizeof(float));
            }
            ds_pack_f32_bf16_16rows(isa, sc, C, C, dst + (c / 32) * 2048, (int)(s % 4));
        }
    }
}

/* oneDNN 2.6 runs its brgemm kernels (AVX512-BF16, AMX) only for a dense destination and
 * falls back to gemm:jit, 2-3x slower, for rows of Y wider than the product (measured at
 * 512 x 128 x 512 and for the MoE tiles). A product of N < ldy columns therefore writes a
 * dense M x N block in the slot, which dense_done copies into Y. NULL: out of memory. */
static float *dense_dst(mm_slot *slot, int64_t M, int64_t N, int64_t ldy, float *Y)
{
    if (N >= ldy)
        return Y;
    if (!buf_reserve(&slot->dbuf, &slot->dcap, (size_t)M * (size_t)N * sizeof(float)))
        return NULL;
    return slot->dbuf;
}

static void dense_done(const float *D, int64_t M, int64_t N, float *Y, int64_t ldy)
{
    if (D == Y)
        return;
    MM_OMP("omp parallel for schedule(static) if (M * N >= 65536)")
    for (int64_t m = 0; m < M; m++)
        memcpy(Y + m * ldy, D + m * N, (size_t)N * sizeof(float));
}

static ds_status out_tile_nomem(ds_err *err, const ds_weight *W, int64_t M, int64_t N)
{
    return ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': output block of %lld x "
                      "%lld", W->name ? W->name : "?", (long long)M, (long long)N);
}

/* The rows [0, rows) of an R16 weight from wt (a group boundary; rows % 16 == 0) restored to
 * row-major blocks in slot->ubuf, for the paths that read rows. False: out of memory. */
static bool r16_rows(ds_isa isa, const ds_weight *W, mm_slot *slot, const char *wt, int64_t rows,
                     int64_t K)
{
    const size_t rb = W->row_bytes, gb = 16 * rb;
    if (!buf_reserve(&slot->ubuf, &slot->ucap, (size_t)rows * rb))
        return false;
    char *u = slot->ubuf;
    MM_OMP("omp parallel for schedule(static)")
    for (int64_t g = 0; g < rows / 16; g++)
        ds_r16_unpack_group(isa, W->type, wt + (size_t)g * gb, K, u + (size_t)g * gb, rb);
    return true;
}

static ds_status mm_batch(ds_mm *mm, int nthr, const ds_type_kernels *tk, const ds_weight *W,
                          const char *wbase, int64_t N, int64_t K, const float *X, int64_t M,
                          int64_t ldx, float *Y, int64_t ldy, bool use_bf16,
                          dnnl_status_t *st_out, ds_err *err)
{
    ds_isa isa = ds_mm_isa(mm);
    *st_out = dnnl_success;
    mm_slot *slot = slot_get(mm);
    if (!slot)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': out of memory",
                          W->name ? W->name : "?");
    ds_status rc = DS_OK;
    const int32_t f32 = dnnl_f32, bf16 = dnnl_bf16;
    const void *src = X;
    int64_t src_ld = ldx;
    if (use_bf16 && W->type != DS_GGML_F32) {
        if (!buf_reserve(&slot->xbuf, &slot->xcap, (size_t)M * K * 2)) {
            rc = ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': bf16 copy of X "
                            "(%lld x %lld)", W->name ? W->name : "?", (long long)M,
                            (long long)K);
            goto out;
        }
        convert_x_bf16(isa, X, M, K, ldx, slot->xbuf);
        src = slot->xbuf;
        src_ld = K;
    }

    if (W->type == DS_GGML_F32 || (W->type == DS_GGML_BF16 && use_bf16)) {
        /* the weights in place */
        float *D = dense_dst(slot, M, N, ldy, Y);
        if (!D) {
            rc = out_tile_nomem(err, W, M, N);
            goto out;
        }
        const bool f = W->type == DS_GGML_F32;
        mm_key key = {M, K, N, f ? ldx : src_ld, D == Y ? ldy : N, K, f ? f32 : bf16,
                      f ? f32 : bf16, 0, nthr};
        rc = mm_exec(mm, slot, &key, f ? (const void *)X : src, wbase, D, W, st_out, err);
        if (rc == DS_OK)
            dense_done(D, M, N, Y, ldy);
    } else {
        /* Dequantize tiles of rows (bf16 for FAST, f32 otherwise) and multiply each. In
         * bf16 with K a multiple of 32, the tiles are written in the primitive's blocked
         * layout when it has the one pack_bf16.c knows. */
        const bool pack = use_bf16 && K % 32 == 0 && isa >= DS_ISA_AVX512 &&
                          PACK_CHUNK_MAX % tk->block_elems == 0;
        /* tile rows: a multiple of rq (packed: whole 64-column blocks, as many per tile as
         * the threads can share evenly, which is how oneDNN splits them) */
        const int64_t rq = pack ? 64 * (int64_t)nthr : 16;
        size_t es = use_bf16 ? 2 : 4;
        int64_t nt = (int64_t)(mm->tile_bytes / ((size_t)K * es)) / rq * rq;
        if (nt < rq)
            nt = rq;
        if (nt >= N) {
            nt = N;
        } else {
            int64_t ntiles = (N + nt - 1) / nt;   /* balance the tiles */
            nt = ((N + ntiles - 1) / ntiles + rq - 1) / rq * rq;
        }
        const int64_t ntp = pack ? (nt + 63) / 64 * 64 : nt; /* rows with the padding */
        if (!buf_reserve(&slot->wbuf, &slot->wcap, (size_t)ntp * K * es) ||
            (pack && !buf_reserve(&slot->pbuf, &slot->pcap, (size_t)nthr *
                                                                PACK_SCR_FLOATS * sizeof(float)))) {
            rc = ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': weight tile of "
                            "%lld x %lld", W->name ? W->name : "?", (long long)nt, (long long)K);
            goto out;
        }
        for (int64_t n = 0; n < N && rc == DS_OK; n += nt) {
            int64_t nn = N - n < nt ? N - n : nt;
            float *D = dense_dst(slot, M, nn, ldy, Y + n);
            if (!D) {
                rc = out_tile_nomem(err, W, M, nn);
                break;
            }
            mm_key key = {M, K, nn, src_ld, D == Y + n ? ldy : nn, K, use_bf16 ? bf16 : f32,
                          use_bf16 ? bf16 : f32, pack ? 1 : 0, nthr};
            mm_prim *p = NULL;
            dnnl_status_t st = cache_get(mm, &key, &p);
            *st_out = st;
            if (st != dnnl_success) {
                rc = dnnl_fail(err, st, W, "primitive creation", &key);
                break;
            }
            const char *wt = wbase + (size_t)n * W->row_bytes;
            if (W->layout == DS_LAYOUT_R16 && !p->blocked) {
                if (!r16_rows(isa, W, slot, wt, nn, K)) {
                    cache_put(mm, p);
                    rc = ds_err_set(err, DS_ERR_NO_MEMORY, "matmul with tensor '%s': weight "
                                    "rows of %lld x %lld", W->name ? W->name : "?",
                                    (long long)nn, (long long)K);
                    break;
                }
                wt = slot->ubuf;
            }
            if (p->blocked)
                dequant_tile_packed(isa, tk, wt, W->row_bytes, nn, K, slot->wbuf, slot->pbuf,
                                    W->layout == DS_LAYOUT_R16);
            else
                dequant_tile(isa, tk, use_bf16, wt, W->row_bytes, nn, K, slot->wbuf);
            rc = mm_exec_prim(mm, slot, p, &key, src, slot->wbuf, D, W, st_out, err);
            cache_put(mm, p);
            if (rc == DS_OK)
                dense_done(D, M, nn, Y + n, ldy);
        }
    }
out:
    slot_put(mm, slot);
    return rc;
}

/* ---- GEMV ----------------------------------------------------------------------------------- */

/* Rows [*r0, *r1) of thread t among nt: interior boundaries fall on 64-byte lines of y
 * (a0 rows reach the first line boundary, then whole lines of 16 floats are shared out). */
static int64_t split_bound(int64_t a0, int64_t units, int64_t N, int j, int nt)
{
    if (j == 0)
        return 0;
    if (j == nt)
        return N;
    int64_t b = a0 + 16 * (units * j / nt);
    return b < N ? b : N;
}

static void split_rows(const float *y, int64_t N, int t, int nt, int64_t *r0, int64_t *r1)
{
    int64_t mis = (int64_t)(((uintptr_t)y & 63) / sizeof(float));
    int64_t a0 = mis ? 16 - mis : 0;
    if (a0 > N)
        a0 = N;
    int64_t units = (N - a0 + 15) / 16;
    *r0 = split_bound(a0, units, N, t, nt);
    *r1 = split_bound(a0, units, N, t + 1, nt);
}

/* mm_gemv for an R16 weight (wbase at a group boundary, N % 16 == 0): the threads share the
 * groups out evenly. With an R16 kernel (r16: FAST precision, AVX512-VNNI) the groups are read
 * in place; otherwise each group is restored to rows in the thread's part of slot->ubuf and
 * given to the row kernels (q8, or f32 when q8 is NULL). */
static ds_status mm_gemv_r16(ds_isa isa, const ds_weight *W, const char *wbase, int64_t N,
                             int64_t K, const float *X, int64_t M, int64_t ldx, float *Y, int64_t ldy,
                             ds_r16_gemv_fn r16, ds_gemv_q8_fn q8, ds_gemv_f32_fn f32,
                             mm_slot *slot, const ds_qact *xa, int nt, ds_err *err)
{
    const size_t rb = W->row_bytes, gb = 16 * rb;
    const int64_t G = N / 16;
    if (!r16 && !buf_reserve(&slot->ubuf, &slot->ucap, (size_t)nt * gb))
        return ds_err_set(err, DS_ERR_NO_MEMORY, "GEMV with tensor '%s': out of memory",
                          W->name ? W->name : "?");
    MM_OMP("omp parallel num_threads(nt) if (nt > 1)")
    {
        int t, team;
        omp_team(&t, &team);
        const int64_t g0 = G * t / team, g1 = G * (t + 1) / team;
        if (r16) {
            if (g1 > g0)
                r16(wbase + (size_t)g0 * gb, g1 - g0, K, xa, (int)M, Y + g0 * 16, ldy);
        } else {
            char *u = (char *)slot->ubuf + (size_t)t * gb;
            for (int64_t g = g0; g < g1; g++) {
                ds_r16_unpack_group(isa, W->type, wbase + (size_t)g * gb, K, u, rb);
                if (q8)
                    q8(u, rb, 16, K, xa, (int)M, Y + g * 16, ldy);
                else
                    f32(u, rb, 16, K, X, ldx, (int)M, Y + g * 16, ldy);
            }
        }
    }
    return DS_OK;
}

/* Y (M x N) = X * W^T with the GEMV kernels, M <= a few rows. */
static ds_status mm_gemv(ds_mm *mm, int nthr, const ds_type_kernels *tk, const ds_weight *W,
                         const char *wbase, int64_t N, int64_t K, const float *X, int64_t M,
                         int64_t ldx, float *Y, int64_t ldy, ds_err *err)
{
    ds_isa isa = ds_mm_isa(mm);
    ds_gemv_q8_fn q8 = mm->precision == DS_PRECISION_FAST ? ds_pick_gemv_q8(tk, isa) : NULL;
    ds_gemv_f32_fn f32 = ds_pick_gemv_f32(tk, isa);
    const bool r16_layout = W->layout == DS_LAYOUT_R16;
    ds_r16_gemv_fn r16 = r16_layout && q8 ? ds_r16_gemv(W->type, isa) : NULL;
    mm_slot *slot = NULL;
    ds_qact xa = {0};
    if (q8 || r16_layout) { /* R16 without an R16 kernel: the slot holds the restored rows */
        slot = slot_get(mm);
        if (!slot || (q8 && !buf_reserve(&slot->xbuf, &slot->xcap, ds_qact_size(tk->act, M, K)))) {
            slot_put(mm, slot);
            return ds_err_set(err, DS_ERR_NO_MEMORY, "GEMV with tensor '%s': out of memory",
                              W->name ? W->name : "?");
        }
        if (q8)
            ds_qact_quantize(isa, tk->act, X, M, ldx, K, slot->xbuf, &xa);
    }
    size_t row_bytes = W->row_bytes;
    int nt = nthr;
    if ((size_t)N * row_bytes < MM_GEMV_MIN_BYTES || N < 32)
        nt = 1;
    if (nt > (N + 15) / 16)
        nt = (int)((N + 15) / 16);
    if (r16_layout) {
        ds_status rc = mm_gemv_r16(isa, W, wbase, N, K, X, M, ldx, Y, ldy, r16, q8, f32, slot, &xa,
                                   nt, err);
        slot_put(mm, slot);
        return rc;
    }
    MM_OMP("omp parallel num_threads(nt) if (nt > 1)")
    {
        int t, team;
        omp_team(&t, &team);
        int64_t r0, r1;
        split_rows(Y, N, t, team, &r0, &r1);
        if (r1 > r0) {
            const char *w = wbase + (size_t)r0 * row_bytes;
            if (q8)
                q8(w, row_bytes, r1 - r0, K, &xa, (int)M, Y + r0, ldy);
            else
                f32(w, row_bytes, r1 - r0, K, X, ldx, (int)M, Y + r0, ldy);
        }
    }
    slot_put(mm, slot);
    return DS_OK;
}

/* ---- entry points ------------------------------------------------------------------------- */

ds_mm_path ds_mm_path_of(ds_mm *mm, uint32_t type, int64_t M)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    bool fast = mm->precision == DS_PRECISION_FAST;
    bool use_bf16 = fast && ds_mm_isa(mm) == DS_ISA_AVX512 && ds_cpu_get()->avx512bf16 &&
                    atomic_load(&mm->bf16_ok);
    /* oneDNN uses the weights in place for F32, and for BF16 in bf16 compute; every other
     * case first dequantizes the whole matrix into tiles, which small batches do not repay. */
    bool in_place = type == DS_GGML_F32 || (type == DS_GGML_BF16 && use_bf16);
    int64_t max_tiled = tk && tk->gemv_max_m ? tk->gemv_max_m : MM_GEMV_MAX_M_TILED;
    if (M <= (in_place ? MM_GEMV_MAX_M_INPLACE : max_tiled)) {
        bool q8 = fast && tk && tk->gemv_q8[DS_ISA_SCALAR] && tk->act != DS_ACT_NONE;
        return q8 ? DS_MM_GEMV_Q8 : DS_MM_GEMV_F32;
    }
    return use_bf16 && type != DS_GGML_F32 ? DS_MM_DNNL_BF16 : DS_MM_DNNL_F32;
}

/* The argument checks of ds_mm_run_rows (and of ds_mm_run_heads, per head): DS_OK and the
 * type's kernels in *tk_out, or the error. */
static ds_status mm_check(const ds_mm *mm, const ds_weight *W, int64_t expert, int64_t n0,
                          int64_t n1, const float *X, int64_t M, int64_t ldx, const float *Y,
                          int64_t ldy, const ds_type_kernels **tk_out, ds_err *err)
{
    if (!mm || !W)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_run: %s is NULL", mm ? "W" : "mm");
    const char *name = W->name ? W->name : "?";
    if (!W->data)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "matmul with tensor '%s': tensor absent",
                          name);
    const ds_type_kernels *tk = ds_type_kernels_get(W->type);
    if (!tk)
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "matmul with tensor '%s': weight type %s (%u) is not supported",
                          name, ds_ggml_type_name(W->type), W->type);
    int64_t K = W->ne[0], N = W->ne[1], n_exp = W->ne[2] > 0 ? W->ne[2] : 1;
    if (K <= 0 || N <= 0 || K % tk->block_elems ||
        W->row_bytes != (size_t)(K / tk->block_elems) * tk->block_bytes)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': bad shape %lld x %lld for type %s (row "
                          "bytes %zu)", name, (long long)K, (long long)N,
                          ds_ggml_type_name(W->type), W->row_bytes);
    if (expert < 0 || expert >= n_exp)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': expert %lld out of range [0, %lld)", name,
                          (long long)expert, (long long)n_exp);
    if (W->nbytes && W->nbytes < (size_t)n_exp * (size_t)N * W->row_bytes)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': %zu bytes for %lld x %lld x %lld", name,
                          W->nbytes, (long long)K, (long long)N, (long long)n_exp);
    if (n0 < 0 || n1 > N || n0 >= n1)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': rows [%lld, %lld) not within [0, %lld)",
                          name, (long long)n0, (long long)n1, (long long)N);
    if (W->layout == DS_LAYOUT_R16 &&
        (!ds_r16_type(W->type) || N % 16 || n0 % 16 || n1 % 16))
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': rows [%lld, %lld) of %lld are not whole "
                          "groups of the 16-row layout (type %s)", name, (long long)n0,
                          (long long)n1, (long long)N, ds_ggml_type_name(W->type));
    if (W->layout != DS_LAYOUT_ROWS && W->layout != DS_LAYOUT_R16)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "matmul with tensor '%s': unknown layout %u",
                          name, W->layout);
    if (M < 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "matmul with tensor '%s': M = %lld", name,
                          (long long)M);
    *tk_out = tk;
    if (M == 0)
        return DS_OK;
    if (!X || !Y || ldx < K || ldy < n1 - n0)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "matmul with tensor '%s': X/Y NULL or ldx %lld < K %lld or ldy %lld "
                          "< N %lld", name, (long long)ldx, (long long)K, (long long)ldy,
                          (long long)(n1 - n0));
    return DS_OK;
}

ds_status ds_mm_run_rows(ds_mm *mm, const ds_weight *W, int64_t expert, int64_t n0, int64_t n1,
                         const float *X, int64_t M, int64_t ldx, float *Y, int64_t ldy,
                         ds_err *err)
{
    const ds_type_kernels *tk = NULL;
    ds_status cs = mm_check(mm, W, expert, n0, n1, X, M, ldx, Y, ldy, &tk, err);
    if (cs != DS_OK || M == 0)
        return cs;
    const int64_t K = W->ne[0], N = W->ne[1];
    const char *wbase = (const char *)W->data + ((size_t)expert * N + n0) * W->row_bytes;
    int64_t Nr = n1 - n0;
    /* inside a parallel region (job pieces, per-head and per-expert loops) the call gets one
     * thread: the nested region would have one anyway, and oneDNN must know it */
    int nthr = mm->n_threads;
#ifdef _OPENMP
    if (omp_in_parallel())
        nthr = 1;
#endif
    int prev = omp_enter(nthr);
    ds_status rc;
    ds_mm_path path = ds_mm_path_of(mm, W->type, M);
    if (path == DS_MM_GEMV_F32 || path == DS_MM_GEMV_Q8) {
        rc = mm_gemv(mm, nthr, tk, W, wbase, Nr, K, X, M, ldx, Y, ldy, err);
    } else {
        bool use_bf16 = path == DS_MM_DNNL_BF16;
        dnnl_status_t st;
        rc = mm_batch(mm, nthr, tk, W, wbase, Nr, K, X, M, ldx, Y, ldy, use_bf16, &st, err);
        if (rc != DS_OK && use_bf16 && st == dnnl_unimplemented) {
            atomic_store(&mm->bf16_ok, 0);   /* this oneDNN cannot: compute in f32 from now */
            ds_err_clear(err);
            rc = mm_batch(mm, nthr, tk, W, wbase, Nr, K, X, M, ldx, Y, ldy, false, &st, err);
        }
    }
    omp_leave(prev, nthr);
    return rc;
}

ds_status ds_mm_run(ds_mm *mm, const ds_weight *W, int64_t expert, const float *X, int64_t M,
                    int64_t ldx, float *Y, int64_t ldy, ds_err *err)
{
    if (!W)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_run: W is NULL");
    return ds_mm_run_rows(mm, W, expert, 0, W->ne[1], X, M, ldx, Y, ldy, err);
}

/* ---- direct GEMV calls (ds_mm_run_heads, ds_mm_run_jobs) ----------------------------------- */

/* The int8 GEMV kernel that serves W for M rows straight from its row layout (what ds_mm_run
 * would call), or NULL where ds_mm_run takes another path (f32, oneDNN, R16). */
static ds_gemv_q8_fn mm_direct_q8(ds_mm *mm, const ds_weight *W, int64_t M)
{
    if (W->layout != DS_LAYOUT_ROWS || ds_mm_path_of(mm, W->type, M) != DS_MM_GEMV_Q8)
        return NULL;
    return ds_pick_gemv_q8(ds_type_kernels_get(W->type), ds_mm_isa(mm));
}

/* Bytes of M quantized activation rows of K, rounded up so that the next buffer stays 64-byte
 * aligned. */
static size_t qact_bytes64(ds_act_kind act, int64_t M, int64_t K)
{
    return (ds_qact_size(act, M, K) + 63) & ~(size_t)63;
}

/* The first error of a parallel loop: *first / *first_err keep it, later ones are dropped. */
static void keep_first_err(ds_status *first, ds_err *first_err, ds_status s, const ds_err *e)
{
    MM_OMP("omp critical(ds_mm_first_err)")
    if (*first == DS_OK) {
        *first = s;
        *first_err = *e;
    }
}

/* Per-head products in one OpenMP loop over heads (static: thread t takes a contiguous range
 * of heads, so its weights are one contiguous stretch). On the int8 GEMV path (row layout,
 * M small) each head's activation is quantized into its own part of one slot buffer and the
 * kernel called directly: the same operations as ds_mm_run per head (same quantization, same
 * kernel, same rows), without a nested region, slot and quantization call per head. Otherwise
 * each head is a ds_mm_run on one thread. */
ds_status ds_mm_run_heads(ds_mm *mm, const ds_weight *W, int64_t n_heads, const float *X,
                          int64_t xh, int64_t ldx, int64_t M, float *Y, int64_t yh, int64_t ldy,
                          ds_err *err)
{
    if (!mm || !W)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_run_heads: %s is NULL",
                          mm ? "W" : "mm");
    if (n_heads < 0 || xh < 0 || yh < 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "ds_mm_run_heads with tensor '%s': %lld heads, strides %lld / %lld",
                          W->name ? W->name : "?", (long long)n_heads, (long long)xh,
                          (long long)yh);
    const ds_type_kernels *tk = NULL;
    for (int64_t i = 0; i < n_heads; i++) {
        ds_status cs = mm_check(mm, W, i, 0, W->ne[1], X ? X + i * xh : NULL, M, ldx,
                                Y ? Y + i * yh : NULL, ldy, &tk, err);
        if (cs != DS_OK)
            return cs;
    }
    if (n_heads == 0 || M == 0)
        return DS_OK;
    const int64_t K = W->ne[0], N = W->ne[1];
    const size_t rb = W->row_bytes;
    const ds_isa isa = ds_mm_isa(mm);
    int nthr = mm->n_threads;
#ifdef _OPENMP
    if (omp_in_parallel())
        nthr = 1;
#endif
    const double macs = (double)n_heads * (double)N * (double)K * (double)M;
    int nt = nthr > 1 && n_heads > 1 && macs >= MM_HEADS_PAR_MIN_MACS ? nthr : 1;
    if (nt > n_heads)
        nt = (int)n_heads;
    const ds_gemv_q8_fn q8 = mm_direct_q8(mm, W, M);
    if (q8) {
        const size_t xs = qact_bytes64(tk->act, M, K);
        mm_slot *slot = slot_get(mm);
        if (!slot || !buf_reserve(&slot->xbuf, &slot->xcap, (size_t)n_heads * xs)) {
            slot_put(mm, slot);
            return ds_err_set(err, DS_ERR_NO_MEMORY, "GEMV with tensor '%s': out of memory",
                              W->name ? W->name : "?");
        }
        char *xbuf = slot->xbuf;
        const char *w = W->data;
        MM_OMP("omp parallel for schedule(static) num_threads(nt) if (nt > 1)")
        for (int64_t i = 0; i < n_heads; i++) {
            ds_qact xa;
            ds_qact_quantize(isa, tk->act, X + i * xh, M, ldx, K, xbuf + (size_t)i * xs, &xa);
            q8(w + (size_t)i * (size_t)N * rb, rb, N, K, &xa, (int)M, Y + i * yh, ldy);
        }
        slot_put(mm, slot);
        return DS_OK;
    }
    ds_status first = DS_OK;
    ds_err first_err;
    ds_err_clear(&first_err);
    MM_OMP("omp parallel for schedule(static) num_threads(nt) if (nt > 1)")
    for (int64_t i = 0; i < n_heads; i++) {
        ds_err e;
        ds_err_clear(&e);
        ds_status st = ds_mm_run(mm, W, i, X + i * xh, M, ldx, Y + i * yh, ldy, &e);
        if (st != DS_OK)
            keep_first_err(&first, &first_err, st, &e);
    }
    if (first != DS_OK && err)
        *err = first_err;
    return first;
}

/* Independent products of few rows in ONE OpenMP region instead of one fork/join (and one
 * static half/half row split) each. The threads take pieces of the weight rows from a shared
 * cursor (job by job, in order) until none are left. A piece is a multiple of 16 rows
 * (threads do not share lines of Y) of about 1/(2 nt) of the bytes still to take, between
 * MM_JOB_PIECE_MIN and MM_JOB_PIECE_MAX: large while much is left, small at the end, so that
 * the threads finish close together (with fixed 2 MiB pieces a thread waited half a piece on
 * average at the end of every group). On the int8 GEMV path (row layout) each job's
 * activation is quantized once, before the region (once for all the jobs that read the same
 * rows in the same format), and a piece is one direct kernel call;
 * otherwise a piece is a single-threaded ds_mm_run_rows. The GEMV kernels compute every row
 * on its own, so the results are exactly those of one ds_mm_run per product. Products of more
 * than MM_JOB_MAX_M rows (oneDNN), and everything with one thread, run one after the other
 * through ds_mm_run. */
ds_status ds_mm_run_jobs(ds_mm *mm, const ds_mm_job *jobs, int n, ds_err *err)
{
    if (!mm || (n > 0 && !jobs) || n < 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_mm_run_jobs: bad arguments");
    int nthr = mm->n_threads;
#ifdef _OPENMP
    if (omp_in_parallel())
        nthr = 1;
#endif
    const ds_isa isa = ds_mm_isa(mm);
    size_t left = 0;   /* weight bytes of the piecewise jobs not yet taken */
    size_t xbytes = 0; /* their quantized activations */
    for (int j = 0; j < n; j++) {
        const ds_mm_job *jb = &jobs[j];
        if (nthr == 1 || jb->m > MM_JOB_MAX_M) {
            ds_status s = ds_mm_run(mm, jb->w, jb->expert, jb->x, jb->m, jb->ldx, jb->y, jb->ldy,
                                    err);
            if (s != DS_OK)
                return s;
            continue;
        }
        const ds_type_kernels *tk = NULL;
        ds_status cs = mm_check(mm, jb->w, jb->expert, 0, jb->w ? jb->w->ne[1] : 1, jb->x, jb->m,
                                jb->ldx, jb->y, jb->ldy, &tk, err);
        if (cs != DS_OK)
            return cs;
        if (jb->m == 0)
            continue;
        left += (size_t)jb->w->ne[1] * jb->w->row_bytes;
        if (mm_direct_q8(mm, jb->w, jb->m))
            xbytes += qact_bytes64(tk->act, jb->m, jb->w->ne[0]);
    }
    if (left == 0)
        return DS_OK;
    /* the slot's xbuf: per job its direct kernel (NULL: none) and quantized activation, then
     * the activations */
    typedef struct { ds_gemv_q8_fn q8; ds_qact xa; } job_act;
    const size_t hdr = ((size_t)n * sizeof(job_act) + 63) & ~(size_t)63;
    mm_slot *slot = slot_get(mm);
    if (!slot || !buf_reserve(&slot->xbuf, &slot->xcap, hdr + xbytes)) {
        slot_put(mm, slot);
        return ds_err_set(err, DS_ERR_NO_MEMORY, "ds_mm_run_jobs: out of memory");
    }
    job_act *ja = slot->xbuf;
    char *xq = (char *)slot->xbuf + hdr;
    for (int j = 0; j < n; j++) {
        const ds_mm_job *jb = &jobs[j];
        ja[j].q8 = jb->m == 0 || jb->m > MM_JOB_MAX_M ? NULL : mm_direct_q8(mm, jb->w, jb->m);
        if (!ja[j].q8)
            continue;
        const ds_act_kind act = ds_type_kernels_get(jb->w->type)->act;
        const int64_t K = jb->w->ne[0];
        /* jobs that read the same rows in the same activation format share one quantization
         * (a decode step's q and kv_a, every expert's gate and up: the same bits) */
        int i = 0;
        for (; i < j; i++)
            if (ja[i].q8 && jobs[i].x == jb->x && jobs[i].m == jb->m &&
                jobs[i].ldx == jb->ldx && jobs[i].w->ne[0] == K &&
                ds_type_kernels_get(jobs[i].w->type)->act == act)
                break;
        if (i < j) {
            ja[j].xa = ja[i].xa;
            continue;
        }
        ds_qact_quantize(isa, act, jb->x, jb->m, jb->ldx, K, xq, &ja[j].xa);
        xq += qact_bytes64(act, jb->m, K);
    }
    int cj = 0; /* cursor: job cj, row crow (guarded by the critical section) */
    int64_t crow = 0;
    const size_t div = 2 * (size_t)nthr;
    ds_status first = DS_OK;
    ds_err first_err;
    ds_err_clear(&first_err);
    int prev = omp_enter(nthr);
    MM_OMP("omp parallel num_threads(nthr)")
    for (;;) {
        int j = -1;
        int64_t n0 = 0, n1 = 0;
        MM_OMP("omp critical(ds_mm_job_take)")
        {
            while (cj < n && (jobs[cj].m == 0 || jobs[cj].m > MM_JOB_MAX_M ||
                              crow >= jobs[cj].w->ne[1])) {
                cj++;
                crow = 0;
            }
            if (cj < n) {
                const size_t rb = jobs[cj].w->row_bytes;
                size_t want = left / div;
                want = want < MM_JOB_PIECE_MIN   ? MM_JOB_PIECE_MIN
                       : want > MM_JOB_PIECE_MAX ? MM_JOB_PIECE_MAX
                                                 : want;
                int64_t r = (int64_t)(want / rb) & ~(int64_t)15;
                if (r < 16)
                    r = 16;
                const int64_t N = jobs[cj].w->ne[1];
                j = cj;
                n0 = crow;
                n1 = crow + r < N ? crow + r : N;
                crow = n1;
                left -= (size_t)(n1 - n0) * rb;
            }
        }
        if (j < 0)
            break;
        const ds_mm_job *jb = &jobs[j];
        if (ja[j].q8) {
            const ds_weight *W = jb->w;
            const char *w = (const char *)W->data +
                            ((size_t)jb->expert * (size_t)W->ne[1] + (size_t)n0) * W->row_bytes;
            ja[j].q8(w, W->row_bytes, n1 - n0, W->ne[0], &ja[j].xa, (int)jb->m, jb->y + n0,
                     jb->ldy);
            continue;
        }
        ds_err e;
        ds_err_clear(&e);
        ds_status s = ds_mm_run_rows(mm, jb->w, jb->expert, n0, n1, jb->x, jb->m, jb->ldx,
                                     jb->y + n0, jb->ldy, &e);
        if (s != DS_OK)
            keep_first_err(&first, &first_err, s, &e);
    }
    omp_leave(prev, nthr);
    slot_put(mm, slot);
    if (first != DS_OK && err)
        *err = first_err;
    return first;
}
