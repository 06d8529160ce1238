/*
 * examples/ds/cmd_generate.c — `ds generate`: prefill a prompt, then sample N tokens, streaming
 * them to stdout, and end with a line of timings on stderr.
 */
#include "cli.h"

#include <deepseek/chat.h>
#include <deepseek/session.h>
#include <deepseek/tokenizer.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds generate -m MODEL (-p PROMPT | --tokens 1,2,3) [-n N] [--temp T] [--seed S]\n"
               "                   [--top-k K] [--top-p P] [--min-p P] [-t THREADS] [-c CTX]\n"
               "                   [--precision f32|bf16] [--kv-type f32|f16|bf16]\n\n"
               "                   [--ids] [--no-stop]\n\n"
               "Prefill the prompt, then generate N tokens (greedy unless --temp > 0), streaming\n"
               "the text (or, with --ids or --tokens on a model without a tokenizer, the token\n"
               "ids) to stdout, and a timing line at the end (stderr). Generation stops at an\n"
               "end-of-generation token unless --no-stop.\n"
               "  -p, --prompt TEXT   prompt text (tokenized with the model's tokenizer, BOS per\n"
               "                      the model's setting)\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int ds_cmd_generate(int argc, char **argv)
{
    const char *model_path = NULL, *tokens_arg = NULL, *prompt = NULL, *prec = "bf16", *kvt = "f32";
    int threads = 0;
    bool ids = false, stop = true;
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
        } else if (ds_cli_opt(argc, argv, &i, "-p", "--prompt", &v)) {
            prompt = v;
        } else if (strcmp(argv[i], "--ids") == 0) {
            ids = true;
        } else if (strcmp(argv[i], "--no-stop") == 0) {
            stop = false;
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
    if (!model_path || (!tokens_arg == !prompt) || n_gen < 0 || n_ctx < 0 || kv < 0 || threads < 0 ||
        (strcmp(prec, "f32") != 0 && strcmp(prec, "bf16") != 0)) {
        fprintf(stderr, "ds generate: bad or missing arguments\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    size_t n = 0;
    int32_t *toks = NULL;
    if (tokens_arg) {
        toks = ds_cli_parse_tokens(tokens_arg, &n);
        if (!toks) {
            fprintf(stderr, "ds generate: --tokens must be a comma-separated list of token ids\n");
            return DS_EXIT_USAGE;
        }
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
    const ds_tokenizer *tok = ds_model_tokenizer(m);
    if (prompt) {
        if (!tok) {
            fprintf(stderr, "ds generate: the model has no tokenizer; use --tokens\n");
            ds_model_close(m);
            return DS_EXIT_USAGE;
        }
        size_t need = 0;
        s = ds_tokenize(tok, prompt, strlen(prompt), 0, NULL, 0, &need);
        if (s != DS_OK && s != DS_ERR_BUFFER_TOO_SMALL) {
            ds_model_close(m);
            return ds_cli_fail("generate", s);
        }
        toks = malloc((need ? need : 1) * sizeof *toks);
        if (!toks || (s = ds_tokenize(tok, prompt, strlen(prompt), 0, toks, need, &n)) != DS_OK) {
            free(toks);
            ds_model_close(m);
            return ds_cli_fail("generate", s ? s : DS_ERR_NO_MEMORY);
        }
    }
    if (!tok)
        ids = true;
    ds_text_stream *ts = NULL;
    if (!ids && (s = ds_text_stream_open(&ts, tok, 0)) != DS_OK) {
        free(toks);
        ds_model_close(m);
        return ds_cli_fail("generate", s);
    }
    if (!ids)
        fwrite(prompt ? prompt : "", 1, prompt ? strlen(prompt) : 0, stdout);
    sp.n_ctx = n_ctx ? (uint32_t)n_ctx : (uint32_t)(n + (size_t)n_gen);
    sp.kv_type = (uint32_t)kv;
    sp.ignore_eos = !stop;
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
            break; /* DS_DONE: an end-of-generation token (not appended) */
        produced++;
        if (ids) {
            printf("%s%d", produced > 1 ? " " : "", t);
        } else {
            char piece[4096];
            size_t len = 0;
            if (ds_text_stream_push(ts, t, piece, sizeof piece, &len) == DS_OK)
                fwrite(piece, 1, len, stdout);
        }
        fflush(stdout);
    }
    if (ts) {
        char piece[64];
        size_t len = 0;
        if (ds_text_stream_flush(ts, piece, sizeof piece, &len) == DS_OK)
            fwrite(piece, 1, len, stdout);
        ds_text_stream_close(ts);
    }
    double t2 = now_s();
    printf("\n");
    fflush(stdout);
    int rc = 0;
    if (s != DS_OK && s != DS_DONE && s != DS_ERR_CONTEXT_FULL)
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
