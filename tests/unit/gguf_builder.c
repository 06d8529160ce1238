/*
 * tests/unit/gguf_builder.c — in-memory GGUF writer for tests (see gguf_builder.h).
 */
#include "gguf_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "gguf_builder: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

/* ---- blob --------------------------------------------------------------------------------- */

void gb_blob_init(gb_blob *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void gb_blob_free(gb_blob *b)
{
    free(b->data);
    gb_blob_init(b);
}

static void blob_reserve(gb_blob *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void gb_put_bytes(gb_blob *b, const void *p, size_t n)
{
    if (!n)
        return;
    blob_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void gb_put_zeros(gb_blob *b, size_t n)
{
    if (!n)
        return;
    blob_reserve(b, n);
    memset(b->data + b->len, 0, n);
    b->len += n;
}

static void put_le(gb_blob *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    gb_put_bytes(b, t, (size_t)n);
}

void gb_put_u8(gb_blob *b, uint8_t v) { put_le(b, v, 1); }
void gb_put_u16(gb_blob *b, uint16_t v) { put_le(b, v, 2); }
void gb_put_u32(gb_blob *b, uint32_t v) { put_le(b, v, 4); }
void gb_put_u64(gb_blob *b, uint64_t v) { put_le(b, v, 8); }

void gb_put_f32(gb_blob *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_le(b, u, 4);
}

void gb_put_f64(gb_blob *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(b, u, 8);
}

void gb_put_strn(gb_blob *b, const void *p, size_t n)
{
    gb_put_u64(b, n);
    gb_put_bytes(b, p, n);
}

void gb_put_str(gb_blob *b, const char *s)
{
    gb_put_strn(b, s, strlen(s));
}

void gb_put_str_declared(gb_blob *b, uint64_t declared, const void *p, size_t n)
{
    gb_put_u64(b, declared);
    gb_put_bytes(b, p, n);
}

void gb_put_arr_hdr(gb_blob *b, uint32_t elem_type, uint64_t count)
{
    gb_put_u32(b, elem_type);
    gb_put_u64(b, count);
}

/* ---- builder ------------------------------------------------------------------------------ */

typedef struct gb_kv {
    char *lookup;
    gb_blob rec;     /* the whole record: key string, type id, value */
} gb_kv;

struct gguf_builder {
    uint8_t magic[4];
    uint32_t version;
    bool kv_count_set, tensor_count_set;
    uint64_t kv_count, tensor_count;
    uint32_t alignment;
    bool trailing_pad;
    gb_kv *kvs;
    size_t n_kv, cap_kv;
    gb_tensor *tensors;
    size_t n_tensors, cap_tensors;
    gb_layout layout;
};

gguf_builder *gb_new(void)
{
    gguf_builder *b = xrealloc(NULL, sizeof *b);
    memset(b, 0, sizeof *b);
    memcpy(b->magic, "GGUF", 4);
    b->version = 3;
    b->alignment = 32;
    b->trailing_pad = true;
    return b;
}

static void layout_free(gb_layout *l)
{
    free(l->kv_off);
    free(l->tensor_rec_off);
    free(l->tensor_data_off);
    memset(l, 0, sizeof *l);
}

void gb_free(gguf_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_kv; i++) {
        free(b->kvs[i].lookup);
        gb_blob_free(&b->kvs[i].rec);
    }
    free(b->kvs);
    for (size_t i = 0; i < b->n_tensors; i++)
        free(b->tensors[i].data);
    free(b->tensors);
    layout_free(&b->layout);
    free(b);
}

void gb_set_magic(gguf_builder *b, const char magic[4]) { memcpy(b->magic, magic, 4); }
void gb_set_version(gguf_builder *b, uint32_t version) { b->version = version; }
void gb_set_alignment(gguf_builder *b, uint32_t alignment) { b->alignment = alignment; }
void gb_set_trailing_pad(gguf_builder *b, bool pad) { b->trailing_pad = pad; }

void gb_set_kv_count(gguf_builder *b, uint64_t n)
{
    b->kv_count_set = true;
    b->kv_count = n;
}

void gb_set_tensor_count(gguf_builder *b, uint64_t n)
{
    b->tensor_count_set = true;
    b->tensor_count = n;
}

/* ---- metadata ----------------------------------------------------------------------------- */

static gb_kv *kv_push(gguf_builder *b, const char *lookup)
{
    if (b->n_kv == b->cap_kv) {
        b->cap_kv = b->cap_kv ? 2 * b->cap_kv : 16;
        b->kvs = xrealloc(b->kvs, b->cap_kv * sizeof *b->kvs);
    }
    gb_kv *kv = &b->kvs[b->n_kv++];
    size_t n = strlen(lookup);
    kv->lookup = xrealloc(NULL, n + 1);
    memcpy(kv->lookup, lookup, n + 1);
    gb_blob_init(&kv->rec);
    return kv;
}

static gb_blob *kv_begin(gguf_builder *b, const char *key, uint32_t type)
{
    gb_kv *kv = kv_push(b, key);
    gb_put_str(&kv->rec, key);
    gb_put_u32(&kv->rec, type);
    return &kv->rec;
}

void gb_kv_u8(gguf_builder *b, const char *key, uint8_t v) { gb_put_u8(kv_begin(b, key, GB_UINT8), v); }
void gb_kv_i8(gguf_builder *b, const char *key, int8_t v) { gb_put_u8(kv_begin(b, key, GB_INT8), (uint8_t)v); }
void gb_kv_u16(gguf_builder *b, const char *key, uint16_t v) { gb_put_u16(kv_begin(b, key, GB_UINT16), v); }
void gb_kv_i16(gguf_builder *b, const char *key, int16_t v) { gb_put_u16(kv_begin(b, key, GB_INT16), (uint16_t)v); }
void gb_kv_u32(gguf_builder *b, const char *key, uint32_t v) { gb_put_u32(kv_begin(b, key, GB_UINT32), v); }
void gb_kv_i32(gguf_builder *b, const char *key, int32_t v) { gb_put_u32(kv_begin(b, key, GB_INT32), (uint32_t)v); }
void gb_kv_u64(gguf_builder *b, const char *key, uint64_t v) { gb_put_u64(kv_begin(b, key, GB_UINT64), v); }
void gb_kv_i64(gguf_builder *b, const char *key, int64_t v) { gb_put_u64(kv_begin(b, key, GB_INT64), (uint64_t)v); }
void gb_kv_f32(gguf_builder *b, const char *key, float v) { gb_put_f32(kv_begin(b, key, GB_FLOAT32), v); }
void gb_kv_f64(gguf_builder *b, const char *key, double v) { gb_put_f64(kv_begin(b, key, GB_FLOAT64), v); }
void gb_kv_bool(gguf_builder *b, const char *key, uint8_t raw) { gb_put_u8(kv_begin(b, key, GB_BOOL), raw); }
void gb_kv_str(gguf_builder *b, const char *key, const char *s) { gb_put_str(kv_begin(b, key, GB_STRING), s); }

void gb_kv_strn(gguf_builder *b, const char *key, const void *p, size_t n)
{
    gb_put_strn(kv_begin(b, key, GB_STRING), p, n);
}

void gb_kv_arr(gguf_builder *b, const char *key, uint32_t elem_type, uint64_t count,
               const void *packed, size_t nbytes)
{
    gb_blob *r = kv_begin(b, key, GB_ARRAY);
    gb_put_arr_hdr(r, elem_type, count);
    gb_put_bytes(r, packed, nbytes);
}

void gb_kv_arr_i32(gguf_builder *b, const char *key, const int32_t *v, size_t n)
{
    gb_blob *r = kv_begin(b, key, GB_ARRAY);
    gb_put_arr_hdr(r, GB_INT32, n);
    for (size_t i = 0; i < n; i++)
        gb_put_u32(r, (uint32_t)v[i]);
}

void gb_kv_arr_f32(gguf_builder *b, const char *key, const float *v, size_t n)
{
    gb_blob *r = kv_begin(b, key, GB_ARRAY);
    gb_put_arr_hdr(r, GB_FLOAT32, n);
    for (size_t i = 0; i < n; i++)
        gb_put_f32(r, v[i]);
}

void gb_kv_arr_str(gguf_builder *b, const char *key, const char *const *s, size_t n)
{
    gb_blob *r = kv_begin(b, key, GB_ARRAY);
    gb_put_arr_hdr(r, GB_STRING, n);
    for (size_t i = 0; i < n; i++)
        gb_put_str(r, s[i]);
}

void gb_kv_value(gguf_builder *b, const char *key, uint32_t type, const gb_blob *value)
{
    gb_blob *r = kv_begin(b, key, type);
    gb_put_bytes(r, value->data, value->len);
}

void gb_kv_raw(gguf_builder *b, const char *lookup, const void *record, size_t n)
{
    gb_kv *kv = kv_push(b, lookup);
    gb_put_bytes(&kv->rec, record, n);
}

int gb_kv_remove(gguf_builder *b, const char *key)
{
    int removed = 0;
    size_t j = 0;
    for (size_t i = 0; i < b->n_kv; i++) {
        if (strcmp(b->kvs[i].lookup, key) == 0) {
            free(b->kvs[i].lookup);
            gb_blob_free(&b->kvs[i].rec);
            removed++;
        } else {
            b->kvs[j++] = b->kvs[i];
        }
    }
    b->n_kv = j;
    return removed;
}

long gb_kv_find(const gguf_builder *b, const char *key)
{
    for (size_t i = 0; i < b->n_kv; i++)
        if (strcmp(b->kvs[i].lookup, key) == 0)
            return (long)i;
    return -1;
}

size_t gb_kv_count(const gguf_builder *b)
{
    return b->n_kv;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* The builder's own block table: {elements per block, bytes per block}. */
static bool type_block(uint32_t type, uint64_t *be, uint64_t *bb)
{
    switch (type) {
    case GB_T_F32: *be = 1; *bb = 4; return true;
    case GB_T_F16: *be = 1; *bb = 2; return true;
    case GB_T_BF16: *be = 1; *bb = 2; return true;
    case GB_T_Q4_0: *be = 32; *bb = 18; return true;
    case GB_T_Q8_0: *be = 32; *bb = 34; return true;
    case GB_T_Q4_K: *be = 256; *bb = 144; return true;
    case GB_T_Q6_K: *be = 256; *bb = 210; return true;
    case GB_T_Q8_K: *be = 256; *bb = 292; return true;
    case GB_T_IQ2_XXS: *be = 256; *bb = 66; return true;
    case GB_T_I64: *be = 1; *bb = 8; return true;
    case GB_T_F64: *be = 1; *bb = 8; return true;
    default: return false;
    }
}

uint64_t gb_type_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
    uint64_t be = 1, bb = 1;
    type_block(type, &be, &bb);
    uint64_t n = n_dims ? (ne[0] + be - 1) / be * bb : bb;
    for (uint32_t d = 1; d < n_dims && d < 8; d++)
        n *= ne[d];
    return n;
}

static uint32_t name_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint16_t f32_to_f16_bits(float f)
{
    /* only for small normal values in [-1, 1] (the generator's range) and zero */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = (u >> 13) & 0x3FFu;
    if (exp <= 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | (uint32_t)exp << 10 | mant);
}

void gb_tensor_fill(gb_tensor *t)
{
    free(t->data);
    t->data = xrealloc(NULL, (size_t)t->nbytes);
    uint32_t h = name_hash(t->name, t->name_len);
    uint32_t s = h | 1u;
    uint64_t be = 0, bb = 0;
    bool known = type_block(t->type, &be, &bb);
    for (uint64_t i = 0; i < t->nbytes;) {
        s = s * 1664525u + 1013904223u;
        float f = (float)((int)(s >> 16) % 2001 - 1000) / 1000.0f; /* [-1, 1] */
        if (known && t->type == GB_T_F32 && t->nbytes - i >= 4) {
            memcpy(t->data + i, &f, 4);
            i += 4;
        } else if (known && t->type == GB_T_F16 && t->nbytes - i >= 2) {
            uint16_t v = f32_to_f16_bits(f);
            memcpy(t->data + i, &v, 2);
            i += 2;
        } else if (known && t->type == GB_T_BF16 && t->nbytes - i >= 2) {
            uint32_t u;
            memcpy(&u, &f, 4);
            uint16_t v = (uint16_t)(u >> 16);
            memcpy(t->data + i, &v, 2);
            i += 2;
        } else if (known && t->type == GB_T_Q8_0 && i % 34 == 0 && t->nbytes - i >= 34) {
            uint16_t d = f32_to_f16_bits(1.0f / 64.0f);
            memcpy(t->data + i, &d, 2);
            for (int k = 0; k < 32; k++) {
                s = s * 1664525u + 1013904223u;
                t->data[i + 2 + (uint64_t)k] = (uint8_t)(s >> 24);
            }
            i += 34;
        } else {
            t->data[i++] = (uint8_t)(s >> 24);
        }
    }
}

static void tensor_resize(gb_tensor *t)
{
    t->nbytes = gb_type_nbytes(t->type, t->n_dims, t->ne);
    gb_tensor_fill(t);
}

gb_tensor *gb_tensor_add(gguf_builder *b, const char *name, uint32_t type, uint32_t n_dims,
                         const uint64_t *ne)
{
    if (b->n_tensors == b->cap_tensors) {
        b->cap_tensors = b->cap_tensors ? 2 * b->cap_tensors : 16;
        b->tensors = xrealloc(b->tensors, b->cap_tensors * sizeof *b->tensors);
    }
    gb_tensor *t = &b->tensors[b->n_tensors++];
    memset(t, 0, sizeof *t);
    size_t n = strlen(name);
    if (n > sizeof t->name)
        n = sizeof t->name;
    memcpy(t->name, name, n);
    t->name_len = n;
    t->type = type;
    t->n_dims = n_dims;
    t->n_ne = n_dims > 8 ? 8 : n_dims;
    for (uint32_t d = 0; d < t->n_ne; d++)
        t->ne[d] = ne[d];
    tensor_resize(t);
    return t;
}

gb_tensor *gb_tensor_find(gguf_builder *b, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < b->n_tensors; i++)
        if (b->tensors[i].name_len == n && memcmp(b->tensors[i].name, name, n) == 0)
            return &b->tensors[i];
    return NULL;
}

gb_tensor *gb_tensor_at(gguf_builder *b, size_t i)
{
    return i < b->n_tensors ? &b->tensors[i] : NULL;
}

size_t gb_tensor_count(const gguf_builder *b)
{
    return b->n_tensors;
}

bool gb_tensor_remove(gguf_builder *b, const char *name)
{
    gb_tensor *t = gb_tensor_find(b, name);
    if (!t)
        return false;
    size_t i = (size_t)(t - b->tensors);
    free(t->data);
    memmove(&b->tensors[i], &b->tensors[i + 1], (b->n_tensors - i - 1) * sizeof *b->tensors);
    b->n_tensors--;
    return true;
}

void gb_tensor_set_type(gb_tensor *t, uint32_t type)
{
    t->type = type;
    tensor_resize(t);
}

void gb_tensor_set_shape(gb_tensor *t, uint32_t n_dims, const uint64_t *ne)
{
    t->n_dims = n_dims;
    t->n_ne = n_dims > 8 ? 8 : n_dims;
    for (uint32_t d = 0; d < t->n_ne; d++)
        t->ne[d] = ne[d];
    tensor_resize(t);
}

void gb_tensor_set_name(gb_tensor *t, const void *name, size_t n)
{
    if (n > sizeof t->name)
        n = sizeof t->name;
    memcpy(t->name, name, n);
    t->name_len = n;
}

/* ---- output ------------------------------------------------------------------------------- */

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return a ? (x + a - 1) / a * a : x;
}

uint8_t *gb_build(gguf_builder *b, size_t *size)
{
    layout_free(&b->layout);
    gb_layout *L = &b->layout;
    L->n_kv = b->n_kv;
    L->n_tensors = b->n_tensors;
    L->kv_off = xrealloc(NULL, (b->n_kv + 1) * sizeof *L->kv_off);
    L->tensor_rec_off = xrealloc(NULL, (b->n_tensors + 1) * sizeof *L->tensor_rec_off);
    L->tensor_data_off = xrealloc(NULL, (b->n_tensors + 1) * sizeof *L->tensor_data_off);

    gb_blob out;
    gb_blob_init(&out);
    gb_put_bytes(&out, b->magic, 4);
    gb_put_u32(&out, b->version);
    gb_put_u64(&out, b->tensor_count_set ? b->tensor_count : b->n_tensors);
    gb_put_u64(&out, b->kv_count_set ? b->kv_count : b->n_kv);
    L->header_end = out.len;
    for (size_t i = 0; i < b->n_kv; i++) {
        L->kv_off[i] = out.len;
        gb_put_bytes(&out, b->kvs[i].rec.data, b->kvs[i].rec.len);
    }
    L->kv_end = out.len;

    /* offsets as llama.cpp's writer assigns them */
    uint64_t off = 0;
    for (size_t i = 0; i < b->n_tensors; i++) {
        gb_tensor *t = &b->tensors[i];
        t->layout_offset = off;
        off += align_up(t->nbytes, b->alignment);
    }
    for (size_t i = 0; i < b->n_tensors; i++) {
        gb_tensor *t = &b->tensors[i];
        L->tensor_rec_off[i] = out.len;
        gb_put_u64(&out, t->name_declared_set ? t->name_declared : t->name_len);
        gb_put_bytes(&out, t->name, t->name_len);
        gb_put_u32(&out, t->n_dims);
        for (uint32_t d = 0; d < t->n_ne; d++)
            gb_put_u64(&out, t->ne[d]);
        gb_put_u32(&out, t->type);
        gb_put_u64(&out, t->offset_set ? t->offset : t->layout_offset);
    }
    L->infos_end = out.len;
    if (b->n_tensors) {
        gb_put_zeros(&out, (size_t)(align_up(out.len, b->alignment) - out.len));
        L->data_start = out.len;
        for (size_t i = 0; i < b->n_tensors; i++) {
            gb_tensor *t = &b->tensors[i];
            L->tensor_data_off[i] = out.len;
            gb_put_bytes(&out, t->data, (size_t)t->nbytes);
            if (i + 1 < b->n_tensors || b->trailing_pad)
                gb_put_zeros(&out, (size_t)(align_up(t->nbytes, b->alignment) - t->nbytes));
        }
    } else {
        L->data_start = out.len;
    }
    L->size = out.len;
    *size = out.len;
    if (!out.data)
        out.data = xrealloc(NULL, 1);
    return out.data;
}

const gb_layout *gb_get_layout(const gguf_builder *b)
{
    return &b->layout;
}

int gb_write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    int rc = fclose(f);
    return (w == n && rc == 0) ? 0 : -1;
}

int gb_write_file(gguf_builder *b, const char *path, size_t keep)
{
    size_t n = 0;
    uint8_t *p = gb_build(b, &n);
    int rc = gb_write_bytes(path, p, keep < n ? keep : n);
    free(p);
    return rc;
}

/* ---- deepseek2 ---------------------------------------------------------------------------- */

void gb_ds2_default(gb_ds2_config *c)
{
    memset(c, 0, sizeof *c);
    c->name = "tiny-ds2";
    c->n_layer = 2;
    c->n_embd = 32;
    c->n_head = 2;
    c->n_vocab = 32;
    c->n_ctx = 256;
    c->q_lora_rank = 0;
    c->kv_lora_rank = 16;
    c->qk_nope = 8;
    c->qk_rope = 4;
    c->v_head = 8;
    c->n_ff = 32;
    c->n_expert = 4;
    c->n_expert_used = 2;
    c->n_expert_shared = 1;
    c->n_ff_exp = 16;
    c->n_leading_dense = 1;
    c->n_group = 1;
    c->n_group_used = 1;
    c->gating = 1;
    c->kv_split = false;
    c->exp_probs_b = false;
    c->expert_weights_norm = false;
    c->expert_weights_scale = 1.0f;
    c->rms_eps = 1e-6f;
    c->rope_freq_base = 10000.0f;
    c->yarn = true;
    c->yarn_factor = 40.0f;
    c->yarn_log_multiplier = 0.0707f;
    c->yarn_orig_ctx = 64;
    c->matrix_type = GB_T_F16;
    c->write_vocab_size = true;
}

void gb_ds2_small(gb_ds2_config *c)
{
    gb_ds2_default(c);
    c->name = "small-ds2";
    c->n_embd = 16;
    c->n_head = 1;
    c->n_vocab = 16;
    c->kv_lora_rank = 8;
    c->qk_nope = 4;
    c->qk_rope = 2;
    c->v_head = 4;
    c->n_ff = 16;
    c->n_expert = 2;
    c->n_expert_used = 1;
    c->n_ff_exp = 8;
    c->yarn = false;
}

typedef struct ds2_ctx {
    gguf_builder *b;
    const gb_ds2_config *c;
    uint64_t n_params;
    bool count_only;
} ds2_ctx;

static void t_add(ds2_ctx *x, const char *name, bool matrix, uint64_t e0, uint64_t e1, uint64_t e2)
{
    uint64_t ne[3] = {e0, e1, e2};
    uint32_t nd = e2 ? 3 : e1 ? 2 : 1;
    x->n_params += e0 * (e1 ? e1 : 1) * (e2 ? e2 : 1);
    if (x->count_only)
        return;
    uint32_t type = GB_T_F32;
    if (matrix) {
        uint64_t be = 1, bb = 1;
        type_block(x->c->matrix_type, &be, &bb);
        type = e0 % be == 0 ? x->c->matrix_type : GB_T_F16;
    }
    gb_tensor_add(x->b, name, type, nd, ne);
}

static void t_addl(ds2_ctx *x, const char *fmt, uint32_t il, bool matrix, uint64_t e0, uint64_t e1,
                   uint64_t e2)
{
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    t_add(x, name, matrix, e0, e1, e2);
}

static void ds2_tensors(ds2_ctx *x)
{
    const gb_ds2_config *c = x->c;
    const uint64_t d = c->n_embd, H = c->n_head, dq = c->q_lora_rank, dc = c->kv_lora_rank;
    const uint64_t dn = c->qk_nope, dr = c->qk_rope, dv = c->v_head, V = c->n_vocab;
    t_add(x, "token_embd.weight", true, d, V, 0);
    t_add(x, "output_norm.weight", false, d, 0, 0);
    t_add(x, "output.weight", true, d, V, 0);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        t_addl(x, "blk.%u.attn_norm.weight", il, false, d, 0, 0);
        if (dq) {
            t_addl(x, "blk.%u.attn_q_a.weight", il, true, d, dq, 0);
            t_addl(x, "blk.%u.attn_q_a_norm.weight", il, false, dq, 0, 0);
            t_addl(x, "blk.%u.attn_q_b.weight", il, true, dq, H * (dn + dr), 0);
        } else {
            t_addl(x, "blk.%u.attn_q.weight", il, true, d, H * (dn + dr), 0);
        }
        t_addl(x, "blk.%u.attn_kv_a_mqa.weight", il, true, d, dc + dr, 0);
        t_addl(x, "blk.%u.attn_kv_a_norm.weight", il, false, dc, 0, 0);
        if (c->kv_split) {
            t_addl(x, "blk.%u.attn_k_b.weight", il, true, dn, dc, H);
            t_addl(x, "blk.%u.attn_v_b.weight", il, true, dc, dv, H);
        } else {
            t_addl(x, "blk.%u.attn_kv_b.weight", il, true, dc, H * (dn + dv), 0);
        }
        t_addl(x, "blk.%u.attn_output.weight", il, true, H * dv, d, 0);
        t_addl(x, "blk.%u.ffn_norm.weight", il, false, d, 0, 0);
        if (il < c->n_leading_dense) {
            t_addl(x, "blk.%u.ffn_gate.weight", il, true, d, c->n_ff, 0);
            t_addl(x, "blk.%u.ffn_up.weight", il, true, d, c->n_ff, 0);
            t_addl(x, "blk.%u.ffn_down.weight", il, true, c->n_ff, d, 0);
        } else {
            const uint64_t E = c->n_expert, fe = c->n_ff_exp, fs = fe * c->n_expert_shared;
            t_addl(x, "blk.%u.ffn_gate_inp.weight", il, true, d, E, 0);
            if (c->exp_probs_b)
                t_addl(x, "blk.%u.exp_probs_b.bias", il, false, E, 0, 0);
            t_addl(x, "blk.%u.ffn_gate_exps.weight", il, true, d, fe, E);
            t_addl(x, "blk.%u.ffn_up_exps.weight", il, true, d, fe, E);
            t_addl(x, "blk.%u.ffn_down_exps.weight", il, true, fe, d, E);
            if (fs) {
                t_addl(x, "blk.%u.ffn_gate_shexp.weight", il, true, d, fs, 0);
                t_addl(x, "blk.%u.ffn_up_shexp.weight", il, true, d, fs, 0);
                t_addl(x, "blk.%u.ffn_down_shexp.weight", il, true, fs, d, 0);
            }
        }
    }
}

uint64_t gb_ds2_n_params(const gb_ds2_config *c)
{
    ds2_ctx x = {NULL, c, 0, true};
    ds2_tensors(&x);
    return x.n_params;
}

void gb_add_ds2(gguf_builder *b, const gb_ds2_config *c)
{
    gb_kv_str(b, "general.architecture", "deepseek2");
    if (c->name)
        gb_kv_str(b, "general.name", c->name);
    gb_kv_u32(b, "deepseek2.block_count", c->n_layer);
    gb_kv_u32(b, "deepseek2.context_length", c->n_ctx);
    gb_kv_u32(b, "deepseek2.embedding_length", c->n_embd);
    gb_kv_u32(b, "deepseek2.feed_forward_length", c->n_ff);
    gb_kv_u32(b, "deepseek2.attention.head_count", c->n_head);
    gb_kv_u32(b, "deepseek2.attention.head_count_kv", c->kv_split ? 1 : c->n_head);
    if (c->q_lora_rank)
        gb_kv_u32(b, "deepseek2.attention.q_lora_rank", c->q_lora_rank);
    gb_kv_u32(b, "deepseek2.attention.kv_lora_rank", c->kv_lora_rank);
    if (c->kv_split) {
        gb_kv_u32(b, "deepseek2.attention.key_length", c->kv_lora_rank + c->qk_rope);
        gb_kv_u32(b, "deepseek2.attention.value_length", c->kv_lora_rank);
        gb_kv_u32(b, "deepseek2.attention.key_length_mla", c->qk_nope + c->qk_rope);
        gb_kv_u32(b, "deepseek2.attention.value_length_mla", c->v_head);
    } else {
        gb_kv_u32(b, "deepseek2.attention.key_length", c->qk_nope + c->qk_rope);
        gb_kv_u32(b, "deepseek2.attention.value_length", c->v_head);
    }
    gb_kv_f32(b, "deepseek2.attention.layer_norm_rms_epsilon", c->rms_eps);
    gb_kv_u32(b, "deepseek2.rope.dimension_count", c->qk_rope);
    gb_kv_f32(b, "deepseek2.rope.freq_base", c->rope_freq_base);
    if (c->yarn) {
        gb_kv_str(b, "deepseek2.rope.scaling.type", "yarn");
        gb_kv_f32(b, "deepseek2.rope.scaling.factor", c->yarn_factor);
        gb_kv_u32(b, "deepseek2.rope.scaling.original_context_length", c->yarn_orig_ctx);
        gb_kv_f32(b, "deepseek2.rope.scaling.yarn_log_multiplier", c->yarn_log_multiplier);
    }
    gb_kv_u32(b, "deepseek2.leading_dense_block_count", c->n_leading_dense);
    if (c->n_expert) {
        gb_kv_u32(b, "deepseek2.expert_count", c->n_expert);
        gb_kv_u32(b, "deepseek2.expert_used_count", c->n_expert_used);
        gb_kv_u32(b, "deepseek2.expert_shared_count", c->n_expert_shared);
        gb_kv_u32(b, "deepseek2.expert_feed_forward_length", c->n_ff_exp);
        if (c->expert_weights_scale != 0.0f)
            gb_kv_f32(b, "deepseek2.expert_weights_scale", c->expert_weights_scale);
        if (c->expert_weights_norm)
            gb_kv_bool(b, "deepseek2.expert_weights_norm", 1);
        if (c->gating)
            gb_kv_u32(b, "deepseek2.expert_gating_func", c->gating);
        if (c->n_group) {
            gb_kv_u32(b, "deepseek2.expert_group_count", c->n_group);
            gb_kv_u32(b, "deepseek2.expert_group_used_count", c->n_group_used);
        }
    }
    if (c->write_vocab_size)
        gb_kv_u32(b, "deepseek2.vocab_size", c->n_vocab);
    ds2_ctx x = {b, c, 0, false};
    ds2_tensors(&x);
}
