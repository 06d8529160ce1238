/*
 * lib/kernels/vec.c — f32 vector ops: rmsnorm, softmax, silu_mul, dot, axpy.
 * dot/axpy/rmsnorm have AVX-512 and AVX2 versions; the multi-head dot/axpy of decode attention
 * (ds_dot_heads_f32, ds_axpy_heads_f32) an AVX-512 one with the bits of dot/axpy. silu_mul has
 * AVX-512 and AVX2 versions with their own expf (below; the same operations in both, so the
 * same bits) and a plain C one (libm expf): a prefill's expert activations are millions of
 * elements, at ~4 ns each through libm. softmax is plain C (a small part of a token's work).
 * exp_sum (x = exp(x - m) and its sum) and max, the softmax steps of decode attention's
 * blocks, have AVX-512 and AVX2 versions on the same polynomial (within 4e-7 of exp). The
 * attention heads kernels also read f16/bf16 rows (ds_*_heads_h16: converted as loaded in the
 * AVX-512 loops, a plain loop elsewhere).
 */
#include "kernels/kernels_impl.h"

#include <math.h>
#include <string.h>

#if DS_KERNELS_X86
#include "kernels/simd_x86.h"
#endif

/* ---- scalar --------------------------------------------------------------------------- */

static float dot_scalar(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        acc[i & 7] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void axpy_scalar(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void scale_mul_scalar(float *y, const float *x, const float *w, float s, int64_t n)
{
    if (w)
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * s * w[i];
    else
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * s;
}

#if DS_KERNELS_X86

/* ---- AVX2 ------------------------------------------------------------------------------ */

DS_TARGET_AVX2 static float dot_avx2(const float *a, const float *b, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    float s = ds_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

DS_TARGET_AVX2 static void axpy_avx2(float *y, float a, const float *x, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

DS_TARGET_AVX2 static void scale_mul_avx2(float *y, const float *x, const float *w, float s,
                                          int64_t n)
{
    __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        if (w)
            v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++)
        y[i] = w ? x[i] * s * w[i] : x[i] * s;
}

/* ---- AVX-512 --------------------------------------------------------------------------- */

DS_TARGET_AVX512 static float dot_avx512(const float *a, const float *b, int64_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

DS_TARGET_AVX512 static void axpy_avx512(float *y, float a, const float *x, int64_t n)
{
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i),
                                                _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                                        _mm512_maskz_loadu_ps(m, y + i)));
    }
}

DS_TARGET_AVX512 static void scale_mul_avx512(float *y, const float *x, const float *w, float s,
                                              int64_t n)
{
    __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        if (w)
            v = _mm512_mul_ps(v, _mm512_loadu_ps(w + i));
        _mm512_storeu_ps(y + i, v);
    }
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        if (w)
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* ---- several heads against the same rows (decode attention) ------------------------------
 * axpy_heads: the bits of axpy_avx512 called once per (head, row) (the same fma chain in row
 * order per accumulated element), with a row loaded once for up to four heads and the
 * accumulated columns kept in registers across the rows. dot_heads: tiles of 4 rows x 4 heads
 * with its own summation order (ds_dot_heads_f32). */

/* Rows of the attention kernels: f32, or f16 / bf16 converted exactly to f32 as loaded (the
 * same FMAs in the same order afterwards, so an f16/bf16 row gives the bits its f32 copy
 * would). Indices in elements. */
#define ROWS_F32 0
#define ROWS_F16 1
#define ROWS_BF16 2

DS_TARGET_AVX512 DS_INLINE __m512 row16(const void *b, int64_t i, int kind)
{
    if (kind == ROWS_F32)
        return _mm512_loadu_ps((const float *)b + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)b + i));
    if (kind == ROWS_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

DS_TARGET_AVX512 DS_INLINE __m512 row16_mask(const void *b, int64_t i, __mmask16 m, int kind)
{
    if (kind == ROWS_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)b + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)b + i);
    if (kind == ROWS_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* R rows x NH heads of dot products over len: one accumulator per pair, each 16-wide step
 * loading the R row vectors and NH query vectors once for R x NH FMAs (the per-row, 4-heads
 * form loaded 1.25 vectors per FMA and was load-bound: ~62 GMAC/s per core on the AMD VM).
 * pf (NULL: none): 4 rows of the same layout to prefetch, one line of each as the loop
 * passes its offset. kind: ROWS_*. */
DS_TARGET_AVX512 DS_INLINE void dot_rh_avx512(const float *q, int64_t ldq, const void *b,
                                              int64_t ldr, int64_t len, int R, int NH,
                                              float scale, float *sc, int64_t lds,
                                              const char *pf, int kind)
{
    const int64_t es = kind == ROWS_F32 ? 4 : 2; /* bytes per element */
    const char *bb = b;
    __m512 a[4][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NH; j++)
            a[r][j] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
        __m512 k[4];
        if (pf && (i * es) % 64 == 0)
            for (int r = 0; r < 4; r++)
                __builtin_prefetch(pf + (r * ldr + i) * es, 0, 3);
        for (int r = 0; r < R; r++)
            k[r] = row16(bb + r * ldr * es, i, kind);
        for (int j = 0; j < NH; j++) {
            const __m512 qv = _mm512_loadu_ps(q + j * ldq + i);
            for (int r = 0; r < R; r++)
                a[r][j] = _mm512_fmadd_ps(qv, k[r], a[r][j]);
        }
    }
    if (i < len) {
        const __mmask16 m = ds_mask16(len - i);
        __m512 k[4];
        for (int r = 0; r < R; r++)
            k[r] = row16_mask(bb + r * ldr * es, i, m, kind);
        for (int j = 0; j < NH; j++) {
            const __m512 qv = _mm512_maskz_loadu_ps(m, q + j * ldq + i);
            for (int r = 0; r < R; r++)
                a[r][j] = _mm512_fmadd_ps(qv, k[r], a[r][j]);
        }
    }
    if (R == 4 && NH == 4) { /* the 16 sums in one vector: lane 4j + r is (row r, head j) */
        __m512 u[8], v[4];
        /* x[i] = a[i % 4][i / 4] */
#define X_(i) a[(i) % 4][(i) / 4]
        for (int k = 0; k < 8; k++)
            u[k] = _mm512_add_ps(_mm512_unpacklo_ps(X_(2 * k), X_(2 * k + 1)),
                                 _mm512_unpackhi_ps(X_(2 * k), X_(2 * k + 1)));
#undef X_
        for (int k = 0; k < 4; k++) {
            const __m512d c = _mm512_castps_pd(u[2 * k]), d = _mm512_castps_pd(u[2 * k + 1]);
            v[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(c, d)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(c, d)));
        }
        const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x88),
                                         _mm512_shuffle_f32x4(v[0], v[1], 0xDD));
        const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x88),
                                         _mm512_shuffle_f32x4(v[2], v[3], 0xDD));
        const __m512 t = _mm512_mul_ps(_mm512_set1_ps(scale),
                                       _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88),
                                                     _mm512_shuffle_f32x4(s01, s23, 0xDD)));
        _mm_storeu_ps(sc, _mm512_castps512_ps128(t));
        _mm_storeu_ps(sc + lds, _mm512_extractf32x4_ps(t, 1));
        _mm_storeu_ps(sc + 2 * lds, _mm512_extractf32x4_ps(t, 2));
        _mm_storeu_ps(sc + 3 * lds, _mm512_extractf32x4_ps(t, 3));
        return;
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NH; j++)
            sc[j * lds + r] = scale * _mm512_reduce_add_ps(a[r][j]);
}

#define DOT_HEADS_PF_ROWS 8
#define DOT_RH(R_)                                                                           \
    switch (nh - h < 4 ? nh - h : 4) {                                                      \
    case 4: dot_rh_avx512(qh, ldq, b, ldr, len, R_, 4, scale, sh, lds, pfp, kind); break;   \
    case 3: dot_rh_avx512(qh, ldq, b, ldr, len, R_, 3, scale, sh, lds, pfp, kind); break;   \
    case 2: dot_rh_avx512(qh, ldq, b, ldr, len, R_, 2, scale, sh, lds, pfp, kind); break;   \
    default: dot_rh_avx512(qh, ldq, b, ldr, len, R_, 1, scale, sh, lds, pfp, kind); break;  \
    }
DS_TARGET_AVX512 DS_INLINE void dot_heads_avx512(const float *q, int nh, int64_t ldq,
                                                 const void *rows, int n, int64_t ldr,
                                                 int64_t len, float scale, float *sc,
                                                 int64_t lds, int kind)
{
    const int64_t es = kind == ROWS_F32 ? 4 : 2;
    for (int s = 0; s < n; s += 4) {
        const char *b = (const char *)rows + (int64_t)s * ldr * es;
        /* the rows DOT_HEADS_PF_ROWS ahead, during the first head group's FMAs (the cache's
         * rows come from DRAM at decode: the weights stream through every cache between two
         * tokens) */
        for (int h = 0; h < nh; h += 4) {
            const float *qh = q + h * ldq;
            const char *pfp = h == 0 ? b + DOT_HEADS_PF_ROWS * ldr * es : NULL;
            float *sh = sc + h * lds + s;
            switch (n - s < 4 ? n - s : 4) {
            case 4: DOT_RH(4) break;
            case 3: DOT_RH(3) break;
            case 2: DOT_RH(2) break;
            default: DOT_RH(1) break;
            }
        }
    }
}
#undef DOT_RH

/* columns [c, c + 16 * V) (or the masked 16 of m when V == 0) of NH heads' accumulators, over
 * all n rows */
DS_TARGET_AVX512 DS_INLINE void axpy_nh_avx512(float *acc, int64_t lda, const float *p,
                                               int64_t ldp, const void *rows, int n,
                                               int64_t ldr, int64_t c, int NH, int V,
                                               __mmask16 m, int kind)
{
    const int64_t es = kind == ROWS_F32 ? 4 : 2;
    __m512 y[4][4];
    const int nv = V ? V : 1;
    for (int j = 0; j < NH; j++)
        for (int v = 0; v < nv; v++)
            y[j][v] = V ? _mm512_loadu_ps(acc + j * lda + c + 16 * v)
                        : _mm512_maskz_loadu_ps(m, acc + j * lda + c);
    for (int s = 0; s < n; s++) {
        const char *x = (const char *)rows + (int64_t)s * ldr * es;
        __m512 xv[4];
        for (int v = 0; v < nv; v++)
            xv[v] = V ? row16(x, c + 16 * v, kind) : row16_mask(x, c, m, kind);
        for (int j = 0; j < NH; j++) {
            const __m512 va = _mm512_set1_ps(p[j * ldp + s]);
            for (int v = 0; v < nv; v++)
                y[j][v] = _mm512_fmadd_ps(va, xv[v], y[j][v]);
        }
    }
    for (int j = 0; j < NH; j++)
        for (int v = 0; v < nv; v++) {
            if (V)
                _mm512_storeu_ps(acc + j * lda + c + 16 * v, y[j][v]);
            else
                _mm512_mask_storeu_ps(acc + j * lda + c, m, y[j][v]);
        }
}

#define AXPY_NH(NH)                                                                          \
    do {                                                                                     \
        int64_t c = 0;                                                                       \
        for (; c + 64 <= len; c += 64)                                                       \
            axpy_nh_avx512(a, lda, ph, ldp, rows, n, ldr, c, NH, 4, 0, kind);                \
        for (; c + 16 <= len; c += 16)                                                       \
            axpy_nh_avx512(a, lda, ph, ldp, rows, n, ldr, c, NH, 1, 0, kind);                \
        if (c < len)                                                                         \
            axpy_nh_avx512(a, lda, ph, ldp, rows, n, ldr, c, NH, 0, ds_mask16(len - c),      \
                           kind);                                                            \
    } while (0)

DS_TARGET_AVX512 DS_INLINE void axpy_heads_avx512(float *acc, int nh, int64_t lda,
                                                  const float *p, int64_t ldp,
                                                  const void *rows, int n, int64_t ldr,
                                                  int64_t len, int kind)
{
    for (int h = 0; h < nh; h += 4) {
        float *a = acc + h * lda;
        const float *ph = p + h * ldp;
        switch (nh - h < 4 ? nh - h : 4) {
        case 4: AXPY_NH(4); break;
        case 3: AXPY_NH(3); break;
        case 2: AXPY_NH(2); break;
        default: AXPY_NH(1); break;
        }
    }
}
#undef AXPY_NH

/* the three row layouts of each (separate functions: each inlines its own loads) */
#define HEADS_KIND(SUF, KIND)                                                                \
    DS_TARGET_AVX512 static void dot_heads_avx512_##SUF(                                    \
        const float *q, int nh, int64_t ldq, const void *rows, int n, int64_t ldr,           \
        int64_t len, float scale, float *sc, int64_t lds)                                   \
    {                                                                                        \
        dot_heads_avx512(q, nh, ldq, rows, n, ldr, len, scale, sc, lds, KIND);              \
    }                                                                                        \
    DS_TARGET_AVX512 static void axpy_heads_avx512_##SUF(float *acc, int nh, int64_t lda,   \
                                                         const float *p, int64_t ldp,       \
                                                         const void *rows, int n,           \
                                                         int64_t ldr, int64_t len)          \
    {                                                                                        \
        axpy_heads_avx512(acc, nh, lda, p, ldp, rows, n, ldr, len, KIND);                   \
    }
HEADS_KIND(f32, ROWS_F32)
HEADS_KIND(f16, ROWS_F16)
HEADS_KIND(bf16, ROWS_BF16)
#undef HEADS_KIND
#endif /* DS_KERNELS_X86 */

/* silu(g) * u with exp(-g) = p(r) * 2^n1 * 2^n2, n = n1 + n2 = round(-g * log2 e),
 * r = -g - n ln 2 (in two parts), p the polynomial of Cephes' expf (about 1 ulp). -g is
 * clamped to [SILU_XMIN, SILU_XMAX]: below, 1 + exp(-g) is 1 in floats anyway; above, the
 * two normal powers of two overflow the product to inf as expf does, so g < -88.7 gives -0
 * and g = -inf gives NaN, like the libm version. NaN stays NaN through g itself. */
#define SILU_XMIN (-87.0f)
#define SILU_XMAX 89.0f
#define SILU_LOG2E 1.44269504088896341f
#define SILU_LN2_HI 0.693359375f
#define SILU_LN2_LO (-2.12194440e-4f)
#define SILU_P0 1.9875691500e-4f
#define SILU_P1 1.3981999507e-3f
#define SILU_P2 8.3334519073e-3f
#define SILU_P3 4.1665795894e-2f
#define SILU_P4 1.6666665459e-1f
#define SILU_P5 5.0000001201e-1f

#if DS_KERNELS_X86

/* NAME(x) = exp(x) for one vector, x clamped to [SILU_XMIN, SILU_XMAX] (the polynomial above):
 * V/VI the float/int vector types, P the intrinsics' prefix (_mm512, _mm256), ROUND its
 * round-to-nearest, CAST its int-to-float bit cast. */
#define EXPC_VEC(NAME, TARGET, V, VI, P, ROUND, CAST)                                       \
    TARGET static inline V NAME(V x)                                                        \
    {                                                                                       \
        x = P##_min_ps(P##_max_ps(x, P##_set1_ps(SILU_XMIN)), P##_set1_ps(SILU_XMAX));      \
        V n = ROUND(P##_mul_ps(x, P##_set1_ps(SILU_LOG2E)),                                 \
                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);                         \
        V r = P##_fnmadd_ps(n, P##_set1_ps(SILU_LN2_HI), x);                                \
        r = P##_fnmadd_ps(n, P##_set1_ps(SILU_LN2_LO), r);                                  \
        V p = P##_set1_ps(SILU_P0);                                                         \
        p = P##_fmadd_ps(p, r, P##_set1_ps(SILU_P1));                                       \
        p = P##_fmadd_ps(p, r, P##_set1_ps(SILU_P2));                                       \
        p = P##_fmadd_ps(p, r, P##_set1_ps(SILU_P3));                                       \
        p = P##_fmadd_ps(p, r, P##_set1_ps(SILU_P4));                                       \
        p = P##_fmadd_ps(p, r, P##_set1_ps(SILU_P5));                                       \
        p = P##_fmadd_ps(p, P##_mul_ps(r, r), P##_add_ps(r, P##_set1_ps(1.0f)));            \
        const VI ni = P##_cvtps_epi32(n), n1 = P##_srai_epi32(ni, 1);                       \
        const VI b = P##_set1_epi32(127);                                                   \
        const VI e1 = P##_slli_epi32(P##_add_epi32(n1, b), 23);                             \
        const VI e2 = P##_slli_epi32(P##_add_epi32(P##_sub_epi32(ni, n1), b), 23);          \
        return P##_mul_ps(P##_mul_ps(p, CAST(e1)), CAST(e2));                               \
    }
EXPC_VEC(expc16, DS_TARGET_AVX512, __m512, __m512i, _mm512, _mm512_roundscale_ps,
         _mm512_castsi512_ps)
EXPC_VEC(expc8, DS_TARGET_AVX2, __m256, __m256i, _mm256, _mm256_round_ps, _mm256_castsi256_ps)
#undef EXPC_VEC

/* silu(g) * u for one vector: g / (1 + exp(-g)) * u */
DS_TARGET_AVX512 static inline __m512 silu_mul16(__m512 g, __m512 u)
{
    const __m512 ex = expc16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), ex)), u);
}

DS_TARGET_AVX2 static inline __m256 silu_mul8(__m256 g, __m256 u)
{
    const __m256 ex = expc8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), ex)), u);
}

/* exp(x) for softmax: below SILU_XMIN 0 (the polynomial would give exp(SILU_XMIN) there),
 * NaN stays NaN. */
DS_TARGET_AVX512 static inline __m512 exp16(__m512 x)
{
    __m512 e = expc16(x);
    e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(SILU_XMIN), _CMP_LT_OQ),
                           _mm512_setzero_ps());
    return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

DS_TARGET_AVX2 static inline __m256 exp8(__m256 x)
{
    __m256 e = expc8(x);
    e = _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(SILU_XMIN), _CMP_LT_OQ), e);
    return _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* x[i] = exp(x[i] - m), returning the sum (exp_sum); the largest x[i] ignoring NaN, -inf for
 * none (max). */
DS_TARGET_AVX512 static float exp_sum_avx512(float *x, int64_t n, float m)
{
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        const __mmask16 k = ds_mask16(n - i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

DS_TARGET_AVX2 static float exp_sum_avx2(float *x, int64_t n, float m)
{
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) { /* the tail through a zero-padded block, its padding lanes not summed */
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), vm));
        _mm256_storeu_ps(t, e);
        memcpy(x + i, t, (size_t)(n - i) * sizeof(float));
        const __m256i lane = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(lane)));
    }
    return ds_hsum8(acc);
}

DS_TARGET_AVX512 static float max_avx512(const float *x, int64_t n)
{
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm512_max_ps(_mm512_loadu_ps(x + i), acc); /* a NaN x loses to acc */
    if (i < n) {
        const __mmask16 k = ds_mask16(n - i);
        acc = _mm512_mask_max_ps(acc, k, _mm512_maskz_loadu_ps(k, x + i), acc);
    }
    return _mm512_reduce_max_ps(acc);
}

DS_TARGET_AVX512 static void silu_mul_avx512(float *out, const float *gate, const float *up,
                                             int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    if (i < n) {
        __mmask16 m = ds_mask16(n - i);
        _mm512_mask_storeu_ps(out + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, gate + i),
                                                     _mm512_maskz_loadu_ps(m, up + i)));
    }
}

DS_TARGET_AVX2 static void silu_mul_avx2(float *out, const float *gate, const float *up,
                                         int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) { /* the tail through a zero-padded block: the same operations, the same bits */
        float g8[8] = {0}, u8[8] = {0}, o8[8];
        memcpy(g8, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u8, up + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(o8, silu_mul8(_mm256_loadu_ps(g8), _mm256_loadu_ps(u8)));
        memcpy(out + i, o8, (size_t)(n - i) * sizeof(float));
    }
}
#endif /* DS_KERNELS_X86 */

static void silu_mul_scalar(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* ---- dispatch --------------------------------------------------------------------------- */

float ds_dot_f32_isa(ds_isa isa, const float *a, const float *b, int64_t n)
{
#if DS_KERNELS_X86
    switch (ds_isa_clamp(isa)) {
    case DS_ISA_AVX512: return dot_avx512(a, b, n);
    case DS_ISA_AVX2: return dot_avx2(a, b, n);
    default: break;
    }
#endif
    return dot_scalar(a, b, n);
}

void ds_axpy_f32_isa(ds_isa isa, float *y, float a, const float *x, int64_t n)
{
#if DS_KERNELS_X86
    switch (ds_isa_clamp(isa)) {
    case DS_ISA_AVX512: axpy_avx512(y, a, x, n); return;
    case DS_ISA_AVX2: axpy_avx2(y, a, x, n); return;
    default: break;
    }
#endif
    axpy_scalar(y, a, x, n);
}

void ds_dot_heads_f32_isa(ds_isa isa, const float *q, int nh, int64_t ldq, const float *rows,
                          int n, int64_t ldr, int64_t len, float scale, float *sc, int64_t lds)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) == DS_ISA_AVX512) {
        dot_heads_avx512_f32(q, nh, ldq, rows, n, ldr, len, scale, sc, lds);
        return;
    }
#endif
    for (int s = 0; s < n; s++)
        for (int h = 0; h < nh; h++)
            sc[h * lds + s] = scale * ds_dot_f32_isa(isa, q + h * ldq, rows + s * ldr, len);
}

void ds_axpy_heads_f32_isa(ds_isa isa, float *acc, int nh, int64_t lda, const float *p,
                           int64_t ldp, const float *rows, int n, int64_t ldr, int64_t len)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) == DS_ISA_AVX512) {
        axpy_heads_avx512_f32(acc, nh, lda, p, ldp, rows, n, ldr, len);
        return;
    }
#endif
    for (int s = 0; s < n; s++)
        for (int h = 0; h < nh; h++)
            ds_axpy_f32_isa(isa, acc + h * lda, p[h * ldp + s], rows + s * ldr, len);
}

void ds_dot_heads_f32(const float *q, int nh, int64_t ldq, const float *rows, int n, int64_t ldr,
                      int64_t len, float scale, float *sc, int64_t lds)
{
    ds_dot_heads_f32_isa(ds_isa_best(), q, nh, ldq, rows, n, ldr, len, scale, sc, lds);
}

void ds_axpy_heads_f32(float *acc, int nh, int64_t lda, const float *p, int64_t ldp,
                       const float *rows, int n, int64_t ldr, int64_t len)
{
    ds_axpy_heads_f32_isa(ds_isa_best(), acc, nh, lda, p, ldp, rows, n, ldr, len);
}

bool ds_heads_h16_fast(void)
{
#if DS_KERNELS_X86
    return ds_isa_best() == DS_ISA_AVX512;
#else
    return false;
#endif
}

/* Row s of an f16 / bf16 row set as f32 (elements [0, len)). The portable levels. */
static float h16_at(const uint16_t *rows, int64_t ldr, int s, int64_t i, bool bf16)
{
    const uint16_t v = rows[(int64_t)s * ldr + i];
    return bf16 ? ds_bf16_to_f32(v) : ds_f16_to_f32(v);
}

void ds_dot_heads_h16_isa(ds_isa isa, const float *q, int nh, int64_t ldq,
                          const uint16_t *rows, int n, int64_t ldr, int64_t len, float scale,
                          float *sc, int64_t lds, bool bf16)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) == DS_ISA_AVX512) {
        if (bf16)
            dot_heads_avx512_bf16(q, nh, ldq, rows, n, ldr, len, scale, sc, lds);
        else
            dot_heads_avx512_f16(q, nh, ldq, rows, n, ldr, len, scale, sc, lds);
        return;
    }
#endif
    for (int s = 0; s < n; s++)
        for (int h = 0; h < nh; h++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < len; i++)
                acc += q[h * ldq + i] * h16_at(rows, ldr, s, i, bf16);
            sc[h * lds + s] = scale * acc;
        }
}

void ds_axpy_heads_h16_isa(ds_isa isa, float *acc, int nh, int64_t lda, const float *p,
                           int64_t ldp, const uint16_t *rows, int n, int64_t ldr, int64_t len,
                           bool bf16)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) == DS_ISA_AVX512) {
        if (bf16)
            axpy_heads_avx512_bf16(acc, nh, lda, p, ldp, rows, n, ldr, len);
        else
            axpy_heads_avx512_f16(acc, nh, lda, p, ldp, rows, n, ldr, len);
        return;
    }
#endif
    for (int s = 0; s < n; s++)
        for (int h = 0; h < nh; h++)
            for (int64_t i = 0; i < len; i++)
                acc[h * lda + i] += p[h * ldp + s] * h16_at(rows, ldr, s, i, bf16);
}

void ds_dot_heads_h16(const float *q, int nh, int64_t ldq, const uint16_t *rows, int n,
                      int64_t ldr, int64_t len, float scale, float *sc, int64_t lds, bool bf16)
{
    ds_dot_heads_h16_isa(ds_isa_best(), q, nh, ldq, rows, n, ldr, len, scale, sc, lds, bf16);
}

void ds_axpy_heads_h16(float *acc, int nh, int64_t lda, const float *p, int64_t ldp,
                       const uint16_t *rows, int n, int64_t ldr, int64_t len, bool bf16)
{
    ds_axpy_heads_h16_isa(ds_isa_best(), acc, nh, lda, p, ldp, rows, n, ldr, len, bf16);
}

void ds_rmsnorm_isa(ds_isa isa, float *y, const float *x, const float *w, int64_t n, float eps)
{
    if (n <= 0)
        return;
    isa = ds_isa_clamp(isa);
    float ss = ds_dot_f32_isa(isa, x, x, n);
    float s = 1.0f / sqrtf(ss / (float)n + eps);
#if DS_KERNELS_X86
    switch (isa) {
    case DS_ISA_AVX512: scale_mul_avx512(y, x, w, s, n); return;
    case DS_ISA_AVX2: scale_mul_avx2(y, x, w, s, n); return;
    default: break;
    }
#endif
    scale_mul_scalar(y, x, w, s, n);
}

void ds_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    ds_rmsnorm_isa(ds_isa_best(), y, x, w, n, eps);
}

float ds_dot_f32(const float *a, const float *b, int64_t n)
{
    return ds_dot_f32_isa(ds_isa_best(), a, b, n);
}

void ds_axpy_f32(float *y, float a, const float *x, int64_t n)
{
    ds_axpy_f32_isa(ds_isa_best(), y, a, x, n);
}

void ds_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float mx = x[0];
    for (int64_t i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

float ds_exp_sum_f32_isa(ds_isa isa, float *x, int64_t n, float m)
{
#if DS_KERNELS_X86
    switch (ds_isa_clamp(isa)) {
    case DS_ISA_AVX512: return exp_sum_avx512(x, n, m);
    case DS_ISA_AVX2: return exp_sum_avx2(x, n, m);
    default: break;
    }
#endif
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float d = x[i] - m;
        x[i] = d < SILU_XMIN ? 0.0f : expf(d); /* the SIMD versions' cut-off */
        sum += x[i];
    }
    return sum;
}

float ds_max_f32_isa(ds_isa isa, const float *x, int64_t n)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) == DS_ISA_AVX512)
        return max_avx512(x, n);
#endif
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

float ds_exp_sum_f32(float *x, int64_t n, float m)
{
    return ds_exp_sum_f32_isa(ds_isa_best(), x, n, m);
}

float ds_max_f32(const float *x, int64_t n)
{
    return ds_max_f32_isa(ds_isa_best(), x, n);
}

void ds_silu_mul_isa(ds_isa isa, float *out, const float *gate, const float *up, int64_t n)
{
#if DS_KERNELS_X86
    switch (ds_isa_clamp(isa)) {
    case DS_ISA_AVX512: silu_mul_avx512(out, gate, up, n); return;
    case DS_ISA_AVX2: silu_mul_avx2(out, gate, up, n); return;
    default: break;
    }
#endif
    silu_mul_scalar(out, gate, up, n);
}

void ds_silu_mul(float *out, const float *gate, const float *up, int64_t n)
{
    ds_silu_mul_isa(ds_isa_best(), out, gate, up, n);
}
