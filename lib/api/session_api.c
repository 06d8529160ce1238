/*
 * lib/api/session_api.c — public session functions: open/close, feed, logits, step, rewind.
 *
 * A session owns a forward state (KV cache + scratch), the token list, the logits of the last
 * feed/step and the sampler state. Everything is allocated at open; feed and step allocate
 * nothing. The model's matmul context is shared by all sessions of the model.
 */
#include "api/api_internal.h"

#include "forward/deepseek2.h"
#include "sample/sampler.h"

#include "deepseek/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ds_session {
    ds_model *model;
    ds_session_params params;
    ds2_state *st;
    int32_t *tokens;          /* n_ctx entries */
    size_t n_tokens;
    float *logits;            /* (logits_all ? n_batch_max : 1) * n_vocab */
    size_t logits_rows;       /* rows valid after the last feed/step (0 = none) */
    size_t logits_cap_rows;
    uint32_t n_vocab;
    ds_rng rng;
    void *sample_scratch;
    uint64_t bytes;
    char errmsg[DS_ERRMSG_MAX];
};

static ds_status sfail(ds_session *s, const ds_err *e)
{
    if (s && e->status < 0)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", e->msg[0] ? e->msg : ds_status_string(e->status));
    return ds_err_publish(e);
}

static ds_status sfailf(ds_session *s, ds_status st, const char *fmt, ...) DS_PRINTF(3, 4);
static ds_status sfailf(ds_session *s, ds_status st, const char *fmt, ...)
{
    ds_err e;
    e.status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return sfail(s, &e);
}

ds_status ds_session_default_params(ds_session_params *params, size_t struct_size)
{
    if (!params)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_default_params: params is NULL");
    if (struct_size < sizeof(uint32_t))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_default_params: struct_size %zu too small",
                             struct_size);
    ds_session_params d;
    memset(&d, 0, sizeof d);
    size_t n = struct_size < sizeof d ? struct_size : sizeof d;
    d.struct_size = (uint32_t)n;
    d.n_ctx = 0;
    d.n_batch = 256;
    d.kv_type = DS_KV_F32;
    d.logits_all = 0;
    d.seed = 0;
    d.temperature = 0.0f;
    d.top_k = 0;
    d.top_p = 1.0f;
    d.min_p = 0.0f;
    memcpy(params, &d, n);
    return DS_OK;
}

void ds_session_close(ds_session *s)
{
    if (!s)
        return;
    ds2_state_free(s->st);
    free(s->tokens);
    free(s->logits);
    free(s->sample_scratch);
    free(s);
}

ds_status ds_session_open(ds_session **out, ds_model *model, const ds_session_params *params)
{
    if (!out)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: out is NULL");
    *out = NULL;
    if (!model)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: model is NULL");
    ds_session_params p;
    ds_session_default_params(&p, sizeof p);
    if (params) {
        ds_status st = ds_params_copy(&p, sizeof p, params, "ds_session_open params");
        if (st != DS_OK)
            return st;
    }
    if (!model->data.w.layers || !model->mm)
        return ds_err_thread(DS_ERR_UNSUPPORTED,
                             "ds_session_open: the model was opened vocab-only and has no weights");
    const ds2_hparams *hp = &model->data.hp;
    if (p.n_ctx == 0)
        p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.kv_type > DS_KV_BF16)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: unknown kv_type %u", p.kv_type);
    if (p.n_batch == 0 || p.n_batch > 65536)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: n_batch %u is not in [1, 65536]",
                             p.n_batch);
    if (p.n_ctx > (1u << 24))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: n_ctx %u is larger than 2^24",
                             p.n_ctx);
    if (!(p.temperature >= 0.0f) || !(p.top_p > 0.0f && p.top_p <= 1.0f) ||
        !(p.min_p >= 0.0f && p.min_p <= 1.0f) || p.top_k < 0)
        return ds_err_thread(DS_ERR_INVALID_ARG,
                             "ds_session_open: sampler settings out of range (temperature >= 0, "
                             "0 < top_p <= 1, 0 <= min_p <= 1, top_k >= 0)");

    ds_session *s = calloc(1, sizeof *s);
    if (!s)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_session_open: out of memory");
    s->model = model;
    s->params = p;
    s->n_vocab = hp->n_vocab;
    ds_err err;
    ds_err_clear(&err);
    ds2_state_params sp;
    memset(&sp, 0, sizeof sp);
    sp.n_ctx = p.n_ctx;
    sp.kv_type = (ds_kv_type)p.kv_type;
    sp.n_batch = p.n_batch;
    ds_status st = ds2_state_create(&s->st, &model->data, model->mm, &sp, &err);
    if (st != DS_OK) {
        ds_session_close(s);
        return ds_err_publish(&err);
    }
    s->logits_cap_rows = p.logits_all ? p.n_batch : 1;
    s->tokens = malloc((size_t)p.n_ctx * sizeof *s->tokens);
    s->logits = malloc(s->logits_cap_rows * (size_t)s->n_vocab * sizeof(float));
    s->sample_scratch = malloc(ds_sampler_scratch_bytes(s->n_vocab));
    if (!s->tokens || !s->logits || !s->sample_scratch) {
        ds_session_close(s);
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_session_open: cannot allocate %u-token session",
                             p.n_ctx);
    }
    ds_rng_seed(&s->rng, p.seed);
    s->bytes = ds2_state_bytes(s->st) + (uint64_t)p.n_ctx * sizeof(int32_t) +
               s->logits_cap_rows * (uint64_t)s->n_vocab * sizeof(float) +
               ds_sampler_scratch_bytes(s->n_vocab);
    *out = s;
    return DS_OK;
}

const char *ds_session_errmsg(const ds_session *s)
{
    return s ? s->errmsg : "session handle is NULL";
}

/* Run tokens (already validated) and keep logits as requested. */
static ds_status run(ds_session *s, const int32_t *tokens, size_t n, bool all)
{
    ds_err err;
    ds_err_clear(&err);
    s->logits_rows = 0;
    /* with logits_all, the logits buffer holds n_batch rows: run in pieces of that size and
     * keep only the last piece's rows (the host asked for the last feed's logits; a feed
     * longer than n_batch keeps its final n_batch rows) */
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (all && chunk > s->logits_cap_rows)
            chunk = s->logits_cap_rows;
        uint32_t before = ds2_state_pos(s->st);
        ds_status st = ds2_forward(s->st, tokens + done, (uint32_t)chunk, s->logits, all, &err);
        uint32_t after = ds2_state_pos(s->st);
        /* keep the token list consistent with the cache, whatever happened */
        if (after > before)
            memcpy(s->tokens + before, tokens + done, (size_t)(after - before) * sizeof(int32_t));
        s->n_tokens = after;
        if (st != DS_OK) {
            s->logits_rows = 0;
            return sfail(s, &err);
        }
        done += chunk;
        s->logits_rows = all ? chunk : 1;
    }
    return DS_OK;
}

ds_status ds_session_feed(ds_session *s, const int32_t *tokens, size_t n)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_feed: session is NULL");
    if (n == 0)
        return DS_OK;
    if (!tokens)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_feed: tokens is NULL");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->n_vocab)
            return sfailf(s, DS_ERR_INVALID_ARG,
                          "ds_session_feed: token %d at index %zu is outside the vocabulary [0, %u)",
                          tokens[i], i, s->n_vocab);
    if (n > (size_t)s->params.n_ctx - s->n_tokens)
        return sfailf(s, DS_ERR_CONTEXT_FULL,
                      "ds_session_feed: %zu tokens do not fit: %zu of %u context positions are used",
                      n, s->n_tokens, s->params.n_ctx);
    return run(s, tokens, n, s->params.logits_all != 0);
}

ds_status ds_session_logits(ds_session *s, int64_t index, const float **logits, size_t *n_vocab)
{
    if (!s || !logits)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_logits: NULL argument");
    if (s->logits_rows == 0)
        return sfailf(s, DS_ERR_STATE, "ds_session_logits: no logits (nothing fed since the last "
                                       "open, rewind or reset)");
    int64_t rows = (int64_t)s->logits_rows;
    if (index == -1)
        index = rows - 1;
    if (index < 0 || index >= rows)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_logits: index %lld is not in [0, %lld)",
                      (long long)index, (long long)rows);
    *logits = s->logits + (size_t)index * s->n_vocab;
    if (n_vocab)
        *n_vocab = s->n_vocab;
    return DS_OK;
}

ds_status ds_session_step(ds_session *s, int32_t *token)
{
    if (!s || !token)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_step: NULL argument");
    if (s->logits_rows == 0)
        return sfailf(s, DS_ERR_STATE, "ds_session_step: feed a prompt first");
    if (s->n_tokens >= s->params.n_ctx)
        return sfailf(s, DS_ERR_CONTEXT_FULL, "ds_session_step: the context of %u tokens is full",
                      s->params.n_ctx);
    const float *last = s->logits + (s->logits_rows - 1) * (size_t)s->n_vocab;
    ds_sampler_cfg cfg = {s->params.temperature, s->params.top_k, s->params.top_p, s->params.min_p};
    int32_t t = ds_sample(&cfg, &s->rng, last, s->n_vocab, s->sample_scratch);
    ds_status st = run(s, &t, 1, false);
    if (st != DS_OK)
        return st;
    *token = t;
    return DS_OK;
}

size_t ds_session_n_tokens(const ds_session *s)
{
    return s ? s->n_tokens : 0;
}

ds_status ds_session_tokens(const ds_session *s, const int32_t **tokens, size_t *n)
{
    if (!s || !tokens || !n)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_tokens: NULL argument");
    *tokens = s->tokens;
    *n = s->n_tokens;
    return DS_OK;
}

ds_status ds_session_rewind(ds_session *s, size_t n)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_rewind: session is NULL");
    if (n > s->n_tokens)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_rewind: %zu tokens requested, %zu present",
                      n, s->n_tokens);
    ds_err err;
    ds_err_clear(&err);
    ds_status st = ds2_state_truncate(s->st, (uint32_t)(s->n_tokens - n), &err);
    if (st != DS_OK)
        return sfail(s, &err);
    s->n_tokens -= n;
    s->logits_rows = 0;
    return DS_OK;
}

ds_status ds_session_reset(ds_session *s)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_reset: session is NULL");
    ds_status st = ds_session_rewind(s, s->n_tokens);
    if (st == DS_OK)
        ds_rng_seed(&s->rng, s->params.seed);
    return st;
}

uint64_t ds_session_memory(const ds_session *s)
{
    return s ? s->bytes : 0;
}
