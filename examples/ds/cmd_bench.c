/*
 * examples/ds/cmd_bench.c — `ds bench`: prefill and decode speed of a model, measured against
 * two ceilings the bench measures itself in the same run:
 *   - the machine's memory read bandwidth (AVX-512 one- and four-stream / AVX2 / portable
 *     read loops, `threads` threads over a buffer of at least 1 GiB and 4x the last-level
 *     cache, passes timed by the readers), and decode's achieved fraction of it: weight bytes
 *     read per token x decode tokens/s / bandwidth, from a decode whose chunks of 8 tokens
 *     alternate with probe passes, so that both sample the same stretch of time (the VM's
 *     bandwidth drifts between ~33 and ~60 GB/s); a probe after each timed run, for reference;
 *   - oneDNN's bf16 matmul peak (bf16 x bf16 -> f32 of compute-bound shapes, OpenMP threads =
 *     -t, best of several runs), and prefill's achieved fraction of it: FLOPs per prompt token
 *     x prefill tokens/s / peak, for each timed prefill against a peak sampled right after it
 *     (the same stretch of time; the matmul speed drifts with the VM too), the best run
 *     counting; the best prefill against the best peak of two measurements after all runs,
 *     for reference.
 * Plus time to first token, peak memory, batched decode across sessions (--batch) and session
 * file sizes (--session-size). BENCHMARKS.md and scripts/bench.sh use it.
 */
#include "cli.h"

#include <deepseek/session.h>

#include <oneapi/dnnl/dnnl.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

static void help(FILE *f)
{
    fprintf(f,
            "usage: ds bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPEAT] [--json]\n"
            "                [--precision f32|bf16] [--load mmap|read|hugepages] [--repack]\n"
            "                [--kv-type f32|f16|bf16] [--batch N[,N...]] [--batch-prompt 64]\n"
            "                [--session-size] [--no-probe] [--bw-mib MIB]\n\n"
            "Measure prefill (one prompt of -p random tokens, after a warm-up prefill of another\n"
            "prompt) and decode (-n greedy steps) speed, best of -r runs; the machine's memory\n"
            "read bandwidth and oneDNN's bf16 matmul peak (unless --no-probe), and the fractions\n"
            "of them that decode and prefill reach. Decode's fraction comes from one more decode\n"
            "of -n tokens in chunks of 8, a bandwidth probe pass after each chunk: decode and\n"
            "probe sample the same stretch of time, whatever the machine's bandwidth does.\n"
            "Likewise the bf16 peak is sampled right after each timed prefill, and prefill's\n"
            "fraction is the best run's against the peak that followed it.\n"
            "  --batch N,...    also batched decode with N sessions (ds_session_step_batch), each\n"
            "                   after a prompt of --batch-prompt tokens; tokens/s over sessions\n"
            "  --session-size   session file size (ds_session_save_buffer, zstd) after the\n"
            "                   prompt and after decoding, and the growth per 1,000 tokens\n"
            "  --repack         with --load read|hugepages, repack the weights for the 16-row\n"
            "                   decode kernels (ds_model_params.repack = DS_REPACK_WEIGHTS)\n"
            "  --bw-mib MIB     the bandwidth probe's buffer (default: 1024 or 4x the last-level\n"
            "                   cache, whichever is larger, so that it reads DRAM)\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- memory read bandwidth ------------------------------------------------------------- */

typedef uint64_t (*read_fn)(const void *p, size_t bytes);

/* Portable: 8 independent accumulators (vectorisable). bytes is a multiple of 64. */
static uint64_t read_portable(const void *p_, size_t bytes)
{
    const uint64_t *p = p_;
    uint64_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < bytes / 8; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += p[i + j];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#ifdef BENCH_X86
__attribute__((target("avx2"))) static uint64_t read_avx2(const void *p_, size_t bytes)
{
    const __m256i *p = p_;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < bytes / 32; i += 8) { /* 256 bytes per iteration */
        a = _mm256_add_epi64(a, _mm256_load_si256(p + i));
        b = _mm256_add_epi64(b, _mm256_load_si256(p + i + 1));
        c = _mm256_add_epi64(c, _mm256_load_si256(p + i + 2));
        d = _mm256_add_epi64(d, _mm256_load_si256(p + i + 3));
        a = _mm256_add_epi64(a, _mm256_load_si256(p + i + 4));
        b = _mm256_add_epi64(b, _mm256_load_si256(p + i + 5));
        c = _mm256_add_epi64(c, _mm256_load_si256(p + i + 6));
        d = _mm256_add_epi64(d, _mm256_load_si256(p + i + 7));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, a);
    return o[0] + o[1] + o[2] + o[3];
}

/* The eight 64-bit lanes of a + b + c + d, summed as unsigned: _mm512_reduce_add_epi64 adds
 * signed 64-bit lanes in C, which overflows (undefined behaviour, caught by UBSan) on these
 * wrapping sums. */
__attribute__((target("avx512f"))) static uint64_t sum_lanes(__m512i a, __m512i b, __m512i c,
                                                             __m512i d)
{
    uint64_t o[8], sum = 0;
    _mm512_storeu_si512((void *)o, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (int i = 0; i < 8; i++)
        sum += o[i];
    return sum;
}

/* One stream, four accumulators: on the AMD EPYC VM the hardware prefetcher serves a single
 * stream per core best (1 GiB, 2 threads, passes timed by the readers: 1 stream 30-54 GB/s,
 * 2/4/8 interleaved streams 17-36 GB/s). bytes is a multiple of 256. */
__attribute__((target("avx512f"))) static uint64_t read_avx512(const void *p_, size_t bytes)
{
    const __m512i *p = p_;
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < bytes / 64; i += 4) { /* 256 bytes per iteration */
        a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
        b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 1));
        c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 2));
        d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 3));
    }
    return sum_lanes(a, b, c, d);
}

/* Four interleaved streams (quarters of the part): more lines in flight per core, which some
 * machines reward (an earlier Intel VM). bytes is a multiple of 1024. */
__attribute__((target("avx512f"))) static uint64_t read_avx512x4(const void *p_, size_t bytes)
{
    const size_t q = bytes / 4 / 64; /* 64-byte vectors per stream */
    const __m512i *p0 = p_, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < q; i += 2) { /* 512 bytes per iteration */
        a = _mm512_add_epi64(a, _mm512_load_si512(p0 + i));
        b = _mm512_add_epi64(b, _mm512_load_si512(p1 + i));
        c = _mm512_add_epi64(c, _mm512_load_si512(p2 + i));
        d = _mm512_add_epi64(d, _mm512_load_si512(p3 + i));
        a = _mm512_add_epi64(a, _mm512_load_si512(p0 + i + 1));
        b = _mm512_add_epi64(b, _mm512_load_si512(p1 + i + 1));
        c = _mm512_add_epi64(c, _mm512_load_si512(p2 + i + 1));
        d = _mm512_add_epi64(d, _mm512_load_si512(p3 + i + 1));
    }
    return sum_lanes(a, b, c, d);
}
#endif

/* The read loops the probe tries on this CPU (at most BW_VARIANTS), best first by default. */
#define BW_VARIANTS 2
typedef struct read_variant {
    const char *name;
    read_fn fn;
} read_variant;

static int pick_reads(read_variant *v)
{
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        v[0] = (read_variant){"avx512", read_avx512};
        v[1] = (read_variant){"avx512x4", read_avx512x4};
        return 2;
    }
    if (__builtin_cpu_supports("avx2")) {
        v[0] = (read_variant){"avx2", read_avx2};
        return 1;
    }
#endif
    v[0] = (read_variant){"portable", read_portable};
    return 1;
}

typedef struct bw_ctx {
    const uint8_t *buf;
    size_t part;              /* bytes per thread (multiple of 1024) */
    int threads, passes;
    read_fn fn;
    pthread_barrier_t start, done;
    volatile uint64_t sink;
    double t0[64], t1[64]; /* each worker's own start and end of the current pass */
} bw_ctx;

typedef struct bw_arg {
    bw_ctx *c;
    int idx;
} bw_arg;

static void *bw_worker(void *a_)
{
    bw_arg *a = a_;
    bw_ctx *c = a->c;
    for (int pass = 0; pass < c->passes; pass++) {
        pthread_barrier_wait(&c->start);
        c->t0[a->idx] = now_s();
        c->sink += c->fn(c->buf + (size_t)a->idx * c->part, c->part);
        c->t1[a->idx] = now_s();
        pthread_barrier_wait(&c->done);
    }
    return NULL;
}

/* The probe's buffer: `mib` MiB split into `threads` equal parts (multiples of 1 KiB), touched
 * first, transparent huge pages requested. */
typedef struct bw_buf {
    uint8_t *p;
    size_t bytes, part;
    int threads;
} bw_buf;

static bool bw_buf_alloc(bw_buf *b, int threads, size_t mib)
{
    const size_t align = (size_t)2 << 20;
    b->threads = threads > 64 ? 64 : threads;
    b->part = (mib << 20) / (size_t)b->threads / 1024 * 1024;
    b->bytes = b->part * (size_t)b->threads;
    b->p = aligned_alloc(align, (b->bytes + align - 1) / align * align);
    if (!b->p)
        return false;
#ifdef MADV_HUGEPAGE
    madvise(b->p, (b->bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
    memset(b->p, 1, b->bytes);
    return true;
}

/* Read bandwidth of the buffer: its threads each read their part, all started together by a
 * barrier, with each of the n read loops at v in turn, `passes` times. A pass lasts from the
 * first reader's start to the last reader's end, as the readers themselves time it: timed
 * from the main thread instead, a main thread descheduled after the start barrier (it shares
 * the cores with the readers) sees a pass shorter than it was, which measured passes ~20 %
 * too fast on the 2-core VM. The GB/s of pass p of loop i is stored at rates[i * passes + p]. */
static void bw_passes(const bw_buf *b, int passes, const read_variant *v, int n, double *rates)
{
    const int threads = b->threads;
    bw_ctx c = {.buf = b->p, .part = b->part, .threads = threads, .passes = passes * n,
                .fn = v[0].fn};
    pthread_barrier_init(&c.start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&c.done, NULL, (unsigned)threads + 1);
    pthread_t th[64];
    bw_arg args[64];
    for (int t = 0; t < threads; t++) {
        args[t].c = &c;
        args[t].idx = t;
        if (pthread_create(&th[t], NULL, bw_worker, &args[t]) != 0) {
            /* the started readers wait at a barrier that can never fill */
            fprintf(stderr, "ds bench: could not start %d probe threads\n", threads);
            exit(1);
        }
    }
    for (int pass = 0; pass < passes * n; pass++) {
        c.fn = v[pass % n].fn; /* published to the readers by the barrier */
        pthread_barrier_wait(&c.start);
        pthread_barrier_wait(&c.done);
        double t0 = c.t0[0], t1 = c.t1[0];
        for (int t = 1; t < threads; t++) {
            if (c.t0[t] < t0)
                t0 = c.t0[t];
            if (c.t1[t] > t1)
                t1 = c.t1[t];
        }
        const double dt = t1 - t0 > 1e-9 ? t1 - t0 : 1e-9;
        rates[(pass % n) * passes + pass / n] = (double)b->bytes / dt / 1e9;
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&c.start);
    pthread_barrier_destroy(&c.done);
}

/* Bytes of the last-level cache (the largest cache sysfs lists for cpu0; glibc's L3 size
 * without sysfs), 0 when unknown. */
static size_t llc_bytes(void)
{
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], txt[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(txt, sizeof txt, f)) {
            char *end;
            unsigned long long v = strtoull(txt, &end, 10);
            if (*end == 'K')
                v <<= 10;
            else if (*end == 'M')
                v <<= 20;
            if (v > best)
                best = (size_t)v;
        }
        fclose(f);
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    /* only without sysfs: glibc's figure can be far off (320 MiB for the AMD VM's 32 MiB L3) */
    if (best == 0) {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        if (l3 > 0)
            best = (size_t)l3;
    }
#endif
    return best;
}

/* The probe's buffer in MiB: at least 1 GiB and at least 4x the last-level cache (STREAM's
 * rule), so that the passes read DRAM and not the cache. Measured on a VM with a 480 MiB L3:
 * a 128-512 MiB buffer gave passes up to 1128 GB/s; 1 GiB up to 37 GB/s, 2-8 GiB 33-34 GB/s. */
static size_t probe_mib(void)
{
    const size_t llc_mib = (llc_bytes() + (1u << 20) - 1) >> 20;
    return llc_mib * 4 > 1024 ? llc_mib * 4 : 1024;
}

/* Passes of each read loop in the probe after each timed run. Its best pass is reported (as
 * STREAM reports its best time) and its median pass too: on a VM whose bandwidth drifts the
 * passes spread widely (measured 30-54 GB/s between consecutive 1 GiB passes). */
#define BW_PASSES 10
/* Decode tokens between two probe passes in the interleaved measurement. */
#define BW_IL_CHUNK 8

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of the n values at v (sorted in place), the mean of the middle two for even n. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Decode's fraction of a bandwidth: weight bytes per token x tokens/s / GB/s (0 without a
 * bandwidth). */
static double bw_fraction(uint64_t wbytes, double tps, double gbs)
{
    return gbs > 0 ? (double)wbytes * tps / (gbs * 1e9) : 0.0;
}

/* Prefill's fraction of a bf16 peak: FLOP/s / GFLOP/s (0 without a peak). */
static double pk_fraction(double flops_per_s, double peak_gflops)
{
    return peak_gflops > 0 ? flops_per_s / 1e9 / peak_gflops : 0.0;
}

/* A pause before a probe right after decoding: the library's OpenMP threads spin for a while
 * after each parallel region (libgomp's default; forever with OMP_WAIT_POLICY=active, which
 * makes every probe share the cores with them: measured 101-104 % "of the bandwidth" instead
 * of 82-90 %), and a probe pass must not compete with them. */
static void settle(void)
{
    const struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* One bandwidth probe (BW_PASSES passes of each read loop, over a buffer of `mib` MiB
 * allocated for it): its best pass (and the loop that read it) and the best of the loops'
 * median passes. False without memory. */
static bool probe_bandwidth(int threads, size_t mib, double *best, double *med,
                            const char **kernel)
{
    read_variant rv[BW_VARIANTS];
    const int nv = pick_reads(rv);
    double rates[BW_VARIANTS][BW_PASSES];
    bw_buf b;
    *best = *med = 0.0;
    if (!bw_buf_alloc(&b, threads, mib))
        return false;
    bw_passes(&b, BW_PASSES, rv, nv, &rates[0][0]);
    free(b.p);
    for (int i = 0; i < nv; i++) {
        for (int p = 0; p < BW_PASSES; p++)
            if (rates[i][p] > *best) {
                *best = rates[i][p];
                *kernel = rv[i].name;
            }
        const double m = median(rates[i], BW_PASSES);
        if (m > *med)
            *med = m;
    }
    return true;
}

/* Decode interleaved with the probe: after a fresh prefill of the prompt, the decode of n_gen
 * tokens in chunks of BW_IL_CHUNK, one pass of each read loop after every chunk; decode's
 * tokens/s over its chunks (*tps) and the probe's sustained GB/s over its passes (*gbs, the
 * better loop). Both sample the same stretch of time, so their ratio holds even while the
 * machine's bandwidth drifts (a timed run and the probe after it are seconds apart). The
 * passes evict the caches between the chunks: if anything this costs decode a little. Leaves
 * *tps and *gbs 0 without memory for the buffer. */
static ds_status interleaved_decode(ds_session *ss, const int32_t *toks, long n_prompt,
                                    long n_gen, int threads, size_t mib, double *tps,
                                    double *gbs)
{
    *tps = *gbs = 0.0;
    bw_buf b;
    if (!bw_buf_alloc(&b, threads, mib)) {
        fprintf(stderr, "ds bench: no memory for the %zu MiB bandwidth probe\n", mib);
        return DS_OK;
    }
    read_variant rv[BW_VARIANTS];
    const int nv = pick_reads(rv);
    double busy[BW_VARIANTS] = {0}, dec_s = 0.0;
    long dec_n = 0, n_pass = 0;
    ds_status s = ds_session_reset(ss);
    if (s == DS_OK)
        s = ds_session_feed(ss, toks, (size_t)n_prompt);
    while (s == DS_OK && dec_n < n_gen) {
        const long chunk = n_gen - dec_n < BW_IL_CHUNK ? n_gen - dec_n : BW_IL_CHUNK;
        const double t0 = now_s();
        for (long i = 0; i < chunk && s == DS_OK; i++) {
            int32_t t;
            s = ds_session_step(ss, &t);
        }
        dec_s += now_s() - t0;
        dec_n += chunk;
        double r[BW_VARIANTS];
        settle();
        bw_passes(&b, 1, rv, nv, r);
        for (int i = 0; i < nv; i++)
            busy[i] += (double)b.bytes / (r[i] * 1e9);
        n_pass++;
    }
    const double read = (double)b.bytes * (double)n_pass; /* bytes each loop read */
    free(b.p);
    if (s != DS_OK || dec_s <= 0)
        return s;
    *tps = (double)dec_n / dec_s;
    for (int i = 0; i < nv; i++)
        if (busy[i] > 0 && read / busy[i] / 1e9 > *gbs)
            *gbs = read / busy[i] / 1e9;
    return DS_OK;
}

/* ---- oneDNN bf16 matmul peak ------------------------------------------------------------ */

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* GFLOP/s of one bf16 x bf16 -> f32 matmul (M x K) * (K x N), best of `reps` executions after
 * one warm-up. prepacked: weights in the layout oneDNN prefers (format `any`, reordered once
 * outside the timing); else in place as the library uses them (K x N with strides {1, K}).
 * Returns 0 when oneDNN cannot (e.g. no bf16 on this CPU). */
static double dnnl_bf16_gflops(dnnl_engine_t eng, dnnl_stream_t strm, int64_t M, int64_t K,
                               int64_t N, bool prepacked, int reps)
{
    dnnl_memory_desc_t smd, wmd, wmd_user, dmd, wmd_q;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N};
    dnnl_dims_t ws = {1, K};
    double best = 0.0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL, reorder = NULL;
    dnnl_memory_t msrc = NULL, mwei = NULL, mwei_user = NULL, mdst = NULL, mscr = NULL;
    if (dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&wmd_user, 2, wd, dnnl_bf16, ws) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success)
        return 0.0;
    if (prepacked) {
        if (dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_format_tag_any) !=
            dnnl_success)
            return 0.0;
    } else {
        wmd = wmd_user;
    }
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd) != dnnl_success)
        return 0.0;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success)
        return 0.0;
    if (dnnl_primitive_create(&prim, pd) != dnnl_success)
        goto out;
    wmd_q = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *scr_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (dnnl_memory_create(&msrc, &smd, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&mwei_user, &wmd_user, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&mwei, &wmd_q, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
        dnnl_memory_create(&mdst, &dmd, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success)
        goto out;
    if (scr_md && dnnl_memory_desc_get_size(scr_md) > 0 &&
        dnnl_memory_create(&mscr, scr_md, eng, DNNL_MEMORY_ALLOCATE) != dnnl_success)
        goto out;
    {
        void *p;
        uint64_t x = 88172645463325252ull;
        dnnl_memory_get_data_handle(msrc, &p);
        for (int64_t i = 0; i < M * K; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ((uint16_t *)p)[i] = f32_to_bf16((float)(x % 2001) / 1000.0f - 1.0f);
        }
        dnnl_memory_get_data_handle(mwei_user, &p);
        for (int64_t i = 0; i < K * N; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ((uint16_t *)p)[i] = f32_to_bf16((float)(x % 2001) / 1000.0f - 1.0f);
        }
    }
    /* bring the weights into the primitive's layout (a plain copy when in place) */
    {
        dnnl_primitive_desc_t rpd = NULL;
        if (dnnl_reorder_primitive_desc_create(&rpd, &wmd_user, eng, &wmd_q, eng, NULL) !=
            dnnl_success)
            goto out;
        dnnl_status_t st = dnnl_primitive_create(&reorder, rpd);
        dnnl_primitive_desc_destroy(rpd);
        if (st != dnnl_success)
            goto out;
        dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, mwei_user}, {DNNL_ARG_TO, mwei}};
        if (dnnl_primitive_execute(reorder, strm, 2, rargs) != dnnl_success)
            goto out;
        dnnl_stream_wait(strm);
    }
    {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, mwei},
                                   {DNNL_ARG_DST, mdst}, {DNNL_ARG_SCRATCHPAD, mscr}};
        int nargs = mscr ? 4 : 3;
        const double flops = 2.0 * (double)M * (double)K * (double)N;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_s();
            if (dnnl_primitive_execute(prim, strm, nargs, args) != dnnl_success)
                goto out;
            dnnl_stream_wait(strm);
            double dt = now_s() - t0;
            if (r > 0 && flops / dt / 1e9 > best)
                best = flops / dt / 1e9;
        }
    }
out:
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    dnnl_memory_t mems[5] = {msrc, mwei, mwei_user, mdst, mscr};
    for (int i = 0; i < 5; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    return best;
}

typedef struct peak_result {
    double gflops;          /* best over shapes and layouts */
    double inplace_gflops;  /* best with the weights in place (the library's layout) */
    int64_t m, k, n;        /* the shape of the best */
} peak_result;

static peak_result measure_bf16_peak(int threads)
{
    peak_result r = {0};
#ifdef _OPENMP
    int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    dnnl_engine_t eng = NULL;
    dnnl_stream_t strm = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) == dnnl_success &&
        dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) == dnnl_success) {
        static const int64_t shapes[][3] = {{512, 2048, 2048}, {512, 4096, 4096}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            for (int packed = 0; packed < 2; packed++) {
                double g = dnnl_bf16_gflops(eng, strm, shapes[s][0], shapes[s][1], shapes[s][2],
                                            packed, 7);
                if (g > r.gflops) {
                    r.gflops = g;
                    r.m = shapes[s][0];
                    r.k = shapes[s][1];
                    r.n = shapes[s][2];
                }
                if (!packed && g > r.inplace_gflops)
                    r.inplace_gflops = g;
            }
        }
    }
    if (strm)
        dnnl_stream_destroy(strm);
    if (eng)
        dnnl_engine_destroy(eng);
#ifdef _OPENMP
    omp_set_num_threads(prev);
#endif
    return r;
}

/* ---- the model's work per token -------------------------------------------------------- */

/* Bytes of weights one decode step reads: every tensor, but only n_used/n_expert of the
 * routed expert stacks and one row of the token embedding. */
static uint64_t weight_bytes_per_token(ds_model *m, const ds_model_info *in)
{
    uint64_t total = 0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        ds_tensor_info ti;
        ti.struct_size = sizeof ti;
        if (ds_model_tensor_info(m, i, &ti) != DS_OK)
            continue;
        if (strstr(ti.name, "_exps.") && in->n_expert)
            total += ti.nbytes / in->n_expert * in->n_expert_used;
        else if (strcmp(ti.name, "token_embd.weight") == 0)
            total += ti.nbytes / (in->n_vocab ? in->n_vocab : 1);
        else
            total += ti.nbytes;
    }
    return total;
}

/* FLOPs per prompt token of a prefill of n_prompt tokens: 2 x the multiply-adds of every
 * matrix a token goes through (all matrices but the token embedding, which is a lookup;
 * n_used/n_expert of the routed expert stacks; the output head once per prompt, since a
 * prefill computes the logits of its last token only), plus the absorbed-MLA attention:
 * per layer and head 2 x (d_c + d_r) for the score and 2 x d_c for the context per key, at
 * the average context (n_prompt + 1) / 2. Vectors (norms, biases) are not counted. */
static double prefill_flops_per_token(ds_model *m, const ds_model_info *in, long n_prompt)
{
    double macs = 0.0;
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        ds_tensor_info ti;
        ti.struct_size = sizeof ti;
        if (ds_model_tensor_info(m, i, &ti) != DS_OK || ti.n_dims < 2)
            continue;
        double n = (double)ti.ne[0] * (double)ti.ne[1] * (double)ti.ne[2] * (double)ti.ne[3];
        if (strcmp(ti.name, "token_embd.weight") == 0)
            continue;
        if (strcmp(ti.name, "output.weight") == 0)
            n /= (double)n_prompt;
        else if (strstr(ti.name, "_exps.") && in->n_expert)
            n = n * in->n_expert_used / in->n_expert;
        macs += n;
    }
    const double w = (double)in->kv_lora_rank + in->qk_rope_head_dim;
    const double attn = 2.0 * in->n_layer * (double)in->n_head * (w + in->kv_lora_rank) *
                        ((double)n_prompt + 1.0) / 2.0;
    return 2.0 * macs + attn;
}

/* ---- runs ------------------------------------------------------------------------------- */

static void random_tokens(int32_t *t, long n, uint32_t n_vocab, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 12345;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((x >> 33) % n_vocab);
    }
}

/* Compressed session file size now (ds_session_save_buffer's size query). */
static size_t session_file_size(ds_session *ss)
{
    size_t need = 0;
    ds_status s = ds_session_save_buffer(ss, NULL, 0, &need);
    if (s != DS_OK && s != DS_ERR_BUFFER_TOO_SMALL)
        return 0;
    return need;
}

typedef struct batch_result {
    long n;
    double tps;        /* tokens/s summed over the sessions */
    uint64_t memory;   /* ds_session_memory summed */
} batch_result;

static ds_status run_batch(ds_model *m, const ds_model_info *in, long nb, long n_prompt,
                           long n_gen, uint32_t kv, batch_result *r)
{
    ds_session **ss = calloc((size_t)nb, sizeof *ss);
    int32_t *toks = malloc((size_t)(nb > n_prompt ? nb : n_prompt) * sizeof *toks);
    int32_t *out = malloc((size_t)nb * sizeof *out);
    ds_status *res = malloc((size_t)nb * sizeof *res);
    ds_status s = ss && toks && out && res ? DS_OK : DS_ERR_NO_MEMORY;
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.n_ctx = (uint32_t)(n_prompt + n_gen + 4);
    sp.n_batch = (uint32_t)(nb > n_prompt ? nb : n_prompt);
    sp.kv_type = kv;
    sp.ignore_eos = 1;
    r->n = nb;
    r->tps = 0;
    r->memory = 0;
    for (long i = 0; i < nb && s == DS_OK; i++) {
        s = ds_session_open(&ss[i], m, &sp);
        if (s == DS_OK) {
            random_tokens(toks, n_prompt, in->n_vocab, 1000 + (uint64_t)i);
            s = ds_session_feed(ss[i], toks, (size_t)n_prompt);
        }
        if (s == DS_OK)
            r->memory += ds_session_memory(ss[i]);
    }
    /* one warm-up step (first use of the M = nb shapes), then n_gen - 1 timed steps */
    if (s == DS_OK)
        s = ds_session_step_batch(ss, (size_t)nb, out, res);
    double t0 = now_s();
    long steps = 0;
    for (long g = 1; g < n_gen && s == DS_OK; g++) {
        s = ds_session_step_batch(ss, (size_t)nb, out, res);
        for (long i = 0; i < nb && s == DS_OK; i++)
            if (res[i] != DS_OK)
                s = res[i];
        steps++;
    }
    double dt = now_s() - t0;
    if (s == DS_OK && steps > 0)
        r->tps = (double)nb * (double)steps / dt;
    for (long i = 0; ss && i < nb; i++)
        ds_session_close(ss[i]);
    free(ss);
    free(toks);
    free(out);
    free(res);
    return s;
}

/* "1,2,4" -> counts (at most 32); false on a malformed list */
static bool parse_counts(const char *v, long *out, int *n)
{
    *n = 0;
    while (*v) {
        char *end;
        long x = strtol(v, &end, 10);
        if (end == v || x < 1 || x > 4096 || *n == 32)
            return false;
        out[(*n)++] = x;
        if (*end == ',')
            end++;
        else if (*end)
            return false;
        v = end;
    }
    return *n > 0;
}

int ds_cmd_bench(int argc, char **argv)
{
    const char *model_path = NULL, *prec = "bf16", *kvt = "f32", *load = "mmap";
    long n_prompt = 512, n_gen = 128, repeat = 1, batch_prompt = 64, bw_mib = 0;
    int threads = 2, n_batches = 0;
    long batches[32];
    bool json = false, probe = true, sess_size = false, repack = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (ds_cli_opt(argc, argv, &i, "-p", "--n-prompt", &v)) {
            n_prompt = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-n", "--n-gen", &v)) {
            n_gen = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-t", "--threads", &v)) {
            threads = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, "-r", "--repeat", &v)) {
            repeat = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--precision", &v)) {
            prec = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--kv-type", &v)) {
            kvt = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--load", &v)) {
            load = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--batch", &v)) {
            if (!parse_counts(v, batches, &n_batches)) {
                fprintf(stderr, "ds bench: bad --batch list '%s'\n", v);
                return DS_EXIT_USAGE;
            }
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--batch-prompt", &v)) {
            batch_prompt = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--bw-mib", &v)) {
            bw_mib = atol(v);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--no-probe") == 0) {
            probe = false;
        } else if (strcmp(argv[i], "--repack") == 0) {
            repack = true;
        } else if (strcmp(argv[i], "--session-size") == 0) {
            sess_size = true;
        } else {
            fprintf(stderr, "ds bench: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    int kv = ds_cli_parse_kv_type(kvt);
    int lm = ds_cli_parse_load_mode(load);
    if (!model_path || n_prompt < 1 || n_gen < 1 || threads < 1 || threads > 64 || kv < 0 ||
        lm < 0 || repeat < 1 || batch_prompt < 1 || (bw_mib != 0 && bw_mib < 64) ||
        (strcmp(prec, "f32") != 0 && strcmp(prec, "bf16") != 0)) {
        fprintf(stderr, "ds bench: bad or missing arguments\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.precision = strcmp(prec, "f32") == 0 ? DS_PRECISION_F32 : DS_PRECISION_FAST;
    mp.n_threads = threads;
    mp.load_mode = (uint32_t)lm;
    mp.repack = repack ? DS_REPACK_WEIGHTS : DS_REPACK_NONE;
    double tl0 = now_s();
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, model_path, &mp);
    double load_s = now_s() - tl0;
    if (s != DS_OK)
        return ds_cli_fail("bench", s);
    ds_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    ds_model_info_get(m, &in);

    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.n_ctx = (uint32_t)(n_prompt + n_gen + 2); /* (+2: the warm-up's steps) */
    sp.n_batch = (uint32_t)n_prompt;
    sp.kv_type = (uint32_t)kv;
    sp.ignore_eos = 1; /* measure exactly n_gen steps */
    ds_session *ss = NULL;
    s = ds_session_open(&ss, m, &sp);
    if (s != DS_OK) {
        ds_model_close(m);
        return ds_cli_fail("bench", s);
    }
    int32_t *warm = malloc((size_t)n_prompt * sizeof *warm);
    int32_t *toks = malloc((size_t)n_prompt * sizeof *toks);
    if (!toks || !warm) {
        free(warm);
        free(toks);
        ds_session_close(ss);
        ds_model_close(m);
        return ds_cli_fail("bench", DS_ERR_NO_MEMORY);
    }
    random_tokens(warm, n_prompt, in.n_vocab, 1);
    random_tokens(toks, n_prompt, in.n_vocab, 2);

    /* warm-up: a whole prefill of another prompt and two steps (page faults of the weights,
     * first use of the matmul shapes), then rewind */
    double tw0 = now_s();
    s = ds_session_feed(ss, warm, (size_t)n_prompt);
    double warm_prefill_s = now_s() - tw0;
    for (int i = 0; i < 2 && s == DS_OK; i++) {
        int32_t t;
        s = ds_session_step(ss, &t);
    }
    if (s == DS_OK)
        s = ds_session_reset(ss);

    /* A bandwidth probe runs right after each timed decode run, for reference (per-run pairs
     * in the output); the headline fraction comes from the interleaved decode below. The peak
     * memory is read after the first run, before any probe buffer exists. */
    if (bw_mib == 0)
        bw_mib = (long)probe_mib();
    const char *bw_kernel = "none"; /* the read loop of the bench's best probe pass */
    double best_pass = 0.0;         /* that pass (a burst, for reference) */
    double *run_bw = calloc((size_t)repeat * 5, sizeof *run_bw);
    double *run_med = run_bw ? run_bw + repeat : NULL, *run_tps = run_bw ? run_bw + 2 * repeat : NULL;
    /* per run: its prefill time and the bf16 peak sampled right after it */
    double *run_pf_s = run_bw ? run_bw + 3 * repeat : NULL;
    double *run_pk = run_bw ? run_bw + 4 * repeat : NULL;
    uint64_t peak_rss = 0;
    if (!run_bw)
        s = DS_ERR_NO_MEMORY;
    double best_prefill = 1e30, first_prefill = 0, best_decode = 1e30, best_ttft = 1e30;
    long produced = 0;
    size_t file_after_prompt = 0, file_after_gen = 0, tok_after_prompt = 0, tok_after_gen = 0;
    size_t file_bound = 0; /* ds_session_save_size after decoding (an upper bound) */
    for (long rep = 0; rep < repeat && s == DS_OK; rep++) {
        if (rep > 0)
            s = ds_session_reset(ss);
        double t0 = now_s();
        if (s == DS_OK)
            s = ds_session_feed(ss, toks, (size_t)n_prompt);
        double t1 = now_s();
        run_pf_s[rep] = t1 - t0;
        /* the peak right after the prefill: the two sample the same stretch of the machine's
         * speed (it drifts on a shared VM) */
        if (s == DS_OK && probe)
            run_pk[rep] = measure_bf16_peak(threads).gflops;
        if (s == DS_OK && sess_size && rep == repeat - 1) {
            file_after_prompt = session_file_size(ss);
            tok_after_prompt = ds_session_n_tokens(ss);
        }
        double t1b = now_s(); /* (the size query is not part of the decode time) */
        produced = 0;
        double t_first = 0;
        while (s == DS_OK && produced < n_gen) {
            int32_t t;
            s = ds_session_step(ss, &t);
            if (produced == 0)
                t_first = now_s();
            produced++;
        }
        double t2 = now_s();
        if (s != DS_OK)
            break;
        if (rep == 0)
            first_prefill = t1 - t0;
        if (t1 - t0 < best_prefill)
            best_prefill = t1 - t0;
        if (t2 - t1b < best_decode)
            best_decode = t2 - t1b;
        run_tps[rep] = produced / (t2 - t1b);
        if (rep == 0) { /* peak memory of the model and one session */
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            peak_rss = (uint64_t)ru.ru_maxrss * 1024;
        }
        const char *kern = "none";
        if (probe)
            settle();
        if (probe && !probe_bandwidth(threads, (size_t)bw_mib, &run_bw[rep], &run_med[rep], &kern))
            fprintf(stderr, "ds bench: no memory for the %ld MiB bandwidth probe\n", bw_mib);
        if (run_bw[rep] > best_pass) {
            best_pass = run_bw[rep];
            bw_kernel = kern;
        }
        if (t1 - t0 + (t_first - t1b) < best_ttft)
            best_ttft = t1 - t0 + (t_first - t1b);
        if (sess_size && rep == repeat - 1) {
            file_after_gen = session_file_size(ss);
            tok_after_gen = ds_session_n_tokens(ss);
            if (ds_session_save_size(ss, &file_bound) != DS_OK)
                file_bound = 0;
        }
    }
    double il_tps = 0.0, il_bw = 0.0; /* the headline decode fraction's two sides */
    if (probe && s == DS_OK)
        s = interleaved_decode(ss, toks, n_prompt, n_gen, threads, (size_t)bw_mib, &il_tps,
                               &il_bw);
    if (s != DS_OK) {
        int rc = ds_cli_fail("bench", s);
        free(run_bw);
        free(warm);
        free(toks);
        ds_session_close(ss);
        ds_model_close(m);
        return rc;
    }
    uint64_t session_bytes = ds_session_memory(ss);
    ds_session_close(ss);
    free(warm);
    free(toks);

    batch_result br[32];
    for (int b = 0; b < n_batches; b++) {
        s = run_batch(m, &in, batches[b], batch_prompt, n_gen, (uint32_t)kv, &br[b]);
        if (s != DS_OK) {
            int rc = ds_cli_fail("bench", s);
            free(run_bw);
            ds_model_close(m);
            return rc;
        }
    }

    const uint64_t wbytes = weight_bytes_per_token(m, &in);
    const double flops_tok = prefill_flops_per_token(m, &in, n_prompt);
    /* the bf16 peak is measured twice after the runs, and the better result counts: on a
     * shared machine either may catch a busy moment */
    peak_result pk = {0};
    if (probe) {
        pk = measure_bf16_peak(threads);
        const peak_result pk2 = measure_bf16_peak(threads);
        if (pk2.gflops > pk.gflops) {
            const double inplace = pk.inplace_gflops;
            pk = pk2;
            if (inplace > pk.inplace_gflops)
                pk.inplace_gflops = inplace;
        } else if (pk2.inplace_gflops > pk.inplace_gflops) {
            pk.inplace_gflops = pk2.inplace_gflops;
        }
    }
    const double prefill_tps = n_prompt / best_prefill;
    const double decode_tps = produced / best_decode;
    const double ttft_ms = best_ttft * 1e3;
    /* the headline: decode and the probe interleaved (above) */
    const double frac = bw_fraction(wbytes, il_tps, il_bw);
    const double prefill_gflops = flops_tok * prefill_tps / 1e9;
    /* the headline: the best run's prefill against the peak sampled right after it */
    double pfrac = 0.0;
    for (long r = 0; r < repeat; r++)
        if (pk_fraction(flops_tok * n_prompt / run_pf_s[r], run_pk[r]) > pfrac)
            pfrac = pk_fraction(flops_tok * n_prompt / run_pf_s[r], run_pk[r]);
    const double pfrac_best = pk_fraction(prefill_gflops * 1e9, pk.gflops);
    const uint64_t kvb = in.kv_bytes_per_token / (kv == DS_KV_F32 ? 1 : 2);
    /* session file growth per 1,000 tokens: the slope between the two sizes */
    double file_per_1k = 0.0;
    if (tok_after_gen > tok_after_prompt && file_after_gen >= file_after_prompt)
        file_per_1k = (double)(file_after_gen - file_after_prompt) * 1000.0 /
                      (double)(tok_after_gen - tok_after_prompt);
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, model_path);
        printf(", \"threads\": %d, \"precision\": \"%s\", \"load\": \"%s\", \"repack\": %s, \"load_s\": %.3f"
               ", \"n_prompt\": %ld, \"n_gen\": %ld, \"repeat\": %ld, \"prefill_tps\": %.3f"
               ", \"prefill_tps_first\": %.3f, \"warmup_prefill_tps\": %.3f, \"decode_tps\": %.3f"
               ", \"ttft_ms\": %.3f, \"peak_rss_bytes\": %" PRIu64
               ", \"weight_bytes_per_token\": %" PRIu64 ", \"bandwidth_gbs\": %.3f"
               ", \"decode_tps_interleaved\": %.3f, \"decode_bw_fraction\": %.4f"
               ", \"bandwidth_best_pass_gbs\": %.3f, \"bandwidth_kernel\": \"%s\""
               ", \"bandwidth_buffer_bytes\": %zu"
               ", \"prefill_flops_per_token\": %.0f, \"prefill_gflops\": %.3f"
               ", \"bf16_peak_gflops\": %.3f, \"bf16_peak_inplace_gflops\": %.3f"
               ", \"bf16_peak_shape\": [%" PRId64 ", %" PRId64 ", %" PRId64 "]"
               ", \"prefill_peak_fraction\": %.4f, \"prefill_best_peak_fraction\": %.4f"
               ", \"kv_type\": \"%s\", \"kv_bytes_per_token\": %" PRIu64
               ", \"session_bytes\": %" PRIu64,
               threads, prec, load, repack ? "true" : "false", load_s, n_prompt, produced, repeat, prefill_tps,
               n_prompt / first_prefill, n_prompt / warm_prefill_s, decode_tps, ttft_ms,
               peak_rss, wbytes, il_bw, il_tps, frac, best_pass, bw_kernel, (size_t)bw_mib << 20, flops_tok, prefill_gflops, pk.gflops,
               pk.inplace_gflops, pk.m, pk.k, pk.n, pfrac, pfrac_best, kvt, kvb, session_bytes);
        /* every run: its prefill and the peak after it, its decode tokens/s, the probe after
         * it, and the fractions against them */
        printf(", \"runs\": [");
        for (long r = 0; r < repeat; r++)
            printf("%s{\"prefill_tps\": %.3f, \"bf16_peak_gflops\": %.3f, "
                   "\"prefill_peak_fraction\": %.4f, \"decode_tps\": %.3f, \"bandwidth_gbs\": "
                   "%.3f, \"bandwidth_median_gbs\": %.3f, \"decode_bw_fraction\": %.4f}",
                   r ? ", " : "", n_prompt / run_pf_s[r], run_pk[r],
                   pk_fraction(flops_tok * n_prompt / run_pf_s[r], run_pk[r]), run_tps[r],
                   run_bw[r], run_med[r], bw_fraction(wbytes, run_tps[r], run_bw[r]));
        printf("]");
        if (sess_size)
            printf(", \"session_file_bytes\": [[%zu, %zu], [%zu, %zu]]"
                   ", \"session_file_bytes_per_1k_tokens\": %.0f"
                   ", \"session_file_bound_bytes\": %zu",
                   tok_after_prompt, file_after_prompt, tok_after_gen, file_after_gen,
                   file_per_1k, file_bound);
        if (n_batches) {
            printf(", \"batch_prompt\": %ld, \"batch\": [", batch_prompt);
            for (int b = 0; b < n_batches; b++)
                printf("%s{\"sessions\": %ld, \"decode_tps\": %.3f, \"session_bytes\": %" PRIu64
                       "}", b ? ", " : "", br[b].n, br[b].tps, br[b].memory);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("model            %s (%s, %u layers, %" PRIu64 " params)\n", model_path,
               in.architecture, in.n_layer, in.n_params);
        printf("threads          %d, precision %s, load %s%s (%.2f s)\n", threads, prec, load,
               repack ? " --repack" : "", load_s);
        printf("prefill          %ld tokens: %.2f tokens/s (best of %ld; first %.2f, warm-up "
               "%.2f)\n", n_prompt, prefill_tps, repeat, n_prompt / first_prefill,
               n_prompt / warm_prefill_s);
        printf("decode           %ld tokens: %.2f tokens/s (time to first token %.1f ms)\n",
               produced, decode_tps, ttft_ms);
        printf("weights/token    %.1f MB read per decoded token\n", wbytes / 1e6);
        printf("flops/token      %.3f GFLOP per prompt token: prefill runs at %.1f GFLOP/s\n",
               flops_tok / 1e9, prefill_gflops);
        if (probe) {
            printf("bandwidth        %.2f GB/s read by the probe (%ld MiB, %d threads) in passes "
                   "between chunks of %d decode tokens; decode ran %.2f tokens/s over the same "
                   "time and reaches %.1f%% of it\n", il_bw, bw_mib, threads, BW_IL_CHUNK, il_tps,
                   frac * 100);
            printf("                 best probe pass %.2f GB/s (%s); after each timed run:\n",
                   best_pass, bw_kernel);
            for (long r = 0; r < repeat; r++)
                printf("  run %-3ld        decode %.2f tokens/s, then %.2f GB/s (best pass; median "
                       "%.2f): %.1f%%\n", r + 1, run_tps[r], run_bw[r], run_med[r],
                       100.0 * bw_fraction(wbytes, run_tps[r], run_bw[r]));
            printf("bf16 peak        %.1f GFLOP/s (oneDNN %" PRId64 "x%" PRId64 "x%" PRId64
                   "; %.1f with weights in place); the best prefill reaches %.1f%% of it\n",
                   pk.gflops, pk.m, pk.k, pk.n, pk.inplace_gflops, pfrac_best * 100);
            printf("                 right after each prefill (the best run counts: %.1f%%):\n",
                   pfrac * 100);
            for (long r = 0; r < repeat; r++)
                printf("  run %-3ld        prefill %.2f tokens/s = %.1f GFLOP/s, then peak %.1f "
                       "GFLOP/s: %.1f%%\n", r + 1, n_prompt / run_pf_s[r],
                       flops_tok * n_prompt / run_pf_s[r] / 1e9, run_pk[r],
                       100.0 * pk_fraction(flops_tok * n_prompt / run_pf_s[r], run_pk[r]));
        }
        printf("kv cache         %" PRIu64 " bytes/token (%s)\n", kvb, kvt);
        printf("peak rss         %.1f MB (model + one session)\n", peak_rss / 1e6);
        if (sess_size)
            printf("session file     %zu bytes at %zu tokens, %zu at %zu: %.0f bytes per 1,000 "
                   "tokens (%.1f KiB per layer)\n", file_after_prompt, tok_after_prompt,
                   file_after_gen, tok_after_gen, file_per_1k,
                   file_per_1k / (in.n_layer ? in.n_layer : 1) / 1024.0);
        if (sess_size)
            printf("                 (ds_session_save_size bound at %zu tokens: %zu bytes)\n",
                   tok_after_gen, file_bound);
        for (int b = 0; b < n_batches; b++)
            printf("batch %-4ld      %.2f tokens/s over %ld sessions (%.2f each; prompt %ld)\n",
                   br[b].n, br[b].tps, br[b].n, br[b].tps / (double)br[b].n, batch_prompt);
    }
    free(run_bw);
    ds_model_close(m);
    return 0;
}
