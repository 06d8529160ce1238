/*
 * lib/api/model_api.c — public model functions: open/close, info, metadata, tensors, version.
 *
 * Argument checks, status codes and error text live here; parsing is in lib/format and
 * binding in lib/model.
 */
#include "api/api_internal.h"

#include "format/ggml_types.h"
#include "tokenizer/tokenizer.h"

#include "deepseek/tokenizer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- version ---------------------------------------------------------------------------- */

uint32_t ds_version(void)
{
    return DS_VERSION_NUMBER;
}

const char *ds_version_string(void)
{
    return DS_VERSION_STRING;
}

void ds_free(void *ptr)
{
    free(ptr);
}

/* ---- errors on handles ------------------------------------------------------------------ */

ds_status ds_model_fail(const ds_model *cm, const ds_err *err)
{
    ds_model *m = (ds_model *)cm; /* the error text is the only mutable part of a model */
    if (m && err->status < 0) {
        pthread_mutex_lock(&m->err_lock);
        snprintf(m->errmsg, sizeof m->errmsg, "%s", err->msg[0] ? err->msg : ds_status_string(err->status));
        pthread_mutex_unlock(&m->err_lock);
        ds_log(&m->logger, DS_LOG_DEBUG, "error: %s", m->errmsg);
    }
    return ds_err_publish(err);
}

ds_status ds_model_failf(const ds_model *m, ds_status status, const char *fmt, ...)
{
    ds_err e;
    e.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return ds_model_fail(m, &e);
}

const char *ds_model_errmsg(const ds_model *model)
{
    if (!model)
        return "model handle is NULL";
    return model->errmsg;
}

ds_status ds_params_copy(void *dst, size_t dst_size, const void *src, const char *what)
{
    uint32_t sz;
    memcpy(&sz, src, sizeof sz);
    if (sz < sizeof(uint32_t))
        return ds_err_thread(DS_ERR_INVALID_ARG,
                             "%s: struct_size %u is too small (fill the struct with its "
                             "default_params function first)",
                             what, sz);
    if (sz > dst_size)
        return ds_err_thread(DS_ERR_INVALID_ARG,
                             "%s: struct_size %u is larger than this library's %zu bytes (the host "
                             "was built against a newer header)",
                             what, sz, dst_size);
    memcpy(dst, src, sz);
    memcpy(dst, &(uint32_t){(uint32_t)dst_size}, sizeof(uint32_t));
    return DS_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- params ----------------------------------------------------------------------------- */

ds_status ds_model_default_params(ds_model_params *params, size_t struct_size)
{
    if (!params)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_default_params: params is NULL");
    if (struct_size < sizeof(uint32_t))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_default_params: struct_size %zu too small",
                             struct_size);
    ds_model_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = (uint32_t)(struct_size < sizeof d ? struct_size : sizeof d);
    d.load_mode = DS_LOAD_MMAP;
    d.n_threads = 0;
    d.precision = DS_PRECISION_FAST;
    d.vocab_only = 0;
    d.log_level = DS_LOG_WARN;
    d.log_fn = NULL;
    d.log_user_data = NULL;
    d.repack = DS_REPACK_NONE;
    memset(params, 0, struct_size < sizeof d ? struct_size : sizeof d);
    memcpy(params, &d, struct_size < sizeof d ? struct_size : sizeof d);
    return DS_OK;
}

/* ---- open / close ----------------------------------------------------------------------- */

ds_status ds_model_open(ds_model **out, const char *path, const ds_model_params *params)
{
    if (!out)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: out is NULL");
    *out = NULL;
    if (!path)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: path is NULL");
    ds_model_params p;
    ds_model_default_params(&p, sizeof p);
    if (params) {
        ds_status s = ds_params_copy(&p, sizeof p, params, "ds_model_open params");
        if (s != DS_OK)
            return s;
    }
    if (p.load_mode > DS_LOAD_HUGEPAGES)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: unknown load_mode %u", p.load_mode);
    if (p.repack > DS_REPACK_WEIGHTS)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: unknown repack %u", p.repack);
    if (p.precision > DS_PRECISION_F32)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: unknown precision %u", p.precision);
    if (p.n_threads < 0)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_open: n_threads %d is negative",
                             p.n_threads);

    ds_model *m = calloc(1, sizeof *m);
    if (!m)
        return ds_err_thread(DS_ERR_NO_MEMORY, "ds_model_open: out of memory");
    m->params = p;
    pthread_mutex_init(&m->err_lock, NULL);
    ds_logger_init(&m->logger, p.log_level, p.log_fn, p.log_user_data);
    ds_err err;
    ds_err_clear(&err);
    ds_status s;
    m->path = strdup(path);
    if (!m->path) {
        s = ds_err_set(&err, DS_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    s = ds_mapping_open(&m->map, path, (int)p.load_mode, p.progress_fn, p.progress_user_data,
                        p.abort_fn, p.abort_user_data, &err);
    if (s != DS_OK)
        goto fail;
    s = gguf_parse(&m->gguf, m->map.data, m->map.size, &err);
    if (s != DS_OK) {
        ds_err_prefix(&err, "%s", path);
        goto fail;
    }
    s = ds_model_data_load(&m->data, &m->gguf, p.vocab_only != 0, &err);
    if (s != DS_OK) {
        ds_err_prefix(&err, "%s", path);
        goto fail;
    }
    if (!p.vocab_only) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        m->n_threads = p.n_threads > 0 ? p.n_threads : (ncpu > 0 ? (int)ncpu : 1);
        s = ds_mm_create(&m->mm, m->n_threads, (int)p.precision, &err);
        if (s != DS_OK)
            goto fail;
        if (p.repack == DS_REPACK_WEIGHTS && p.load_mode != DS_LOAD_MMAP) {
            uint64_t nt = 0, nb = 0;
            double t0 = now_s();
            s = ds_model_data_repack(&m->data, m->map.base, m->map.base_len, m->n_threads, &nt,
                                     &nb, &err);
            if (s != DS_OK) {
                ds_err_prefix(&err, "%s", path);
                goto fail;
            }
            if (nt)
                ds_log(&m->logger, DS_LOG_INFO, "repacked %llu tensors (%.1f MB) in %.0f ms",
                       (unsigned long long)nt, (double)nb / 1e6, (now_s() - t0) * 1e3);
        }
    }
    gguf_str name;
    if (gguf_get_str(&m->gguf, "general.name", &name, NULL) == DS_OK) {
        size_t n = name.len < sizeof m->name - 1 ? (size_t)name.len : sizeof m->name - 1;
        memcpy(m->name, name.ptr, n);
        m->name[n] = '\0';
    }
    if (gguf_find_kv(&m->gguf, "tokenizer.ggml.model")) {
        ds_err terr;
        ds_err_clear(&terr);
        s = ds_tokenizer_from_gguf(&m->tokenizer, &m->gguf, &terr);
        if (s == DS_ERR_UNSUPPORTED) {
            /* a tokenizer we do not implement (e.g. SentencePiece): the model still runs on ids */
            ds_log(&m->logger, DS_LOG_WARN, "%s: tokenizer not available: %s", path, terr.msg);
            m->tokenizer = NULL;
        } else if (s != DS_OK) {
            err = terr;
            ds_err_prefix(&err, "%s: tokenizer", path);
            goto fail;
        }
    }
    ds_log(&m->logger, DS_LOG_INFO, "opened %s: %s, %llu tensors, %llu metadata pairs", path,
           m->data.arch_name, (unsigned long long)m->gguf.n_tensors,
           (unsigned long long)m->gguf.n_kv);
    *out = m;
    return DS_OK;
fail:
    ds_err_publish(&err);
    ds_log(&m->logger, DS_LOG_ERROR, "%s", err.msg);
    ds_model_close(m);
    return s;
}

void ds_model_close(ds_model *m)
{
    if (!m)
        return;
    ds_tokenizer_free(m->tokenizer);
    ds_mm_free(m->mm);
    ds_model_data_free(&m->data);
    gguf_free(&m->gguf);
    ds_mapping_close(&m->map);
    free(m->path);
    ds_logger_destroy(&m->logger);
    pthread_mutex_destroy(&m->err_lock);
    free(m);
}

ds_status ds_set_log_callback(ds_model *model, ds_log_level level, ds_log_fn fn, void *user_data)
{
    if (!model)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_set_log_callback: model is NULL");
    if ((int)level < DS_LOG_ERROR || level > DS_LOG_DEBUG)
        return ds_model_failf(model, DS_ERR_INVALID_ARG, "ds_set_log_callback: unknown level %d",
                              (int)level);
    ds_logger_set(&model->logger, level, fn, user_data);
    return DS_OK;
}

/* ---- info ------------------------------------------------------------------------------- */

ds_status ds_model_info_get(const ds_model *m, ds_model_info *info)
{
    if (!m || !info)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_info_get: NULL argument");
    if (info->struct_size < sizeof(uint32_t) || info->struct_size > sizeof(ds_model_info))
        return ds_model_failf(m, DS_ERR_INVALID_ARG,
                              "ds_model_info_get: struct_size %u is not in [4, %zu]",
                              info->struct_size, sizeof(ds_model_info));
    const ds2_hparams *hp = &m->data.hp;
    ds_model_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = info->struct_size;
    r.architecture = m->data.arch_name;
    r.name = m->name;
    r.file_size = m->map.size;
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++)
        r.n_params += m->gguf.tensors[i].n_elems;
    r.n_tensors = m->gguf.n_tensors;
    if (m->data.w.layers) {
        r.n_vocab = hp->n_vocab;
        r.n_ctx_train = hp->n_ctx_train;
        r.n_embd = hp->n_embd;
        r.n_layer = hp->n_layer;
        r.n_head = hp->n_head;
        r.n_head_kv = hp->n_head_kv;
        r.n_ff = hp->n_ff;
        r.q_lora_rank = hp->q_lora_rank;
        r.kv_lora_rank = hp->kv_lora_rank;
        r.qk_nope_head_dim = hp->qk_nope;
        r.qk_rope_head_dim = hp->qk_rope;
        r.v_head_dim = hp->v_head;
        r.n_expert = hp->n_expert;
        r.n_expert_used = hp->n_expert_used;
        r.n_expert_shared = hp->n_expert_shared;
        r.n_ff_expert = hp->n_ff_exp;
        r.n_leading_dense = hp->n_leading_dense;
        r.n_expert_groups = hp->n_group;
        r.n_expert_groups_used = hp->n_group_used;
        r.gating = hp->n_expert ? hp->gating : DS_GATING_NONE;
        r.expert_weights_norm = hp->expert_weights_norm;
        r.expert_weights_scale = hp->expert_weights_scale;
        r.rms_norm_eps = hp->rms_eps;
        r.rope_freq_base = hp->rope_freq_base;
        r.rope_scaling = hp->rope_scaling;
        r.rope_scaling_factor = hp->rope_factor;
        r.rope_orig_ctx = hp->rope_orig_ctx;
        r.yarn_mscale_all_dim = hp->mscale_all_dim;
        r.yarn_beta_fast = hp->yarn_beta_fast;
        r.yarn_beta_slow = hp->yarn_beta_slow;
        r.kv_split = hp->kv_split;
        r.kv_bytes_per_token = ds2_kv_bytes_per_token(hp, sizeof(float));
    }
    memcpy(info, &r, info->struct_size);
    return DS_OK;
}

/* ---- metadata --------------------------------------------------------------------------- */

uint64_t ds_model_meta_count(const ds_model *m)
{
    return m ? m->gguf.n_kv : 0;
}

const char *ds_model_meta_key(const ds_model *m, uint64_t i)
{
    if (!m || i >= m->gguf.n_kv)
        return NULL;
    return m->gguf.kv[i].key;
}

static ds_status find_kv(const ds_model *m, const char *key, const gguf_kv **kv, const char *fn)
{
    if (!m || !key)
        return ds_err_thread(DS_ERR_INVALID_ARG, "%s: NULL argument", fn);
    *kv = gguf_find_kv(&m->gguf, key);
    if (!*kv)
        return ds_model_failf(m, DS_ERR_NOT_FOUND, "%s: metadata key '%s' not found", fn, key);
    return DS_OK;
}

ds_status ds_model_meta_type(const ds_model *m, const char *key, ds_meta_type *type)
{
    const gguf_kv *kv;
    if (!type)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_meta_type: type is NULL");
    ds_status s = find_kv(m, key, &kv, "ds_model_meta_type");
    if (s == DS_OK)
        *type = (ds_meta_type)kv->value.type;
    return s;
}

ds_status ds_model_meta_int(const ds_model *m, const char *key, int64_t *value)
{
    if (!value)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_meta_int: value is NULL");
    const gguf_kv *kv;
    ds_status s = find_kv(m, key, &kv, "ds_model_meta_int");
    if (s != DS_OK)
        return s;
    ds_err e;
    ds_err_clear(&e);
    s = gguf_get_i64(&m->gguf, key, value, &e);
    if (s != DS_OK) {
        e.status = DS_ERR_INVALID_ARG;
        return ds_model_fail(m, &e);
    }
    return DS_OK;
}

ds_status ds_model_meta_float(const ds_model *m, const char *key, double *value)
{
    if (!value)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_meta_float: value is NULL");
    const gguf_kv *kv;
    ds_status s = find_kv(m, key, &kv, "ds_model_meta_float");
    if (s != DS_OK)
        return s;
    switch (kv->value.type) {
    case GGUF_FLOAT32: case GGUF_FLOAT64: *value = kv->value.v.f64; return DS_OK;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        *value = (double)kv->value.v.i64;
        return DS_OK;
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64: case GGUF_BOOL:
        *value = (double)kv->value.v.u64;
        return DS_OK;
    default:
        return ds_model_failf(m, DS_ERR_INVALID_ARG, "metadata key '%s' is a %s, not a number", key,
                              gguf_vtype_name(kv->value.type));
    }
}

/* A growable-free text sink: counts everything, writes what fits. */
typedef struct sink {
    char *buf;
    size_t cap;
    size_t len;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static void putf(sink *s, const char *fmt, ...) DS_PRINTF(2, 3);
static void putf(sink *s, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_json_str(sink *s, const char *p, uint64_t n)
{
    put(s, "\"", 1);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(s, e, 2);
        } else if (c < 0x20) {
            putf(s, "\\u%04x", c);
        } else {
            put(s, (const char *)&p[i], 1);
        }
    }
    put(s, "\"", 1);
}

static void put_scalar(sink *s, const gguf_value *v)
{
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        putf(s, "%" PRIu64, v->v.u64);
        break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        putf(s, "%" PRId64, v->v.i64);
        break;
    case GGUF_BOOL: putf(s, "%s", v->v.u64 ? "true" : "false"); break;
    case GGUF_FLOAT32: putf(s, "%.9g", v->v.f64); break;
    case GGUF_FLOAT64: putf(s, "%.17g", v->v.f64); break;
    default: break;
    }
}

static void put_value(sink *s, const gguf_value *v, bool top)
{
    if (v->type == GGUF_STRING) {
        if (top)
            put(s, v->v.str.ptr, (size_t)v->v.str.len);
        else
            put_json_str(s, v->v.str.ptr, v->v.str.len);
        return;
    }
    if (v->type != GGUF_ARRAY) {
        put_scalar(s, v);
        return;
    }
    const gguf_array *a = &v->v.arr;
    put(s, "[", 1);
    for (uint64_t i = 0; i < a->count; i++) {
        if (i)
            put(s, ",", 1);
        if (a->elem_type == GGUF_STRING) {
            put_json_str(s, a->strs[i].ptr, a->strs[i].len);
        } else if (a->elem_type == GGUF_ARRAY) {
            put_value(s, &a->items[i], false);
        } else {
            gguf_value e;
            memset(&e, 0, sizeof e);
            e.type = a->elem_type;
            switch (a->elem_type) {
            case GGUF_FLOAT32: case GGUF_FLOAT64: e.v.f64 = gguf_arr_f64(a, i); break;
            case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
                e.v.i64 = gguf_arr_i64(a, i);
                break;
            default: e.v.u64 = gguf_arr_u64(a, i); break;
            }
            put_scalar(s, &e);
        }
    }
    put(s, "]", 1);
}

ds_status ds_model_meta_string(const ds_model *m, const char *key, char *buf, size_t capacity,
                               size_t *needed)
{
    if (!buf && capacity)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_meta_string: buf is NULL with capacity %zu",
                             capacity);
    const gguf_kv *kv;
    ds_status s = find_kv(m, key, &kv, "ds_model_meta_string");
    if (s != DS_OK)
        return s;
    sink sk = {buf, capacity ? capacity - 1 : 0, 0};
    put_value(&sk, &kv->value, true);
    if (needed)
        *needed = sk.len + 1;
    if (capacity) {
        size_t end = sk.len < capacity - 1 ? sk.len : capacity - 1;
        buf[end] = '\0';
    }
    if (sk.len + 1 > capacity)
        return ds_model_failf(m, DS_ERR_BUFFER_TOO_SMALL,
                              "ds_model_meta_string: '%s' needs %zu bytes, capacity is %zu", key,
                              sk.len + 1, capacity);
    return DS_OK;
}

/* ---- tensors ---------------------------------------------------------------------------- */

ds_status ds_model_tensor_info(const ds_model *m, uint64_t i, ds_tensor_info *info)
{
    if (!m || !info)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_tensor_info: NULL argument");
    if (info->struct_size < sizeof(uint32_t) || info->struct_size > sizeof(ds_tensor_info))
        return ds_model_failf(m, DS_ERR_INVALID_ARG,
                              "ds_model_tensor_info: struct_size %u is not in [4, %zu]",
                              info->struct_size, sizeof(ds_tensor_info));
    if (i >= m->gguf.n_tensors)
        return ds_model_failf(m, DS_ERR_NOT_FOUND, "ds_model_tensor_info: index %llu >= %llu tensors",
                              (unsigned long long)i, (unsigned long long)m->gguf.n_tensors);
    const gguf_tensor *t = &m->gguf.tensors[i];
    ds_tensor_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = info->struct_size;
    r.name = t->name;
    r.type_name = ds_ggml_type_name(t->type);
    r.type = t->type;
    r.n_dims = t->n_dims;
    for (int d = 0; d < 4; d++)
        r.ne[d] = t->ne[d];
    r.offset = m->gguf.data_start + t->offset;
    r.nbytes = t->nbytes;
    memcpy(info, &r, info->struct_size);
    return DS_OK;
}

const ds_tokenizer *ds_model_tokenizer(const ds_model *model)
{
    return model ? model->tokenizer : NULL;
}

ds_status ds_model_find_tensor(const ds_model *m, const char *name, uint64_t *index)
{
    if (!m || !name || !index)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_model_find_tensor: NULL argument");
    const gguf_tensor *t = gguf_find_tensor(&m->gguf, name);
    if (!t)
        return ds_model_failf(m, DS_ERR_NOT_FOUND, "tensor '%s' not found", name);
    *index = (uint64_t)(t - m->gguf.tensors);
    return DS_OK;
}
