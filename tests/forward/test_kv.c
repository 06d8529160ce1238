/* tests/forward/test_kv.c — lib/kv: context full, truncation, f16/bf16 round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kv/kv_cache.h"

#include <math.h>
#include <string.h>

enum { NL = 2, NCTX = 4, DC = 6, DR = 2, W = DC + DR };

static void fill_rows(float *c, float *k, uint32_t n, float base)
{
    for (uint32_t j = 0; j < n; j++) {
        for (int i = 0; i < DC; i++)
            c[j * DC + i] = base + (float)j + 0.125f * (float)i;
        for (int i = 0; i < DR; i++)
            k[j * DR + i] = -base - (float)j - 0.25f * (float)i;
    }
}

static void test_create_and_sizes(void **state)
{
    (void)state;
    ds_kv_cache *kv = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_kv_create(&kv, NL, NCTX, DC, DR, DS_KV_F16, &err), DS_OK);
    assert_int_equal(ds_kv_pos(kv), 0);
    assert_int_equal(ds_kv_n_ctx(kv), NCTX);
    assert_int_equal(ds_kv_row_width(kv), W);
    assert_int_equal(ds_kv_bytes_per_token(kv), NL * W * 2);
    assert_true(ds_kv_bytes(kv) >= (uint64_t)NL * NCTX * W * 2);
    ds_kv_free(kv);

    /* V3 shape: 61 layers x 576 x 2 bytes = 70,272 bytes per token (§2.2) */
    assert_int_equal(ds_kv_create(&kv, 61, 8, 512, 64, DS_KV_BF16, &err), DS_OK);
    assert_int_equal(ds_kv_bytes_per_token(kv), 70272);
    ds_kv_free(kv);

    /* overflow of the size computation is an error, not a short allocation */
    assert_int_equal(ds_kv_create(&kv, UINT32_MAX, UINT32_MAX, 512, 64, DS_KV_F32, &err),
                     DS_ERR_NO_MEMORY);
    assert_null(kv);
    assert_int_equal(ds_kv_create(&kv, 0, 4, 4, 2, DS_KV_F32, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_kv_create(&kv, 1, 4, 4, 2, (ds_kv_type)7, &err), DS_ERR_INVALID_ARG);
    ds_kv_free(NULL);
}

static void test_context_full(void **state)
{
    (void)state;
    ds_kv_cache *kv = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_kv_create(&kv, NL, NCTX, DC, DR, DS_KV_F32, &err), DS_OK);
    float c[NCTX * DC], k[NCTX * DR];
    for (uint32_t l = 0; l < NL; l++) {
        fill_rows(c, k, NCTX, 10.0f * (float)(l + 1));
        assert_int_equal(ds_kv_write(kv, l, 0, NCTX, c, DC, k, DR, &err), DS_OK);
    }
    assert_int_equal(ds_kv_commit(kv, NCTX, &err), DS_OK);
    assert_int_equal(ds_kv_check_room(kv, 0, &err), DS_OK);
    assert_int_equal(ds_kv_check_room(kv, 1, &err), DS_ERR_CONTEXT_FULL);
    assert_true(strstr(err.msg, "context full") != NULL);

    float before[NL * NCTX * W], after[NL * NCTX * W];
    for (uint32_t l = 0; l < NL; l++)
        assert_true(ds_kv_read_f32(kv, l, 0, NCTX, before + l * NCTX * W));

    /* writes that would pass n_ctx fail before writing anything: row 3 of layer 0 and
     * row 0 of layer 1 (the memory right after layer 0) are untouched */
    float z[2 * DC], zk[2 * DR];
    for (int i = 0; i < 2 * DC; i++)
        z[i] = 999.0f;
    for (int i = 0; i < 2 * DR; i++)
        zk[i] = 999.0f;
    assert_int_equal(ds_kv_write(kv, 0, NCTX - 1, 2, z, DC, zk, DR, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_kv_write(kv, NL - 1, NCTX - 1, 2, z, DC, zk, DR, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_kv_write(kv, NL - 1, NCTX, 1, z, DC, zk, DR, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_kv_write(kv, 0, UINT32_MAX, 2, z, DC, zk, DR, &err), DS_ERR_CONTEXT_FULL);
    assert_int_equal(ds_kv_write(kv, NL, 0, 1, z, DC, zk, DR, &err), DS_ERR_INVALID_ARG);
    for (uint32_t l = 0; l < NL; l++)
        assert_true(ds_kv_read_f32(kv, l, 0, NCTX, after + l * NCTX * W));
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(ds_kv_pos(kv), NCTX);

    /* reads past the end are refused */
    assert_false(ds_kv_read_f32(kv, 0, 0, NCTX + 1, after));
    assert_false(ds_kv_read_f32(kv, NL, 0, 1, after));
    assert_null(ds_kv_rows_f32(kv, 0, NCTX));
    assert_non_null(ds_kv_rows_f32(kv, 1, NCTX - 1));
    assert_float_equal(ds_kv_rows_f32(kv, 1, 2)[0], 22.0f, 0.0); /* layer 1 base 20, row 2 */
    assert_float_equal(ds_kv_rows_f32(kv, 1, 2)[DC], -22.0f, 0.0);
    assert_int_equal(ds_kv_commit(kv, NCTX + 1, &err), DS_ERR_CONTEXT_FULL);
    ds_kv_free(kv);
}

static void test_truncate(void **state)
{
    (void)state;
    ds_kv_cache *kv = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_kv_create(&kv, NL, NCTX, DC, DR, DS_KV_F32, &err), DS_OK);
    float c[NCTX * DC], k[NCTX * DR];
    fill_rows(c, k, 3, 1.0f);
    for (uint32_t l = 0; l < NL; l++)
        assert_int_equal(ds_kv_write(kv, l, 0, 3, c, DC, k, DR, &err), DS_OK);
    assert_int_equal(ds_kv_commit(kv, 3, &err), DS_OK);
    assert_int_equal(ds_kv_truncate(kv, 4, &err), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_kv_pos(kv), 3);
    assert_int_equal(ds_kv_truncate(kv, 1, &err), DS_OK);
    assert_int_equal(ds_kv_pos(kv), 1);
    assert_int_equal(ds_kv_check_room(kv, 3, &err), DS_OK);
    assert_int_equal(ds_kv_check_room(kv, 4, &err), DS_ERR_CONTEXT_FULL);
    /* rewrite from position 1: row 0 is kept, rows 1.. replaced */
    fill_rows(c, k, 3, 50.0f);
    for (uint32_t l = 0; l < NL; l++)
        assert_int_equal(ds_kv_write(kv, l, 1, 3, c, DC, k, DR, &err), DS_OK);
    assert_int_equal(ds_kv_commit(kv, 4, &err), DS_OK);
    float row[W];
    assert_true(ds_kv_read_f32(kv, 0, 0, 1, row));
    assert_float_equal(row[0], 1.0f, 0.0);
    assert_true(ds_kv_read_f32(kv, 0, 1, 2, row));
    assert_float_equal(row[0], 50.0f, 0.0);
    assert_int_equal(ds_kv_truncate(kv, 0, &err), DS_OK);
    assert_int_equal(ds_kv_pos(kv), 0);
    ds_kv_free(kv);
}

static void roundtrip(ds_kv_type type, double rel_tol)
{
    ds_kv_cache *kv = NULL;
    ds_err err;
    ds_err_clear(&err);
    assert_int_equal(ds_kv_create(&kv, 1, 3, DC, DR, type, &err), DS_OK);
    assert_null(ds_kv_rows_f32(kv, 0, 0));
    /* exactly representable values come back exactly */
    float c[3 * DC] = {0.5f, -1.25f, 3.0f, 0.0f, -0.0f, 1024.0f};
    float k[3 * DR] = {0.75f, -2.0f};
    /* others within the format's precision */
    for (int i = DC; i < 3 * DC; i++)
        c[i] = (float)sin(0.7 * i) * (float)(1 + i);
    for (int i = DR; i < 3 * DR; i++)
        k[i] = (float)cos(1.3 * i) / (float)(1 + i);
    assert_int_equal(ds_kv_write(kv, 0, 0, 3, c, DC, k, DR, &err), DS_OK);
    float out[3 * W];
    assert_true(ds_kv_read_f32(kv, 0, 0, 3, out));
    for (int i = 0; i < 6; i++)
        assert_float_equal(out[i], c[i], 0.0);
    assert_float_equal(out[DC], 0.75f, 0.0);
    assert_float_equal(out[DC + 1], -2.0f, 0.0);
    for (int j = 1; j < 3; j++) {
        for (int i = 0; i < DC; i++)
            assert_float_equal(out[j * W + i], c[j * DC + i], rel_tol * fabsf(c[j * DC + i]));
        for (int i = 0; i < DR; i++)
            assert_float_equal(out[j * W + DC + i], k[j * DR + i], rel_tol * fabsf(k[j * DR + i]));
    }
    ds_kv_free(kv);
}

static void test_f16_roundtrip(void **state)
{
    (void)state;
    roundtrip(DS_KV_F16, 1.0 / 2048.0);
}

static void test_bf16_roundtrip(void **state)
{
    (void)state;
    roundtrip(DS_KV_BF16, 1.0 / 256.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_sizes),
        cmocka_unit_test(test_context_full),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_f16_roundtrip),
        cmocka_unit_test(test_bf16_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
