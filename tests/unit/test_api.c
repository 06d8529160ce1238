/*
 * tests/unit/test_api.c — the conventions of the public API (include/deepseek/deepseek.h),
 * tested through the shared library only.
 *
 * Status strings, version, NULL arguments of every function, struct_size handling of params
 * and info structs, per-thread ds_last_error, per-handle errmsg, log levels delivered to the
 * callback, silence on stdout/stderr, ds_model_meta_string size queries, and the three load
 * modes giving the same model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deepseek/deepseek.h"
#include "gguf_builder.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define assert_contains(hay, needle)                                                         \
    do {                                                                                     \
        const char *h_ = (hay), *n_ = (needle);                                              \
        if (!h_ || !strstr(h_, n_)) {                                                        \
            print_error("message \"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_); \
            fail();                                                                          \
        }                                                                                    \
    } while (0)

static char g_dir[256];
static char g_model[300];     /* a valid deepseek2 model */
static char g_trunc[300];     /* the same, truncated inside the tensor records */
static char g_empty[300];     /* a 0-byte file */
#define LONG_ARRAY_N 1000

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/ds-test-api-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_model, sizeof g_model, "%s/model.gguf", g_dir);
    snprintf(g_trunc, sizeof g_trunc, "%s/trunc.gguf", g_dir);
    snprintf(g_empty, sizeof g_empty, "%s/empty.gguf", g_dir);
    gguf_builder *b = gb_new();
    gb_ds2_config c;
    gb_ds2_default(&c);
    gb_add_ds2(b, &c);
    int32_t *v = malloc(LONG_ARRAY_N * sizeof *v);
    if (!v)
        return -1;
    for (int i = 0; i < LONG_ARRAY_N; i++)
        v[i] = i * 7 - 3000;
    gb_kv_arr_i32(b, "test.long_array", v, LONG_ARRAY_N);
    free(v);
    size_t n = 0;
    uint8_t *buf = gb_build(b, &n);
    int rc = gb_write_bytes(g_model, buf, n);
    rc |= gb_write_bytes(g_trunc, buf, gb_get_layout(b)->tensor_rec_off[3] + 10);
    rc |= gb_write_bytes(g_empty, buf, 0);
    free(buf);
    gb_free(b);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static ds_model *open_model(void)
{
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, g_model, NULL);
    if (s != DS_OK)
        print_error("ds_model_open(%s): %s\n", g_model, ds_last_error());
    assert_int_equal(s, DS_OK);
    assert_non_null(m);
    return m;
}

/* ---- status strings and version ------------------------------------------------------------ */

static const ds_status k_all_status[] = {
    DS_OK, DS_DONE, DS_AGAIN, DS_ERR_INVALID_ARG, DS_ERR_IO, DS_ERR_FORMAT, DS_ERR_UNSUPPORTED,
    DS_ERR_NO_MEMORY, DS_ERR_CONTEXT_FULL, DS_ERR_CANCELLED, DS_ERR_BUFFER_TOO_SMALL,
    DS_ERR_NOT_FOUND, DS_ERR_STATE, DS_ERR_MODEL_MISMATCH, DS_ERR_INTERNAL,
};
#define N_STATUS (sizeof k_all_status / sizeof k_all_status[0])

static void test_status_strings(void **state)
{
    (void)state;
    /* the ABI values */
    assert_int_equal(DS_OK, 0);
    assert_int_equal(DS_DONE, 1);
    assert_int_equal(DS_AGAIN, 2);
    for (int i = 3; i < (int)N_STATUS; i++)
        assert_int_equal(k_all_status[i], -(i - 2));
    for (size_t i = 0; i < N_STATUS; i++) {
        const char *s = ds_status_string(k_all_status[i]);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_string_not_equal(s, "unknown status");
        assert_ptr_equal(ds_status_string(k_all_status[i]), s); /* static text */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, ds_status_string(k_all_status[j]));
    }
    static const int unknown[] = {3, 4, 100, -13, -14, -1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_string_equal(ds_status_string((ds_status)unknown[i]), "unknown status");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(ds_version(), DS_VERSION_NUMBER);
    assert_int_equal(DS_VERSION_NUMBER,
                     DS_VERSION_MAJOR * 10000 + DS_VERSION_MINOR * 100 + DS_VERSION_PATCH);
    assert_string_equal(ds_version_string(), DS_VERSION_STRING);
    unsigned a = 99, b = 99, c = 99;
    char tail = 0;
    assert_int_equal(sscanf(ds_version_string(), "%u.%u.%u%c", &a, &b, &c, &tail), 3);
    assert_int_equal(a, DS_VERSION_MAJOR);
    assert_int_equal(b, DS_VERSION_MINOR);
    assert_int_equal(c, DS_VERSION_PATCH);
    assert_true(DS_VERSION_MINOR < 100 && DS_VERSION_PATCH < 100);
}

/* ---- NULL arguments -------------------------------------------------------------------------- */

/* Call `expr`, expect DS_ERR_INVALID_ARG and a fresh, non-empty thread message. */
#define EXPECT_INVALID(expr)                                                           \
    do {                                                                               \
        ds_model *junk_ = NULL;                                                        \
        ds_model_open(&junk_, "/nonexistent/marker", NULL); /* sets a known message */ \
        ds_status st_ = (expr);                                                        \
        if (st_ != DS_ERR_INVALID_ARG)                                                 \
            print_error("%s returned %d\n", #expr, st_);                               \
        assert_int_equal(st_, DS_ERR_INVALID_ARG);                                     \
        assert_true(ds_last_error()[0] != '\0');                                       \
        if (strstr(ds_last_error(), "/nonexistent/marker"))                            \
            print_error("%s left ds_last_error() unchanged\n", #expr);                 \
        assert_null(strstr(ds_last_error(), "/nonexistent/marker"));                   \
    } while (0)

static void test_null_args(void **state)
{
    (void)state;
    ds_model *m = open_model();
    ds_model_params p;
    ds_model_info info;
    ds_tensor_info ti;
    ds_meta_type t;
    int64_t iv;
    double dv;
    uint64_t idx;
    char buf[16];
    size_t need;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    memset(&ti, 0, sizeof ti);
    ti.struct_size = sizeof ti;

    EXPECT_INVALID(ds_model_default_params(NULL, sizeof p));
    EXPECT_INVALID(ds_model_open(NULL, g_model, NULL));
    ds_model *out = (ds_model *)&p;
    EXPECT_INVALID(ds_model_open(&out, NULL, NULL));
    assert_null(out);
    EXPECT_INVALID(ds_set_log_callback(NULL, DS_LOG_ERROR, NULL, NULL));
    EXPECT_INVALID(ds_model_info_get(NULL, &info));
    EXPECT_INVALID(ds_model_info_get(m, NULL));
    EXPECT_INVALID(ds_model_meta_type(NULL, "general.architecture", &t));
    EXPECT_INVALID(ds_model_meta_type(m, NULL, &t));
    EXPECT_INVALID(ds_model_meta_type(m, "general.architecture", NULL));
    EXPECT_INVALID(ds_model_meta_int(NULL, "deepseek2.block_count", &iv));
    EXPECT_INVALID(ds_model_meta_int(m, NULL, &iv));
    EXPECT_INVALID(ds_model_meta_int(m, "deepseek2.block_count", NULL));
    EXPECT_INVALID(ds_model_meta_float(NULL, "deepseek2.block_count", &dv));
    EXPECT_INVALID(ds_model_meta_float(m, NULL, &dv));
    EXPECT_INVALID(ds_model_meta_float(m, "deepseek2.block_count", NULL));
    EXPECT_INVALID(ds_model_meta_string(NULL, "general.architecture", buf, sizeof buf, &need));
    EXPECT_INVALID(ds_model_meta_string(m, NULL, buf, sizeof buf, &need));
    EXPECT_INVALID(ds_model_meta_string(m, "general.architecture", NULL, 8, &need));
    EXPECT_INVALID(ds_model_tensor_info(NULL, 0, &ti));
    EXPECT_INVALID(ds_model_tensor_info(m, 0, NULL));
    EXPECT_INVALID(ds_model_find_tensor(NULL, "output.weight", &idx));
    EXPECT_INVALID(ds_model_find_tensor(m, NULL, &idx));
    EXPECT_INVALID(ds_model_find_tensor(m, "output.weight", NULL));
    /* functions without a status */
    assert_int_equal(ds_model_meta_count(NULL), 0);
    assert_null(ds_model_meta_key(NULL, 0));
    assert_non_null(ds_model_errmsg(NULL));
    /* destructors accept NULL */
    ds_model_close(NULL);
    ds_free(NULL);
    /* the model is still fine after all that */
    assert_int_equal(ds_model_meta_int(m, "deepseek2.block_count", &iv), DS_OK);
    assert_int_equal(iv, 2);
    ds_model_close(m);
}

/* ---- struct_size --------------------------------------------------------------------------- */

static void test_params_struct_size(void **state)
{
    (void)state;
    /* an older host: its struct ends before log_fn */
    const size_t old = offsetof(ds_model_params, log_fn);
    unsigned char raw[sizeof(ds_model_params) + 16];
    memset(raw, 0xAB, sizeof raw);
    ds_model_params *p = (ds_model_params *)(void *)raw;
    assert_int_equal(ds_model_default_params(p, old), DS_OK);
    assert_int_equal(p->struct_size, old);
    assert_int_equal(p->load_mode, DS_LOAD_MMAP);
    assert_int_equal(p->n_threads, 0);
    assert_int_equal(p->precision, DS_PRECISION_FAST);
    assert_int_equal(p->vocab_only, 0);
    assert_int_equal(p->log_level, DS_LOG_WARN);
    for (size_t i = old; i < sizeof raw; i++)
        assert_int_equal(raw[i], 0xAB);
    /* the bytes past struct_size are garbage (0xAB...): a library reading log_fn from them
     * would call a wild pointer on the first DEBUG/INFO message */
    p->log_level = DS_LOG_DEBUG;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, g_model, p);
    if (s != DS_OK)
        print_error("%s\n", ds_last_error());
    assert_int_equal(s, DS_OK);
    int64_t iv;
    assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
    ds_model_close(m);
    /* the smallest struct: struct_size only */
    ds_model_params tiny;
    memset(&tiny, 0xAB, sizeof tiny);
    assert_int_equal(ds_model_default_params(&tiny, sizeof(uint32_t)), DS_OK);
    assert_int_equal(tiny.struct_size, sizeof(uint32_t));
    assert_int_equal(tiny.load_mode, 0xABABABABu);
    assert_int_equal(ds_model_open(&m, g_model, &tiny), DS_OK);
    ds_model_close(m);

    /* too small to hold struct_size */
    ds_model_params q;
    memset(&q, 0x5A, sizeof q);
    assert_int_equal(ds_model_default_params(&q, 0), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_default_params(&q, 3), DS_ERR_INVALID_ARG);
    assert_int_equal(q.struct_size, 0x5A5A5A5Au);
    /* params with struct_size 0 (never filled) are rejected */
    assert_int_equal(ds_model_default_params(&q, sizeof q), DS_OK);
    q.struct_size = 0;
    m = (ds_model *)&q;
    assert_int_equal(ds_model_open(&m, g_model, &q), DS_ERR_INVALID_ARG);
    assert_null(m);
    assert_contains(ds_last_error(), "struct_size");
    /* out-of-range fields are rejected */
    assert_int_equal(ds_model_default_params(&q, sizeof q), DS_OK);
    q.load_mode = 3;
    assert_int_equal(ds_model_open(&m, g_model, &q), DS_ERR_INVALID_ARG);
    assert_contains(ds_last_error(), "load_mode");
    assert_int_equal(ds_model_default_params(&q, sizeof q), DS_OK);
    q.precision = 2;
    assert_int_equal(ds_model_open(&m, g_model, &q), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_model_default_params(&q, sizeof q), DS_OK);
    q.n_threads = -1;
    assert_int_equal(ds_model_open(&m, g_model, &q), DS_ERR_INVALID_ARG);
    assert_null(m);
}

static void test_tensor_info_struct_size(void **state)
{
    (void)state;
    ds_model *m = open_model();
    /* an older host: its ds_tensor_info ends before ne[] */
    const size_t old = offsetof(ds_tensor_info, ne);
    unsigned char raw[sizeof(ds_tensor_info) + 16];
    memset(raw, 0xCD, sizeof raw);
    ds_tensor_info *ti = (ds_tensor_info *)(void *)raw;
    ti->struct_size = (uint32_t)old;
    assert_int_equal(ds_model_tensor_info(m, 0, ti), DS_OK);
    assert_int_equal(ti->struct_size, old);
    assert_string_equal(ti->name, "token_embd.weight");
    assert_string_equal(ti->type_name, "F16");
    assert_int_equal(ti->type, 1);
    assert_int_equal(ti->n_dims, 2);
    for (size_t i = old; i < sizeof raw; i++)
        assert_int_equal(raw[i], 0xCD);
    /* the full struct */
    ds_tensor_info full;
    memset(&full, 0, sizeof full);
    full.struct_size = sizeof full;
    assert_int_equal(ds_model_tensor_info(m, 0, &full), DS_OK);
    assert_int_equal(full.ne[0], 32);
    assert_int_equal(full.ne[1], 32);
    assert_int_equal(full.ne[2], 1);
    assert_int_equal(full.ne[3], 1);
    assert_int_equal(full.nbytes, 32 * 32 * 2);
    assert_true(full.offset > 0 && full.offset % 32 == 0);
    /* struct_size 0 and 3 are rejected and nothing else is written */
    memset(raw, 0xCD, sizeof raw);
    ti->struct_size = 0;
    assert_int_equal(ds_model_tensor_info(m, 0, ti), DS_ERR_INVALID_ARG);
    assert_contains(ds_model_errmsg(m), "struct_size");
    for (size_t i = sizeof(uint32_t); i < sizeof raw; i++)
        assert_int_equal(raw[i], 0xCD);
    ti->struct_size = 3;
    assert_int_equal(ds_model_tensor_info(m, 0, ti), DS_ERR_INVALID_ARG);

    /* the same for ds_model_info: an older host without the fields from n_vocab on */
    const size_t iold = offsetof(ds_model_info, n_vocab);
    unsigned char iraw[sizeof(ds_model_info) + 16];
    memset(iraw, 0xEF, sizeof iraw);
    ds_model_info *info = (ds_model_info *)(void *)iraw;
    info->struct_size = (uint32_t)iold;
    assert_int_equal(ds_model_info_get(m, info), DS_OK);
    assert_string_equal(info->architecture, "deepseek2");
    assert_string_equal(info->name, "tiny-ds2");
    assert_true(info->n_tensors > 0);
    for (size_t i = iold; i < sizeof iraw; i++)
        assert_int_equal(iraw[i], 0xEF);
    info->struct_size = 0;
    assert_int_equal(ds_model_info_get(m, info), DS_ERR_INVALID_ARG);
    ds_model_close(m);
}

/* ---- errors per thread and per handle --------------------------------------------------------- */

typedef struct thread_result {
    char before[512];
    char after[512];
    ds_status status;
} thread_result;

static void *thread_b(void *arg)
{
    thread_result *r = arg;
    snprintf(r->before, sizeof r->before, "%s", ds_last_error());
    ds_model *m = NULL;
    r->status = ds_model_open(&m, "/nonexistent/thread-B.gguf", NULL);
    snprintf(r->after, sizeof r->after, "%s", ds_last_error());
    return NULL;
}

static void test_last_error_per_thread(void **state)
{
    (void)state;
    ds_model *m = NULL;
    assert_int_equal(ds_model_open(&m, "/nonexistent/thread-A.gguf", NULL), DS_ERR_IO);
    assert_contains(ds_last_error(), "thread-A");
    thread_result r;
    memset(&r, 0, sizeof r);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_b, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    /* B did not see A's failure, and A does not see B's */
    assert_string_equal(r.before, "");
    assert_int_equal(r.status, DS_ERR_IO);
    assert_contains(r.after, "thread-B");
    assert_null(strstr(r.after, "thread-A"));
    assert_contains(ds_last_error(), "thread-A");
    assert_null(strstr(ds_last_error(), "thread-B"));
}

static void test_errmsg_per_handle(void **state)
{
    (void)state;
    ds_model *a = open_model();
    ds_model *b = open_model();
    assert_string_equal(ds_model_errmsg(a), "");
    assert_string_equal(ds_model_errmsg(b), "");
    int64_t iv;
    assert_int_equal(ds_model_meta_int(a, "missing.key.for.a", &iv), DS_ERR_NOT_FOUND);
    assert_contains(ds_model_errmsg(a), "missing.key.for.a");
    assert_contains(ds_last_error(), "missing.key.for.a");
    assert_string_equal(ds_model_errmsg(b), "");
    ds_tensor_info ti;
    ti.struct_size = sizeof ti;
    assert_int_equal(ds_model_tensor_info(b, 1000000, &ti), DS_ERR_NOT_FOUND);
    assert_contains(ds_model_errmsg(b), "1000000");
    assert_contains(ds_model_errmsg(a), "missing.key.for.a");
    assert_null(strstr(ds_model_errmsg(a), "1000000"));
    uint64_t idx;
    assert_int_equal(ds_model_find_tensor(a, "no.such.tensor", &idx), DS_ERR_NOT_FOUND);
    assert_contains(ds_model_errmsg(a), "no.such.tensor");
    assert_contains(ds_last_error(), "no.such.tensor");
    char small[4];
    assert_int_equal(ds_model_meta_string(b, "general.architecture", small, sizeof small, NULL),
                     DS_ERR_BUFFER_TOO_SMALL);
    assert_contains(ds_model_errmsg(b), "general.architecture");
    ds_model_close(a);
    ds_model_close(b);
}

/* ---- logging ------------------------------------------------------------------------------- */

typedef struct log_rec {
    int count[4];
    int bad_level;
    int newline;
    int total;
    char first_error[512];
    void *expected_ud;
    int wrong_ud;
} log_rec;

static void log_cb(void *ud, ds_log_level level, const char *msg)
{
    log_rec *r = ud;
    if (r->expected_ud && r->expected_ud != ud)
        r->wrong_ud++;
    r->total++;
    if ((int)level < 0 || (int)level > 3) {
        r->bad_level++;
        return;
    }
    r->count[level]++;
    size_t n = strlen(msg);
    if (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        r->newline++;
    if (level == DS_LOG_ERROR && !r->first_error[0])
        snprintf(r->first_error, sizeof r->first_error, "%s", msg);
}

static int max_level_seen(const log_rec *r)
{
    for (int l = 3; l >= 0; l--)
        if (r->count[l])
            return l;
    return -1;
}

static void test_log_levels(void **state)
{
    (void)state;
    for (int lvl = DS_LOG_ERROR; lvl <= DS_LOG_DEBUG; lvl++) {
        log_rec r;
        memset(&r, 0, sizeof r);
        r.expected_ud = &r;
        ds_model_params p;
        assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
        p.log_fn = log_cb;
        p.log_user_data = &r;
        p.log_level = (ds_log_level)lvl;
        /* a failing open: at least one ERROR line naming the problem */
        ds_model *m = NULL;
        assert_int_equal(ds_model_open(&m, g_trunc, &p), DS_ERR_FORMAT);
        assert_true(r.count[DS_LOG_ERROR] >= 1);
        assert_contains(r.first_error, "tensor record 3");
        /* a successful open and a failing lookup */
        assert_int_equal(ds_model_open(&m, g_model, &p), DS_OK);
        int64_t iv;
        assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
        ds_model_close(m);
        if (max_level_seen(&r) > lvl)
            print_error("level %d: got a message at level %d\n", lvl, max_level_seen(&r));
        assert_true(max_level_seen(&r) <= lvl);
        assert_int_equal(r.bad_level, 0);
        assert_int_equal(r.newline, 0);
        assert_int_equal(r.wrong_ud, 0);
        /* the library does report opens at INFO and failures on a handle at DEBUG */
        if (lvl >= DS_LOG_INFO)
            assert_true(r.count[DS_LOG_INFO] >= 1);
        if (lvl >= DS_LOG_DEBUG)
            assert_true(r.count[DS_LOG_DEBUG] >= 1);
    }
}

static void test_set_log_callback(void **state)
{
    (void)state;
    log_rec r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    ds_model_params p;
    assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
    p.log_fn = log_cb;
    p.log_user_data = &r1;
    p.log_level = DS_LOG_DEBUG;
    ds_model *m = NULL;
    assert_int_equal(ds_model_open(&m, g_model, &p), DS_OK);
    int64_t iv;
    int before = r1.total;
    assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
    assert_true(r1.total > before);
    /* switch to r2 at ERROR: DEBUG messages are dropped, r1 hears nothing */
    assert_int_equal(ds_set_log_callback(m, DS_LOG_ERROR, log_cb, &r2), DS_OK);
    before = r1.total;
    assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
    assert_int_equal(r1.total, before);
    assert_int_equal(r2.total, 0);
    /* r2 at DEBUG hears it */
    assert_int_equal(ds_set_log_callback(m, DS_LOG_DEBUG, log_cb, &r2), DS_OK);
    assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
    assert_true(r2.count[DS_LOG_DEBUG] >= 1);
    assert_int_equal(r1.total, before);
    /* silence */
    assert_int_equal(ds_set_log_callback(m, DS_LOG_DEBUG, NULL, NULL), DS_OK);
    int r2_before = r2.total;
    assert_int_equal(ds_model_meta_int(m, "no.such.key", &iv), DS_ERR_NOT_FOUND);
    assert_int_equal(r2.total, r2_before);
    /* unknown levels are rejected */
    assert_int_equal(ds_set_log_callback(m, (ds_log_level)4, log_cb, &r2), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_set_log_callback(m, (ds_log_level)-1, log_cb, &r2), DS_ERR_INVALID_ARG);
    ds_model_close(m);
}

/* Everything the library might print during failures goes to a file; it must stay empty. */
static void test_no_stdio_output(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/stdio.txt", g_dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    int save1 = dup(1), save2 = dup(2);
    assert_true(save1 >= 0 && save2 >= 0);
    assert_true(dup2(fd, 1) >= 0);
    assert_true(dup2(fd, 2) >= 0);

    ds_status st[12];
    int k = 0;
    ds_model *m = NULL;
    ds_model_params p;
    ds_model_default_params(&p, sizeof p);
    p.log_level = DS_LOG_DEBUG; /* verbose, but no callback: silence */
    st[k++] = ds_model_open(&m, "/nonexistent/x.gguf", &p);
    st[k++] = ds_model_open(&m, g_trunc, &p);
    st[k++] = ds_model_open(&m, g_empty, &p);
    st[k++] = ds_model_open(&m, g_dir, &p);
    st[k++] = ds_model_open(&m, NULL, &p);
    st[k++] = ds_model_default_params(NULL, 0);
    st[k++] = ds_model_open(&m, g_model, &p);
    int64_t iv;
    st[k++] = ds_model_meta_int(m, "nope", &iv);
    st[k++] = ds_model_meta_int(m, "general.architecture", &iv);
    char small[2];
    st[k++] = ds_model_meta_string(m, "general.architecture", small, sizeof small, NULL);
    ds_model_close(m);

    fflush(stdout);
    fflush(stderr);
    dup2(save1, 1);
    dup2(save2, 2);
    close(save1);
    close(save2);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    close(fd);
    if (sb.st_size != 0) {
        char text[512] = {0};
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(text, 1, sizeof text - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        print_error("the library wrote %lld bytes to stdout/stderr: %s\n", (long long)sb.st_size, text);
    }
    assert_int_equal(sb.st_size, 0);
    /* and the calls did what they should */
    static const ds_status want[] = {DS_ERR_IO, DS_ERR_FORMAT, DS_ERR_FORMAT, DS_ERR_IO,
                                     DS_ERR_INVALID_ARG, DS_ERR_INVALID_ARG, DS_OK,
                                     DS_ERR_NOT_FOUND, DS_ERR_INVALID_ARG,
                                     DS_ERR_BUFFER_TOO_SMALL};
    assert_int_equal(k, sizeof want / sizeof want[0]);
    for (int i = 0; i < k; i++)
        assert_int_equal(st[i], want[i]);
}

/* ---- metadata text ----------------------------------------------------------------------------- */

static void test_meta_string_sizes(void **state)
{
    (void)state;
    ds_model *m = open_model();
    const char *key = "general.architecture"; /* "deepseek2": 9 bytes */
    size_t need = 0;
    assert_int_equal(ds_model_meta_string(m, key, NULL, 0, &need), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, 10);
    assert_int_equal(ds_model_meta_string(m, key, NULL, 0, NULL), DS_ERR_BUFFER_TOO_SMALL);
    char buf[32];
    /* one byte short: a truncated, NUL-terminated prefix */
    memset(buf, 'x', sizeof buf);
    need = 0;
    assert_int_equal(ds_model_meta_string(m, key, buf, 9, &need), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, 10);
    assert_string_equal(buf, "deepseek");
    assert_int_equal(buf[9], 'x');
    assert_contains(ds_last_error(), key);
    /* capacity 1: just the NUL */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(ds_model_meta_string(m, key, buf, 1, &need), DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'x');
    /* exact and larger */
    memset(buf, 'x', sizeof buf);
    need = 0;
    assert_int_equal(ds_model_meta_string(m, key, buf, 10, &need), DS_OK);
    assert_int_equal(need, 10);
    assert_string_equal(buf, "deepseek2");
    memset(buf, 'x', sizeof buf);
    assert_int_equal(ds_model_meta_string(m, key, buf, sizeof buf, &need), DS_OK);
    assert_string_equal(buf, "deepseek2");
    assert_int_equal(buf[10], 'x'); /* nothing written past the NUL */
    /* numbers */
    assert_int_equal(ds_model_meta_string(m, "deepseek2.block_count", buf, sizeof buf, &need), DS_OK);
    assert_string_equal(buf, "2");
    assert_int_equal(need, 2);
    /* a long array is rendered in full */
    need = 0;
    assert_int_equal(ds_model_meta_string(m, "test.long_array", NULL, 0, &need),
                     DS_ERR_BUFFER_TOO_SMALL);
    assert_true(need > LONG_ARRAY_N * 2);
    char *big = malloc(need);
    assert_non_null(big);
    size_t need2 = 0;
    assert_int_equal(ds_model_meta_string(m, "test.long_array", big, need, &need2), DS_OK);
    assert_int_equal(need2, need);
    assert_int_equal(strlen(big) + 1, need);
    assert_int_equal(big[0], '[');
    char *p = big + 1;
    for (int i = 0; i < LONG_ARRAY_N; i++) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        assert_int_equal(v, i * 7 - 3000);
        assert_int_equal(*end, i + 1 < LONG_ARRAY_N ? ',' : ']');
        p = end + 1;
    }
    assert_int_equal(*p, '\0');
    /* truncated in the middle of the array: still NUL-terminated at capacity - 1 */
    memset(big, 'x', need);
    assert_int_equal(ds_model_meta_string(m, "test.long_array", big, 100, &need2),
                     DS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need2, need);
    assert_int_equal(strlen(big), 99);
    assert_int_equal(big[100], 'x');
    free(big);
    assert_int_equal(ds_model_meta_string(m, "no.such.key", buf, sizeof buf, &need), DS_ERR_NOT_FOUND);
    ds_model_close(m);
}

/* ---- load modes ------------------------------------------------------------------------------ */

static void test_load_modes(void **state)
{
    (void)state;
    ds_model *m[3] = {NULL, NULL, NULL};
    ds_model_info info[3];
    static const uint32_t modes[3] = {DS_LOAD_MMAP, DS_LOAD_READ, DS_LOAD_HUGEPAGES};
    for (int i = 0; i < 3; i++) {
        ds_model_params p;
        assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
        p.load_mode = modes[i];
        ds_status s = ds_model_open(&m[i], g_model, &p);
        if (s != DS_OK)
            print_error("load mode %u: %s\n", modes[i], ds_last_error());
        assert_int_equal(s, DS_OK);
        memset(&info[i], 0, sizeof info[i]);
        info[i].struct_size = sizeof info[i];
        assert_int_equal(ds_model_info_get(m[i], &info[i]), DS_OK);
    }
    struct stat sb;
    assert_int_equal(stat(g_model, &sb), 0);
    assert_int_equal(info[0].file_size, (uint64_t)sb.st_size);
    assert_int_equal(info[0].n_layer, 2);
    for (int i = 1; i < 3; i++) {
        assert_string_equal(info[i].architecture, info[0].architecture);
        assert_string_equal(info[i].name, info[0].name);
        ds_model_info a = info[0], b = info[i];
        a.architecture = b.architecture = NULL;
        a.name = b.name = NULL;
        assert_memory_equal(&a, &b, sizeof a);
        assert_int_equal(ds_model_meta_count(m[i]), ds_model_meta_count(m[0]));
        for (uint64_t k = 0; k < ds_model_meta_count(m[0]); k++) {
            const char *key = ds_model_meta_key(m[0], k);
            assert_string_equal(ds_model_meta_key(m[i], k), key);
            char b0[64], b1[64];
            ds_status s0 = ds_model_meta_string(m[0], key, b0, sizeof b0, NULL);
            ds_status s1 = ds_model_meta_string(m[i], key, b1, sizeof b1, NULL);
            assert_int_equal(s0, s1);
            assert_string_equal(b0, b1);
        }
        for (uint64_t t = 0; t < info[0].n_tensors; t++) {
            ds_tensor_info x, y;
            memset(&x, 0, sizeof x);
            memset(&y, 0, sizeof y);
            x.struct_size = y.struct_size = sizeof x;
            assert_int_equal(ds_model_tensor_info(m[0], t, &x), DS_OK);
            assert_int_equal(ds_model_tensor_info(m[i], t, &y), DS_OK);
            assert_string_equal(x.name, y.name);
            assert_string_equal(x.type_name, y.type_name);
            assert_int_equal(x.type, y.type);
            assert_int_equal(x.n_dims, y.n_dims);
            assert_memory_equal(x.ne, y.ne, sizeof x.ne);
            assert_int_equal(x.offset, y.offset);
            assert_int_equal(x.nbytes, y.nbytes);
        }
    }
    for (int i = 0; i < 3; i++)
        ds_model_close(m[i]);
    /* the failures are the same in every mode */
    for (int i = 0; i < 3; i++) {
        ds_model_params p;
        assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
        p.load_mode = modes[i];
        ds_model *x = NULL;
        assert_int_equal(ds_model_open(&x, g_trunc, &p), DS_ERR_FORMAT);
        assert_contains(ds_last_error(), "tensor record 3");
        assert_int_equal(ds_model_open(&x, g_empty, &p), DS_ERR_FORMAT);
        assert_int_equal(ds_model_open(&x, "/nonexistent/y.gguf", &p), DS_ERR_IO);
        assert_contains(ds_last_error(), "/nonexistent/y.gguf");
        assert_int_equal(ds_model_open(&x, g_dir, &p), DS_ERR_IO);
        assert_null(x);
    }
}

typedef struct load_progress {
    uint64_t calls, last_done, last_total, abort_after;
    bool monotonic;
} load_progress;

static void on_load_progress(void *ud, uint64_t done, uint64_t total)
{
    load_progress *lp = ud;
    if (done < lp->last_done)
        lp->monotonic = false;
    lp->calls++;
    lp->last_done = done;
    lp->last_total = total;
}

static int on_load_abort(void *ud)
{
    load_progress *lp = ud;
    return lp->calls >= lp->abort_after;
}

/* Loading progress reports the file's bytes in every mode; an abort while reading cancels
 * the open cleanly. */
static void test_load_progress_and_abort(void **state)
{
    (void)state;
    struct stat sb;
    assert_int_equal(stat(g_model, &sb), 0);
    static const uint32_t modes[3] = {DS_LOAD_MMAP, DS_LOAD_READ, DS_LOAD_HUGEPAGES};
    for (int i = 0; i < 3; i++) {
        load_progress lp = {0, 0, 0, UINT64_MAX, true};
        ds_model_params p;
        assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
        p.load_mode = modes[i];
        p.progress_fn = on_load_progress;
        p.progress_user_data = &lp;
        ds_model *m = NULL;
        assert_int_equal(ds_model_open(&m, g_model, &p), DS_OK);
        assert_true(lp.calls >= 1);
        assert_true(lp.monotonic);
        assert_int_equal(lp.last_done, (uint64_t)sb.st_size);
        assert_int_equal(lp.last_total, (uint64_t)sb.st_size);
        ds_model_close(m);
    }
    /* abort before the first chunk of a read: cancelled, no handle, a message */
    load_progress lp = {0, 0, 0, 0, true};
    ds_model_params p;
    assert_int_equal(ds_model_default_params(&p, sizeof p), DS_OK);
    p.load_mode = DS_LOAD_READ;
    p.progress_fn = on_load_progress;
    p.progress_user_data = &lp;
    p.abort_fn = on_load_abort;
    p.abort_user_data = &lp;
    ds_model *m = (ds_model *)&lp;
    assert_int_equal(ds_model_open(&m, g_model, &p), DS_ERR_CANCELLED);
    assert_null(m);
    assert_contains(ds_last_error(), "cancelled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_params_struct_size),
        cmocka_unit_test(test_tensor_info_struct_size),
        cmocka_unit_test(test_last_error_per_thread),
        cmocka_unit_test(test_errmsg_per_handle),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_set_log_callback),
        cmocka_unit_test(test_no_stdio_output),
        cmocka_unit_test(test_meta_string_sizes),
        cmocka_unit_test(test_load_modes),
        cmocka_unit_test(test_load_progress_and_abort),
    };
    return cmocka_run_group_tests_name("api", tests, setup, teardown);
}
