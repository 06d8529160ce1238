/*
 * lib/kernels/q_legacy.c — the legacy 32-element block types Q4_0, Q4_1, Q5_0 and Q5_1
 * (formats.md §2.3).
 *
 * A block is first unpacked into unsigned quants q[0..31] (0..15 or 0..31; element e < 16 is the
 * low nibble of qs[e], e >= 16 the high nibble of qs[e-16]; the fifth bit of Q5 is bit e of qh)
 * and two floats with
 *     y[e] = d * q[e] - c,    c = 8d (Q4_0), 16d (Q5_0), -m (Q4_1, Q5_1).
 * d*q is exact in f32, so the value is rounded once: bit-exact at every ISA level.
 *
 * Consumers per ISA level: dequantization to f32 / bf16, GEMV with f32 activations, and GEMV
 * with Q8_1 activations (ds_qact: Q8_0 quants and scales plus s = dA * sum(qA) per block):
 *     per block  d*dA * sum_e q[e]*qA[e]  -  c * s
 * which equals sum_e y[e] * dA*qA[e] exactly (for Q4_0/Q5_0 this is the Q8_0 product of
 * formats.md §2.5 with the centring moved into s). q is unsigned and qA signed: vpmaddubsw +
 * vpmaddwd on AVX2 (pair sums at most 2*31*127, no saturation), vpdpbusd on AVX-512 VNNI.
 */
#include "kernels/kernels_impl.h"
#include "kernels/gemv_tmpl.h"

#include "format/ggml_types.h"

#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

#define QK 32
/* Batches up to this many rows use the GEMV (measured crossover with the tiles near 14 rows). */
#define LQ_GEMV_MAX_M 12

/* ---- scalar ----------------------------------------------------------------------------- */

typedef struct lq_blk {
    uint8_t q[QK];
    float d, c;
} lq_blk;

static inline void nibbles(const uint8_t *qs, uint8_t *q)
{
    for (int i = 0; i < 16; i++) {
        q[i] = qs[i] & 0x0F;
        q[i + 16] = qs[i] >> 4;
    }
}

static inline void fifth_bits(uint32_t h, uint8_t *q)
{
    for (int i = 0; i < QK; i++)
        q[i] |= (uint8_t)(((h >> i) & 1) << 4);
}

static void q4_0_unpack_scalar(const uint8_t *p, lq_blk *u)
{
    u->d = ds_f16_to_f32(ds_rd16(p));
    u->c = 8.0f * u->d;
    nibbles(p + 2, u->q);
}

static void q4_1_unpack_scalar(const uint8_t *p, lq_blk *u)
{
    u->d = ds_f16_to_f32(ds_rd16(p));
    u->c = -ds_f16_to_f32(ds_rd16(p + 2));
    nibbles(p + 4, u->q);
}

static void q5_0_unpack_scalar(const uint8_t *p, lq_blk *u)
{
    u->d = ds_f16_to_f32(ds_rd16(p));
    u->c = 16.0f * u->d;
    nibbles(p + 6, u->q);
    fifth_bits(ds_rd32(p + 2), u->q);
}

static void q5_1_unpack_scalar(const uint8_t *p, lq_blk *u)
{
    u->d = ds_f16_to_f32(ds_rd16(p));
    u->c = -ds_f16_to_f32(ds_rd16(p + 2));
    nibbles(p + 8, u->q);
    fifth_bits(ds_rd32(p + 4), u->q);
}

typedef void (*lq_unpack_scalar_fn)(const uint8_t *p, lq_blk *u);

static inline void lq_to_f32_scalar_t(lq_unpack_scalar_fn unpack, size_t bb, const void *src,
                                      float *dst, int64_t n)
{
    const uint8_t *p = src;
    lq_blk u;
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        unpack(p, &u);
        for (int i = 0; i < QK; i++)
            dst[b * QK + i] = u.d * (float)u.q[i] - u.c;
    }
}

static inline void lq_to_bf16_scalar_t(lq_unpack_scalar_fn unpack, size_t bb, const void *src,
                                       uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    lq_blk u;
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        unpack(p, &u);
        for (int i = 0; i < QK; i++)
            dst[b * QK + i] = ds_f32_to_bf16(u.d * (float)u.q[i] - u.c);
    }
}

static inline void lq_gemv_f32_scalar_t(lq_unpack_scalar_fn unpack, size_t bb,
                                        DS_GEMV_F32_PARAMS)
{
    lq_blk u;
    for (int64_t r = 0; r < nr; r++) {
        for (int m = 0; m < nx; m++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            const float *xm = x + m * ldx;
            float acc[8] = {0};
            for (int64_t b = 0; b < k / QK; b++, p += bb) {
                unpack(p, &u);
                for (int i = 0; i < QK; i++)
                    acc[i & 7] += (u.d * (float)u.q[i] - u.c) * xm[b * QK + i];
            }
            y[m * ldy + r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                             ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        }
    }
}

static inline void lq_gemv_q8_scalar_t(lq_unpack_scalar_fn unpack, size_t bb, DS_GEMV_Q8_PARAMS)
{
    const int64_t nb = k / QK;
    lq_blk u;
    for (int64_t r = 0; r < nr; r++) {
        for (int m = 0; m < nx; m++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            const int8_t *xq = xa->q + m * k;
            float acc = 0.0f, corr = 0.0f;
            for (int64_t b = 0; b < nb; b++, p += bb) {
                unpack(p, &u);
                int32_t isum = 0;
                for (int i = 0; i < QK; i++)
                    isum += (int32_t)u.q[i] * xq[b * QK + i];
                acc += (float)isum * (u.d * xa->d[m * nb + b]);
                corr += u.c * xa->s[m * nb + b];
            }
            y[m * ldy + r] = acc - corr;
        }
    }
}

#if DS_KERNELS_X86

/* ---- AVX2 unpacking: 32 unsigned quants in element order -------------------------------- */

DS_TARGET_AVX2 DS_INLINE __m256i nibbles_avx2(const uint8_t *qs)
{
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(v, _mm_set1_epi8(0x0F));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F));
    return _mm256_set_m128i(hi, lo);
}

/* Byte e = 0x10 where bit e of h is set, else 0. */
DS_TARGET_AVX2 DS_INLINE __m256i fifth_bits_avx2(uint32_t h)
{
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

DS_TARGET_AVX2 DS_INLINE __m256i q4_0_unpack_avx2(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = 8.0f * *d;
    return nibbles_avx2(p + 2);
}

DS_TARGET_AVX2 DS_INLINE __m256i q4_1_unpack_avx2(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = -_cvtsh_ss(ds_rd16(p + 2));
    return nibbles_avx2(p + 4);
}

DS_TARGET_AVX2 DS_INLINE __m256i q5_0_unpack_avx2(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = 16.0f * *d;
    return _mm256_or_si256(nibbles_avx2(p + 6), fifth_bits_avx2(ds_rd32(p + 2)));
}

DS_TARGET_AVX2 DS_INLINE __m256i q5_1_unpack_avx2(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = -_cvtsh_ss(ds_rd16(p + 2));
    return _mm256_or_si256(nibbles_avx2(p + 8), fifth_bits_avx2(ds_rd32(p + 4)));
}

typedef __m256i (*lq_unpack_avx2_fn)(const uint8_t *p, float *d, float *c);

/* Elements 8j .. 8j+7 of the block as floats. */
DS_TARGET_AVX2 DS_INLINE __m256 lq_8_f32(__m256i q, int j)
{
    __m128i v = (j & 2) ? _mm256_extracti128_si256(q, 1) : _mm256_castsi256_si128(q);
    if (j & 1)
        v = _mm_srli_si128(v, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

/* ---- AVX2 consumers --------------------------------------------------------------------- */

DS_TARGET_AVX2 DS_INLINE void lq_to_f32_avx2_t(lq_unpack_avx2_fn unpack, size_t bb,
                                               const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        float d, c;
        __m256i q = unpack(p, &d, &c);
        __m256 vd = _mm256_set1_ps(d), vc = _mm256_set1_ps(c);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(dst + b * QK + 8 * j, _mm256_fmsub_ps(lq_8_f32(q, j), vd, vc));
    }
}

DS_TARGET_AVX2 DS_INLINE void lq_gemv_f32_avx2_t(lq_unpack_avx2_fn unpack, size_t bb, int NX,
                                                 const void *w, size_t rb, int64_t nr,
                                                 int64_t k, const float *x, int64_t ldx,
                                                 float *y, int64_t ldy)
{
    const int U = NX == 1 ? 4 : 2;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
        __m256 acc[DS_GEMV_NX][4];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                acc[m][j] = _mm256_setzero_ps();
        for (int64_t b = 0; b < k / QK; b++, p += bb) {
            DS_PREFETCH(p);
            float d, c;
            __m256i q = unpack(p, &d, &c);
            __m256 vd = _mm256_set1_ps(d), vc = _mm256_set1_ps(c);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256 wv = _mm256_fmsub_ps(lq_8_f32(q, j), vd, vc);
#pragma GCC unroll 4
                for (int m = 0; m < NX; m++)
                    acc[m][j % U] = _mm256_fmadd_ps(
                        wv, _mm256_loadu_ps(x + m * ldx + b * QK + 8 * j), acc[m][j % U]);
            }
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++) {
            __m256 t = _mm256_add_ps(acc[m][0], acc[m][1]);
            if (U == 4)
                t = _mm256_add_ps(t, _mm256_add_ps(acc[m][2], acc[m][3]));
            y[m * ldy + r] = ds_hsum8(t);
        }
    }
}

DS_TARGET_AVX2 DS_INLINE __m256i dot_avx2(__m256i q, __m256i x, int ioff)
{
    (void)ioff; /* always 0: the AVX2 level keeps the f32 correction */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1));
}

/* The Q8_1 GEMV template, two blocks per step (AVX2 and VNNI differ only in DOT). IOFF > 0
 * (the VNNI level of Q4_0 / Q5_0, whose offset c is IOFF * d): the block's -IOFF * sum(x) is
 * folded into the int32 dot product (DOT's third argument) instead of the f32 correction c * s. */
#define LQ_Q8_BODY(UNPACK, BB, DOT, IOFF)                                                   \
    const int64_t nb = k / QK;                                                              \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m256 acc[DS_GEMV_NX][2];                                                          \
        float corr[DS_GEMV_NX][2];                                                          \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                              \
            acc[m][0] = acc[m][1] = _mm256_setzero_ps();                                    \
            corr[m][0] = corr[m][1] = 0.0f;                                                 \
        }                                                                                   \
        int64_t b = 0;                                                                      \
        for (; b + 2 <= nb; b += 2, p += 2 * (BB)) {                                        \
            DS_PREFETCH_BLOCK(p, 2 * (BB));                                                 \
            float d0, c0, d1, c1;                                                           \
            __m256i q0 = UNPACK(p, &d0, &c0), q1 = UNPACK(p + (BB), &d1, &c1);              \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                const int8_t *xq = xa->q + m * k + b * QK;                                  \
                const float *xd = xa->d + m * nb + b, *xs = xa->s + m * nb + b;             \
                __m256i s0 = DOT(q0, _mm256_loadu_si256((const __m256i *)xq), IOFF);        \
                __m256i s1 = DOT(q1, _mm256_loadu_si256((const __m256i *)(xq + QK)), IOFF); \
                acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                         \
                                            _mm256_set1_ps(d0 * xd[0]), acc[m][0]);         \
                acc[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1),                         \
                                            _mm256_set1_ps(d1 * xd[1]), acc[m][1]);         \
                if (!(IOFF)) {                                                              \
                    corr[m][0] += c0 * xs[0];                                               \
                    corr[m][1] += c1 * xs[1];                                               \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        if (b < nb) {                                                                       \
            float d0, c0;                                                                   \
            __m256i q0 = UNPACK(p, &d0, &c0);                                               \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                const int8_t *xq = xa->q + m * k + b * QK;                                  \
                __m256i s0 = DOT(q0, _mm256_loadu_si256((const __m256i *)xq), IOFF);        \
                acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0),                         \
                                            _mm256_set1_ps(d0 * xa->d[m * nb + b]),         \
                                            acc[m][0]);                                     \
                if (!(IOFF))                                                                \
                    corr[m][0] += c0 * xa->s[m * nb + b];                                   \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = ds_hsum8(_mm256_add_ps(acc[m][0], acc[m][1])) -                \
                             (corr[m][0] + corr[m][1]);                                     \
    }

/* ---- AVX-512 consumers ------------------------------------------------------------------ */

/* Elements 16h .. 16h+15 of the block as floats. */
DS_TARGET_AVX512 DS_INLINE __m512 lq_16_f32(__m256i q, int h)
{
    __m128i v = h ? _mm256_extracti128_si256(q, 1) : _mm256_castsi256_si128(q);
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
}

DS_TARGET_AVX512 DS_INLINE void lq_to_f32_avx512_t(lq_unpack_avx2_fn unpack, size_t bb,
                                                   const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        float d, c;
        __m256i q = unpack(p, &d, &c);
        __m512 vd = _mm512_set1_ps(d), vc = _mm512_set1_ps(c);
        _mm512_storeu_ps(dst + b * QK, _mm512_fmsub_ps(lq_16_f32(q, 0), vd, vc));
        _mm512_storeu_ps(dst + b * QK + 16, _mm512_fmsub_ps(lq_16_f32(q, 1), vd, vc));
    }
}

DS_TARGET_AVX512 DS_INLINE void lq_to_bf16_avx512_t(lq_unpack_avx2_fn unpack, size_t bb,
                                                    const void *src, uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK; b++, p += bb) {
        float d, c;
        __m256i q = unpack(p, &d, &c);
        __m512 vd = _mm512_set1_ps(d), vc = _mm512_set1_ps(c);
        _mm256_storeu_si256((__m256i *)(dst + b * QK),
                            ds_to_bf16_16(_mm512_fmsub_ps(lq_16_f32(q, 0), vd, vc)));
        _mm256_storeu_si256((__m256i *)(dst + b * QK + 16),
                            ds_to_bf16_16(_mm512_fmsub_ps(lq_16_f32(q, 1), vd, vc)));
    }
}

DS_TARGET_AVX512 DS_INLINE void lq_gemv_f32_avx512_t(lq_unpack_avx2_fn unpack, size_t bb, int NX,
                                                     const void *w, size_t rb, int64_t nr,
                                                     int64_t k, const float *x, int64_t ldx,
                                                     float *y, int64_t ldy)
{
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
        __m512 acc[DS_GEMV_NX][2];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            acc[m][0] = acc[m][1] = _mm512_setzero_ps();
        for (int64_t b = 0; b < k / QK; b++, p += bb) {
            DS_PREFETCH(p);
            float d, c;
            __m256i q = unpack(p, &d, &c);
            __m512 vd = _mm512_set1_ps(d), vc = _mm512_set1_ps(c);
            __m512 w0 = _mm512_fmsub_ps(lq_16_f32(q, 0), vd, vc);
            __m512 w1 = _mm512_fmsub_ps(lq_16_f32(q, 1), vd, vc);
#pragma GCC unroll 4
            for (int m = 0; m < NX; m++) {
                const float *xb = x + m * ldx + b * QK;
                acc[m][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), acc[m][0]);
                acc[m][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), acc[m][1]);
            }
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
            y[m * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
    }
}

/* Per 4-byte lane: sum(q * x) - ioff * sum(x), exact in int32 (|.| <= 4 * 31 * 127 + 16 * 508). */
DS_TARGET_AVX512VNNI DS_INLINE __m256i dot_vnni(__m256i q, __m256i x, int ioff)
{
    const __m256i z = _mm256_setzero_si256();
    const __m256i c = ioff ? _mm256_sub_epi32(z, _mm256_mullo_epi32(
                                                     _mm256_dpbusd_epi32(z, _mm256_set1_epi8(1), x),
                                                     _mm256_set1_epi32(ioff)))
                           : z;
    return _mm256_dpbusd_epi32(c, q, x);
}

/* The VNNI level's unpacking: the same bytes as the AVX2 unpack with AVX512-VL/BW
 * operations -- the two nibble halves by one per-lane shift of a broadcast, the fifth bits
 * by one byte-masked add of 0x10 under the 32-bit qh word. */
DS_TARGET_AVX512VNNI DS_INLINE __m256i nibbles_vnni(const uint8_t *qs)
{
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i sh = _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
    return _mm256_and_si256(_mm256_srlv_epi16(v, sh), _mm256_set1_epi8(0x0F));
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i fifth_bits_add_vnni(__m256i v, uint32_t h)
{
    return _mm256_mask_add_epi8(v, (__mmask32)h, v, _mm256_set1_epi8(0x10));
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i q4_0_unpack_vnni(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = 8.0f * *d;
    return nibbles_vnni(p + 2);
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i q4_1_unpack_vnni(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = -_cvtsh_ss(ds_rd16(p + 2));
    return nibbles_vnni(p + 4);
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i q5_0_unpack_vnni(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = 16.0f * *d;
    return fifth_bits_add_vnni(nibbles_vnni(p + 6), ds_rd32(p + 2));
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i q5_1_unpack_vnni(const uint8_t *p, float *d, float *c)
{
    *d = _cvtsh_ss(ds_rd16(p));
    *c = -_cvtsh_ss(ds_rd16(p + 2));
    return fifth_bits_add_vnni(nibbles_vnni(p + 8), ds_rd32(p + 4));
}

/* Block layouts for LQ_Q8_BODY_W512: qs offset, qh offset (-1: none), and IOFF: c = IOFF * d
 * (Q4_0, Q5_0; the offset folded into the int32 sums at the VNNI level), or 0: c = -m with the
 * f16 m at byte 2 (Q4_1, Q5_1). */
#define q4_0_QS 2
#define q4_0_QH (-1)
#define q4_0_IOFF 8
#define q4_1_QS 4
#define q4_1_QH (-1)
#define q4_1_IOFF 0
#define q5_0_QS 6
#define q5_0_QH 2
#define q5_0_IOFF 16
#define q5_1_QS 8
#define q5_1_QH 4
#define q5_1_IOFF 0

/* LQ_Q8_BODY for one activation row (NX = 1), NS weight rows at a time from NS equal parts of
 * the row range, two blocks per step in 512-bit vectors (AVX-512 VNNI). Each stream's two
 * blocks (2 BB <= 48 bytes) are ONE masked 64-byte load, and everything comes out of that
 * register by vpermw: the quants (each block's 16 qs bytes in two 128-bit lanes, shifted by
 * 0 / 4, the fifth bits added under the two qh words as a 64-bit mask), [d0 x 8, d1 x 8] and
 * [m0 x 8, m1 x 8] as f16 (one vcvtph2ps each). The step's [xd0 x 8, xd1 x 8] and
 * [xs0 x 8, xs1 x 8] are shared by the streams. Lanes 0-7 are LQ_Q8_BODY's even-block
 * accumulator and lanes 8-15 its odd one, and lanes 0 and 8 of corr its two corrections: every
 * lane sees exactly its operations (products d * xd and, for Q4_1 / Q5_1, c * xs, then the adds;
 * Q4_0 / Q5_0 start each lane's int32 sum at -IOFF * its sum of x, shared by the streams), so
 * the results are identical. The scalar per-block work of a two-load-per-field form made the
 * kernel load- and issue-bound (BENCHMARKS.md, seventh session). The load is unmasked while its
 * 64 bytes stay inside the matrix (all but the last block pairs of the last rows): a masked load
 * cost 5-10 %. Block layout: qs at QS, the qh word at QH (< 0: none), the f16 m at 2 when
 * IOFF == 0 (c = -m), else c = IOFF * d. */
#define LQ_Q8_BODY_W512(UNPACK, BB, QS, QH, IOFF, ONE, NS)                                  \
    const int64_t nb = k / QK, q2 = nr / (NS);                                              \
    _Alignas(64) int16_t ix[4][32];                                                         \
    for (int j = 0; j < 32; j++) {                                                          \
        ix[0][j] = (int16_t)((j < 16 ? (QS) / 2 : ((BB) + (QS)) / 2) + j % 8);              \
        ix[1][j] = (int16_t)(j < 8 ? 0 : j < 16 ? (BB) / 2 : 0);                            \
        ix[2][j] = (int16_t)(j < 8 ? 1 : j < 16 ? (BB) / 2 + 1 : 0);                        \
        ix[3][j] = (int16_t)((QH) < 0 || j >= 4 ? 0                                         \
                             : j < 2 ? (QH) / 2 + j : ((BB) + (QH)) / 2 + j - 2);           \
    }                                                                                       \
    const __m512i iqs = _mm512_load_si512((const void *)ix[0]);                             \
    const __m512i idd = _mm512_load_si512((const void *)ix[1]);                             \
    const __m512i imm = _mm512_load_si512((const void *)ix[2]);                             \
    const __m512i iqh = _mm512_load_si512((const void *)ix[3]);                             \
    const __m512i sh = _mm512_set_epi64(0x0004000400040004ll, 0x0004000400040004ll, 0, 0,  \
                                        0x0004000400040004ll, 0x0004000400040004ll, 0, 0);  \
    const __m512i m4 = _mm512_set1_epi8(0x0F), b16 = _mm512_set1_epi8(0x10);               \
    const __m512i lo_hi = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1); \
    const __mmask64 lm = ((__mmask64)1 << (2 * (BB))) - 1;                                  \
    const size_t wbytes = (size_t)nr * rb; /* an unmasked 64-byte load must end inside */  \
    (void)imm;                                                                              \
    (void)iqh;                                                                              \
    (void)b16;                                                                              \
    for (int64_t i = 0; i < q2; i++) {                                                      \
        const uint8_t *p[NS];                                                               \
        __m512 acc[NS], corr[NS];                                                           \
        _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) {                            \
            p[s] = (const uint8_t *)w + (size_t)(s * q2 + i) * rb;                          \
            acc[s] = corr[s] = _mm512_setzero_ps();                                         \
        }                                                                                   \
        int64_t b = 0;                                                                      \
        for (; b + 2 <= nb; b += 2) {                                                       \
            const __m512i x01 = _mm512_loadu_si512((const void *)(xa->q + b * QK));        \
            /* [xd0 x 8, xd1 x 8] and [xs0 x 8, xs1 x 8] (8-byte loads: unaligned allowed) */ \
            const __m512 xd01 = _mm512_permutexvar_ps(                                      \
                lo_hi, _mm512_castps128_ps512(                                              \
                           _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xa->d + b))))); \
            const __m512 xs01 = _mm512_permutexvar_ps(                                      \
                lo_hi, _mm512_castps128_ps512(                                              \
                           _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(xa->s + b))))); \
            /* -IOFF * (sum of x) per 4-byte lane (Q4_0, Q5_0) */                           \
            const __m512i c01 =                                                             \
                (IOFF) ? _mm512_mullo_epi32(                                                \
                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), x01), \
                             _mm512_set1_epi32(-(IOFF)))                                    \
                       : _mm512_setzero_si512();                                            \
            _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) {                        \
                const uint8_t *ps = p[s] + (size_t)b * (BB);                                \
                DS_PREFETCH_BLOCK(ps, 2 * (BB));                                            \
                const __m512i v = (size_t)(ps - (const uint8_t *)w) + 64 <= wbytes          \
                                      ? _mm512_loadu_si512((const void *)ps)                \
                                      : _mm512_maskz_loadu_epi8(lm, ps);                    \
                __m512i q = _mm512_and_si512(                                               \
                    _mm512_srlv_epi16(_mm512_permutexvar_epi16(iqs, v), sh), m4);           \
                if ((QH) >= 0) {                                                            \
                    const uint64_t h = (uint64_t)_mm_cvtsi128_si64(                         \
                        _mm512_castsi512_si128(_mm512_permutexvar_epi16(iqh, v)));          \
                    q = _mm512_mask_add_epi8(q, (__mmask64)h, q, b16);                      \
                }                                                                           \
                const __m512i sum = _mm512_dpbusd_epi32(c01, q, x01);                       \
                const __m512 dv =                                                           \
                    _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idd, v))); \
                acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dv, xd01),  \
                                         acc[s]);                                           \
                if (!(IOFF)) { /* c = -m */                                                 \
                    const __m512 cv = _mm512_castsi512_ps(_mm512_xor_si512(                 \
                        _mm512_castps_si512(_mm512_cvtph_ps(                                \
                            _mm512_castsi512_si256(_mm512_permutexvar_epi16(imm, v)))),     \
                        _mm512_set1_epi32((int)0x80000000u)));                              \
                    corr[s] = _mm512_add_ps(corr[s], _mm512_mul_ps(cv, xs01));              \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        float ctail[NS];                                                                    \
        _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) ctail[s] = 0.0f;            \
        if (b < nb) {                                                                       \
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xa->q + b * QK));       \
            _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) {                        \
                float d0, c0;                                                               \
                __m256i q0 = UNPACK(p[s] + (size_t)b * (BB), &d0, &c0);                     \
                acc[s] = _mm512_mask3_fmadd_ps(                                             \
                    _mm512_castps256_ps512(_mm256_cvtepi32_ps(dot_vnni(q0, x0, IOFF))),     \
                    _mm512_set1_ps(d0 * xa->d[b]), acc[s], 0x00FF);                         \
                ctail[s] = (IOFF) ? 0.0f : c0 * xa->s[b];                                   \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) {                            \
            float c0 = _mm512_cvtss_f32(corr[s]);                                           \
            const float c1 = _mm_cvtss_f32(_mm512_extractf32x4_ps(corr[s], 2));             \
            if (b < nb)                                                                     \
                c0 += ctail[s];                                                             \
            y[s * q2 + i] = ds_hsum8(_mm256_add_ps(_mm512_castps512_ps256(acc[s]),          \
                                                   _mm256_castpd_ps(_mm512_extractf64x4_pd( \
                                                       _mm512_castps_pd(acc[s]), 1)))) -    \
                            (c0 + c1);                                                      \
        }                                                                                   \
    }                                                                                       \
    if (nr > (NS) * q2)                                                                     \
        ONE((const uint8_t *)w + (size_t)((NS) * q2) * rb, rb, nr - (NS) * q2, k, xa,       \
            y + (NS) * q2, 1);

/* Weight rows the single-row VNNI GEMV reads at once, one from each of LQ_STREAMS equal parts
 * of the row range (memory streams; the activation blocks loaded once for all). */
#define LQ_STREAMS 4

/* Rows of a legacy type straight into oneDNN's blocked bf16 layout (the prefill tiles; mm.c):
 * slice kb of a row is block kb, whose 32 values are fmsub(q, d, c) as the f32 dequantization
 * computes them, rounded to bf16 as ds_pack_f32_bf16_16rows does. A block's quants take at most
 * 32 values, so they are computed that way once (a 32-entry bf16 table in one register) and
 * looked up by the quants (vpermw): the same bits, without the f32 scratch. */
DS_TARGET_AVX512BF16 static void pack16_lq_avx512bf16(lq_unpack_avx2_fn unpack, size_t bb,
                                                      const uint8_t *w, size_t row_bytes,
                                                      int nrows, int64_t K, uint16_t *dst,
                                                      int sub, const uint8_t *next)
{
    const __m512 iota_lo = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 iota_hi = _mm512_add_ps(iota_lo, _mm512_set1_ps(16.0f));
    for (int64_t kb = 0; kb < K / QK; kb++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            if (i >= nrows) {
                r[i] = _mm512_setzero_si512();
                continue;
            }
            const uint8_t *blk = w + (size_t)i * row_bytes + (size_t)kb * bb;
            if (next && (kb & 1) == 0)
                __builtin_prefetch(next + (size_t)i * row_bytes + (size_t)kb * bb, 0, 3);
            float d, c;
            const __m256i q = unpack(blk, &d, &c);
            const __m512 vd = _mm512_set1_ps(d), vc = _mm512_set1_ps(c);
            const __m512i tab = (__m512i)_mm512_cvtne2ps_pbh(_mm512_fmsub_ps(iota_hi, vd, vc),
                                                             _mm512_fmsub_ps(iota_lo, vd, vc));
            r[i] = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(q), tab);
        }
        ds_pairs_transpose16_store(r, (uint32_t *)(dst + kb * 2048) + sub * 16);
    }
}
#endif /* DS_KERNELS_X86 */

/* ---- instantiation ------------------------------------------------------------------------ */

#if DS_KERNELS_X86
#define LQ_X86(NAME, BB)                                                                    \
    DS_TARGET_AVX2 static void NAME##_to_f32_avx2(const void *src, float *dst, int64_t n)   \
    { lq_to_f32_avx2_t(NAME##_unpack_avx2, BB, src, dst, n); }                              \
    DS_TARGET_AVX512 static void NAME##_to_f32_avx512(const void *src, float *dst,          \
                                                      int64_t n)                            \
    { lq_to_f32_avx512_t(NAME##_unpack_avx2, BB, src, dst, n); }                            \
    DS_TARGET_AVX512 static void NAME##_to_bf16_avx512(const void *src, uint16_t *dst,      \
                                                       int64_t n)                           \
    { lq_to_bf16_avx512_t(NAME##_unpack_avx2, BB, src, dst, n); }                           \
    DS_TARGET_AVX2 DS_INLINE void NAME##_f32_avx2_t(int NX, const void *w, size_t rb,       \
                                                    int64_t nr, int64_t k, const float *x,  \
                                                    int64_t ldx, float *y, int64_t ldy)     \
    { lq_gemv_f32_avx2_t(NAME##_unpack_avx2, BB, NX, w, rb, nr, k, x, ldx, y, ldy); }       \
    DS_GEMV_F32_INSTANCES(NAME##_gemv_f32_avx2, DS_TARGET_AVX2, NAME##_f32_avx2_t)          \
    DS_TARGET_AVX512 DS_INLINE void NAME##_f32_avx512_t(int NX, const void *w, size_t rb,   \
                                                        int64_t nr, int64_t k,              \
                                                        const float *x, int64_t ldx,        \
                                                        float *y, int64_t ldy)              \
    { lq_gemv_f32_avx512_t(NAME##_unpack_avx2, BB, NX, w, rb, nr, k, x, ldx, y, ldy); }     \
    DS_GEMV_F32_INSTANCES(NAME##_gemv_f32_avx512, DS_TARGET_AVX512, NAME##_f32_avx512_t)    \
    DS_TARGET_AVX2 DS_INLINE void NAME##_q8_avx2_t(int NX, const void *w, size_t rb,        \
                                                   int64_t nr, int64_t k, const ds_qact *xa, \
                                                   float *y, int64_t ldy)                   \
    { LQ_Q8_BODY(NAME##_unpack_avx2, BB, dot_avx2, 0) }                                        \
    DS_GEMV_Q8_INSTANCES(NAME##_q8_avx2, DS_TARGET_AVX2, NAME##_q8_avx2_t)                  \
    DS_TARGET_AVX512VNNI DS_INLINE void NAME##_q8_vnni_t(int NX, const void *w, size_t rb,  \
                                                         int64_t nr, int64_t k,             \
                                                         const ds_qact *xa, float *y,       \
                                                         int64_t ldy)                       \
    { LQ_Q8_BODY(NAME##_unpack_vnni, BB, dot_vnni, NAME##_IOFF) }                                        \
    DS_GEMV_Q8_INSTANCES(NAME##_q8_vnni, DS_TARGET_AVX512VNNI, NAME##_q8_vnni_t)            \
    DS_TARGET_AVX512VNNI static void NAME##_q8_vnni_ns(const void *w, size_t rb, int64_t nr, \
                                                       int64_t k, const ds_qact *xa, float *y) \
    { LQ_Q8_BODY_W512(NAME##_unpack_vnni, BB, NAME##_QS, NAME##_QH, NAME##_IOFF,  \
                      NAME##_q8_vnni_1, LQ_STREAMS) }                                       \
    static void NAME##_gemv_q8_avx512(DS_GEMV_Q8_PARAMS)                                    \
    {                                                                                       \
        if (ds_cpu_get()->avx512vnni && nx == 1)                                            \
            NAME##_q8_vnni_ns(w, rb, nr, k, xa, y);                                         \
        else if (ds_cpu_get()->avx512vnni)                                                  \
            NAME##_q8_vnni(w, rb, nr, k, xa, nx, y, ldy);                                   \
        else                                                                                \
            NAME##_q8_avx2(w, rb, nr, k, xa, nx, y, ldy);                                   \
    }                                                                                       \
    static bool NAME##_pack16(ds_isa isa, const void *w, size_t row_bytes, int nrows,       \
                              int64_t K, uint16_t *dst, int sub, const void *next)          \
    {                                                                                       \
        if (isa < DS_ISA_AVX512 || !ds_cpu_get()->avx512bf16 || K % QK)                     \
            return false;                                                                   \
        pack16_lq_avx512bf16(NAME##_unpack_avx2, BB, w, row_bytes, nrows, K, dst, sub, next); \
        return true;                                                                        \
    }
#define LQ_ENTRY(TYPE, NAME, BB)                                                            \
    const ds_type_kernels ds_kernels_##NAME = {                                             \
        TYPE, QK, BB,                                                                       \
        {NAME##_to_f32_scalar, NAME##_to_f32_avx2, NAME##_to_f32_avx512},                   \
        {NAME##_to_bf16_scalar, NULL, NAME##_to_bf16_avx512},                               \
        {NAME##_gemv_f32_scalar, NAME##_gemv_f32_avx2, NAME##_gemv_f32_avx512},             \
        {NAME##_gemv_q8_scalar, NAME##_q8_avx2, NAME##_gemv_q8_avx512},                     \
        DS_ACT_Q8_1, LQ_GEMV_MAX_M, NAME##_pack16};
#else
#define LQ_X86(NAME, BB)
#define LQ_ENTRY(TYPE, NAME, BB)                                                            \
    const ds_type_kernels ds_kernels_##NAME = {                                             \
        TYPE, QK, BB,                                                                       \
        {NAME##_to_f32_scalar, NULL, NULL},                                                 \
        {NAME##_to_bf16_scalar, NULL, NULL},                                                \
        {NAME##_gemv_f32_scalar, NULL, NULL},                                               \
        {NAME##_gemv_q8_scalar, NULL, NULL},                                                \
        DS_ACT_Q8_1, LQ_GEMV_MAX_M, NULL};
#endif

#define LQ_TYPE(TYPE, NAME, BB)                                                             \
    static void NAME##_to_f32_scalar(const void *src, float *dst, int64_t n)                \
    { lq_to_f32_scalar_t(NAME##_unpack_scalar, BB, src, dst, n); }                          \
    static void NAME##_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)            \
    { lq_to_bf16_scalar_t(NAME##_unpack_scalar, BB, src, dst, n); }                         \
    static void NAME##_gemv_f32_scalar(DS_GEMV_F32_PARAMS)                                  \
    { lq_gemv_f32_scalar_t(NAME##_unpack_scalar, BB, w, rb, nr, k, x, ldx, nx, y, ldy); }   \
    static void NAME##_gemv_q8_scalar(DS_GEMV_Q8_PARAMS)                                    \
    { lq_gemv_q8_scalar_t(NAME##_unpack_scalar, BB, w, rb, nr, k, xa, nx, y, ldy); }        \
    LQ_X86(NAME, BB)                                                                        \
    LQ_ENTRY(TYPE, NAME, BB)

LQ_TYPE(DS_GGML_Q4_0, q4_0, 18)
LQ_TYPE(DS_GGML_Q4_1, q4_1, 20)
LQ_TYPE(DS_GGML_Q5_0, q5_0, 22)
LQ_TYPE(DS_GGML_Q5_1, q5_1, 24)
