/*
 * lib/session/session_internal.h — the struct behind ds_session and the pieces shared by the
 * session files: lib/api/session_api.c (public functions, the step), lib/session/gen.c (text of
 * a generation: UTF-8 stream, stop strings, reasoning split, the text queue),
 * lib/session/batch.c (ds_session_step_batch) and lib/session/state_io.c (save/restore).
 */
#ifndef DS_SESSION_SESSION_INTERNAL_H
#define DS_SESSION_SESSION_INTERNAL_H

#include "api/api_internal.h"
#include "forward/deepseek2.h"
#include "sample/sampler.h"

#include "deepseek/chat.h"
#include "deepseek/session.h"
#include "deepseek/tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>

#define DS_SESSION_MAX_STOPS 64
#define DS_SESSION_MAX_STOP_LEN 256

/* one classified piece of text in the queue of the last step */
typedef struct ds_text_seg {
    ds_text_kind kind;
    size_t off, len;
} ds_text_seg;

struct ds_session {
    ds_model *model;
    ds_session_params params;  /* full-size copy; n_ctx resolved */
    ds_mm *own_mm;             /* per-session threads (NULL: the model's ds_mm) */
    ds2_state *st;
    uint32_t n_vocab;
    uint32_t n_ctx;

    int32_t *tokens;           /* n_ctx entries */
    size_t n_tokens;

    /* logits: A (logits_cap_rows rows, written by feeds) and B (one row); a step writes into
     * the buffer that does not hold the current logits and switches on success */
    float *logits_a;
    float *logits_b;
    size_t logits_cap_rows;
    const float *cur_logits;   /* first valid row */
    size_t logits_rows;        /* valid rows at cur_logits (0 = none) */

    ds_rng rng;
    void *sample_scratch;
    ds_logit_bias *bias;       /* sorted by token, unique */
    size_t n_bias, cap_bias;

    atomic_int cancel;         /* ds_session_cancel() */

    /* text and generation state */
    const ds_tokenizer *tok;   /* the model's tokenizer or NULL */
    bool reasoning_on;         /* resolved ds_reasoning_mode */
    ds_text_stream *ts;
    ds_reasoning *rs_plain;    /* flags 0 */
    ds_reasoning *rs_inside;   /* DS_REASONING_START_INSIDE */
    ds_reasoning *rs;          /* the one of this generation, NULL when splitting is off */
    uint32_t n_generated;
    ds_stop_reason stop;
    char *stops[DS_SESSION_MAX_STOPS];
    size_t stop_len[DS_SESSION_MAX_STOPS];
    size_t n_stops;
    char *hold;                /* decoded text not yet released (may start a stop string) */
    size_t hold_len, hold_cap;
    char *piece;               /* ds_text_stream output of one token */
    size_t piece_cap;
    char *qbuf;                /* the text queue of the last step */
    size_t qlen, qcap;
    ds_text_seg *segs;
    size_t n_segs, cap_segs, next_seg;

    /* batched steps (batch.c): scratch of the compute session, grown on demand */
    float *batch_logits;
    size_t batch_rows;
    void *batch_mem;           /* per-call arrays when this session is first in the array */
    size_t batch_cap;

    /* save/restore */
    uint64_t fingerprint;
    bool have_fingerprint;

    uint64_t bytes;
    char errmsg[DS_ERRMSG_MAX];
};

/* ---- errors (session_api.c) ---- */
ds_status ds_session_fail(ds_session *s, const ds_err *e);
ds_status ds_session_failf(ds_session *s, ds_status st, const char *fmt, ...) DS_PRINTF(3, 4);

/* ---- the step in pieces (session_api.c), shared by ds_session_step and the batch ---- */

/* Before the forward pass: clear the text queue, check the state, sample. Returns DS_OK with
 * *token to run (and *saved = the RNG before sampling), or the step's final status (DS_DONE,
 * DS_ERR_*) with *token as ds_session_step reports it. */
ds_status ds_session_pre_step(ds_session *s, int32_t *token, ds_rng *saved);
/* After a successful forward pass of `token` whose logits row is at `row` (copied into the
 * spare buffer unless it already is that buffer): append, decode, check stops. Returns DS_OK or
 * DS_DONE. */
ds_status ds_session_post_step(ds_session *s, int32_t token, const float *row);
/* The buffer a step's logits should be written to (the one not holding the current logits). */
float *ds_session_spare_logits(ds_session *s);
/* The abort function given to the forward state. */
int ds_session_abort_cb(void *user_data);

/* ---- generation text (gen.c) ---- */

/* Allocate the text machinery (no-op without a tokenizer). */
ds_status ds_gen_init(ds_session *s, ds_err *err);
void ds_gen_free(ds_session *s);
/* Start a new generation after the current tokens (decides the reasoning start state). */
void ds_gen_start(ds_session *s);
/* Drop the queued text of the last step. */
void ds_gen_clear_queue(ds_session *s);
/* Decode one generated token; returns true when a stop string matched (the text before it has
 * been released, the rest dropped). */
bool ds_gen_token(ds_session *s, int32_t token);
/* End the generation with `reason`: flush the decoder and the held text, finish the splitter. */
void ds_gen_finish(ds_session *s, ds_stop_reason reason);
/* Bytes the text machinery holds (for ds_session_memory). */
uint64_t ds_gen_bytes(const ds_session *s);

/* ---- save/restore (state_io.c) ---- */
uint64_t ds_session_model_fingerprint(const ds_model *m);

#endif
