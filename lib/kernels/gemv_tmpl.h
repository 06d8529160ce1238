/*
 * lib/kernels/gemv_tmpl.h — instantiation helpers for the GEMV row kernels of the block types
 * (q_legacy.c, q_k.c; internal).
 *
 * A GEMV template is an always-inline function TEMPLATE(NX, ...) whose row count NX is a
 * compile-time constant once instantiated. The macros below make NAME_1 .. NAME_4 (one per row
 * count, with the ISA's target attribute) and NAME, which takes any number of activation rows
 * in groups of DS_GEMV_NX (each group reads the weights once).
 */
#ifndef DS_KERNELS_GEMV_TMPL_H
#define DS_KERNELS_GEMV_TMPL_H

#include "kernels/kernels_impl.h"

/* f32 activations: TEMPLATE(NX, w, rb, nr, k, x, ldx, y, ldy); NAME is exported. */
#define DS_GEMV_F32_INSTANCES(NAME, TARGET, TEMPLATE)                                       \
    TARGET static void NAME##_1(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(1, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_2(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(2, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_3(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(3, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    TARGET static void NAME##_4(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const float *x, int64_t ldx, float *y, int64_t ldy)         \
    { TEMPLATE(4, w, rb, nr, k, x, ldx, y, ldy); }                                          \
    static void NAME(DS_GEMV_F32_PARAMS)                                                    \
    {                                                                                       \
        for (int m0 = 0; m0 < nx; m0 += DS_GEMV_NX) {                                       \
            const float *xm = x + m0 * ldx;                                                 \
            float *ym = y + m0 * ldy;                                                       \
            switch (nx - m0 < DS_GEMV_NX ? nx - m0 : DS_GEMV_NX) {                          \
            case 1: NAME##_1(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            case 2: NAME##_2(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            case 3: NAME##_3(w, rb, nr, k, xm, ldx, ym, ldy); break;                        \
            default: NAME##_4(w, rb, nr, k, xm, ldx, ym, ldy); break;                       \
            }                                                                               \
        }                                                                                   \
    }

/* Quantized activations: TEMPLATE(NX, w, rb, nr, k, xa, y, ldy), xa already offset to the
 * group's first row. NAME is static (the exported function picks VNNI or not). */
#define DS_GEMV_Q8_INSTANCES(NAME, TARGET, TEMPLATE)                                        \
    TARGET static void NAME##_1(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const ds_qact *xa, float *y, int64_t ldy)                   \
    { TEMPLATE(1, w, rb, nr, k, xa, y, ldy); }                                              \
    TARGET static void NAME##_2(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const ds_qact *xa, float *y, int64_t ldy)                   \
    { TEMPLATE(2, w, rb, nr, k, xa, y, ldy); }                                              \
    TARGET static void NAME##_3(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const ds_qact *xa, float *y, int64_t ldy)                   \
    { TEMPLATE(3, w, rb, nr, k, xa, y, ldy); }                                              \
    TARGET static void NAME##_4(const void *w, size_t rb, int64_t nr, int64_t k,           \
                                const ds_qact *xa, float *y, int64_t ldy)                   \
    { TEMPLATE(4, w, rb, nr, k, xa, y, ldy); }                                              \
    static void NAME(DS_GEMV_Q8_PARAMS)                                                     \
    {                                                                                       \
        for (int m0 = 0; m0 < nx; m0 += DS_GEMV_NX) {                                       \
            ds_qact a = ds_qact_rows(xa, k, m0);                                            \
            float *ym = y + m0 * ldy;                                                       \
            switch (nx - m0 < DS_GEMV_NX ? nx - m0 : DS_GEMV_NX) {                          \
            case 1: NAME##_1(w, rb, nr, k, &a, ym, ldy); break;                             \
            case 2: NAME##_2(w, rb, nr, k, &a, ym, ldy); break;                             \
            case 3: NAME##_3(w, rb, nr, k, &a, ym, ldy); break;                             \
            default: NAME##_4(w, rb, nr, k, &a, ym, ldy); break;                            \
            }                                                                               \
        }                                                                                   \
    }

/* Prefetch the weight stream of one block of BB bytes (DS_PF_DIST ahead). */
#define DS_PREFETCH_BLOCK(p, BB)                                                            \
    do {                                                                                    \
        for (size_t pf_ = 0; pf_ < (size_t)(BB); pf_ += 64)                                 \
            DS_PREFETCH((const char *)(p) + pf_);                                           \
    } while (0)

static inline uint16_t ds_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ds_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t ds_rd64(const uint8_t *p)
{
    return (uint64_t)ds_rd32(p) | ((uint64_t)ds_rd32(p + 4) << 32);
}

#endif
