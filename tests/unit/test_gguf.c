/*
 * tests/unit/test_gguf.c — the GGUF parser and the deepseek2 binding, white box and through
 * the public API.
 *
 *  - valid files: every metadata value type (nested and string arrays included) read back
 *    through the gguf getters and through ds_model_meta_*; both deepseek2 attention forms
 *    (combined attn_kv_b, split attn_k_b/attn_v_b), with and without q-LoRA, dense-only,
 *    V3-style routing; ds_model_info_get and ds_model_tensor_info against the builder;
 *  - a table of malformed files, each with its expected status and message substrings, run
 *    through gguf_parse (+ ds_model_data_load) and through ds_model_open from a temp file
 *    (status, ds_last_error(), no handle, no heap growth);
 *  - a truncation sweep: every prefix of a small valid model fails with DS_ERR_FORMAT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gguf_builder.h"

#include "deepseek/deepseek.h"
#include "format/gguf.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define DS_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DS_TEST_ASAN 1
#endif
#endif

static char g_tmpdir[256];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/ds-test-gguf-XXXXXX");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_tmpdir, name);
}

/* Live heap allocations of the whole process, counted by interposing the allocator (glibc).
 * Under ASAN the sanitizer owns malloc and LeakSanitizer does this job instead. */
#if !defined(DS_TEST_ASAN) && defined(__GLIBC__)
#define DS_TEST_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static long g_live;

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);
void *aligned_alloc(size_t al, size_t n);
int posix_memalign(void **out, size_t al, size_t n);
void *memalign(size_t al, size_t n);

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (p)
        __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
    return p;
}
void *calloc(size_t a, size_t b)
{
    void *p = __libc_calloc(a, b);
    if (p)
        __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
    return p;
}
void *realloc(void *p, size_t n)
{
    void *q = __libc_realloc(p, n);
    if (!p && q)
        __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
    else if (p && !q && n == 0)
        __atomic_sub_fetch(&g_live, 1, __ATOMIC_RELAXED);
    return q;
}
void free(void *p)
{
    if (p)
        __atomic_sub_fetch(&g_live, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}
void *aligned_alloc(size_t al, size_t n)
{
    void *p = __libc_memalign(al, n);
    if (p)
        __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
    return p;
}
void *memalign(size_t al, size_t n)
{
    return aligned_alloc(al, n);
}
int posix_memalign(void **out, size_t al, size_t n)
{
    void *p = __libc_memalign(al, n);
    if (!p)
        return 12; /* ENOMEM */
    __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
    *out = p;
    return 0;
}
#endif

static long heap_in_use(void)
{
#ifdef DS_TEST_COUNT_ALLOCS
    return __atomic_load_n(&g_live, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

#define assert_contains(hay, needle)                                                         \
    do {                                                                                     \
        const char *h_ = (hay), *n_ = (needle);                                              \
        if (!h_ || !strstr(h_, n_)) {                                                        \
            print_error("message \"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_); \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

/* An exact-size heap copy, so that a read past the end is caught by ASAN. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

static void assert_gguf_empty(const gguf_file *f)
{
    assert_null(f->kv);
    assert_null(f->tensors);
    assert_null(f->kv_index);
    assert_null(f->t_index);
    assert_int_equal(f->n_kv, 0);
    assert_int_equal(f->n_tensors, 0);
}

/* ---- valid file: every metadata value type ------------------------------------------------ */

#define DEEP_LEVELS GGUF_MAX_ARRAY_DEPTH

static void add_all_types(gguf_builder *b)
{
    gb_kv_u8(b, "test.u8", 200);
    gb_kv_i8(b, "test.i8", -100);
    gb_kv_u16(b, "test.u16", 60000);
    gb_kv_i16(b, "test.i16", -30000);
    gb_kv_u32(b, "test.u32", 4000000000u);
    gb_kv_i32(b, "test.i32", -2000000000);
    gb_kv_f32(b, "test.f32", 1.5f);
    gb_kv_bool(b, "test.bool.t", 1);
    gb_kv_bool(b, "test.bool.f", 0);
    gb_kv_str(b, "test.str", "hello \xE2\x9C\x93");
    gb_kv_str(b, "test.str.empty", "");
    gb_kv_strn(b, "test.str.nul", "a\0b", 3);
    gb_kv_u64(b, "test.u64", UINT64_MAX);
    gb_kv_i64(b, "test.i64", INT64_MIN);
    gb_kv_f64(b, "test.f64", 0.1);
    static const uint8_t au8[] = {1, 2, 255};
    gb_kv_arr(b, "test.arr.u8", GB_UINT8, 3, au8, 3);
    static const uint8_t ai8[] = {0x80, 0x7F};
    gb_kv_arr(b, "test.arr.i8", GB_INT8, 2, ai8, 2);
    static const uint8_t au16[] = {0xFF, 0xFF, 0x01, 0x00};
    gb_kv_arr(b, "test.arr.u16", GB_UINT16, 2, au16, 4);
    static const uint8_t ai16[] = {0xFF, 0xFF, 0x02, 0x00, 0x00, 0x80};
    gb_kv_arr(b, "test.arr.i16", GB_INT16, 3, ai16, 6);
    static const uint8_t au32[] = {0xFF, 0xFF, 0xFF, 0xFF};
    gb_kv_arr(b, "test.arr.u32", GB_UINT32, 1, au32, 4);
    static const int32_t ai32[] = {-7, 0, 2147483647};
    gb_kv_arr_i32(b, "test.arr.i32", ai32, 3);
    static const float af32[] = {0.5f, -2.25f};
    gb_kv_arr_f32(b, "test.arr.f32", af32, 2);
    static const uint8_t abool[] = {1, 0, 1};
    gb_kv_arr(b, "test.arr.bool", GB_BOOL, 3, abool, 3);
    {
        gb_blob v;
        gb_blob_init(&v);
        gb_put_arr_hdr(&v, GB_UINT64, 2);
        gb_put_u64(&v, 0);
        gb_put_u64(&v, 9223372036854775813ull);
        gb_kv_value(b, "test.arr.u64", GB_ARRAY, &v);
        gb_blob_free(&v);
        gb_blob_init(&v);
        gb_put_arr_hdr(&v, GB_INT64, 1);
        gb_put_u64(&v, (uint64_t)-5);
        gb_kv_value(b, "test.arr.i64", GB_ARRAY, &v);
        gb_blob_free(&v);
        gb_blob_init(&v);
        gb_put_arr_hdr(&v, GB_FLOAT64, 1);
        gb_put_f64(&v, 1e100);
        gb_kv_value(b, "test.arr.f64", GB_ARRAY, &v);
        gb_blob_free(&v);
    }
    static const char *const strs[] = {"a", "", "q\"b\\", "tab\tnl\n", "\xC3\xBC"};
    gb_kv_arr_str(b, "test.arr.str", strs, 5);
    gb_kv_arr_i32(b, "test.arr.empty", NULL, 0);
    {
        /* [[1,2],[3],[]] */
        gb_blob v;
        gb_blob_init(&v);
        gb_put_arr_hdr(&v, GB_ARRAY, 3);
        gb_put_arr_hdr(&v, GB_INT32, 2);
        gb_put_u32(&v, 1);
        gb_put_u32(&v, 2);
        gb_put_arr_hdr(&v, GB_INT32, 1);
        gb_put_u32(&v, 3);
        gb_put_arr_hdr(&v, GB_INT32, 0);
        gb_kv_value(b, "test.arr.nested", GB_ARRAY, &v);
        gb_blob_free(&v);
        /* [["x","y"],["z"]] */
        gb_blob_init(&v);
        gb_put_arr_hdr(&v, GB_ARRAY, 2);
        gb_put_arr_hdr(&v, GB_STRING, 2);
        gb_put_str(&v, "x");
        gb_put_str(&v, "y");
        gb_put_arr_hdr(&v, GB_STRING, 1);
        gb_put_str(&v, "z");
        gb_kv_value(b, "test.arr.nested.str", GB_ARRAY, &v);
        gb_blob_free(&v);
        /* DEEP_LEVELS levels of arrays around one UINT8 7: the deepest the parser accepts */
        gb_blob_init(&v);
        for (int i = 0; i < DEEP_LEVELS - 1; i++)
            gb_put_arr_hdr(&v, GB_ARRAY, 1);
        gb_put_arr_hdr(&v, GB_UINT8, 1);
        gb_put_u8(&v, 7);
        gb_kv_value(b, "test.arr.deep", GB_ARRAY, &v);
        gb_blob_free(&v);
    }
    gb_kv_u32(b, "test.\xC3\xBCnicode.\xE2\x82\xAC", 5);
}

static void check_getters(const gguf_file *f)
{
    ds_err e;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool bl = false;
    gguf_str s;

    assert_int_equal(gguf_get_u32(f, "test.u8", &u32, &e), DS_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(gguf_get_u32(f, "test.u16", &u32, &e), DS_OK);
    assert_int_equal(u32, 60000);
    assert_int_equal(gguf_get_u32(f, "test.u32", &u32, &e), DS_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "test.i8", &i64, &e), DS_OK);
    assert_int_equal(i64, -100);
    assert_int_equal(gguf_get_i64(f, "test.i16", &i64, &e), DS_OK);
    assert_int_equal(i64, -30000);
    assert_int_equal(gguf_get_i64(f, "test.i32", &i64, &e), DS_OK);
    assert_int_equal(i64, -2000000000);
    assert_int_equal(gguf_get_i64(f, "test.i64", &i64, &e), DS_OK);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(gguf_get_u64(f, "test.u64", &u64, &e), DS_OK);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(gguf_get_u64(f, "test.i32", &u64, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.i32");
    /* conversions out of range name the key */
    assert_int_equal(gguf_get_u32(f, "test.i8", &u32, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.i8");
    assert_int_equal(gguf_get_u32(f, "test.u64", &u32, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.u64");
    assert_int_equal(gguf_get_i64(f, "test.u64", &i64, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.u64");
    assert_int_equal(gguf_get_u32(f, "test.str", &u32, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.str");
    /* floats */
    assert_int_equal(gguf_get_f32(f, "test.f32", &f32, &e), DS_OK);
    assert_true(f32 == 1.5f);
    assert_int_equal(gguf_get_f32(f, "test.f64", &f32, &e), DS_OK);
    assert_true(f32 == 0.1f);
    assert_int_equal(gguf_get_f32(f, "test.i16", &f32, &e), DS_OK);
    assert_true(f32 == -30000.0f);
    assert_int_equal(gguf_get_f32(f, "test.str", &f32, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.str");
    /* bool */
    assert_int_equal(gguf_get_bool(f, "test.bool.t", &bl, &e), DS_OK);
    assert_true(bl);
    assert_int_equal(gguf_get_bool(f, "test.bool.f", &bl, &e), DS_OK);
    assert_false(bl);
    assert_int_equal(gguf_get_bool(f, "test.u8", &bl, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.u8");
    /* strings are views with explicit length, embedded NUL kept */
    assert_int_equal(gguf_get_str(f, "test.str", &s, &e), DS_OK);
    assert_int_equal(s.len, 9);
    assert_memory_equal(s.ptr, "hello \xE2\x9C\x93", 9);
    assert_int_equal(gguf_get_str(f, "test.str.empty", &s, &e), DS_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(gguf_get_str(f, "test.str.nul", &s, &e), DS_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "a\0b", 3);
    assert_int_equal(gguf_get_str(f, "test.u8", &s, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.u8");
    /* absent keys */
    assert_int_equal(gguf_get_u32(f, "test.absent", &u32, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_u64(f, "test.absent", &u64, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_i64(f, "test.absent", &i64, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_f32(f, "test.absent", &f32, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_bool(f, "test.absent", &bl, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_str(f, "test.absent", &s, &e), DS_ERR_NOT_FOUND);
    assert_null(gguf_find_kv(f, "test"));
    assert_null(gguf_find_kv(f, "test.u8 "));
    assert_non_null(gguf_find_kv(f, "test.\xC3\xBCnicode.\xE2\x82\xAC"));

    /* arrays */
    const gguf_array *a = NULL;
    assert_int_equal(gguf_get_arr(f, "test.arr.u8", GGUF_UINT8, &a, &e), DS_OK);
    assert_int_equal(a->count, 3);
    assert_int_equal(gguf_arr_u64(a, 0), 1);
    assert_int_equal(gguf_arr_u64(a, 2), 255);
    assert_int_equal(gguf_get_arr(f, "test.arr.u8", GGUF_INT8, &a, &e), DS_ERR_FORMAT);
    assert_contains(e.msg, "test.arr.u8");
    assert_int_equal(gguf_get_arr(f, "test.u8", GGUF_VTYPE_COUNT, &a, &e), DS_ERR_FORMAT);
    assert_int_equal(gguf_get_arr(f, "test.arr.absent", GGUF_VTYPE_COUNT, &a, &e), DS_ERR_NOT_FOUND);
    assert_int_equal(gguf_get_arr(f, "test.arr.i8", GGUF_INT8, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_i64(a, 0), -128);
    assert_int_equal(gguf_arr_i64(a, 1), 127);
    assert_int_equal(gguf_get_arr(f, "test.arr.u16", GGUF_UINT16, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_u64(a, 0), 65535);
    assert_int_equal(gguf_arr_u64(a, 1), 1);
    assert_int_equal(gguf_get_arr(f, "test.arr.i16", GGUF_INT16, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_i64(a, 0), -1);
    assert_int_equal(gguf_arr_i64(a, 1), 2);
    assert_int_equal(gguf_arr_i64(a, 2), -32768);
    assert_true(gguf_arr_f64(a, 2) == -32768.0);
    assert_int_equal(gguf_get_arr(f, "test.arr.u32", GGUF_UINT32, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_u64(a, 0), 4294967295u);
    assert_int_equal(gguf_arr_i64(a, 0), 4294967295);
    assert_int_equal(gguf_get_arr(f, "test.arr.i32", GGUF_INT32, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_i64(a, 0), -7);
    assert_int_equal(gguf_arr_i64(a, 2), 2147483647);
    assert_int_equal(gguf_get_arr(f, "test.arr.f32", GGUF_FLOAT32, &a, &e), DS_OK);
    assert_true(gguf_arr_f64(a, 0) == 0.5);
    assert_true(gguf_arr_f64(a, 1) == -2.25);
    assert_int_equal(gguf_get_arr(f, "test.arr.bool", GGUF_BOOL, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_u64(a, 0), 1);
    assert_int_equal(gguf_arr_u64(a, 1), 0);
    assert_int_equal(gguf_get_arr(f, "test.arr.u64", GGUF_UINT64, &a, &e), DS_OK);
    assert_true(gguf_arr_u64(a, 1) == 9223372036854775813ull);
    assert_int_equal(gguf_get_arr(f, "test.arr.i64", GGUF_INT64, &a, &e), DS_OK);
    assert_int_equal(gguf_arr_i64(a, 0), -5);
    assert_int_equal(gguf_get_arr(f, "test.arr.f64", GGUF_FLOAT64, &a, &e), DS_OK);
    assert_true(gguf_arr_f64(a, 0) == 1e100);
    assert_int_equal(gguf_get_arr(f, "test.arr.str", GGUF_STRING, &a, &e), DS_OK);
    assert_int_equal(a->count, 5);
    assert_non_null(a->strs);
    assert_int_equal(a->strs[0].len, 1);
    assert_memory_equal(a->strs[0].ptr, "a", 1);
    assert_int_equal(a->strs[1].len, 0);
    assert_int_equal(a->strs[2].len, 4);
    assert_memory_equal(a->strs[2].ptr, "q\"b\\", 4);
    assert_int_equal(a->strs[4].len, 2);
    assert_int_equal(gguf_get_arr(f, "test.arr.empty", GGUF_INT32, &a, &e), DS_OK);
    assert_int_equal(a->count, 0);
    /* nested */
    assert_int_equal(gguf_get_arr(f, "test.arr.nested", GGUF_ARRAY, &a, &e), DS_OK);
    assert_int_equal(a->count, 3);
    assert_non_null(a->items);
    assert_int_equal(a->items[0].type, GGUF_ARRAY);
    assert_int_equal(a->items[0].v.arr.elem_type, GGUF_INT32);
    assert_int_equal(a->items[0].v.arr.count, 2);
    assert_int_equal(gguf_arr_i64(&a->items[0].v.arr, 1), 2);
    assert_int_equal(a->items[1].v.arr.count, 1);
    assert_int_equal(gguf_arr_i64(&a->items[1].v.arr, 0), 3);
    assert_int_equal(a->items[2].v.arr.count, 0);
    assert_int_equal(gguf_get_arr(f, "test.arr.nested.str", GGUF_ARRAY, &a, &e), DS_OK);
    assert_int_equal(a->items[0].v.arr.elem_type, GGUF_STRING);
    assert_int_equal(a->items[0].v.arr.strs[1].len, 1);
    assert_memory_equal(a->items[0].v.arr.strs[1].ptr, "y", 1);
    assert_memory_equal(a->items[1].v.arr.strs[0].ptr, "z", 1);
    assert_int_equal(gguf_get_arr(f, "test.arr.deep", GGUF_ARRAY, &a, &e), DS_OK);
    for (int i = 0; i < DEEP_LEVELS - 1; i++) {
        assert_int_equal(a->elem_type, GGUF_ARRAY);
        assert_int_equal(a->count, 1);
        a = &a->items[0].v.arr;
    }
    assert_int_equal(a->elem_type, GGUF_UINT8);
    assert_int_equal(gguf_arr_u64(a, 0), 7);
}

/* Render a metadata value through the public API into a malloc'd string. */
static char *meta_str(const ds_model *m, const char *key, size_t *len_out)
{
    size_t need = 0;
    ds_status s = ds_model_meta_string(m, key, NULL, 0, &need);
    assert_int_equal(s, DS_ERR_BUFFER_TOO_SMALL);
    assert_true(need >= 1);
    char *buf = malloc(need);
    assert_non_null(buf);
    size_t need2 = 0;
    assert_int_equal(ds_model_meta_string(m, key, buf, need, &need2), DS_OK);
    assert_int_equal(need2, need);
    assert_int_equal(buf[need - 1], '\0');
    if (len_out)
        *len_out = need - 1;
    return buf;
}

static void check_meta_string(const ds_model *m, const char *key, const char *want)
{
    char *s = meta_str(m, key, NULL);
    if (strcmp(s, want) != 0) {
        print_error("ds_model_meta_string('%s') = \"%s\", expected \"%s\"\n", key, s, want);
        free(s);
        fail();
    }
    free(s);
}

static cJSON *meta_json(const ds_model *m, const char *key)
{
    char *s = meta_str(m, key, NULL);
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        print_error("ds_model_meta_string('%s') = \"%s\" is not valid JSON\n", key, s);
        free(s);
        fail();
    }
    free(s);
    return j;
}

static void check_public_meta(const ds_model *m, const gguf_builder *b)
{
    /* count and order */
    assert_int_equal(ds_model_meta_count(m), gb_kv_count(b));
    assert_string_equal(ds_model_meta_key(m, 0), "general.architecture");
    assert_null(ds_model_meta_key(m, gb_kv_count(b)));
    long iu8 = gb_kv_find(b, "test.u8");
    assert_true(iu8 >= 0);
    assert_string_equal(ds_model_meta_key(m, (uint64_t)iu8), "test.u8");

    /* types */
    static const struct { const char *key; ds_meta_type t; } types[] = {
        {"test.u8", DS_META_UINT8}, {"test.i8", DS_META_INT8}, {"test.u16", DS_META_UINT16},
        {"test.i16", DS_META_INT16}, {"test.u32", DS_META_UINT32}, {"test.i32", DS_META_INT32},
        {"test.f32", DS_META_FLOAT32}, {"test.bool.t", DS_META_BOOL}, {"test.str", DS_META_STRING},
        {"test.arr.u8", DS_META_ARRAY}, {"test.u64", DS_META_UINT64}, {"test.i64", DS_META_INT64},
        {"test.f64", DS_META_FLOAT64}, {"test.arr.nested", DS_META_ARRAY},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ds_meta_type t = (ds_meta_type)99;
        assert_int_equal(ds_model_meta_type(m, types[i].key, &t), DS_OK);
        assert_int_equal(t, types[i].t);
    }
    ds_meta_type t;
    assert_int_equal(ds_model_meta_type(m, "test.absent", &t), DS_ERR_NOT_FOUND);
    assert_contains(ds_last_error(), "test.absent");

    /* ints */
    int64_t iv = 0;
    assert_int_equal(ds_model_meta_int(m, "test.u8", &iv), DS_OK);
    assert_int_equal(iv, 200);
    assert_int_equal(ds_model_meta_int(m, "test.i8", &iv), DS_OK);
    assert_int_equal(iv, -100);
    assert_int_equal(ds_model_meta_int(m, "test.u32", &iv), DS_OK);
    assert_int_equal(iv, 4000000000);
    assert_int_equal(ds_model_meta_int(m, "test.i64", &iv), DS_OK);
    assert_true(iv == INT64_MIN);
    assert_int_equal(ds_model_meta_int(m, "test.bool.t", &iv), DS_OK);
    assert_int_equal(iv, 1);
    iv = 12345;
    assert_int_equal(ds_model_meta_int(m, "test.u64", &iv), DS_ERR_INVALID_ARG); /* > INT64_MAX */
    assert_contains(ds_last_error(), "test.u64");
    assert_int_equal(ds_model_meta_int(m, "test.f32", &iv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_meta_int(m, "test.str", &iv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_meta_int(m, "test.arr.u8", &iv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_meta_int(m, "test.absent", &iv), DS_ERR_NOT_FOUND);

    /* floats */
    double dv = 0;
    assert_int_equal(ds_model_meta_float(m, "test.f32", &dv), DS_OK);
    assert_true(dv == 1.5);
    assert_int_equal(ds_model_meta_float(m, "test.f64", &dv), DS_OK);
    assert_true(dv == 0.1);
    assert_int_equal(ds_model_meta_float(m, "test.i32", &dv), DS_OK);
    assert_true(dv == -2000000000.0);
    assert_int_equal(ds_model_meta_float(m, "test.u64", &dv), DS_OK);
    assert_true(dv == 18446744073709551615.0);
    assert_int_equal(ds_model_meta_float(m, "test.bool.f", &dv), DS_OK);
    assert_true(dv == 0.0);
    assert_int_equal(ds_model_meta_float(m, "test.str", &dv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_meta_float(m, "test.arr.f32", &dv), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_meta_float(m, "test.absent", &dv), DS_ERR_NOT_FOUND);

    /* text rendering */
    check_meta_string(m, "test.u8", "200");
    check_meta_string(m, "test.i8", "-100");
    check_meta_string(m, "test.u16", "60000");
    check_meta_string(m, "test.i16", "-30000");
    check_meta_string(m, "test.u32", "4000000000");
    check_meta_string(m, "test.i32", "-2000000000");
    check_meta_string(m, "test.f32", "1.5");
    check_meta_string(m, "test.bool.t", "true");
    check_meta_string(m, "test.bool.f", "false");
    check_meta_string(m, "test.str", "hello \xE2\x9C\x93");
    check_meta_string(m, "test.str.empty", "");
    check_meta_string(m, "test.u64", "18446744073709551615");
    check_meta_string(m, "test.i64", "-9223372036854775808");
    check_meta_string(m, "test.arr.u8", "[1,2,255]");
    check_meta_string(m, "test.arr.i8", "[-128,127]");
    check_meta_string(m, "test.arr.u16", "[65535,1]");
    check_meta_string(m, "test.arr.i16", "[-1,2,-32768]");
    check_meta_string(m, "test.arr.u32", "[4294967295]");
    check_meta_string(m, "test.arr.i32", "[-7,0,2147483647]");
    check_meta_string(m, "test.arr.bool", "[true,false,true]");
    check_meta_string(m, "test.arr.u64", "[0,9223372036854775813]");
    check_meta_string(m, "test.arr.i64", "[-5]");
    check_meta_string(m, "test.arr.empty", "[]");
    check_meta_string(m, "test.arr.nested", "[[1,2],[3],[]]");
    check_meta_string(m, "test.arr.nested.str", "[[\"x\",\"y\"],[\"z\"]]");
    {
        char want[64];
        size_t n = 0;
        for (int i = 0; i < DEEP_LEVELS; i++)
            want[n++] = '[';
        want[n++] = '7';
        for (int i = 0; i < DEEP_LEVELS; i++)
            want[n++] = ']';
        want[n] = '\0';
        check_meta_string(m, "test.arr.deep", want);
    }
    /* a string with an embedded NUL comes back as its raw bytes */
    size_t len = 0;
    char *s = meta_str(m, "test.str.nul", &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
    /* floats must round-trip */
    s = meta_str(m, "test.f64", NULL);
    assert_true(strtod(s, NULL) == 0.1);
    free(s);
    cJSON *j = meta_json(m, "test.arr.f64");
    assert_true(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1);
    assert_true(cJSON_GetArrayItem(j, 0)->valuedouble == 1e100);
    cJSON_Delete(j);
    j = meta_json(m, "test.arr.f32");
    assert_true(cJSON_GetArrayItem(j, 0)->valuedouble == 0.5);
    assert_true(cJSON_GetArrayItem(j, 1)->valuedouble == -2.25);
    cJSON_Delete(j);
    /* string arrays are JSON with escapes */
    j = meta_json(m, "test.arr.str");
    assert_int_equal(cJSON_GetArraySize(j), 5);
    static const char *const strs[] = {"a", "", "q\"b\\", "tab\tnl\n", "\xC3\xBC"};
    for (int i = 0; i < 5; i++) {
        cJSON *it = cJSON_GetArrayItem(j, i);
        assert_true(cJSON_IsString(it));
        assert_string_equal(it->valuestring, strs[i]);
    }
    cJSON_Delete(j);
    assert_int_equal(ds_model_meta_string(m, "test.absent", NULL, 0, NULL), DS_ERR_NOT_FOUND);
}

/* Compare every parsed tensor record with what the builder wrote. */
static void check_tensors_vs_builder(const gguf_file *f, gguf_builder *b, const uint8_t *buf)
{
    const gb_layout *L = gb_get_layout(b);
    assert_int_equal(f->n_tensors, gb_tensor_count(b));
    assert_int_equal(f->data_start, L->data_start);
    for (size_t i = 0; i < gb_tensor_count(b); i++) {
        const gb_tensor *bt = gb_tensor_at(b, i);
        const gguf_tensor *t = &f->tensors[i];
        assert_int_equal(strlen(t->name), bt->name_len);
        assert_memory_equal(t->name, bt->name, bt->name_len);
        assert_ptr_equal(gguf_find_tensor(f, t->name), t);
        assert_int_equal(t->n_dims, bt->n_dims);
        for (uint32_t d = 0; d < 4; d++)
            assert_int_equal(t->ne[d], d < bt->n_dims ? bt->ne[d] : 1);
        assert_int_equal(t->type, bt->type);
        assert_int_equal(t->offset, bt->layout_offset);
        assert_int_equal(t->nbytes, bt->nbytes);
        assert_ptr_equal(t->data, buf + L->tensor_data_off[i]);
        assert_memory_equal(t->data, bt->data, (size_t)bt->nbytes);
    }
    assert_null(gguf_find_tensor(f, "no.such.tensor"));
}

static void test_valid_all_types(void **state)
{
    (void)state;
    gguf_builder *b = gb_new();
    gb_ds2_config c;
    gb_ds2_default(&c);
    gb_add_ds2(b, &c);
    add_all_types(b);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    uint8_t *copy = exact_copy(buf, n);

    gguf_file f;
    ds_err e;
    ds_err_clear(&e);
    assert_int_equal(gguf_parse(&f, copy, n, &e), DS_OK);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.alignment, 32);
    assert_int_equal(f.n_kv, gb_kv_count(b));
    const gb_layout *L = gb_get_layout(b);
    for (size_t i = 0; i < f.n_kv; i++) {
        assert_int_equal(f.kv[i].file_offset, L->kv_off[i]);
        assert_ptr_equal(gguf_find_kv(&f, f.kv[i].key), &f.kv[i]);
    }
    check_getters(&f);
    check_tensors_vs_builder(&f, b, copy);
    gguf_free(&f);
    assert_gguf_empty(&f);

    /* and through the public API */
    char path[512];
    tmp_path(path, sizeof path, "all_types.gguf");
    assert_int_equal(gb_write_bytes(path, buf, n), 0);
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, path, NULL);
    if (s != DS_OK)
        print_error("ds_model_open: %s\n", ds_last_error());
    assert_int_equal(s, DS_OK);
    assert_non_null(m);
    check_public_meta(m, b);
    ds_model_close(m);
    free(copy);
    free(buf);
    gb_free(b);
}

/* A metadata-only file (no tensors, no padding after the KVs) parses, and opens vocab_only. */
static void test_valid_no_tensors(void **state)
{
    (void)state;
    gguf_builder *b = gb_new();
    gb_kv_str(b, "general.architecture", "deepseek2");
    add_all_types(b);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    assert_int_equal(n, gb_get_layout(b)->kv_end);
    uint8_t *copy = exact_copy(buf, n);
    gguf_file f;
    ds_err e;
    assert_int_equal(gguf_parse(&f, copy, n, &e), DS_OK);
    assert_int_equal(f.n_tensors, 0);
    check_getters(&f);
    gguf_free(&f);

    char path[512];
    tmp_path(path, sizeof path, "no_tensors.gguf");
    assert_int_equal(gb_write_bytes(path, buf, n), 0);
    ds_model_params p;
    assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
    p.vocab_only = 1;
    ds_model *m = NULL;
    assert_int_equal(ds_model_open(&m, path, &p), DS_OK);
    check_public_meta(m, b);
    ds_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    assert_int_equal(ds_model_info_get(m, &info), DS_OK);
    assert_string_equal(info.architecture, "deepseek2");
    assert_int_equal(info.n_tensors, 0);
    assert_int_equal(info.file_size, n);
    ds_model_close(m);
    /* without vocab_only the same file lacks every hyperparameter */
    assert_int_equal(ds_model_open(&m, path, NULL), DS_ERR_FORMAT);
    assert_null(m);
    assert_contains(ds_last_error(), "deepseek2.block_count");
    free(copy);
    free(buf);
    gb_free(b);
}

/* GGUF v2, a non-default alignment, a 63-byte tensor name, 4-D tensor: all accepted. */
static void test_valid_v2_alignment_names(void **state)
{
    (void)state;
    static const uint32_t aligns[] = {1, 8, 64, 4096};
    for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
        gguf_builder *b = gb_new();
        gb_set_version(b, 2);
        gb_set_alignment(b, aligns[k]);
        gb_kv_str(b, "general.architecture", "none");
        gb_kv_u32(b, "general.alignment", aligns[k]);
        char name63[64];
        memset(name63, 'n', 63);
        name63[63] = '\0';
        gb_tensor_add(b, "a", GB_T_F32, 1, (const uint64_t[]){3});
        gb_tensor_add(b, name63, GB_T_Q8_0, 2, (const uint64_t[]){64, 3});
        gb_tensor_add(b, "four.d", GB_T_F16, 4, (const uint64_t[]){2, 3, 4, 5});
        gb_tensor_add(b, "\xE2\x82\xAC.utf8", GB_T_BF16, 1, (const uint64_t[]){1});
        size_t n = 0;
        uint8_t *buf = gb_build(b, &n);
        uint8_t *copy = exact_copy(buf, n);
        gguf_file f;
        ds_err e;
        ds_err_clear(&e);
        ds_status s = gguf_parse(&f, copy, n, &e);
        if (s != DS_OK)
            print_error("alignment %u: %s\n", aligns[k], e.msg);
        assert_int_equal(s, DS_OK);
        assert_int_equal(f.version, 2);
        assert_int_equal(f.alignment, aligns[k]);
        assert_int_equal(f.data_start % aligns[k], 0);
        check_tensors_vs_builder(&f, b, copy);
        assert_int_equal(f.tensors[1].row_bytes, 2 * 34);
        assert_int_equal(f.tensors[1].n_elems, 192);
        assert_int_equal(f.tensors[2].n_elems, 120);
        gguf_free(&f);
        free(copy);
        free(buf);
        gb_free(b);
    }
}

/* ---- deepseek2 models ---------------------------------------------------------------------- */

static void check_weight(const ds_weight *w, const gguf_file *f, const char *name)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        print_error("tensor %s not in the file\n", name);
        fail();
    }
    if (w->data != t->data || !w->name || strcmp(w->name, name) != 0) {
        print_error("weight bound for %s is %s\n", name, w->name ? w->name : "(none)");
        fail();
    }
    assert_int_equal(w->type, t->type);
    for (int d = 0; d < 4; d++)
        assert_int_equal(w->ne[d], (int64_t)t->ne[d]);
    assert_int_equal(w->nbytes, t->nbytes);
    assert_int_equal(w->row_bytes, t->row_bytes);
}

static void check_absent(const ds_weight *w)
{
    assert_null(w->data);
}

static void check_binding(const ds_model_data *md, const gguf_file *f, const gb_ds2_config *c)
{
    char nm[96];
#define W(field, fmt)                                   \
    do {                                                \
        snprintf(nm, sizeof nm, fmt, il);               \
        check_weight(&L->field, f, nm);                 \
    } while (0)
    check_weight(&md->w.token_embd, f, "token_embd.weight");
    check_weight(&md->w.output_norm, f, "output_norm.weight");
    check_weight(&md->w.output, f, "output.weight");
    assert_non_null(md->w.layers);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        const ds2_layer *L = &md->w.layers[il];
        assert_int_equal(L->is_moe, il >= c->n_leading_dense);
        W(attn_norm, "blk.%u.attn_norm.weight");
        if (c->q_lora_rank) {
            W(attn_q_a, "blk.%u.attn_q_a.weight");
            W(attn_q_a_norm, "blk.%u.attn_q_a_norm.weight");
            W(attn_q_b, "blk.%u.attn_q_b.weight");
            check_absent(&L->attn_q);
        } else {
            W(attn_q, "blk.%u.attn_q.weight");
            check_absent(&L->attn_q_a);
            check_absent(&L->attn_q_b);
        }
        W(attn_kv_a_mqa, "blk.%u.attn_kv_a_mqa.weight");
        W(attn_kv_a_norm, "blk.%u.attn_kv_a_norm.weight");
        if (c->kv_split) {
            W(attn_k_b, "blk.%u.attn_k_b.weight");
            W(attn_v_b, "blk.%u.attn_v_b.weight");
            check_absent(&L->attn_kv_b);
        } else {
            W(attn_kv_b, "blk.%u.attn_kv_b.weight");
            check_absent(&L->attn_k_b);
            check_absent(&L->attn_v_b);
        }
        W(attn_output, "blk.%u.attn_output.weight");
        W(ffn_norm, "blk.%u.ffn_norm.weight");
        if (!L->is_moe) {
            W(ffn_gate, "blk.%u.ffn_gate.weight");
            W(ffn_up, "blk.%u.ffn_up.weight");
            W(ffn_down, "blk.%u.ffn_down.weight");
            check_absent(&L->ffn_gate_exps);
        } else {
            W(ffn_gate_inp, "blk.%u.ffn_gate_inp.weight");
            if (c->exp_probs_b)
                W(exp_probs_b, "blk.%u.exp_probs_b.bias");
            else
                check_absent(&L->exp_probs_b);
            W(ffn_gate_exps, "blk.%u.ffn_gate_exps.weight");
            W(ffn_up_exps, "blk.%u.ffn_up_exps.weight");
            W(ffn_down_exps, "blk.%u.ffn_down_exps.weight");
            if (c->n_expert_shared) {
                W(ffn_gate_shexp, "blk.%u.ffn_gate_shexp.weight");
                W(ffn_up_shexp, "blk.%u.ffn_up_shexp.weight");
                W(ffn_down_shexp, "blk.%u.ffn_down_shexp.weight");
            }
            check_absent(&L->ffn_gate);
        }
    }
#undef W
}

static void check_info(const ds_model_info *in, const gb_ds2_config *c, uint64_t file_size,
                       uint64_t n_tensors)
{
    bool moe = c->n_leading_dense < c->n_layer;
    assert_string_equal(in->architecture, "deepseek2");
    assert_string_equal(in->name, c->name ? c->name : "");
    assert_int_equal(in->file_size, file_size);
    assert_int_equal(in->n_tensors, n_tensors);
    assert_int_equal(in->n_params, gb_ds2_n_params(c));
    assert_int_equal(in->n_vocab, c->n_vocab);
    assert_int_equal(in->n_ctx_train, c->n_ctx);
    assert_int_equal(in->n_embd, c->n_embd);
    assert_int_equal(in->n_layer, c->n_layer);
    assert_int_equal(in->n_head, c->n_head);
    assert_int_equal(in->n_head_kv, c->kv_split ? 1 : c->n_head);
    assert_int_equal(in->n_ff, c->n_ff);
    assert_int_equal(in->q_lora_rank, c->q_lora_rank);
    assert_int_equal(in->kv_lora_rank, c->kv_lora_rank);
    assert_int_equal(in->qk_nope_head_dim, c->qk_nope);
    assert_int_equal(in->qk_rope_head_dim, c->qk_rope);
    assert_int_equal(in->v_head_dim, c->v_head);
    assert_int_equal(in->n_expert, moe ? c->n_expert : 0);
    assert_int_equal(in->n_expert_used, moe ? c->n_expert_used : 0);
    assert_int_equal(in->n_expert_shared, moe ? c->n_expert_shared : 0);
    assert_int_equal(in->n_ff_expert, moe ? c->n_ff_exp : 0);
    assert_int_equal(in->n_leading_dense, c->n_leading_dense);
    assert_int_equal(in->n_expert_groups, moe && c->n_group ? c->n_group : 1);
    assert_int_equal(in->n_expert_groups_used, moe && c->n_group ? c->n_group_used : 1);
    assert_int_equal(in->gating, !moe ? DS_GATING_NONE
                                 : c->gating == 2 ? DS_GATING_SIGMOID : DS_GATING_SOFTMAX);
    assert_int_equal(in->expert_weights_norm != 0, moe && c->expert_weights_norm);
    if (moe)
        assert_true(in->expert_weights_scale ==
                    (c->expert_weights_scale != 0.0f ? c->expert_weights_scale : 1.0f));
    assert_true(in->rms_norm_eps == c->rms_eps);
    assert_true(in->rope_freq_base == c->rope_freq_base);
    if (c->yarn) {
        assert_int_equal(in->rope_scaling, DS_ROPE_SCALING_YARN);
        assert_true(in->rope_scaling_factor == c->yarn_factor);
        assert_int_equal(in->rope_orig_ctx, c->yarn_orig_ctx);
        assert_true(fabsf(in->yarn_mscale_all_dim - c->yarn_log_multiplier / 0.1f) < 1e-5f);
    } else {
        assert_int_equal(in->rope_scaling, DS_ROPE_SCALING_NONE);
        assert_true(in->rope_scaling_factor == 1.0f);
    }
    assert_true(in->yarn_beta_fast == 32.0f);
    assert_true(in->yarn_beta_slow == 1.0f);
    assert_int_equal(in->kv_split != 0, c->kv_split);
    assert_int_equal(in->kv_bytes_per_token,
                     (uint64_t)c->n_layer * (c->kv_lora_rank + c->qk_rope) * sizeof(float));
}

static void run_ds2_variant(const gb_ds2_config *c, const char *fname)
{
    gguf_builder *b = gb_new();
    gb_add_ds2(b, c);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    uint8_t *copy = exact_copy(buf, n);

    gguf_file f;
    ds_err e;
    ds_err_clear(&e);
    ds_status s = gguf_parse(&f, copy, n, &e);
    if (s != DS_OK)
        print_error("%s: gguf_parse: %s\n", fname, e.msg);
    assert_int_equal(s, DS_OK);
    check_tensors_vs_builder(&f, b, copy);
    ds_model_data md;
    s = ds_model_data_load(&md, &f, false, &e);
    if (s != DS_OK)
        print_error("%s: ds_model_data_load: %s\n", fname, e.msg);
    assert_int_equal(s, DS_OK);
    assert_int_equal(md.arch, DS_ARCH_DEEPSEEK2);
    assert_string_equal(md.arch_name, "deepseek2");
    assert_int_equal(md.hp.kv_split, c->kv_split);
    assert_int_equal(md.hp.q_lora_rank, c->q_lora_rank);
    assert_int_equal(md.hp.qk_nope, c->qk_nope);
    assert_int_equal(md.hp.v_head, c->v_head);
    assert_int_equal(md.n_params, gb_ds2_n_params(c));
    check_binding(&md, &f, c);
    ds_model_data_free(&md);
    assert_null(md.w.layers);

    /* vocab_only binds nothing */
    assert_int_equal(ds_model_data_load(&md, &f, true, &e), DS_OK);
    assert_null(md.w.layers);
    assert_null(md.w.token_embd.data);
    ds_model_data_free(&md);
    gguf_free(&f);

    char path[512];
    tmp_path(path, sizeof path, fname);
    assert_int_equal(gb_write_bytes(path, buf, n), 0);
    ds_model *m = NULL;
    s = ds_model_open(&m, path, NULL);
    if (s != DS_OK)
        print_error("%s: ds_model_open: %s\n", fname, ds_last_error());
    assert_int_equal(s, DS_OK);
    ds_model_info info;
    memset(&info, 0xA5, sizeof info);
    info.struct_size = sizeof info;
    assert_int_equal(ds_model_info_get(m, &info), DS_OK);
    assert_int_equal(info.struct_size, sizeof info);
    check_info(&info, c, n, gb_tensor_count(b));

    /* tensor table through the public API */
    const gb_layout *L = gb_get_layout(b);
    for (size_t i = 0; i < gb_tensor_count(b); i++) {
        const gb_tensor *bt = gb_tensor_at(b, i);
        ds_tensor_info ti;
        memset(&ti, 0, sizeof ti);
        ti.struct_size = sizeof ti;
        assert_int_equal(ds_model_tensor_info(m, i, &ti), DS_OK);
        assert_int_equal(strlen(ti.name), bt->name_len);
        assert_memory_equal(ti.name, bt->name, bt->name_len);
        assert_int_equal(ti.type, bt->type);
        assert_string_equal(ti.type_name, bt->type == GB_T_F32   ? "F32"
                                          : bt->type == GB_T_F16  ? "F16"
                                          : bt->type == GB_T_BF16 ? "BF16"
                                                                  : "Q8_0");
        assert_int_equal(ti.n_dims, bt->n_dims);
        for (uint32_t d = 0; d < 4; d++)
            assert_int_equal(ti.ne[d], d < bt->n_dims ? bt->ne[d] : 1);
        assert_int_equal(ti.offset, L->tensor_data_off[i]);
        assert_int_equal(ti.nbytes, bt->nbytes);
        uint64_t idx = 999;
        assert_int_equal(ds_model_find_tensor(m, ti.name, &idx), DS_OK);
        assert_int_equal(idx, i);
    }
    ds_tensor_info ti;
    ti.struct_size = sizeof ti;
    assert_int_equal(ds_model_tensor_info(m, gb_tensor_count(b), &ti), DS_ERR_NOT_FOUND);
    uint64_t idx;
    assert_int_equal(ds_model_find_tensor(m, "blk.99.attn_q.weight", &idx), DS_ERR_NOT_FOUND);
    assert_contains(ds_model_errmsg(m), "blk.99.attn_q.weight");
    ds_model_close(m);
    free(copy);
    free(buf);
    gb_free(b);
}

static void test_ds2_combined_kv_b(void **state)
{
    (void)state;
    gb_ds2_config c;
    gb_ds2_default(&c);
    run_ds2_variant(&c, "ds2_combined.gguf");
}

static void test_ds2_split_kv_b_qlora_v3(void **state)
{
    (void)state;
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.name = "v3-like";
    c.kv_split = true;
    c.q_lora_rank = 32;
    c.n_layer = 3;
    c.gating = 2;
    c.n_group = 2;
    c.n_group_used = 1;
    c.exp_probs_b = true;
    c.expert_weights_norm = true;
    c.expert_weights_scale = 2.5f;
    c.yarn_log_multiplier = 0.1f;
    c.matrix_type = GB_T_Q8_0;
    run_ds2_variant(&c, "ds2_split_v3.gguf");
}

static void test_ds2_split_kv_b_lite(void **state)
{
    (void)state;
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.kv_split = true;
    c.matrix_type = GB_T_BF16;
    c.yarn = false;
    c.name = NULL;
    run_ds2_variant(&c, "ds2_split_lite.gguf");
}

static void test_ds2_dense_and_defaults(void **state)
{
    (void)state;
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.n_leading_dense = c.n_layer; /* no MoE layer */
    c.n_expert = 0;
    c.matrix_type = GB_T_F32;
    run_ds2_variant(&c, "ds2_dense.gguf");
    /* optional keys absent: gating -> softmax, scale -> 1, groups -> 1, no vocab_size key */
    gb_ds2_default(&c);
    c.gating = 0;
    c.expert_weights_scale = 0.0f;
    c.n_group = 0;
    c.write_vocab_size = false;
    run_ds2_variant(&c, "ds2_defaults.gguf");
}

/* ---- malformed files ------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *name;
    void (*make)(gguf_builder *b);
    size_t (*cut)(gguf_builder *b, const gb_layout *L); /* NULL: whole file */
    ds_status status;
    bool model_level;     /* gguf_parse succeeds, ds_model_data_load fails */
    const char *substr;   /* the message must contain these */
    const char *substr2;
} bad_case;

static void base_model(gguf_builder *b)
{
    gb_ds2_config c;
    gb_ds2_default(&c);
    gb_add_ds2(b, &c);
}

static void base_split(gguf_builder *b)
{
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.kv_split = true;
    gb_add_ds2(b, &c);
}

static void base_tiny(gguf_builder *b)
{
    gb_kv_str(b, "general.architecture", "deepseek2");
}

static size_t kv_off(gguf_builder *b, const gb_layout *L, const char *key)
{
    long i = gb_kv_find(b, key);
    assert_true(i >= 0);
    return L->kv_off[i];
}

static size_t trec_off(gguf_builder *b, const gb_layout *L, const char *name)
{
    gb_tensor *t = gb_tensor_find(b, name);
    assert_non_null(t);
    return L->tensor_rec_off[t - gb_tensor_at(b, 0)];
}

/* -- truncation in every section -- */
static size_t cut_magic(gguf_builder *b, const gb_layout *L) { (void)b; (void)L; return 2; }
static size_t cut_version(gguf_builder *b, const gb_layout *L) { (void)b; (void)L; return 6; }
static size_t cut_tcount(gguf_builder *b, const gb_layout *L) { (void)b; (void)L; return 12; }
static size_t cut_kvcount(gguf_builder *b, const gb_layout *L) { (void)b; (void)L; return 20; }
static size_t cut_kv_early(gguf_builder *b, const gb_layout *L) { (void)b; return L->kv_off[2] + 5; }
static void add_tail(gguf_builder *b)
{
    base_model(b);
    gb_kv_u32(b, "test.tail.u32", 7);
    gb_kv_str(b, "test.tail.str", "a string at the end");
}
static size_t tail_off(gguf_builder *b, const gb_layout *L, const char *key)
{
    return kv_off(b, L, key);
}
static size_t cut_kv_keylen(gguf_builder *b, const gb_layout *L) { return tail_off(b, L, "test.tail.u32") + 5; }
static size_t cut_kv_key(gguf_builder *b, const gb_layout *L) { return tail_off(b, L, "test.tail.u32") + 8 + 4; }
static size_t cut_kv_type(gguf_builder *b, const gb_layout *L)
{
    return tail_off(b, L, "test.tail.u32") + 8 + strlen("test.tail.u32") + 2;
}
static size_t cut_kv_value(gguf_builder *b, const gb_layout *L)
{
    return tail_off(b, L, "test.tail.u32") + 8 + strlen("test.tail.u32") + 4 + 3;
}
static size_t cut_kv_strval(gguf_builder *b, const gb_layout *L)
{
    return tail_off(b, L, "test.tail.str") + 8 + strlen("test.tail.str") + 4 + 8 + 3;
}
static void add_arrays(gguf_builder *b)
{
    base_model(b);
    int32_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i;
    gb_kv_arr_i32(b, "test.arr", v, 100);
    static const char *const s[] = {"string number zero....", "string number one.....",
                                    "string number two.....", "string number three...",
                                    "string number four...."};
    gb_kv_arr_str(b, "test.strs", s, 5);
}
static size_t cut_arr_hdr(gguf_builder *b, const gb_layout *L)
{
    return kv_off(b, L, "test.arr") + 8 + strlen("test.arr") + 4 + 4 + 3;
}
static size_t cut_arr_data(gguf_builder *b, const gb_layout *L)
{
    return kv_off(b, L, "test.arr") + 8 + strlen("test.arr") + 4 + 12 + 200;
}
static size_t cut_str_arr(gguf_builder *b, const gb_layout *L)
{
    /* inside the bytes of element 2 */
    return kv_off(b, L, "test.strs") + 8 + strlen("test.strs") + 4 + 12 + 2 * (8 + 22) + 8 + 5;
}
static size_t cut_trec_name(gguf_builder *b, const gb_layout *L) { return trec_off(b, L, "output_norm.weight") + 8 + 4; }
static size_t cut_trec_ne(gguf_builder *b, const gb_layout *L)
{
    return trec_off(b, L, "output_norm.weight") + 8 + strlen("output_norm.weight") + 4 + 3;
}
static size_t cut_trec_offset(gguf_builder *b, const gb_layout *L) { (void)b; return L->infos_end - 3; }
static size_t cut_padding(gguf_builder *b, const gb_layout *L)
{
    (void)b;
    assert_true(L->data_start > L->infos_end);
    return L->data_start - 1;
}
static size_t cut_data_first(gguf_builder *b, const gb_layout *L) { (void)b; return L->tensor_data_off[0] + 5; }
static size_t cut_last_byte(gguf_builder *b, const gb_layout *L)
{
    (void)b;
    return L->size - 1;
}
static void make_no_trailing_pad(gguf_builder *b)
{
    base_model(b);
    gb_set_trailing_pad(b, false);
}

/* -- header -- */
static void make_bad_magic(gguf_builder *b) { base_tiny(b); gb_set_magic(b, "GGML"); }
static void make_v1(gguf_builder *b) { base_tiny(b); gb_set_version(b, 1); }
static void make_v4(gguf_builder *b) { base_tiny(b); gb_set_version(b, 4); }
static void make_v0(gguf_builder *b) { base_tiny(b); gb_set_version(b, 0); }
static void make_v_be(gguf_builder *b) { base_tiny(b); gb_set_version(b, 0x03000000u); }
static void make_tcount_huge(gguf_builder *b) { base_tiny(b); gb_set_tensor_count(b, 0x7FFFFFFFFFFFFFFFull); }
static void make_kvcount_huge(gguf_builder *b) { base_tiny(b); gb_set_kv_count(b, 1ull << 40); }
static void make_kvcount_neg(gguf_builder *b) { base_tiny(b); gb_set_kv_count(b, UINT64_MAX); }
static void make_tcount_plus1(gguf_builder *b) { base_model(b); gb_set_tensor_count(b, gb_tensor_count(b) + 1); }

/* -- strings -- */
static void make_keylen_max(gguf_builder *b)
{
    base_tiny(b);
    gb_blob r;
    gb_blob_init(&r);
    gb_put_str_declared(&r, UINT64_MAX, "abc", 3);
    gb_put_u32(&r, GB_UINT32);
    gb_put_u32(&r, 1);
    gb_kv_raw(b, "abc", r.data, r.len);
    gb_blob_free(&r);
}
static void make_strlen_past_eof(gguf_builder *b)
{
    /* the last bytes of the file: a string value whose length is one more than what is left */
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_str_declared(&v, 6, "hello", 5);
    gb_kv_value(b, "test.s", GB_STRING, &v);
    gb_blob_free(&v);
}
static void make_strlen_huge_value(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "general.name");
    gb_blob v;
    gb_blob_init(&v);
    gb_put_str_declared(&v, 1ull << 63, "x", 1);
    gb_kv_value(b, "general.name", GB_STRING, &v);
    gb_blob_free(&v);
}

/* -- arrays -- */
static void make_arr_u64_2_61(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_arr_hdr(&v, GB_UINT64, 1ull << 61);
    gb_put_u64(&v, 1);
    gb_put_u64(&v, 2);
    gb_kv_value(b, "test.bomb", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_arr_type13(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_arr_hdr(&v, 13, 1);
    gb_put_u64(&v, 0);
    gb_kv_value(b, "test.t13", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_arr_type_m1(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_arr_hdr(&v, 0xFFFFFFFFu, 1);
    gb_put_u64(&v, 0);
    gb_kv_value(b, "test.tm1", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_value_type13(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_u64(&v, 0);
    gb_kv_value(b, "test.v13", 13, &v);
    gb_blob_free(&v);
}
static void make_nested_too_deep(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    for (int i = 0; i < DEEP_LEVELS; i++)
        gb_put_arr_hdr(&v, GB_ARRAY, 1);
    gb_put_arr_hdr(&v, GB_UINT8, 1);
    gb_put_u8(&v, 7);
    gb_kv_value(b, "test.deep", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_nested_very_deep(gguf_builder *b)
{
    /* 100000 levels: must be rejected by the depth limit, not by a stack overflow */
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    for (int i = 0; i < 100000; i++)
        gb_put_arr_hdr(&v, GB_ARRAY, 1);
    gb_kv_value(b, "test.verydeep", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_nested_count_bomb(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_arr_hdr(&v, GB_ARRAY, 1ull << 40);
    gb_put_arr_hdr(&v, GB_UINT8, 0);
    gb_kv_value(b, "test.nbomb", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_str_arr_count_bomb(gguf_builder *b)
{
    base_tiny(b);
    gb_blob v;
    gb_blob_init(&v);
    gb_put_arr_hdr(&v, GB_STRING, 1ull << 60);
    gb_put_str(&v, "x");
    gb_kv_value(b, "test.sbomb", GB_ARRAY, &v);
    gb_blob_free(&v);
}
static void make_bool_arr_2(gguf_builder *b)
{
    base_tiny(b);
    static const uint8_t v[] = {1, 2, 0};
    gb_kv_arr(b, "test.bools", GB_BOOL, 3, v, 3);
}
static void make_bool_2(gguf_builder *b)
{
    base_model(b);
    gb_kv_bool(b, "deepseek2.expert_weights_norm", 2);
}

/* -- alignment -- */
static void make_align_string(gguf_builder *b) { base_model(b); gb_kv_str(b, "general.alignment", "32"); }
static void make_align_u64(gguf_builder *b) { base_model(b); gb_kv_u64(b, "general.alignment", 32); }
static void make_align_0(gguf_builder *b) { base_model(b); gb_kv_u32(b, "general.alignment", 0); }
static void make_align_3(gguf_builder *b) { base_model(b); gb_kv_u32(b, "general.alignment", 3); }
static void make_align_2_31(gguf_builder *b) { base_model(b); gb_kv_u32(b, "general.alignment", 1u << 31); }
static void make_align_2_21(gguf_builder *b) { base_model(b); gb_kv_u32(b, "general.alignment", 1u << 21); }
static void make_dup_alignment(gguf_builder *b)
{
    base_model(b);
    gb_kv_u32(b, "general.alignment", 32);
    gb_kv_u32(b, "general.alignment", 64);
}
static void make_dup_key(gguf_builder *b)
{
    base_model(b);
    gb_kv_u32(b, "deepseek2.block_count", 2);
}
static void make_align_mismatch(gguf_builder *b)
{
    /* general.alignment says 64 but the tensors are laid out at 32 */
    base_tiny(b);
    gb_kv_u32(b, "general.alignment", 64);
    gb_tensor_add(b, "a", GB_T_F32, 1, (const uint64_t[]){8});
    gb_tensor_add(b, "b", GB_T_F32, 1, (const uint64_t[]){8}); /* at offset 32 */
}

/* -- keys -- */
static void raw_key(gguf_builder *b, const void *key, size_t n)
{
    base_model(b);
    gb_blob r;
    gb_blob_init(&r);
    gb_put_strn(&r, key, n);
    gb_put_u32(&r, GB_UINT32);
    gb_put_u32(&r, 1);
    gb_kv_raw(b, "raw", r.data, r.len);
    gb_blob_free(&r);
}
static void make_key_bad_utf8(gguf_builder *b) { raw_key(b, "test.bad\xC3\x28", 10); }
static void make_key_overlong(gguf_builder *b) { raw_key(b, "test.\xC0\xAF", 7); }
static void make_key_surrogate(gguf_builder *b) { raw_key(b, "test.\xED\xA0\x80", 8); }
static void make_key_nul(gguf_builder *b) { raw_key(b, "general.alignment\0junk", 22); }
static void make_key_empty(gguf_builder *b) { raw_key(b, "", 0); }
static void make_key_too_long(gguf_builder *b)
{
    char *k = malloc(65536);
    assert_non_null(k);
    memset(k, 'k', 65536);
    raw_key(b, k, 65536);
    free(k);
}

/* -- tensors -- */
static gb_tensor *tensor(gguf_builder *b, const char *name)
{
    gb_tensor *t = gb_tensor_find(b, name);
    assert_non_null(t);
    return t;
}
static void make_ndims0(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->n_dims = 0; }
static void make_ndims5(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    gb_tensor_set_shape(t, 5, (const uint64_t[]){32, 32, 1, 1, 1});
}
static void make_ndims_max(gguf_builder *b) { base_model(b); tensor(b, "output.weight")->n_dims = 0xFFFFFFFFu; }
static void make_ne_zero(gguf_builder *b)
{
    base_model(b);
    gb_tensor_set_shape(tensor(b, "output.weight"), 2, (const uint64_t[]){32, 0});
}
static void make_ne_overflow(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    t->ne[0] = 1ull << 32;
    t->ne[1] = 1ull << 32;
}
static void make_ne_bytes_overflow(gguf_builder *b)
{
    /* elements fit (2^62) but bytes (2^64 for F32) do not */
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    t->type = GB_T_F32;
    t->ne[0] = 1ull << 61;
    t->ne[1] = 2;
}
static void make_ne_row_bytes_wrap(gguf_builder *b)
{
    /* F64 row of 2^61+1 elements: (2^61+1) * 8 bytes wraps to 8 */
    base_model(b);
    gb_tensor *t = gb_tensor_add(b, "wrap.f64", GB_T_F64, 1, (const uint64_t[]){1});
    t->ne[0] = (1ull << 61) + 1;
}
static void make_ne_2_62(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->ne[0] = 1ull << 62; }
static void make_ne_m1(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->ne[0] = UINT64_MAX; }
static void make_type4(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->type = 4; }
static void make_type31(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->type = 31; }
static void make_type39(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->type = 39; }
static void make_type_max(gguf_builder *b) { base_model(b); tensor(b, "output_norm.weight")->type = 0xFFFFFFFFu; }
static void make_q4k_100(gguf_builder *b)
{
    base_model(b);
    gb_tensor_add(b, "odd.q4k", GB_T_Q4_K, 2, (const uint64_t[]){100, 2});
}
static void make_off_misaligned(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    t->offset_set = true;
    t->offset = 2048 + 1;
}
static void make_off_wrap(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    t->offset_set = true;
    t->offset = 0xFFFFFFFFFFFFFFE0ull;
}
static void make_overlap_same(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output.weight");
    t->offset_set = true;
    t->offset = 0; /* token_embd.weight is at 0 */
}
static void make_overlap_partial(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output_norm.weight");
    t->offset_set = true;
    t->offset = 32; /* inside token_embd.weight (2048 bytes at 0) */
}
static void make_past_eof(gguf_builder *b)
{
    base_model(b);
    size_t n = 0;
    free(gb_build(b, &n)); /* computes layout_offset */
    gb_tensor *t = gb_tensor_at(b, gb_tensor_count(b) - 1);
    t->offset_set = true;
    t->offset = t->layout_offset + 64;
}
static void tname(gguf_builder *b, const void *name, size_t n)
{
    base_model(b);
    gb_tensor_set_name(tensor(b, "output_norm.weight"), name, n);
}
static void make_tname_64(gguf_builder *b)
{
    char n[64];
    memset(n, 't', 64);
    tname(b, n, 64);
}
static void make_tname_nul(gguf_builder *b) { tname(b, "output_norm\0weight", 18); }
static void make_tname_empty(gguf_builder *b) { tname(b, "", 0); }
static void make_tname_bad_utf8(gguf_builder *b) { tname(b, "out\xFF", 4); }
static void make_tname_len_huge(gguf_builder *b)
{
    base_model(b);
    gb_tensor *t = tensor(b, "output_norm.weight");
    t->name_declared_set = true;
    t->name_declared = UINT64_MAX - 7;
}
static void make_dup_tname(gguf_builder *b) { tname(b, "output.weight", 13); }

/* -- model level -- */
static void set_str(gguf_builder *b, const char *key, const char *v)
{
    assert_int_equal(gb_kv_remove(b, key), 1);
    gb_kv_str(b, key, v);
}
static void set_u32(gguf_builder *b, const char *key, uint32_t v)
{
    assert_int_equal(gb_kv_remove(b, key), 1);
    gb_kv_u32(b, key, v);
}
static void make_arch_unknown(gguf_builder *b) { base_model(b); set_str(b, "general.architecture", "mamba9"); }
static void make_arch_llama(gguf_builder *b) { base_model(b); set_str(b, "general.architecture", "llama"); }
static void make_arch_nul(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "general.architecture");
    gb_kv_strn(b, "general.architecture", "deepseek2\0x", 11);
}
static void make_arch_missing(gguf_builder *b) { base_model(b); gb_kv_remove(b, "general.architecture"); }
static void make_arch_u32(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "general.architecture");
    gb_kv_u32(b, "general.architecture", 2);
}
static void make_missing_tensor(gguf_builder *b) { base_model(b); assert_true(gb_tensor_remove(b, "blk.1.ffn_down_exps.weight")); }
static void make_missing_norm(gguf_builder *b) { base_model(b); assert_true(gb_tensor_remove(b, "output_norm.weight")); }
static void make_missing_embd(gguf_builder *b) { base_model(b); assert_true(gb_tensor_remove(b, "token_embd.weight")); }
static void make_wrong_shape(gguf_builder *b)
{
    base_model(b);
    gb_tensor_set_shape(tensor(b, "blk.0.attn_kv_a_mqa.weight"), 2, (const uint64_t[]){32, 21});
}
static void make_wrong_shape_3d(gguf_builder *b)
{
    base_model(b);
    gb_tensor_set_shape(tensor(b, "blk.1.ffn_up_exps.weight"), 3, (const uint64_t[]){32, 16, 3});
}
static void make_wrong_shape_transposed(gguf_builder *b)
{
    base_model(b);
    gb_tensor_set_shape(tensor(b, "blk.0.attn_output.weight"), 2, (const uint64_t[]){32, 16});
}
static void make_iq2_xxs_tensor(gguf_builder *b)
{
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.n_ff = 256;
    gb_add_ds2(b, &c);
    gb_tensor_set_type(tensor(b, "blk.0.ffn_down.weight"), GB_T_IQ2_XXS);
}
static void make_q8_k_tensor(gguf_builder *b)
{
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.n_embd = 256;
    gb_add_ds2(b, &c);
    gb_tensor_set_type(tensor(b, "token_embd.weight"), GB_T_Q8_K);
}
static void make_norm_f16(gguf_builder *b)
{
    base_model(b);
    gb_tensor_set_type(tensor(b, "blk.1.attn_norm.weight"), GB_T_F16);
}
static void make_missing_hparam(gguf_builder *b) { base_model(b); gb_kv_remove(b, "deepseek2.embedding_length"); }
static void make_missing_kv_lora(gguf_builder *b) { base_model(b); gb_kv_remove(b, "deepseek2.attention.kv_lora_rank"); }
static void make_missing_eps(gguf_builder *b) { base_model(b); gb_kv_remove(b, "deepseek2.attention.layer_norm_rms_epsilon"); }
static void make_used_gt_count(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.expert_used_count", 5); }
static void make_hparam_string(gguf_builder *b) { base_model(b); set_str(b, "deepseek2.block_count", "2"); }
static void make_hparam_negative(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "deepseek2.block_count");
    gb_kv_i32(b, "deepseek2.block_count", -1);
}
static void make_hparam_u64_big(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "deepseek2.context_length");
    gb_kv_u64(b, "deepseek2.context_length", 1ull << 32);
}
static void make_heads_zero(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.attention.head_count", 0); }
static void make_layers_huge(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.block_count", 100000); }
static void make_key_len_small(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.attention.key_length", 4); }
static void make_vocab_mismatch(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.vocab_size", 33); }
static void make_both_q(gguf_builder *b)
{
    base_model(b);
    gb_tensor_add(b, "blk.0.attn_q_a.weight", GB_T_F16, 2, (const uint64_t[]){32, 32});
}
static void make_no_kvb(gguf_builder *b) { base_model(b); assert_true(gb_tensor_remove(b, "blk.0.attn_kv_b.weight")); }
static void make_split_no_vb(gguf_builder *b) { base_split(b); assert_true(gb_tensor_remove(b, "blk.1.attn_v_b.weight")); }
static void make_split_kb_shape(gguf_builder *b)
{
    base_split(b);
    /* {d_c, d_n, H} instead of {d_n, d_c, H} (W_UK not transposed) */
    gb_tensor_set_shape(tensor(b, "blk.0.attn_k_b.weight"), 3, (const uint64_t[]){16, 8, 2});
}
static void make_gating_3(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.expert_gating_func", 3); }
static void make_rope_linear(gguf_builder *b) { base_model(b); set_str(b, "deepseek2.rope.scaling.type", "linear"); }
static void make_eps_nan(gguf_builder *b)
{
    base_model(b);
    gb_kv_remove(b, "deepseek2.attention.layer_norm_rms_epsilon");
    gb_kv_f32(b, "deepseek2.attention.layer_norm_rms_epsilon", NAN);
}
static void make_dense_gt_layers(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.leading_dense_block_count", 3); }
static void make_groups_not_divisor(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.expert_group_count", 3); }
static void make_qlora_no_rank(gguf_builder *b)
{
    gb_ds2_config c;
    gb_ds2_default(&c);
    c.q_lora_rank = 32;
    gb_add_ds2(b, &c);
    gb_kv_remove(b, "deepseek2.attention.q_lora_rank");
}
static void make_yarn_no_factor(gguf_builder *b) { base_model(b); gb_kv_remove(b, "deepseek2.rope.scaling.factor"); }
static void make_rope_odd(gguf_builder *b) { base_model(b); set_u32(b, "deepseek2.rope.dimension_count", 3); }

#define PARSE(name, make, cut, st, s1, s2) {name, make, cut, st, false, s1, s2}
#define MODEL(name, make, st, s1, s2) {name, make, NULL, st, true, s1, s2}

static const bad_case k_cases[] = {
    /* truncation in every section */
    PARSE("trunc_header_magic", base_model, cut_magic, DS_ERR_FORMAT, "header magic", "truncated"),
    PARSE("trunc_header_version", base_model, cut_version, DS_ERR_FORMAT, "header version", "truncated"),
    PARSE("trunc_header_tensor_count", base_model, cut_tcount, DS_ERR_FORMAT, "header tensor count", "offset 8"),
    PARSE("trunc_header_kv_count", base_model, cut_kvcount, DS_ERR_FORMAT, "header metadata count", "offset 16"),
    PARSE("trunc_kv_count_check", base_model, cut_kv_early, DS_ERR_FORMAT, "metadata count", "cannot fit"),
    PARSE("trunc_kv_key_length", add_tail, cut_kv_keylen, DS_ERR_FORMAT, "metadata pair", "metadata key needs 8 bytes"),
    PARSE("trunc_kv_key_bytes", add_tail, cut_kv_key, DS_ERR_FORMAT, "metadata pair", "string length 13"),
    PARSE("trunc_kv_value_type", add_tail, cut_kv_type, DS_ERR_FORMAT, "test.tail.u32", "value type"),
    PARSE("trunc_kv_value", add_tail, cut_kv_value, DS_ERR_FORMAT, "test.tail.u32", "scalar value"),
    PARSE("trunc_kv_string_value", add_tail, cut_kv_strval, DS_ERR_FORMAT, "test.tail.str", "string length 19"),
    PARSE("trunc_array_header", add_arrays, cut_arr_hdr, DS_ERR_FORMAT, "test.arr", "array element count"),
    PARSE("trunc_array_data", add_arrays, cut_arr_data, DS_ERR_FORMAT, "test.arr", "cannot fit"),
    PARSE("trunc_string_array", add_arrays, cut_str_arr, DS_ERR_FORMAT, "test.strs", "element 2"),
    PARSE("trunc_tensor_record_name", add_arrays, cut_trec_name, DS_ERR_FORMAT, "tensor record 1", "tensor name"),
    PARSE("trunc_tensor_record_ne", base_model, cut_trec_ne, DS_ERR_FORMAT, "output_norm.weight", "tensor dimension"),
    PARSE("trunc_tensor_record_offset", base_model, cut_trec_offset, DS_ERR_FORMAT, "tensor data offset", "blk.1.ffn_down_shexp.weight"),
    PARSE("trunc_data_padding", base_model, cut_padding, DS_ERR_FORMAT, "data section starts", "truncated"),
    PARSE("trunc_data_first_tensor", base_model, cut_data_first, DS_ERR_FORMAT, "token_embd.weight", "runs past the end"),
    PARSE("trunc_data_last_byte", make_no_trailing_pad, cut_last_byte, DS_ERR_FORMAT, "blk.1.ffn_down_shexp.weight", "runs past the end"),
    /* header */
    PARSE("wrong_magic", make_bad_magic, NULL, DS_ERR_FORMAT, "magic", "GGUF"),
    PARSE("version_0", make_v0, NULL, DS_ERR_UNSUPPORTED, "version 0", NULL),
    PARSE("version_1", make_v1, NULL, DS_ERR_UNSUPPORTED, "version 1", NULL),
    PARSE("version_4", make_v4, NULL, DS_ERR_UNSUPPORTED, "version 4", NULL),
    PARSE("version_big_endian", make_v_be, NULL, DS_ERR_UNSUPPORTED, "big-endian", "0x03000000"),
    PARSE("tensor_count_huge", make_tcount_huge, NULL, DS_ERR_FORMAT, "tensor count 9223372036854775807", NULL),
    PARSE("kv_count_2_40", make_kvcount_huge, NULL, DS_ERR_FORMAT, "metadata count 1099511627776", NULL),
    PARSE("kv_count_negative", make_kvcount_neg, NULL, DS_ERR_FORMAT, "metadata count 18446744073709551615", NULL),
    PARSE("tensor_count_plus_one", make_tcount_plus1, NULL, DS_ERR_FORMAT, "tensor record", NULL),
    /* strings */
    PARSE("key_length_ffff", make_keylen_max, NULL, DS_ERR_FORMAT, "string length 18446744073709551615", "metadata pair 1"),
    PARSE("string_one_past_eof", make_strlen_past_eof, NULL, DS_ERR_FORMAT, "test.s", "string length 6"),
    PARSE("string_length_2_63", make_strlen_huge_value, NULL, DS_ERR_FORMAT, "general.name", "string length 9223372036854775808"),
    /* arrays */
    PARSE("array_u64_count_2_61", make_arr_u64_2_61, NULL, DS_ERR_FORMAT, "test.bomb", "2305843009213693952"),
    PARSE("array_elem_type_13", make_arr_type13, NULL, DS_ERR_FORMAT, "test.t13", "element type 13"),
    PARSE("array_elem_type_m1", make_arr_type_m1, NULL, DS_ERR_FORMAT, "test.tm1", "element type 4294967295"),
    PARSE("value_type_13", make_value_type13, NULL, DS_ERR_FORMAT, "test.v13", "value type 13"),
    PARSE("array_nested_too_deep", make_nested_too_deep, NULL, DS_ERR_FORMAT, "test.deep", "nested deeper"),
    PARSE("array_nested_100000", make_nested_very_deep, NULL, DS_ERR_FORMAT, "test.verydeep", "nested deeper"),
    PARSE("array_of_arrays_count_bomb", make_nested_count_bomb, NULL, DS_ERR_FORMAT, "test.nbomb", "cannot fit"),
    PARSE("array_of_strings_count_bomb", make_str_arr_count_bomb, NULL, DS_ERR_FORMAT, "test.sbomb", "cannot fit"),
    PARSE("bool_array_value_2", make_bool_arr_2, NULL, DS_ERR_FORMAT, "test.bools", "element 1"),
    PARSE("bool_value_2", make_bool_2, NULL, DS_ERR_FORMAT, "deepseek2.expert_weights_norm", "bool value 2"),
    /* alignment and duplicate keys */
    PARSE("alignment_string", make_align_string, NULL, DS_ERR_FORMAT, "general.alignment", "STRING"),
    PARSE("alignment_uint64", make_align_u64, NULL, DS_ERR_FORMAT, "general.alignment", "UINT64"),
    PARSE("alignment_0", make_align_0, NULL, DS_ERR_FORMAT, "general.alignment", "is 0"),
    PARSE("alignment_3", make_align_3, NULL, DS_ERR_FORMAT, "general.alignment", "is 3"),
    PARSE("alignment_2_31", make_align_2_31, NULL, DS_ERR_FORMAT, "general.alignment", "2147483648"),
    PARSE("alignment_2_21", make_align_2_21, NULL, DS_ERR_FORMAT, "general.alignment", "2097152"),
    PARSE("alignment_mismatch_offsets", make_align_mismatch, NULL, DS_ERR_FORMAT, "tensor 'b'", "alignment 64"),
    PARSE("duplicate_key_alignment", make_dup_alignment, NULL, DS_ERR_FORMAT, "duplicate metadata key 'general.alignment'", NULL),
    PARSE("duplicate_key", make_dup_key, NULL, DS_ERR_FORMAT, "duplicate metadata key 'deepseek2.block_count'", NULL),
    /* keys */
    PARSE("key_not_utf8", make_key_bad_utf8, NULL, DS_ERR_FORMAT, "UTF-8", "metadata pair"),
    PARSE("key_overlong_utf8", make_key_overlong, NULL, DS_ERR_FORMAT, "UTF-8", "metadata pair"),
    PARSE("key_utf8_surrogate", make_key_surrogate, NULL, DS_ERR_FORMAT, "UTF-8", "metadata pair"),
    PARSE("key_with_nul", make_key_nul, NULL, DS_ERR_FORMAT, "UTF-8", "metadata pair"),
    PARSE("key_empty", make_key_empty, NULL, DS_ERR_FORMAT, "empty", "metadata pair"),
    PARSE("key_65536_bytes", make_key_too_long, NULL, DS_ERR_FORMAT, "65535", "metadata pair"),
    /* tensor records */
    PARSE("n_dims_0", make_ndims0, NULL, DS_ERR_FORMAT, "output_norm.weight", "0 dimensions"),
    PARSE("n_dims_5", make_ndims5, NULL, DS_ERR_FORMAT, "output.weight", "5 dimensions"),
    PARSE("n_dims_ffffffff", make_ndims_max, NULL, DS_ERR_FORMAT, "output.weight", "4294967295 dimensions"),
    PARSE("ne_zero", make_ne_zero, NULL, DS_ERR_FORMAT, "output.weight", "dimension 1 is 0"),
    PARSE("ne_product_overflow", make_ne_overflow, NULL, DS_ERR_FORMAT, "output.weight", "overflows"),
    PARSE("ne_bytes_overflow", make_ne_bytes_overflow, NULL, DS_ERR_FORMAT, "output.weight", "overflows"),
    PARSE("ne_row_bytes_wrap_f64", make_ne_row_bytes_wrap, NULL, DS_ERR_FORMAT, "wrap.f64", "overflows"),
    PARSE("ne_2_62", make_ne_2_62, NULL, DS_ERR_FORMAT, "output_norm.weight", "4611686018427387904"),
    PARSE("ne_minus_1", make_ne_m1, NULL, DS_ERR_FORMAT, "output_norm.weight", "18446744073709551615"),
    PARSE("type_4", make_type4, NULL, DS_ERR_UNSUPPORTED, "output_norm.weight", "type id 4"),
    PARSE("type_31", make_type31, NULL, DS_ERR_UNSUPPORTED, "output_norm.weight", "type id 31"),
    PARSE("type_39", make_type39, NULL, DS_ERR_UNSUPPORTED, "output_norm.weight", "type id 39"),
    PARSE("type_ffffffff", make_type_max, NULL, DS_ERR_UNSUPPORTED, "output_norm.weight", "type id 4294967295"),
    PARSE("q4_k_ne0_100", make_q4k_100, NULL, DS_ERR_FORMAT, "odd.q4k", "block size 256"),
    PARSE("offset_misaligned", make_off_misaligned, NULL, DS_ERR_FORMAT, "output.weight", "offset 2049"),
    PARSE("offset_wraps", make_off_wrap, NULL, DS_ERR_FORMAT, "output.weight", "runs past the end"),
    PARSE("tensors_same_offset", make_overlap_same, NULL, DS_ERR_FORMAT, "output.weight", "overlap"),
    PARSE("tensors_overlap_partial", make_overlap_partial, NULL, DS_ERR_FORMAT, "output_norm.weight", "overlap"),
    PARSE("tensor_past_eof", make_past_eof, NULL, DS_ERR_FORMAT, "blk.1.ffn_down_shexp.weight", "runs past the end"),
    PARSE("tensor_name_64_bytes", make_tname_64, NULL, DS_ERR_FORMAT, "tensor record 1", "63"),
    PARSE("tensor_name_with_nul", make_tname_nul, NULL, DS_ERR_FORMAT, "tensor record 1", "UTF-8"),
    PARSE("tensor_name_empty", make_tname_empty, NULL, DS_ERR_FORMAT, "tensor record 1", "empty"),
    PARSE("tensor_name_not_utf8", make_tname_bad_utf8, NULL, DS_ERR_FORMAT, "tensor record 1", "UTF-8"),
    PARSE("tensor_name_length_huge", make_tname_len_huge, NULL, DS_ERR_FORMAT, "tensor record 1", "string length"),
    PARSE("duplicate_tensor_name", make_dup_tname, NULL, DS_ERR_FORMAT, "duplicate tensor name 'output.weight'", NULL),
    /* model level (through ds_model_data_load) */
    MODEL("arch_unknown", make_arch_unknown, DS_ERR_UNSUPPORTED, "mamba9", "unknown"),
    MODEL("arch_llama", make_arch_llama, DS_ERR_UNSUPPORTED, "'llama'", "not supported"),
    MODEL("arch_with_nul", make_arch_nul, DS_ERR_UNSUPPORTED, "deepseek2?x", NULL),
    MODEL("arch_missing", make_arch_missing, DS_ERR_FORMAT, "general.architecture", "missing"),
    MODEL("arch_not_string", make_arch_u32, DS_ERR_FORMAT, "general.architecture", "STRING"),
    MODEL("missing_tensor", make_missing_tensor, DS_ERR_FORMAT, "blk.1.ffn_down_exps.weight", "missing"),
    MODEL("missing_output_norm", make_missing_norm, DS_ERR_FORMAT, "output_norm.weight", "missing"),
    MODEL("missing_token_embd", make_missing_embd, DS_ERR_FORMAT, "token_embd.weight", "missing"),
    MODEL("wrong_shape", make_wrong_shape, DS_ERR_FORMAT, "blk.0.attn_kv_a_mqa.weight", "shape"),
    MODEL("wrong_shape_experts", make_wrong_shape_3d, DS_ERR_FORMAT, "blk.1.ffn_up_exps.weight", "shape"),
    MODEL("wrong_shape_transposed", make_wrong_shape_transposed, DS_ERR_FORMAT, "blk.0.attn_output.weight", "shape"),
    MODEL("split_k_b_not_transposed", make_split_kb_shape, DS_ERR_FORMAT, "blk.0.attn_k_b.weight", "shape"),
    /* known GGUF types without kernels: the loader names the tensor and the type */
    MODEL("tensor_type_iq2_xxs", make_iq2_xxs_tensor, DS_ERR_UNSUPPORTED, "blk.0.ffn_down.weight", "IQ2_XXS"),
    MODEL("tensor_type_q8_k", make_q8_k_tensor, DS_ERR_UNSUPPORTED, "token_embd.weight", "Q8_K"),
    MODEL("norm_not_f32", make_norm_f16, DS_ERR_UNSUPPORTED, "blk.1.attn_norm.weight", "F16"),
    MODEL("missing_hparam", make_missing_hparam, DS_ERR_FORMAT, "deepseek2.embedding_length", "missing"),
    MODEL("missing_kv_lora_rank", make_missing_kv_lora, DS_ERR_FORMAT, "deepseek2.attention.kv_lora_rank", "missing"),
    MODEL("missing_rms_eps", make_missing_eps, DS_ERR_FORMAT, "layer_norm_rms_epsilon", "missing"),
    MODEL("expert_used_gt_count", make_used_gt_count, DS_ERR_FORMAT, "expert_used_count", "5"),
    MODEL("hparam_string", make_hparam_string, DS_ERR_FORMAT, "deepseek2.block_count", "STRING"),
    MODEL("hparam_negative", make_hparam_negative, DS_ERR_FORMAT, "deepseek2.block_count", "negative"),
    MODEL("hparam_over_32_bits", make_hparam_u64_big, DS_ERR_FORMAT, "deepseek2.context_length", "32 bits"),
    MODEL("head_count_0", make_heads_zero, DS_ERR_FORMAT, "head_count", "out of range"),
    MODEL("block_count_100000", make_layers_huge, DS_ERR_FORMAT, "block_count", "out of range"),
    MODEL("key_length_not_above_rope", make_key_len_small, DS_ERR_FORMAT, "key length 4", NULL),
    MODEL("vocab_size_mismatch", make_vocab_mismatch, DS_ERR_FORMAT, "vocab_size", "token_embd.weight"),
    MODEL("both_attn_q_forms", make_both_q, DS_ERR_FORMAT, "attn_q_a", NULL),
    MODEL("no_attn_kv_b", make_no_kvb, DS_ERR_FORMAT, "attn_kv_b", NULL),
    MODEL("split_missing_v_b", make_split_no_vb, DS_ERR_FORMAT, "blk.1.attn_v_b.weight", "missing"),
    MODEL("gating_func_3", make_gating_3, DS_ERR_UNSUPPORTED, "expert_gating_func", NULL),
    MODEL("rope_scaling_linear", make_rope_linear, DS_ERR_UNSUPPORTED, "rope.scaling.type", "linear"),
    MODEL("rms_eps_nan", make_eps_nan, DS_ERR_FORMAT, "layer_norm_rms_epsilon", "finite"),
    MODEL("leading_dense_gt_layers", make_dense_gt_layers, DS_ERR_FORMAT, "leading_dense_block_count", NULL),
    MODEL("groups_not_divisor", make_groups_not_divisor, DS_ERR_FORMAT, "not divisible by 3 groups", NULL),
    MODEL("q_lora_rank_missing", make_qlora_no_rank, DS_ERR_FORMAT, "q_lora_rank", NULL),
    MODEL("yarn_without_factor", make_yarn_no_factor, DS_ERR_FORMAT, "deepseek2.rope.scaling.factor", "missing"),
    MODEL("rope_dim_odd", make_rope_odd, DS_ERR_FORMAT, "rope", NULL),
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

static void expect_msg(const char *msg, const bad_case *c)
{
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    assert_contains(msg, c->substr);
    if (c->substr2)
        assert_contains(msg, c->substr2);
}

/* What a case holds, released by the teardown even when an assertion jumps out. */
static struct {
    gguf_builder *b;
    uint8_t *buf, *copy;
    gguf_file f;
    ds_model_data md;
    ds_model *m;
    char path[512];
} g_cur;

static int case_setup(void **state)
{
    (void)state;
    memset(&g_cur, 0, sizeof g_cur);
    return 0;
}

static int case_teardown(void **state)
{
    (void)state;
    ds_model_close(g_cur.m);
    ds_model_data_free(&g_cur.md);
    gguf_free(&g_cur.f);
    free(g_cur.copy);
    free(g_cur.buf);
    gb_free(g_cur.b);
    if (g_cur.path[0])
        unlink(g_cur.path);
    memset(&g_cur, 0, sizeof g_cur);
    return 0;
}

static void run_bad_case(void **state)
{
    const bad_case *c = *state;
    g_cur.b = gb_new();
    c->make(g_cur.b);
    size_t n = 0;
    g_cur.buf = gb_build(g_cur.b, &n);
    size_t keep = c->cut ? c->cut(g_cur.b, gb_get_layout(g_cur.b)) : n;
    assert_true(keep <= n);
    g_cur.copy = exact_copy(g_cur.buf, keep);

    /* white box */
    ds_err e;
    ds_err_clear(&e);
    ds_status s = gguf_parse(&g_cur.f, g_cur.copy, keep, &e);
    if (!c->model_level) {
        if (s != c->status)
            print_error("%s: gguf_parse returned %d (%s), expected %d\n", c->name, s, e.msg, c->status);
        assert_int_equal(s, c->status);
        assert_int_equal(e.status, c->status);
        expect_msg(e.msg, c);
        assert_gguf_empty(&g_cur.f);
    } else {
        if (s != DS_OK)
            print_error("%s: gguf_parse failed: %s\n", c->name, e.msg);
        assert_int_equal(s, DS_OK);
        ds_err_clear(&e);
        s = ds_model_data_load(&g_cur.md, &g_cur.f, false, &e);
        if (s != c->status)
            print_error("%s: ds_model_data_load returned %d (%s), expected %d\n", c->name, s, e.msg,
                        c->status);
        assert_int_equal(s, c->status);
        expect_msg(e.msg, c);
        assert_null(g_cur.md.w.layers);
        ds_model_data_free(&g_cur.md);
        gguf_free(&g_cur.f);
    }

    /* public path, from a file, in two load modes */
    tmp_path(g_cur.path, sizeof g_cur.path, c->name);
    assert_int_equal(gb_write_bytes(g_cur.path, g_cur.buf, keep), 0);
    for (uint32_t mode = DS_LOAD_MMAP; mode <= DS_LOAD_READ; mode++) {
        ds_model_params p;
        assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
        p.load_mode = mode;
        ds_model *m = (ds_model *)&p; /* must be reset to NULL */
        long h0 = heap_in_use();
        s = ds_model_open(&m, g_cur.path, &p);
        long h1 = heap_in_use();
        if (s == DS_OK) {
            g_cur.m = m;
            print_error("%s: ds_model_open succeeded, expected %d\n", c->name, c->status);
            fail();
        }
        if (s != c->status)
            print_error("%s: ds_model_open returned %d (%s), expected %d\n", c->name, s,
                        ds_last_error(), c->status);
        assert_int_equal(s, c->status);
        assert_null(m);
        expect_msg(ds_last_error(), c);
        assert_contains(ds_last_error(), g_cur.path);
        if (h0 != h1)
            print_error("%s: live allocations %ld -> %ld after a failed open\n", c->name, h0, h1);
        assert_int_equal(h0, h1);
    }
}

/* ---- truncation sweep ------------------------------------------------------------------------- */

static void sweep_parse(gguf_builder *b)
{
    gb_set_trailing_pad(b, false);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    for (size_t len = 0; len <= n; len++) {
        uint8_t *copy = exact_copy(buf, len);
        gguf_file f;
        ds_err e;
        ds_err_clear(&e);
        ds_status s = gguf_parse(&f, copy, len, &e);
        if (len < n && s != DS_ERR_FORMAT) {
            print_error("prefix %zu of %zu: gguf_parse returned %d (%s)\n", len, n, s, e.msg);
            fail();
        }
        if (len == n) {
            assert_int_equal(s, DS_OK);
            ds_model_data md;
            assert_int_equal(ds_model_data_load(&md, &f, false, &e), DS_OK);
            ds_model_data_free(&md);
            gguf_free(&f);
        } else {
            assert_true(e.msg[0] != '\0');
            assert_gguf_empty(&f);
        }
        free(copy);
    }
    free(buf);
}

static void test_truncation_sweep_parse(void **state)
{
    (void)state;
    gb_ds2_config c;
    gguf_builder *b = gb_new();
    gb_ds2_small(&c);
    gb_add_ds2(b, &c);
    add_all_types(b);
    sweep_parse(b);
    gb_free(b);
    /* the larger default model with q-LoRA, split kv_b, Q8_0 */
    b = gb_new();
    gb_ds2_default(&c);
    c.kv_split = true;
    c.q_lora_rank = 32;
    c.exp_probs_b = true;
    c.matrix_type = GB_T_Q8_0;
    gb_add_ds2(b, &c);
    sweep_parse(b);
    gb_free(b);
}

static void test_truncation_sweep_open(void **state)
{
    (void)state;
    gb_ds2_config c;
    gb_ds2_small(&c);
    gguf_builder *b = gb_new();
    gb_add_ds2(b, &c);
    gb_set_trailing_pad(b, false);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    assert_true(n < 16384); /* "a file of a few KB" */
    char path[512];
    tmp_path(path, sizeof path, "sweep.gguf");
    assert_int_equal(gb_write_bytes(path, buf, n), 0);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    size_t failures = 0;
    long h0 = 0;
    for (size_t len = n + 1; len-- > 0;) {
        assert_int_equal(ftruncate(fd, (off_t)len), 0);
        ds_model *m = NULL;
        if (len == n - 1)
            h0 = heap_in_use();
        ds_status s = ds_model_open(&m, path, NULL);
        if (len == n) {
            if (s != DS_OK)
                print_error("full file: %s\n", ds_last_error());
            assert_int_equal(s, DS_OK);
            ds_model_info info;
            info.struct_size = sizeof info;
            assert_int_equal(ds_model_info_get(m, &info), DS_OK);
            assert_int_equal(info.file_size, n);
            ds_model_close(m);
            continue;
        }
        if (s != DS_ERR_FORMAT || m != NULL || ds_last_error()[0] == '\0') {
            if (failures++ < 10)
                print_error("prefix %zu of %zu: status %d, message '%s'\n", len, n, s, ds_last_error());
        }
    }
    long h1 = heap_in_use();
    close(fd);
    assert_int_equal(failures, 0);
    assert_int_equal(h0, h1);
    free(buf);
    gb_free(b);
}

/* ---- the builder itself --------------------------------------------------------------------- */

/* A hand-checked byte image: the builder must write exactly the GGUF layout. */
static void test_builder_bytes(void **state)
{
    (void)state;
    gguf_builder *b = gb_new();
    gb_kv_u8(b, "k", 7);
    gb_tensor_add(b, "t", GB_T_F32, 1, (const uint64_t[]){2});
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    static const uint8_t want[] = {
        'G', 'G', 'U', 'F', 3, 0, 0, 0,                 /* magic, version */
        1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, /* tensors, kvs */
        1, 0, 0, 0, 0, 0, 0, 0, 'k', 0, 0, 0, 0, 7,     /* "k" UINT8 7 */
        1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0,        /* "t" n_dims 1 */
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             /* ne 2, F32 */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* offset 0 */
    };
    assert_int_equal(sizeof want, 71);
    assert_int_equal(n, 96 + 32); /* 71 bytes padded to 96, 8 data bytes padded to 32 */
    assert_memory_equal(buf, want, sizeof want);
    for (size_t i = sizeof want; i < 96; i++)
        assert_int_equal(buf[i], 0);
    assert_int_equal(gb_get_layout(b)->data_start, 96);
    assert_memory_equal(buf + 96, gb_tensor_at(b, 0)->data, 8);
    float v[2];
    memcpy(v, buf + 96, 8);
    assert_true(v[0] >= -1.0f && v[0] <= 1.0f && v[0] != v[1]);
    for (size_t i = 104; i < n; i++)
        assert_int_equal(buf[i], 0);
    free(buf);
    gb_free(b);
}

int main(void)
{
    const struct CMUnitTest valid[] = {
        cmocka_unit_test(test_builder_bytes),
        cmocka_unit_test(test_valid_all_types),
        cmocka_unit_test(test_valid_no_tensors),
        cmocka_unit_test(test_valid_v2_alignment_names),
        cmocka_unit_test(test_ds2_combined_kv_b),
        cmocka_unit_test(test_ds2_split_kv_b_qlora_v3),
        cmocka_unit_test(test_ds2_split_kv_b_lite),
        cmocka_unit_test(test_ds2_dense_and_defaults),
        cmocka_unit_test(test_truncation_sweep_parse),
        cmocka_unit_test(test_truncation_sweep_open),
    };
    struct CMUnitTest bad[N_CASES];
    for (size_t i = 0; i < N_CASES; i++) {
        memset(&bad[i], 0, sizeof bad[i]);
        bad[i].name = k_cases[i].name;
        bad[i].test_func = run_bad_case;
        bad[i].initial_state = (void *)&k_cases[i];
        bad[i].setup_func = case_setup;
        bad[i].teardown_func = case_teardown;
    }
    int fails = 0;
    fails += _cmocka_run_group_tests("gguf_valid", valid, sizeof valid / sizeof valid[0],
                                     make_tmpdir, remove_tmpdir);
    fails += _cmocka_run_group_tests("gguf_malformed", bad, N_CASES, make_tmpdir, remove_tmpdir);
    return fails ? 1 : 0;
}
