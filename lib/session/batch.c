/*
 * lib/session/batch.c — ds_session_step_batch: one step of several sessions in one forward pass.
 *
 * Each session samples exactly as in ds_session_step (ds_session_pre_step); the sessions that
 * have a token to run go through ds2_forward_batch together (the weights are read once per
 * step; attention runs per session over its own cache); then each appends and decodes its token
 * (ds_session_post_step). The per-call arrays live in the first session of the array, the
 * batch logits in the compute session (the first that runs); both grow on demand, so a loop of
 * batched steps of the same size allocates nothing after its first step.
 */
#include "session/session_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct batch_scratch {
    ds_session **run;
    ds2_state **states;
    ds_rng *saved;
    size_t *idx;
    int32_t *tok;
} batch_scratch;

/* Arrays for n sessions in one allocation kept by `owner` (grown on demand). */
static bool reserve_arrays(ds_session *owner, size_t n, batch_scratch *b)
{
    const size_t per = sizeof(ds_session *) + sizeof(ds2_state *) + sizeof(ds_rng) +
                       sizeof(size_t) + sizeof(int32_t);
    if (n > owner->batch_cap) {
        void *mem = realloc(owner->batch_mem, n * per);
        if (!mem)
            return false;
        owner->batch_mem = mem;
        owner->batch_cap = n;
    }
    uint8_t *p = owner->batch_mem; /* largest alignment first */
    b->saved = (ds_rng *)p;
    p += n * sizeof(ds_rng);
    b->run = (ds_session **)p;
    p += n * sizeof(ds_session *);
    b->states = (ds2_state **)p;
    p += n * sizeof(ds2_state *);
    b->idx = (size_t *)p;
    p += n * sizeof(size_t);
    b->tok = (int32_t *)p;
    return true;
}

static bool reserve_logits(ds_session *c, size_t rows)
{
    if (rows <= c->batch_rows)
        return true;
    float *b = realloc(c->batch_logits, rows * (size_t)c->n_vocab * sizeof(float));
    if (!b)
        return false;
    c->batch_logits = b;
    c->batch_rows = rows;
    return true;
}

ds_status ds_session_step_batch(ds_session *const *sessions, size_t n, int32_t *tokens,
                                ds_status *results)
{
    if (!sessions || !tokens || !results || n == 0)
        return ds_err_thread(DS_ERR_INVALID_ARG,
                             "ds_session_step_batch: NULL array or n == 0");
    if (n > UINT32_MAX)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_step_batch: n %zu is too large", n);
    for (size_t i = 0; i < n; i++) {
        if (!sessions[i])
            return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_step_batch: session %zu is NULL", i);
        if (sessions[i]->model != sessions[0]->model)
            return ds_err_thread(DS_ERR_INVALID_ARG,
                                 "ds_session_step_batch: session %zu belongs to another model than "
                                 "session 0", i);
    }
    batch_scratch b;
    ds_status ret = DS_OK;
    if (!reserve_arrays(sessions[0], n, &b))
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_session_step_batch: out of memory");
    /* distinct sessions: sort a copy of the pointers */
    memcpy(b.run, sessions, n * sizeof *b.run);
    for (size_t i = 1; i < n; i++) { /* insertion sort by address; n is small in practice */
        ds_session *v = b.run[i];
        size_t j = i;
        while (j > 0 && (uintptr_t)b.run[j - 1] > (uintptr_t)v) {
            b.run[j] = b.run[j - 1];
            j--;
        }
        b.run[j] = v;
    }
    for (size_t i = 1; i < n; i++)
        if (b.run[i] == b.run[i - 1]) {
            return ds_err_thread(DS_ERR_INVALID_ARG,
                                 "ds_session_step_batch: a session appears twice in the batch");
        }

    /* sample */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ds_session *s = sessions[i];
        results[i] = ds_session_pre_step(s, &tokens[i], &b.saved[i]);
        if (results[i] == DS_OK) {
            b.run[m] = s;
            b.states[m] = s->st;
            b.tok[m] = tokens[i];
            b.idx[m] = i;
            m++;
        }
    }
    if (m == 0)
        return DS_OK;
    ds_session *c = b.run[0];
    if (!reserve_logits(c, m)) {
        for (size_t j = 0; j < m; j++) {
            size_t i = b.idx[j];
            sessions[i]->rng = b.saved[i];
            tokens[i] = -1;
            results[i] = DS_ERR_NO_MEMORY;
        }
        return ds_err_thread(DS_ERR_NO_MEMORY,
                             "ds_session_step_batch: cannot allocate logits for %zu sessions", m);
    }

    ds_err err;
    ds_err_clear(&err);
    ds_status st = ds2_forward_batch(b.states, b.tok, (uint32_t)m, c->batch_logits, &err);
    for (size_t j = 0; j < m; j++) {
        size_t i = b.idx[j];
        ds_session *s = b.run[j];
        if (ds2_state_pos(s->st) == s->n_tokens + 1) {
            /* this session's pass completed (always, unless a later group failed) */
            results[i] = ds_session_post_step(s, b.tok[j], c->batch_logits + j * (size_t)c->n_vocab);
        } else {
            s->rng = b.saved[i];
            tokens[i] = -1;
            results[i] = st;
            ds_session_fail(s, &err);
        }
    }
    if (st != DS_OK) {
        if (st == DS_ERR_CANCELLED)
            for (size_t i = 0; i < n; i++)
                atomic_store(&sessions[i]->cancel, 0);
        ret = ds_err_publish(&err);
    }
    return ret;
}
