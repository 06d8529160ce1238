/*
 * examples/ds/cmd_perplexity.c — `ds perplexity -m MODEL -f FILE [-c CTX]`: the model's
 * perplexity on a text file.
 *
 * Method (stated so other frameworks can reproduce it): tokenize the whole file with the
 * model's tokenizer and its BOS setting; cut the tokens into non-overlapping windows of CTX
 * tokens (the last may be shorter); run each window from an empty cache at positions 0..n-1;
 * every token of a window except its first is predicted from the logits of the one before;
 * ppl = exp(mean negative log-likelihood over all predicted tokens), log-softmax in double.
 */
#include "cli.h"

#include <deepseek/session.h>
#include <deepseek/tokenizer.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds perplexity -m MODEL -f FILE [-c CTX] [-t THREADS] [--precision f32|bf16]\n\n"
               "Perplexity of the model on FILE: non-overlapping windows of CTX tokens (default:\n"
               "the model's training context, at most 512), each from an empty cache; prints one\n"
               "JSON object {\"ppl\", \"mean_nll\", \"n_tokens\", \"n_predicted\", \"ctx\"}.\n");
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = len;
    return buf;
}

int ds_cmd_perplexity(int argc, char **argv)
{
    const char *model_path = NULL, *file = NULL, *prec = "bf16";
    long ctx = 0;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (ds_cli_opt(argc, argv, &i, "-f", "--file", &v)) {
            file = v;
        } else if (ds_cli_opt(argc, argv, &i, "-c", "--ctx", &v)) {
            ctx = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-t", "--threads", &v)) {
            threads = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--precision", &v)) {
            prec = v;
        } else {
            fprintf(stderr, "ds perplexity: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    if (!model_path || !file || ctx < 0 || ctx == 1 || threads < 0 ||
        (strcmp(prec, "f32") != 0 && strcmp(prec, "bf16") != 0)) {
        help(stderr);
        return DS_EXIT_USAGE;
    }
    size_t len = 0;
    char *text = slurp(file, &len);
    if (!text) {
        fprintf(stderr, "ds perplexity: cannot read %s\n", file);
        return ds_cli_exit_code(DS_ERR_IO);
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.precision = strcmp(prec, "f32") == 0 ? DS_PRECISION_F32 : DS_PRECISION_FAST;
    mp.n_threads = threads;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, model_path, &mp);
    if (s != DS_OK) {
        free(text);
        return ds_cli_fail("perplexity", s);
    }
    const ds_tokenizer *tok = ds_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!tok) {
        fprintf(stderr, "ds perplexity: the model has no tokenizer\n");
        free(text);
        ds_model_close(m);
        return DS_EXIT_USAGE;
    }
    size_t need = 0;
    s = ds_tokenize(tok, text, len, 0, NULL, 0, &need);
    if (s == DS_OK || s == DS_ERR_BUFFER_TOO_SMALL) {
        ids = malloc((need ? need : 1) * sizeof *ids);
        s = ids ? ds_tokenize(tok, text, len, 0, ids, need, &n) : DS_ERR_NO_MEMORY;
    }
    free(text);
    if (s != DS_OK) {
        free(ids);
        ds_model_close(m);
        return ds_cli_fail("perplexity", s);
    }
    ds_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    ds_model_info_get(m, &in);
    if (ctx == 0)
        ctx = in.n_ctx_train < 512 ? in.n_ctx_train : 512;
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.n_ctx = (uint32_t)ctx;
    sp.n_batch = (uint32_t)ctx;
    sp.logits_all = 1;
    ds_session *ss = NULL;
    s = ds_session_open(&ss, m, &sp);
    double nll = 0.0;
    size_t predicted = 0;
    for (size_t w0 = 0; s == DS_OK && w0 < n; w0 += (size_t)ctx) {
        size_t wn = n - w0 < (size_t)ctx ? n - w0 : (size_t)ctx;
        if (wn < 2)
            break;
        s = ds_session_reset(ss);
        if (s == DS_OK)
            s = ds_session_feed(ss, ids + w0, wn);
        for (size_t i = 0; s == DS_OK && i + 1 < wn; i++) {
            const float *lg;
            size_t nv;
            s = ds_session_logits(ss, (int64_t)i, &lg, &nv);
            if (s != DS_OK)
                break;
            double mx = lg[0];
            for (size_t j = 1; j < nv; j++)
                mx = lg[j] > mx ? lg[j] : mx;
            double sum = 0.0;
            for (size_t j = 0; j < nv; j++)
                sum += exp((double)lg[j] - mx);
            nll += -((double)lg[ids[w0 + i + 1]] - mx - log(sum));
            predicted++;
        }
    }
    int rc = 0;
    if (s != DS_OK) {
        rc = ds_cli_fail("perplexity", s);
    } else {
        double mean = predicted ? nll / (double)predicted : 0.0;
        printf("{\"ppl\": %.6f, \"mean_nll\": %.9f, \"n_tokens\": %zu, \"n_predicted\": %zu, "
               "\"ctx\": %ld}\n", exp(mean), mean, n, predicted, ctx);
    }
    ds_session_close(ss);
    free(ids);
    ds_model_close(m);
    return rc;
}
