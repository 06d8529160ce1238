/*
 * lib/tokenizer/tok_gguf.c — the tokenizer from GGUF metadata (formats.md §5.6).
 *
 * Owns: reading tokenizer.ggml.* / tokenizer.chat_template from a parsed gguf_file, with type
 * and range checks, into a tok_builder. Everything is copied: the result keeps no pointer into
 * the GGUF buffer.
 */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static ds_status opt_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *out, ds_err *err)
{
    uint32_t v = 0;
    ds_status st = gguf_get_u32(f, key, &v, err);
    if (st == DS_ERR_NOT_FOUND)
        return DS_OK;
    if (st != DS_OK)
        return st;
    if (v >= (uint32_t)n_vocab)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s': token id %u out of range (vocabulary has %d tokens)",
                          key, v, (int)n_vocab);
    *out = (int32_t)v;
    return DS_OK;
}

static bool str_eq(gguf_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

ds_status ds_tokenizer_from_gguf(ds_tokenizer **out, const gguf_file *f, ds_err *err)
{
    if (!out)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_tokenizer_from_gguf: out is NULL");
    *out = NULL;
    if (!f)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "ds_tokenizer_from_gguf: file is NULL");

    gguf_str model;
    ds_status st = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (st == DS_ERR_NOT_FOUND)
        return ds_err_set(err, DS_ERR_NOT_FOUND, "metadata key 'tokenizer.ggml.model' not found: no tokenizer");
    if (st != DS_OK)
        return st;
    if (!str_eq(model, "gpt2"))
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "metadata key 'tokenizer.ggml.model': tokenizer model \"%.*s\" is not supported "
                          "(only \"gpt2\" byte-level BPE)", (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const gguf_array *tokens = NULL, *types = NULL, *merges = NULL;
    st = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, err);
    if (st == DS_ERR_NOT_FOUND)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.tokens' not found");
    if (st != DS_OK)
        return st;
    if (tokens->count == 0 || tokens->count > (1u << 24))
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.tokens': %llu tokens (expected 1..16777216)",
                          (unsigned long long)tokens->count);
    int32_t n = (int32_t)tokens->count;

    st = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_INT32, &types, err);
    if (st == DS_ERR_NOT_FOUND)
        types = NULL;
    else if (st != DS_OK)
        return st;
    if (types && types->count != tokens->count)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.token_type': %llu entries, but %d tokens",
                          (unsigned long long)types->count, (int)n);

    st = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_STRING, &merges, err);
    if (st == DS_ERR_NOT_FOUND)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.merges' not found (required for gpt2)");
    if (st != DS_OK)
        return st;

    tok_builder b;
    if ((st = tok_builder_init(&b, n, err)) != DS_OK)
        return st;
    b.last_wins = true; /* llama.cpp: token_to_id[text] = id, in id order */

    for (int32_t i = 0; i < n; i++) {
        gguf_str s = tokens->strs[i];
        if ((st = tok_builder_set_text(&b, i, s.ptr, (size_t)s.len, err)) != DS_OK) {
            ds_err_prefix(err, "metadata key 'tokenizer.ggml.tokens'");
            goto fail;
        }
        if (types) {
            int64_t ty = gguf_arr_i64(types, (uint64_t)i);
            if (ty < 0 || ty > DS_TOKEN_TYPE_BYTE) {
                st = ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.token_type': token %d has type %lld",
                                (int)i, (long long)ty);
                goto fail;
            }
            b.type[i] = (uint8_t)ty;
        }
    }

    for (uint64_t i = 0; i < merges->count; i++) {
        gguf_str s = merges->strs[i];
        /* llama.cpp splits at the first space at index >= 1 */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp) {
            st = ds_err_set(err, DS_ERR_FORMAT, "metadata key 'tokenizer.ggml.merges': entry %llu has no separating space",
                            (unsigned long long)i);
            goto fail;
        }
        size_t ll = (size_t)(sp - s.ptr);
        if ((st = tok_builder_add_merge(&b, s.ptr, ll, sp + 1, (size_t)s.len - ll - 1, err)) != DS_OK)
            goto fail;
    }

    if ((st = opt_id(f, "tokenizer.ggml.bos_token_id", n, &b.bos, err)) != DS_OK ||
        (st = opt_id(f, "tokenizer.ggml.eos_token_id", n, &b.eos, err)) != DS_OK ||
        (st = opt_id(f, "tokenizer.ggml.padding_token_id", n, &b.pad, err)) != DS_OK ||
        (st = opt_id(f, "tokenizer.ggml.eot_token_id", n, &b.eot, err)) != DS_OK ||
        (st = opt_id(f, "tokenizer.ggml.eom_token_id", n, &b.eom, err)) != DS_OK)
        goto fail;

    bool add_bos = false;
    st = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos, err);
    if (st != DS_OK && st != DS_ERR_NOT_FOUND)
        goto fail;
    b.add_bos = add_bos;

    gguf_str pre;
    st = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
    if (st == DS_ERR_NOT_FOUND) {
        b.pre_preset = tok_pretok_find_preset("default");
        b.pre_name = strdup("default");
    } else if (st != DS_OK) {
        goto fail;
    } else {
        char name[96];
        size_t l = pre.len < sizeof name - 1 ? (size_t)pre.len : sizeof name - 1;
        memcpy(name, pre.ptr, l);
        name[l] = 0;
        int p = (pre.len < sizeof name - 1 && memchr(name, 0, l) == NULL) ? tok_pretok_find_preset(name) : -1;
        if (p < 0 || strcmp(name, "gpt2") == 0) {
            st = ds_err_set(err, DS_ERR_UNSUPPORTED, "metadata key 'tokenizer.ggml.pre': pre-tokenizer \"%s\" is not supported",
                            name);
            goto fail;
        }
        b.pre_preset = p;
        b.pre_name = strdup(name);
    }
    if (!b.pre_name) {
        st = ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
        goto fail;
    }
    b.ignore_merges = tok_pretok_preset_ignore_merges(b.pre_preset);

    gguf_str tmpl;
    st = gguf_get_str(f, "tokenizer.chat_template", &tmpl, err);
    if (st == DS_OK) {
        b.chat_template = malloc((size_t)tmpl.len + 1);
        if (!b.chat_template) {
            st = ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
            goto fail;
        }
        memcpy(b.chat_template, tmpl.ptr, (size_t)tmpl.len);
        b.chat_template[tmpl.len] = 0;
    } else if (st != DS_ERR_NOT_FOUND) {
        goto fail;
    }

    return tok_build_finish(&b, out, err);

fail:
    tok_builder_free(&b);
    return st;
}
