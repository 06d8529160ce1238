/*
 * lib/kernels/f16.c — row kernels of the float weight types F32, F16 and BF16: dequantization
 * (to f32 and to bf16) and GEMV with f32 activations (weights converted on the fly, f32 FMA,
 * f32 accumulation). Scalar, AVX2 (+FMA, F16C) and AVX-512 versions.
 *
 * A GEMV call takes up to DS_GEMV_NX activation rows at once (more are done in groups): each
 * weight vector is loaded and converted once and multiplied into every row, so small batches
 * read the weights once. The kernels are written once as always-inline templates over the
 * weight kind and the row count; each (kind, row count) pair is instantiated with constants.
 */
#include "kernels/kernels_impl.h"

#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

enum { KF32 = 0, KF16 = 1, KBF16 = 2 };

/* ---- scalar --------------------------------------------------------------------------- */

void ds_f32_to_f32_scalar(const void *src, float *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(float));
}

void ds_f32_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)
{
    const float *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = ds_f32_to_bf16(s[i]);
}

void ds_f16_to_f32_scalar(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = ds_f16_to_f32(s[i]);
}

void ds_f16_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = ds_f32_to_bf16(ds_f16_to_f32(s[i]));
}

void ds_bf16_to_f32_scalar(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = ds_bf16_to_f32(s[i]);
}

void ds_bf16_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(uint16_t));
}

static inline float conv1(int kind, const void *w, int64_t i)
{
    switch (kind) {
    case KF32: return ((const float *)w)[i];
    case KF16: return ds_f16_to_f32(((const uint16_t *)w)[i]);
    default: return ds_bf16_to_f32(((const uint16_t *)w)[i]);
    }
}

/* Eight partial sums (like one AVX2 register), added pairwise at the end. */
static inline void gemv_scalar_t(int kind, const void *w, size_t rb, int64_t nr, int64_t k,
                                 const float *x, int64_t ldx, int nx, float *y, int64_t ldy)
{
    for (int64_t r = 0; r < nr; r++) {
        const void *wr = (const char *)w + (size_t)r * rb;
        for (int m = 0; m < nx; m++) {
            const float *xm = x + m * ldx;
            float acc[8] = {0};
            int64_t i = 0;
            for (; i + 8 <= k; i += 8)
                for (int j = 0; j < 8; j++)
                    acc[j] += conv1(kind, wr, i + j) * xm[i + j];
            for (; i < k; i++)
                acc[i & 7] += conv1(kind, wr, i) * xm[i];
            y[m * ldy + r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                             ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        }
    }
}

void ds_gemv_f32_scalar(DS_GEMV_F32_PARAMS)
{
    gemv_scalar_t(KF32, w, rb, nr, k, x, ldx, nx, y, ldy);
}

void ds_gemv_f16_scalar(DS_GEMV_F32_PARAMS)
{
    gemv_scalar_t(KF16, w, rb, nr, k, x, ldx, nx, y, ldy);
}

void ds_gemv_bf16_scalar(DS_GEMV_F32_PARAMS)
{
    gemv_scalar_t(KBF16, w, rb, nr, k, x, ldx, nx, y, ldy);
}

#if DS_KERNELS_X86

/* Instantiate NAME_1..NAME_4 from TEMPLATE(kind, nx, ...) and the exported NAME, which takes
 * any number of rows in groups of DS_GEMV_NX. */
#define GEMV_INSTANCES(NAME, TARGET, TEMPLATE, KIND)                                        \
    TARGET static void NAME##_1(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(KIND, 1, w, rb, nr, k, x, ldx, y, ldy); }                                    \
    TARGET static void NAME##_2(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(KIND, 2, w, rb, nr, k, x, ldx, y, ldy); }                                    \
    TARGET static void NAME##_3(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(KIND, 3, w, rb, nr, k, x, ldx, y, ldy); }                                    \
    TARGET static void NAME##_4(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(KIND, 4, w, rb, nr, k, x, ldx, y, ldy); }                                    \
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

/* ---- AVX2 ------------------------------------------------------------------------------ */

DS_TARGET_AVX2 DS_INLINE __m256 ld8(int kind, const void *w, int64_t i)
{
    switch (kind) {
    case KF32: return _mm256_loadu_ps((const float *)w + i);
    case KF16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    default: {
        __m128i v = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
    }
    }
}

DS_TARGET_AVX2 void ds_f16_to_f32_avx2(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, ld8(KF16, src, i));
    for (; i < n; i++)
        dst[i] = ds_f16_to_f32(((const uint16_t *)src)[i]);
}

DS_TARGET_AVX2 void ds_bf16_to_f32_avx2(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, ld8(KBF16, src, i));
    for (; i < n; i++)
        dst[i] = ds_bf16_to_f32(((const uint16_t *)src)[i]);
}

/* Accumulators: NX rows x U vectors (U = 4 for one row, 2 otherwise). */
DS_TARGET_AVX2 DS_INLINE void gemv_avx2_t(int kind, int NX, const void *w, size_t rb,
                                          int64_t nr, int64_t k, const float *x, int64_t ldx,
                                          float *y, int64_t ldy)
{
    const int U = NX == 1 ? 4 : 2;
    const size_t es = kind == KF32 ? 4 : 2;
    for (int64_t r = 0; r < nr; r++) {
        const void *wr = (const char *)w + (size_t)r * rb;
        __m256 acc[DS_GEMV_NX][4];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[m][u] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 * U <= k; i += 8 * U) {
            for (size_t pf = 0; pf < 8 * U * es; pf += 64)
                DS_PREFETCH((const char *)wr + i * es + pf);
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                __m256 wv = ld8(kind, wr, i + 8 * u);
#pragma GCC unroll 4
                for (int m = 0; m < NX; m++)
                    acc[m][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + i + 8 * u),
                                                acc[m][u]);
            }
        }
        for (; i + 8 <= k; i += 8) {
            __m256 wv = ld8(kind, wr, i);
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++)
                acc[m][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + i), acc[m][0]);
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++) {
            __m256 t = acc[m][0];
#pragma GCC unroll 4
            for (int u = 1; u < U; u++)
                t = _mm256_add_ps(t, acc[m][u]);
            float s = ds_hsum8(t);
            for (int64_t j = i; j < k; j++)
                s += conv1(kind, wr, j) * x[m * ldx + j];
            y[m * ldy + r] = s;
        }
    }
}

GEMV_INSTANCES(ds_gemv_f32_avx2, DS_TARGET_AVX2, gemv_avx2_t, KF32)
GEMV_INSTANCES(ds_gemv_f16_avx2, DS_TARGET_AVX2, gemv_avx2_t, KF16)
GEMV_INSTANCES(ds_gemv_bf16_avx2, DS_TARGET_AVX2, gemv_avx2_t, KBF16)

/* ---- AVX-512 --------------------------------------------------------------------------- */

DS_TARGET_AVX512 DS_INLINE __m512 ld16(int kind, const void *w, int64_t i)
{
    switch (kind) {
    case KF32: return _mm512_loadu_ps((const float *)w + i);
    case KF16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)));
    default: {
        __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    }
    }
}

DS_TARGET_AVX512 DS_INLINE __m512 ldm16(int kind, __mmask16 m, const void *w, int64_t i)
{
    switch (kind) {
    case KF32: return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    case KF16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i));
    default: {
        __m256i v = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    }
    }
}

DS_TARGET_AVX512 void ds_f32_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n)
{
    const float *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), ds_to_bf16_16(_mm512_loadu_ps(s + i)));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm256_mask_storeu_epi16(dst + i, m, ds_to_bf16_16(_mm512_maskz_loadu_ps(m, s + i)));
    }
}

DS_TARGET_AVX512 void ds_f16_to_f32_avx512(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, ld16(KF16, src, i));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, ldm16(KF16, m, src, i));
    }
}

DS_TARGET_AVX512 void ds_f16_to_bf16_avx512(const void *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), ds_to_bf16_16(ld16(KF16, src, i)));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm256_mask_storeu_epi16(dst + i, m, ds_to_bf16_16(ldm16(KF16, m, src, i)));
    }
}

DS_TARGET_AVX512 void ds_bf16_to_f32_avx512(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, ld16(KBF16, src, i));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, ldm16(KBF16, m, src, i));
    }
}

DS_TARGET_AVX512 DS_INLINE void gemv_avx512_t(int kind, int NX, const void *w, size_t rb,
                                              int64_t nr, int64_t k, const float *x,
                                              int64_t ldx, float *y, int64_t ldy)
{
    const int U = NX == 1 ? 4 : 2;
    const size_t es = kind == KF32 ? 4 : 2;
    for (int64_t r = 0; r < nr; r++) {
        const void *wr = (const char *)w + (size_t)r * rb;
        __m512 acc[DS_GEMV_NX][4];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[m][u] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 * U <= k; i += 16 * U) {
            for (size_t pf = 0; pf < 16 * U * es; pf += 64)
                DS_PREFETCH((const char *)wr + i * es + pf);
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                __m512 wv = ld16(kind, wr, i + 16 * u);
#pragma GCC unroll 4
                for (int m = 0; m < NX; m++)
                    acc[m][u] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * ldx + i + 16 * u),
                                                acc[m][u]);
            }
        }
        for (; i + 16 <= k; i += 16) {
            __m512 wv = ld16(kind, wr, i);
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++)
                acc[m][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * ldx + i), acc[m][0]);
        }
        if (i < k) {
            __mmask16 mk = ds_mask16(k - i);
            __m512 wv = ldm16(kind, mk, wr, i);
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++)
                acc[m][1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mk, x + m * ldx + i),
                                            acc[m][1]);
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++) {
            __m512 t = acc[m][0];
#pragma GCC unroll 4
            for (int u = 1; u < U; u++)
                t = _mm512_add_ps(t, acc[m][u]);
            y[m * ldy + r] = _mm512_reduce_add_ps(t);
        }
    }
}

GEMV_INSTANCES(ds_gemv_f32_avx512, DS_TARGET_AVX512, gemv_avx512_t, KF32)
GEMV_INSTANCES(ds_gemv_f16_avx512, DS_TARGET_AVX512, gemv_avx512_t, KF16)
GEMV_INSTANCES(ds_gemv_bf16_avx512, DS_TARGET_AVX512, gemv_avx512_t, KBF16)

#endif /* DS_KERNELS_X86 */
