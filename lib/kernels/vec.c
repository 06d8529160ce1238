/*
 * lib/kernels/vec.c — f32 vector ops: rmsnorm, softmax, silu_mul, dot, axpy.
 * dot/axpy/rmsnorm have AVX-512 and AVX2 versions; softmax and silu_mul are plain C (libm
 * expf; they are a small part of a token's work).
 */
#include "kernels/kernels_impl.h"

#include <math.h>

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
#endif /* DS_KERNELS_X86 */

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

void ds_silu_mul(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
