/*
 * lib/kernels/cpu.c — CPU feature detection (cpuid + xgetbv) and ISA levels.
 *
 * A feature counts only when the CPU has it AND the OS saves the register state it needs
 * (XCR0: SSE/AVX state for AVX2, plus opmask/ZMM state for AVX-512). Detection runs once; the
 * result is immutable afterwards (a benign, idempotent race on first use).
 */
#include "kernels/kernels_impl.h"

#include <stdatomic.h>
#include <string.h>

#if DS_KERNELS_X86
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(ds_cpu_features *f)
{
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    bool fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = read_xcr0();
    bool os_avx = (xcr0 & 0x6) == 0x6;               /* XMM and YMM state */
    bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_avx)
        return;
    f->fma = fma;
    f->f16c = f16c;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub7 = a;
    f->avx2 = (b >> 5) & 1;
    if (os_avx512) {
        f->avx512f = (b >> 16) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512vnni = f->avx512f && ((c >> 11) & 1);
        if (max_sub7 >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f->avx512bf16 = f->avx512f && ((a >> 5) & 1);
        }
    }
}
#else
static void detect(ds_cpu_features *f)
{
    memset(f, 0, sizeof *f);
}
#endif

/* The one process-wide value in the library: a memo of what the CPU supports. It is written
 * once (every thread that races here computes the same bits from cpuid) and never changes,
 * so it is a cached constant, not mutable state; everything that varies (the ISA level in
 * use) lives in the ds_mm context. */
static ds_cpu_features g_features;
static atomic_int g_state;   /* 0: not yet, 2: g_features valid */

const ds_cpu_features *ds_cpu_get(void)
{
    if (atomic_load_explicit(&g_state, memory_order_acquire) != 2) {
        ds_cpu_features f;
        detect(&f);
        /* Every thread computes the same value; the first to claim the slot publishes it. */
        int expected = 0;
        if (atomic_compare_exchange_strong(&g_state, &expected, 1)) {
            g_features = f;
            atomic_store_explicit(&g_state, 2, memory_order_release);
        } else {
            while (atomic_load_explicit(&g_state, memory_order_acquire) != 2) {
            }
        }
    }
    return &g_features;
}

void ds_cpu_detect(ds_cpu_features *out)
{
    if (out)
        *out = *ds_cpu_get();
}

ds_isa ds_isa_best(void)
{
    const ds_cpu_features *f = ds_cpu_get();
    bool avx2 = f->avx2 && f->fma && f->f16c;
    if (avx2 && f->avx512f && f->avx512bw && f->avx512vl)
        return DS_ISA_AVX512;
    if (avx2)
        return DS_ISA_AVX2;
    return DS_ISA_SCALAR;
}

ds_isa ds_isa_clamp(ds_isa isa)
{
    ds_isa best = ds_isa_best();
    if ((int)isa < 0 || (int)isa > (int)best)
        return best;
    return isa;
}

const char *ds_isa_name(ds_isa isa)
{
    switch (isa) {
    case DS_ISA_SCALAR: return "scalar";
    case DS_ISA_AVX2: return "avx2";
    case DS_ISA_AVX512: return "avx512";
    }
    return "unknown";
}
