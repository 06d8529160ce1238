/*
 * fuzz/fuzz_gguf.c — libFuzzer target for the GGUF parser and the deepseek2 binding.
 *
 * Parses arbitrary bytes with gguf_parse; on success reads every metadata value through the
 * typed getters and the array accessors, touches the first and last byte of every tensor,
 * then runs ds_model_data_load (full and vocab_only) and touches the first and last byte of
 * every bound weight, checking that each bound view lies inside the input. libFuzzer hands
 * the input in an exactly sized heap buffer, so ASAN catches any read past its end.
 */
#include "format/ggml_types.h"
#include "format/gguf.h"
#include "model/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint8_t g_sink;

static const uint8_t *g_lo, *g_hi;

static void touch(const void *p, size_t n)
{
    if (!p || !n)
        return;
    const uint8_t *b = p;
    if (b < g_lo || b + n > g_hi || b + n < b)
        abort(); /* a view outside the input buffer */
    g_sink ^= b[0];
    g_sink ^= b[n - 1];
}

static void touch_weight(const ds_weight *w)
{
    if (!w->data)
        return;
    touch(w->data, w->nbytes);
    /* the binding promises rows of row_bytes and ne[1..3] rows */
    uint64_t rows = (uint64_t)w->ne[1] * (uint64_t)w->ne[2] * (uint64_t)w->ne[3];
    if (w->row_bytes == 0 || rows * w->row_bytes != w->nbytes)
        abort();
}

static void walk_value(const gguf_value *v, int depth)
{
    if (depth > GGUF_MAX_ARRAY_DEPTH + 1)
        abort();
    switch (v->type) {
    case GGUF_STRING:
        touch(v->v.str.ptr, (size_t)v->v.str.len);
        break;
    case GGUF_ARRAY: {
        const gguf_array *a = &v->v.arr;
        if (a->elem_type == GGUF_STRING) {
            for (uint64_t i = 0; i < a->count; i++)
                touch(a->strs[i].ptr, (size_t)a->strs[i].len);
        } else if (a->elem_type == GGUF_ARRAY) {
            for (uint64_t i = 0; i < a->count; i++)
                walk_value(&a->items[i], depth + 1);
        } else if (a->count) {
            touch(a->data, (size_t)(a->count * gguf_vtype_size(a->elem_type)));
            g_sink ^= (uint8_t)gguf_arr_u64(a, a->count - 1);
            g_sink ^= (uint8_t)gguf_arr_i64(a, 0);
            g_sink ^= (uint8_t)(gguf_arr_f64(a, a->count / 2) != 0.0);
        }
        break;
    }
    default:
        break;
    }
}

static void walk_file(const gguf_file *f)
{
    ds_err e;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        if (gguf_find_kv(f, kv->key) != kv)
            abort(); /* keys are unique and indexed */
        walk_value(&kv->value, 0);
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f32;
        bool bl;
        gguf_str s;
        const gguf_array *a;
        g_sink ^= (uint8_t)gguf_get_u32(f, kv->key, &u32, &e);
        g_sink ^= (uint8_t)gguf_get_u64(f, kv->key, &u64, &e);
        g_sink ^= (uint8_t)gguf_get_i64(f, kv->key, &i64, &e);
        g_sink ^= (uint8_t)gguf_get_f32(f, kv->key, &f32, &e);
        g_sink ^= (uint8_t)gguf_get_bool(f, kv->key, &bl, &e);
        g_sink ^= (uint8_t)gguf_get_str(f, kv->key, &s, &e);
        g_sink ^= (uint8_t)gguf_get_arr(f, kv->key, GGUF_VTYPE_COUNT, &a, &e);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_find_tensor(f, t->name) != t)
            abort();
        /* sizes agree with the type table, computed without any wrap-around */
        const ds_ggml_type_traits *tt = ds_ggml_type_get(t->type);
        if (tt->block_elems == 0 || t->ne[0] % tt->block_elems != 0)
            abort();
        const unsigned __int128 max64 = UINT64_MAX;
        unsigned __int128 want = (unsigned __int128)(t->ne[0] / tt->block_elems) * tt->block_bytes;
        unsigned __int128 elems = t->ne[0];
        for (int d = 1; d < GGUF_MAX_DIMS && want <= max64 && elems <= max64; d++) {
            want *= t->ne[d]; /* < 2^64 * 2^62: no wrap */
            elems *= t->ne[d];
        }
        if (want > max64 || elems > max64 || t->nbytes == 0 || want != t->nbytes ||
            elems != t->n_elems)
            abort(); /* the parser accepted a size that wrapped */
        touch(t->data, (size_t)t->nbytes);
    }
}

static void walk_model(const ds_model_data *md)
{
    if (md->arch != DS_ARCH_DEEPSEEK2 || !md->w.layers)
        return;
    touch_weight(&md->w.token_embd);
    touch_weight(&md->w.output_norm);
    touch_weight(&md->w.output);
    for (uint32_t il = 0; il < md->hp.n_layer; il++) {
        const ds2_layer *L = &md->w.layers[il];
        const ds_weight *ws[] = {
            &L->attn_norm, &L->attn_q, &L->attn_q_a, &L->attn_q_a_norm, &L->attn_q_b,
            &L->attn_kv_a_mqa, &L->attn_kv_a_norm, &L->attn_kv_b, &L->attn_k_b, &L->attn_v_b,
            &L->attn_output, &L->ffn_norm, &L->ffn_gate, &L->ffn_up, &L->ffn_down,
            &L->ffn_gate_inp, &L->exp_probs_b, &L->ffn_gate_exps, &L->ffn_up_exps,
            &L->ffn_down_exps, &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp,
        };
        for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
            touch_weight(ws[k]);
    }
    g_sink ^= (uint8_t)(ds2_attn_scale(&md->hp) > 0.0f);
    g_sink ^= (uint8_t)ds2_kv_bytes_per_token(&md->hp, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_lo = data;
    g_hi = data + size;
    gguf_file f;
    ds_err e;
    ds_err_clear(&e);
    ds_status s = gguf_parse(&f, data, size, &e);
    if (s != DS_OK) {
        /* a failure always says why, and leaves nothing behind */
        if (e.status != s || e.msg[0] == '\0' || f.kv || f.tensors || s > 0)
            abort();
        return 0;
    }
    walk_file(&f);
    ds_model_data md;
    ds_err_clear(&e);
    s = ds_model_data_load(&md, &f, false, &e);
    if (s == DS_OK) {
        walk_model(&md);
    } else if (e.msg[0] == '\0' || md.w.layers) {
        abort();
    }
    ds_model_data_free(&md);
    if (ds_model_data_load(&md, &f, true, &e) == DS_OK && md.w.layers)
        abort(); /* vocab_only binds nothing */
    ds_model_data_free(&md);
    gguf_free(&f);
    return 0;
}
