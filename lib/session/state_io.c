/*
 * lib/session/state_io.c — saving and restoring a session.
 *
 * File format, version 1 (all integers little-endian):
 *
 *   header, 64 bytes
 *     0  magic "DSSESS\r\n"
 *     8  u32 format version (1)
 *    12  u32 header size (64)
 *    16  u64 model fingerprint (below)
 *    24  u64 payload size, uncompressed
 *    32  u64 payload size, stored (compressed)
 *    40  u32 compression (1 = one zstd frame)
 *    44  u32 flags (0)
 *    48  u32 tokens in the session (so that a too-small session is refused before decompressing)
 *    52  u32 KV element type (ds_kv_type) of the saved rows
 *    56  u32 CRC-32C (Castagnoli, reflected, init/xorout 0xFFFFFFFF) of header bytes 0..55
 *        followed by the stored payload
 *    60  u32 reserved (0)
 *   stored payload: one zstd frame of the payload (with zstd's content checksum)
 *
 *   payload
 *     u32 n_vocab, n_layer, row width (d_c + d_r), kv_type, n_tokens, n_ctx of the saver
 *     sampler: u64 seed, f32 temperature, i32 top_k, f32 top_p, f32 min_p, f32 repeat_penalty,
 *              f32 frequency_penalty, f32 presence_penalty, i32 penalty_last_n,
 *              u32 max_tokens, u32 ignore_eos
 *     u64 rng[4]                          xoshiro256** state
 *     u32 n_generated, u32 stop reason, u32 logits rows (0 or 1)
 *     u32 n_bias, then n_bias x (i32 token, f32 bias), sorted by token
 *     u32 n_stops, then n_stops x (u32 length, bytes)
 *     i32 tokens[n_tokens]
 *     f32 logits[n_vocab]                 if logits rows == 1, as byte planes (below)
 *     KV rows                             n_layer x n_tokens x row width elements of kv_type,
 *                                         layer-major, as byte planes
 *   "Byte planes": an array of N elements of e bytes is stored as e planes of N bytes (plane b
 *   holds byte b of every element). The exponent bytes of floats then sit together, which
 *   zstd compresses far better than interleaved floats.
 *
 * Model fingerprint: FNV-1a 64 over the architecture name, every hyperparameter, the
 * vocabulary size and BOS/EOS ids, and for every tensor (file order) its name, type, shape and
 * size plus 3 samples of 64 bytes of its data (start, middle, end). Computed once per session
 * (lazily, at its first save or load): a few pages per tensor are touched.
 *
 * Loading validates everything (header, size, checksum, fingerprint, decompressed size, every
 * field, token ids, the room in the session) and prepares every buffer before it changes the
 * session; the final copy cannot fail, so a failed load leaves the session untouched.
 */
#include "session/session_internal.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "session files are written with little-endian bulk copies"
#endif

#define SESS_MAGIC "DSSESS\r\n"
#define SESS_VERSION 1u
#define SESS_HEADER 64u
#define SESS_ZSTD_LEVEL 3

/* ---- FNV-1a 64 ----------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fnv(h, b, 8);
}

static uint64_t fnv_f32(uint64_t h, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return fnv_u64(h, u);
}

uint64_t ds_session_model_fingerprint(const ds_model *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    static const char tag[] = "libdeepseek session fingerprint 1";
    h = fnv(h, tag, sizeof tag);
    const char *arch = m->data.arch_name;
    h = fnv(h, arch, strlen(arch) + 1);
    const ds2_hparams *hp = &m->data.hp;
    const uint32_t u[] = {hp->n_vocab,        hp->n_ctx_train,     hp->n_embd,
                          hp->n_layer,        hp->n_head,          hp->n_head_kv,
                          hp->n_ff,           hp->q_lora_rank,     hp->kv_lora_rank,
                          hp->qk_nope,        hp->qk_rope,         hp->v_head,
                          hp->n_expert,       hp->n_expert_used,   hp->n_expert_shared,
                          hp->n_ff_exp,       hp->n_leading_dense, hp->n_group,
                          hp->n_group_used,   hp->gating,          hp->expert_weights_norm,
                          hp->rope_scaling,   hp->rope_orig_ctx,   hp->kv_split};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        h = fnv_u64(h, u[i]);
    const float f[] = {hp->expert_weights_scale, hp->rms_eps,        hp->rope_freq_base,
                       hp->rope_factor,          hp->mscale_all_dim, hp->yarn_beta_fast,
                       hp->yarn_beta_slow};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        h = fnv_f32(h, f[i]);
    if (m->tokenizer) {
        h = fnv_u64(h, (uint64_t)(uint32_t)ds_tokenizer_n_vocab(m->tokenizer));
        h = fnv_u64(h, (uint64_t)(uint32_t)ds_tokenizer_bos(m->tokenizer));
        h = fnv_u64(h, (uint64_t)(uint32_t)ds_tokenizer_eos(m->tokenizer));
    }
    h = fnv_u64(h, m->gguf.n_tensors);
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        const gguf_tensor *t = &m->gguf.tensors[i];
        h = fnv(h, t->name, strlen(t->name) + 1);
        h = fnv_u64(h, t->type);
        h = fnv_u64(h, t->n_dims);
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            h = fnv_u64(h, t->ne[d]);
        h = fnv_u64(h, t->nbytes);
        if (t->data && t->nbytes > 0) {
            const uint64_t n = t->nbytes, w = n < 64 ? n : 64;
            h = fnv(h, t->data, (size_t)w);
            h = fnv(h, t->data + (n - w) / 2, (size_t)w);
            h = fnv(h, t->data + n - w, (size_t)w);
        }
    }
    return h;
}

static uint64_t fingerprint(ds_session *s)
{
    if (!s->have_fingerprint) {
        s->fingerprint = ds_session_model_fingerprint(s->model);
        s->have_fingerprint = true;
    }
    return s->fingerprint;
}

/* ---- CRC-32C (slicing by 8; the table is built per call, ~10 us: no global state) ----------- */

typedef struct crc_tab {
    uint32_t t[8][256];
} crc_tab;

static void crc_init(crc_tab *c)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++)
            r = (r >> 1) ^ (0x82F63B78u & (0u - (r & 1u)));
        c->t[0][i] = r;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++)
            c->t[s][i] = (c->t[s - 1][i] >> 8) ^ c->t[0][c->t[s - 1][i] & 0xFF];
}

/* crc: running value (start with 0xFFFFFFFF, finish with ^ 0xFFFFFFFF) */
static uint32_t crc_update(const crc_tab *c, uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        uint32_t hi = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                      (uint32_t)b[7] << 24;
        crc = c->t[7][lo & 0xFF] ^ c->t[6][(lo >> 8) & 0xFF] ^ c->t[5][(lo >> 16) & 0xFF] ^
              c->t[4][lo >> 24] ^ c->t[3][hi & 0xFF] ^ c->t[2][(hi >> 8) & 0xFF] ^
              c->t[1][(hi >> 16) & 0xFF] ^ c->t[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ c->t[0][(crc ^ *b++) & 0xFF];
    return crc;
}

static uint32_t file_crc(const uint8_t *header, const uint8_t *payload, size_t n)
{
    crc_tab c; /* 8 KiB */
    crc_init(&c);
    uint32_t crc = crc_update(&c, 0xFFFFFFFFu, header, 56);
    crc = crc_update(&c, crc, payload, n);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- little-endian writer / reader --------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void w_bytes(wbuf *w, const void *v, size_t n)
{
    memcpy(w->p + w->n, v, n); /* the size was computed exactly beforehand */
    w->n += n;
}

static void w_u32(wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}

static void w_u64(wbuf *w, uint64_t v)
{
    w_u32(w, (uint32_t)v);
    w_u32(w, (uint32_t)(v >> 32));
}

static void w_f32(wbuf *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    w_u32(w, u);
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n, pos;
    bool bad;
} rbuf;

static const uint8_t *r_take(rbuf *r, size_t n)
{
    if (r->bad || n > r->n - r->pos) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static uint32_t r_u32(rbuf *r)
{
    const uint8_t *b = r_take(r, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
             : 0;
}

static uint64_t r_u64(rbuf *r)
{
    uint64_t lo = r_u32(r);
    return lo | (uint64_t)r_u32(r) << 32;
}

static float r_f32(rbuf *r)
{
    uint32_t u = r_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t rd32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t rd64(const uint8_t *b)
{
    return rd32(b) | (uint64_t)rd32(b + 4) << 32;
}

static void wr32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static void wr64(uint8_t *b, uint64_t v)
{
    wr32(b, (uint32_t)v);
    wr32(b + 4, (uint32_t)(v >> 32));
}

/* ---- byte planes ----------------------------------------------------------------------------- */

/* element i of `src` (n elements of e bytes) -> planes dst[b * total + base + i] */
static void to_planes(uint8_t *dst, size_t total, size_t base, const uint8_t *src, size_t n,
                      size_t e)
{
    for (size_t b = 0; b < e; b++) {
        uint8_t *d = dst + b * total + base;
        const uint8_t *s = src + b;
        for (size_t i = 0; i < n; i++)
            d[i] = s[i * e];
    }
}

static void from_planes(uint8_t *dst, const uint8_t *planes, size_t total, size_t base, size_t n,
                        size_t e)
{
    for (size_t b = 0; b < e; b++) {
        const uint8_t *s = planes + b * total + base;
        uint8_t *d = dst + b;
        for (size_t i = 0; i < n; i++)
            d[i * e] = s[i];
    }
}

/* ---- payload --------------------------------------------------------------------------------- */

#define FIXED_BYTES (6 * 4 + 8 + 10 * 4 + 32 + 3 * 4 + 4 + 4)

static size_t payload_size(const ds_session *s)
{
    const ds_kv_cache *kv = ds2_state_kv(s->st);
    size_t n = FIXED_BYTES;
    n += s->n_bias * 8;
    for (size_t i = 0; i < s->n_stops; i++)
        n += 4 + s->stop_len[i];
    n += s->n_tokens * 4;
    if (s->logits_rows > 0)
        n += (size_t)s->n_vocab * 4;
    n += (size_t)ds_kv_n_layer(kv) * s->n_tokens * ds_kv_row_width(kv) *
         ds_kv_type_size(ds_kv_get_type(kv));
    return n;
}

static void payload_write(const ds_session *s, wbuf *w)
{
    const ds_kv_cache *kv = ds2_state_kv(s->st);
    const uint32_t L = ds_kv_n_layer(kv), W = ds_kv_row_width(kv);
    const ds_kv_type kt = ds_kv_get_type(kv);
    const size_t es = ds_kv_type_size(kt);
    const ds_session_params *p = &s->params;
    w_u32(w, s->n_vocab);
    w_u32(w, L);
    w_u32(w, W);
    w_u32(w, (uint32_t)kt);
    w_u32(w, (uint32_t)s->n_tokens);
    w_u32(w, s->n_ctx);
    w_u64(w, p->seed);
    w_f32(w, p->temperature);
    w_u32(w, (uint32_t)p->top_k);
    w_f32(w, p->top_p);
    w_f32(w, p->min_p);
    w_f32(w, p->repeat_penalty);
    w_f32(w, p->frequency_penalty);
    w_f32(w, p->presence_penalty);
    w_u32(w, (uint32_t)p->penalty_last_n);
    w_u32(w, p->max_tokens);
    w_u32(w, p->ignore_eos ? 1 : 0);
    for (int i = 0; i < 4; i++)
        w_u64(w, s->rng.s[i]);
    w_u32(w, s->n_generated);
    w_u32(w, (uint32_t)s->stop);
    w_u32(w, s->logits_rows > 0 ? 1 : 0);
    w_u32(w, (uint32_t)s->n_bias);
    for (size_t i = 0; i < s->n_bias; i++) {
        w_u32(w, (uint32_t)s->bias[i].token);
        w_f32(w, s->bias[i].bias);
    }
    w_u32(w, (uint32_t)s->n_stops);
    for (size_t i = 0; i < s->n_stops; i++) {
        w_u32(w, (uint32_t)s->stop_len[i]);
        w_bytes(w, s->stops[i], s->stop_len[i]);
    }
    for (size_t i = 0; i < s->n_tokens; i++)
        w_u32(w, (uint32_t)s->tokens[i]);
    if (s->logits_rows > 0) {
        const float *last = s->cur_logits + (s->logits_rows - 1) * (size_t)s->n_vocab;
        to_planes(w->p + w->n, s->n_vocab, 0, (const uint8_t *)last, s->n_vocab, 4);
        w->n += (size_t)s->n_vocab * 4;
    }
    const size_t per_layer = s->n_tokens * (size_t)W;
    const size_t total = per_layer * L;
    if (total > 0) {
        for (uint32_t l = 0; l < L; l++)
            to_planes(w->p + w->n, total, l * per_layer,
                      ds_kv_raw_rows(kv, l, 0, (uint32_t)s->n_tokens), per_layer, es);
        w->n += total * es;
    }
}

/* Serialize and compress; *out receives the whole file (caller frees), *size its length. */
static ds_status save_alloc(ds_session *s, uint8_t **out, size_t *size, const char *fn)
{
    *out = NULL;
    *size = 0;
    const size_t raw_n = payload_size(s);
    const size_t bound = SESS_HEADER + ZSTD_compressBound(raw_n);
    uint8_t *raw = malloc(raw_n ? raw_n : 1);
    uint8_t *dst = malloc(bound);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!raw || !dst || !cctx) {
        free(raw);
        free(dst);
        ZSTD_freeCCtx(cctx);
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: cannot allocate %zu + %zu bytes", fn,
                                raw_n, bound);
    }
    wbuf w = {raw, 0, raw_n};
    payload_write(s, &w);
    /* zstd's own content checksum too: a corrupted frame also fails in ZSTD_decompress */
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, SESS_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    size_t z = ZSTD_compress2(cctx, dst + SESS_HEADER, bound - SESS_HEADER, raw, raw_n);
    ZSTD_freeCCtx(cctx);
    free(raw);
    if (w.n != raw_n || ZSTD_isError(z)) {
        free(dst);
        return ds_session_failf(s, DS_ERR_INTERNAL, "%s: %s", fn,
                                w.n != raw_n ? "payload size mismatch" : ZSTD_getErrorName(z));
    }
    const ds_kv_cache *kv = ds2_state_kv(s->st);
    uint8_t *h = dst;
    memset(h, 0, SESS_HEADER);
    memcpy(h, SESS_MAGIC, 8);
    wr32(h + 8, SESS_VERSION);
    wr32(h + 12, SESS_HEADER);
    wr64(h + 16, fingerprint(s));
    wr64(h + 24, raw_n);
    wr64(h + 32, z);
    wr32(h + 40, 1);
    wr32(h + 44, 0);
    wr32(h + 48, (uint32_t)s->n_tokens);
    wr32(h + 52, (uint32_t)ds_kv_get_type(kv));
    wr32(h + 56, file_crc(h, h + SESS_HEADER, z));
    *out = dst;
    *size = SESS_HEADER + z;
    return DS_OK;
}

ds_status ds_session_save_size(ds_session *s, size_t *size)
{
    if (!s || !size)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_save_size: NULL argument");
    *size = SESS_HEADER + ZSTD_compressBound(payload_size(s));
    return DS_OK;
}

ds_status ds_session_save_buffer(ds_session *s, void *buf, size_t capacity, size_t *size)
{
    if (!s || !size)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_save_buffer: NULL argument");
    *size = 0;
    if (!buf && capacity > 0)
        return ds_session_failf(s, DS_ERR_INVALID_ARG, "ds_session_save_buffer: buf is NULL");
    uint8_t *data = NULL;
    size_t n = 0;
    ds_status st = save_alloc(s, &data, &n, "ds_session_save_buffer");
    if (st != DS_OK)
        return st;
    *size = n;
    if (n > capacity) {
        free(data);
        return ds_session_failf(s, DS_ERR_BUFFER_TOO_SMALL,
                                "ds_session_save_buffer: %zu bytes needed, the buffer has %zu", n,
                                capacity);
    }
    memcpy(buf, data, n);
    free(data);
    return DS_OK;
}

static ds_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return DS_ERR_IO;
        }
        p += k;
        n -= (size_t)k;
    }
    return DS_OK;
}

ds_status ds_session_save(ds_session *s, const char *path)
{
    if (!s || !path)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_save: NULL argument");
    uint8_t *data = NULL;
    size_t n = 0;
    ds_status st = save_alloc(s, &data, &n, "ds_session_save");
    if (st != DS_OK)
        return st;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        free(data);
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "ds_session_save: out of memory");
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(data);
        st = ds_session_failf(s, DS_ERR_IO, "ds_session_save: cannot create %s: %s", tmp,
                              strerror(e));
        free(tmp);
        return st;
    }
    int e = 0;
    if (write_all(fd, data, n) != DS_OK || fsync(fd) != 0)
        e = errno ? errno : EIO;
    if (close(fd) != 0 && !e)
        e = errno;
    free(data);
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        st = ds_session_failf(s, DS_ERR_IO, "ds_session_save: cannot write %s: %s", path,
                              strerror(e));
        free(tmp);
        return st;
    }
    free(tmp);
    return DS_OK;
}

/* ---- load ------------------------------------------------------------------------------------ */

typedef struct loaded {
    uint8_t *raw;             /* decompressed payload (owned) */
    uint32_t n_tokens, kv_type, logits_rows;
    ds_session_params sp;     /* sampler fields */
    ds_rng rng;
    uint32_t n_generated, stop;
    ds_logit_bias *bias;      /* owned */
    size_t n_bias;
    char *stops[DS_SESSION_MAX_STOPS]; /* owned */
    size_t stop_len[DS_SESSION_MAX_STOPS];
    size_t n_stops;
    const uint8_t *tokens;    /* into raw */
    float *logits;            /* owned, unshuffled */
    const uint8_t *kv;        /* into raw: byte planes */
    uint8_t *layer_tmp;       /* owned: one layer of rows in element order */
} loaded;

static void loaded_free(loaded *x)
{
    free(x->raw);
    free(x->bias);
    for (size_t i = 0; i < x->n_stops; i++)
        free(x->stops[i]);
    free(x->logits);
    free(x->layer_tmp);
}

#define BAD(...) ds_session_failf(s, DS_ERR_FORMAT, __VA_ARGS__)

static ds_status parse(ds_session *s, const uint8_t *buf, size_t size, loaded *x, const char *fn)
{
    if (size < SESS_HEADER || memcmp(buf, SESS_MAGIC, 8) != 0)
        return BAD("%s: not a libdeepseek session (%zu bytes, bad magic)", fn, size);
    const uint32_t version = rd32(buf + 8);
    if (version > SESS_VERSION)
        return ds_session_failf(s, DS_ERR_UNSUPPORTED,
                                "%s: session format version %u is newer than this library's "
                                "version %u",
                                fn, version, SESS_VERSION);
    if (version == 0)
        return BAD("%s: session format version 0 is invalid", fn);
    if (rd32(buf + 12) != SESS_HEADER)
        return BAD("%s: header size %u, expected %u", fn, rd32(buf + 12), SESS_HEADER);
    const uint64_t raw_n = rd64(buf + 24), stored = rd64(buf + 32);
    if (stored > size - SESS_HEADER)
        return BAD("%s: truncated: %zu bytes, the header announces %llu", fn, size,
                   (unsigned long long)(SESS_HEADER + stored));
    if (stored < size - SESS_HEADER)
        return BAD("%s: %llu unexpected bytes after the payload", fn,
                   (unsigned long long)(size - SESS_HEADER - stored));
    const uint32_t crc = file_crc(buf, buf + SESS_HEADER, (size_t)stored);
    if (crc != rd32(buf + 56))
        return BAD("%s: checksum mismatch (CRC-32C %08x, stored %08x): the data is corrupted", fn,
                   crc, rd32(buf + 56));
    if (rd32(buf + 40) != 1 || rd32(buf + 44) != 0)
        return BAD("%s: unknown compression %u or flags %u", fn, rd32(buf + 40), rd32(buf + 44));
    if (rd64(buf + 16) != fingerprint(s))
        return ds_session_failf(s, DS_ERR_MODEL_MISMATCH,
                                "%s: the session was saved with another model (fingerprint "
                                "%016llx, this model %016llx)",
                                fn, (unsigned long long)rd64(buf + 16),
                                (unsigned long long)fingerprint(s));
    const uint32_t n_tok = rd32(buf + 48), kvt = rd32(buf + 52);
    if (n_tok > s->n_ctx)
        return ds_session_failf(s, DS_ERR_CONTEXT_FULL,
                                "%s: the saved session has %u tokens, more than this session's "
                                "n_ctx %u",
                                fn, n_tok, s->n_ctx);
    if (kvt > DS_KV_BF16)
        return BAD("%s: unknown KV type %u", fn, kvt);
    /* bound the payload before decompressing: nothing larger is valid for this model */
    const ds_kv_cache *kv = ds2_state_kv(s->st);
    const uint64_t L = ds_kv_n_layer(kv), W = ds_kv_row_width(kv);
    const uint64_t max_raw = FIXED_BYTES + (uint64_t)s->n_vocab * 8 +
                             DS_SESSION_MAX_STOPS * (4 + DS_SESSION_MAX_STOP_LEN) +
                             (uint64_t)n_tok * 4 + (uint64_t)s->n_vocab * 4 +
                             L * n_tok * W * ds_kv_type_size((ds_kv_type)kvt);
    if (raw_n > max_raw || raw_n < FIXED_BYTES)
        return BAD("%s: payload size %llu is impossible for %u tokens of this model", fn,
                   (unsigned long long)raw_n, n_tok);
    unsigned long long fcs = ZSTD_getFrameContentSize(buf + SESS_HEADER, (size_t)stored);
    if (fcs != raw_n)
        return BAD("%s: the compressed payload does not hold %llu bytes", fn,
                   (unsigned long long)raw_n);
    x->raw = malloc((size_t)raw_n);
    if (!x->raw)
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: cannot allocate %llu bytes", fn,
                                (unsigned long long)raw_n);
    size_t z = ZSTD_decompress(x->raw, (size_t)raw_n, buf + SESS_HEADER, (size_t)stored);
    if (ZSTD_isError(z) || z != raw_n)
        return BAD("%s: the payload does not decompress: %s", fn,
                   ZSTD_isError(z) ? ZSTD_getErrorName(z) : "wrong size");

    rbuf r = {x->raw, (size_t)raw_n, 0, false};
    const uint32_t nv = r_u32(&r), nl = r_u32(&r), rw = r_u32(&r), kt2 = r_u32(&r);
    x->n_tokens = r_u32(&r);
    (void)r_u32(&r); /* saver's n_ctx */
    if (nv != s->n_vocab || nl != L || rw != W)
        return ds_session_failf(s, DS_ERR_MODEL_MISMATCH,
                                "%s: shapes differ from this model (vocab %u/%u, layers %u/%llu, "
                                "row %u/%llu)",
                                fn, nv, s->n_vocab, nl, (unsigned long long)L, rw,
                                (unsigned long long)W);
    if (kt2 != kvt || x->n_tokens != n_tok)
        return BAD("%s: payload and header disagree (KV type %u/%u, tokens %u/%u)", fn, kt2, kvt,
                   x->n_tokens, n_tok);
    x->kv_type = kvt;
    ds_session_params *sp = &x->sp;
    ds_session_default_params(sp, sizeof *sp);
    sp->seed = r_u64(&r);
    sp->temperature = r_f32(&r);
    sp->top_k = (int32_t)r_u32(&r);
    sp->top_p = r_f32(&r);
    sp->min_p = r_f32(&r);
    sp->repeat_penalty = r_f32(&r);
    sp->frequency_penalty = r_f32(&r);
    sp->presence_penalty = r_f32(&r);
    sp->penalty_last_n = (int32_t)r_u32(&r);
    sp->max_tokens = r_u32(&r);
    sp->ignore_eos = r_u32(&r);
    for (int i = 0; i < 4; i++)
        x->rng.s[i] = r_u64(&r);
    x->n_generated = r_u32(&r);
    x->stop = r_u32(&r);
    x->logits_rows = r_u32(&r);
    if (r.bad)
        return BAD("%s: payload truncated in the settings", fn);
    if (sp->ignore_eos > 1 || x->stop > DS_STOP_LIMIT || x->logits_rows > 1 ||
        x->n_generated > x->n_tokens || (!x->rng.s[0] && !x->rng.s[1] && !x->rng.s[2] && !x->rng.s[3]))
        return BAD("%s: invalid generation state (stop %u, logits rows %u, generated %u of %u)",
                   fn, x->stop, x->logits_rows, x->n_generated, x->n_tokens);
    char msg[200];
    if (!(sp->temperature >= 0.0f && isfinite(sp->temperature)) || sp->top_k < 0 ||
        !(sp->top_p > 0.0f && sp->top_p <= 1.0f) || !(sp->min_p >= 0.0f && sp->min_p <= 1.0f) ||
        !(sp->repeat_penalty > 0.0f && isfinite(sp->repeat_penalty)) ||
        !isfinite(sp->frequency_penalty) || !isfinite(sp->presence_penalty) ||
        sp->penalty_last_n < -1) {
        snprintf(msg, sizeof msg, "sampler settings out of range");
        return BAD("%s: %s", fn, msg);
    }
    const uint32_t nb = r_u32(&r);
    if (r.bad || nb > s->n_vocab)
        return BAD("%s: %u logit biases for a vocabulary of %u", fn, nb, s->n_vocab);
    if (nb) {
        x->bias = malloc(nb * sizeof *x->bias);
        if (!x->bias)
            return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    for (uint32_t i = 0; i < nb; i++) {
        x->bias[i].token = (int32_t)r_u32(&r);
        x->bias[i].bias = r_f32(&r);
        if (r.bad || x->bias[i].token < 0 || (uint32_t)x->bias[i].token >= s->n_vocab ||
            (i > 0 && x->bias[i].token <= x->bias[i - 1].token) || isnan(x->bias[i].bias) ||
            x->bias[i].bias == INFINITY || x->bias[i].bias == 0.0f)
            return BAD("%s: invalid logit bias entry %u", fn, i);
    }
    x->n_bias = nb;
    const uint32_t ns = r_u32(&r);
    if (r.bad || ns > DS_SESSION_MAX_STOPS || (ns > 0 && !s->tok))
        return BAD("%s: %u stop strings are invalid here", fn, ns);
    for (uint32_t i = 0; i < ns; i++) {
        const uint32_t len = r_u32(&r);
        const uint8_t *b = r_take(&r, len);
        if (!b || len == 0 || len > DS_SESSION_MAX_STOP_LEN || memchr(b, 0, len))
            return BAD("%s: invalid stop string %u", fn, i);
        x->stops[i] = malloc(len + 1);
        if (!x->stops[i])
            return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: out of memory", fn);
        memcpy(x->stops[i], b, len);
        x->stops[i][len] = '\0';
        x->stop_len[i] = len;
        x->n_stops = i + 1;
    }
    x->tokens = r_take(&r, (size_t)x->n_tokens * 4);
    if (!x->tokens)
        return BAD("%s: payload truncated in the tokens", fn);
    for (uint32_t i = 0; i < x->n_tokens; i++) {
        int32_t t = (int32_t)rd32(x->tokens + (size_t)i * 4);
        if (t < 0 || (uint32_t)t >= s->n_vocab)
            return BAD("%s: token %d at %u is outside the vocabulary", fn, t, i);
    }
    if (x->logits_rows) {
        const uint8_t *lp = r_take(&r, (size_t)s->n_vocab * 4);
        x->logits = malloc((size_t)s->n_vocab * 4);
        if (!lp)
            return BAD("%s: payload truncated in the logits", fn);
        if (!x->logits)
            return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: out of memory", fn);
        from_planes((uint8_t *)x->logits, lp, s->n_vocab, 0, s->n_vocab, 4);
    }
    const size_t es = ds_kv_type_size((ds_kv_type)kvt);
    const size_t kv_bytes = (size_t)L * x->n_tokens * W * es;
    x->kv = r_take(&r, kv_bytes);
    if (!x->kv)
        return BAD("%s: payload truncated in the KV cache", fn);
    if (r.pos != r.n)
        return BAD("%s: %zu unexpected bytes at the end of the payload", fn, r.n - r.pos);
    x->layer_tmp = malloc((size_t)x->n_tokens * W * es + 1);
    if (!x->layer_tmp)
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: out of memory", fn);
    if (x->n_stops > 0 || x->n_bias > 0) { /* make sure the swap below cannot fail */
        if (x->n_bias > s->cap_bias) {
            ds_logit_bias *nbuf = realloc(s->bias, x->n_bias * sizeof *nbuf);
            if (!nbuf)
                return ds_session_failf(s, DS_ERR_NO_MEMORY, "%s: out of memory", fn);
            s->bias = nbuf; /* same contents: the session is unchanged */
            s->cap_bias = x->n_bias;
        }
    }
    return DS_OK;
}

/* Everything is validated and allocated: make it the session's state (cannot fail). */
static void commit(ds_session *s, loaded *x)
{
    ds_kv_cache *kv = (ds_kv_cache *)ds2_state_kv(s->st);
    const uint32_t L = ds_kv_n_layer(kv), W = ds_kv_row_width(kv);
    const size_t es = ds_kv_type_size((ds_kv_type)x->kv_type);
    const size_t per_layer = (size_t)x->n_tokens * W, total = per_layer * L;
    ds2_state_truncate(s->st, 0, NULL);
    for (uint32_t l = 0; l < L && x->n_tokens > 0; l++) {
        from_planes(x->layer_tmp, x->kv, total, l * per_layer, per_layer, es);
        ds_kv_write_raw(kv, l, 0, x->n_tokens, x->layer_tmp, (ds_kv_type)x->kv_type, NULL);
    }
    ds_kv_commit(kv, x->n_tokens, NULL);
    for (uint32_t i = 0; i < x->n_tokens; i++)
        s->tokens[i] = (int32_t)rd32(x->tokens + (size_t)i * 4);
    s->n_tokens = x->n_tokens;
    if (x->logits_rows) {
        memcpy(s->logits_a, x->logits, (size_t)s->n_vocab * sizeof(float));
        s->cur_logits = s->logits_a;
        s->logits_rows = 1;
    } else {
        s->cur_logits = s->logits_a;
        s->logits_rows = 0;
    }
    ds_session_params *p = &s->params;
    p->seed = x->sp.seed;
    p->temperature = x->sp.temperature;
    p->top_k = x->sp.top_k;
    p->top_p = x->sp.top_p;
    p->min_p = x->sp.min_p;
    p->repeat_penalty = x->sp.repeat_penalty;
    p->frequency_penalty = x->sp.frequency_penalty;
    p->presence_penalty = x->sp.presence_penalty;
    p->penalty_last_n = x->sp.penalty_last_n;
    p->max_tokens = x->sp.max_tokens;
    p->ignore_eos = x->sp.ignore_eos;
    s->rng = x->rng;
    if (x->n_bias)
        memcpy(s->bias, x->bias, x->n_bias * sizeof *s->bias);
    s->n_bias = x->n_bias;
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    for (size_t i = 0; i < x->n_stops; i++) {
        s->stops[i] = x->stops[i];
        s->stop_len[i] = x->stop_len[i];
    }
    s->n_stops = x->n_stops;
    x->n_stops = 0; /* ownership moved */

    /* generation: rebuild the decoder state by replaying the generated tokens */
    const size_t g = x->n_generated;
    s->n_tokens -= g;
    ds_gen_start(s);
    s->n_tokens += g;
    if (x->stop != DS_STOP_NONE) {
        s->stop = (ds_stop_reason)x->stop;
    } else {
        for (size_t i = s->n_tokens - g; i < s->n_tokens; i++)
            ds_gen_token(s, s->tokens[i]);
    }
    s->n_generated = (uint32_t)g;
    ds_gen_clear_queue(s);
}

ds_status ds_session_load_buffer(ds_session *s, const void *buf, size_t size)
{
    if (!s)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_load_buffer: session is NULL");
    if (!buf && size > 0)
        return ds_session_failf(s, DS_ERR_INVALID_ARG, "ds_session_load_buffer: buf is NULL");
    loaded x;
    memset(&x, 0, sizeof x);
    ds_status st = parse(s, buf ? buf : (const void *)"", size, &x, "ds_session_load_buffer");
    if (st == DS_OK)
        commit(s, &x);
    loaded_free(&x);
    return st;
}

ds_status ds_session_load(ds_session *s, const char *path)
{
    if (!s || !path)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_session_load: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ds_session_failf(s, DS_ERR_IO, "ds_session_load: cannot open %s: %s", path,
                                strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ds_session_failf(s, DS_ERR_IO, "ds_session_load: %s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) {
        close(fd);
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "ds_session_load: %s is too large", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *data = malloc(n ? n : 1);
    if (!data) {
        close(fd);
        return ds_session_failf(s, DS_ERR_NO_MEMORY, "ds_session_load: cannot allocate %zu bytes",
                                n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, data + got, n - got > (1u << 30) ? (1u << 30) : n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    int e = errno;
    close(fd);
    if (got != n) {
        free(data);
        return ds_session_failf(s, DS_ERR_IO, "ds_session_load: cannot read %s: %s", path,
                                strerror(e));
    }
    loaded x;
    memset(&x, 0, sizeof x);
    ds_status st = parse(s, data, n, &x, path);
    free(data);
    if (st == DS_OK)
        commit(s, &x);
    loaded_free(&x);
    return st;
}
