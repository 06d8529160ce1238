/*
 * lib/api/session_api.c — public session functions: params, open/close, feed, logits, step,
 * rewind/reset, cancel, sampler settings, logit bias, stop strings, text, memory.
 *
 * A session owns a forward state (KV cache + scratch), the token list, the logits of the last
 * feed/step, the sampler state and the text machinery of the current generation (lib/session/
 * gen.c). Everything is allocated at open; feed and step allocate nothing. Save/restore is in
 * lib/session/state_io.c, batched steps in lib/session/batch.c.
 */
#include "session/session_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------------------ */

ds_status ds_session_fail(ds_session *s, const ds_err *e)
{
    if (s && e->status < 0)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", e->msg[0] ? e->msg : ds_status_string(e->status));
    return ds_err_publish(e);
}

ds_status ds_session_failf(ds_session *s, ds_status st, const char *fmt, ...)
{
    ds_err e;
    e.status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return ds_session_fail(s, &e);
}

#define sfail ds_session_fail
#define sfailf ds_session_failf

/* ---- params ------------------------------------------------------------------------------ */

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
    d.n_threads = 0;
    d.seed = 0;
    d.temperature = 0.0f;
    d.top_k = 0;
    d.top_p = 1.0f;
    d.min_p = 0.0f;
    d.repeat_penalty = 1.0f;
    d.frequency_penalty = 0.0f;
    d.presence_penalty = 0.0f;
    d.penalty_last_n = 64;
    d.max_tokens = 0;
    d.reasoning = DS_REASONING_MODE_AUTO;
    d.render_special = 0;
    d.ignore_eos = 0;
    d.fit_context_to_budget = 0;
    d.memory_budget = 0;
    memcpy(params, &d, n);
    return DS_OK;
}

/* Range checks of the sampler fields; message into msg. */
static bool sampling_ok(const ds_session_params *p, char *msg, size_t cap)
{
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature)) {
        snprintf(msg, cap, "temperature %g must be >= 0", (double)p->temperature);
        return false;
    }
    if (p->top_k < 0) {
        snprintf(msg, cap, "top_k %d must be >= 0", p->top_k);
        return false;
    }
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) {
        snprintf(msg, cap, "top_p %g must be in (0, 1]", (double)p->top_p);
        return false;
    }
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) {
        snprintf(msg, cap, "min_p %g must be in [0, 1]", (double)p->min_p);
        return false;
    }
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty)) {
        snprintf(msg, cap, "repeat_penalty %g must be > 0 (1 = off)", (double)p->repeat_penalty);
        return false;
    }
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty)) {
        snprintf(msg, cap, "frequency_penalty and presence_penalty must be finite");
        return false;
    }
    if (p->penalty_last_n < -1) {
        snprintf(msg, cap, "penalty_last_n %d must be >= -1", p->penalty_last_n);
        return false;
    }
    return true;
}

/* Copy the caller's params over the defaults and check them; resolves n_ctx. */
static ds_status resolve_params(const ds_model *model, const ds_session_params *params,
                                ds_session_params *p, const char *fn)
{
    ds_session_default_params(p, sizeof *p);
    if (params) {
        ds_status st = ds_params_copy(p, sizeof *p, params, fn);
        if (st != DS_OK)
            return st;
    }
    if (!model->data.w.layers || !model->mm)
        return ds_err_thread(DS_ERR_UNSUPPORTED,
                             "%s: the model was opened vocab-only and has no weights", fn);
    const ds2_hparams *hp = &model->data.hp;
    if (p->n_ctx == 0)
        p->n_ctx = hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p->kv_type > DS_KV_BF16)
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: unknown kv_type %u", fn, p->kv_type);
    if (p->n_batch == 0 || p->n_batch > 65536)
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: n_batch %u is not in [1, 65536]", fn,
                             p->n_batch);
    if (p->n_ctx > (1u << 24))
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: n_ctx %u is larger than 2^24", fn, p->n_ctx);
    if (p->n_threads < 0 || p->n_threads > 1024)
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: n_threads %d is not in [0, 1024]", fn,
                             p->n_threads);
    if (p->reasoning > DS_REASONING_MODE_ON)
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: unknown reasoning mode %u", fn, p->reasoning);
    char msg[200];
    if (!sampling_ok(p, msg, sizeof msg))
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: %s", fn, msg);
    return DS_OK;
}

static int session_threads(const ds_model *m, const ds_session_params *p)
{
    return p->n_threads > 0 ? p->n_threads : ds_mm_threads(m->mm);
}

/* Bytes of everything a session allocates for these (resolved) params. */
static ds_status plan_bytes(const ds_model *m, const ds_session_params *p, uint64_t *bytes,
                            ds_err *err)
{
    ds2_state_params sp;
    memset(&sp, 0, sizeof sp);
    sp.n_ctx = p->n_ctx;
    sp.kv_type = (ds_kv_type)p->kv_type;
    sp.n_batch = p->n_batch;
    uint64_t b = 0;
    ds_status st = ds2_state_estimate(&m->data, session_threads(m, p), &sp, &b, err);
    if (st != DS_OK)
        return st;
    const uint64_t nv = m->data.hp.n_vocab ? m->data.hp.n_vocab : (uint64_t)m->data.w.output.ne[1];
    const uint64_t rows = p->logits_all ? p->n_batch : 1;
    b += (uint64_t)p->n_ctx * sizeof(int32_t);                 /* tokens */
    b += (rows + 1) * nv * sizeof(float);                       /* logits A + B */
    b += ds_sampler_scratch_bytes((size_t)nv, p->n_ctx);        /* sampler */
    b += sizeof(ds_session) + 4 * 1024;                         /* handle, text buffers */
    *bytes = b;
    return DS_OK;
}

ds_status ds_session_memory_needed(const ds_model *model, const ds_session_params *params,
                                   uint64_t *bytes)
{
    if (!model || !bytes)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_memory_needed: NULL argument");
    *bytes = 0;
    ds_session_params p;
    ds_status st = resolve_params(model, params, &p, "ds_session_memory_needed");
    if (st != DS_OK)
        return st;
    ds_err err;
    ds_err_clear(&err);
    st = plan_bytes(model, &p, bytes, &err);
    return st == DS_OK ? DS_OK : ds_err_publish(&err);
}

/* ---- open / close ------------------------------------------------------------------------ */

void ds_session_close(ds_session *s)
{
    if (!s)
        return;
    ds2_state_free(s->st);
    ds_mm_free(s->own_mm);
    ds_gen_free(s);
    free(s->tokens);
    free(s->logits_a);
    free(s->logits_b);
    free(s->sample_scratch);
    free(s->bias);
    free(s->batch_logits);
    free(s->batch_mem);
    free(s);
}

int ds_session_abort_cb(void *user_data)
{
    ds_session *s = user_data;
    if (atomic_load_explicit(&s->cancel, memory_order_relaxed))
        return 1;
    return s->params.abort_fn ? s->params.abort_fn(s->params.abort_user_data) : 0;
}

static const char *mib(uint64_t b, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    return buf;
}

ds_status ds_session_open(ds_session **out, ds_model *model, const ds_session_params *params)
{
    if (!out)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: out is NULL");
    *out = NULL;
    if (!model)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_open: model is NULL");
    ds_session_params p;
    ds_status st = resolve_params(model, params, &p, "ds_session_open");
    if (st != DS_OK)
        return st;
    ds_err err;
    ds_err_clear(&err);

    /* memory budget: decided before anything large is allocated */
    uint64_t need = 0;
    if ((st = plan_bytes(model, &p, &need, &err)) != DS_OK)
        return ds_err_publish(&err);
    if (p.memory_budget > 0 && need > p.memory_budget) {
        char a[32], b[32];
        if (!p.fit_context_to_budget)
            return ds_err_thread(DS_ERR_NO_MEMORY,
                                 "ds_session_open: a %u-token session needs %s (%llu bytes), more "
                                 "than the memory budget of %s (%llu bytes); lower n_ctx or set "
                                 "fit_context_to_budget",
                                 p.n_ctx, mib(need, a, sizeof a), (unsigned long long)need,
                                 mib(p.memory_budget, b, sizeof b),
                                 (unsigned long long)p.memory_budget);
        /* the largest n_ctx that fits (the size grows with n_ctx) */
        ds_session_params q = p;
        uint32_t lo = 0, hi = p.n_ctx; /* lo fits (0 = nothing known), hi does not */
        while (hi - lo > 1) {
            q.n_ctx = lo + (hi - lo) / 2;
            uint64_t b2 = 0;
            if ((st = plan_bytes(model, &q, &b2, &err)) != DS_OK)
                return ds_err_publish(&err);
            if (b2 <= p.memory_budget)
                lo = q.n_ctx;
            else
                hi = q.n_ctx;
        }
        if (lo == 0) {
            q.n_ctx = 1;
            uint64_t b1 = 0;
            plan_bytes(model, &q, &b1, &err);
            return ds_err_thread(DS_ERR_NO_MEMORY,
                                 "ds_session_open: even a 1-token session needs %s (%llu bytes), "
                                 "more than the memory budget of %s (%llu bytes)",
                                 mib(b1, a, sizeof a), (unsigned long long)b1,
                                 mib(p.memory_budget, b, sizeof b),
                                 (unsigned long long)p.memory_budget);
        }
        ds_log(&model->logger, DS_LOG_INFO,
               "session: n_ctx lowered from %u to %u to fit the memory budget of %llu bytes",
               p.n_ctx, lo, (unsigned long long)p.memory_budget);
        p.n_ctx = lo;
    }

    ds_session *s = calloc(1, sizeof *s);
    if (!s)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_session_open: out of memory");
    s->model = model;
    s->params = p;
    s->n_ctx = p.n_ctx;
    atomic_init(&s->cancel, 0);
    s->tok = model->tokenizer;
    if (p.reasoning == DS_REASONING_MODE_ON) {
        s->reasoning_on = s->tok != NULL;
    } else if (p.reasoning == DS_REASONING_MODE_AUTO && s->tok) {
        ds_chat_template t;
        s->reasoning_on = ds_chat_detect(s->tok, &t) == DS_OK && t == DS_CHAT_TEMPLATE_DEEPSEEK_R1;
    }
    ds_mm *mm = model->mm;
    if (p.n_threads > 0 && p.n_threads != ds_mm_threads(model->mm)) {
        if ((st = ds_mm_create(&s->own_mm, p.n_threads, ds_mm_precision(model->mm), &err)) != DS_OK) {
            ds_session_close(s);
            return ds_err_publish(&err);
        }
        ds_mm_set_isa(s->own_mm, ds_mm_isa(model->mm));
        mm = s->own_mm;
    }
    ds2_state_params sp;
    memset(&sp, 0, sizeof sp);
    sp.n_ctx = p.n_ctx;
    sp.kv_type = (ds_kv_type)p.kv_type;
    sp.n_batch = p.n_batch;
    sp.abort_fn = ds_session_abort_cb;
    sp.abort_user_data = s;
    if ((st = ds2_state_create(&s->st, &model->data, mm, &sp, &err)) != DS_OK) {
        ds_session_close(s);
        return ds_err_publish(&err);
    }
    s->n_vocab = ds2_state_n_vocab(s->st);
    s->logits_cap_rows = p.logits_all ? p.n_batch : 1;
    s->tokens = malloc((size_t)p.n_ctx * sizeof *s->tokens);
    s->logits_a = malloc(s->logits_cap_rows * (size_t)s->n_vocab * sizeof(float));
    s->logits_b = malloc((size_t)s->n_vocab * sizeof(float));
    s->sample_scratch = malloc(ds_sampler_scratch_bytes(s->n_vocab, p.n_ctx));
    if (!s->tokens || !s->logits_a || !s->logits_b || !s->sample_scratch) {
        ds_session_close(s);
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_session_open: cannot allocate a %u-token session",
                             p.n_ctx);
    }
    if ((st = ds_gen_init(s, &err)) != DS_OK) {
        ds_session_close(s);
        return ds_err_publish(&err);
    }
    ds_rng_seed(&s->rng, p.seed);
    ds_gen_start(s);
    s->bytes = ds2_state_bytes(s->st) + (uint64_t)p.n_ctx * sizeof(int32_t) +
               (s->logits_cap_rows + 1) * (uint64_t)s->n_vocab * sizeof(float) +
               ds_sampler_scratch_bytes(s->n_vocab, p.n_ctx) + sizeof *s;
    *out = s;
    return DS_OK;
}

const char *ds_session_errmsg(const ds_session *s)
{
    return s ? s->errmsg : "session handle is NULL";
}

uint32_t ds_session_n_ctx(const ds_session *s)
{
    return s ? s->n_ctx : 0;
}

/* ---- feed -------------------------------------------------------------------------------- */

static void consume_cancel(ds_session *s, ds_status st)
{
    if (st == DS_ERR_CANCELLED)
        atomic_store(&s->cancel, 0);
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
    if (n > (size_t)s->n_ctx - s->n_tokens)
        return sfailf(s, DS_ERR_CONTEXT_FULL,
                      "ds_session_feed: %zu tokens do not fit: %zu of %u context positions are used",
                      n, s->n_tokens, s->n_ctx);

    const bool all = s->params.logits_all != 0;
    const size_t B = all ? s->logits_cap_rows : s->params.n_batch;
    ds_err err;
    ds_err_clear(&err);
    s->logits_rows = 0;
    s->cur_logits = s->logits_a;
    ds_status st = DS_OK;
    size_t done = 0;
    while (done < n) {
        const size_t chunk = n - done < B ? n - done : B;
        const bool last = done + chunk == n;
        uint32_t before = ds2_state_pos(s->st);
        st = ds2_forward(s->st, tokens + done, (uint32_t)chunk, all || last ? s->logits_a : NULL,
                         all, &err);
        uint32_t after = ds2_state_pos(s->st);
        /* keep the token list consistent with the cache, whatever happened */
        if (after > before)
            memcpy(s->tokens + before, tokens + done, (size_t)(after - before) * sizeof(int32_t));
        s->n_tokens = after;
        if (st != DS_OK)
            break;
        done += chunk;
        if (s->params.progress_fn)
            s->params.progress_fn(s->params.progress_user_data, done, n);
    }
    ds_gen_start(s);
    if (st != DS_OK) {
        consume_cancel(s, st);
        return sfail(s, &err);
    }
    s->logits_rows = all ? n - (n - 1) / B * B : 1;
    return DS_OK;
}

ds_status ds_session_feed_text(ds_session *s, const char *text, size_t len, uint32_t flags)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_feed_text: session is NULL");
    if (!text && len > 0)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_feed_text: text is NULL");
    if (!s->tok)
        return sfailf(s, DS_ERR_UNSUPPORTED,
                      "ds_session_feed_text: the model has no (supported) tokenizer; feed token ids");
    if ((flags & DS_TOKENIZE_ADD_BOS) && (flags & DS_TOKENIZE_NO_BOS))
        return sfailf(s, DS_ERR_INVALID_ARG,
                      "ds_session_feed_text: DS_TOKENIZE_ADD_BOS and DS_TOKENIZE_NO_BOS together");
    if (!(flags & (DS_TOKENIZE_ADD_BOS | DS_TOKENIZE_NO_BOS)) && s->n_tokens > 0)
        flags |= DS_TOKENIZE_NO_BOS; /* BOS by the model's setting only at position 0 */
    size_t n = 0;
    ds_status st = ds_tokenize(s->tok, text, len, flags, NULL, 0, &n);
    if (st != DS_OK && st != DS_ERR_BUFFER_TOO_SMALL) {
        ds_err e;
        e.status = st;
        snprintf(e.msg, sizeof e.msg, "ds_session_feed_text: %s", ds_last_error());
        return sfail(s, &e);
    }
    if (n == 0)
        return DS_OK;
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids)
        return sfailf(s, DS_ERR_NO_MEMORY, "ds_session_feed_text: out of memory for %zu tokens", n);
    st = ds_tokenize(s->tok, text, len, flags, ids, n, &n);
    if (st != DS_OK) {
        free(ids);
        ds_err e;
        e.status = st;
        snprintf(e.msg, sizeof e.msg, "ds_session_feed_text: %s", ds_last_error());
        return sfail(s, &e);
    }
    st = ds_session_feed(s, ids, n);
    free(ids);
    return st;
}

/* ---- logits ------------------------------------------------------------------------------ */

ds_status ds_session_logits(ds_session *s, int64_t index, const float **logits, size_t *n_vocab)
{
    if (!s || !logits)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_logits: NULL argument");
    if (s->logits_rows == 0)
        return sfailf(s, DS_ERR_STATE, "ds_session_logits: no logits (nothing fed since the last "
                                       "open, rewind, reset or failed feed)");
    int64_t rows = (int64_t)s->logits_rows;
    if (index == -1)
        index = rows - 1;
    if (index < 0 || index >= rows)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_logits: index %lld is not in [0, %lld)",
                      (long long)index, (long long)rows);
    *logits = s->cur_logits + (size_t)index * s->n_vocab;
    if (n_vocab)
        *n_vocab = s->n_vocab;
    return DS_OK;
}

/* ---- step -------------------------------------------------------------------------------- */

float *ds_session_spare_logits(ds_session *s)
{
    return s->cur_logits == s->logits_b ? s->logits_a : s->logits_b;
}

static int32_t sample(ds_session *s)
{
    const ds_session_params *p = &s->params;
    ds_sampler_cfg cfg = {p->temperature,    p->top_k,          p->top_p,           p->min_p,
                          p->repeat_penalty, p->frequency_penalty, p->presence_penalty};
    size_t w = 0;
    if (p->penalty_last_n != 0 && ds_sampler_uses_penalties(&cfg))
        w = p->penalty_last_n < 0 || (size_t)p->penalty_last_n > s->n_tokens ? s->n_tokens
                                                                            : (size_t)p->penalty_last_n;
    const float *last = s->cur_logits + (s->logits_rows - 1) * (size_t)s->n_vocab;
    return ds_sample(&cfg, &s->rng, last, s->n_vocab, s->bias, s->n_bias,
                     s->tokens + s->n_tokens - w, w, s->sample_scratch);
}

ds_status ds_session_pre_step(ds_session *s, int32_t *token, ds_rng *saved)
{
    *token = -1;
    ds_gen_clear_queue(s);
    if (s->stop != DS_STOP_NONE)
        return DS_DONE;
    if (s->logits_rows == 0)
        return sfailf(s, DS_ERR_STATE, "ds_session_step: no logits: feed a prompt first");
    if (s->n_tokens >= s->n_ctx)
        return sfailf(s, DS_ERR_CONTEXT_FULL, "ds_session_step: the context of %u tokens is full",
                      s->n_ctx);
    *saved = s->rng;
    int32_t t = sample(s);
    if (t < 0) {
        s->rng = *saved;
        return sfailf(s, DS_ERR_STATE, "ds_session_step: no token can be sampled (every logit is "
                                       "-inf or NaN after the logit bias and penalties)");
    }
    *token = t;
    if (s->tok && !s->params.ignore_eos && ds_tokenizer_is_eog(s->tok, t)) {
        ds_gen_finish(s, DS_STOP_EOS);
        return DS_DONE;
    }
    return DS_OK;
}

ds_status ds_session_post_step(ds_session *s, int32_t token, const float *row)
{
    float *dst = ds_session_spare_logits(s);
    if (row != dst)
        memcpy(dst, row, (size_t)s->n_vocab * sizeof(float));
    s->cur_logits = dst;
    s->logits_rows = 1;
    s->tokens[s->n_tokens++] = token;
    s->n_generated++;
    if (ds_gen_token(s, token)) {
        ds_gen_finish(s, DS_STOP_STRING);
        return DS_DONE;
    }
    if (s->params.max_tokens && s->n_generated >= s->params.max_tokens) {
        ds_gen_finish(s, DS_STOP_LIMIT);
        return DS_DONE;
    }
    return DS_OK;
}

ds_status ds_session_step(ds_session *s, int32_t *token)
{
    if (!s || !token)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_step: NULL argument");
    ds_rng saved;
    int32_t t;
    ds_status st = ds_session_pre_step(s, &t, &saved);
    *token = t;
    if (st != DS_OK)
        return st;
    ds_err err;
    ds_err_clear(&err);
    float *out = ds_session_spare_logits(s);
    st = ds2_forward(s->st, &t, 1, out, false, &err);
    if (st != DS_OK) {
        s->rng = saved; /* stepping again gives the same token */
        *token = -1;
        if (ds2_state_pos(s->st) != s->n_tokens) /* cannot happen: a failed chunk commits nothing */
            ds2_state_truncate(s->st, (uint32_t)s->n_tokens, NULL);
        consume_cancel(s, st);
        return sfail(s, &err);
    }
    return ds_session_post_step(s, t, out);
}

ds_stop_reason ds_session_stop_reason(const ds_session *s)
{
    return s ? s->stop : DS_STOP_NONE;
}

const char *ds_stop_reason_name(ds_stop_reason r)
{
    switch (r) {
    case DS_STOP_NONE: return "none";
    case DS_STOP_EOS: return "eos";
    case DS_STOP_STRING: return "stop-string";
    case DS_STOP_LIMIT: return "limit";
    }
    return NULL;
}

uint32_t ds_session_n_generated(const ds_session *s)
{
    return s ? s->n_generated : 0;
}

ds_status ds_session_text(ds_session *s, ds_text_kind *kind, const char **text, size_t *len)
{
    if (!s || !text || !len)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_text: NULL argument");
    if (s->next_seg < s->n_segs) {
        const ds_text_seg *g = &s->segs[s->next_seg++];
        if (kind)
            *kind = g->kind;
        *text = s->qbuf + g->off;
        *len = g->len;
        return DS_OK;
    }
    *text = NULL;
    *len = 0;
    if (kind)
        *kind = DS_TEXT_ANSWER;
    return s->stop != DS_STOP_NONE ? DS_DONE : DS_AGAIN;
}

/* ---- tokens, rewind, reset, cancel -------------------------------------------------------- */

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
    ds_gen_start(s);
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

void ds_session_cancel(ds_session *s)
{
    if (s)
        atomic_store(&s->cancel, 1);
}

/* ---- sampler settings, logit bias, stop strings ------------------------------------------- */

ds_status ds_session_set_sampling(ds_session *s, const ds_session_params *params)
{
    if (!s || !params)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_set_sampling: NULL argument");
    ds_session_params p;
    ds_session_default_params(&p, sizeof p);
    ds_status st = ds_params_copy(&p, sizeof p, params, "ds_session_set_sampling params");
    if (st != DS_OK)
        return sfailf(s, st, "%s", ds_last_error());
    char msg[200];
    if (!sampling_ok(&p, msg, sizeof msg))
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_set_sampling: %s", msg);
    ds_session_params *q = &s->params;
    q->seed = p.seed;
    q->temperature = p.temperature;
    q->top_k = p.top_k;
    q->top_p = p.top_p;
    q->min_p = p.min_p;
    q->repeat_penalty = p.repeat_penalty;
    q->frequency_penalty = p.frequency_penalty;
    q->presence_penalty = p.presence_penalty;
    q->penalty_last_n = p.penalty_last_n;
    q->max_tokens = p.max_tokens;
    q->ignore_eos = p.ignore_eos;
    return DS_OK;
}

ds_status ds_session_set_seed(ds_session *s, uint64_t seed)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_set_seed: session is NULL");
    s->params.seed = seed;
    ds_rng_seed(&s->rng, seed);
    return DS_OK;
}

ds_status ds_session_set_logit_bias(ds_session *s, int32_t token, float bias)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_set_logit_bias: session is NULL");
    if (token < 0 || (uint32_t)token >= s->n_vocab)
        return sfailf(s, DS_ERR_INVALID_ARG,
                      "ds_session_set_logit_bias: token %d is outside the vocabulary [0, %u)", token,
                      s->n_vocab);
    if (isnan(bias) || bias == INFINITY)
        return sfailf(s, DS_ERR_INVALID_ARG,
                      "ds_session_set_logit_bias: bias %g for token %d must be finite or -inf",
                      (double)bias, token);
    /* binary search in the sorted list */
    size_t lo = 0, hi = s->n_bias;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->bias[mid].token < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    const bool present = lo < s->n_bias && s->bias[lo].token == token;
    if (bias == 0.0f) {
        if (present) {
            memmove(s->bias + lo, s->bias + lo + 1, (s->n_bias - lo - 1) * sizeof *s->bias);
            s->n_bias--;
        }
        return DS_OK;
    }
    if (present) {
        s->bias[lo].bias = bias;
        return DS_OK;
    }
    if (s->n_bias == s->cap_bias) {
        size_t cap = s->cap_bias ? s->cap_bias * 2 : 16;
        ds_logit_bias *b = realloc(s->bias, cap * sizeof *b);
        if (!b)
            return sfailf(s, DS_ERR_NO_MEMORY, "ds_session_set_logit_bias: out of memory");
        s->bias = b;
        s->cap_bias = cap;
    }
    memmove(s->bias + lo + 1, s->bias + lo, (s->n_bias - lo) * sizeof *s->bias);
    s->bias[lo] = (ds_logit_bias){token, bias};
    s->n_bias++;
    return DS_OK;
}

ds_status ds_session_clear_logit_bias(ds_session *s)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_clear_logit_bias: session is NULL");
    s->n_bias = 0;
    return DS_OK;
}

ds_status ds_session_set_stop_strings(ds_session *s, const char *const *strings, size_t n)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_set_stop_strings: session is NULL");
    if (n > 0 && !strings)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_set_stop_strings: strings is NULL");
    if (n > DS_SESSION_MAX_STOPS)
        return sfailf(s, DS_ERR_INVALID_ARG, "ds_session_set_stop_strings: %zu strings (at most %d)",
                      n, DS_SESSION_MAX_STOPS);
    if (n > 0 && !s->tok)
        return sfailf(s, DS_ERR_UNSUPPORTED,
                      "ds_session_set_stop_strings: the model has no tokenizer, so no text");
    char *copy[DS_SESSION_MAX_STOPS];
    size_t lens[DS_SESSION_MAX_STOPS];
    for (size_t i = 0; i < n; i++) {
        size_t L = strings[i] ? strlen(strings[i]) : 0;
        if (L == 0 || L > DS_SESSION_MAX_STOP_LEN) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            return sfailf(s, DS_ERR_INVALID_ARG,
                          "ds_session_set_stop_strings: string %zu is %s (1 to %d bytes)", i,
                          !strings[i] ? "NULL" : L == 0 ? "empty" : "too long",
                          DS_SESSION_MAX_STOP_LEN);
        }
        copy[i] = malloc(L + 1);
        if (!copy[i]) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            return sfailf(s, DS_ERR_NO_MEMORY, "ds_session_set_stop_strings: out of memory");
        }
        memcpy(copy[i], strings[i], L + 1);
        lens[i] = L;
    }
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    for (size_t i = 0; i < n; i++) {
        s->stops[i] = copy[i];
        s->stop_len[i] = lens[i];
    }
    s->n_stops = n;
    return DS_OK;
}

/* ---- memory -------------------------------------------------------------------------------- */

uint64_t ds_session_memory(const ds_session *s)
{
    if (!s)
        return 0;
    return s->bytes + ds_gen_bytes(s) + s->cap_bias * sizeof *s->bias +
           s->batch_rows * (uint64_t)s->n_vocab * sizeof(float);
}

ds_status ds_model_memory(const ds_model *m, ds_model_memory_info *info)
{
    if (!m || !info)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_memory: NULL argument");
    if (info->struct_size < sizeof(uint32_t) || info->struct_size > sizeof(ds_model_memory_info))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_memory: struct_size %u is not in [4, %zu]",
                             info->struct_size, sizeof(ds_model_memory_info));
    ds_model_memory_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = info->struct_size;
    r.mapped = m->map.mode == DS_LOAD_MMAP;
    r.weights = m->map.size;
    uint64_t other = sizeof *m;
    /* tensor table and names */
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++)
        other += sizeof m->gguf.tensors[i] + strlen(m->gguf.tensors[i].name) + 1;
    /* bound layer views */
    other += (uint64_t)m->data.hp.n_layer * sizeof(ds2_layer);
    /* tokenizer: pieces and tables, estimated from the vocabulary size */
    if (m->tokenizer)
        other += (uint64_t)ds_tokenizer_n_vocab(m->tokenizer) * 64;
    r.other = other;
    memcpy(info, &r, info->struct_size);
    return DS_OK;
}
