/*
 * examples/ds/cmd_logits.c — `ds logits`: token ids in, logits out, as JSON.
 * The whole prompt is computed in one prefill.
 */
#include "cli.h"

#include <deepseek/session.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds logits -m MODEL --tokens 1,2,3 [--all] [--precision f32|bf16] [-t THREADS]\n"
               "                 [--batch N] [--load mmap|read|hugepages] [--repack]\n\n"
               "Run the tokens through the model in one prefill (or chunks of --batch tokens) and print\n"
               "{\"n_vocab\": N, \"logits\": [[...], ...]} — the last position, or every one with --all.\n"
               "  -m, --model PATH       GGUF model file\n"
               "  --tokens LIST          comma-separated token ids\n"
               "  --all                  logits of every position\n"
               "  --precision P          f32 (exact f32 compute) or bf16 (the fast path, default)\n"
               "  -t, --threads N        worker threads (default: all CPUs)\n"
               "  --kv-type T            f32 (default), f16 or bf16\n"
               "  --batch N              tokens per forward pass (default: all; 1 = one decode step each)\n"
               "  --load MODE            mmap (default), read or hugepages (ds_model_params.load_mode)\n"
               "  --repack               repack the weights for the 16-row decode kernels (read or\n"
               "                         hugepages; ds_model_params.repack)\n");
}

/* Parse "1,2,3" into a malloc'ed array. Returns NULL on a bad list. */
int32_t *ds_cli_parse_tokens(const char *list, size_t *n)
{
    size_t cap = 16, k = 0;
    int32_t *t = malloc(cap * sizeof *t);
    const char *p = list;
    while (t && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(t);
            return NULL;
        }
        if (k == cap) {
            int32_t *nt = realloc(t, (cap *= 2) * sizeof *t);
            if (!nt) {
                free(t);
                return NULL;
            }
            t = nt;
        }
        t[k++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (t && k == 0) {
        free(t);
        return NULL;
    }
    *n = k;
    return t;
}

int ds_cli_parse_kv_type(const char *v)
{
    if (strcmp(v, "f32") == 0) return DS_KV_F32;
    if (strcmp(v, "f16") == 0) return DS_KV_F16;
    if (strcmp(v, "bf16") == 0) return DS_KV_BF16;
    return -1;
}

int ds_cli_parse_load_mode(const char *v)
{
    if (strcmp(v, "mmap") == 0) return DS_LOAD_MMAP;
    if (strcmp(v, "read") == 0) return DS_LOAD_READ;
    if (strcmp(v, "hugepages") == 0) return DS_LOAD_HUGEPAGES;
    return -1;
}

int ds_cmd_logits(int argc, char **argv)
{
    const char *model_path = NULL, *tokens_arg = NULL, *prec = "bf16", *kvt = "f32";
    const char *load = "mmap";
    int threads = 0;
    long batch = 0;
    bool all = false, repack = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--tokens", &v)) {
            tokens_arg = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--precision", &v)) {
            prec = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--kv-type", &v)) {
            kvt = v;
        } else if (ds_cli_opt(argc, argv, &i, "-t", "--threads", &v)) {
            threads = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--batch", &v)) {
            batch = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--load", &v)) {
            load = v;
        } else if (strcmp(argv[i], "--repack") == 0) {
            repack = true;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else {
            fprintf(stderr, "ds logits: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    if (!model_path || !tokens_arg) {
        fprintf(stderr, "ds logits: -m MODEL and --tokens LIST are required\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    if (strcmp(prec, "f32") != 0 && strcmp(prec, "bf16") != 0) {
        fprintf(stderr, "ds logits: --precision must be f32 or bf16\n");
        return DS_EXIT_USAGE;
    }
    int kv = ds_cli_parse_kv_type(kvt);
    int lm = ds_cli_parse_load_mode(load);
    if (kv < 0 || threads < 0 || lm < 0 || batch < 0) {
        fprintf(stderr, "ds logits: bad --kv-type, --threads, --load or --batch\n");
        return DS_EXIT_USAGE;
    }
    size_t n = 0;
    int32_t *toks = ds_cli_parse_tokens(tokens_arg, &n);
    if (!toks) {
        fprintf(stderr, "ds logits: --tokens must be a comma-separated list of token ids\n");
        return DS_EXIT_USAGE;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.precision = strcmp(prec, "f32") == 0 ? DS_PRECISION_F32 : DS_PRECISION_FAST;
    mp.n_threads = threads;
    mp.load_mode = (uint32_t)lm;
    mp.repack = repack ? DS_REPACK_WEIGHTS : DS_REPACK_NONE;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, model_path, &mp);
    if (s != DS_OK) {
        free(toks);
        return ds_cli_fail("logits", s);
    }
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.n_ctx = (uint32_t)n;
    sp.n_batch = batch > 0 && (size_t)batch < n ? (uint32_t)batch : (uint32_t)n; /* default: one prefill */
    sp.logits_all = all;
    sp.kv_type = (uint32_t)kv;
    ds_session *ss = NULL;
    s = ds_session_open(&ss, m, &sp);
    /* feed chunks of n_batch tokens, printing the rows each leaves readable */
    const size_t nb = sp.n_batch;
    bool open_list = false;
    for (size_t c0 = 0; s == DS_OK && c0 < n; c0 += nb) {
        const size_t c1 = c0 + nb < n ? c0 + nb : n;
        s = ds_session_feed(ss, toks + c0, c1 - c0);
        if (s != DS_OK)
            break;
        if (!all && c1 < n)
            continue;
        size_t nv = 0;
        const float *lg;
        ds_session_logits(ss, -1, &lg, &nv);
        if (!open_list) {
            printf("{\"n_vocab\": %zu, \"logits\": [", nv);
            open_list = true;
        }
        for (size_t r = all ? c0 : n - 1; r < c1; r++) {
            ds_session_logits(ss, all ? (int64_t)(r - c0) : -1, &lg, &nv);
            printf("%s[", r > (all ? 0 : n - 1) ? ", " : "");
            for (size_t j = 0; j < nv; j++)
                printf("%s%.9g", j ? ", " : "", (double)lg[j]);
            printf("]");
        }
    }
    if (s != DS_OK) {
        if (open_list)
            printf("\n");
        int rc = ds_cli_fail("logits", s);
        ds_session_close(ss);
        ds_model_close(m);
        free(toks);
        return rc;
    }
    printf("]}\n");
    ds_session_close(ss);
    ds_model_close(m);
    free(toks);
    return 0;
}
