/*
 * tests/kernels/bench_quant.c — GEMV (M = 1) weight bandwidth of ds_mm_run per weight type,
 * thread count and precision, on a K x N matrix from DRAM (default 7168 x 16384), plus a plain
 * read loop for reference. The machine may be shared: each figure is the best of `reps` runs.
 *
 * Usage: bench-kernels-quant [K N reps [TYPE ...]]   (types by ggml name, default Q4_K Q8_0)
 * The weights live in transparent huge pages (MADV_HUGEPAGE, like `--load hugepages`); with
 * DS_BENCH_4K_PAGES=1 in 4 KiB pages (measured: 2-thread Q8_0 from DRAM 36-41 GB/s instead of
 * 54-56 on the 2026-12-06 VM: TLB misses across eight streams).
 * Registered as a meson benchmark (meson test --benchmark), not run by the test suites.
 */
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "format/ggml_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t type_by_name(const char *s)
{
    for (uint32_t t = 0; t < DS_GGML_TYPE_COUNT; t++)
        if (ds_ggml_type_known(t) && strcmp(ds_ggml_type_name(t), s) == 0)
            return t;
    return UINT32_MAX;
}

/* Plain read bandwidth (sum of 64-bit words) with nt threads, best of reps. */
static double read_bw(const uint64_t *p, size_t n, int nt, int reps)
{
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        uint64_t s = 0;
#pragma omp parallel for num_threads(nt) reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += p[i];
        double t = now() - t0;
        sink += s;
        if (t < best)
            best = t;
    }
    (void)sink;
    return (double)n * 8 / best / 1e9;
}

int main(int argc, char **argv)
{
    int64_t K = argc > 2 ? atoll(argv[1]) : 7168, N = argc > 2 ? atoll(argv[2]) : 16384;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    uint32_t types[16] = {DS_GGML_Q4_K, DS_GGML_Q8_0};
    int ntypes = 2;
    if (argc > 4) {
        ntypes = 0;
        for (int i = 4; i < argc && ntypes < 16; i++)
            if ((types[ntypes] = type_by_name(argv[i])) != UINT32_MAX)
                ntypes++;
    }
    float *x = malloc(sizeof(float) * K), *y = malloc(sizeof(float) * N);
    for (int64_t i = 0; i < K; i++)
        x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    printf("GEMV M=1, K=%lld, N=%lld, best of %d runs (GB/s of weight bytes)\n", (long long)K,
           (long long)N, reps);
    for (int ti = 0; ti < ntypes; ti++) {
        const ds_ggml_type_traits *tr = ds_ggml_type_get(types[ti]);
        size_t rb = (size_t)(K / tr->block_elems) * tr->block_bytes, bytes = rb * (size_t)N;
        int copies = (int)((1536ull << 20) / bytes) + 1;
        size_t total = (((bytes + 63) & ~(size_t)63) * copies + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
        uint8_t *w = aligned_alloc(2u << 20, total);
        if (!getenv("DS_BENCH_4K_PAGES"))
            madvise(w, total, MADV_HUGEPAGE); /* as ds_model's hugepages load mode */
        size_t stride = (bytes + 63) & ~(size_t)63;
        /* random bytes with small f16 scales: any bit pattern is a valid block */
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < stride * copies; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            w[i] = (uint8_t)s;
        }
        if (types[ti] == DS_GGML_Q8_0)
            for (int c = 0; c < copies; c++)
                for (size_t b = 0; b < bytes; b += 34)
                    w[c * stride + b + 1] = 0x20;   /* f16 d in a sane range */
        ds_weight W = {.name = "bench", .type = types[ti], .ne = {K, N, 1, 1}, .row_bytes = rb,
                       .nbytes = bytes, .data = w};
        /* lay 1: the same weights repacked into the R16 layout (FAST precision only) */
        const int lays = ds_r16_type(types[ti]) && N % 16 == 0 &&
                         ds_r16_gemv(types[ti], ds_isa_best()) ? 2 : 1;
        uint8_t *scr = malloc(16 * rb);
        for (int lay = 0; lay < lays; lay++)
        for (int prec = 0; prec <= 1 - lay; prec++)
            for (int nt = 1; nt <= 2; nt++) {
                if (lay == 1 && prec == 0 && nt == 1) {
                    for (int c = 0; c < copies; c++)
                        for (int64_t g = 0; g < N / 16; g++) {
                            uint8_t *gp = w + (size_t)c * stride + (size_t)g * 16 * rb;
                            memcpy(scr, gp, 16 * rb);
                            ds_r16_pack_group(types[ti], scr, rb, K, gp);
                        }
                    W.layout = DS_LAYOUT_R16;
                }
                ds_mm *mm;
                ds_err err;
                if (ds_mm_create(&mm, nt, prec, &err) != DS_OK) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                double best[2] = {1e30, 1e30};
                for (int warm = 0; warm < 2; warm++)
                    for (int rep = 0; rep < reps + 1; rep++) {
                        W.data = w + (warm ? 0 : (size_t)(rep % copies) * stride);
                        double t0 = now();
                        if (ds_mm_run(mm, &W, 0, x, 1, K, y, N, &err) != DS_OK) {
                            fprintf(stderr, "%s\n", err.msg);
                            return 1;
                        }
                        double t = now() - t0;
                        if (rep > 0 && t < best[warm])   /* the first run warms up */
                            best[warm] = t;
                    }
                printf("%-5s %-4s%s %d thread%s: cold %6.2f GB/s (%.2f ms)  warm %6.2f GB/s  "
                       "[%.1f MB]\n", tr->name, prec == DS_PRECISION_FAST ? "fast" : "f32",
                       lay ? " r16" : "", nt,
                       nt > 1 ? "s" : " ", (double)bytes / best[0] / 1e9, best[0] * 1e3,
                       (double)bytes / best[1] / 1e9, (double)bytes / 1e6);
                ds_mm_free(mm);
            }
        free(scr);
        if (ti == ntypes - 1)
            for (int nt = 1; nt <= 2; nt++)
                printf("plain read  %d thread%s: %6.2f GB/s (1.5 GB buffer)\n", nt,
                       nt > 1 ? "s" : " ", read_bw((const uint64_t *)w, stride * copies / 8, nt,
                                                   reps));
        free(w);
    }
    free(x);
    free(y);
    return 0;
}
