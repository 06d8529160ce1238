/*
 * examples/ds/cmd_bench.c — `ds bench`: prefill and decode speed of a model, with the
 * machine's memory read bandwidth measured in the same run, and decode's achieved fraction of
 * it (bytes of weights read per token × tokens/s ÷ bandwidth).
 */
#include "cli.h"

#include <deepseek/session.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds bench -m MODEL [-p 512] [-n 128] [-t THREADS] [--precision f32|bf16]\n"
               "                [--load mmap|read|hugepages] [--kv-type f32|f16|bf16] [--json]\n\n"
               "Measure prefill (one prompt of -p random tokens) and decode (-n greedy steps)\n"
               "speed, the machine's memory read bandwidth, and decode's fraction of it.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bw_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_arg;

static void *bw_read(void *a_)
{
    bw_arg *a = a_;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= a->n; i += 4) {
        s0 += a->p[i];
        s1 += a->p[i + 1];
        s2 += a->p[i + 2];
        s3 += a->p[i + 3];
    }
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Read bandwidth in GB/s: `threads` threads each summing their part of a 1 GiB buffer; the
 * best of 5 passes. */
static double measure_bandwidth(int threads)
{
    size_t bytes = (size_t)1 << 30;
    uint64_t *buf = malloc(bytes);
    if (!buf)
        return 0.0;
    size_t n = bytes / sizeof *buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = i;
    double best = 0.0;
    pthread_t th[64];
    bw_arg args[64];
    if (threads > 64)
        threads = 64;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            args[t].p = buf + n / threads * t;
            args[t].n = n / threads;
            pthread_create(&th[t], NULL, bw_read, &args[t]);
        }
        uint64_t sink = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            sink += args[t].sum;
        }
        double dt = now_s() - t0;
        if (sink == 42)
            fputc(' ', stderr);
        double gbs = (double)bytes / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    free(buf);
    return best;
}

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

int ds_cmd_bench(int argc, char **argv)
{
    const char *model_path = NULL, *prec = "bf16", *kvt = "f32", *load = "mmap";
    long n_prompt = 512, n_gen = 128;
    int threads = 2;
    bool json = false;
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
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--precision", &v)) {
            prec = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--kv-type", &v)) {
            kvt = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--load", &v)) {
            load = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "ds bench: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    int kv = ds_cli_parse_kv_type(kvt);
    int lm = strcmp(load, "mmap") == 0 ? DS_LOAD_MMAP : strcmp(load, "read") == 0 ? DS_LOAD_READ
             : strcmp(load, "hugepages") == 0 ? DS_LOAD_HUGEPAGES : -1;
    if (!model_path || n_prompt < 1 || n_gen < 1 || threads < 1 || kv < 0 || lm < 0 ||
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
    sp.n_ctx = (uint32_t)(n_prompt + n_gen);
    sp.n_batch = (uint32_t)n_prompt;
    sp.kv_type = (uint32_t)kv;
    sp.ignore_eos = 1; /* measure exactly n_gen steps */
    ds_session *ss = NULL;
    s = ds_session_open(&ss, m, &sp);
    if (s != DS_OK) {
        ds_model_close(m);
        return ds_cli_fail("bench", s);
    }
    int32_t *toks = malloc((size_t)n_prompt * sizeof *toks);
    if (!toks) {
        ds_session_close(ss);
        ds_model_close(m);
        return ds_cli_fail("bench", DS_ERR_NO_MEMORY);
    }
    uint64_t x = 12345;
    for (long i = 0; i < n_prompt; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((x >> 33) % in.n_vocab);
    }
    /* warm-up: one short feed (first-use primitive creation, page faults), then rewind */
    s = ds_session_feed(ss, toks, n_prompt < 8 ? (size_t)n_prompt : 8);
    if (s == DS_OK)
        s = ds_session_reset(ss);
    double t0 = now_s();
    if (s == DS_OK)
        s = ds_session_feed(ss, toks, (size_t)n_prompt);
    double t1 = now_s();
    long produced = 0;
    double t_first = 0;
    while (s == DS_OK && produced < n_gen) {
        int32_t t;
        s = ds_session_step(ss, &t);
        if (produced == 0)
            t_first = now_s();
        produced++;
    }
    double t2 = now_s();
    if (s != DS_OK) {
        int rc = ds_cli_fail("bench", s);
        free(toks);
        ds_session_close(ss);
        ds_model_close(m);
        return rc;
    }
    uint64_t session_bytes = ds_session_memory(ss);
    ds_session_close(ss);
    free(toks);
    uint64_t wbytes = weight_bytes_per_token(m, &in);
    double bw = measure_bandwidth(threads);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double prefill_tps = n_prompt / (t1 - t0);
    double decode_tps = produced / (t2 - t1);
    double ttft_ms = (t1 - t0 + (t_first - t1)) * 1e3;
    double frac = bw > 0 ? (double)wbytes * decode_tps / (bw * 1e9) : 0.0;
    uint64_t kvb = in.kv_bytes_per_token / (kv == DS_KV_F32 ? 1 : 2);
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, model_path);
        printf(", \"threads\": %d, \"precision\": \"%s\", \"load\": \"%s\", \"load_s\": %.3f"
               ", \"n_prompt\": %ld, \"n_gen\": %ld, \"prefill_tps\": %.3f, \"decode_tps\": %.3f"
               ", \"ttft_ms\": %.3f, \"peak_rss_bytes\": %" PRIu64 ", \"weight_bytes_per_token\": %" PRIu64
               ", \"bandwidth_gbs\": %.3f, \"decode_bw_fraction\": %.4f"
               ", \"kv_type\": \"%s\", \"kv_bytes_per_token\": %" PRIu64 ", \"session_bytes\": %" PRIu64 "}\n",
               threads, prec, load, load_s, n_prompt, produced, prefill_tps, decode_tps, ttft_ms,
               (uint64_t)ru.ru_maxrss * 1024, wbytes, bw, frac, kvt, kvb, session_bytes);
    } else {
        printf("model            %s (%s, %u layers, %" PRIu64 " params)\n", model_path,
               in.architecture, in.n_layer, in.n_params);
        printf("threads          %d, precision %s, load %s (%.2f s)\n", threads, prec, load, load_s);
        printf("prefill          %ld tokens: %.2f tokens/s\n", n_prompt, prefill_tps);
        printf("decode           %ld tokens: %.2f tokens/s (time to first token %.1f ms)\n", produced,
               decode_tps, ttft_ms);
        printf("weights/token    %.1f MB read per decoded token\n", wbytes / 1e6);
        printf("bandwidth        %.2f GB/s measured (%d threads); decode reaches %.1f%% of it\n", bw,
               threads, frac * 100);
        printf("kv cache         %" PRIu64 " bytes/token (%s)\n", kvb, kvt);
        printf("peak rss         %.1f MB\n", ru.ru_maxrss / 1024.0);
    }
    ds_model_close(m);
    return 0;
}
