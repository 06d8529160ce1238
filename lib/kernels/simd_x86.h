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

DS_TARGET_AVX2 static inline float ds_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
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

/* Mask of the first n (0..16) lanes. */
static inline __mmask16 ds_mask16(int64_t n)
{
    return (__mmask16)((1u << n) - 1);
}
#endif

#endif
