/*
 * lib/kernels/convert.c — scalar f16/bf16 conversions, the per-type kernel table, dequantization
 * dispatch, and Q8_0-style activation quantization.
 *
 * The table lists F32/F16/BF16/Q8_0 here; the other quantized types' entries live next to their
 * kernels (q_legacy.c, q_k.c).
 *
 * Conversions follow formats.md §2.2: f16 -> f32 exact (subnormals, inf; a NaN is made quiet
 * with its payload kept, as the F16C instruction does); f32 -> f16 and f32 -> bf16 round to
 * nearest even; a NaN becomes a quiet NaN.
 */
#include "kernels/kernels_impl.h"

#include "format/ggml_types.h"

#include <math.h>
#include <string.h>

#if DS_KERNELS_X86
#include <immintrin.h>
#endif

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ds_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) {                                     /* inf, or NaN made quiet with */
        bits = sign | 0x7F800000u | (mant << 13);          /* its payload (as F16C does)  */
        if (mant)
            bits |= 0x00400000u;
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);  /* normal: rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign;                                       /* +-0 */
    } else {
        /* subnormal: mant * 2^-24; normalise so that bit 10 is the implicit one */
        uint32_t shifts = 0;
        while (!(mant & 0x400)) {
            mant <<= 1;
            shifts++;
        }
        bits = sign | ((113 - shifts) << 23) | ((mant & 0x3FF) << 13);
    }
    return bits_f32(bits);
}

uint16_t ds_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {                 /* inf, or NaN made quiet with the top payload */
        if (a == 0x7F800000u)
            return sign | 0x7C00;
        return (uint16_t)(sign | 0x7E00 | ((a >> 13) & 0x3FF));
    }
    if (a >= 0x477FF000u)                   /* >= 65520 rounds to inf */
        return sign | 0x7C00;
    if (a >= 0x38800000u) {                 /* normal f16 range (>= 2^-14) */
        uint32_t r = (a >> 13) - (112u << 10);
        uint32_t rem = a & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
            r++;                            /* a carry into the exponent is correct */
        return (uint16_t)(sign | r);
    }
    if (a <= 0x33000000u)                   /* <= 2^-25: rounds to zero (tie goes to even 0) */
        return sign;
    /* f16 subnormal: result = round_even(value * 2^24) */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;               /* 14..24 */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1)))
        r++;                                /* 0x400 becomes the smallest normal: correct */
    return (uint16_t)(sign | r);
}

float ds_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t ds_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* ---- the type table --------------------------------------------------------------------- */

#if DS_KERNELS_X86
#define X86(f) f
#else
#define X86(f) NULL
#endif

static const ds_type_kernels k_types[] = {
    {DS_GGML_F32, 1, 4,
     {ds_f32_to_f32_scalar, NULL, NULL},
     {ds_f32_to_bf16_scalar, NULL, X86(ds_f32_to_bf16_avx512)},
     {ds_gemv_f32_scalar, X86(ds_gemv_f32_avx2), X86(ds_gemv_f32_avx512)},
     {NULL, NULL, NULL},
     DS_ACT_NONE, 0, NULL},
    {DS_GGML_F16, 1, 2,
     {ds_f16_to_f32_scalar, X86(ds_f16_to_f32_avx2), X86(ds_f16_to_f32_avx512)},
     {ds_f16_to_bf16_scalar, NULL, X86(ds_f16_to_bf16_avx512)},
     {ds_gemv_f16_scalar, X86(ds_gemv_f16_avx2), X86(ds_gemv_f16_avx512)},
     {NULL, NULL, NULL},
     DS_ACT_NONE, 0, NULL},
    {DS_GGML_BF16, 1, 2,
     {ds_bf16_to_f32_scalar, X86(ds_bf16_to_f32_avx2), X86(ds_bf16_to_f32_avx512)},
     {ds_bf16_to_bf16_scalar, NULL, NULL},
     {ds_gemv_bf16_scalar, X86(ds_gemv_bf16_avx2), X86(ds_gemv_bf16_avx512)},
     {NULL, NULL, NULL},
     DS_ACT_NONE, 0, NULL},
    {DS_GGML_Q8_0, 32, 34,
     {ds_q8_0_to_f32_scalar, X86(ds_q8_0_to_f32_avx2), X86(ds_q8_0_to_f32_avx512)},
     {ds_q8_0_to_bf16_scalar, NULL, X86(ds_q8_0_to_bf16_avx512)},
     {ds_gemv_q8_0_f32_scalar, X86(ds_gemv_q8_0_f32_avx2), X86(ds_gemv_q8_0_f32_avx512)},
     {ds_gemv_q8_0_q8_scalar, X86(ds_gemv_q8_0_q8_avx2), X86(ds_gemv_q8_0_q8_avx512)},
     DS_ACT_Q8_0, 0, ds_pack_q8_0_bf16_16rows},
};

static const ds_type_kernels *const k_quant_types[] = {
    &ds_kernels_q4_0, &ds_kernels_q4_1, &ds_kernels_q5_0, &ds_kernels_q5_1, &ds_kernels_q2k,
    &ds_kernels_q3k, &ds_kernels_q4k, &ds_kernels_q5k, &ds_kernels_q6k,
};

const ds_type_kernels *ds_type_kernels_get(uint32_t type)
{
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].type == type)
            return &k_types[i];
    for (size_t i = 0; i < sizeof k_quant_types / sizeof k_quant_types[0]; i++)
        if (k_quant_types[i]->type == type)
            return k_quant_types[i];
    return NULL;
}

#define PICK(field)                                   \
    for (int i = (int)isa; i >= 0; i--)               \
        if (i < DS_ISA_COUNT && tk->field[i])         \
            return tk->field[i];                      \
    return NULL

ds_to_f32_fn ds_pick_to_f32(const ds_type_kernels *tk, ds_isa isa) { PICK(to_f32); }
ds_to_bf16_fn ds_pick_to_bf16(const ds_type_kernels *tk, ds_isa isa) { PICK(to_bf16); }
ds_gemv_f32_fn ds_pick_gemv_f32(const ds_type_kernels *tk, ds_isa isa) { PICK(gemv_f32); }
ds_gemv_q8_fn ds_pick_gemv_q8(const ds_type_kernels *tk, ds_isa isa) { PICK(gemv_q8); }

bool ds_dequant_row_isa(ds_isa isa, uint32_t type, const void *src, float *dst, int64_t n)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    if (!tk || n < 0 || n % tk->block_elems)
        return false;
    ds_pick_to_f32(tk, ds_isa_clamp(isa))(src, dst, n);
    return true;
}

bool ds_dequant_row_bf16_isa(ds_isa isa, uint32_t type, const void *src, uint16_t *dst,
                             int64_t n)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    if (!tk || n < 0 || n % tk->block_elems)
        return false;
    ds_pick_to_bf16(tk, ds_isa_clamp(isa))(src, dst, n);
    return true;
}

bool ds_dequant_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    return ds_dequant_row_isa(ds_isa_best(), type, src, dst, n);
}

void ds_f32_to_bf16_row(ds_isa isa, const float *src, uint16_t *dst, int64_t n)
{
    const ds_type_kernels *tk = ds_type_kernels_get(DS_GGML_F32);
    ds_pick_to_bf16(tk, ds_isa_clamp(isa))(src, dst, n);
}

/* ---- activation quantization -------------------------------------------------------------- */

static void quantize_act_q8_scalar(const float *x, int8_t *xq, float *xd, int64_t n)
{
    for (int64_t b = 0; b < n / DS_QK8; b++) {
        const float *xb = x + b * DS_QK8;
        float amax = 0.0f;
        for (int i = 0; i < DS_QK8; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int i = 0; i < DS_QK8; i++)
            xq[b * DS_QK8 + i] = (int8_t)lrintf(xb[i] * id);   /* current mode: nearest even */
        xd[b] = ds_f16_to_f32(ds_f32_to_f16(d));
    }
}

#if DS_KERNELS_X86
DS_TARGET_AVX512 static void quantize_act_q8_avx512(const float *x, int8_t *xq, float *xd,
                                                    int64_t n)
{
    for (int64_t b = 0; b < n / DS_QK8; b++) {
        const float *xb = x + b * DS_QK8;
        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
        float amax = _mm512_reduce_max_ps(m);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));   /* MXCSR: nearest even */
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)(xq + b * DS_QK8), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(xq + b * DS_QK8 + 16), _mm512_cvtsepi32_epi8(q1));
        xd[b] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    }
}
#endif

void ds_quantize_act_q8(ds_isa isa, const float *x, int8_t *xq, float *xd, int64_t n)
{
#if DS_KERNELS_X86
    if (ds_isa_clamp(isa) >= DS_ISA_AVX512) {
        quantize_act_q8_avx512(x, xq, xd, n);
        return;
    }
#endif
    quantize_act_q8_scalar(x, xq, xd, n);
}

void ds_quantize_act_q8_1(ds_isa isa, const float *x, int8_t *xq, float *xd, float *xs,
                          int64_t n)
{
    ds_quantize_act_q8(isa, x, xq, xd, n);
    for (int64_t b = 0; b < n / DS_QK8; b++) {
        int32_t sum = 0;
        for (int i = 0; i < DS_QK8; i++)
            sum += xq[b * DS_QK8 + i];
        xs[b] = xd[b] * (float)sum;   /* exact: 11-bit scale times a sum of at most 12 bits */
    }
}

/* ---- quantized activation buffers --------------------------------------------------------- */

static size_t up64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Byte sizes of the parts of a buffer: d, s, bsums, q (each 64-byte aligned). */
static void qact_parts(ds_act_kind kind, int64_t M, int64_t k, size_t part[4])
{
    size_t nb = kind == DS_ACT_Q8_K ? (size_t)(k / DS_QK_K) : (size_t)(k / DS_QK8);
    part[0] = up64((size_t)M * nb * sizeof(float));
    part[1] = kind == DS_ACT_Q8_1 ? part[0] : 0;
    part[2] = kind == DS_ACT_Q8_K ? up64((size_t)M * (size_t)(k / 16) * sizeof(int16_t)) : 0;
    part[3] = up64((size_t)M * (size_t)k);
}

size_t ds_qact_size(ds_act_kind kind, int64_t M, int64_t k)
{
    size_t part[4];
    qact_parts(kind, M, k, part);
    return part[0] + part[1] + part[2] + part[3];
}

void ds_qact_quantize(ds_isa isa, ds_act_kind kind, const float *X, int64_t M, int64_t ldx,
                      int64_t k, void *buf, ds_qact *out)
{
    size_t part[4];
    qact_parts(kind, M, k, part);
    char *p = buf;
    float *d = (float *)p;
    float *s = part[1] ? (float *)(p + part[0]) : NULL;
    int16_t *bs = part[2] ? (int16_t *)(p + part[0] + part[1]) : NULL;
    int8_t *q = (int8_t *)(p + part[0] + part[1] + part[2]);
    for (int64_t m = 0; m < M; m++) {
        const float *x = X + m * ldx;
        switch (kind) {
        case DS_ACT_Q8_K:
            ds_quantize_act_q8k(isa, x, q + m * k, d + m * (k / DS_QK_K), bs + m * (k / 16), k);
            break;
        case DS_ACT_Q8_1:
            ds_quantize_act_q8_1(isa, x, q + m * k, d + m * (k / DS_QK8), s + m * (k / DS_QK8),
                                 k);
            break;
        default:
            ds_quantize_act_q8(isa, x, q + m * k, d + m * (k / DS_QK8), k);
            break;
        }
    }
    *out = (ds_qact){q, d, s, bs};
}

ds_qact ds_qact_rows(const ds_qact *a, int64_t k, int m0)
{
    ds_qact r = *a;
    r.q += (int64_t)m0 * k;
    if (a->bsums) {
        r.d += (int64_t)m0 * (k / DS_QK_K);
        r.bsums += (int64_t)m0 * (k / 16);
    } else {
        r.d += (int64_t)m0 * (k / DS_QK8);
        if (r.s)
            r.s += (int64_t)m0 * (k / DS_QK8);
    }
    return r;
}
