/*
 * lib/kernels/kernels.h — compute kernels: CPU feature dispatch, type conversion and
 * dequantization, vector ops, and matrix products (oneDNN for batches, hand-written GEMV for
 * single rows).
 *
 * Contract for callers (lib/forward, lib/moe, ...):
 *   - Activations are always f32, row-major, with an explicit leading dimension.
 *   - Weights are ds_weight views (lib/model/model.h) straight from the file mapping, in their
 *     ggml type; a kernel never writes to them. Expert stacks are addressed by `expert`.
 *   - A ds_mm context belongs to a model and may be used from several threads at once (its
 *     primitive cache is internally locked; execution uses per-call memory objects).
 *   - No allocation per call in the hot path except on the first use of a shape (primitive
 *     creation) or through a caller-provided scratch.
 */
#ifndef DS_KERNELS_KERNELS_H
#define DS_KERNELS_KERNELS_H

#include "model/model.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- CPU features and dispatch ------------------------------------------------------ */

typedef enum ds_isa {
    DS_ISA_SCALAR = 0,   /* portable C */
    DS_ISA_AVX2 = 1,     /* AVX2 + FMA + F16C */
    DS_ISA_AVX512 = 2    /* AVX-512 F/BW/VL (+ VNNI / BF16 when present) */
} ds_isa;

typedef struct ds_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
} ds_cpu_features;

/* The row kernels behind these functions take the ISA level explicitly (kernels_impl.h);
 * the functions below use ds_isa_best(), a ds_mm uses its own level (ds_mm_set_isa). */
void ds_cpu_detect(ds_cpu_features *out);
/* Highest ISA level this CPU supports. */
ds_isa ds_isa_best(void);
const char *ds_isa_name(ds_isa isa);

/* ---- conversions -------------------------------------------------------------------- */

float ds_f16_to_f32(uint16_t h);
uint16_t ds_f32_to_f16(float f);      /* round to nearest even */
float ds_bf16_to_f32(uint16_t h);
uint16_t ds_f32_to_bf16(float f);     /* round to nearest even, NaN -> quiet NaN */

/* Dequantize `n` elements (n a multiple of the type's block size) of a row of `type` to f32.
 * Returns false for a type without a dequantizer. */
bool ds_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

/* ---- vector ops (f32) --------------------------------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w   (w: n floats, e.g. the data of an F32 ds_weight, or
 * NULL for no weight; y may alias x) */
void ds_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* In-place softmax over n values (max-subtracted, f32). */
void ds_softmax(float *x, int64_t n);
/* x[i] = exp(x[i] - m) in place, returning their sum (a softmax block; x[i] - m below -87
 * gives 0, NaN stays NaN). Not the bits of expf: within 4e-7 (relative) of exp. */
float ds_exp_sum_f32(float *x, int64_t n, float m);
/* The largest of x[0..n) (NaN ignored), -inf when there is none. */
float ds_max_f32(const float *x, int64_t n);
/* out[i] = silu(gate[i]) * up[i]   (out may alias gate or up) */
void ds_silu_mul(float *out, const float *gate, const float *up, int64_t n);
float ds_dot_f32(const float *a, const float *b, int64_t n);
/* y += a * x */
void ds_axpy_f32(float *y, float a, const float *x, int64_t n);
/* Decode attention, several heads over the same rows: sc[h*lds + s] = scale * (q + h*ldq) .
 * (rows + s*ldr) over len, for h < nh, s < n. f32 sums in an order of the kernel's own (the
 * AVX-512 one keeps one accumulator per (row, head) pair over 4 rows x 4 heads): not
 * necessarily the bits of ds_dot_f32. */
void ds_dot_heads_f32(const float *q, int nh, int64_t ldq, const float *rows, int n, int64_t ldr,
                      int64_t len, float scale, float *sc, int64_t lds);
/* for s = 0 .. n-1 in order, for h < nh: ds_axpy_f32(acc + h*lda, p[h*ldp + s], rows + s*ldr,
 * len) -- the same bits, with each accumulated column kept in registers across the rows. */
void ds_axpy_heads_f32(float *acc, int nh, int64_t lda, const float *p, int64_t ldp,
                       const float *rows, int n, int64_t ldr, int64_t len);
/* The same two over rows stored as f16 (bf16 false) or bf16, ldr in elements: each element
 * converted exactly to f32. With AVX-512 (ds_heads_h16_fast()) as loaded, inside the f32
 * kernels' loops: the bits those give on the rows' f32 copies. The portable level is a plain
 * loop (slow: callers without the fast kernels convert rows and use the f32 ones). */
bool ds_heads_h16_fast(void);
void ds_dot_heads_h16(const float *q, int nh, int64_t ldq, const uint16_t *rows, int n,
                      int64_t ldr, int64_t len, float scale, float *sc, int64_t lds, bool bf16);
void ds_axpy_heads_h16(float *acc, int nh, int64_t lda, const float *p, int64_t ldp,
                       const uint16_t *rows, int n, int64_t ldr, int64_t len, bool bf16);

/* ---- matrix products ---------------------------------------------------------------- */

typedef struct ds_mm ds_mm;

/* precision: DS_PRECISION_FAST (bf16 compute with f32 accumulation where the CPU has it) or
 * DS_PRECISION_F32 (exact f32 compute). n_threads >= 1. */
ds_status ds_mm_create(ds_mm **out, int n_threads, int precision, ds_err *err);
void ds_mm_free(ds_mm *mm);
int ds_mm_threads(const ds_mm *mm);
int ds_mm_precision(const ds_mm *mm);
/* ISA level of the hand-written kernels used by this ds_mm: ds_mm_create picks ds_isa_best();
 * ds_mm_set_isa lowers (or restores) it, clamped to what the CPU supports, and returns the
 * level in effect. At a level below DS_ISA_AVX512, FAST precision computes batches in f32.
 * Not to be called while another thread runs a product with the same ds_mm. */
ds_isa ds_mm_set_isa(ds_mm *mm, ds_isa isa);
ds_isa ds_mm_isa(const ds_mm *mm);
/* Number of oneDNN primitives currently cached (for tests and diagnostics). */
int ds_mm_cached_primitives(ds_mm *mm);

/*
 * Y[m][n] = sum_k X[m][k] * W[n][k]   for m < M, n < N = W->ne[1], k < K = W->ne[0].
 * W: a matrix (ne[2] == 1, expert must be 0) or an expert stack (0 <= expert < ne[2]).
 * X: M rows of K floats, row stride ldx >= K. Y: M rows of N floats, row stride ldy >= N.
 * Supported weight types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K;
 * anything else returns DS_ERR_UNSUPPORTED naming the tensor and type.
 * Small M (1, and up to 4-16 depending on the weight type: 4 F32/BF16, 8 F16/Q8_0, 12 Q4_0..Q5_1,
 * 16 K-quants) uses the GEMV kernels (each weight byte read once per 4 rows, rows split across
 * threads); larger M uses a cached oneDNN matmul primitive on dequantized tiles or in place. Precision: f32 accumulation everywhere; in DS_PRECISION_FAST, the GEMV of quantized
 * weights uses int8 activations in the type's pairing (Q8_0 / Q8_1 / Q8_K, formats.md §2.5)
 * and batches of non-F32 weights use bf16 inputs (AVX-512 with
 * AVX512_BF16 only). F32 weights are always computed in f32.
 * Called from inside an OpenMP parallel region, it runs on the calling thread alone.
 */
ds_status ds_mm_run(ds_mm *mm, const ds_weight *W, int64_t expert, const float *X, int64_t M,
                    int64_t ldx, float *Y, int64_t ldy, ds_err *err);

/* Same with rows [n0, n1) of W only (Y has n1 - n0 columns). Used to take slices such as
 * the per-head blocks of attn_kv_b. */
ds_status ds_mm_run_rows(ds_mm *mm, const ds_weight *W, int64_t expert, int64_t n0, int64_t n1,
                         const float *X, int64_t M, int64_t ldx, float *Y, int64_t ldy,
                         ds_err *err);
/* One product Y = X W[expert]^T of a ds_mm_run_jobs group (X: m rows at stride ldx, Y: m rows
 * at stride ldy). */
typedef struct ds_mm_job {
    const ds_weight *w;
    int64_t expert;
    const float *x;
    int64_t m, ldx;
    float *y;
    int64_t ldy;
} ds_mm_job;
/* Independent products in one OpenMP region: those of at most 4 rows are split into pieces of
 * rows that the threads take from a shared cursor; larger ones run one after the other as
 * ds_mm_run. The same results as ds_mm_run per job, bit for bit. */
ds_status ds_mm_run_jobs(ds_mm *mm, const ds_mm_job *jobs, int n, ds_err *err);
/* Per-head products: for every head i < n_heads (expert i of W), Y_i = X_i W_i^T with X_i =
 * X + i * xh (M rows, stride ldx) and Y_i = Y + i * yh (M rows, stride ldy); the heads run in
 * one OpenMP loop (threads take contiguous ranges of heads). The same results as ds_mm_run
 * per head, bit for bit. */
ds_status ds_mm_run_heads(ds_mm *mm, const ds_weight *W, int64_t n_heads, const float *X,
                          int64_t xh, int64_t ldx, int64_t M, float *Y, int64_t yh, int64_t ldy,
                          ds_err *err);

#endif
