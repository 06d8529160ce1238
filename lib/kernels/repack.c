/*
 * lib/kernels/repack.c — the R16 weight layout: 16 rows interleaved, for the decode GEMV.
 *
 * Owns: the layout of each repackable type (Q5_0, Q4_K, Q6_K), its in-place conversion
 * from and to ggml's row-major blocks, and the AVX512-VNNI GEMV kernels that read it.
 *
 * Why: the row-major GEMVs spend most of their work on per-row horizontal sums, per-block
 * scale broadcasts and nibble shuffles; the K-quant and Q5_0 ones are compute-bound at 13-23
 * GB/s per core (BENCHMARKS.md). In R16 the 16 lanes of a 512-bit register are 16 rows: each
 * 64-byte load holds four consecutive quant bytes of each of the 16 rows, multiplied by the
 * four matching activation bytes (one broadcast dword) with one vpdpbusd, and the block's 16
 * scales are one vector. No horizontal sums remain.
 *
 * Layout. A tensor of N rows (N % 16 == 0; for 3-d expert tensors every expert's rows) is
 * stored as N/16 groups of 16 * row_bytes bytes, the same size as the rows it replaces, so the
 * conversion is done in place. Group g holds rows 16g .. 16g+15; inside it block b of the 16
 * rows is at b * 16 * block_bytes, laid out as below ("quad q of row r at o + 64q + 4r": bytes
 * 4q .. 4q+3 of that field of row r).
 *   Q5_0 (352 B):  [0,32) d; [32,96) the 32 high bits of row r as one dword at 32 + 4r,
 *                  permuted so that bit 8c + i is the high bit of element 4i + c;
 *                  [96,352) qs quad q (0..3) at 96 + 64q + 4r.
 *   Q4_K (2304 B): [0,32) d; [32,64) dmin; [64,256) the 12 scale bytes as planes: byte j of
 *                  row r at 64 + 16j + r; [256,2304) qs quad q (0..31) at 256 + 64q + 4r.
 *   Q6_K (3360 B): [0,32) d; [32,288) scale j of row r at 32 + 16j + r; [288,3360) four
 *                  chunks of 768 bytes in the order the kernel reads them (q6_ql_src): chunk
 *                  c (n = c/2, a0 = 4(c%2)) holds the ql quads 16n + a0 + a, the ql quads
 *                  16n + 8 + a0 + a and the qh quads 8n + a0 + a, for a < 4, rows at 4r.
 * The conversion back (ds_r16_unpack_group) restores the original bytes exactly; mm.c uses it
 * for every path that has no R16 kernel (f32 precision, lower ISA levels, oneDNN tiles).
 *
 * Arithmetic. Products are exact int32 sums per block (Q5_0) or per sub-block (K-quants)
 * scaled in f32 per block, and Q5_0's offset comes from the activation's s, as in the
 * row-major kernels; only the order of the f32 additions differs (lane-wise here), so results
 * agree with the row-major GEMV to f32 rounding (tests/kernels/test_repack.c).
 *
 * Measured (BENCHMARKS.md, 2-core AMD EPYC VM, one stream per thread): from DRAM the R16 Q5_0
 * GEMV streams ~1.3-1.8x, Q4_K ~1.15-1.3x and Q6_K ~1.0x the row-major ones; an R16 Q8_0 kernel
 * (commit d9d993d) was no faster than the four-stream row-major one and was removed. Since the
 * row-major K-quant kernels read four streams (fourth session) they beat R16 Q4_K and Q6_K, so
 * the loader repacks only Q5_0 (ds_r16_pays).
 */
#include "kernels/kernels_impl.h"
#include "kernels/gemv_tmpl.h"
#include "format/ggml_types.h"

#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

#define R 16 /* rows per group */

/* ---- layouts (portable) ------------------------------------------------------------------ */

/* quad q of row r of a field `len` bytes long at offset `o` of each row's block, to/from the
 * interleaved field at `dst` */
static void quads_in(uint8_t *dst, const uint8_t *const src[R], size_t o, size_t len)
{
    for (size_t q = 0; q < len / 4; q++)
        for (int r = 0; r < R; r++) {
            uint32_t v;
            memcpy(&v, src[r] + o + 4 * q, 4);
            memcpy(dst + 64 * q + 4 * (size_t)r, &v, 4);
        }
}

static void quads_out(uint8_t *const dst[R], const uint8_t *src, size_t o, size_t len)
{
    for (size_t q = 0; q < len / 4; q++)
        for (int r = 0; r < R; r++) {
            uint32_t v;
            memcpy(&v, src + 64 * q + 4 * (size_t)r, 4);
            memcpy(dst[r] + o + 4 * q, &v, 4);
        }
}

#if DS_KERNELS_X86
/* Four consecutive quads (256 bytes at src) -> bytes o .. o+15 of each row: within each
 * 128-bit lane the four quads hold rows 4L .. 4L+3, and a 4 x 4 dword transpose per lane puts
 * row 4L+i's 16 bytes in lane L of t[i]. ~5x fewer instructions than the scalar copies (the
 * restore runs for every dequantized tile of a prefill). */
DS_TARGET_AVX512 static void quads4_out_avx512(uint8_t *const dst[R], const uint8_t *src,
                                               size_t o)
{
    const __m512i v0 = _mm512_loadu_si512(src), v1 = _mm512_loadu_si512(src + 64);
    const __m512i v2 = _mm512_loadu_si512(src + 128), v3 = _mm512_loadu_si512(src + 192);
    const __m512i a = _mm512_unpacklo_epi32(v0, v1), b = _mm512_unpackhi_epi32(v0, v1);
    const __m512i c = _mm512_unpacklo_epi32(v2, v3), d = _mm512_unpackhi_epi32(v2, v3);
    __m512i t[4];
    t[0] = _mm512_unpacklo_epi64(a, c);
    t[1] = _mm512_unpackhi_epi64(a, c);
    t[2] = _mm512_unpacklo_epi64(b, d);
    t[3] = _mm512_unpackhi_epi64(b, d);
    for (int i = 0; i < 4; i++) {
        _mm_storeu_si128((__m128i *)(dst[i] + o), _mm512_castsi512_si128(t[i]));
        _mm_storeu_si128((__m128i *)(dst[4 + i] + o), _mm512_extracti32x4_epi32(t[i], 1));
        _mm_storeu_si128((__m128i *)(dst[8 + i] + o), _mm512_extracti32x4_epi32(t[i], 2));
        _mm_storeu_si128((__m128i *)(dst[12 + i] + o), _mm512_extracti32x4_epi32(t[i], 3));
    }
}
#endif

/* quads_out for len a multiple of 16, with the AVX-512 transpose where the CPU has it */
static void quads_out_fast(ds_isa isa, uint8_t *const dst[R], const uint8_t *src, size_t o,
                           size_t len)
{
#if DS_KERNELS_X86
    if (isa >= DS_ISA_AVX512) {
        for (size_t q = 0; q < len / 4; q += 4)
            quads4_out_avx512(dst, src + 64 * q, o + 4 * q);
        return;
    }
#endif
    quads_out(dst, src, o, len);
}

/* one quad: bytes o .. o+3 of each row -> 64 bytes at dst (row r at 4r) */
static void quad1_in(uint8_t *dst, const uint8_t *const src[R], size_t o)
{
    for (int r = 0; r < R; r++)
        memcpy(dst + 4 * r, src[r] + o, 4);
}

/* Q6_K quads in the order the kernel reads them: chunk c (n = c / 2, a0 = 4 (c % 2)) at
 * 288 + 768c holds ql quads 16n + a0 + a, then ql quads 16n + 8 + a0 + a, then qh quads
 * 8n + a0 + a (a < 4), 64 bytes each */
static size_t q6_ql_src(int c, int part, int a)
{
    const int n = c / 2, a0 = 4 * (c % 2);
    return part == 2 ? (size_t)(128 + 4 * (8 * n + a0 + a))
                     : (size_t)(4 * (16 * n + 8 * part + a0 + a));
}

/* byte j (j < n) of a field at offset o of each row -> plane j (16 bytes) at dst */
static void planes_in(uint8_t *dst, const uint8_t *const src[R], size_t o, size_t n)
{
    for (size_t j = 0; j < n; j++)
        for (int r = 0; r < R; r++)
            dst[R * j + (size_t)r] = src[r][o + j];
}

static void planes_out(uint8_t *const dst[R], const uint8_t *src, size_t o, size_t n)
{
    for (size_t j = 0; j < n; j++)
        for (int r = 0; r < R; r++)
            dst[r][o + j] = src[R * j + (size_t)r];
}

/* f16 at offset o of each row <-> 16 f16 values (32 bytes) */
static void halfs_in(uint8_t *dst, const uint8_t *const src[R], size_t o)
{
    for (int r = 0; r < R; r++)
        memcpy(dst + 2 * r, src[r] + o, 2);
}

static void halfs_out(uint8_t *const dst[R], const uint8_t *src, size_t o)
{
    for (int r = 0; r < R; r++)
        memcpy(dst[r] + o, src + 2 * r, 2);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Q5_0 high bits: element e = 4i + c (i < 8, c < 4) moves from bit e to bit 8c + i (in), or
 * back (out) */
static uint32_t q5_qh_perm(uint32_t h, bool in)
{
    uint32_t o = 0;
    for (int i = 0; i < 8; i++)
        for (int c = 0; c < 4; c++) {
            const int e = 4 * i + c, g = 8 * c + i;
            o |= ((h >> (in ? e : g)) & 1u) << (in ? g : e);
        }
    return o;
}

/* one block of 16 rows: src[r] -> dst (pack), or back */
static void blk_pack(uint32_t type, const uint8_t *const s[R], uint8_t *d)
{
    switch (type) {
    case DS_GGML_Q5_0:
        halfs_in(d, s, 0);
        for (int r = 0; r < R; r++)
            wr32(d + 32 + 4 * r, q5_qh_perm(ds_rd32(s[r] + 2), true));
        quads_in(d + 96, s, 6, 16);
        break;
    case DS_GGML_Q4_K:
        halfs_in(d, s, 0);
        halfs_in(d + 32, s, 2);
        planes_in(d + 64, s, 4, 12);
        quads_in(d + 256, s, 16, 128);
        break;
    case DS_GGML_Q6_K:
        halfs_in(d, s, 208);
        planes_in(d + 32, s, 192, 16);
        for (int c = 0; c < 4; c++)
            for (int part = 0; part < 3; part++)
                for (int a = 0; a < 4; a++)
                    quad1_in(d + 288 + 768 * c + 256 * part + 64 * a, s, q6_ql_src(c, part, a));
        break;
    default:
        break;
    }
}

static void blk_unpack(ds_isa isa, uint32_t type, const uint8_t *s, uint8_t *const d[R])
{
    switch (type) {
    case DS_GGML_Q5_0:
        halfs_out(d, s, 0);
        for (int r = 0; r < R; r++)
            wr32(d[r] + 2, q5_qh_perm(ds_rd32(s + 32 + 4 * r), false));
        quads_out_fast(isa, d, s + 96, 6, 16);
        break;
    case DS_GGML_Q4_K:
        halfs_out(d, s, 0);
        halfs_out(d, s + 32, 2);
        planes_out(d, s + 64, 4, 12);
        quads_out_fast(isa, d, s + 256, 16, 128);
        break;
    case DS_GGML_Q6_K:
        halfs_out(d, s, 208);
        planes_out(d, s + 32, 192, 16);
        for (int c = 0; c < 4; c++)
            for (int part = 0; part < 3; part++)
                quads_out_fast(isa, d, s + 288 + 768 * c + 256 * part, q6_ql_src(c, part, 0), 16);
        break;
    default:
        break;
    }
}

void ds_r16_pack_group(uint32_t type, const void *rows, size_t row_bytes, int64_t k, void *dst)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    const int64_t nb = k / tk->block_elems;
    const size_t bb = tk->block_bytes;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *s[R];
        for (int r = 0; r < R; r++)
            s[r] = (const uint8_t *)rows + (size_t)r * row_bytes + (size_t)b * bb;
        blk_pack(type, s, (uint8_t *)dst + (size_t)b * R * bb);
    }
}

void ds_r16_unpack_group(ds_isa isa, uint32_t type, const void *group, int64_t k, void *rows,
                         size_t row_bytes)
{
    isa = ds_isa_clamp(isa);
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    const int64_t nb = k / tk->block_elems;
    const size_t bb = tk->block_bytes;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *d[R];
        for (int r = 0; r < R; r++)
            d[r] = (uint8_t *)rows + (size_t)r * row_bytes + (size_t)b * bb;
        blk_unpack(isa, type, (const uint8_t *)group + (size_t)b * R * bb, d);
    }
}

/* Measured on the 2-core AMD VM, 2 threads from DRAM (bench-kernels-quant, fourth session):
 * R16 / row-major Q5_0 49-53 / 29-37 GB/s, but Q4_K 53-57 / 61-63 and Q6_K 37-47 / 65-69 once
 * the row-major K-quant kernels read four streams -- and R16 costs the prefill a restore per
 * tile. So only Q5_0 is repacked; the Q4_K and Q6_K layouts and kernels stay, tested, for
 * CPUs where they may win (ds_mm runs any R16 weight). */
bool ds_r16_pays(uint32_t type)
{
    return type == DS_GGML_Q5_0;
}

bool ds_r16_type(uint32_t type)
{
    return type == DS_GGML_Q5_0 || type == DS_GGML_Q4_K || type == DS_GGML_Q6_K;
}

/* ---- AVX512-VNNI GEMV kernels ------------------------------------------------------------ */

#if DS_KERNELS_X86

#define VNNI DS_TARGET_AVX512VNNI

/* x dword j of activation row m (four int8 values), broadcast to the 16 lanes */
#define XB(xq, j) _mm512_set1_epi32(ds_rd32_i(xq + 4 * (j)))

VNNI static inline int32_t ds_rd32_i(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

VNNI static inline __m512 h16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Each kernel is a block body (acc[m] += the block's products for activation rows m < NX),
 * run over the groups by R16_LOOP; the block's bytes R16_PF ahead are prefetched. */
#define R16_PF 2048

VNNI DS_INLINE void r16_prefetch(const uint8_t *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch(p + R16_PF + o, 0, 3);
}

/* Q5_0: u = nibble | high bit << 4 (0..31); the -16 offset is taken off with the Q8_1
 * activation's s = d_x * sum(q_x) of the block, as the row-major kernels do (q_legacy.c). */
VNNI DS_INLINE void q5_0_blk(const uint8_t *p, int64_t b, int64_t k, const ds_qact *xa, int NX,
                             __m512 *acc)
{
    const int64_t nb = k / 32;
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    r16_prefetch(p, 352);
    const __m512i h = _mm512_loadu_si512(p + 32);
    __m512i u[8];
    for (int q = 0; q < 4; q++) {
        const __m512i v = _mm512_loadu_si512(p + 96 + 64 * q);
        u[q] = _mm512_and_si512(v, m4);
        u[q + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    /* the high bit of quad i is bit i of each byte: to bit 4 */
    u[0] = _mm512_or_si512(u[0], _mm512_and_si512(_mm512_slli_epi32(h, 4), b4));
    u[1] = _mm512_or_si512(u[1], _mm512_and_si512(_mm512_slli_epi32(h, 3), b4));
    u[2] = _mm512_or_si512(u[2], _mm512_and_si512(_mm512_slli_epi32(h, 2), b4));
    u[3] = _mm512_or_si512(u[3], _mm512_and_si512(_mm512_slli_epi32(h, 1), b4));
    u[4] = _mm512_or_si512(u[4], _mm512_and_si512(h, b4));
    u[5] = _mm512_or_si512(u[5], _mm512_and_si512(_mm512_srli_epi32(h, 1), b4));
    u[6] = _mm512_or_si512(u[6], _mm512_and_si512(_mm512_srli_epi32(h, 2), b4));
    u[7] = _mm512_or_si512(u[7], _mm512_and_si512(_mm512_srli_epi32(h, 3), b4));
    const __m512 d = h16(p), d16 = _mm512_mul_ps(d, _mm512_set1_ps(16.0f));
    for (int m = 0; m < NX; m++) {
        const int8_t *xq = xa->q + m * k + b * 32;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0;
        for (int q = 0; q < 8; q += 2) {
            s0 = _mm512_dpbusd_epi32(s0, u[q], XB(xq, q));
            s1 = _mm512_dpbusd_epi32(s1, u[q + 1], XB(xq, q + 1));
        }
        const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(xa->d[m * nb + b]));
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), dd, acc[m]);
        acc[m] = _mm512_fnmadd_ps(d16, _mm512_set1_ps(xa->s[m * nb + b]), acc[m]);
    }
}

/* Q4_K: sub-block s (32 elements) = nibbles of qs quads 8(s/2) .. +7 (low nibbles for even s,
 * high for odd); isum = sum_s sc_s * dot_s, msum = sum_s m_s * (x sum of sub-block s). */
VNNI DS_INLINE void q4_k_blk(const uint8_t *p, int64_t b, int64_t k, const ds_qact *xa, int NX,
                             __m512 *acc)
{
    const int64_t nb = k / 256;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m128i m6 = _mm_set1_epi8(63), l4 = _mm_set1_epi8(0x0F), h2 = _mm_set1_epi8(0x30);
    /* the 8 scales and 8 mins of the 16 rows (unpack_sm8 of q_k.c, lane-wise) */
    __m512i sc[8], mn[8];
    for (int j = 0; j < 4; j++) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(p + 64 + 16 * j));
        const __m128i c = _mm_loadu_si128((const __m128i *)(p + 64 + 16 * (j + 4)));
        const __m128i e = _mm_loadu_si128((const __m128i *)(p + 64 + 16 * (j + 8)));
        sc[j] = _mm512_cvtepu8_epi32(_mm_and_si128(a, m6));
        mn[j] = _mm512_cvtepu8_epi32(_mm_and_si128(c, m6));
        sc[j + 4] = _mm512_cvtepu8_epi32(
            _mm_or_si128(_mm_and_si128(e, l4), _mm_and_si128(_mm_srli_epi16(a, 2), h2)));
        mn[j + 4] = _mm512_cvtepu8_epi32(_mm_or_si128(
            _mm_and_si128(_mm_srli_epi16(e, 4), l4), _mm_and_si128(_mm_srli_epi16(c, 2), h2)));
    }
    __m512i isum[4], msum[4];
    for (int m = 0; m < NX; m++)
        isum[m] = msum[m] = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c+1 (high) */
        r16_prefetch(p + 512 * c, 512 + (c == 3 ? 256 : 0));
        __m512i lo[8], hi[8];
        for (int a = 0; a < 8; a++) {
            const __m512i v = _mm512_loadu_si512(p + 256 + 64 * (8 * c + a));
            lo[a] = _mm512_and_si512(v, m4);
            hi[a] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        for (int m = 0; m < NX; m++) {
            const int8_t *xq = xa->q + m * k + b * 256 + 64 * c;
            const int16_t *bs = xa->bsums + m * (k / 16) + b * 16 + 4 * c;
            __m512i dl = _mm512_setzero_si512(), dh = dl, el = dl, eh = dl;
            for (int a = 0; a < 8; a += 2) {
                dl = _mm512_dpbusd_epi32(dl, lo[a], XB(xq, a));
                el = _mm512_dpbusd_epi32(el, lo[a + 1], XB(xq, a + 1));
                dh = _mm512_dpbusd_epi32(dh, hi[a], XB(xq + 32, a));
                eh = _mm512_dpbusd_epi32(eh, hi[a + 1], XB(xq + 32, a + 1));
            }
            isum[m] = _mm512_add_epi32(
                isum[m],
                _mm512_add_epi32(_mm512_mullo_epi32(sc[2 * c], _mm512_add_epi32(dl, el)),
                                 _mm512_mullo_epi32(sc[2 * c + 1], _mm512_add_epi32(dh, eh))));
            msum[m] = _mm512_add_epi32(
                msum[m],
                _mm512_add_epi32(_mm512_mullo_epi32(mn[2 * c], _mm512_set1_epi32(bs[0] + bs[1])),
                                 _mm512_mullo_epi32(mn[2 * c + 1],
                                                    _mm512_set1_epi32(bs[2] + bs[3]))));
        }
    }
    const __m512 d = h16(p), dmin = h16(p + 32);
    for (int m = 0; m < NX; m++) {
        const __m512 dx = _mm512_set1_ps(xa->d[m * nb + b]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]), _mm512_mul_ps(d, dx), acc[m]);
        acc[m] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[m]), _mm512_mul_ps(dmin, dx), acc[m]);
    }
}

/* Q6_K: u (0..63) from the ql nibbles and the qh 2-bit fields; sub-block s (16 elements)
 * summed from -32 * (x sum of s); isum = sum_s sc_s * that. For half n and a < 8, ql quads
 * 16n + a (L1) and 16n + 8 + a (L2) and qh quad 8n + a give the x dwords 32n + a + {0, 8, 16,
 * 24} in the sub-blocks 8n + a/4 + {0, 2, 4, 6}. */
VNNI DS_INLINE void q6_k_blk(const uint8_t *p, int64_t b, int64_t k, const ds_qact *xa, int NX,
                             __m512 *acc)
{
    const int64_t nb = k / 256;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    __m512i isum[4];
    for (int m = 0; m < NX; m++)
        isum[m] = _mm512_setzero_si512();
    for (int n = 0; n < 2; n++) {
        for (int a0 = 0; a0 < 8; a0 += 4) { /* sub-blocks 8n + a0/4 + {0, 2, 4, 6} */
            const uint8_t *ch = p + 288 + 768 * (2 * n + a0 / 4);
            r16_prefetch(ch, 768);
            __m512i L1[4], L2[4], H[4];
            for (int a = 0; a < 4; a++) {
                L1[a] = _mm512_loadu_si512(ch + 64 * a);
                L2[a] = _mm512_loadu_si512(ch + 256 + 64 * a);
                H[a] = _mm512_loadu_si512(ch + 512 + 64 * a);
            }
            for (int f = 0; f < 4; f++) {
                __m512i u[4];
                for (int a = 0; a < 4; a++) {
                    const __m512i L = f & 1 ? L2[a] : L1[a];
                    const __m512i lo = f < 2 ? L : _mm512_srli_epi16(L, 4);
                    const __m512i hb = f == 0 ? _mm512_slli_epi16(H[a], 4)
                                     : f == 1 ? _mm512_slli_epi16(H[a], 2)
                                     : f == 2 ? H[a] : _mm512_srli_epi16(H[a], 2);
                    u[a] = _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_and_si512(hb, m2));
                }
                const int s = 8 * n + a0 / 4 + 2 * f;
                const __m512i scv =
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 32 + 16 * s)));
                for (int m = 0; m < NX; m++) {
                    const int8_t *xq = xa->q + m * k + b * 256 + 16 * s;
                    const int16_t bs = xa->bsums[m * (k / 16) + b * 16 + s];
                    __m512i t0 = _mm512_set1_epi32(-32 * bs);
                    __m512i t1 = _mm512_setzero_si512();
                    t0 = _mm512_dpbusd_epi32(t0, u[0], XB(xq, 0));
                    t1 = _mm512_dpbusd_epi32(t1, u[1], XB(xq, 1));
                    t0 = _mm512_dpbusd_epi32(t0, u[2], XB(xq, 2));
                    t1 = _mm512_dpbusd_epi32(t1, u[3], XB(xq, 3));
                    isum[m] = _mm512_add_epi32(isum[m],
                                               _mm512_mullo_epi32(scv, _mm512_add_epi32(t0, t1)));
                }
            }
        }
    }
    const __m512 d = h16(p);
    for (int m = 0; m < NX; m++)
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[m]),
                                 _mm512_mul_ps(d, _mm512_set1_ps(xa->d[m * nb + b])), acc[m]);
}

/* The groups one after the other, block by block (one memory stream per thread). Measured
 * on the 2-core VM, 2 threads from DRAM: several streams (a group from each of 2 or 4 parts
 * of the range at a time, as the row-major GEMVs interleave rows) made the R16 Q4_K and Q6_K
 * kernels slower (Q6_K 2048 x 8192: 23-29 GB/s with 2-8 streams, 31 with one), while one
 * stream leaves them at or above the row-major ones: R16 blocks are long (352-3360 bytes)
 * runs of one stream already. */
#define R16_LOOP(BLK, BB, EB, NX)                                                           \
    do {                                                                                    \
        const int64_t nb_ = k / (EB);                                                       \
        const uint8_t *p_ = w;                                                              \
        for (int64_t g_ = 0; g_ < ng; g_++) {                                               \
            __m512 acc_[4];                                                                 \
            for (int m_ = 0; m_ < (NX); m_++)                                               \
                acc_[m_] = _mm512_setzero_ps();                                             \
            for (int64_t b_ = 0; b_ < nb_; b_++, p_ += (BB))                                \
                BLK(p_, b_, k, &xr, (NX), acc_);                                            \
            for (int m_ = 0; m_ < (NX); m_++)                                               \
                _mm512_storeu_ps(yr + m_ * ldy + g_ * R, acc_[m_]);                         \
        }                                                                                   \
    } while (0)

/* The ds_r16_gemv_fn of a block body: activation rows in passes of four, NX a constant 1..4
 * in each. */
#define R16_ENTRY(NAME, BLK, BB, EB)                                                        \
    VNNI static void NAME(const void *w, int64_t ng, int64_t k, const ds_qact *xa, int nx,  \
                          float *y, int64_t ldy)                                            \
    {                                                                                       \
        for (int m0 = 0; m0 < nx; m0 += 4) {                                                \
            const ds_qact xr = ds_qact_rows(xa, k, m0);                                     \
            float *yr = y + (int64_t)m0 * ldy;                                              \
            switch (nx - m0 < 4 ? nx - m0 : 4) {                                            \
            case 1: R16_LOOP(BLK, BB, EB, 1); break;                                        \
            case 2: R16_LOOP(BLK, BB, EB, 2); break;                                        \
            case 3: R16_LOOP(BLK, BB, EB, 3); break;                                        \
            default: R16_LOOP(BLK, BB, EB, 4); break;                                       \
            }                                                                               \
        }                                                                                   \
    }

R16_ENTRY(q5_0_r16, q5_0_blk, 352, 32)
R16_ENTRY(q4_k_r16, q4_k_blk, 2304, 256)
R16_ENTRY(q6_k_r16, q6_k_blk, 3360, 256)

#endif /* DS_KERNELS_X86 */

ds_r16_gemv_fn ds_r16_gemv(uint32_t type, ds_isa isa)
{
#if DS_KERNELS_X86
    if (isa < DS_ISA_AVX512 || !ds_cpu_get()->avx512vnni)
        return NULL;
    switch (type) {
    case DS_GGML_Q5_0: return q5_0_r16;
    case DS_GGML_Q4_K: return q4_k_r16;
    case DS_GGML_Q6_K: return q6_k_r16;
    default: return NULL;
    }
#else
    (void)type;
    (void)isa;
    return NULL;
#endif
}
