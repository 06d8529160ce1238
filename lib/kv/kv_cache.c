/*
 * lib/kv/kv_cache.c — the latent KV cache (see kv_cache.h).
 *
 * Layout: one allocation, layer-major: layer l, row s starts at element (l*n_ctx + s) * w,
 * w = d_c + d_r, each row [c_kv ; k_pe].
 */
#include "kv/kv_cache.h"

#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* The cache's memory: a cache of 2 MiB or more in transparent huge pages where the system
 * has them (Linux, MADV_HUGEPAGE). At decode every token reads the whole cache of every layer
 * after the weights have streamed through all the caches and TLBs. */
#define KV_HUGE (2u << 20)
static void *kv_alloc(size_t n)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= KV_HUGE && n <= SIZE_MAX - KV_HUGE) {
        const size_t len = (n + KV_HUGE - 1) & ~(size_t)(KV_HUGE - 1);
        void *p = aligned_alloc(KV_HUGE, len);
        if (p)
            (void)madvise(p, len, MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(n);
}

struct ds_kv_cache {
    uint32_t n_layer, n_ctx, d_c, d_r, w;
    ds_kv_type type;
    size_t esize;
    uint32_t pos;
    size_t nbytes;
    void *data;
};

size_t ds_kv_type_size(ds_kv_type type)
{
    switch (type) {
    case DS_KV_F32: return 4;
    case DS_KV_F16: return 2;
    case DS_KV_BF16: return 2;
    }
    return 0;
}

const char *ds_kv_type_name(ds_kv_type type)
{
    switch (type) {
    case DS_KV_F32: return "f32";
    case DS_KV_F16: return "f16";
    case DS_KV_BF16: return "bf16";
    }
    return "unknown";
}

static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

ds_status ds_kv_create(ds_kv_cache **out, uint32_t n_layer, uint32_t n_ctx, uint32_t d_c,
                       uint32_t d_r, ds_kv_type type, ds_err *err)
{
    if (!out)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: out is NULL");
    *out = NULL;
    size_t es = ds_kv_type_size(type);
    if (es == 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: unknown element type %d", (int)type);
    if (n_layer == 0 || n_ctx == 0 || d_c == 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "kv cache: zero size (n_layer %u, n_ctx %u, d_c %u)", n_layer, n_ctx, d_c);
    if ((uint64_t)d_c + d_r > UINT32_MAX)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: row width overflows");
    uint32_t w = d_c + d_r;
    size_t n = 0;
    if (!mul_ok(n_layer, n_ctx, &n) || !mul_ok(n, w, &n) || !mul_ok(n, es, &n))
        return ds_err_set(err, DS_ERR_NO_MEMORY,
                          "kv cache: %u layers x %u tokens x %u elements x %zu bytes overflows",
                          n_layer, n_ctx, w, es);
    ds_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "kv cache: out of memory");
    kv->data = kv_alloc(n);
    if (!kv->data) {
        free(kv);
        return ds_err_set(err, DS_ERR_NO_MEMORY, "kv cache: cannot allocate %zu bytes", n);
    }
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->d_c = d_c;
    kv->d_r = d_r;
    kv->w = w;
    kv->type = type;
    kv->esize = es;
    kv->pos = 0;
    kv->nbytes = n;
    *out = kv;
    return DS_OK;
}

void ds_kv_free(ds_kv_cache *kv)
{
    if (!kv)
        return;
    free(kv->data);
    free(kv);
}

uint32_t ds_kv_pos(const ds_kv_cache *kv) { return kv->pos; }
uint32_t ds_kv_n_ctx(const ds_kv_cache *kv) { return kv->n_ctx; }
uint32_t ds_kv_n_layer(const ds_kv_cache *kv) { return kv->n_layer; }
uint32_t ds_kv_row_width(const ds_kv_cache *kv) { return kv->w; }
ds_kv_type ds_kv_get_type(const ds_kv_cache *kv) { return kv->type; }

uint64_t ds_kv_bytes_per_token(const ds_kv_cache *kv)
{
    return (uint64_t)kv->n_layer * kv->w * kv->esize;
}

uint64_t ds_kv_bytes(const ds_kv_cache *kv)
{
    return (uint64_t)kv->nbytes + sizeof *kv;
}

uint64_t ds_kv_bytes_for(uint32_t n_layer, uint32_t n_ctx, uint32_t d_c, uint32_t d_r,
                         ds_kv_type type)
{
    size_t es = ds_kv_type_size(type), n = 0;
    if (es == 0)
        return 0;
    if (!mul_ok(n_layer, n_ctx, &n) || !mul_ok(n, (size_t)d_c + d_r, &n) || !mul_ok(n, es, &n))
        return 0;
    return (uint64_t)n + sizeof(ds_kv_cache);
}

ds_status ds_kv_check_room(const ds_kv_cache *kv, uint32_t n, ds_err *err)
{
    if ((uint64_t)kv->pos + n > kv->n_ctx)
        return ds_err_set(err, DS_ERR_CONTEXT_FULL,
                          "context full: %u tokens cached + %u new > n_ctx %u", kv->pos, n,
                          kv->n_ctx);
    return DS_OK;
}

static inline size_t row_index(const ds_kv_cache *kv, uint32_t layer, uint32_t s)
{
    return ((size_t)layer * kv->n_ctx + s) * kv->w;
}

static void put_row(const ds_kv_cache *kv, void *dst, const float *src, uint32_t n)
{
    switch (kv->type) {
    case DS_KV_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case DS_KV_F16: {
        uint16_t *d = dst;
        for (uint32_t i = 0; i < n; i++)
            d[i] = ds_f32_to_f16(src[i]);
        break;
    }
    case DS_KV_BF16: {
        uint16_t *d = dst;
        for (uint32_t i = 0; i < n; i++)
            d[i] = ds_f32_to_bf16(src[i]);
        break;
    }
    }
}

ds_status ds_kv_write(ds_kv_cache *kv, uint32_t layer, uint32_t p0, uint32_t n,
                      const float *c_kv, size_t ld_c, const float *k_pe, size_t ld_r,
                      ds_err *err)
{
    if (layer >= kv->n_layer)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: layer %u out of range (%u layers)",
                          layer, kv->n_layer);
    if ((uint64_t)p0 + n > kv->n_ctx)
        return ds_err_set(err, DS_ERR_CONTEXT_FULL,
                          "context full: writing tokens %u..%u of layer %u passes n_ctx %u", p0,
                          (unsigned)((uint64_t)p0 + n - 1), layer, kv->n_ctx);
    uint8_t *base = kv->data;
    for (uint32_t j = 0; j < n; j++) {
        uint8_t *row = base + row_index(kv, layer, p0 + j) * kv->esize;
        put_row(kv, row, c_kv + j * ld_c, kv->d_c);
        if (kv->d_r)
            put_row(kv, row + (size_t)kv->d_c * kv->esize, k_pe + j * ld_r, kv->d_r);
    }
    return DS_OK;
}

ds_status ds_kv_commit(ds_kv_cache *kv, uint32_t new_pos, ds_err *err)
{
    if (new_pos > kv->n_ctx)
        return ds_err_set(err, DS_ERR_CONTEXT_FULL, "context full: commit to %u > n_ctx %u",
                          new_pos, kv->n_ctx);
    kv->pos = new_pos;
    return DS_OK;
}

ds_status ds_kv_truncate(ds_kv_cache *kv, uint32_t new_pos, ds_err *err)
{
    if (new_pos > kv->pos)
        return ds_err_set(err, DS_ERR_INVALID_ARG,
                          "kv cache: cannot truncate to %u, only %u tokens cached", new_pos,
                          kv->pos);
    kv->pos = new_pos;
    return DS_OK;
}

bool ds_kv_read_f32(const ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t s1, float *dst)
{
    if (layer >= kv->n_layer || s0 > s1 || s1 > kv->n_ctx)
        return false;
    size_t n = (size_t)(s1 - s0) * kv->w;
    size_t off = row_index(kv, layer, s0);
    switch (kv->type) {
    case DS_KV_F32:
        memcpy(dst, (const float *)kv->data + off, n * sizeof(float));
        break;
    case DS_KV_F16: {
        const uint16_t *s = (const uint16_t *)kv->data + off;
        for (size_t i = 0; i < n; i++)
            dst[i] = ds_f16_to_f32(s[i]);
        break;
    }
    case DS_KV_BF16: {
        const uint16_t *s = (const uint16_t *)kv->data + off;
        for (size_t i = 0; i < n; i++)
            dst[i] = ds_bf16_to_f32(s[i]);
        break;
    }
    }
    return true;
}

const float *ds_kv_rows_f32(const ds_kv_cache *kv, uint32_t layer, uint32_t s)
{
    if (kv->type != DS_KV_F32 || layer >= kv->n_layer || s >= kv->n_ctx)
        return NULL;
    return (const float *)kv->data + row_index(kv, layer, s);
}

const void *ds_kv_raw_rows(const ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t n)
{
    if (layer >= kv->n_layer || (uint64_t)s0 + n > kv->n_ctx)
        return NULL;
    return (const uint8_t *)kv->data + row_index(kv, layer, s0) * kv->esize;
}

ds_status ds_kv_write_raw(ds_kv_cache *kv, uint32_t layer, uint32_t s0, uint32_t n,
                          const void *src, ds_kv_type src_type, ds_err *err)
{
    size_t ses = ds_kv_type_size(src_type);
    if (ses == 0)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: unknown element type %d",
                          (int)src_type);
    if (layer >= kv->n_layer)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "kv cache: layer %u out of range (%u layers)",
                          layer, kv->n_layer);
    if ((uint64_t)s0 + n > kv->n_ctx)
        return ds_err_set(err, DS_ERR_CONTEXT_FULL,
                          "context full: writing %u rows at %u of layer %u passes n_ctx %u", n,
                          s0, layer, kv->n_ctx);
    uint8_t *dst = (uint8_t *)kv->data + row_index(kv, layer, s0) * kv->esize;
    const size_t n_el = (size_t)n * kv->w;
    if (src_type == kv->type) {
        memcpy(dst, src, n_el * kv->esize);
        return DS_OK;
    }
    /* convert element by element through f32 (put_row works on whole spans) */
    float buf[256];
    for (size_t i = 0; i < n_el; i += 256) {
        uint32_t m = (uint32_t)(n_el - i < 256 ? n_el - i : 256);
        for (uint32_t j = 0; j < m; j++) {
            size_t k = i + j;
            switch (src_type) {
            case DS_KV_F32: buf[j] = ((const float *)src)[k]; break;
            case DS_KV_F16: buf[j] = ds_f16_to_f32(((const uint16_t *)src)[k]); break;
            case DS_KV_BF16: buf[j] = ds_bf16_to_f32(((const uint16_t *)src)[k]); break;
            }
        }
        put_row(kv, dst + i * kv->esize, buf, m);
    }
    return DS_OK;
}
