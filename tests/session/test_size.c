/*
 * tests/session/test_size.c — session file sizes: prints the bytes per 1,000 tokens of context
 * for the V2-Lite-shaped test model (latent cache row d_c 512 + d_r 64 per layer, as V2-Lite;
 * 2 layers and a small random body), for each KV type, with the raw cache size, the
 * compression ratio, the save/load time and the extrapolation to V2-Lite's 27 layers.
 * Checks that a file is never much larger than the raw rows and that it round-trips.
 */
#include "sess_util.h"

static void measure(ds_model *m, uint32_t kv, size_t n_tok)
{
    ds_session_params p = tu_params((uint32_t)n_tok + 8);
    p.kv_type = kv;
    ds_session *s = tu_open(m, &p);
    int32_t *prompt = malloc(n_tok * sizeof *prompt);
    tu_prompt(prompt, n_tok, 2048, 7);
    tu_feed(s, prompt, n_tok);
    size_t cap = 0, n = 0;
    ds_session_save_size(s, &cap);
    uint8_t *buf = malloc(cap);
    double t0 = tu_now();
    assert_int_equal(ds_session_save_buffer(s, buf, cap, &n), DS_OK);
    double t1 = tu_now();
    ds_session *t = tu_open(m, &p);
    assert_int_equal(ds_session_load_buffer(t, buf, n), DS_OK);
    double t2 = tu_now();
    assert_int_equal(ds_session_n_tokens(t), n_tok);
    ds_model_info info;
    info.struct_size = sizeof info;
    ds_model_info_get(m, &info);
    const size_t es = kv == DS_KV_F32 ? 4 : 2;
    const double row = (double)(info.kv_lora_rank + info.qk_rope_head_dim) * es; /* per layer */
    const double raw = row * info.n_layer * (double)n_tok;
    const double per_layer_1k = (double)n / info.n_layer * 1000.0 / (double)n_tok;
    printf("kv %-4s %5zu tokens x %u layers: file %9zu bytes (raw cache %9.0f, ratio %.3f); "
           "per 1,000 tokens: %.1f KiB/layer, %.2f MiB for 27 layers (V2-Lite); "
           "save %.1f ms, load %.1f ms\n",
           kv == DS_KV_F32 ? "f32" : kv == DS_KV_F16 ? "f16" : "bf16", n_tok, info.n_layer, n,
           raw, (double)n / raw, per_layer_1k / 1024.0, per_layer_1k * 27 / 1048576.0,
           (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    assert_true((double)n < raw * 1.02 + 4096 + 2048 * 4.0);
    free(buf);
    free(prompt);
    ds_session_close(s);
    ds_session_close(t);
}

static void test_sizes(void **state)
{
    (void)state;
    ds_model *m = tu_model("DS_SESS_V2SHAPE");
    ds_model_info info;
    info.struct_size = sizeof info;
    ds_model_info_get(m, &info);
    assert_int_equal(info.kv_lora_rank, 512);
    assert_int_equal(info.qk_rope_head_dim, 64);
    for (uint32_t kv = DS_KV_F32; kv <= DS_KV_BF16; kv++)
        measure(m, kv, 1000);
#if !defined(__SANITIZE_ADDRESS__)
    measure(m, DS_KV_F32, 4000); /* (too slow under the sanitizers) */
#endif
    ds_model_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sizes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
