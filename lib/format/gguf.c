/*
 * lib/format/gguf.c — hardened GGUF v2/v3 parser (see gguf.h for the contract).
 *
 * Every read goes through the `rd` cursor, which checks the remaining byte count before it
 * touches memory; every count is checked against the bytes that could possibly encode it
 * before anything is allocated; every size computation is overflow-checked. Errors name the
 * section, the key or tensor, and the byte offset.
 */
#include "format/gguf.h"

#include "format/ggml_types.h"

#include <stdlib.h>
#include <string.h>

typedef struct rd {
    const uint8_t *buf;
    size_t size;
    size_t pos;
    ds_err *err;
} rd;

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */

static ds_status truncated(rd *r, size_t need, const char *what)
{
    return ds_err_set(r->err, DS_ERR_FORMAT,
                      "truncated file: %s needs %zu bytes at offset %zu but the file has %zu bytes",
                      what, need, r->pos, r->size);
}

static inline size_t remaining(const rd *r)
{
    return r->size - r->pos;
}

static ds_status rd_bytes(rd *r, size_t n, const uint8_t **out, const char *what)
{
    if (n > remaining(r))
        return truncated(r, n, what);
    *out = r->buf + r->pos;
    r->pos += n;
    return DS_OK;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static ds_status rd_u32(rd *r, uint32_t *v, const char *what)
{
    const uint8_t *p = NULL;
    ds_status s = rd_bytes(r, 4, &p, what);
    if (s == DS_OK)
        *v = le32(p);
    return s;
}

static ds_status rd_u64(rd *r, uint64_t *v, const char *what)
{
    const uint8_t *p = NULL;
    ds_status s = rd_bytes(r, 8, &p, what);
    if (s == DS_OK)
        *v = le64(p);
    return s;
}

/* Valid UTF-8 without NUL or ASCII control characters (for keys and tensor names). */
static bool name_ok(const uint8_t *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7F)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < (uint64_t)len)
            return false;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (uint64_t)len;
    }
    return true;
}

static ds_status rd_str(rd *r, gguf_str *out, const char *what)
{
    size_t at = r->pos;
    uint64_t len;
    ds_status s = rd_u64(r, &len, what);
    if (s != DS_OK)
        return s;
    if (len > remaining(r)) {
        r->pos = at;
        return ds_err_set(r->err, DS_ERR_FORMAT,
                          "%s: string length %llu at offset %zu exceeds the %zu bytes left in the file",
                          what, (unsigned long long)len, at, remaining(r) >= 8 ? remaining(r) - 8 : 0);
    }
    out->ptr = (const char *)(r->buf + r->pos);
    out->len = len;
    r->pos += (size_t)len;
    return DS_OK;
}

size_t gguf_vtype_size(uint32_t type)
{
    switch (type) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(uint32_t type)
{
    static const char *names[GGUF_VTYPE_COUNT] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32",
        "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    return type < GGUF_VTYPE_COUNT ? names[type] : "unknown";
}

static void value_free(gguf_value *v)
{
    if (v->type != GGUF_ARRAY)
        return;
    free(v->v.arr.strs);
    if (v->v.arr.items) {
        for (uint64_t i = 0; i < v->v.arr.count; i++)
            value_free(&v->v.arr.items[i]);
        free(v->v.arr.items);
    }
    v->v.arr.strs = NULL;
    v->v.arr.items = NULL;
}

/* Decode a scalar from raw little-endian bytes. */
static void scalar_decode(uint32_t type, const uint8_t *p, gguf_value *v)
{
    v->type = type;
    switch (type) {
    case GGUF_UINT8: v->v.u64 = p[0]; break;
    case GGUF_INT8: v->v.i64 = (int8_t)p[0]; break;
    case GGUF_UINT16: v->v.u64 = le16(p); break;
    case GGUF_INT16: v->v.i64 = (int16_t)le16(p); break;
    case GGUF_UINT32: v->v.u64 = le32(p); break;
    case GGUF_INT32: v->v.i64 = (int32_t)le32(p); break;
    case GGUF_UINT64: v->v.u64 = le64(p); break;
    case GGUF_INT64: v->v.i64 = (int64_t)le64(p); break;
    case GGUF_BOOL: v->v.u64 = p[0]; break;
    case GGUF_FLOAT32: {
        uint32_t b = le32(p);
        float f;
        memcpy(&f, &b, 4);
        v->v.f64 = f;
        break;
    }
    case GGUF_FLOAT64: {
        uint64_t b = le64(p);
        double d;
        memcpy(&d, &b, 8);
        v->v.f64 = d;
        break;
    }
    default: break;
    }
}

static ds_status parse_value(rd *r, uint32_t type, gguf_value *v, int depth, const char *key);

static ds_status parse_array(rd *r, gguf_value *v, int depth, const char *key)
{
    size_t at = r->pos;
    uint32_t et;
    uint64_t count;
    ds_status s = rd_u32(r, &et, "array element type");
    if (s == DS_OK)
        s = rd_u64(r, &count, "array element count");
    if (s != DS_OK) {
        ds_err_prefix(r->err, "metadata key '%s'", key);
        return s;
    }
    if (et >= GGUF_VTYPE_COUNT)
        return ds_err_set(r->err, DS_ERR_FORMAT,
                          "metadata key '%s': array at offset %zu has invalid element type %u", key,
                          at, et);
    if (et == GGUF_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return ds_err_set(r->err, DS_ERR_FORMAT,
                          "metadata key '%s': arrays nested deeper than %d levels at offset %zu",
                          key, GGUF_MAX_ARRAY_DEPTH, at);
    size_t min_elem = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? 12 : gguf_vtype_size(et);
    if (count > remaining(r) / min_elem)
        return ds_err_set(r->err, DS_ERR_FORMAT,
                          "metadata key '%s': array of %llu %s elements at offset %zu cannot fit in "
                          "the %zu bytes left in the file",
                          key, (unsigned long long)count, gguf_vtype_name(et), at, remaining(r));
    v->type = GGUF_ARRAY;
    v->v.arr.elem_type = et;
    v->v.arr.count = count;
    v->v.arr.data = NULL;
    v->v.arr.strs = NULL;
    v->v.arr.items = NULL;
    if (et == GGUF_STRING) {
        if (count) {
            v->v.arr.strs = malloc((size_t)count * sizeof(gguf_str));
            if (!v->v.arr.strs)
                return ds_err_set(r->err, DS_ERR_NO_MEMORY,
                                  "metadata key '%s': cannot allocate %llu strings", key,
                                  (unsigned long long)count);
        }
        for (uint64_t i = 0; i < count; i++) {
            s = rd_str(r, &v->v.arr.strs[i], "array string");
            if (s != DS_OK) {
                ds_err_prefix(r->err, "metadata key '%s' element %llu", key, (unsigned long long)i);
                value_free(v);
                return s;
            }
        }
    } else if (et == GGUF_ARRAY) {
        if (count) {
            v->v.arr.items = calloc((size_t)count, sizeof(gguf_value));
            if (!v->v.arr.items)
                return ds_err_set(r->err, DS_ERR_NO_MEMORY,
                                  "metadata key '%s': cannot allocate %llu nested arrays", key,
                                  (unsigned long long)count);
        }
        for (uint64_t i = 0; i < count; i++) {
            s = parse_value(r, GGUF_ARRAY, &v->v.arr.items[i], depth + 1, key);
            if (s != DS_OK) {
                /* items after i are zeroed (type 0): value_free skips them */
                value_free(v);
                return s;
            }
        }
    } else {
        const uint8_t *p = NULL;
        s = rd_bytes(r, (size_t)count * min_elem, &p, "array data");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "metadata key '%s'", key);
            return s;
        }
        v->v.arr.data = p;
        if (et == GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (p[i] > 1)
                    return ds_err_set(r->err, DS_ERR_FORMAT,
                                      "metadata key '%s': bool array element %llu has value %u at "
                                      "offset %zu",
                                      key, (unsigned long long)i, p[i], (size_t)(p + i - r->buf));
        }
    }
    return DS_OK;
}

static ds_status parse_value(rd *r, uint32_t type, gguf_value *v, int depth, const char *key)
{
    memset(v, 0, sizeof *v);
    if (type == GGUF_STRING) {
        v->type = GGUF_STRING;
        ds_status s = rd_str(r, &v->v.str, "string value");
        if (s != DS_OK)
            ds_err_prefix(r->err, "metadata key '%s'", key);
        return s;
    }
    if (type == GGUF_ARRAY)
        return parse_array(r, v, depth, key);
    size_t n = gguf_vtype_size(type);
    const uint8_t *p = NULL;
    size_t at = r->pos;
    ds_status s = rd_bytes(r, n, &p, "scalar value");
    if (s != DS_OK) {
        ds_err_prefix(r->err, "metadata key '%s'", key);
        return s;
    }
    if (type == GGUF_BOOL && p[0] > 1)
        return ds_err_set(r->err, DS_ERR_FORMAT,
                          "metadata key '%s': bool value %u at offset %zu (must be 0 or 1)", key,
                          p[0], at);
    scalar_decode(type, p, v);
    return DS_OK;
}

/* ---- hash index ------------------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t index_cap_for(uint64_t n)
{
    uint64_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    return cap;
}

/* Insert names[i] for i < n; returns the index of a duplicate's first occurrence + 1, or 0. */
static ds_status index_build(uint64_t **slots_out, uint64_t *cap_out, uint64_t n,
                             const char *(*name_of)(const void *, uint64_t), const void *ctx,
                             uint64_t *dup_a, uint64_t *dup_b)
{
    uint64_t cap = index_cap_for(n);
    uint64_t *slots = calloc((size_t)cap, sizeof *slots);
    if (!slots)
        return DS_ERR_NO_MEMORY;
    for (uint64_t i = 0; i < n; i++) {
        const char *name = name_of(ctx, i);
        uint64_t h = hash_str(name) & (cap - 1);
        while (slots[h]) {
            if (strcmp(name_of(ctx, slots[h] - 1), name) == 0) {
                *dup_a = slots[h] - 1;
                *dup_b = i;
                free(slots);
                return DS_ERR_FORMAT;
            }
            h = (h + 1) & (cap - 1);
        }
        slots[h] = i + 1;
    }
    *slots_out = slots;
    *cap_out = cap;
    return DS_OK;
}

static const char *kv_name(const void *ctx, uint64_t i)
{
    return ((const gguf_kv *)ctx)[i].key;
}

static const char *t_name(const void *ctx, uint64_t i)
{
    return ((const gguf_tensor *)ctx)[i].name;
}

static uint64_t index_find(const uint64_t *slots, uint64_t cap, const char *name,
                           const char *(*name_of)(const void *, uint64_t), const void *ctx)
{
    if (!slots || !name)
        return 0;
    uint64_t h = hash_str(name) & (cap - 1);
    while (slots[h]) {
        if (strcmp(name_of(ctx, slots[h] - 1), name) == 0)
            return slots[h];
        h = (h + 1) & (cap - 1);
    }
    return 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key)
{
    uint64_t i = index_find(f->kv_index, f->kv_index_cap, key, kv_name, f->kv);
    return i ? &f->kv[i - 1] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    uint64_t i = index_find(f->t_index, f->t_index_cap, name, t_name, f->tensors);
    return i ? &f->tensors[i - 1] : NULL;
}

/* ---- the parser ------------------------------------------------------------------------- */

static char *dup_name(const gguf_str *s)
{
    char *p = malloc((size_t)s->len + 1);
    if (p) {
        memcpy(p, s->ptr, (size_t)s->len);
        p[s->len] = '\0';
    }
    return p;
}

void gguf_free(gguf_file *f)
{
    if (!f)
        return;
    if (f->kv) {
        for (uint64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            value_free(&f->kv[i].value);
        }
        free(f->kv);
    }
    if (f->tensors) {
        for (uint64_t i = 0; i < f->n_tensors; i++)
            free(f->tensors[i].name);
        free(f->tensors);
    }
    free(f->kv_index);
    free(f->t_index);
    memset(f, 0, sizeof *f);
}

static int cmp_offset(const void *a, const void *b)
{
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static ds_status parse_kvs(rd *r, gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->file_offset = r->pos;
        gguf_str key;
        ds_status s = rd_str(r, &key, "metadata key");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "metadata pair %llu", (unsigned long long)i);
            return s;
        }
        if (key.len == 0 || key.len > GGUF_MAX_KEY_LEN || !name_ok((const uint8_t *)key.ptr, key.len))
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "metadata pair %llu at offset %llu: key is empty, longer than %d bytes, "
                              "or not valid UTF-8 text",
                              (unsigned long long)i, (unsigned long long)kv->file_offset,
                              GGUF_MAX_KEY_LEN);
        kv->key = dup_name(&key);
        if (!kv->key)
            return ds_err_set(r->err, DS_ERR_NO_MEMORY, "cannot allocate a metadata key");
        uint32_t type;
        s = rd_u32(r, &type, "metadata value type");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "metadata key '%s'", kv->key);
            return s;
        }
        if (type >= GGUF_VTYPE_COUNT)
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "metadata key '%s' at offset %llu: invalid value type %u", kv->key,
                              (unsigned long long)kv->file_offset, type);
        s = parse_value(r, type, &kv->value, 0, kv->key);
        if (s != DS_OK)
            return s;
    }
    return DS_OK;
}

static ds_status parse_tensor_infos(rd *r, gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        size_t at = r->pos;
        gguf_str name;
        ds_status s = rd_str(r, &name, "tensor name");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "tensor record %llu", (unsigned long long)i);
            return s;
        }
        if (name.len == 0 || name.len > GGUF_MAX_NAME_LEN ||
            !name_ok((const uint8_t *)name.ptr, name.len))
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "tensor record %llu at offset %zu: name is empty, longer than %d bytes, "
                              "or not valid UTF-8 text",
                              (unsigned long long)i, at, GGUF_MAX_NAME_LEN);
        t->name = dup_name(&name);
        if (!t->name)
            return ds_err_set(r->err, DS_ERR_NO_MEMORY, "cannot allocate a tensor name");
        s = rd_u32(r, &t->n_dims, "tensor dimension count");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "tensor '%s'", t->name);
            return s;
        }
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "tensor '%s' at offset %zu: %u dimensions (must be 1 to %d)", t->name,
                              at, t->n_dims, GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            s = rd_u64(r, &t->ne[d], "tensor dimension");
            if (s != DS_OK) {
                ds_err_prefix(r->err, "tensor '%s'", t->name);
                return s;
            }
            if (t->ne[d] == 0 || t->ne[d] >= (1ull << 62))
                return ds_err_set(r->err, DS_ERR_FORMAT,
                                  "tensor '%s' at offset %zu: dimension %u is %llu (must be 1 to 2^62-1)",
                                  t->name, at, d, (unsigned long long)t->ne[d]);
        }
        s = rd_u32(r, &t->type, "tensor type");
        if (s == DS_OK)
            s = rd_u64(r, &t->offset, "tensor data offset");
        if (s != DS_OK) {
            ds_err_prefix(r->err, "tensor '%s'", t->name);
            return s;
        }
        const ds_ggml_type_traits *tt = ds_ggml_type_get(t->type);
        if (tt->block_elems == 0)
            return ds_err_set(r->err, DS_ERR_UNSUPPORTED,
                              "tensor '%s' at offset %zu: unknown or removed ggml type id %u",
                              t->name, at, t->type);
        if (t->ne[0] % tt->block_elems != 0)
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "tensor '%s' at offset %zu: row length %llu is not a multiple of the "
                              "%s block size %u",
                              t->name, at, (unsigned long long)t->ne[0], tt->name, tt->block_elems);
        /* n_elems and nbytes with overflow checks */
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            if (__builtin_mul_overflow(n, t->ne[d], &n))
                return ds_err_set(r->err, DS_ERR_FORMAT,
                                  "tensor '%s' at offset %zu: element count overflows 64 bits",
                                  t->name, at);
        }
        t->n_elems = n;
        uint64_t row_bytes;
        if (__builtin_mul_overflow(t->ne[0] / tt->block_elems, (uint64_t)tt->block_bytes, &row_bytes))
            return ds_err_set(r->err, DS_ERR_FORMAT,
                              "tensor '%s' at offset %zu: byte size overflows 64 bits", t->name, at);
        uint64_t nbytes = row_bytes;
        for (int d = 1; d < GGUF_MAX_DIMS; d++) {
            if (__builtin_mul_overflow(nbytes, t->ne[d], &nbytes))
                return ds_err_set(r->err, DS_ERR_FORMAT,
                                  "tensor '%s' at offset %zu: byte size overflows 64 bits", t->name,
                                  at);
        }
        t->row_bytes = row_bytes;
        t->nbytes = nbytes;
    }
    return DS_OK;
}

ds_status gguf_parse(gguf_file *out, const uint8_t *buf, size_t size, ds_err *err)
{
    memset(out, 0, sizeof *out);
    if (!buf && size)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "gguf_parse: NULL buffer");
    rd r = {buf, size, 0, err};
    gguf_file f;
    memset(&f, 0, sizeof f);
    f.buf = buf;
    f.size = size;
    f.alignment = 32;

    uint32_t magic;
    ds_status s = rd_u32(&r, &magic, "header magic");
    if (s != DS_OK)
        return s;
    if (magic != GGUF_MAGIC)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "not a GGUF file: magic at offset 0 is %02x %02x %02x %02x, expected 'GGUF'",
                          buf[0], buf[1], buf[2], buf[3]);
    s = rd_u32(&r, &f.version, "header version");
    if (s != DS_OK)
        return s;
    if (f.version == 0x03000000u || f.version == 0x02000000u)
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "big-endian GGUF files are not supported (version field at offset 4 reads "
                          "0x%08x)", f.version);
    if (f.version == 1)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "GGUF version 1 is no longer supported");
    if (f.version != 2 && f.version != 3)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "unsupported GGUF version %u at offset 4",
                          f.version);
    s = rd_u64(&r, &f.n_tensors, "header tensor count");
    if (s == DS_OK)
        s = rd_u64(&r, &f.n_kv, "header metadata count");
    if (s != DS_OK)
        return s;
    /* each KV needs at least 13 bytes (8 + 4 + 1), each tensor record at least 32 (8 + 1 name
     * byte + 4 + 8 + 4 + 8 with one dimension); counts that cannot fit are hostile */
    if (f.n_kv > remaining(&r) / 13)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "header at offset 16: metadata count %llu cannot fit in a %zu-byte file",
                          (unsigned long long)f.n_kv, size);
    if (f.n_tensors > (remaining(&r) - f.n_kv * 13) / 33)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "header at offset 8: tensor count %llu cannot fit in a %zu-byte file",
                          (unsigned long long)f.n_tensors, size);

    if (f.n_kv) {
        f.kv = calloc((size_t)f.n_kv, sizeof *f.kv);
        if (!f.kv) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY, "cannot allocate %llu metadata pairs",
                           (unsigned long long)f.n_kv);
            goto fail;
        }
    }
    s = parse_kvs(&r, &f);
    if (s != DS_OK)
        goto fail;

    uint64_t da = 0, db = 0;
    s = index_build(&f.kv_index, &f.kv_index_cap, f.n_kv, kv_name, f.kv, &da, &db);
    if (s == DS_ERR_FORMAT) {
        s = ds_err_set(err, DS_ERR_FORMAT,
                       "duplicate metadata key '%s' (pairs %llu at offset %llu and %llu at offset %llu)",
                       f.kv[db].key, (unsigned long long)da, (unsigned long long)f.kv[da].file_offset,
                       (unsigned long long)db, (unsigned long long)f.kv[db].file_offset);
        goto fail;
    } else if (s != DS_OK) {
        s = ds_err_set(err, s, "cannot allocate the metadata index");
        goto fail;
    }

    const gguf_kv *al = gguf_find_kv(&f, "general.alignment");
    if (al) {
        if (al->value.type != GGUF_UINT32) {
            s = ds_err_set(err, DS_ERR_FORMAT,
                           "metadata key 'general.alignment' at offset %llu has type %s (must be UINT32)",
                           (unsigned long long)al->file_offset, gguf_vtype_name(al->value.type));
            goto fail;
        }
        uint64_t a = al->value.v.u64;
        if (a == 0 || (a & (a - 1)) != 0 || a > GGUF_MAX_ALIGNMENT) {
            s = ds_err_set(err, DS_ERR_FORMAT,
                           "metadata key 'general.alignment' at offset %llu is %llu (must be a power "
                           "of two up to %u)",
                           (unsigned long long)al->file_offset, (unsigned long long)a,
                           GGUF_MAX_ALIGNMENT);
            goto fail;
        }
        f.alignment = (uint32_t)a;
    }

    if (f.n_tensors) {
        f.tensors = calloc((size_t)f.n_tensors, sizeof *f.tensors);
        if (!f.tensors) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY, "cannot allocate %llu tensor records",
                           (unsigned long long)f.n_tensors);
            goto fail;
        }
    }
    s = parse_tensor_infos(&r, &f);
    if (s != DS_OK)
        goto fail;
    s = index_build(&f.t_index, &f.t_index_cap, f.n_tensors, t_name, f.tensors, &da, &db);
    if (s == DS_ERR_FORMAT) {
        s = ds_err_set(err, DS_ERR_FORMAT, "duplicate tensor name '%s' (records %llu and %llu)",
                       f.tensors[db].name, (unsigned long long)da, (unsigned long long)db);
        goto fail;
    } else if (s != DS_OK) {
        s = ds_err_set(err, s, "cannot allocate the tensor index");
        goto fail;
    }

    /* data section */
    uint64_t end_infos = r.pos;
    uint64_t data_start = (end_infos + f.alignment - 1) & ~(uint64_t)(f.alignment - 1);
    f.data_start = data_start;
    if (f.n_tensors) {
        if (data_start > size) {
            s = ds_err_set(err, DS_ERR_FORMAT,
                           "truncated file: the tensor data section starts at offset %llu but the "
                           "file has %zu bytes",
                           (unsigned long long)data_start, size);
            goto fail;
        }
        uint64_t data_size = size - data_start;
        for (uint64_t i = 0; i < f.n_tensors; i++) {
            gguf_tensor *t = &f.tensors[i];
            if (t->offset % f.alignment != 0) {
                s = ds_err_set(err, DS_ERR_FORMAT,
                               "tensor '%s': data offset %llu is not a multiple of the alignment %u",
                               t->name, (unsigned long long)t->offset, f.alignment);
                goto fail;
            }
            if (t->offset > data_size || t->nbytes > data_size - t->offset) {
                s = ds_err_set(err, DS_ERR_FORMAT,
                               "tensor '%s': data [%llu, +%llu) at file offset %llu runs past the end "
                               "of the file (%zu bytes): truncated or corrupted",
                               t->name, (unsigned long long)t->offset,
                               (unsigned long long)t->nbytes,
                               (unsigned long long)(data_start + (t->offset <= data_size ? t->offset : 0)),
                               size);
                goto fail;
            }
            t->data = buf + data_start + t->offset;
        }
        /* overlap check on tensors sorted by offset */
        gguf_tensor **order = malloc((size_t)f.n_tensors * sizeof *order);
        if (!order) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY, "cannot allocate the tensor order");
            goto fail;
        }
        for (uint64_t i = 0; i < f.n_tensors; i++)
            order[i] = &f.tensors[i];
        qsort(order, (size_t)f.n_tensors, sizeof *order, cmp_offset);
        for (uint64_t i = 1; i < f.n_tensors; i++) {
            const gguf_tensor *a = order[i - 1], *b = order[i];
            if (a->offset + a->nbytes > b->offset) {
                s = ds_err_set(err, DS_ERR_FORMAT,
                               "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in the data "
                               "section",
                               a->name, (unsigned long long)a->offset,
                               (unsigned long long)(a->offset + a->nbytes), b->name,
                               (unsigned long long)b->offset,
                               (unsigned long long)(b->offset + b->nbytes));
                free(order);
                goto fail;
            }
        }
        free(order);
    }
    *out = f;
    return DS_OK;
fail:
    gguf_free(&f);
    return s;
}

/* ---- typed getters ---------------------------------------------------------------------- */

static bool value_as_i64(const gguf_value *v, int64_t *out, bool *neg_or_big)
{
    *neg_or_big = false;
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64: case GGUF_BOOL:
        if (v->v.u64 > (uint64_t)INT64_MAX) {
            *neg_or_big = true;
            return false;
        }
        *out = (int64_t)v->v.u64;
        return true;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        *out = v->v.i64;
        return true;
    default:
        return false;
    }
}

static ds_status get_kv(const gguf_file *f, const char *key, const gguf_kv **kv)
{
    *kv = gguf_find_kv(f, key);
    return *kv ? DS_OK : DS_ERR_NOT_FOUND;
}

ds_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    bool big;
    if (!value_as_i64(&kv->value, out, &big))
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not an integer in range",
                          key, gguf_vtype_name(kv->value.type));
    return DS_OK;
}

ds_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    switch (kv->value.type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        *out = kv->value.v.u64;
        return DS_OK;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        if (kv->value.v.i64 >= 0) {
            *out = (uint64_t)kv->value.v.i64;
            return DS_OK;
        }
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': negative value %lld", key,
                          (long long)kv->value.v.i64);
    default:
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not an integer", key,
                          gguf_vtype_name(kv->value.type));
    }
}

ds_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ds_err *err)
{
    uint64_t v = 0;
    ds_status s = gguf_get_u64(f, key, &v, err);
    if (s != DS_OK)
        return s;
    if (v > UINT32_MAX)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': value %llu does not fit 32 bits",
                          key, (unsigned long long)v);
    *out = (uint32_t)v;
    return DS_OK;
}

ds_status gguf_get_f32(const gguf_file *f, const char *key, float *out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    if (kv->value.type == GGUF_FLOAT32 || kv->value.type == GGUF_FLOAT64) {
        *out = (float)kv->value.v.f64;
        return DS_OK;
    }
    int64_t i;
    bool big;
    if (kv->value.type != GGUF_BOOL && value_as_i64(&kv->value, &i, &big)) {
        *out = (float)i;
        return DS_OK;
    }
    return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not a number", key,
                      gguf_vtype_name(kv->value.type));
}

ds_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    if (kv->value.type != GGUF_BOOL)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not a BOOL", key,
                          gguf_vtype_name(kv->value.type));
    *out = kv->value.v.u64 != 0;
    return DS_OK;
}

ds_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    if (kv->value.type != GGUF_STRING)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not a STRING", key,
                          gguf_vtype_name(kv->value.type));
    *out = kv->value.v.str;
    return DS_OK;
}

ds_status gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                       const gguf_array **out, ds_err *err)
{
    const gguf_kv *kv;
    if (get_kv(f, key, &kv) != DS_OK)
        return DS_ERR_NOT_FOUND;
    if (kv->value.type != GGUF_ARRAY)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': %s value is not an ARRAY", key,
                          gguf_vtype_name(kv->value.type));
    if (elem_type != GGUF_VTYPE_COUNT && kv->value.v.arr.elem_type != elem_type)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "metadata key '%s': array elements are %s, expected %s", key,
                          gguf_vtype_name(kv->value.v.arr.elem_type), gguf_vtype_name(elem_type));
    *out = &kv->value.v.arr;
    return DS_OK;
}

uint64_t gguf_arr_u64(const gguf_array *a, uint64_t i)
{
    gguf_value v;
    memset(&v, 0, sizeof v);
    scalar_decode(a->elem_type, a->data + i * gguf_vtype_size(a->elem_type), &v);
    return v.v.u64;
}

int64_t gguf_arr_i64(const gguf_array *a, uint64_t i)
{
    gguf_value v;
    memset(&v, 0, sizeof v);
    scalar_decode(a->elem_type, a->data + i * gguf_vtype_size(a->elem_type), &v);
    switch (a->elem_type) {
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: return v.v.i64;
    default: return (int64_t)v.v.u64;
    }
}

double gguf_arr_f64(const gguf_array *a, uint64_t i)
{
    gguf_value v;
    memset(&v, 0, sizeof v);
    scalar_decode(a->elem_type, a->data + i * gguf_vtype_size(a->elem_type), &v);
    switch (a->elem_type) {
    case GGUF_FLOAT32: case GGUF_FLOAT64: return v.v.f64;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: return (double)v.v.i64;
    default: return (double)v.v.u64;
    }
}
