/*
 * lib/kernels/q8_0.c — row kernels of Q8_0 (formats.md §2.3: blocks of 32, `d: f16 @0`,
 * `qs: i8[32] @2`, y = d * qs): dequantization to f32 / bf16, and two GEMVs:
 *   - f32 activations: weights dequantized on the fly (exact), f32 FMA (DS_PRECISION_F32);
 *   - int8 activations (ds_quantize_act_q8, a ds_qact of kind DS_ACT_Q8_0): per block an exact int32 dot product scaled by
 *     dW * dX, summed in f32 (formats.md §2.5). AVX-512 VNNI `vpdpbusd` needs an unsigned
 *     operand: it multiplies |w| (u8) by x carrying the sign of w (s8), which is exact since
 *     x is in [-127, 127]. AVX2 does the same with `vpmaddubsw` (pair sums <= 2*128*127, no
 *     saturation) and `vpmaddwd`.
 * Like f16.c, a call takes up to DS_GEMV_NX activation rows per pass over the weights.
 */
#include "kernels/kernels_impl.h"

#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

#define QK 32
#define QBYTES 34

static inline uint16_t blk_d16(const uint8_t *blk)
{
    return (uint16_t)(blk[0] | (blk[1] << 8));   /* little-endian f16 */
}

/* ---- scalar --------------------------------------------------------------------------- */

void ds_q8_0_to_f32_scalar(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += QBYTES) {
        float d = ds_f16_to_f32(blk_d16(p));
        const int8_t *qs = (const int8_t *)(p + 2);
        for (int i = 0; i < QK; i++)
            dst[b * QK + i] = d * (float)qs[i];
    }
}

void ds_q8_0_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += QBYTES) {
        float d = ds_f16_to_f32(blk_d16(p));
        const int8_t *qs = (const int8_t *)(p + 2);
        for (int i = 0; i < QK; i++)
            dst[b * QK + i] = ds_f32_to_bf16(d * (float)qs[i]);
    }
}

void ds_gemv_q8_0_f32_scalar(DS_GEMV_F32_PARAMS)
{
    for (int64_t r = 0; r < nr; r++) {
        for (int m = 0; m < nx; m++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            const float *xm = x + m * ldx;
            float acc = 0.0f;
            for (int64_t b = 0; b < k / QK; b++, p += QBYTES) {
                const int8_t *qs = (const int8_t *)(p + 2);
                const float *xb = xm + b * QK;
                float s[4] = {0};
                for (int i = 0; i < QK; i += 4)
                    for (int j = 0; j < 4; j++)
                        s[j] += (float)qs[i + j] * xb[i + j];
                acc += ds_f16_to_f32(blk_d16(p)) * ((s[0] + s[2]) + (s[1] + s[3]));
            }
            y[m * ldy + r] = acc;
        }
    }
}

void ds_gemv_q8_0_q8_scalar(DS_GEMV_Q8_PARAMS)
{
    const int8_t *xq = xa->q;
    const float *xd = xa->d;
    const int64_t nb = k / QK;
    for (int64_t r = 0; r < nr; r++) {
        for (int m = 0; m < nx; m++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            const int8_t *xm = xq + m * k;
            const float *dm = xd + m * nb;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++, p += QBYTES) {
                const int8_t *qs = (const int8_t *)(p + 2);
                int32_t isum = 0;
                for (int i = 0; i < QK; i++)
                    isum += (int32_t)qs[i] * (int32_t)xm[b * QK + i];
                acc += ds_f16_to_f32(blk_d16(p)) * dm[b] * (float)isum;
            }
            y[m * ldy + r] = acc;
        }
    }
}

#if DS_KERNELS_X86

/* Instances NAME_1..NAME_4 of TEMPLATE(nx, ...) and the exported NAME taking any nx. */
#define Q8_F32_INSTANCES(NAME, TARGET, TEMPLATE)                                            \
    TARGET static void NAME##_1(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(1, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_2(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(2, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_3(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(3, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_4(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(4, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    void NAME(DS_GEMV_F32_PARAMS)                                                          \
    {                                                                                       \
        for (int m0 = 0; m0 < nx; m0 += DS_GEMV_NX) {                                       \
            const float *xm = x + m0 * ldx;                                                 \
            float *ym = y + m0 * ldy;                                                       \
            switch (nx - m0 < DS_GEMV_NX ? nx - m0 : DS_GEMV_NX) {                          \
            case 1: NAME##_1(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            case 2: NAME##_2(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            case 3: NAME##_3(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            default: NAME##_4(w, rb, nr, k, xm, ldx, ym, ldy); break;                       \
            }                                                                               \
        }                                                                                   \
    }

#define Q8_Q8_INSTANCES(NAME, TARGET, TEMPLATE)                                             \
    TARGET static void NAME##_1(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const int8_t *xq, const float *xd, float *y, int64_t ldy)   \
    { TEMPLATE(1, w, rb, nr, k, xq, xd, y, ldy); }                                          \
    TARGET static void NAME##_2(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const int8_t *xq, const float *xd, float *y, int64_t ldy)   \
    { TEMPLATE(2, w, rb, nr, k, xq, xd, y, ldy); }                                          \
    TARGET static void NAME##_3(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const int8_t *xq, const float *xd, float *y, int64_t ldy)   \
    { TEMPLATE(3, w, rb, nr, k, xq, xd, y, ldy); }                                          \
    TARGET static void NAME##_4(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const int8_t *xq, const float *xd, float *y, int64_t ldy)   \
    { TEMPLATE(4, w, rb, nr, k, xq, xd, y, ldy); }                                          \
    static void NAME##_any(const void *w, size_t rb, int64_t nr, int64_t k,                \
                           const int8_t *xq, const float *xd, int nx, float *y, int64_t ldy)   \
    {                                                                                       \
        for (int m0 = 0; m0 < nx; m0 += DS_GEMV_NX) {                                       \
            const int8_t *qm = xq + m0 * k;                                                 \
            const float *dm = xd + m0 * (k / QK);                                           \
            float *ym = y + m0 * ldy;                                                       \
            switch (nx - m0 < DS_GEMV_NX ? nx - m0 : DS_GEMV_NX) {                          \
            case 1: NAME##_1(w, rb, nr, k, qm, dm, ym, ldy); break;                         \
            case 2: NAME##_2(w, rb, nr, k, qm, dm, ym, ldy); break;                         \
            case 3: NAME##_3(w, rb, nr, k, qm, dm, ym, ldy); break;                         \
            default: NAME##_4(w, rb, nr, k, qm, dm, ym, ldy); break;                        \
            }                                                                               \
        }                                                                                   \
    }

/* ---- AVX2 ------------------------------------------------------------------------------ */

DS_TARGET_AVX2 DS_INLINE float blk_d_f16c(const uint8_t *blk)
{
    return _cvtsh_ss(blk_d16(blk));
}

DS_TARGET_AVX2 void ds_q8_0_to_f32_avx2(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += QBYTES) {
        __m256 d = _mm256_set1_ps(blk_d_f16c(p));
        for (int j = 0; j < 4; j++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(p + 2 + 8 * j));
            _mm256_storeu_ps(dst + b * QK + 8 * j,
                             _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
    }
}

DS_TARGET_AVX2 DS_INLINE void q8_f32_avx2_t(int NX, const void *w, size_t rb, int64_t nr,
                                            int64_t k, const float *x, int64_t ldx, float *y,
                                            int64_t ldy)
{
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
        __m256 acc[DS_GEMV_NX][2];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            acc[m][0] = acc[m][1] = _mm256_setzero_ps();
        for (int64_t b = 0; b < k / QK; b++, p += QBYTES) {
            DS_PREFETCH(p);
            const __m128i *qs = (const __m128i *)(p + 2);
            __m128i q01 = _mm_loadu_si128(qs), q23 = _mm_loadu_si128(qs + 1);
            __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q01));
            __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q01, 8)));
            __m256 w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q23));
            __m256 w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q23, 8)));
            __m256 d = _mm256_set1_ps(blk_d_f16c(p));
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++) {
                const float *xb = x + m * ldx + b * QK;
                __m256 t0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb),
                                            _mm256_mul_ps(w1, _mm256_loadu_ps(xb + 8)));
                __m256 t1 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16),
                                            _mm256_mul_ps(w3, _mm256_loadu_ps(xb + 24)));
                acc[m][0] = _mm256_fmadd_ps(d, t0, acc[m][0]);
                acc[m][1] = _mm256_fmadd_ps(d, t1, acc[m][1]);
            }
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            y[m * ldy + r] = ds_hsum8(_mm256_add_ps(acc[m][0], acc[m][1]));
    }
}

Q8_F32_INSTANCES(ds_gemv_q8_0_f32_avx2, DS_TARGET_AVX2, q8_f32_avx2_t)

/* int32 lanes of sum(w * x) for one block, given uw = |w| and w (for the sign). */
DS_TARGET_AVX2 DS_INLINE __m256i dot32_maddubs(__m256i uw, __m256i wq, __m256i xq)
{
    __m256i sx = _mm256_sign_epi8(xq, wq);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(uw, sx), _mm256_set1_epi16(1));
}

/* The int8 template, shared by AVX2 (maddubs) and AVX-512 VNNI (dpbusd): DOT(uw, w, x). */
#define Q8_Q8_BODY(DOT)                                                                     \
    const int64_t nb = k / QK;                                                              \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m256 acc[DS_GEMV_NX][2];                                                          \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            acc[m][0] = acc[m][1] = _mm256_setzero_ps();                                    \
        int64_t b = 0;                                                                      \
        for (; b + 2 <= nb; b += 2, p += 2 * QBYTES) {                                      \
            DS_PREFETCH(p);                                                                 \
            DS_PREFETCH(p + 64);                                                            \
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(p + 2));                      \
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(p + QBYTES + 2));             \
            __m256i u0 = _mm256_abs_epi8(w0), u1 = _mm256_abs_epi8(w1);                     \
            float d0 = blk_d_f16c(p), d1 = blk_d_f16c(p + QBYTES);                          \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                const int8_t *xb = xq + m * k + b * QK;                                     \
                const float *xdm = xd + m * nb + b;                                         \
                __m256i s0 = DOT(u0, w0, _mm256_loadu_si256((const __m256i *)xb));         \
                __m256i s1 = DOT(u1, w1, _mm256_loadu_si256((const __m256i *)(xb + QK)));  \
                acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                         \
                                            _mm256_set1_ps(d0 * xdm[0]), acc[m][0]);        \
                acc[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1),                         \
                                            _mm256_set1_ps(d1 * xdm[1]), acc[m][1]);        \
            }                                                                               \
        }                                                                                   \
        if (b < nb) {                                                                       \
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(p + 2));                      \
            __m256i u0 = _mm256_abs_epi8(w0);                                               \
            float d0 = blk_d_f16c(p);                                                       \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                const int8_t *xb = xq + m * k + b * QK;                                     \
                __m256i s0 = DOT(u0, w0, _mm256_loadu_si256((const __m256i *)xb));         \
                acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                         \
                                            _mm256_set1_ps(d0 * xd[m * nb + b]), acc[m][0]); \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = ds_hsum8(_mm256_add_ps(acc[m][0], acc[m][1]));                 \
    }

DS_TARGET_AVX2 DS_INLINE void q8_q8_avx2_t(int NX, const void *w, size_t rb, int64_t nr,
                                           int64_t k, const int8_t *xq, const float *xd,
                                           float *y, int64_t ldy)
{
    Q8_Q8_BODY(dot32_maddubs)
}

Q8_Q8_INSTANCES(q8_q8_avx2, DS_TARGET_AVX2, q8_q8_avx2_t)

void ds_gemv_q8_0_q8_avx2(DS_GEMV_Q8_PARAMS)
{
    q8_q8_avx2_any(w, rb, nr, k, xa->q, xa->d, nx, y, ldy);
}

/* ---- AVX-512 --------------------------------------------------------------------------- */

DS_TARGET_AVX512 DS_INLINE __m512 blk_half_f32(const uint8_t *p, int half)
{
    __m128i q = _mm_loadu_si128((const __m128i *)(p + 2 + 16 * half));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
}

DS_TARGET_AVX512 void ds_q8_0_to_f32_avx512(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += QBYTES) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(blk_d16(p)));
        _mm512_storeu_ps(dst + b * QK, _mm512_mul_ps(d, blk_half_f32(p, 0)));
        _mm512_storeu_ps(dst + b * QK + 16, _mm512_mul_ps(d, blk_half_f32(p, 1)));
    }
}

DS_TARGET_AVX512 void ds_q8_0_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += QBYTES) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(blk_d16(p)));
        _mm256_storeu_si256((__m256i *)(dst + b * QK),
                            ds_to_bf16_16(_mm512_mul_ps(d, blk_half_f32(p, 0))));
        _mm256_storeu_si256((__m256i *)(dst + b * QK + 16),
                            ds_to_bf16_16(_mm512_mul_ps(d, blk_half_f32(p, 1))));
    }
}

DS_TARGET_AVX512 DS_INLINE void q8_f32_avx512_t(int NX, const void *w, size_t rb, int64_t nr,
                                                int64_t k, const float *x, int64_t ldx,
                                                float *y, int64_t ldy)
{
    const int64_t nb = k / QK;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
        __m512 acc[DS_GEMV_NX][2];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            acc[m][0] = acc[m][1] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2, p += 2 * QBYTES) {
            DS_PREFETCH(p);
            DS_PREFETCH(p + 64);
            __m512 a0 = blk_half_f32(p, 0), a1 = blk_half_f32(p, 1);
            __m512 c0 = blk_half_f32(p + QBYTES, 0), c1 = blk_half_f32(p + QBYTES, 1);
            __m512 da = _mm512_set1_ps(_cvtsh_ss(blk_d16(p)));
            __m512 dc = _mm512_set1_ps(_cvtsh_ss(blk_d16(p + QBYTES)));
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++) {
                const float *xb = x + m * ldx + b * QK;
                __m512 t0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(xb),
                                            _mm512_mul_ps(a1, _mm512_loadu_ps(xb + 16)));
                __m512 t1 = _mm512_fmadd_ps(c0, _mm512_loadu_ps(xb + 32),
                                            _mm512_mul_ps(c1, _mm512_loadu_ps(xb + 48)));
                acc[m][0] = _mm512_fmadd_ps(da, t0, acc[m][0]);
                acc[m][1] = _mm512_fmadd_ps(dc, t1, acc[m][1]);
            }
        }
        if (b < nb) {
            __m512 a0 = blk_half_f32(p, 0), a1 = blk_half_f32(p, 1);
            __m512 da = _mm512_set1_ps(_cvtsh_ss(blk_d16(p)));
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++) {
                const float *xb = x + m * ldx + b * QK;
                __m512 t0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(xb),
                                            _mm512_mul_ps(a1, _mm512_loadu_ps(xb + 16)));
                acc[m][0] = _mm512_fmadd_ps(da, t0, acc[m][0]);
            }
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            y[m * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
    }
}

Q8_F32_INSTANCES(ds_gemv_q8_0_f32_avx512, DS_TARGET_AVX512, q8_f32_avx512_t)

DS_TARGET_AVX512VNNI DS_INLINE __m256i dot32_vnni(__m256i uw, __m256i wq, __m256i xq)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), uw, _mm256_sign_epi8(xq, wq));
}

DS_TARGET_AVX512VNNI DS_INLINE void q8_q8_vnni_t(int NX, const void *w, size_t rb, int64_t nr,
                                                 int64_t k, const int8_t *xq, const float *xd,
                                                 float *y, int64_t ldy)
{
    Q8_Q8_BODY(dot32_vnni)
}

Q8_Q8_INSTANCES(q8_q8_vnni, DS_TARGET_AVX512VNNI, q8_q8_vnni_t)

/* One activation row, four weight rows at a time taken from the four quarters of the row
 * range: four sequential streams through memory (more lines in flight than one stream gets
 * from the prefetchers) and one load of each activation block pair for four rows. Two blocks
 * per 512-bit vector: a stream's block pair (68 bytes, word-aligned) is one 64-byte load and
 * one 4-byte load, the two blocks' quants gathered from them by one vpermt2w and the two f16
 * scales [d0 x 8, d1 x 8] by one vpermw. Lanes 0-7 are q8_q8_vnni_1's even-block accumulator
 * and lanes 8-15 its odd one, each lane seeing exactly its operations (the exact int32 sums,
 * d_w * d_x, the FMA), so the results are identical; the per-block 256-bit form spent ~22
 * instructions per pair and stream (measured 47-57 GB/s from L2 on one core). */
DS_TARGET_AVX512VNNI static void q8_q8_vnni_4s(const void *w, size_t rb, int64_t nr, int64_t k,
                                               const int8_t *xq, const float *xd, float *y)
{
    const int64_t nb = k / QK, q = nr / 4;
    _Alignas(64) int16_t ix[2][32];
    for (int j = 0; j < 32; j++) {
        /* quants: block 0 = words 1..16 of the pair, block 1 = words 18..33 (32, 33: second
         * source); scales: word 0 (d0) and word 17 (d1) */
        ix[0][j] = (int16_t)(j < 16 ? 1 + j : j < 30 ? 18 + (j - 16) : 32 + (j - 30));
        ix[1][j] = (int16_t)(j < 8 ? 0 : j < 16 ? 17 : 0);
    }
    const __m512i iq = _mm512_load_si512((const void *)ix[0]);
    const __m512i id = _mm512_load_si512((const void *)ix[1]);
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512 lo_hi = _mm512_castsi512_ps(
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    for (int64_t i = 0; i < q; i++) {
        const uint8_t *p[4];
        __m512 acc[4];
        for (int s = 0; s < 4; s++) {
            p[s] = (const uint8_t *)w + (size_t)(s * q + i) * rb;
            acc[s] = _mm512_setzero_ps();
        }
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const __m512i x01 = _mm512_loadu_si512((const void *)(xq + b * QK));
            /* vpdpbusd wants an unsigned operand: w ^ 0x80 is w + 128 as u8, and each 4-byte
             * lane's excess 128 * sum(x) is where its accumulator starts (shared by the four
             * rows) -- the same exact int32 sums as |w| * sign(x, w), in fewer instructions */
            const __m512i c01 =
                _mm512_sub_epi32(zero, _mm512_slli_epi32(_mm512_dpbusd_epi32(zero, ones, x01), 7));
            /* [xd0 x 8, xd1 x 8] (an 8-byte load: unaligned allowed) */
            const __m512 xd01 = _mm512_permutexvar_ps(
                _mm512_castps_si512(lo_hi),
                _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xd + b)))));
            for (int s = 0; s < 4; s++) {
                const uint8_t *ps = p[s] + (size_t)b * QBYTES;
                DS_PREFETCH(ps);
                DS_PREFETCH(ps + 64);
                const __m512i v = _mm512_loadu_si512((const void *)ps);
                const __m512i t = _mm512_castsi128_si512(_mm_loadu_si32(ps + 64));
                const __m512i wq = _mm512_xor_si512(_mm512_permutex2var_epi16(v, iq, t), flip);
                const __m512i sum = _mm512_dpbusd_epi32(c01, wq, x01);
                const __m512 dv =
                    _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(id, v)));
                acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dv, xd01), acc[s]);
            }
        }
        if (b < nb) {
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * QK));
            for (int s = 0; s < 4; s++) {
                const uint8_t *ps = p[s] + (size_t)b * QBYTES;
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(ps + 2));
                __m256i s0 = dot32_vnni(_mm256_abs_epi8(w0), w0, x0);
                acc[s] = _mm512_mask3_fmadd_ps(
                    _mm512_castps256_ps512(_mm256_cvtepi32_ps(s0)),
                    _mm512_set1_ps(blk_d_f16c(ps) * xd[b]), acc[s], 0x00FF);
            }
        }
        for (int s = 0; s < 4; s++)
            y[s * q + i] = ds_hsum8(_mm256_add_ps(
                _mm512_castps512_ps256(acc[s]),
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[s]), 1))));
    }
    if (nr > 4 * q) /* the last nr % 4 rows */
        q8_q8_vnni_1((const uint8_t *)w + (size_t)(4 * q) * rb, rb, nr - 4 * q, k, xq, xd,
                     y + 4 * q, 1);
}

/* AVX-512 level: VNNI where the CPU has it, otherwise the AVX2 maddubs kernel. */
void ds_gemv_q8_0_q8_avx512(DS_GEMV_Q8_PARAMS)
{
    if (ds_cpu_get()->avx512vnni) {
        if (nx == 1)
            q8_q8_vnni_4s(w, rb, nr, k, xa->q, xa->d, y);
        else
            q8_q8_vnni_any(w, rb, nr, k, xa->q, xa->d, nx, y, ldy);
    } else {
        q8_q8_avx2_any(w, rb, nr, k, xa->q, xa->d, nx, y, ldy);
    }
}

#endif /* DS_KERNELS_X86 */
