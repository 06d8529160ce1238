/*
 * examples/ds/cmd_generate.c — `ds generate`: prefill a prompt, then sample N tokens, streaming
 * them to stdout, and end with a line of timings on stderr.
 */
#include "cli.h"

#include <deepseek/session.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds generate -m MODEL (--tokens 1,2,3) [-n N] [--temp T] [--seed S]\n"
               "                   [--top-k K] [--top-p P] [--min-p P] [-t THREADS] [-c CTX]\n"
               "                   [--precision f32|bf16] [--kv-type f32|f16|bf16]\n\n"
               "Prefill the prompt, then generate N tokens (greedy unless --temp > 0), printing\n"
               "each token id as it is produced, and a timing line at the end (stderr).\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int ds_cmd_generate(int argc, char **argv)
{
    const char *model_path = NULL, *tokens_arg = NULL, *prec = "bf16", *kvt = "f32";
    int threads = 0;
    long n_gen = 32, n_ctx = 0;
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--tokens", &v)) {
            tokens_arg = v;
        } else if (ds_cli_opt(argc, argv, &i, "-n", "--n-predict", &v)) {
            n_gen = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-c", "--ctx", &v)) {
            n_ctx = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--temp", &v)) {
            sp.temperature = (float)atof(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--seed", &v)) {
            sp.seed = strtoull(v, NULL, 10);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--top-k", &v)) {
            sp.top_k = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--top-p", &v)) {
            sp.top_p = (float)atof(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--min-p", &v)) {
            sp.min_p = (float)atof(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--precision", &v)) {
            prec = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--kv-type", &v)) {
            kvt = v;
        } else if (ds_cli_opt(argc, argv, &i, "-t", "--threads", &v)) {
            threads = atoi(v);
        } else {
            fprintf(stderr, "ds generate: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    int kv = ds_cli_parse_kv_type(kvt);
    if (!model_path || !tokens_arg || n_gen < 0 || n_ctx < 0 || kv < 0 || threads < 0 ||
        (strcmp(prec, "f32") != 0 && strcmp(prec, "bf16") != 0)) {
        fprintf(stderr, "ds generate: bad or missing arguments\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    size_t n = 0;
    int32_t *toks = ds_cli_parse_tokens(tokens_arg, &n);
    if (!toks) {
        fprintf(stderr, "ds generate: --tokens must be a comma-separated list of token ids\n");
        return DS_EXIT_USAGE;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.precision = strcmp(prec, "f32") == 0 ? DS_PRECISION_F32 : DS_PRECISION_FAST;
    mp.n_threads = threads;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, model_path, &mp);
    if (s != DS_OK) {
        free(toks);
        return ds_cli_fail("generate", s);
    }
    sp.n_ctx = n_ctx ? (uint32_t)n_ctx : (uint32_t)(n + (size_t)n_gen);
    sp.kv_type = (uint32_t)kv;
    ds_session *ss = NULL;
    double t0 = now_s();
    s = ds_session_open(&ss, m, &sp);
    if (s == DS_OK)
        s = ds_session_feed(ss, toks, n);
    double t1 = now_s();
    long produced = 0;
    while (s == DS_OK && produced < n_gen) {
        int32_t t;
        s = ds_session_step(ss, &t);
        if (s != DS_OK)
            break;
        printf("%s%d", produced ? " " : "", t);
        fflush(stdout);
        produced++;
    }
    double t2 = now_s();
    printf("\n");
    int rc = 0;
    if (s != DS_OK && s != DS_ERR_CONTEXT_FULL)
        rc = ds_cli_fail("generate", s);
    fprintf(stderr, "prompt: %zu tokens in %.3f s (%.2f tokens/s); generated: %ld tokens in %.3f s "
                    "(%.2f tokens/s)\n",
            n, t1 - t0, n / (t1 - t0 > 0 ? t1 - t0 : 1e-9), produced, t2 - t1,
            produced / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    ds_session_close(ss);
    ds_model_close(m);
    free(toks);
    return rc;
}
