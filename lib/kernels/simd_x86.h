/*
 * lib/kernels/simd_x86.h — small SIMD helpers shared by the x86 row kernels (internal).
 * Each helper carries the target attribute of the level it belongs to.
 */
#ifndef DS_KERNELS_SIMD_X86_H
#define DS_KERNELS_SIMD_X86_H

#include "kernels/kernels_impl.h"

#if DS_KERNELS_X86
#include <immintrin.h>

#define DS_INLINE static inline __attribute__((always_inline))

DS_TARGET_AVX2 static inline float ds_hsum4(__m128 s)
{
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

DS_TARGET_AVX2 static inline float ds_hsum8(__m256 v)
{
    return ds_hsum4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

/* f32 -> bf16, round to nearest even, NaN -> quiet NaN (bit-identical to ds_f32_to_bf16). */
DS_TARGET_AVX512 static inline __m256i ds_to_bf16_16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
    r = _mm512_mask_mov_epi32(r, nan, q);
    return _mm512_cvtepi32_epi16(r);
}

/* oneDNN's BA16a64b2a (pack_bf16.c): the 16 x 16 transpose of 32-bit pairs: r[i] = the 16 pairs of row i in a 32-k slice ->
 * dst + j*64 (in 32-bit units) = pair j of rows 0..15. */
DS_TARGET_AVX512 static inline void ds_pairs_transpose16_store(const __m512i r[16], uint32_t *d)
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4q + c], 128-bit lane L: pair 4L + c of rows 4q .. 4q+3 */
    for (int q = 0; q < 4; q++) {
        const __m512i *tq = t + 4 * q;
        u[4 * q + 0] = _mm512_unpacklo_epi64(tq[0], tq[2]);
        u[4 * q + 1] = _mm512_unpackhi_epi64(tq[0], tq[2]);
        u[4 * q + 2] = _mm512_unpacklo_epi64(tq[1], tq[3]);
        u[4 * q + 3] = _mm512_unpackhi_epi64(tq[1], tq[3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
        const __m512i x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        _mm512_storeu_si512((void *)(d + (0 + c) * 64), _mm512_shuffle_i32x4(x0, y0, 0x88));
        _mm512_storeu_si512((void *)(d + (4 + c) * 64), _mm512_shuffle_i32x4(x0, y0, 0xDD));
        _mm512_storeu_si512((void *)(d + (8 + c) * 64), _mm512_shuffle_i32x4(x1, y1, 0x88));
        _mm512_storeu_si512((void *)(d + (12 + c) * 64), _mm512_shuffle_i32x4(x1, y1, 0xDD));
    }
}

/* Mask of the first n (0..16) lanes. */
static inline __mmask16 ds_mask16(int64_t n)
{
    return (__mmask16)((1u << n) - 1);
}
#endif

#endif
