/*
 * tests/kernels/kref_quants.h — independent reference decoders and random block generators for
 * the quantized types Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
 *
 * Written from shared/docs/formats.md §2.3-2.4 as per-element closed forms (element e -> its
 * bytes and bits), in double precision with the f16 values decoded by kr_f16_value (ldexp), so
 * they share no code and no formulation with the library's unpacking loops. The Q4_K/Q5_K
 * scales are read through the byte-side description of the 12-byte layout.
 *
 * Values are computed exactly in double by the formulas of formats.md (products of at most 24
 * significant bits; a K-quant difference d*sc*q - dmin*m, if not exact in double, is far from an
 * f32 rounding boundary), so (float)value is the correctly rounded f32 value, which the library
 * must produce bit for bit. `mag` bounds the magnitude of the terms any kernel formulation adds
 * or cancels per element (the signed quant plus its largest offset: |q| + 2*offset for the
 * centred types, |d*q| + |m| for the types with a min); rounding tolerances are relative to it.
 */
#ifndef DS_TESTS_KREF_QUANTS_H
#define DS_TESTS_KREF_QUANTS_H

#include "kref.h"

enum {
    KQ_Q4_0 = 2, KQ_Q4_1 = 3, KQ_Q5_0 = 6, KQ_Q5_1 = 7, KQ_Q2_K = 10, KQ_Q3_K = 11,
    KQ_Q4_K = 12, KQ_Q5_K = 13, KQ_Q6_K = 14
};

static const uint32_t kq_all_types[] = {KQ_Q4_0, KQ_Q4_1, KQ_Q5_0, KQ_Q5_1, KQ_Q2_K,
                                        KQ_Q3_K, KQ_Q4_K, KQ_Q5_K, KQ_Q6_K};
#define KQ_N_TYPES (sizeof kq_all_types / sizeof kq_all_types[0])

static inline int kq_block_elems(uint32_t t)
{
    return t >= KQ_Q2_K ? 256 : 32;
}

static inline int kq_block_bytes(uint32_t t)
{
    switch (t) {
    case KQ_Q4_0: return 18;
    case KQ_Q4_1: return 20;
    case KQ_Q5_0: return 22;
    case KQ_Q5_1: return 24;
    case KQ_Q2_K: return 84;
    case KQ_Q3_K: return 110;
    case KQ_Q4_K: return 144;
    case KQ_Q5_K: return 176;
    case KQ_Q6_K: return 210;
    }
    abort();
}

static inline const char *kq_name(uint32_t t)
{
    switch (t) {
    case KQ_Q4_0: return "Q4_0";
    case KQ_Q4_1: return "Q4_1";
    case KQ_Q5_0: return "Q5_0";
    case KQ_Q5_1: return "Q5_1";
    case KQ_Q2_K: return "Q2_K";
    case KQ_Q3_K: return "Q3_K";
    case KQ_Q4_K: return "Q4_K";
    case KQ_Q5_K: return "Q5_K";
    case KQ_Q6_K: return "Q6_K";
    }
    return "?";
}

/* bits [lo, lo+n) of byte v */
static inline unsigned kq_bits(unsigned v, unsigned lo, unsigned n)
{
    return (v >> lo) & ((1u << n) - 1u);
}

static inline double kq_f16_at(const uint8_t *p)
{
    return kr_f16_value((uint16_t)(p[0] | (p[1] << 8)));
}

/* Legacy nibble of element e (formats.md §2.3): low nibble of byte e for e < 16, else the high
 * nibble of byte e - 16. */
static inline unsigned kq_nibble(const uint8_t *qs, int e)
{
    return e < 16 ? kq_bits(qs[e], 0, 4) : kq_bits(qs[e - 16], 4, 4);
}

/* Q4_K/Q5_K: 6-bit scale (which = 0) or min (which = 1) of sub-block j, from the byte-side view:
 * bytes 0-3 bits 0-5 = sc0-3, bits 6-7 = bits 4-5 of sc4-7; bytes 4-7 the same for the mins;
 * bytes 8-11 bits 0-3 = bits 0-3 of sc4-7, bits 4-7 = bits 0-3 of m4-7. */
static inline unsigned kq_k_scale6(const uint8_t *s, int j, int which)
{
    const uint8_t *base = s + 4 * which;       /* bytes 0-3 (scales) or 4-7 (mins) */
    if (j < 4)
        return kq_bits(base[j], 0, 6);
    return kq_bits(s[8 + (j - 4)], 4 * which, 4) | (kq_bits(base[j - 4], 6, 2) << 4);
}

/* Q3_K scale k (formats.md §2.4), signed -32..31. */
static inline int kq_q3_scale(const uint8_t *s, int k)
{
    unsigned low4 = k < 8 ? kq_bits(s[k], 0, 4) : kq_bits(s[k - 8], 4, 4);
    unsigned high2 = kq_bits(s[8 + k % 4], 2 * (k / 4), 2);
    return (int)(low4 | (high2 << 4)) - 32;
}

/* Decode one block: out[e] = value (double), mag[e] = term bound (mag may be NULL). */
static inline void kq_ref_decode(uint32_t t, const uint8_t *blk, double *out, double *mag)
{
    const int n = kq_block_elems(t);
    for (int e = 0; e < n; e++) {
        const int h = e / 128, r = e % 128, j4 = r / 32, w = e % 32, j = e / 32;
        double v, m;   /* value and term bound */
        switch (t) {
        case KQ_Q4_0: {
            double d = kq_f16_at(blk);
            int q = (int)kq_nibble(blk + 2, e) - 8;
            v = d * q;
            m = fabs(d) * (abs(q) + 16);
            break;
        }
        case KQ_Q4_1: {
            double dq = kq_f16_at(blk) * kq_nibble(blk + 4, e), mm = kq_f16_at(blk + 2);
            v = dq + mm;
            m = fabs(dq) + fabs(mm);
            break;
        }
        case KQ_Q5_0: {
            double d = kq_f16_at(blk);
            uint32_t hh = (uint32_t)blk[2] | (uint32_t)blk[3] << 8 | (uint32_t)blk[4] << 16 |
                          (uint32_t)blk[5] << 24;
            int q = (int)(kq_nibble(blk + 6, e) | (((hh >> e) & 1u) << 4)) - 16;
            v = d * q;
            m = fabs(d) * (abs(q) + 32);
            break;
        }
        case KQ_Q5_1: {
            uint32_t hh = (uint32_t)blk[4] | (uint32_t)blk[5] << 8 | (uint32_t)blk[6] << 16 |
                          (uint32_t)blk[7] << 24;
            double dq = kq_f16_at(blk) * (kq_nibble(blk + 8, e) | (((hh >> e) & 1u) << 4));
            double mm = kq_f16_at(blk + 2);
            v = dq + mm;
            m = fabs(dq) + fabs(mm);
            break;
        }
        case KQ_Q4_K:
        case KQ_Q5_K: {
            const uint8_t *s = blk + 4;
            const uint8_t *qs = blk + (t == KQ_Q4_K ? 16 : 48);
            int c = e / 64;
            unsigned q = (e % 64) < 32 ? kq_bits(qs[32 * c + w], 0, 4)
                                       : kq_bits(qs[32 * c + w], 4, 4);
            if (t == KQ_Q5_K)
                q += 16 * kq_bits(blk[16 + w], (unsigned)j, 1);
            double a = kq_f16_at(blk) * kq_k_scale6(s, j, 0) * q;
            double b = kq_f16_at(blk + 2) * kq_k_scale6(s, j, 1);
            v = a - b;
            m = fabs(a) + fabs(b);
            break;
        }
        case KQ_Q6_K: {
            const uint8_t *ql = blk, *qh = blk + 128;
            unsigned lo = ql[64 * h + w + 32 * (j4 & 1)];
            lo = j4 < 2 ? kq_bits(lo, 0, 4) : kq_bits(lo, 4, 4);
            unsigned hi = kq_bits(qh[32 * h + w], 2 * j4, 2);
            int q = (int)(lo | hi << 4) - 32;
            double ds = kq_f16_at(blk + 208) * (double)(int8_t)blk[192 + e / 16];
            v = ds * q;
            m = fabs(ds) * (abs(q) + 64);
            break;
        }
        case KQ_Q2_K: {
            unsigned q = kq_bits(blk[16 + 32 * h + w], 2 * j4, 2);
            unsigned sc = blk[e / 16];
            double a = kq_f16_at(blk + 80) * kq_bits(sc, 0, 4) * q;
            double b = kq_f16_at(blk + 82) * kq_bits(sc, 4, 4);
            v = a - b;
            m = fabs(a) + fabs(b);
            break;
        }
        case KQ_Q3_K: {
            unsigned low2 = kq_bits(blk[32 + 32 * h + w], 2 * j4, 2);
            unsigned hbit = kq_bits(blk[w], (unsigned)(e / 32), 1);
            int q = (int)low2 - (hbit ? 0 : 4);
            double ds = kq_f16_at(blk + 108) * kq_q3_scale(blk + 96, e / 16);
            v = ds * q;
            m = fabs(ds) * (abs(q) + 8);
            break;
        }
        default:
            abort();
        }
        out[e] = v;
        if (mag)
            mag[e] = m;
    }
}

/* ---- random blocks ------------------------------------------------------------------------ */

/* A finite f16: wild = any kind (zeros, subnormals, extremes, any exponent, either sign);
 * otherwise a positive or negative normal in [2^-10, 2^-5) (tame magnitudes for products). */
static inline uint16_t kq_rand_f16(kr_rng *r, int wild)
{
    if (!wild) {
        uint16_t h = (uint16_t)(((5 + kr_next(r) % 5) << 10) | (kr_next(r) & 0x3FF));
        return (kr_next(r) % 4 == 0) ? (uint16_t)(h | 0x8000) : h;
    }
    static const uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400,
                                       0x7BFF, 0xFBFF, 0x3C00, 0xBC00};
    uint64_t k = kr_next(r) % 16;
    if (k < 10)
        return special[k];
    uint16_t sign = (kr_next(r) & 1) ? 0x8000 : 0;
    if (k < 12)   /* subnormal */
        return (uint16_t)(sign | (kr_next(r) & 0x3FF));
    return (uint16_t)(sign | ((1 + kr_next(r) % 30) << 10) | (kr_next(r) & 0x3FF));
}

static inline void kq_put_f16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Byte offsets of the f16 fields of a block of type t (d first; -1: none). */
static inline void kq_f16_fields(uint32_t t, int *d_off, int *m_off)
{
    *m_off = -1;
    switch (t) {
    case KQ_Q4_0: case KQ_Q5_0: *d_off = 0; break;
    case KQ_Q4_1: case KQ_Q5_1: *d_off = 0; *m_off = 2; break;
    case KQ_Q2_K: *d_off = 80; *m_off = 82; break;
    case KQ_Q3_K: *d_off = 108; break;
    case KQ_Q4_K: case KQ_Q5_K: *d_off = 0; *m_off = 2; break;
    case KQ_Q6_K: *d_off = 208; break;
    default: abort();
    }
}

/* A random block: every non-f16 byte uniformly random, except (pattern = 1..3) all 0x00, all
 * 0xFF, or 0x55/0xAA alternating; the f16 fields by kq_rand_f16. */
static inline void kq_rand_block(kr_rng *r, uint32_t t, uint8_t *blk, int wild, int pattern)
{
    int nb = kq_block_bytes(t), d_off, m_off;
    for (int i = 0; i < nb; i++) {
        switch (pattern) {
        case 1: blk[i] = 0x00; break;
        case 2: blk[i] = 0xFF; break;
        case 3: blk[i] = (i & 1) ? 0xAA : 0x55; break;
        default: blk[i] = (uint8_t)kr_next(r); break;
        }
    }
    kq_f16_fields(t, &d_off, &m_off);
    kq_put_f16(blk + d_off, kq_rand_f16(r, wild));
    if (m_off >= 0)
        kq_put_f16(blk + m_off, kq_rand_f16(r, wild));
}

/* n_rows rows of k elements of random blocks (tame scales; every 13th block a byte pattern)
 * and their decoded values / term magnitudes. */
static inline void kq_fill_rows(kr_rng *r, uint32_t t, int64_t n_rows, int64_t k, uint8_t *data,
                                size_t row_bytes, double *ref, double *mag)
{
    int be = kq_block_elems(t), bb = kq_block_bytes(t);
    for (int64_t n = 0; n < n_rows; n++)
        for (int64_t b = 0; b < k / be; b++) {
            uint8_t *blk = data + (size_t)n * row_bytes + (size_t)b * bb;
            int pattern = (kr_next(r) % 13 == 0) ? (int)(1 + kr_next(r) % 3) : 0;
            kq_rand_block(r, t, blk, 0, pattern);
            kq_ref_decode(t, blk, ref + n * k + b * be, mag ? mag + n * k + b * be : NULL);
        }
}

#endif
