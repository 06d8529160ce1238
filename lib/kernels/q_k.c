/*
 * lib/kernels/q_k.c — the K-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (formats.md §2.4: super-blocks
 * of 256 elements) and the Q8_K activation quantizer (§2.5).
 *
 * Every K-quant super-block is first unpacked into one common form:
 *     y[e] = d * sc[g] * q[e] - dmin * mn[g],   g = e / 16,
 * with q unsigned (0..63), sc a signed 8-bit scale and mn a signed 16-bit offset per group of 16:
 *     Q4_K/Q5_K: sc = the 6-bit scale, mn = the 6-bit min of sub-block e/32 (q 0..15 / 0..31);
 *     Q2_K:      sc = low nibble, mn = high nibble of scales[g] (q 0..3);
 *     Q3_K:      sc = the signed 6-bit scale, q = low2 + 4*hbit (0..7), dmin = d, mn = 4*sc;
 *     Q6_K:      sc = the i8 scale, q = lo4 | hi2 << 4 (0..63), dmin = d, mn = 32*sc.
 * In f32 the products d*sc, (d*sc)*q and dmin*mn are exact (at most 24 significant bits), so the
 * dequantized value is the exact value rounded once, at every ISA level, bit for bit.
 *
 * Then three consumers per ISA level, written once:
 *   - dequantization to f32 / bf16 (batches: the tiles of mm.c);
 *   - GEMV with f32 activations (DS_PRECISION_F32): the weights of each group dequantized in
 *     registers and multiplied in f32;
 *   - GEMV with Q8_K activations (DS_PRECISION_FAST): per super-block
 *         d*dA * sum_g sc[g] * sum_{e in g} q[e]*qA[e]  -  dmin*dA * sum_g mn[g] * bsums[g]
 *     with exact integer inner sums. q is unsigned and qA signed, the operand order of
 *     vpmaddubsw (AVX2: u8*s8 pair sums, at most 2*63*127, no saturation, multiplied by the
 *     group scale with vpmaddwd) and of vpdpbusd (AVX-512 VNNI: 4-element sums narrowed to 16
 *     bits and scaled with vpdpwssd; see "the 512-bit VNNI GEMV" below). AVX-512 without VNNI
 *     uses the AVX2 code.
 */
#include "kernels/kernels_impl.h"
#include "kernels/gemv_tmpl.h"

#include "format/ggml_types.h"

#include <math.h>
#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

#define QK_K DS_QK_K
#define Q2K_BYTES 84
#define Q3K_BYTES 110
#define Q4K_BYTES 144
#define Q5K_BYTES 176
#define Q6K_BYTES 210
/* Batches up to this many rows use the int8 GEMV rather than dequantized bf16/f32 tiles and
 * oneDNN: measured on the 2-core VM (2048 x 1408 weights, FAST) the tiles cost ~0.3 ns per weight
 * whatever M, the GEMV ~0.014 ns per weight and row: crossover near 20 rows. */
#define KQ_GEMV_MAX_M 16
/* Weight rows the single-row VNNI GEMV reads at once, one from each of KQ_STREAMS equal parts
 * of the row range (memory streams). Measured on the 2-core AMD VM, 2 threads from DRAM (the
 * 512-bit pair builders below): Q6_K 2048 x 102400 45 -> 64 GB/s and Q4_K 2048 x 65536 51 ->
 * 63 GB/s going from 2 to 4; 8 streams fell back to 39-48 GB/s. */
#define KQ_STREAMS 4

/* ---- scalar unpacking ------------------------------------------------------------------- */

typedef struct kq_blk {
    uint8_t q[QK_K];
    int8_t sc[16];
    int16_t mn[16];
    float d, dmin;
} kq_blk;

/* Q4_K/Q5_K: eight 6-bit scales and eight 6-bit mins from 12 bytes. */
static inline void unpack_sm8(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

static inline void q4k_common_scalar(const uint8_t *p, kq_blk *u)
{
    uint8_t sc[8], mn[8];
    u->d = ds_f16_to_f32(ds_rd16(p));
    u->dmin = ds_f16_to_f32(ds_rd16(p + 2));
    unpack_sm8(p + 4, sc, mn);
    for (int g = 0; g < 16; g++) {
        u->sc[g] = (int8_t)sc[g / 2];
        u->mn[g] = mn[g / 2];
    }
}

static void q4k_unpack_scalar(const uint8_t *p, kq_blk *u)
{
    q4k_common_scalar(p, u);
    const uint8_t *qs = p + 16;
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) {
            u->q[64 * c + i] = qs[32 * c + i] & 0x0F;
            u->q[64 * c + 32 + i] = qs[32 * c + i] >> 4;
        }
}

static void q5k_unpack_scalar(const uint8_t *p, kq_blk *u)
{
    q4k_common_scalar(p, u);
    const uint8_t *qh = p + 16, *qs = p + 48;
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 32; i++) {
            u->q[64 * c + i] = (uint8_t)((qs[32 * c + i] & 0x0F) | (((qh[i] >> (2 * c)) & 1) << 4));
            u->q[64 * c + 32 + i] =
                (uint8_t)((qs[32 * c + i] >> 4) | (((qh[i] >> (2 * c + 1)) & 1) << 4));
        }
}

static void q6k_unpack_scalar(const uint8_t *p, kq_blk *u)
{
    const uint8_t *ql = p, *qh = p + 128;
    const int8_t *sc = (const int8_t *)(p + 192);
    u->d = u->dmin = ds_f16_to_f32(ds_rd16(p + 208));
    for (int g = 0; g < 16; g++) {
        u->sc[g] = sc[g];
        u->mn[g] = (int16_t)(32 * sc[g]);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 32; i++) {
            uint8_t a = ql[64 * h + i], b = ql[64 * h + 32 + i], hb = qh[32 * h + i];
            uint8_t *q = u->q + 128 * h + i;
            q[0] = (uint8_t)((a & 0x0F) | ((hb & 3) << 4));
            q[32] = (uint8_t)((b & 0x0F) | (((hb >> 2) & 3) << 4));
            q[64] = (uint8_t)((a >> 4) | (((hb >> 4) & 3) << 4));
            q[96] = (uint8_t)((b >> 4) | ((hb >> 6) << 4));
        }
}

static void q2k_unpack_scalar(const uint8_t *p, kq_blk *u)
{
    const uint8_t *qs = p + 16;
    u->d = ds_f16_to_f32(ds_rd16(p + 80));
    u->dmin = ds_f16_to_f32(ds_rd16(p + 82));
    for (int g = 0; g < 16; g++) {
        u->sc[g] = (int8_t)(p[g] & 0x0F);
        u->mn[g] = p[g] >> 4;
    }
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 32; i++)
                u->q[128 * h + 32 * j + i] = (qs[32 * h + i] >> (2 * j)) & 3;
}

/* Q3_K: sixteen 6-bit scales (low nibbles in bytes 0..7, high pairs in bytes 8..11), minus 32. */
static inline void q3k_scales(const uint8_t *s, int8_t sc[16])
{
    for (int k = 0; k < 8; k++) {
        int hi_lo = (s[8 + k % 4] >> (2 * (k / 4))) & 3;       /* scale k */
        int hi_hi = (s[8 + k % 4] >> (2 * (k / 4 + 2))) & 3;   /* scale k + 8 */
        sc[k] = (int8_t)(((s[k] & 0x0F) | (hi_lo << 4)) - 32);
        sc[k + 8] = (int8_t)(((s[k] >> 4) | (hi_hi << 4)) - 32);
    }
}

static void q3k_unpack_scalar(const uint8_t *p, kq_blk *u)
{
    const uint8_t *hm = p, *qs = p + 32;
    u->d = u->dmin = ds_f16_to_f32(ds_rd16(p + 108));
    q3k_scales(p + 96, u->sc);
    for (int g = 0; g < 16; g++)
        u->mn[g] = (int16_t)(4 * u->sc[g]);
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 32; i++)
                u->q[128 * h + 32 * j + i] = (uint8_t)(((qs[32 * h + i] >> (2 * j)) & 3) |
                                                       (((hm[i] >> (4 * h + j)) & 1) << 2));
}

typedef void (*kq_unpack_scalar_fn)(const uint8_t *p, kq_blk *u);

/* ---- scalar consumers ------------------------------------------------------------------- */

static inline void kq_to_f32_scalar_t(kq_unpack_scalar_fn unpack, size_t bb, const void *src,
                                      float *dst, int64_t n)
{
    const uint8_t *p = src;
    kq_blk u;
    for (int64_t b = 0; b < n / QK_K; b++, p += bb) {
        unpack(p, &u);
        for (int g = 0; g < 16; g++) {
            float a = u.d * (float)u.sc[g], c = u.dmin * (float)u.mn[g];
            for (int i = 0; i < 16; i++)
                dst[b * QK_K + 16 * g + i] = a * (float)u.q[16 * g + i] - c;
        }
    }
}

static inline void kq_to_bf16_scalar_t(kq_unpack_scalar_fn unpack, size_t bb, const void *src,
                                       uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    float tmp[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, p += bb) {
        kq_to_f32_scalar_t(unpack, bb, p, tmp, QK_K);
        for (int i = 0; i < QK_K; i++)
            dst[b * QK_K + i] = ds_f32_to_bf16(tmp[i]);
    }
}

static inline void kq_gemv_f32_scalar_t(kq_unpack_scalar_fn unpack, size_t bb,
                                        DS_GEMV_F32_PARAMS)
{
    kq_blk u;
    for (int64_t r = 0; r < nr; r++) {
        float acc[DS_GEMV_NX][8];
        for (int m0 = 0; m0 < nx; m0 += DS_GEMV_NX) {
            int nm = nx - m0 < DS_GEMV_NX ? nx - m0 : DS_GEMV_NX;
            memset(acc, 0, sizeof acc);
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            for (int64_t b = 0; b < k / QK_K; b++, p += bb) {
                unpack(p, &u);
                for (int g = 0; g < 16; g++) {
                    float a = u.d * (float)u.sc[g], c = u.dmin * (float)u.mn[g];
                    for (int i = 0; i < 16; i++) {
                        float wv = a * (float)u.q[16 * g + i] - c;
                        for (int m = 0; m < nm; m++)
                            acc[m][i & 7] += wv * x[(m0 + m) * ldx + b * QK_K + 16 * g + i];
                    }
                }
            }
            for (int m = 0; m < nm; m++)
                y[(m0 + m) * ldy + r] = ((acc[m][0] + acc[m][4]) + (acc[m][1] + acc[m][5])) +
                                        ((acc[m][2] + acc[m][6]) + (acc[m][3] + acc[m][7]));
        }
    }
}

static inline void kq_gemv_q8_scalar_t(kq_unpack_scalar_fn unpack, size_t bb,
                                       DS_GEMV_Q8_PARAMS)
{
    const int64_t nb = k / QK_K;
    kq_blk u;
    for (int64_t r = 0; r < nr; r++) {
        for (int m = 0; m < nx; m++) {
            const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
            const int8_t *xq = xa->q + m * k;
            const int16_t *bs = xa->bsums + m * (k / 16);
            float acc = 0.0f, accm = 0.0f;
            for (int64_t b = 0; b < nb; b++, p += bb) {
                unpack(p, &u);
                int32_t isum = 0, imin = 0;
                for (int g = 0; g < 16; g++) {
                    int32_t s = 0;
                    for (int i = 0; i < 16; i++)
                        s += (int32_t)u.q[16 * g + i] * xq[b * QK_K + 16 * g + i];
                    isum += u.sc[g] * s;
                    imin += u.mn[g] * bs[b * 16 + g];
                }
                float dA = xa->d[m * nb + b];
                acc += (float)isum * (u.d * dA);
                accm += (float)imin * (u.dmin * dA);
            }
            y[m * ldy + r] = acc - accm;
        }
    }
}

#if DS_KERNELS_X86

/* ---- AVX2 unpacking --------------------------------------------------------------------- */

typedef struct kq_vec {
    __m256i q[8];   /* u8 quants of elements 32c .. 32c+31 */
    __m128i sc;     /* i8 scale of each group of 16 */
    __m256i mn;     /* i16 offset of each group of 16 */
    float d, dmin;
} kq_vec;

DS_TARGET_AVX2 DS_INLINE __m256i m8(int v)
{
    return _mm256_set1_epi8((char)v);
}

/* Q4_K/Q5_K scales and mins: the 12 bytes as three little-endian words a, b, c hold
 * sc0-3 (a & 0x3F..), m0-3 (b & 0x3F..), and for j = 4..7 the low nibbles of c (scales) and high
 * nibbles of c (mins) with bits 4-5 from the top two bits of a (scales) / b (mins). sc8, mn8:
 * the eight scales / mins as bytes 0-7. */
DS_TARGET_AVX2 DS_INLINE void q4k_sm8(const uint8_t *p, __m128i *sc8, __m128i *mn8)
{
    uint32_t a = ds_rd32(p + 4), b = ds_rd32(p + 8), c = ds_rd32(p + 12);
    uint32_t sc03 = a & 0x3F3F3F3Fu, mn03 = b & 0x3F3F3F3Fu;
    uint32_t sc47 = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
    uint32_t mn47 = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
    *sc8 = _mm_cvtsi64_si128((long long)((uint64_t)sc47 << 32 | sc03));
    *mn8 = _mm_cvtsi64_si128((long long)((uint64_t)mn47 << 32 | mn03));
}

/* The eight mins of q4k_sm8 as the i16 offset of each group of 16. */
DS_TARGET_AVX2 DS_INLINE __m256i q4k_group_mins(__m128i mn8)
{
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(mn8, dup));
}

DS_TARGET_AVX2 DS_INLINE void q4k_scales_avx2(const uint8_t *p, kq_vec *u)
{
    u->d = _cvtsh_ss(ds_rd16(p));
    u->dmin = _cvtsh_ss(ds_rd16(p + 2));
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m128i sc8, mn8;
    q4k_sm8(p, &sc8, &mn8);
    u->sc = _mm_shuffle_epi8(sc8, dup);
    u->mn = q4k_group_mins(mn8);
}

DS_TARGET_AVX2 DS_INLINE void q4k_unpack_avx2(const uint8_t *p, kq_vec *u)
{
    q4k_scales_avx2(p, u);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c));
        u->q[2 * c] = _mm256_and_si256(v, m8(0x0F));
        u->q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m8(0x0F));
    }
}

/* Bit j of each byte of v moved to bit `to` (other bits cleared). 16-bit shifts are fine: the
 * bit that lands on `to` always comes from the same byte. */
#define BIT_TO(v, j, to)                                                                    \
    _mm256_and_si256((j) <= (to) ? _mm256_slli_epi16((v), (to) - (j))                      \
                                 : _mm256_srli_epi16((v), (j) - (to)),                     \
                     m8(1 << (to)))

DS_TARGET_AVX2 DS_INLINE void q5k_unpack_avx2(const uint8_t *p, kq_vec *u)
{
    q4k_scales_avx2(p, u);
    __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 16));
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * c));
        u->q[2 * c] = _mm256_or_si256(_mm256_and_si256(v, m8(0x0F)), BIT_TO(hb, 2 * c, 4));
        u->q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m8(0x0F)),
                                          BIT_TO(hb, 2 * c + 1, 4));
    }
}

DS_TARGET_AVX2 DS_INLINE void q6k_unpack_avx2(const uint8_t *p, kq_vec *u)
{
    u->d = u->dmin = _cvtsh_ss(ds_rd16(p + 208));
    u->sc = _mm_loadu_si128((const __m128i *)(p + 192));
    u->mn = _mm256_slli_epi16(_mm256_cvtepi8_epi16(u->sc), 5);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
        __m256i hb = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
        __m256i a_hi = _mm256_and_si256(_mm256_srli_epi16(a, 4), m8(0x0F));
        __m256i b_hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m8(0x0F));
        u->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(a, m8(0x0F)),
                                          _mm256_and_si256(_mm256_slli_epi16(hb, 4), m8(0x30)));
        u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(b, m8(0x0F)),
                                          _mm256_and_si256(_mm256_slli_epi16(hb, 2), m8(0x30)));
        u->q[4 * h + 2] = _mm256_or_si256(a_hi, _mm256_and_si256(hb, m8(0x30)));
        u->q[4 * h + 3] = _mm256_or_si256(b_hi,
                                          _mm256_and_si256(_mm256_srli_epi16(hb, 2), m8(0x30)));
    }
}

DS_TARGET_AVX2 DS_INLINE void q2k_unpack_avx2(const uint8_t *p, kq_vec *u)
{
    u->d = _cvtsh_ss(ds_rd16(p + 80));
    u->dmin = _cvtsh_ss(ds_rd16(p + 82));
    __m128i s = _mm_loadu_si128((const __m128i *)p);
    u->sc = _mm_and_si128(s, _mm_set1_epi8(0x0F));
    u->mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0F)));
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * h));
        u->q[4 * h + 0] = _mm256_and_si256(v, m8(3));
        u->q[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m8(3));
        u->q[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m8(3));
        u->q[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m8(3));
    }
}

/* Q3_K scales from the 12 bytes: low nibbles of bytes 0..7 are scales 0..7, high nibbles scales
 * 8..15; 2-bit field i of bytes 8..11 (word c) supplies bits 4-5 of scales 4i .. 4i+3. */
DS_TARGET_AVX2 DS_INLINE __m128i q3k_scales_avx2(const uint8_t *s)
{
    uint64_t lo = ds_rd64(s);
    uint32_t c = ds_rd32(s + 8);
    uint64_t l0 = lo & 0x0F0F0F0F0F0F0F0Full, l1 = (lo >> 4) & 0x0F0F0F0F0F0F0F0Full;
    uint64_t h0 = (uint64_t)(c & 0x03030303u) | (uint64_t)((c >> 2) & 0x03030303u) << 32;
    uint64_t h1 = (uint64_t)((c >> 4) & 0x03030303u) | (uint64_t)((c >> 6) & 0x03030303u) << 32;
    __m128i v = _mm_set_epi64x((long long)(l1 | h1 << 4), (long long)(l0 | h0 << 4));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

DS_TARGET_AVX2 DS_INLINE void q3k_unpack_avx2(const uint8_t *p, kq_vec *u)
{
    u->d = u->dmin = _cvtsh_ss(ds_rd16(p + 108));
    u->sc = q3k_scales_avx2(p + 96);
    u->mn = _mm256_slli_epi16(_mm256_cvtepi8_epi16(u->sc), 2);
    __m256i hm = _mm256_loadu_si256((const __m256i *)p);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + 32 + 32 * h));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i lo2 = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m8(3));
            u->q[4 * h + j] = _mm256_or_si256(lo2, BIT_TO(hm, 4 * h + j, 2));
        }
    }
}

typedef void (*kq_unpack_avx2_fn)(const uint8_t *p, kq_vec *u);

/* a[g] = d * sc[g], c[g] = dmin * mn[g] (exact products). */
DS_TARGET_AVX2 DS_INLINE void kq_group_scales(const kq_vec *u, float a[16], float c[16])
{
    __m256 d = _mm256_set1_ps(u->d), dm = _mm256_set1_ps(u->dmin);
    _mm256_storeu_ps(a, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(u->sc))));
    _mm256_storeu_ps(a + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                                 _mm_srli_si128(u->sc, 8)))));
    _mm256_storeu_ps(c, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(
                                              _mm256_castsi256_si128(u->mn)))));
    _mm256_storeu_ps(c + 8, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(
                                                  _mm256_extracti128_si256(u->mn, 1)))));
}

/* The f32 consumers read the per-group scales and the quants back from memory: a broadcast or
 * zero-extension from memory is a load uop, whereas GCC would otherwise extract each of them from
 * registers with shuffles (measured: the f32 GEMV was bound by those port-5 shuffles, 3x slower).
 * The empty asm keeps the compiler from forwarding the stored vectors. */
typedef struct kq_stage {
    _Alignas(64) uint8_t q[QK_K];
    _Alignas(64) float a[16];
    _Alignas(64) float c[16];
} kq_stage;

DS_TARGET_AVX2 DS_INLINE void kq_stage_fill(const kq_vec *u, kq_stage *st)
{
    kq_group_scales(u, st->a, st->c);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        _mm256_store_si256((__m256i *)(st->q + 32 * i), u->q[i]);
    __asm__ volatile("" ::: "memory");
}

/* Elements 8h .. 8h+7 of group g, as floats (from the stage). */
DS_TARGET_AVX2 DS_INLINE __m256 stage_8_f32(const kq_stage *st, int g, int h)
{
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(st->q + 16 * g + 8 * h))));
}

/* ---- AVX2 consumers --------------------------------------------------------------------- */

DS_TARGET_AVX2 DS_INLINE void kq_to_f32_avx2_t(kq_unpack_avx2_fn unpack, size_t bb,
                                               const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += bb) {
        kq_vec u;
        kq_stage st;
        unpack(p, &u);
        kq_stage_fill(&u, &st);
        float *o = dst + b * QK_K;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m256 va = _mm256_broadcast_ss(&st.a[g]), vc = _mm256_broadcast_ss(&st.c[g]);
            _mm256_storeu_ps(o + 16 * g, _mm256_fmsub_ps(stage_8_f32(&st, g, 0), va, vc));
            _mm256_storeu_ps(o + 16 * g + 8, _mm256_fmsub_ps(stage_8_f32(&st, g, 1), va, vc));
        }
    }
}

/* f32 GEMV: NX rows, U accumulators per row (4 for one row, 2 otherwise). */
DS_TARGET_AVX2 DS_INLINE void kq_gemv_f32_avx2_t(kq_unpack_avx2_fn unpack, size_t bb, int NX,
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
        for (int64_t b = 0; b < k / QK_K; b++, p += bb) {
            DS_PREFETCH_BLOCK(p, bb);
            kq_vec u;
            kq_stage st;
            unpack(p, &u);
            kq_stage_fill(&u, &st);
#pragma GCC unroll 16
            for (int g = 0; g < 16; g++) {
                __m256 va = _mm256_broadcast_ss(&st.a[g]), vc = _mm256_broadcast_ss(&st.c[g]);
                __m256 w0 = _mm256_fmsub_ps(stage_8_f32(&st, g, 0), va, vc);
                __m256 w1 = _mm256_fmsub_ps(stage_8_f32(&st, g, 1), va, vc);
                const int j0 = (2 * g) % U, j1 = (2 * g + 1) % U;
#pragma GCC unroll 4
                for (int m = 0; m < NX; m++) {
                    const float *xb = x + m * ldx + b * QK_K + 16 * g;
                    acc[m][j0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb), acc[m][j0]);
                    acc[m][j1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), acc[m][j1]);
                }
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

/* Chunk c's group scales as 16 x i16: lanes 0-7 sc[2c], lanes 8-15 sc[2c+1] (the layout of
 * vpmaddubsw's pair sums: lane i holds elements 2i, 2i+1). */
DS_TARGET_AVX2 DS_INLINE __m256i chunk_scales(__m128i sc, int c)
{
    const __m128i pat = _mm_set_epi64x((long long)(0x0101010101010101ull * (2 * c + 1)),
                                       (long long)(0x0101010101010101ull * (2 * c)));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, pat));
}

DS_TARGET_AVX2 DS_INLINE __m256i dotacc_avx2(__m256i acc, __m256i p16, __m256i s16)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, s16));
}

/* The Q8_K GEMV template of the AVX2 level (and of AVX-512 without VNNI). */
#define KQ_Q8_BODY(UNPACK, BB, DOTACC)                                                      \
    const int64_t nb = k / QK_K;                                                            \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m256 acc[DS_GEMV_NX], accm[DS_GEMV_NX];                                           \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            acc[m] = accm[m] = _mm256_setzero_ps();                                         \
        for (int64_t b = 0; b < nb; b++, p += (BB)) {                                       \
            DS_PREFETCH_BLOCK(p, BB);                                                       \
            kq_vec u;                                                                       \
            UNPACK(p, &u);                                                                  \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                const int8_t *xq = xa->q + m * k + b * QK_K;                                \
                __m256i isum = _mm256_setzero_si256();                                      \
                _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {                       \
                    __m256i x8 = _mm256_loadu_si256((const __m256i *)(xq + 32 * c));        \
                    isum = DOTACC(isum, _mm256_maddubs_epi16(u.q[c], x8),                   \
                                  chunk_scales(u.sc, c));                                   \
                }                                                                           \
                __m256i bs = _mm256_loadu_si256(                                            \
                    (const __m256i *)(xa->bsums + m * (k / 16) + 16 * b));                  \
                __m256i imin = _mm256_madd_epi16(bs, u.mn);                                 \
                float dA = xa->d[m * nb + b];                                               \
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(u.d * dA), \
                                         acc[m]);                                           \
                accm[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin),                         \
                                          _mm256_set1_ps(u.dmin * dA), accm[m]);            \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = ds_hsum8(_mm256_sub_ps(acc[m], accm[m]));                      \
    }

/* ---- AVX-512 consumers ------------------------------------------------------------------ */

/* Group g (16 elements) as floats (from the stage). */
DS_TARGET_AVX512 DS_INLINE __m512 group_f32(const kq_stage *st, int g)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(st->q + 16 * g))));
}

/* y = q * a[g] - c[g] for group g. */
DS_TARGET_AVX512 DS_INLINE __m512 group_w(const kq_stage *st, int g)
{
    return _mm512_fmsub_ps(group_f32(st, g), _mm512_set1_ps(st->a[g]), _mm512_set1_ps(st->c[g]));
}

DS_TARGET_AVX512 DS_INLINE void kq_to_f32_avx512_t(kq_unpack_avx2_fn unpack, size_t bb,
                                                   const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += bb) {
        kq_vec u;
        kq_stage st;
        unpack(p, &u);
        kq_stage_fill(&u, &st);
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++)
            _mm512_storeu_ps(dst + b * QK_K + 16 * g, group_w(&st, g));
    }
}

DS_TARGET_AVX512 DS_INLINE void kq_to_bf16_avx512_t(kq_unpack_avx2_fn unpack, size_t bb,
                                                    const void *src, uint16_t *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += bb) {
        kq_vec u;
        kq_stage st;
        unpack(p, &u);
        kq_stage_fill(&u, &st);
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++)
            _mm256_storeu_si256((__m256i *)(dst + b * QK_K + 16 * g), ds_to_bf16_16(group_w(&st, g)));
    }
}

DS_TARGET_AVX512 DS_INLINE void kq_gemv_f32_avx512_t(kq_unpack_avx2_fn unpack, size_t bb, int NX,
                                                     const void *w, size_t rb, int64_t nr,
                                                     int64_t k, const float *x, int64_t ldx,
                                                     float *y, int64_t ldy)
{
    const int U = NX == 1 ? 4 : 2;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;
        __m512 acc[DS_GEMV_NX][4];
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                acc[m][j] = _mm512_setzero_ps();
        for (int64_t b = 0; b < k / QK_K; b++, p += bb) {
            DS_PREFETCH_BLOCK(p, bb);
            kq_vec u;
            kq_stage st;
            unpack(p, &u);
            kq_stage_fill(&u, &st);
#pragma GCC unroll 16
            for (int g = 0; g < 16; g++) {
                __m512 wv = group_w(&st, g);
#pragma GCC unroll 4
                for (int m = 0; m < NX; m++)
                    acc[m][g % U] = _mm512_fmadd_ps(
                        wv, _mm512_loadu_ps(x + m * ldx + b * QK_K + 16 * g), acc[m][g % U]);
            }
        }
#pragma GCC unroll 4
        for (int m = 0; m < NX; m++) {
            __m512 t = _mm512_add_ps(acc[m][0], acc[m][1]);
            if (U == 4)
                t = _mm512_add_ps(t, _mm512_add_ps(acc[m][2], acc[m][3]));
            y[m * ldy + r] = _mm512_reduce_add_ps(t);
        }
    }
}

/* Q4_K rows straight into oneDNN's blocked bf16 layout (the prefill tiles; mm.c): slice kb
 * (32 k) of a row is sub-block kb % 8 of super-block kb / 8 -- the low (even) or high (odd)
 * nibbles of qs bytes 32 * (j / 2) .. -- dequantized as group_w does it, fmsub(q, a, c) with
 * the group scales of kq_group_scales (exact products, one rounding), then rounded to bf16 like
 * ds_pack_f32_bf16_16rows: the 16 values a slice can take are computed that way once and the
 * nibbles look them up (vpermw), 2 instructions per 32 weights instead of 7. The 16 rows'
 * scales are unpacked once per super-block. */
#define Q4K_PF_SB 2 /* pack16_q4_k_avx512bf16's prefetch distance, in super-blocks */
DS_TARGET_AVX512BF16 static void pack16_q4_k_avx512bf16(const uint8_t *w, size_t row_bytes,
                                                        int nrows, int64_t K, uint16_t *dst,
                                                        int sub, const uint8_t *next)
{
    _Alignas(64) float a[16][16], c[16][16];
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t sb = 0; sb < K / QK_K; sb++) {
        for (int i = 0; i < nrows; i++) {
            const size_t o = (size_t)i * row_bytes + (size_t)sb * Q4K_BYTES;
            kq_vec u;
            q4k_scales_avx2(w + o, &u);
            kq_group_scales(&u, a[i], c[i]);
            /* prefetch Q4K_PF_SB super-blocks ahead along the row (into the next group of
             * 16 rows at the end): the next group's same super-block came too late */
            const int64_t ah = sb + Q4K_PF_SB;
            const uint8_t *pf = ah < K / QK_K ? w + o + Q4K_PF_SB * Q4K_BYTES
                                : next ? next + (size_t)i * row_bytes + (size_t)(ah - K / QK_K) * Q4K_BYTES
                                       : NULL;
            if (pf)
                for (int b = 0; b < Q4K_BYTES + 64; b += 64)
                    __builtin_prefetch(pf + b, 0, 3);
        }
        for (int j = 0; j < 8; j++) {
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                if (i >= nrows) {
                    r[i] = _mm512_setzero_si512();
                    continue;
                }
                const uint8_t *q = w + (size_t)i * row_bytes + (size_t)sb * Q4K_BYTES + 16 + 32 * (j / 2);
                __m256i v = _mm256_loadu_si256((const __m256i *)q);
                if (j & 1)
                    v = _mm256_srli_epi16(v, 4);
                v = _mm256_and_si256(v, m4);
                /* the slice's 16 possible values, fmsub(q, a, c) rounded to bf16, looked up
                 * by the nibbles (vpermw): the same bits as converting each element */
                const __m512 tv = _mm512_fmsub_ps(iota, _mm512_set1_ps(a[i][2 * j]),
                                                  _mm512_set1_ps(c[i][2 * j]));
                const __m512i tab = _mm512_zextsi256_si512((__m256i)_mm512_cvtneps_pbh(tv));
                r[i] = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(v), tab);
            }
            ds_pairs_transpose16_store(r, (uint32_t *)(dst + (sb * 8 + j) * 2048) + sub * 16);
        }
    }
}

/* 512-bit helpers of the builders below: a 16-bit count per 256-bit half (vpsllvw / vpsrlvw
 * take each half of a broadcast to its chunk), and 32 bytes in both halves. */
DS_TARGET_AVX512VNNI DS_INLINE __m512i halves_epi16(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi16((short)lo), _mm256_set1_epi16((short)hi), 1);
}

DS_TARGET_AVX512VNNI DS_INLINE __m512i dup256(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* ---- the 512-bit VNNI GEMV (Q8_K activations) -------------------------------------------
 * Each 64-byte vector of unsigned quants goes through one vpdpbusd with the activation quants
 * (4-element sums, at most 4 * 63 * 127 = 32004: exact in 16 bits); two such results are
 * narrowed into one vector by vpackssdw and multiplied by their group scales with one vpdpwssd.
 * That is three multiplies and a shuffle per 128 weights, where vpmaddubsw pair sums scaled by
 * vpdpwssd take four multiplies; the scale vectors are two vpermw per super-block. Measured on
 * the 2-core AMD VM, one thread, weights in L3 (bench-kernels-quant 2048 8192): Q4_K 29-30 ->
 * 36-42 GB/s, Q6_K 38-47 -> 49-54 GB/s against the vpmaddubsw form.
 *
 * Per super-block, kq_pk holds q[i] = the quants of elements 64i .. 64i+63, the i16 scales
 * sc[h] lined up with vpackssdw(dpbusd(q[2h]), dpbusd(q[2h+1])) -- 128-bit lane L holds four
 * dword sums of q[2h] (words 0-3) and four of q[2h+1] (words 4-7), and a lane of a q vector is
 * one group of 16, so lane L of sc[h] is the scale of group 8h + L (words 0-3) and of group
 * 8h + 4 + L (words 4-7) -- the offsets mn (i16 per group of 16, as kq_vec) and [d, dmin]. */
typedef struct kq_pk {
    __m512i q[4];
    __m512i sc[2];
    __m256i mn;
    __m128 dd;
} kq_pk;

/* sc[0], sc[1] of kq_pk from the 16 group scales as i16 (lane L of sc[h]: group 8h + L in
 * words 0-3, 8h + 4 + L in words 4-7). */
DS_TARGET_AVX512VNNI DS_INLINE void kq_pk_scales16(__m256i s16, __m512i sc[2])
{
    const __m512i i0 = _mm512_set_epi64(0x0007000700070007ll, 0x0003000300030003ll,
                                        0x0006000600060006ll, 0x0002000200020002ll,
                                        0x0005000500050005ll, 0x0001000100010001ll,
                                        0x0004000400040004ll, 0x0000000000000000ll);
    const __m512i i1 = _mm512_add_epi16(i0, _mm512_set1_epi16(8));
    sc[0] = _mm512_permutexvar_epi16(i0, _mm512_castsi256_si512(s16));
    sc[1] = _mm512_permutexvar_epi16(i1, _mm512_castsi256_si512(s16));
}

/* Q6_K's quants straight from the super-block's bytes, in element order (q[i] = elements
 * 64i .. 64i+63): ql bytes 64h .. 64h+63 hold chunks 4h and 4h+1 (low nibbles) and 4h+2, 4h+3
 * (high nibbles); qh bytes 32h .. 32h+31 hold bits 4-5 of all four, chunk 4h+j in bits 2j,
 * 2j+1 (a per-half shift of a broadcast takes each to its chunk). */
DS_TARGET_AVX512VNNI DS_INLINE void q6k_q(const uint8_t *p, __m512i q[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i sl = halves_epi16(4, 2), sr = halves_epi16(0, 2);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i a = _mm512_loadu_si512((const void *)(p + 64 * h));
        const __m512i hb = dup256(p + 128 + 32 * h);
        q[2 * h] = _mm512_or_si512(_mm512_and_si512(a, m4),
                                   _mm512_and_si512(_mm512_sllv_epi16(hb, sl), m30));
        q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m4),
                                       _mm512_and_si512(_mm512_srlv_epi16(hb, sr), m30));
    }
}

/* Q2_K, Q3_K, Q5_K: from the AVX2 unpack (16 i8 group scales). */
DS_TARGET_AVX512VNNI DS_INLINE void kq_pk_from_vec(const kq_vec *v, kq_pk *u)
{
    u->dd = _mm_setr_ps(v->d, v->dmin, 0.0f, 0.0f);
    u->mn = v->mn;
    const __m256i s16 = _mm256_cvtepi8_epi16(v->sc);
    kq_pk_scales16(s16, u->sc);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        u->q[i] = _mm512_inserti64x4(_mm512_castsi256_si512(v->q[2 * i]), v->q[2 * i + 1], 1);
}

#define KQ_PK_GENERIC(NAME)                                                                 \
    DS_TARGET_AVX512VNNI DS_INLINE void NAME##_pk(const uint8_t *p, kq_pk *u)               \
    {                                                                                       \
        kq_vec v;                                                                           \
        NAME##_unpack_avx2(p, &v);                                                          \
        kq_pk_from_vec(&v, u);                                                              \
    }
KQ_PK_GENERIC(q2k)
KQ_PK_GENERIC(q3k)
KQ_PK_GENERIC(q5k)
#undef KQ_PK_GENERIC

/* The activation quants of a super-block as four vectors (elements 64i .. 64i+63). */
DS_TARGET_AVX512VNNI DS_INLINE void kq_pkx(const int8_t *xq, __m512i xs[4])
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        xs[i] = _mm512_loadu_si512((const void *)(xq + 64 * i));
}

/* One super-block of one activation row (xs: its quants in the weight's order, bs: its 16
 * bsums, dA: its scale) added to the row's accumulators. */
DS_TARGET_AVX512VNNI DS_INLINE void kq_pk_dot(const kq_pk *u, const __m512i xs[4], __m256i bs,
                                              __m128 dA, __m512 *acc, __m256 *accm)
{
    const __m512i z = _mm512_setzero_si512();
    __m512i isum = z;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i r0 = _mm512_dpbusd_epi32(z, u->q[2 * h], xs[2 * h]);
        const __m512i r1 = _mm512_dpbusd_epi32(z, u->q[2 * h + 1], xs[2 * h + 1]);
        isum = _mm512_dpwssd_epi32(isum, _mm512_packs_epi32(r0, r1), u->sc[h]);
    }
    const __m256i imin = _mm256_madd_epi16(bs, u->mn);
    const __m128 f = _mm_mul_ps(u->dd, dA);   /* d * dA, dmin * dA */
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(f), *acc);
    *accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin),
                            _mm256_broadcastss_ps(_mm_movehdup_ps(f)), *accm);
}

/* The Q8_K GEMV on kq_pk blocks, NX activation rows (one kq_pk per super-block for all). */
#define KQ_PK_BODY(PK, BB)                                                             \
    const int64_t nb = k / QK_K;                                                            \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m512 acc[DS_GEMV_NX];                                                             \
        __m256 accm[DS_GEMV_NX];                                                            \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                              \
            acc[m] = _mm512_setzero_ps();                                                   \
            accm[m] = _mm256_setzero_ps();                                                  \
        }                                                                                   \
        for (int64_t b = 0; b < nb; b++, p += (BB)) {                                       \
            DS_PREFETCH_BLOCK(p, BB);                                                       \
            kq_pk u;                                                                        \
            PK(p, &u);                                                                      \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                __m512i xs[4];                                                              \
                kq_pkx(xa->q + m * k + b * QK_K, xs);                                          \
                kq_pk_dot(&u, xs,                                                           \
                          _mm256_loadu_si256(                                               \
                              (const __m256i *)(xa->bsums + m * (k / 16) + 16 * b)),        \
                          _mm_set1_ps(xa->d[m * nb + b]), &acc[m], &accm[m]);               \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = _mm512_reduce_add_ps(acc[m]) - ds_hsum8(accm[m]);              \
    }

/* KQ_PK_BODY for one activation row, NS weight rows at a time from NS equal parts of the row
 * range (NS sequential streams through memory, the activation vectors loaded once for all); every
 * row sees exactly KQ_PK_BODY's operations: identical results. ONE is the single-row instance
 * for the nr % NS last rows. */
#define KQ_PK_BODY_NS(PK, BB, ONE, NS)                                                 \
    const int64_t nb = k / QK_K, q2 = nr / (NS);                                            \
    for (int64_t i = 0; i < q2; i++) {                                                      \
        const uint8_t *p[NS];                                                               \
        __m512 acc[NS];                                                                     \
        __m256 accm[NS];                                                                    \
        for (int s = 0; s < (NS); s++) {                                                    \
            p[s] = (const uint8_t *)w + (size_t)(s * q2 + i) * rb;                          \
            acc[s] = _mm512_setzero_ps();                                                   \
            accm[s] = _mm256_setzero_ps();                                                  \
        }                                                                                   \
        for (int64_t b = 0; b < nb; b++) {                                                  \
            __m512i xs[4];                                                                  \
            kq_pkx(xa->q + b * QK_K, xs);                                                    \
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(xa->bsums + 16 * b));   \
            const __m128 dA = _mm_set1_ps(xa->d[b]);                                        \
            _Pragma("GCC unroll 4") for (int s = 0; s < (NS); s++) {                        \
                const uint8_t *ps = p[s] + (size_t)b * (BB);                                \
                DS_PREFETCH_BLOCK(ps, BB);                                                  \
                kq_pk u;                                                                    \
                PK(ps, &u);                                                                 \
                kq_pk_dot(&u, xs, bs, dA, &acc[s], &accm[s]);                               \
            }                                                                               \
        }                                                                                   \
        for (int s = 0; s < (NS); s++)                                                      \
            y[s * q2 + i] = _mm512_reduce_add_ps(acc[s]) - ds_hsum8(accm[s]);               \
    }                                                                                       \
    if (nr > (NS) * q2)                                                                     \
        ONE((const uint8_t *)w + (size_t)((NS) * q2) * rb, rb, nr - (NS) * q2, k, xa,       \
            y + (NS) * q2, 1);


/* ---- Q4_K's own 512-bit VNNI GEMV ---------------------------------------------------------
 * On the 2-core AMD VM (Zen 5, ~3.45 GHz; BENCHMARKS.md, ninth session) the kq_pk body ran a
 * Q4_K super-block in ~61 instructions (~20 of them general-purpose scale unpacking) at ~6 per
 * cycle, bound by issue rather than by one pipe, and its scale unpacking sat at the head of a
 * ~50-cycle dependency chain in every super-block. Here:
 *   - the quants come from two plain 64-byte loads of qs: q[2j] = the low nibbles of qs bytes
 *     64j .. 64j+63 (sub-block 4j in its lower 256 bits, 4j+2 in its upper), q[2j+1] their high
 *     nibbles (4j+1, 4j+3); the activation quants are put in that order once per super-block
 *     (q4k_xp, two vshufi64x2 per pair of vectors), shared by all the rows read with them;
 *   - q x x as in kq_pk_dot: vpdpbusd lane sums, two narrowed into one vector by vpackssdw and
 *     scaled by the i16 sub-block scales (vpmaddwd);
 *   - the one-row kernel unpacks the scales and mins of its four streams' super-blocks together
 *     in one 512-bit vector (q4k_hdr4: three vpshufb, two shifts, a blend, an and and a
 *     vpternlogd) one super-block ahead, converts their four [d, dmin] pairs with one
 *     vcvtph2ps, and does the min products (vpmaddwd of the mins with the activation's
 *     32-element sums) two streams per vector;
 *   - the batched kernel (2-4 activation rows) keeps the reordered activation and its sums in
 *     a stack copy when they fit in KQ_XCOPY_MAX bytes.
 * A row's accumulators see the same operations lane by lane in the one-row and the batched
 * kernel (the integer sums are exact, the f32 ones are the same products and FMAs in the same
 * order): identical results. */

/* The scale-vector indices of vpermw into the 16 words [sc0..7, mn0..7] of a super-block (at
 * word off of the table), lined up with vpackssdw(dpbusd(q[2h]), dpbusd(q[2h+1])): lane L of
 * idx[h] holds s[4h + 2(L/2)] in words 0-3 (from q[2h]) and s[4h + 1 + 2(L/2)] in words 4-7
 * (from q[2h+1]). */
DS_TARGET_AVX512VNNI DS_INLINE void q4k_idx(int off, __m512i idx[2])
{
    for (int h = 0; h < 2; h++) {
        const long long a = off + 4 * h, w0 = a * 0x0001000100010001ll,
                        w1 = (a + 1) * 0x0001000100010001ll, w2 = (a + 2) * 0x0001000100010001ll,
                        w3 = (a + 3) * 0x0001000100010001ll;
        idx[h] = _mm512_set_epi64(w3, w2, w3, w2, w1, w0, w1, w0);
    }
}

/* The activation quants of a super-block in the quants' order: xp[2j] = elements 128j .. +31
 * and 128j+64 .. +95, xp[2j+1] = 128j+32 .. +63 and 128j+96 .. +127. */
DS_TARGET_AVX512VNNI DS_INLINE void q4k_xp(const int8_t *xq, __m512i xp[4])
{
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        const __m512i a = _mm512_loadu_si512((const void *)(xq + 128 * j));
        const __m512i b = _mm512_loadu_si512((const void *)(xq + 128 * j + 64));
        xp[2 * j] = _mm512_shuffle_i64x2(a, b, 0x44);
        xp[2 * j + 1] = _mm512_shuffle_i64x2(a, b, 0xEE);
    }
}

/* The activation's eight 32-element sums (from its sixteen 16-element bsums) as i16. */
DS_TARGET_AVX512VNNI DS_INLINE __m128i q4k_bs32(const int16_t *bsums)
{
    const __m256i t = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums),
                                        _mm256_set1_epi16(1));
    return _mm_packs_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

/* A super-block's quants in the order above and its scale vectors (sc[h] = vpermw(idx[h], W)
 * for the word table W of its [sc0..7, mn0..7]). */
typedef struct q4k_w {
    __m512i q[4];
    __m512i sc[2];
} q4k_w;

DS_TARGET_AVX512VNNI DS_INLINE void q4k_wq(const uint8_t *p, __m512i W, const __m512i idx[2],
                                           q4k_w *u)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        const __m512i v = _mm512_loadu_si512((const void *)(p + 16 + 64 * j));
        u->q[2 * j] = _mm512_and_si512(v, m4);
        u->q[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        u->sc[j] = _mm512_permutexvar_epi16(idx[j], W);
    }
}

/* sum over the super-block of scale x q x x as 16 exact i32 lanes (each u4 x s8 vpdpbusd lane
 * sum is at most 4 x 15 x 128 = 7680 in size: exact through vpackssdw) */
DS_TARGET_AVX512VNNI DS_INLINE __m512i q4k_isum(const q4k_w *u, const __m512i xp[4])
{
    const __m512i z = _mm512_setzero_si512();
    __m512i isum[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i r0 = _mm512_dpbusd_epi32(z, u->q[2 * h], xp[2 * h]);
        const __m512i r1 = _mm512_dpbusd_epi32(z, u->q[2 * h + 1], xp[2 * h + 1]);
        isum[h] = _mm512_madd_epi16(_mm512_packs_epi32(r0, r1), u->sc[h]);
    }
    return _mm512_add_epi32(isum[0], isum[1]);
}

/* The scales and mins of four super-blocks (headers h_s in 128-bit lane s of h) as bytes:
 * lane s = [sc0..7, mn0..7] (the q4k_sm8 values). In lane bytes 4-7 (S), 8-11 (M), 12-15 (L):
 * sc i<4 = S_i & 63, sc 4+i = (L_i & 15) | (S_i >> 6) << 4, mn i<4 = M_i & 63,
 * mn 4+i = (L_i >> 4) | (M_i >> 6) << 4. */
DS_TARGET_AVX512VNNI DS_INLINE __m512i q4k_hdr4(__m512i h)
{
    const __m512i iA = _mm512_broadcast_i32x4(
        _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512i iD = _mm512_broadcast_i32x4(
        _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    const __m512i K = _mm512_broadcast_i32x4(_mm_setr_epi8(0x3F, 0x3F, 0x3F, 0x3F, 0x0F, 0x0F,
                                                           0x0F, 0x0F, 0x3F, 0x3F, 0x3F, 0x3F,
                                                           0x0F, 0x0F, 0x0F, 0x0F));
    const __m512i A = _mm512_shuffle_epi8(h, iA);
    const __m512i B = _mm512_shuffle_epi8(_mm512_srli_epi16(h, 4), iA);
    const __m512i AB = _mm512_mask_blend_epi8(0xF000F000F000F000ull, A, B);
    const __m512i D = _mm512_and_si512(_mm512_shuffle_epi8(_mm512_srli_epi16(h, 2), iD),
                                       _mm512_set1_epi8(0x30));
    return _mm512_ternarylogic_epi32(AB, K, D, 0xEA); /* (AB & K) | D */
}

/* Bytes of the stack copy of the activation rows that the batched Q4_K and Q6_K kernels keep
 * when NX x k fits (e.g. 4 rows of 2048) and more than one weight row reads it: Q4_K's in
 * q4k_xp's order with their 32-element sums (four shuffles and the sums saved per weight row
 * and super-block), Q6_K's + 128. */
#define KQ_XCOPY_MAX 8192

/* NX activation rows, one weight row at a time (the weights unpacked once for all rows). */
#define Q4K_NX_BODY(NAME, BB)                                                               \
    const int64_t nb = k / QK_K;                                                            \
    __m512i idx[2];                                                                         \
    q4k_idx(0, idx);                                                                        \
    int8_t xpb[KQ_XCOPY_MAX] __attribute__((aligned(64)));                                  \
    int16_t bsb[KQ_XCOPY_MAX / 32] __attribute__((aligned(16)));                            \
    const bool pre = nr > 1 && NX * k <= KQ_XCOPY_MAX;                                      \
    if (pre)                                                                                \
        for (int m = 0; m < NX; m++)                                                        \
            for (int64_t b = 0; b < nb; b++) {                                              \
                __m512i xp[4];                                                              \
                q4k_xp(xa->q + m * k + b * QK_K, xp);                                       \
                for (int j = 0; j < 4; j++)                                                 \
                    _mm512_store_si512((void *)(xpb + (m * nb + b) * QK_K + 64 * j), xp[j]); \
                _mm_store_si128((__m128i *)(bsb + (m * nb + b) * 8),                        \
                                q4k_bs32(xa->bsums + m * (k / 16) + 16 * b));               \
            }                                                                               \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m512 acc[DS_GEMV_NX];                                                             \
        __m128 accm[DS_GEMV_NX];                                                            \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                              \
            acc[m] = _mm512_setzero_ps();                                                   \
            accm[m] = _mm_setzero_ps();                                                     \
        }                                                                                   \
        for (int64_t b = 0; b < nb; b++, p += (BB)) {                                       \
            DS_PREFETCH_BLOCK(p, BB);                                                       \
            __m128i sc8, mn8;                                                               \
            q4k_sm8(p, &sc8, &mn8);                                                         \
            const __m256i W = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(sc8, mn8));           \
            const __m128i mnw = _mm256_extracti128_si256(W, 1);                             \
            const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)ds_rd32(p)));             \
            q4k_w u;                                                                        \
            q4k_wq(p, _mm512_castsi256_si512(W), idx, &u);                                  \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                __m512i xp[4];                                                              \
                __m128i bs;                                                                 \
                if (pre) {                                                                  \
                    const int8_t *xb = xpb + (m * nb + b) * QK_K;                           \
                    for (int j = 0; j < 4; j++)                                             \
                        xp[j] = _mm512_load_si512((const void *)(xb + 64 * j));             \
                    bs = _mm_load_si128((const __m128i *)(bsb + (m * nb + b) * 8));         \
                } else {                                                                    \
                    q4k_xp(xa->q + m * k + b * QK_K, xp);                                   \
                    bs = q4k_bs32(xa->bsums + m * (k / 16) + 16 * b);                       \
                }                                                                           \
                const __m128i imin = _mm_madd_epi16(mnw, bs);                               \
                const __m128 f = _mm_mul_ps(dd, _mm_set1_ps(xa->d[m * nb + b]));            \
                acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4k_isum(&u, xp)),              \
                                         _mm512_broadcastss_ps(f), acc[m]);                 \
                accm[m] = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), _mm_permute_ps(f, 0x55),      \
                                       accm[m]);                                            \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = _mm512_reduce_add_ps(acc[m]) - ds_hsum4(accm[m]);              \
    }

/* One activation row, four weight rows at a time from four equal parts of the row range (as
 * KQ_PK_BODY_NS); the nr % 4 last rows through the NX = 1 kernel. Streams 2t and 2t+1 share
 * the word table W[t] (their [sc, mn] words at 0-15 and 16-31) and the min accumulator accm[t]
 * (their four lanes at 4-7 and 12-15). */
#define Q4K_NS_BODY(NAME, BB)                                                               \
    const int64_t nb = k / QK_K, q2 = nr / 4;                                               \
    __m512i idx[2][2];                                                                      \
    q4k_idx(0, idx[0]);                                                                     \
    q4k_idx(16, idx[1]);                                                                    \
    const __m512i mi[2] = {                                                                 \
        _mm512_inserti64x4(_mm512_set1_epi32(1), _mm256_set1_epi32(3), 1),                  \
        _mm512_inserti64x4(_mm512_set1_epi32(5), _mm256_set1_epi32(7), 1)};                 \
    const __m512i di = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);  \
    for (int64_t i = 0; i < q2; i++) {                                                      \
        const uint8_t *p[4];                                                                \
        __m512 acc[4], accm[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};                \
        for (int s = 0; s < 4; s++) {                                                       \
            p[s] = (const uint8_t *)w + (size_t)(s * q2 + i) * rb;                          \
            acc[s] = _mm512_setzero_ps();                                                   \
        }                                                                                   \
        __m512i Wn[2];                                                                      \
        __m256 fn;                                                                          \
        Q4K_HDR(0, Wn, fn);                                                                 \
        for (int64_t b = 0; b < nb; b++) {                                                  \
            const size_t o = (size_t)b * (BB);                                              \
            const __m512i W[2] = {Wn[0], Wn[1]};                                            \
            const __m256 f8 = fn;                                                           \
            if (b + 1 < nb)                                                                 \
                Q4K_HDR(b + 1, Wn, fn);                                                     \
            __m512i xp[4];                                                                  \
            q4k_xp(xa->q + b * QK_K, xp);                                                   \
            float fb[8];                                                                    \
            _mm256_storeu_ps(fb, f8);                                                       \
            _Pragma("GCC unroll 4") for (int s = 0; s < 4; s++) {                           \
                DS_PREFETCH_BLOCK(p[s] + o, BB);                                            \
                q4k_w u;                                                                    \
                q4k_wq(p[s] + o, W[s / 2], idx[s % 2], &u);                                 \
                const __m512i isum = q4k_isum(&u, xp);                                      \
                acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(fb[2 * s]), \
                                         acc[s]);                                           \
            }                                                                               \
            const __m512i bs = _mm512_broadcast_i64x4(_mm256_inserti128_si256(              \
                _mm256_setzero_si256(), q4k_bs32(xa->bsums + 16 * b), 1));                  \
            const __m512 f16 = _mm512_castps256_ps512(f8);                                  \
            _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)                             \
                accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(W[t], bs)),  \
                                          _mm512_permutexvar_ps(mi[t], f16), accm[t]);      \
        }                                                                                   \
        float am[2][16];                                                                    \
        _mm512_storeu_ps(am[0], accm[0]);                                                   \
        _mm512_storeu_ps(am[1], accm[1]);                                                   \
        for (int s = 0; s < 4; s++)                                                         \
            y[s * q2 + i] = _mm512_reduce_add_ps(acc[s]) -                                  \
                            ds_hsum4(_mm_loadu_ps(am[s / 2] + 4 + 8 * (s % 2)));            \
    }                                                                                       \
    if (nr > 4 * q2)                                                                        \
        NAME##_q8_vnni_1((const uint8_t *)w + (size_t)(4 * q2) * rb, rb, nr - 4 * q2, k, xa, \
                         y + 4 * q2, 1);

/* The headers of the four streams' super-blocks B: the word tables W[0], W[1] of Q4K_NS_BODY
 * and F, their [d, dmin] x the activation's scale (f8[2s], f8[2s + 1] for stream s). */
#define Q4K_HDR(B, W, F)                                                                    \
    do {                                                                                    \
        const size_t o_ = (size_t)(B) * Q4K_BYTES;                                          \
        const __m256i h01_ = _mm256_inserti128_si256(                                       \
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[0] + o_))),          \
            _mm_loadu_si128((const __m128i *)(p[1] + o_)), 1);                              \
        const __m256i h23_ = _mm256_inserti128_si256(                                       \
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p[2] + o_))),          \
            _mm_loadu_si128((const __m128i *)(p[3] + o_)), 1);                              \
        const __m512i h_ = _mm512_inserti64x4(_mm512_castsi256_si512(h01_), h23_, 1);       \
        const __m512i T_ = q4k_hdr4(h_);                                                    \
        (W)[0] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(T_));                          \
        (W)[1] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(T_, 1));                    \
        (F) = _mm256_mul_ps(                                                                \
            _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(di, h_))),      \
            _mm256_set1_ps(xa->d[(B)]));                                                    \
    } while (0)

/* ---- Q6_K's own 512-bit VNNI GEMV ---------------------------------------------------------
 * Q6_K's quants are q - 32 with q in 0..63. Instead of a second product for the -32 (the
 * kq_pk bodies' min term: a vpmaddwd of the activation's 16-element sums with 32 x the scales,
 * its own f32 accumulator and conversions), every 4-byte lane of the vpdpbusd starts at -32 x
 * the sum of its four activation quants: the lane then holds sum((q - 32) x), at most
 * 4 x 32 x 128 = 16384 in size, exact through vpackssdw. Those start vectors (q6k_off) depend
 * on the activation only: once per super-block for the four streams of the one-row kernel,
 * which also converts its four streams' d with one vcvtph2ps a super-block ahead. The batched
 * kernel gets the same lane sums the other way round (Q6K_NX_BODY). Lane by lane every row
 * sees the same operations in both kernels: identical results. */

/* -32 x the sum of each 4-byte lane of the activation quants x */
DS_TARGET_AVX512VNNI DS_INLINE __m512i q6k_off(__m512i x)
{
    return _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(32), x));
}

/* sum over the super-block of scale x (q - 32) x x as 16 exact i32 lanes: q from q6k_q, the
 * scale vectors sc (kq_pk_scales16 of its 16 scales), the activation quants x and their
 * q6k_off vectors. */
DS_TARGET_AVX512VNNI DS_INLINE __m512i q6k_isum(const __m512i q[4], const __m512i sc[2],
                                                const __m512i x[4], const __m512i off[4])
{
    __m512i isum[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m512i r0 = _mm512_dpbusd_epi32(off[2 * h], q[2 * h], x[2 * h]);
        const __m512i r1 = _mm512_dpbusd_epi32(off[2 * h + 1], q[2 * h + 1], x[2 * h + 1]);
        isum[h] = _mm512_madd_epi16(_mm512_packs_epi32(r0, r1), sc[h]);
    }
    return _mm512_add_epi32(isum[0], isum[1]);
}

DS_TARGET_AVX512VNNI DS_INLINE __m256i q6k_s16(const uint8_t *p)
{
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 192)));
}

/* NX activation rows, one weight row at a time. Here the weights are shared and the rows are
 * not, so the same lane sums come the other way round: vpdpbusd of the activation quants + 128
 * (unsigned) with q - 32 (signed), started at -128 x the lane's sum of q - 32 (per weight
 * super-block, for all rows). Exact integers either way: identical results. The activation + 128
 * goes to a stack copy when NX x k <= KQ_XCOPY_MAX. */
#define Q6K_NX_BODY(NAME, BB)                                                               \
    const int64_t nb = k / QK_K;                                                            \
    const __m512i x80 = _mm512_set1_epi8((char)0x80), m32 = _mm512_set1_epi8(32);           \
    const __m512i c16k = _mm512_set1_epi32(16384);                                          \
    int8_t xpb[KQ_XCOPY_MAX] __attribute__((aligned(64)));                                  \
    const bool pre = nr > 1 && NX * k <= KQ_XCOPY_MAX;                                      \
    if (pre)                                                                                \
        for (int64_t e = 0; e < NX * k; e += 64)                                            \
            _mm512_store_si512((void *)(xpb + e),                                           \
                               _mm512_xor_si512(_mm512_loadu_si512((const void *)(xa->q + e)), \
                                                x80));                                      \
    for (int64_t r = 0; r < nr; r++) {                                                      \
        const uint8_t *p = (const uint8_t *)w + (size_t)r * rb;                             \
        __m512 acc[DS_GEMV_NX];                                                             \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) acc[m] = _mm512_setzero_ps();  \
        for (int64_t b = 0; b < nb; b++, p += (BB)) {                                       \
            DS_PREFETCH_BLOCK(p, BB);                                                       \
            __m512i q[4], c[4], sc[2];                                                      \
            q6k_q(p, q);                                                                    \
            for (int j = 0; j < 4; j++) { /* -128 x sum(q - 32) = 16384 - 128 x sum(q) */   \
                c[j] = _mm512_dpbusd_epi32(c16k, q[j], x80);                                \
                q[j] = _mm512_sub_epi8(q[j], m32);                                          \
            }                                                                               \
            kq_pk_scales16(q6k_s16(p), sc);                                                 \
            const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)ds_rd16(p + 208)));       \
            _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++) {                          \
                __m512i xu[4];                                                              \
                for (int j = 0; j < 4; j++) {                                               \
                    const int64_t e = m * k + b * QK_K + 64 * j;                            \
                    xu[j] = pre ? _mm512_load_si512((const void *)(xpb + e))                \
                                : _mm512_xor_si512(                                         \
                                      _mm512_loadu_si512((const void *)(xa->q + e)), x80);  \
                }                                                                           \
                __m512i is[2];                                                              \
                for (int h = 0; h < 2; h++) {                                               \
                    const __m512i r0 = _mm512_dpbusd_epi32(c[2 * h], xu[2 * h], q[2 * h]);  \
                    const __m512i r1 =                                                      \
                        _mm512_dpbusd_epi32(c[2 * h + 1], xu[2 * h + 1], q[2 * h + 1]);     \
                    is[h] = _mm512_madd_epi16(_mm512_packs_epi32(r0, r1), sc[h]);           \
                }                                                                           \
                const __m128 f = _mm_mul_ps(dd, _mm_set1_ps(xa->d[m * nb + b]));            \
                acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(is[0], is[1])), \
                                         _mm512_broadcastss_ps(f), acc[m]);                 \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 4") for (int m = 0; m < NX; m++)                                \
            y[m * ldy + r] = _mm512_reduce_add_ps(acc[m]);                                  \
    }

/* One activation row, four weight rows at a time from four equal parts of the row range (as
 * KQ_PK_BODY_NS); the nr % 4 last rows through the NX = 1 kernel. */
#define Q6K_NS_BODY(NAME, BB)                                                               \
    const int64_t nb = k / QK_K, q2 = nr / 4;                                               \
    for (int64_t i = 0; i < q2; i++) {                                                      \
        const uint8_t *p[4];                                                                \
        __m512 acc[4];                                                                      \
        for (int s = 0; s < 4; s++) {                                                       \
            p[s] = (const uint8_t *)w + (size_t)(s * q2 + i) * rb;                          \
            acc[s] = _mm512_setzero_ps();                                                   \
        }                                                                                   \
        __m128 fn;                                                                          \
        Q6K_HDR(0, fn);                                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                  \
            const size_t o = (size_t)b * (BB);                                              \
            float fb[4];                                                                    \
            _mm_storeu_ps(fb, fn);                                                          \
            if (b + 1 < nb)                                                                 \
                Q6K_HDR(b + 1, fn);                                                         \
            __m512i x[4], off[4];                                                           \
            for (int j = 0; j < 4; j++) {                                                   \
                x[j] = _mm512_loadu_si512((const void *)(xa->q + b * QK_K + 64 * j));       \
                off[j] = q6k_off(x[j]);                                                     \
            }                                                                               \
            _Pragma("GCC unroll 4") for (int s = 0; s < 4; s++) {                           \
                DS_PREFETCH_BLOCK(p[s] + o, BB);                                            \
                __m512i q[4], sc[2];                                                        \
                q6k_q(p[s] + o, q);                                                         \
                kq_pk_scales16(q6k_s16(p[s] + o), sc);                                      \
                acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q6k_isum(q, sc, x, off)),       \
                                         _mm512_set1_ps(fb[s]), acc[s]);                    \
            }                                                                               \
        }                                                                                   \
        for (int s = 0; s < 4; s++)                                                         \
            y[s * q2 + i] = _mm512_reduce_add_ps(acc[s]);                                   \
    }                                                                                       \
    if (nr > 4 * q2)                                                                        \
        NAME##_q8_vnni_1((const uint8_t *)w + (size_t)(4 * q2) * rb, rb, nr - 4 * q2, k, xa, \
                         y + 4 * q2, 1);

/* The d of the four streams' super-blocks B x the activation's scale (F, lane s), for
 * Q6K_NS_BODY. */
#define Q6K_HDR(B, F)                                                                       \
    do {                                                                                    \
        const size_t o_ = (size_t)(B) * Q6K_BYTES;                                          \
        uint64_t d_ = 0;                                                                    \
        for (int s_ = 0; s_ < 4; s_++) {                                                    \
            d_ |= (uint64_t)ds_rd16(p[s_] + o_ + 208) << (16 * s_);                         \
        }                                                                                   \
        (F) = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)d_)),                    \
                         _mm_set1_ps(xa->d[(B)]));                                          \
    } while (0)

/* The VNNI bodies per type: the kq_pk ones, Q4_K and Q6_K their own. */
#define KQ_PK_NX(NAME, BB) KQ_PK_BODY(NAME##_pk, BB)
#define KQ_PK_NS(NAME, BB) KQ_PK_BODY_NS(NAME##_pk, BB, NAME##_q8_vnni_1, KQ_STREAMS)
#define q2k_VNNI_NX KQ_PK_NX
#define q2k_VNNI_NS KQ_PK_NS
#define q3k_VNNI_NX KQ_PK_NX
#define q3k_VNNI_NS KQ_PK_NS
#define q4k_VNNI_NX Q4K_NX_BODY
#define q4k_VNNI_NS Q4K_NS_BODY
#define q5k_VNNI_NX KQ_PK_NX
#define q5k_VNNI_NS KQ_PK_NS
#define q6k_VNNI_NX Q6K_NX_BODY
#define q6k_VNNI_NS Q6K_NS_BODY

#endif /* DS_KERNELS_X86 */

/* ---- instantiation ------------------------------------------------------------------------ */

#if DS_KERNELS_X86
#define KQ_X86(NAME, BB)                                                                    \
    DS_TARGET_AVX2 static void NAME##_to_f32_avx2(const void *src, float *dst, int64_t n)   \
    { kq_to_f32_avx2_t(NAME##_unpack_avx2, BB, src, dst, n); }                              \
    DS_TARGET_AVX512 static void NAME##_to_f32_avx512(const void *src, float *dst,          \
                                                      int64_t n)                            \
    { kq_to_f32_avx512_t(NAME##_unpack_avx2, BB, src, dst, n); }                            \
    DS_TARGET_AVX512 static void NAME##_to_bf16_avx512(const void *src, uint16_t *dst,      \
                                                       int64_t n)                           \
    { kq_to_bf16_avx512_t(NAME##_unpack_avx2, BB, src, dst, n); }                           \
    DS_TARGET_AVX2 DS_INLINE void NAME##_f32_avx2_t(int NX, const void *w, size_t rb,       \
                                                    int64_t nr, int64_t k, const float *x,  \
                                                    int64_t ldx, float *y, int64_t ldy)     \
    { kq_gemv_f32_avx2_t(NAME##_unpack_avx2, BB, NX, w, rb, nr, k, x, ldx, y, ldy); }       \
    DS_GEMV_F32_INSTANCES(NAME##_gemv_f32_avx2, DS_TARGET_AVX2, NAME##_f32_avx2_t)          \
    DS_TARGET_AVX512 DS_INLINE void NAME##_f32_avx512_t(int NX, const void *w, size_t rb,   \
                                                        int64_t nr, int64_t k,              \
                                                        const float *x, int64_t ldx,        \
                                                        float *y, int64_t ldy)              \
    { kq_gemv_f32_avx512_t(NAME##_unpack_avx2, BB, NX, w, rb, nr, k, x, ldx, y, ldy); }     \
    DS_GEMV_F32_INSTANCES(NAME##_gemv_f32_avx512, DS_TARGET_AVX512, NAME##_f32_avx512_t)    \
    DS_TARGET_AVX2 DS_INLINE void NAME##_q8_avx2_t(int NX, const void *w, size_t rb,        \
                                                   int64_t nr, int64_t k, const ds_qact *xa, \
                                                   float *y, int64_t ldy)                   \
    { KQ_Q8_BODY(NAME##_unpack_avx2, BB, dotacc_avx2) }                                     \
    DS_GEMV_Q8_INSTANCES(NAME##_q8_avx2, DS_TARGET_AVX2, NAME##_q8_avx2_t)                  \
    DS_TARGET_AVX512VNNI DS_INLINE void NAME##_q8_vnni_t(int NX, const void *w, size_t rb,  \
                                                         int64_t nr, int64_t k,             \
                                                         const ds_qact *xa, float *y,       \
                                                         int64_t ldy)                       \
    { NAME##_VNNI_NX(NAME, BB) }                                                            \
    DS_GEMV_Q8_INSTANCES(NAME##_q8_vnni, DS_TARGET_AVX512VNNI, NAME##_q8_vnni_t)            \
    DS_TARGET_AVX512VNNI static void NAME##_q8_vnni_ns(const void *w, size_t rb, int64_t nr, \
                                                       int64_t k, const ds_qact *xa, float *y) \
    { NAME##_VNNI_NS(NAME, BB) }                                                            \
    static void NAME##_gemv_q8_avx512(DS_GEMV_Q8_PARAMS)                                    \
    {                                                                                       \
        if (ds_cpu_get()->avx512vnni && nx == 1)                                            \
            NAME##_q8_vnni_ns(w, rb, nr, k, xa, y);                                         \
        else if (ds_cpu_get()->avx512vnni)                                                  \
            NAME##_q8_vnni(w, rb, nr, k, xa, nx, y, ldy);                                   \
        else                                                                                \
            NAME##_q8_avx2(w, rb, nr, k, xa, nx, y, ldy);                                   \
    }
#define KQ_ENTRY(TYPE, NAME, BB)                                                            \
    const ds_type_kernels ds_kernels_##NAME = {                                             \
        TYPE, QK_K, BB,                                                                     \
        {NAME##_to_f32_scalar, NAME##_to_f32_avx2, NAME##_to_f32_avx512},                   \
        {NAME##_to_bf16_scalar, NULL, NAME##_to_bf16_avx512},                               \
        {NAME##_gemv_f32_scalar, NAME##_gemv_f32_avx2, NAME##_gemv_f32_avx512},             \
        {NAME##_gemv_q8_scalar, NAME##_q8_avx2, NAME##_gemv_q8_avx512},                     \
        DS_ACT_Q8_K, KQ_GEMV_MAX_M, NAME##_PACK16};
#else
#define KQ_X86(NAME, BB)
#define KQ_ENTRY(TYPE, NAME, BB)                                                            \
    const ds_type_kernels ds_kernels_##NAME = {                                             \
        TYPE, QK_K, BB,                                                                     \
        {NAME##_to_f32_scalar, NULL, NULL},                                                 \
        {NAME##_to_bf16_scalar, NULL, NULL},                                                \
        {NAME##_gemv_f32_scalar, NULL, NULL},                                               \
        {NAME##_gemv_q8_scalar, NULL, NULL},                                                \
        DS_ACT_Q8_K, KQ_GEMV_MAX_M, NAME##_PACK16};
#endif

#define KQ_TYPE(TYPE, NAME, BB)                                                             \
    static void NAME##_to_f32_scalar(const void *src, float *dst, int64_t n)                \
    { kq_to_f32_scalar_t(NAME##_unpack_scalar, BB, src, dst, n); }                          \
    static void NAME##_to_bf16_scalar(const void *src, uint16_t *dst, int64_t n)            \
    { kq_to_bf16_scalar_t(NAME##_unpack_scalar, BB, src, dst, n); }                         \
    static void NAME##_gemv_f32_scalar(DS_GEMV_F32_PARAMS)                                  \
    { kq_gemv_f32_scalar_t(NAME##_unpack_scalar, BB, w, rb, nr, k, x, ldx, nx, y, ldy); }   \
    static void NAME##_gemv_q8_scalar(DS_GEMV_Q8_PARAMS)                                    \
    { kq_gemv_q8_scalar_t(NAME##_unpack_scalar, BB, w, rb, nr, k, xa, nx, y, ldy); }        \
    KQ_X86(NAME, BB)                                                                        \
    KQ_ENTRY(TYPE, NAME, BB)

/* ds_type_kernels.pack16 per K-quant (only Q4_K has a direct packer) */
#define q2k_PACK16 NULL
#define q3k_PACK16 NULL
#define q4k_PACK16 ds_pack_q4_k_bf16_16rows
#define q5k_PACK16 NULL
#define q6k_PACK16 NULL

KQ_TYPE(DS_GGML_Q2_K, q2k, Q2K_BYTES)
KQ_TYPE(DS_GGML_Q3_K, q3k, Q3K_BYTES)
KQ_TYPE(DS_GGML_Q4_K, q4k, Q4K_BYTES)
KQ_TYPE(DS_GGML_Q5_K, q5k, Q5K_BYTES)
KQ_TYPE(DS_GGML_Q6_K, q6k, Q6K_BYTES)

/* ---- Q8_K activation quantization ------------------------------------------------------ */
/* formats.md §2.5. Deviation: a block whose scale would overflow f32 (|max| < 4e-37) is stored
 * as zeros with d = 0 (ggml would produce undefined quants multiplied by d = -0). */

/* A zero block (max == 0, or |max| < 127/FLT_MAX so that iscale overflows: the values are
 * below 4e-37 and quantize to nothing). */
static void q8k_zero(int8_t *q, float *d, int16_t *bs)
{
    *d = 0.0f;
    memset(q, 0, QK_K);
    memset(bs, 0, 16 * sizeof(int16_t));
}

static void q8k_block_finish(const float *x, float max, int8_t *q, float *d, int16_t *bs)
{
    float iscale = max != 0.0f ? -127.0f / max : 0.0f;
    if (max == 0.0f || !isfinite(iscale)) {
        q8k_zero(q, d, bs);
        return;
    }
    for (int i = 0; i < QK_K; i++) {
        long v = lrintf(iscale * x[i]);   /* current mode: nearest even */
        q[i] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int i = 0; i < 16; i++)
            s += q[16 * g + i];
        bs[g] = (int16_t)s;
    }
    *d = 1.0f / iscale;
}

static void quantize_q8k_scalar(const float *x, int8_t *xq, float *xd, int16_t *bsums,
                                int64_t n)
{
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < QK_K; i++) {
            float a = fabsf(xb[i]);
            if (a > amax) {
                amax = a;
                max = xb[i];
            }
        }
        q8k_block_finish(xb, max, xq + b * QK_K, xd + b, bsums + 16 * b);
    }
}

#if DS_KERNELS_X86
DS_TARGET_AVX512 static void quantize_q8k_avx512(const float *x, int8_t *xq, float *xd,
                                                 int16_t *bsums, int64_t n)
{
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K;
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < QK_K; i += 16)
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(xb + i)));
        float amax = _mm512_reduce_max_ps(mx);
        float max = 0.0f;
        if (amax > 0.0f) {   /* the first element of largest magnitude */
            __m512 va = _mm512_set1_ps(amax);
            for (int i = 0; i < QK_K; i += 16) {
                __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(xb + i)), va,
                                                   _CMP_EQ_OQ);
                if (hit) {
                    max = xb[i + __builtin_ctz(hit)];
                    break;
                }
            }
        }
        float iscale = max != 0.0f ? -127.0f / max : 0.0f;
        if (max == 0.0f || !isfinite(iscale)) {
            q8k_zero(xq + b * QK_K, xd + b, bsums + 16 * b);
            continue;
        }
        __m512 vs = _mm512_set1_ps(iscale);
        for (int g = 0; g < 16; g++) {
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(xb + 16 * g)));
            v = _mm512_min_epi32(v, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(xq + b * QK_K + 16 * g), _mm512_cvtsepi32_epi8(v));
            bsums[16 * b + g] = (int16_t)_mm512_reduce_add_epi32(v);
        }
        xd[b] = 1.0f / iscale;
    }
}
#endif

void ds_quantize_act_q8k(ds_isa isa, const float *x, int8_t *xq, float *xd, int16_t *bsums,
                         int64_t n)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) >= DS_ISA_AVX512) {
        quantize_q8k_avx512(x, xq, xd, bsums, n);
        return;
    }
#endif
    quantize_q8k_scalar(x, xq, xd, bsums, n);
}

bool ds_pack_q4_k_bf16_16rows(ds_isa isa, const void *w, size_t row_bytes, int nrows,
                              int64_t K, uint16_t *dst, int sub, const void *next)
{
#if DS_KERNELS_X86
    if (isa >= DS_ISA_AVX512 && ds_cpu_get()->avx512bf16 && K % QK_K == 0) {
        pack16_q4_k_avx512bf16(w, row_bytes, nrows, K, dst, sub, next);
        return true;
    }
#endif
    (void)isa, (void)w, (void)row_bytes, (void)nrows, (void)K, (void)dst, (void)sub, (void)next;
    return false;
}
