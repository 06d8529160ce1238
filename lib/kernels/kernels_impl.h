/*
 * lib/kernels/kernels_impl.h — internal interfaces of lib/kernels, shared with its tests.
 *
 * Owns: the ISA-parameterised row kernels behind the public entry points of kernels.h. Every
 * SIMD kernel takes the ISA level explicitly (there is no global "forced ISA"): the public
 * functions pass ds_isa_best(), a ds_mm passes its own level (ds_mm_set_isa), and tests call
 * these functions once per level the CPU has.
 *
 * SIMD code is compiled per function with __attribute__((target(...))) (no global -m flags),
 * so the library runs on any x86-64 and keeps a portable C path; on other architectures only
 * the C path is built.
 */
#ifndef DS_KERNELS_KERNELS_IMPL_H
#define DS_KERNELS_KERNELS_IMPL_H

#include "kernels/kernels.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* -DDS_KERNELS_NO_X86 builds the portable C kernels only (to check that configuration). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(DS_KERNELS_NO_X86)
#define DS_KERNELS_X86 1
#define DS_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DS_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))
#define DS_TARGET_AVX512VNNI \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define DS_TARGET_AVX512BF16 \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512bf16")))
#else
#define DS_KERNELS_X86 0
#endif

#define DS_ISA_COUNT 3

/* GEMV kernels prefetch the weight stream this many bytes ahead: measured +30-50% single-thread
 * DRAM throughput over the hardware prefetcher alone (Q8_0 7 -> 10.5 GB/s). 2048 rather than
 * 1024 since the kernels read four streams per thread at ~25 GB/s per core: 2 threads from DRAM
 * (bench-kernels-quant 2048 32768, three alternating runs on the 2-core AMD VM) Q4_K 33-36 ->
 * 45-63 GB/s, Q6_K 35-38 -> 39-63, Q8_0 31-51 -> 50-61; 4096 was no better and more erratic,
 * an L2 hint (prefetcht1) no different. */
#define DS_PF_DIST 2048
#if defined(__GNUC__) || defined(__clang__)
#define DS_PREFETCH(p) __builtin_prefetch((const char *)(p) + DS_PF_DIST, 0, 3)
#else
#define DS_PREFETCH(p) ((void)0)
#endif

/* Detected once (thread-safe, idempotent); the result never changes afterwards. */
const ds_cpu_features *ds_cpu_get(void);
/* `isa` lowered to the highest level this CPU supports (values out of range -> best). */
ds_isa ds_isa_clamp(ds_isa isa);

/* ---- per-type kernels ------------------------------------------------------------------ */

/* Dequantize n elements (a multiple of the block size) to f32 / to bf16 (round to nearest
 * even, as ds_f32_to_bf16). */
typedef void (*ds_to_f32_fn)(const void *src, float *dst, int64_t n);
typedef void (*ds_to_bf16_fn)(const void *src, uint16_t *dst, int64_t n);
/*
 * Quantized activation rows (formats.md §2.5), the second operand of the int8 GEMVs. Row m of
 * k elements:
 *   q      int8 values, at q + m*k
 *   d      block scales as f32: Q8_0/Q8_1 one per 32 elements (the f16-rounded amax/127), at
 *          d + m*(k/32); Q8_K one per 256 elements (1/iscale, negative when the largest-|x|
 *          value is positive), at d + m*(k/256)
 *   s      Q8_1 only: d * sum(q) per 32 elements (exact in f32: 11-bit d times a 12-bit sum;
 *          ggml rounds it to f16), at s + m*(k/32)
 *   bsums  Q8_K only: sum(q) per 16 elements, at bsums + m*(k/16)
 * Q8_1 here is Q8_0 (identical q and d) plus s; the legacy weight types use s for their
 * offset term (Q4_0/Q5_0: -8d/-16d, Q4_1/Q5_1: +m), which is an exact integer identity, so
 * Q4_0/Q5_0 keep the Q8_0 pairing of formats.md §2.5.
 */
typedef enum ds_act_kind {
    DS_ACT_NONE = 0,   /* no int8 GEMV */
    DS_ACT_Q8_0 = 1,
    DS_ACT_Q8_1 = 2,
    DS_ACT_Q8_K = 3
} ds_act_kind;

typedef struct ds_qact {
    const int8_t *q;
    const float *d;
    const float *s;
    const int16_t *bsums;
} ds_qact;

/* Bytes of a buffer for M quantized rows of k elements (k a multiple of the block size). */
size_t ds_qact_size(ds_act_kind kind, int64_t M, int64_t k);
/* Quantize M rows of X (row stride ldx) into buf (ds_qact_size bytes, 64-byte aligned) and
 * describe them in *out. Identical bits at every ISA level. */
void ds_qact_quantize(ds_isa isa, ds_act_kind kind, const float *X, int64_t M, int64_t ldx,
                      int64_t k, void *buf, ds_qact *out);
/* The activation rows m0.. of `a` (for kernels that take rows in groups). */
ds_qact ds_qact_rows(const ds_qact *a, int64_t k, int m0);

/*
 * GEMV: y[m][r] = sum_k W[r][k] * x[m][k] for r < nr and m < nx, W rows `rb` bytes apart,
 * activation rows `ldx` floats apart, output rows `ldy` floats apart. Each weight vector is
 * loaded once per group of DS_GEMV_NX activation rows.
 *   f32 activations: products of the exactly dequantized weight and x, accumulated in f32.
 *   quantized activations (ds_qact of the type's act kind, rows 0..nx-1): int8 dot products
 *   per block, scaled and summed in f32 (formats.md §2.5).
 */
#define DS_GEMV_NX 4
#define DS_GEMV_F32_PARAMS                                                                  \
    const void *w, size_t rb, int64_t nr, int64_t k, const float *x, int64_t ldx, int nx,   \
        float *y, int64_t ldy
#define DS_GEMV_Q8_PARAMS                                                                   \
    const void *w, size_t rb, int64_t nr, int64_t k, const ds_qact *xa, int nx, float *y,   \
        int64_t ldy
typedef void (*ds_gemv_f32_fn)(DS_GEMV_F32_PARAMS);
typedef void (*ds_gemv_q8_fn)(DS_GEMV_Q8_PARAMS);
/* nrows (<= 16; the rest zero) rows of K elements, row_bytes apart, straight into columns
 * sub*16 .. sub*16+15 of a 64-column block of oneDNN's bf16 layout BA16a64b2a (pack_bf16.c),
 * bit-identical to the type's f32 dequantization -> ds_pack_f32_bf16_16rows; next (or NULL):
 * the following 16 rows, prefetched. False (nothing done) where the ISA cannot. */
typedef bool (*ds_pack16_fn)(ds_isa isa, const void *w, size_t row_bytes, int nrows, int64_t K,
                             uint16_t *dst, int sub, const void *next);

/*
 * The table of weight types the kernels handle: one entry per ggml type, with one function per
 * ISA level (a NULL slot falls back to the next lower level; the DS_ISA_SCALAR slot is always
 * set). New block formats (Q4_0, Q4_K, ...) are added here and in a file of their own.
 */
typedef struct ds_type_kernels {
    uint32_t type;
    uint32_t block_elems;
    uint32_t block_bytes;
    ds_to_f32_fn to_f32[DS_ISA_COUNT];
    ds_to_bf16_fn to_bf16[DS_ISA_COUNT];
    ds_gemv_f32_fn gemv_f32[DS_ISA_COUNT];
    ds_gemv_q8_fn gemv_q8[DS_ISA_COUNT];   /* all NULL: the type has no int8 GEMV */
    ds_act_kind act;                       /* activation format of gemv_q8 */
    uint8_t gemv_max_m;                    /* batches up to this many rows use the GEMV
                                              (0: mm.c's default for tiled weights) */
    ds_pack16_fn pack16;                   /* prefill tiles without the f32 scratch, or NULL */
} ds_type_kernels;

/* NULL for a type without kernels. */
const ds_type_kernels *ds_type_kernels_get(uint32_t type);

/* The functions of `tk` for `isa` (already clamped), falling back to lower levels. */
ds_to_f32_fn ds_pick_to_f32(const ds_type_kernels *tk, ds_isa isa);
ds_to_bf16_fn ds_pick_to_bf16(const ds_type_kernels *tk, ds_isa isa);
ds_gemv_f32_fn ds_pick_gemv_f32(const ds_type_kernels *tk, ds_isa isa);
ds_gemv_q8_fn ds_pick_gemv_q8(const ds_type_kernels *tk, ds_isa isa);   /* NULL: none */

/* ISA-explicit forms of the public conversions (false: type without a dequantizer). */
bool ds_dequant_row_isa(ds_isa isa, uint32_t type, const void *src, float *dst, int64_t n);
bool ds_dequant_row_bf16_isa(ds_isa isa, uint32_t type, const void *src, uint16_t *dst,
                             int64_t n);
void ds_f32_to_bf16_row(ds_isa isa, const float *src, uint16_t *dst, int64_t n);

/* 16 f32 rows (src, row stride ld elements; Kp columns, Kp % 32 == 0: N-rows of a K x N
 * weight), rounded to bf16 as ds_f32_to_bf16 -> columns sub*16 .. sub*16+15 (sub in 0..3) of
 * the 64-column block of oneDNN's BA16a64b2a layout starting at dst (pack_bf16.c). */
void ds_pack_f32_bf16_16rows(ds_isa isa, const float *src, int64_t ld, int64_t Kp,
                             uint16_t *dst, int sub);
/* ds_type_kernels.pack16 of Q8_0 (pack_bf16.c) and Q4_K (q_k.c, K % 256 == 0); the legacy
 * types' are in q_legacy.c. False without AVX512-BF16. */
bool ds_pack_q8_0_bf16_16rows(ds_isa isa, const void *w, size_t row_bytes, int nrows,
                              int64_t K, uint16_t *dst, int sub, const void *next);
bool ds_pack_q4_k_bf16_16rows(ds_isa isa, const void *w, size_t row_bytes, int nrows,
                              int64_t K, uint16_t *dst, int sub, const void *next);

/* ---- R16: 16 rows interleaved (repack.c) ----------------------------------------------- */

/* True for the types with an R16 layout (Q5_0, Q4_K, Q6_K). */
bool ds_r16_type(uint32_t type);
/* 16 rows of k elements (row_bytes apart) -> one R16 group of 16 * row_bytes bytes at dst
 * (not overlapping the rows), and back (the same bytes at every ISA level). */
void ds_r16_pack_group(uint32_t type, const void *rows, size_t row_bytes, int64_t k, void *dst);
void ds_r16_unpack_group(ds_isa isa, uint32_t type, const void *group, int64_t k, void *rows,
                         size_t row_bytes);
/* GEMV over ng R16 groups at w: y[m][16g + r] for m < nx, activation rows as for
 * DS_GEMV_Q8_PARAMS (the type's act kind). */
typedef void (*ds_r16_gemv_fn)(const void *w, int64_t ng, int64_t k, const ds_qact *xa, int nx,
                               float *y, int64_t ldy);
/* The R16 GEMV of `type` at `isa` (AVX512 with VNNI), or NULL. */
ds_r16_gemv_fn ds_r16_gemv(uint32_t type, ds_isa isa);
/* True for the types whose R16 GEMV is faster than the row-major one, i.e. the types
 * ds_model_data_repack converts (repack.c has the measurements). */
bool ds_r16_pays(uint32_t type);

/* ---- matrix products -------------------------------------------------------------------- */

/* How ds_mm_run computes a product of M rows with a weight of `type` (exposed for tests). */
typedef enum ds_mm_path {
    DS_MM_GEMV_F32 = 0,    /* GEMV kernels, f32 activations (f32 accumulation) */
    DS_MM_GEMV_Q8 = 1,     /* GEMV kernels, int8 activations (quantized types in FAST precision) */
    DS_MM_DNNL_F32 = 2,    /* oneDNN matmul in f32 */
    DS_MM_DNNL_BF16 = 3    /* oneDNN matmul with bf16 inputs, f32 accumulation */
} ds_mm_path;

ds_mm_path ds_mm_path_of(ds_mm *mm, uint32_t type, int64_t M);

/* Bound of a dequantized weight tile (default 4 MB; 0 restores it). Tests use small tiles to
 * get many of them from small matrices. Not while the ds_mm is in use. */
void ds_mm_set_tile_bytes(ds_mm *mm, size_t bytes);

/* ---- vector ops at an explicit level (the public ones use ds_isa_best()) ---------------- */

void ds_rmsnorm_isa(ds_isa isa, float *y, const float *x, const float *w, int64_t n, float eps);
float ds_dot_f32_isa(ds_isa isa, const float *a, const float *b, int64_t n);
void ds_axpy_f32_isa(ds_isa isa, float *y, float a, const float *x, int64_t n);
void ds_silu_mul_isa(ds_isa isa, float *out, const float *gate, const float *up, int64_t n);
float ds_exp_sum_f32_isa(ds_isa isa, float *x, int64_t n, float m);
float ds_max_f32_isa(ds_isa isa, const float *x, int64_t n);
void ds_dot_heads_f32_isa(ds_isa isa, const float *q, int nh, int64_t ldq, const float *rows,
                          int n, int64_t ldr, int64_t len, float scale, float *sc, int64_t lds);
void ds_axpy_heads_f32_isa(ds_isa isa, float *acc, int nh, int64_t lda, const float *p,
                           int64_t ldp, const float *rows, int n, int64_t ldr, int64_t len);
void ds_dot_heads_h16_isa(ds_isa isa, const float *q, int nh, int64_t ldq,
                          const uint16_t *rows, int n, int64_t ldr, int64_t len, float scale,
                          float *sc, int64_t lds, bool bf16);
void ds_axpy_heads_h16_isa(ds_isa isa, float *acc, int nh, int64_t lda, const float *p,
                           int64_t ldp, const uint16_t *rows, int n, int64_t ldr, int64_t len,
                           bool bf16);

/* ---- activation quantization (Q8_0-style, formats.md §2.5) ------------------------------ */

#define DS_QK8 32

/* Per block of 32: amax = max|x|, d = amax/127, q = round_half_even(x * (127/amax)) (0 if
 * amax == 0); xd[b] = f16(d) as f32 (the stored scale of ggml's block_q8_0). Identical bits at
 * every ISA level. n is a multiple of 32. */
void ds_quantize_act_q8(ds_isa isa, const float *x, int8_t *xq, float *xd, int64_t n);
/* Q8_1 = the above plus xs[b] = xd[b] * sum(q of block b). */
void ds_quantize_act_q8_1(ds_isa isa, const float *x, int8_t *xq, float *xd, float *xs,
                          int64_t n);

#define DS_QK_K 256
/* Q8_K (formats.md §2.5), per block of 256: max = the signed value of largest |x| (the first
 * one wins); max == 0 gives d = 0, q = 0; otherwise iscale = -127/max,
 * q = min(127, round_half_even(iscale * x)), xd[b] = 1/iscale; bsums[g] = sum of q[16g..16g+15].
 * A block with |max| < 127/FLT_MAX (iscale not finite) is all zero with d = 0.
 * Identical bits at every ISA level. n is a multiple of 256. */
void ds_quantize_act_q8k(ds_isa isa, const float *x, int8_t *xq, float *xd, int16_t *bsums,
                         int64_t n);

/* ---- the row kernels of each type (defined in f16.c, q8_0.c, q_legacy.c, q_k.c) ---------- */

/* Table entries of the types of q_legacy.c (Q4_0, Q4_1, Q5_0, Q5_1) and q_k.c (Q2_K .. Q6_K). */
extern const ds_type_kernels ds_kernels_q4_0, ds_kernels_q4_1, ds_kernels_q5_0, ds_kernels_q5_1;
extern const ds_type_kernels ds_kernels_q2k, ds_kernels_q3k, ds_kernels_q4k, ds_kernels_q5k,
    ds_kernels_q6k;

void ds_f32_to_f32_scalar(const void *src, float *dst, int64_t n);
void ds_f32_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n);
void ds_f16_to_f32_scalar(const void *src, float *dst, int64_t n);
void ds_f16_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n);
void ds_bf16_to_f32_scalar(const void *src, float *dst, int64_t n);
void ds_bf16_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n);
void ds_gemv_f32_scalar(DS_GEMV_F32_PARAMS);
void ds_gemv_f16_scalar(DS_GEMV_F32_PARAMS);
void ds_gemv_bf16_scalar(DS_GEMV_F32_PARAMS);
void ds_q8_0_to_f32_scalar(const void *src, float *dst, int64_t n);
void ds_q8_0_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n);
void ds_gemv_q8_0_f32_scalar(DS_GEMV_F32_PARAMS);
void ds_gemv_q8_0_q8_scalar(DS_GEMV_Q8_PARAMS);
#if DS_KERNELS_X86
void ds_f32_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n);
void ds_f16_to_f32_avx2(const void *src, float *dst, int64_t n);
void ds_bf16_to_f32_avx2(const void *src, float *dst, int64_t n);
void ds_q8_0_to_f32_avx2(const void *src, float *dst, int64_t n);
void ds_f16_to_f32_avx512(const void *src, float *dst, int64_t n);
void ds_f16_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n);
void ds_bf16_to_f32_avx512(const void *src, float *dst, int64_t n);
void ds_gemv_f32_avx2(DS_GEMV_F32_PARAMS);
void ds_gemv_f32_avx512(DS_GEMV_F32_PARAMS);
void ds_gemv_f16_avx2(DS_GEMV_F32_PARAMS);
void ds_gemv_f16_avx512(DS_GEMV_F32_PARAMS);
void ds_gemv_bf16_avx2(DS_GEMV_F32_PARAMS);
void ds_gemv_bf16_avx512(DS_GEMV_F32_PARAMS);
void ds_q8_0_to_f32_avx512(const void *src, float *dst, int64_t n);
void ds_q8_0_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n);
void ds_gemv_q8_0_f32_avx2(DS_GEMV_F32_PARAMS);
void ds_gemv_q8_0_f32_avx512(DS_GEMV_F32_PARAMS);
void ds_gemv_q8_0_q8_avx2(DS_GEMV_Q8_PARAMS);
void ds_gemv_q8_0_q8_avx512(DS_GEMV_Q8_PARAMS);
#endif

#endif
