/*
 * tests/kernels/kref.h — independent reference decoders and helpers for the kernel tests.
 *
 * The decoders here are written from shared/docs/formats.md §2.2-2.3 with libm (ldexp), not
 * with the library's bit tricks, so the tests do not check the code against itself.
 */
#ifndef DS_TESTS_KREF_H
#define DS_TESTS_KREF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t kr_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float kr_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE binary16 -> double, by its definition. NaN payloads are checked separately. */
static inline double kr_f16_value(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp((double)(1024 + mant), exp - 25);
    return sign ? -v : v;
}

static inline double kr_bf16_value(uint16_t h)
{
    return (double)kr_float((uint32_t)h << 16);
}

/* f32 -> bf16 by choosing the nearer of the two neighbours (ties to the even code), NaN ->
 * quiet NaN. */
static inline uint16_t kr_ref_bf16(float f)
{
    uint32_t u = kr_bits(f);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40);
    uint32_t lo = u & 0xFFFF0000u, hi = lo + 0x10000u;
    double dlo = fabs((double)kr_float(lo) - (double)f);
    /* past the largest bf16 the next value is inf, placed at 2^128 for rounding */
    double dhi = (hi & 0x7FFFFFFFu) == 0x7F800000u ? ldexp(1.0, 128) - fabs((double)f)
                                                   : fabs((double)kr_float(hi) - (double)f);
    if (dlo < dhi || (dlo == dhi && !((lo >> 16) & 1)))
        return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

/* Q8_0: d (f16) at byte 0, 32 int8 at byte 2; y = d * q. */
static inline void kr_q8_0_decode(const uint8_t *blk, double *out)
{
    uint16_t d16 = (uint16_t)(blk[0] | (blk[1] << 8));
    double d = kr_f16_value(d16);
    for (int i = 0; i < 32; i++)
        out[i] = d * (double)(int8_t)blk[2 + i];
}

/* ---- deterministic random numbers ---------------------------------------------------- */

typedef struct kr_rng {
    uint64_t s;
} kr_rng;

static inline uint64_t kr_next(kr_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static inline float kr_uniform(kr_rng *r)
{
    return (float)((double)(kr_next(r) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* ---- test weights ----------------------------------------------------------------------- */

/* Fill `n_rows` rows of `k` elements of `type` (0 F32, 1 F16, 30 BF16, 8 Q8_0) with random
 * values and write the exact decoded values (by the reference decoders) to `ref`. */
static inline void kr_fill_weights(kr_rng *r, uint32_t type, int64_t n_rows, int64_t k,
                                   void *data, size_t row_bytes, double *ref)
{
    for (int64_t n = 0; n < n_rows; n++) {
        uint8_t *row = (uint8_t *)data + (size_t)n * row_bytes;
        double *rr = ref + n * k;
        switch (type) {
        case 0:
            for (int64_t i = 0; i < k; i++) {
                float v = kr_uniform(r);
                memcpy(row + 4 * i, &v, 4);
                rr[i] = v;
            }
            break;
        case 1:
            for (int64_t i = 0; i < k; i++) {
                /* random finite f16 in about [-2, 2], sometimes subnormal */
                uint16_t h = (uint16_t)(kr_next(r) & 0x83FF);
                int e = (int)(kr_next(r) % 17);           /* 0 (subnormal) .. 16 */
                h |= (uint16_t)(e << 10);
                memcpy(row + 2 * i, &h, 2);
                rr[i] = kr_f16_value(h);
            }
            break;
        case 30:
            for (int64_t i = 0; i < k; i++) {
                uint16_t h = (uint16_t)(kr_bits(kr_uniform(r)) >> 16);
                memcpy(row + 2 * i, &h, 2);
                rr[i] = kr_bf16_value(h);
            }
            break;
        case 8:
            for (int64_t b = 0; b < k / 32; b++) {
                uint8_t *blk = row + 34 * b;
                /* d: positive or negative normal f16 around 2^-7 .. 2^-5 */
                uint16_t d16 = (uint16_t)(((8 + kr_next(r) % 3) << 10) | (kr_next(r) & 0x3FF));
                if (kr_next(r) & 1)
                    d16 |= 0x8000;
                blk[0] = (uint8_t)d16;
                blk[1] = (uint8_t)(d16 >> 8);
                for (int i = 0; i < 32; i++)
                    blk[2 + i] = (uint8_t)kr_next(r);     /* full int8 range incl. -128 */
                kr_q8_0_decode(blk, rr + 32 * b);
            }
            break;
        default:
            abort();
        }
    }
}

static inline size_t kr_row_bytes(uint32_t type, int64_t k)
{
    switch (type) {
    case 0: return (size_t)k * 4;
    case 1:
    case 30: return (size_t)k * 2;
    case 8: return (size_t)(k / 32) * 34;
    }
    abort();
}

static inline const char *kr_type_name(uint32_t type)
{
    switch (type) {
    case 0: return "F32";
    case 1: return "F16";
    case 30: return "BF16";
    case 8: return "Q8_0";
    }
    return "?";
}

/* ---- reference products ---------------------------------------------------------------- */

/* ref[m][n] = sum_k x[m][k] * w[n][k] in double; mag[m][n] = sum_k |x||w|. */
static inline void kr_ref_mm(const double *w, const float *x, int64_t M, int64_t ldx,
                             int64_t N, int64_t K, double *ref, double *mag)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0, a = 0;
            const double *wr = w + n * K;
            const float *xr = x + m * ldx;
            for (int64_t k = 0; k < K; k++) {
                s += wr[k] * xr[k];
                a += fabs(wr[k] * xr[k]);
            }
            ref[m * N + n] = s;
            mag[m * N + n] = a;
        }
}

/* Error bound of the int8-activation product of one row (formats.md §2.5 quantization):
 * per block |x - xd*q| <= d/2 + 127*d*2^-11 (f16 rounding of the scale), d = amax/127. */
static inline double kr_q8_bound(const double *wrow, const float *x, int64_t K)
{
    double bound = 0;
    for (int64_t b = 0; b < K / 32; b++) {
        double amax = 0, wsum = 0;
        for (int i = 0; i < 32; i++) {
            amax = fmax(amax, fabs(x[32 * b + i]));
            wsum += fabs(wrow[32 * b + i]);
        }
        double d = amax / 127.0;
        bound += wsum * (0.5 * d + 127.0 * d * 0x1p-11);
    }
    return bound;
}

#endif
