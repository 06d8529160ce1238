/*
 * lib/kernels/pack_bf16.c — bf16 weights in oneDNN's blocked matmul layout BA16a64b2a.
 *
 * oneDNN 2.6's brgemm matmul (avx512_core_bf16, AMX) wants its K x N bf16 weights in the
 * blocked format BA16a64b2a (a = K, b = N): N in blocks of 64 columns, each block Kp x 64
 * (Kp = K rounded up to 32) stored as K-slices of 32 rows; inside a slice, pairs of
 * consecutive k for each of the 64 columns:
 *     element (k, n) at (n / 64) * (Kp * 64) + (k / 32) * 2048 + ((k % 32) / 2) * 128
 *                       + (n % 64) * 2 + (k % 2)
 * Given plain weights, the primitive copies them into that layout on every execution, which
 * for the few-token products of the MoE experts costs as much as the arithmetic (measured
 * 2048 x 1408, M = 48: 485 GFLOP/s with plain weights, 790 with blocked ones). mm.c therefore
 * dequantizes a weight tile row by row into f32 (16 rows at a time, in a small per-thread
 * scratch) and then converts and scatters those 16 rows into the blocked tile with this file's
 * function: per 32-k slice, one bf16 conversion per row and a 16 x 16 transpose of 32-bit
 * pairs (AVX512-BF16; a scalar form otherwise).
 */
#include "kernels/kernels_impl.h"

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

#if DS_KERNELS_X86
/* vcvtne2ps2bf16 rounds to nearest even like ds_f32_to_bf16 and quiets NaNs the same way;
 * it treats f32 denormals as zero, which dequantized weights never are (their magnitudes are
 * products of f16 scales, >= 2^-24, and small integers). */
DS_TARGET_AVX512BF16 static void pack16_f32_avx512bf16(const float *src, int64_t ld, int64_t Kp,
                                                       uint16_t *dst, int sub)
{
    for (int64_t kb = 0; kb < Kp / 32; kb++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            const float *s = src + (size_t)i * ld + kb * 32;
            r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16), _mm512_loadu_ps(s));
        }
        ds_pairs_transpose16_store(r, (uint32_t *)(dst + kb * 2048) + sub * 16);
    }
}

/* Q8_0 straight to the blocked layout (no f32 scratch): slice kb of row i is Q8_0 block kb,
 * y = d * q exactly as ds_q8_0_to_f32 computes it, then rounded by vcvtne2ps2bf16. */
DS_TARGET_AVX512BF16 static void pack16_q8_0_avx512bf16(const uint8_t *w, size_t row_bytes,
                                                        int nrows, int64_t K, uint16_t *dst,
                                                        int sub, const uint8_t *next)
{
    for (int64_t kb = 0; kb < K / 32; kb++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            if (i >= nrows) {
                r[i] = _mm512_setzero_si512();
                continue;
            }
            const uint8_t *b = w + (size_t)i * row_bytes + (size_t)kb * 34;
            if (next && (kb & 1) == 0)
                __builtin_prefetch(next + (size_t)i * row_bytes + (size_t)kb * 34, 0, 3);
            const __m512 d = _mm512_set1_ps(_cvtsh_ss((unsigned short)(b[0] | (b[1] << 8))));
            const __m512 lo = _mm512_mul_ps(
                d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))));
            const __m512 hi = _mm512_mul_ps(
                d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))));
            r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        }
        ds_pairs_transpose16_store(r, (uint32_t *)(dst + kb * 2048) + sub * 16);
    }
}

#endif

bool ds_pack_q8_0_bf16_16rows(ds_isa isa, const void *w, size_t row_bytes, int nrows,
                              int64_t K, uint16_t *dst, int sub, const void *next)
{
#if DS_KERNELS_X86
    if (isa >= DS_ISA_AVX512 && ds_cpu_get()->avx512bf16 && K % 32 == 0) {
        pack16_q8_0_avx512bf16(w, row_bytes, nrows, K, dst, sub, next);
        return true;
    }
#endif
    (void)isa, (void)w, (void)row_bytes, (void)nrows, (void)K, (void)dst, (void)sub, (void)next;
    return false;
}

/* Scalar: any level, the reference of the test. */
static void pack16_f32_scalar(const float *src, int64_t ld, int64_t Kp, uint16_t *dst, int sub)
{
    for (int64_t kb = 0; kb < Kp / 32; kb++)
        for (int j = 0; j < 16; j++)          /* pair j of the slice: k = kb*32 + 2j, +1 */
            for (int i = 0; i < 16; i++) {    /* row i -> column sub*16 + i */
                const float *s = src + (size_t)i * ld + kb * 32 + 2 * j;
                uint16_t *d = dst + kb * 2048 + j * 128 + (sub * 16 + i) * 2;
                d[0] = ds_f32_to_bf16(s[0]);
                d[1] = ds_f32_to_bf16(s[1]);
            }
}

void ds_pack_f32_bf16_16rows(ds_isa isa, const float *src, int64_t ld, int64_t Kp,
                             uint16_t *dst, int sub)
{
#if DS_KERNELS_X86
    if (isa >= DS_ISA_AVX512 && ds_cpu_get()->avx512bf16) {
        pack16_f32_avx512bf16(src, ld, Kp, dst, sub);
        return;
    }
#endif
    (void)isa;
    pack16_f32_scalar(src, ld, Kp, dst, sub);
}
