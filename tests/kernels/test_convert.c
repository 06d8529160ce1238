/*
 * tests/kernels/test_convert.c — f16/bf16 conversions (bit-exact on special values, ties,
 * subnormals), dequantization of F16/BF16/Q8_0 at every ISA level against the reference
 * decoders, and the Q8_0-style activation quantizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include "kref.h"

/* ---- f16 -> f32 ----------------------------------------------------------------------- */

static uint32_t expect_f16_to_f32_bits(uint16_t h)
{
    int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 31 && mant)   /* NaN: made quiet (as F16C does), payload in the top bits */
        return ((uint32_t)(h & 0x8000) << 16) | 0x7FC00000u | ((uint32_t)mant << 13);
    return kr_bits((float)kr_f16_value(h));
}

static void test_f16_to_f32_exhaustive(void **state)
{
    (void)state;
    static uint16_t all[65536];
    static float out[65536];
    for (uint32_t h = 0; h < 65536; h++) {
        all[h] = (uint16_t)h;
        uint32_t got = kr_bits(ds_f16_to_f32((uint16_t)h));
        uint32_t want = expect_f16_to_f32_bits((uint16_t)h);
        if (got != want)
            fail_msg("f16 %04x -> %08x, want %08x", h, got, want);
    }
    /* every ISA level's row converter agrees bit for bit (incl. subnormals, inf, NaN) */
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        for (int64_t n = 65536; n >= 65536 - 17; n -= 17) {   /* odd tails too */
            memset(out, 0, sizeof out);
            assert_true(ds_dequant_row_isa((ds_isa)isa, DS_GGML_F16, all, out, n));
            for (int64_t i = 0; i < n; i++)
                if (kr_bits(out[i]) != expect_f16_to_f32_bits(all[i]))
                    fail_msg("isa %s: f16 %04x -> %08x", ds_isa_name((ds_isa)isa),
                             (unsigned)all[i], kr_bits(out[i]));
        }
    }
}

/* ---- f32 -> f16 ----------------------------------------------------------------------- */

/* Reference: nearest f16 by search over all finite f16 values (ties to the even code). */
static uint16_t ref_f32_to_f16(float f)
{
    if (isnan(f))
        return 0;   /* not used */
    double v = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (v >= 65520.0)
        return sign | 0x7C00;
    /* positive finite codes 0..0x7BFF are increasing in value */
    int lo = 0, hi = 0x7BFF;
    while (lo < hi) {          /* first code with value >= v */
        int mid = (lo + hi) / 2;
        if (kr_f16_value((uint16_t)mid) >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    int c = lo;
    if (c > 0 && kr_f16_value((uint16_t)c) != v) {
        double up = kr_f16_value((uint16_t)c) - v, down = v - kr_f16_value((uint16_t)(c - 1));
        if (down < up || (down == up && ((c - 1) & 1) == 0))
            c = c - 1;
    }
    return sign | (uint16_t)c;
}

static void test_f32_to_f16(void **state)
{
    (void)state;
    struct { uint32_t in; uint16_t out; } cases[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000},              /* +-0 */
        {0x3F800000, 0x3C00}, {0xBF800000, 0xBC00},              /* +-1 */
        {0x477FE000, 0x7BFF},                                    /* 65504 max */
        {0x477FEFFF, 0x7BFF},                                    /* just below 65520 */
        {0x477FF000, 0x7C00},                                    /* 65520 -> inf (tie to even) */
        {0x7F800000, 0x7C00}, {0xFF800000, 0xFC00},              /* inf */
        {0x7F7FFFFF, 0x7C00},                                    /* FLT_MAX -> inf */
        {0x7FC00000, 0x7E00}, {0xFFC00000, 0xFE00},              /* quiet NaN */
        {0x7F800001, 0x7E00},                                    /* signalling NaN made quiet */
        {0x7FFFE000, 0x7FFF},                                    /* NaN payload kept (top bits) */
        {0x33800000, 0x0001},                                    /* 2^-24 min subnormal */
        {0x33000000, 0x0000},                                    /* 2^-25: tie -> even 0 */
        {0x33000001, 0x0001},                                    /* just above the tie */
        {0x80000001, 0x8000},                                    /* f32 subnormal -> -0 */
        {0x33C00000, 0x0002},                                    /* 1.5 * 2^-24: tie -> 2 */
        {0x34200000, 0x0002},                                    /* 2.5 * 2^-24: tie -> 2 */
        {0x34600000, 0x0004},                                    /* 3.5 * 2^-24: tie -> 4 */
        {0x387FE000, 0x0400},                                    /* 1023.5 * 2^-24 -> 2^-14 */
        {0x387FC000, 0x03FF},                                    /* 1023 * 2^-24 max subnormal */
        {0x387FA000, 0x03FE},                                    /* 1022.5 * 2^-24: tie -> 1022 */
        {0x38800000, 0x0400},                                    /* 2^-14 min normal */
        {0x3F801000, 0x3C00},                                    /* 1 + 2^-11: tie -> 1 */
        {0x3F803000, 0x3C02},                                    /* 1 + 3*2^-11: tie -> even up */
        {0x3F801001, 0x3C01},                                    /* just above a tie */
        {0x3FFFF000, 0x4000},                                    /* rounding carries exponent */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = ds_f32_to_f16(kr_float(cases[i].in));
        if (got != cases[i].out)
            fail_msg("case %zu: f32 %08x -> f16 %04x, want %04x", i, cases[i].in, got,
                     cases[i].out);
    }
    /* round trip of every non-NaN f16 */
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1F) == 31 && (h & 0x3FF))
            continue;
        uint16_t back = ds_f32_to_f16(ds_f16_to_f32((uint16_t)h));
        if (back != h)
            fail_msg("round trip %04x -> %04x", h, back);
    }
    /* random values across the f16 range, plus exact midpoints between neighbours */
    kr_rng r = {42};
    for (int i = 0; i < 200000; i++) {
        float f;
        if (i & 1) {
            int e = (int)(kr_next(&r) % 44) - 28;   /* 2^-28 .. 2^15 */
            f = (float)ldexp((double)kr_uniform(&r), e);
        } else {
            uint16_t h = (uint16_t)(kr_next(&r) % 0x7BFF);
            f = (float)((kr_f16_value(h) + kr_f16_value((uint16_t)(h + 1))) / 2);
            if (kr_next(&r) & 1)
                f = -f;
        }
        uint16_t got = ds_f32_to_f16(f), want = ref_f32_to_f16(f);
        if (got != want)
            fail_msg("f32 %a (%08x) -> %04x, want %04x", (double)f, kr_bits(f), got, want);
    }
}

/* ---- bf16 ----------------------------------------------------------------------------- */


static void test_bf16(void **state)
{
    (void)state;
    struct { uint32_t in; uint16_t out; } cases[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, {0x3F800000, 0x3F80},
        {0x3F808000, 0x3F80},                     /* tie -> even (down) */
        {0x3F818000, 0x3F82},                     /* tie -> even (up) */
        {0x3F808001, 0x3F81},
        {0x7F7F8000, 0x7F80},                     /* tie at the top -> inf */
        {0x7F7F7FFF, 0x7F7F},
        {0x7F800000, 0x7F80}, {0xFF800000, 0xFF80},
        {0x7F800001, 0x7FC0},                     /* sNaN -> quiet NaN */
        {0xFFC00001, 0xFFC0}, {0x7FFF0000, 0x7FFF},
        {0x00008000, 0x0000}, {0x00018000, 0x0002}, {0x00010000, 0x0001},   /* subnormals */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = ds_f32_to_bf16(kr_float(cases[i].in));
        if (got != cases[i].out)
            fail_msg("case %zu: f32 %08x -> bf16 %04x, want %04x", i, cases[i].in, got,
                     cases[i].out);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ds_bf16_to_f32((uint16_t)h);
        assert_int_equal(kr_bits(f), h << 16);
    }
    /* random bit patterns through scalar and every row converter */
    enum { N = 4099 };
    static float in[N];
    static uint16_t out[N];
    kr_rng r = {7};
    for (int rep = 0; rep < 40; rep++) {
        for (int i = 0; i < N; i++) {
            uint32_t u = (uint32_t)kr_next(&r);
            if (i % 5 == 0)
                u = (u & 0xFFFF0000u) | 0x8000u;  /* exact ties */
            in[i] = kr_float(u);
        }
        for (int i = 0; i < N; i++) {
            uint16_t want = kr_ref_bf16(in[i]);
            if (ds_f32_to_bf16(in[i]) != want)
                fail_msg("f32 %08x -> %04x, want %04x", kr_bits(in[i]), ds_f32_to_bf16(in[i]),
                         want);
        }
        for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
            int64_t n = N - rep % 16;
            ds_f32_to_bf16_row((ds_isa)isa, in, out, n);
            for (int64_t i = 0; i < n; i++)
                if (out[i] != kr_ref_bf16(in[i]))
                    fail_msg("isa %s: f32 %08x -> %04x", ds_isa_name((ds_isa)isa), kr_bits(in[i]),
                             out[i]);
        }
    }
}

/* ---- dequantization ---------------------------------------------------------------------- */

static void check_dequant(uint32_t type, int64_t k, uint64_t seed)
{
    size_t rb = kr_row_bytes(type, k);
    uint8_t *row = malloc(rb);
    double *ref = malloc(sizeof(double) * k);
    float *out = malloc(sizeof(float) * k);
    uint16_t *out16 = malloc(sizeof(uint16_t) * k);
    kr_rng r = {seed};
    kr_fill_weights(&r, type, 1, k, row, rb, ref);
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        memset(out, 0xFF, sizeof(float) * k);
        assert_true(ds_dequant_row_isa((ds_isa)isa, type, row, out, k));
        for (int64_t i = 0; i < k; i++)
            if ((double)out[i] != ref[i])
                fail_msg("%s isa %s: element %lld = %.9g, want %.9g", kr_type_name(type),
                         ds_isa_name((ds_isa)isa), (long long)i, out[i], ref[i]);
        assert_true(ds_dequant_row_bf16_isa((ds_isa)isa, type, row, out16, k));
        for (int64_t i = 0; i < k; i++)
            if (out16[i] != kr_ref_bf16((float)ref[i]))
                fail_msg("%s isa %s: bf16 element %lld = %04x, want %04x", kr_type_name(type),
                         ds_isa_name((ds_isa)isa), (long long)i, out16[i],
                         kr_ref_bf16((float)ref[i]));
    }
    assert_true(ds_dequant_row(type, row, out, k));
    free(row);
    free(ref);
    free(out);
    free(out16);
}

static void test_dequant(void **state)
{
    (void)state;
    const int64_t ks[] = {32, 96, 160, 1056, 4128};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        check_dequant(DS_GGML_F32, ks[i] + 3, 1 + i);
        check_dequant(DS_GGML_F16, ks[i] + 5, 11 + i);
        check_dequant(DS_GGML_BF16, ks[i] + 7, 21 + i);
        check_dequant(DS_GGML_Q8_0, ks[i], 31 + i);
    }
}

/* Q8_0 blocks with hand-picked scales: subnormal, negative, zero, inf. */
static void test_q8_0_special(void **state)
{
    (void)state;
    const uint16_t ds[] = {0x0001, 0x8400, 0x0000, 0x3C00, 0x7BFF, 0xBC00};
    uint8_t blocks[6 * 34];
    for (int b = 0; b < 6; b++) {
        blocks[34 * b] = (uint8_t)ds[b];
        blocks[34 * b + 1] = (uint8_t)(ds[b] >> 8);
        for (int i = 0; i < 32; i++)
            blocks[34 * b + 2 + i] = (uint8_t)(i * 8 - 128);   /* -128 .. 120 */
    }
    double ref[6 * 32];
    for (int b = 0; b < 6; b++)
        kr_q8_0_decode(blocks + 34 * b, ref + 32 * b);
    float out[6 * 32];
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++) {
        assert_true(ds_dequant_row_isa((ds_isa)isa, DS_GGML_Q8_0, blocks, out, 6 * 32));
        for (int i = 0; i < 6 * 32; i++)
            if ((double)out[i] != ref[i])
                fail_msg("isa %s: element %d = %.9g, want %.9g", ds_isa_name((ds_isa)isa), i,
                         out[i], ref[i]);
    }
}

static void test_dequant_unsupported(void **state)
{
    (void)state;
    uint8_t buf[256] = {0};
    float out[64];
    assert_false(ds_dequant_row(DS_GGML_IQ2_XXS, buf, out, 64));
    assert_false(ds_dequant_row(DS_GGML_Q8_K, buf, out, 64));   /* activation-only type */
    assert_false(ds_dequant_row(DS_GGML_Q4_K, buf, out, 128));  /* not a block multiple */
    assert_false(ds_dequant_row(999, buf, out, 32));
    assert_false(ds_dequant_row(DS_GGML_Q8_0, buf, out, 33));   /* not a block multiple */
}

/* ---- activation quantization ----------------------------------------------------------- */

static void test_quantize_act(void **state)
{
    (void)state;
    enum { K = 32 * 67 };
    static float x[K];
    static int8_t q[DS_ISA_COUNT][K];
    static float d[DS_ISA_COUNT][K / 32];
    kr_rng r = {99};
    for (int i = 0; i < K; i++)
        x[i] = kr_uniform(&r) * (float)ldexp(1.0, (int)(i / 32 % 20) - 10);
    for (int i = 64; i < 96; i++)
        x[i] = 0.0f;                   /* an all-zero block */
    x[100] = 1e30f;                    /* a block whose scale overflows f16 */
    for (int isa = 0; isa <= (int)ds_isa_best(); isa++)
        ds_quantize_act_q8((ds_isa)isa, x, q[isa], d[isa], K);
    for (int b = 0; b < K / 32; b++) {
        double amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmax(amax, fabs(x[32 * b + i]));
        float dd = (float)amax / 127.0f;
        float want_d = ds_f16_to_f32(ds_f32_to_f16(dd));
        assert_true(kr_bits(d[0][b]) == kr_bits(want_d));
        for (int i = 0; i < 32; i++) {
            int64_t j = 32 * b + i;
            if (amax == 0) {
                assert_int_equal(q[0][j], 0);
                continue;
            }
            /* |x - q * amax/127| <= amax/254 (nearest integer) */
            double err = fabs(x[j] - q[0][j] * amax / 127.0);
            if (err > amax / 254.0 * (1 + 1e-6))
                fail_msg("block %d elem %d: x=%g q=%d amax=%g", b, i, x[j], q[0][j], amax);
        }
    }
    for (int isa = 1; isa <= (int)ds_isa_best(); isa++) {
        assert_memory_equal(q[isa], q[0], K);
        assert_memory_equal(d[isa], d[0], sizeof d[0]);
    }
}

/* ds_pack_f32_bf16_16rows at every level puts element (k, n) of a K x N weight (row n of the
 * plain f32 input), rounded as ds_f32_to_bf16, where oneDNN's BA16a64b2a layout has it:
 * (n/64)*(K*64) + (k/32)*2048 + ((k%32)/2)*128 + (n%64)*2 + k%2. Values: random f32 of all
 * magnitudes (no denormals: see pack_bf16.c), ties, infinities and NaNs. */
static void test_pack_bf16(void **state)
{
    (void)state;
    enum { K = 96, N = 64 };
    static float src[N * K];
    static uint16_t want[N * K], got[N * K];
    uint64_t x = 12345;
    for (int i = 0; i < N * K; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t u = (uint32_t)(x >> 11);
        if (((u >> 23) & 0xFF) == 0)
            u |= 1u << 23;                       /* no denormals */
        if (i % 7 == 0)
            u = (u & 0xFFFF0000u) | 0x8000u;     /* exact ties */
        memcpy(&src[i], &u, sizeof u);
    }
    src[5] = INFINITY, src[6] = -INFINITY, src[7] = NAN;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            want[(k / 32) * 2048 + ((k % 32) / 2) * 128 + (n % 64) * 2 + k % 2] =
                ds_f32_to_bf16(src[n * K + k]);
    for (int lvl = 0; lvl <= (int)ds_isa_best(); lvl++) {
        if (ds_isa_clamp((ds_isa)lvl) != (ds_isa)lvl)
            continue;
        memset(got, 0xFF, sizeof got);
        for (int sub = 0; sub < 4; sub++)
            ds_pack_f32_bf16_16rows((ds_isa)lvl, src + sub * 16 * K, K, K, got, sub);
        assert_memory_equal(got, want, sizeof want);
    }
}

/* The fused packings (ds_pack_<type>_bf16_16rows, where the CPU has AVX512-BF16) equal
 * dequantizing to f32 and packing with the scalar ds_pack_f32_bf16_16rows, for 16 and for 5
 * valid rows. The weights: 32 rows (the last 16 are the prefetch pointer's) of K elements,
 * rb bytes each, random bytes with every f16 scale (at the `nscale` offsets `scale_at` of each
 * block of `bb` bytes) made finite, of all signs and sizes. */
static void check_fused_pack(uint32_t type, const char *name, ds_pack16_fn fn, int64_t K,
                             size_t bb, int64_t be, const int *scale_at, int nscale, uint64_t seed)
{
    const size_t rb = (size_t)(K / be) * bb;
    uint8_t *w = malloc(32 * rb);
    float *f = calloc(16 * (size_t)K, sizeof(float));
    uint16_t *want = malloc(64 * (size_t)K * 2), *got = malloc(64 * (size_t)K * 2);
    assert_true(w && f && want && got);
    uint64_t x = seed;
    for (size_t i = 0; i < 32 * rb; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w[i] = (uint8_t)x;
    }
    for (size_t b = 0; b < 32 * rb / bb; b++)
        for (int j = 0; j < nscale; j++) {
            uint8_t *hi = w + b * bb + scale_at[j] + 1;
            *hi = (uint8_t)((*hi & 0x80) | (*hi % 0x7B));
        }
    for (int nrows = 16; nrows >= 5; nrows -= 11) {
        memset(f, 0, 16 * (size_t)K * sizeof(float));
        for (int r = 0; r < nrows; r++)
            assert_true(ds_dequant_row(type, w + r * rb, f + r * K, K));
        memset(want, 0xFF, 64 * (size_t)K * 2);
        memset(got, 0xFF, 64 * (size_t)K * 2);
        ds_pack_f32_bf16_16rows(DS_ISA_SCALAR, f, K, K, want, 1);
        if (!fn(ds_isa_best(), w, rb, nrows, K, got, 1, w + 16 * rb)) {
            print_message("SKIPPED: no AVX512-BF16 on this CPU (fused %s packing)\n", name);
            break;
        }
        assert_memory_equal(got, want, 64 * (size_t)K * 2);
    }
    free(w);
    free(f);
    free(want);
    free(got);
}

/* The type table's direct packer of `type` (mm.c uses it for the prefill tiles). */
static ds_pack16_fn pack16_of(uint32_t type)
{
    const ds_type_kernels *tk = ds_type_kernels_get(type);
    assert_non_null(tk);
    assert_non_null(tk->pack16);
    return tk->pack16;
}

static void test_pack_fused(void **state)
{
    (void)state;
    static const int q8_0_d[] = {0}, q4_k_d[] = {0, 2};   /* d; d and dmin */
    check_fused_pack(DS_GGML_Q8_0, "Q8_0", pack16_of(DS_GGML_Q8_0), 96, 34, 32, q8_0_d, 1, 777);
    /* two super-blocks a row: 768 random scale/min bytes */
    check_fused_pack(DS_GGML_Q4_K, "Q4_K", pack16_of(DS_GGML_Q4_K), 512, 144, 256, q4_k_d, 2,
                     4242);
    /* the legacy types: d (and m) random f16, every quant value, 3 blocks a row */
    static const int lq_d[] = {0}, lq_dm[] = {0, 2};
    check_fused_pack(DS_GGML_Q4_0, "Q4_0", pack16_of(DS_GGML_Q4_0), 96, 18, 32, lq_d, 1, 11);
    check_fused_pack(DS_GGML_Q4_1, "Q4_1", pack16_of(DS_GGML_Q4_1), 96, 20, 32, lq_dm, 2, 12);
    check_fused_pack(DS_GGML_Q5_0, "Q5_0", pack16_of(DS_GGML_Q5_0), 96, 22, 32, lq_d, 1, 13);
    check_fused_pack(DS_GGML_Q5_1, "Q5_1", pack16_of(DS_GGML_Q5_1), 96, 24, 32, lq_dm, 2, 14);
    /* a level without AVX512-BF16 does nothing and says so (mm.c then goes through f32) */
    uint16_t dst[64 * 32];
    uint8_t w[34 * 16] = {0};
    assert_false(pack16_of(DS_GGML_Q5_0)(DS_ISA_AVX2, w, 22, 16, 32, dst, 0, NULL));
    assert_false(pack16_of(DS_GGML_Q8_0)(DS_ISA_SCALAR, w, 34, 16, 32, dst, 0, NULL));
}

static void test_cpu(void **state)
{
    (void)state;
    ds_cpu_features f;
    ds_cpu_detect(&f);
    ds_isa best = ds_isa_best();
    if (best >= DS_ISA_AVX2)
        assert_true(f.avx2 && f.fma && f.f16c);
    if (best == DS_ISA_AVX512)
        assert_true(f.avx512f && f.avx512bw && f.avx512vl);
    assert_int_equal(ds_isa_clamp((ds_isa)7), best);
    assert_int_equal(ds_isa_clamp(DS_ISA_SCALAR), DS_ISA_SCALAR);
    assert_string_equal(ds_isa_name(DS_ISA_AVX2), "avx2");
    print_message("cpu: best=%s avx2=%d fma=%d f16c=%d avx512 f/bw/vl=%d/%d/%d vnni=%d bf16=%d\n",
                  ds_isa_name(best), f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl,
                  f.avx512vnni, f.avx512bf16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_f16_to_f32_exhaustive),
        cmocka_unit_test(test_f32_to_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_dequant),
        cmocka_unit_test(test_q8_0_special),
        cmocka_unit_test(test_dequant_unsupported),
        cmocka_unit_test(test_quantize_act),
        cmocka_unit_test(test_pack_bf16),
        cmocka_unit_test(test_pack_fused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
