/*
 * lib/tokenizer/tok_json.c — the tokenizer from a Hugging Face tokenizer.json (formats.md §5.1-5.2)
 * plus its sibling tokenizer_config.json.
 *
 * Accepted: model.type "BPE" without byte fallback / subword prefixes (byte-level BPE);
 * model.vocab {text: id}; model.merges as "a b" strings or [a, b] pairs (rank = index);
 * model.ignore_merges; added_tokens (special, lstrip, rstrip; single_word is ignored);
 * normalizer null / empty Sequence / NFC (NFC is NOT applied — like llama.cpp, which has no
 * normalizer either; identical for text already in NFC); pre_tokenizer null, Split(Regex|String,
 * Isolated, invert=false), Digits, ByteLevel(add_prefix_space=false; use_regex adds the GPT-2
 * regex), or a Sequence of those; decoder ByteLevel (or null / a Sequence containing it).
 * Anything else is DS_ERR_UNSUPPORTED naming the member.
 *
 * Token kinds: an added token is CONTROL if it is `special` or "looks special" (`<|...|>`,
 * `<｜...｜>`, `<pad>`: the GGUF converter's rule, so a tokenizer.json and its GGUF behave the
 * same), otherwise USER_DEFINED.
 *
 * tokenizer_config.json: add_bos_token, bos_token, eos_token, pad_token (string or
 * {"content": ...}), chat_template (string, or a list of {name, template}: "default" or the
 * first). Without it, BOS/EOS are taken from a TemplateProcessing post-processor, or
 * `<｜begin▁of▁sentence｜>` / `<｜end▁of▁sentence｜>` when those tokens exist.
 */
#include "tokenizer/tokenizer.h"

#include "util/mapping.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOS_TEXT "<\xEF\xBD\x9C" "begin\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>"
#define EOS_TEXT "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>"

static const cJSON *member(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *member_str(const cJSON *o, const char *k)
{
    const cJSON *v = member(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool member_true(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(member(o, k));
}

static bool is_null_or_absent(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

static bool get_id(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 16777216.0) || floor(d) != d)
        return false;
    *out = (int64_t)d;
    return true;
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static bool looks_special(const char *s)
{
    size_t n = strlen(s);
    if (strcmp(s, "<pad>") == 0)
        return true;
    if (n >= 4 && strncmp(s, "<|", 2) == 0 && ends_with(s, n, "|>"))
        return true;
    if (n >= 8 && strncmp(s, "<\xEF\xBD\x9C", 4) == 0 && ends_with(s, n, "\xEF\xBD\x9C>"))
        return true;
    return false;
}

/* Regex-escape a literal String pattern. */
static char *escape_literal(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n * 2 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' '))
            o[j++] = '\\';
        o[j++] = (char)c;
    }
    o[j] = 0;
    return o;
}

static ds_status add_pattern(tok_builder *b, char *owned, const char *where, ds_err *err)
{
    if (!owned)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer.json: out of memory");
    if (b->n_pre_custom >= TOK_MAX_PRE_STEPS) {
        free(owned);
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer.json %s: more than %d pre-tokenizer steps", where,
                          TOK_MAX_PRE_STEPS);
    }
    b->pre_custom[b->n_pre_custom++] = owned;
    return DS_OK;
}

static ds_status parse_pretok(tok_builder *b, const cJSON *p, const char *where, int depth, ds_err *err)
{
    if (is_null_or_absent(p))
        return DS_OK;
    const char *type = member_str(p, "type");
    if (!type)
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer.json %s: missing \"type\"", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = member(p, "pretokenizers");
        if (!cJSON_IsArray(list) || depth > 4)
            return ds_err_set(err, DS_ERR_FORMAT, "tokenizer.json %s: Sequence without a \"pretokenizers\" array", where);
        const cJSON *c;
        cJSON_ArrayForEach(c, list) {
            ds_status st = parse_pretok(b, c, where, depth + 1, err);
            if (st != DS_OK)
                return st;
        }
        return DS_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *behavior = member_str(p, "behavior");
        if (!behavior || strcmp(behavior, "Isolated") != 0 || member_true(p, "invert"))
            return ds_err_set(err, DS_ERR_UNSUPPORTED,
                              "tokenizer.json %s: Split with behavior \"%s\"%s is not supported (only Isolated)",
                              where, behavior ? behavior : "?", member_true(p, "invert") ? " and invert" : "");
        const cJSON *pat = member(p, "pattern");
        const char *re = member_str(pat, "Regex");
        const char *lit = member_str(pat, "String");
        if (re)
            return add_pattern(b, strdup(re), where, err);
        if (lit)
            return add_pattern(b, escape_literal(lit), where, err);
        return ds_err_set(err, DS_ERR_FORMAT, "tokenizer.json %s: Split without a Regex or String pattern", where);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (member_true(p, "add_prefix_space"))
            return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer.json %s: ByteLevel add_prefix_space=true is not supported",
                              where);
        const cJSON *ur = member(p, "use_regex");
        if (ur == NULL || cJSON_IsTrue(ur)) /* default true */
            return add_pattern(b, strdup("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
                               where, err);
        return DS_OK;
    }
    if (strcmp(type, "Digits") == 0)
        return add_pattern(b, strdup(member_true(p, "individual_digits") ? "\\p{N}" : "\\p{N}+"), where, err);
    return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer.json %s: pre-tokenizer type \"%s\" is not supported", where, type);
}

static ds_status check_decoder(const cJSON *d, ds_err *err)
{
    if (is_null_or_absent(d))
        return DS_OK;
    const char *type = member_str(d, "type");
    if (type && strcmp(type, "ByteLevel") == 0)
        return DS_OK;
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *c;
        cJSON_ArrayForEach(c, member(d, "decoders")) {
            const char *t = member_str(c, "type");
            if (t && strcmp(t, "ByteLevel") == 0)
                return DS_OK;
        }
    }
    return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer.json decoder: type \"%s\" is not supported (only ByteLevel)",
                      type ? type : "?");
}

static ds_status check_normalizer(const cJSON *n, ds_err *err)
{
    if (is_null_or_absent(n))
        return DS_OK;
    const char *type = member_str(n, "type");
    if (type && strcmp(type, "NFC") == 0)
        return DS_OK; /* not applied; see the module comment */
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = member(n, "normalizers");
        if (cJSON_IsArray(list)) {
            const cJSON *c;
            cJSON_ArrayForEach(c, list) {
                ds_status st = check_normalizer(c, err);
                if (st != DS_OK)
                    return st;
            }
            return DS_OK;
        }
    }
    return ds_err_set(err, DS_ERR_UNSUPPORTED, "tokenizer.json normalizer: type \"%s\" is not supported",
                      type ? type : "?");
}

/* token content from a config value: "text" or {"content": "text"} */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *v = member(cfg, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    return member_str(v, "content");
}

static ds_status read_file(const char *path, ds_mapping *m, bool optional, bool *present, ds_err *err)
{
    *present = false;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (optional)
            return DS_OK;
        return ds_err_set(err, DS_ERR_IO, "%s: cannot open", path);
    }
    fclose(fp);
    ds_status st = ds_mapping_open(m, path, DS_LOAD_MMAP, NULL, NULL, NULL, NULL, err);
    if (st == DS_OK)
        *present = true;
    return st;
}

static cJSON *parse_json(const ds_mapping *m, const char *path, ds_err *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)m->data, m->size, &end, 0);
    if (!root) {
        size_t off = end && end >= (const char *)m->data ? (size_t)(end - (const char *)m->data) : 0;
        ds_err_set(err, DS_ERR_FORMAT, "%s: invalid JSON near byte offset %zu", path, off);
    }
    return root;
}

static ds_status load_model(tok_builder *b, const cJSON *root, const char *path, ds_err *err)
{
    const cJSON *model = member(root, "model");
    if (!cJSON_IsObject(model))
        return ds_err_set(err, DS_ERR_FORMAT, "%s: missing \"model\" object", path);
    const char *mtype = member_str(model, "type");
    if (mtype && strcmp(mtype, "BPE") != 0)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "%s: model type \"%s\" is not supported (only byte-level BPE)", path,
                          mtype);
    if (member_true(model, "byte_fallback"))
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "%s: model.byte_fallback=true (SentencePiece-style BPE) is not supported",
                          path);
    const char *csp = member_str(model, "continuing_subword_prefix");
    const char *ews = member_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews))
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix/end_of_word_suffix are not supported",
                          path);
    b->ignore_merges = member_true(model, "ignore_merges");

    const cJSON *vocab = member(model, "vocab");
    const cJSON *merges = member(model, "merges");
    if (!cJSON_IsObject(vocab))
        return ds_err_set(err, DS_ERR_FORMAT, "%s: model.vocab is not an object", path);
    if (!cJSON_IsArray(merges))
        return ds_err_set(err, DS_ERR_FORMAT, "%s: model.merges is not an array", path);
    const cJSON *added = member(root, "added_tokens");
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return ds_err_set(err, DS_ERR_FORMAT, "%s: added_tokens is not an array", path);

    /* vocabulary size = largest id + 1 */
    int64_t max_id = -1, id;
    const cJSON *it;
    size_t idx = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!get_id(it, &id))
            return ds_err_set(err, DS_ERR_FORMAT, "%s: model.vocab entry %zu (\"%.100s\") has an invalid id", path, idx,
                              it->string ? it->string : "");
        if (id > max_id)
            max_id = id;
        idx++;
    }
    idx = 0;
    cJSON_ArrayForEach(it, added) {
        if (!get_id(member(it, "id"), &id) || !member_str(it, "content"))
            return ds_err_set(err, DS_ERR_FORMAT, "%s: added_tokens[%zu] needs an integer \"id\" and a string \"content\"",
                              path, idx);
        if (id > max_id)
            max_id = id;
        idx++;
    }
    if (max_id < 0)
        return ds_err_set(err, DS_ERR_FORMAT, "%s: empty vocabulary", path);

    ds_status st = tok_builder_init(b, (int32_t)(max_id + 1), err);
    if (st != DS_OK)
        return st;
    cJSON_ArrayForEach(it, vocab) {
        get_id(it, &id);
        if ((st = tok_builder_set_text(b, (int32_t)id, it->string, strlen(it->string), err)) != DS_OK)
            return st;
    }
    idx = 0;
    cJSON_ArrayForEach(it, added) {
        get_id(member(it, "id"), &id);
        const char *content = member_str(it, "content");
        if ((st = tok_builder_set_text(b, (int32_t)id, content, strlen(content), err)) != DS_OK)
            return st;
        bool special = member_true(it, "special");
        b->type[id] = (special || looks_special(content)) ? DS_TOKEN_TYPE_CONTROL : DS_TOKEN_TYPE_USER_DEFINED;
        b->tflags[id] = (uint8_t)((member_true(it, "lstrip") ? TOKF_LSTRIP : 0) |
                                  (member_true(it, "rstrip") ? TOKF_RSTRIP : 0));
        idx++;
    }

    idx = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring;
            size_t n = strlen(s);
            const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
            if (sp) {
                l = s;
                ll = (size_t)(sp - s);
                r = sp + 1;
                rl = n - ll - 1;
            }
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
            const cJSON *a = it->child, *c = a->next;
            if (cJSON_IsString(a) && cJSON_IsString(c)) {
                l = a->valuestring;
                ll = strlen(l);
                r = c->valuestring;
                rl = strlen(r);
            }
        }
        if (!l)
            return ds_err_set(err, DS_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, idx);
        if ((st = tok_builder_add_merge(b, l, ll, r, rl, err)) != DS_OK)
            return st;
        idx++;
    }

    if ((st = check_normalizer(member(root, "normalizer"), err)) != DS_OK)
        return st;
    if ((st = check_decoder(member(root, "decoder"), err)) != DS_OK)
        return st;
    if ((st = parse_pretok(b, member(root, "pre_tokenizer"), "pre_tokenizer", 0, err)) != DS_OK)
        return st;
    int preset = tok_pretok_identify((const char *const *)b->pre_custom, b->n_pre_custom);
    if (preset >= 0) {
        b->pre_preset = preset;
        b->pre_name = strdup(tok_pretok_preset_name(preset));
    } else {
        b->pre_preset = -1;
        b->pre_name = strdup("custom");
    }
    if (!b->pre_name)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer.json: out of memory");
    return DS_OK;
}

/* BOS from a TemplateProcessing post-processor: "single": [{"SpecialToken": {"id": "<s>"}}, ...] */
static const char *post_processor_bos(const cJSON *root)
{
    const cJSON *pp = member(root, "post_processor");
    const char *type = member_str(pp, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *c;
        cJSON_ArrayForEach(c, member(pp, "processors")) {
            const char *t = member_str(c, "type");
            if (t && strcmp(t, "TemplateProcessing") == 0) {
                pp = c;
                type = t;
                break;
            }
        }
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0)
        return NULL;
    const cJSON *single = member(pp, "single");
    if (!cJSON_IsArray(single) || !single->child)
        return NULL;
    return member_str(member(single->child, "SpecialToken"), "id");
}

ds_status tok_load_json(const char *path, ds_tokenizer **out, ds_err *err)
{
    *out = NULL;
    ds_mapping jm, cm;
    memset(&jm, 0, sizeof jm);
    memset(&cm, 0, sizeof cm);
    bool have_json = false, have_cfg = false;
    cJSON *root = NULL, *cfg = NULL;
    tok_builder b;
    memset(&b, 0, sizeof b);
    ds_tokenizer *t = NULL;
    char *cfg_path = NULL;

    ds_status st = read_file(path, &jm, false, &have_json, err);
    if (st != DS_OK)
        goto done;
    root = parse_json(&jm, path, err);
    if (!root) {
        st = DS_ERR_FORMAT;
        goto done;
    }
    ds_mapping_close(&jm);
    have_json = false;

    /* sibling tokenizer_config.json */
    {
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path + 1) : 0;
        cfg_path = malloc(dl + sizeof "tokenizer_config.json");
        if (!cfg_path) {
            st = ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
            goto done;
        }
        memcpy(cfg_path, path, dl);
        memcpy(cfg_path + dl, "tokenizer_config.json", sizeof "tokenizer_config.json");
        if ((st = read_file(cfg_path, &cm, true, &have_cfg, err)) != DS_OK)
            goto done;
        if (have_cfg) {
            cfg = parse_json(&cm, cfg_path, err);
            ds_mapping_close(&cm);
            have_cfg = false;
            if (!cfg) {
                st = DS_ERR_FORMAT;
                goto done;
            }
        }
    }

    if ((st = load_model(&b, root, path, err)) != DS_OK)
        goto done;

    const char *bos_text = NULL, *eos_text = NULL, *pad_text = NULL;
    int add_bos = -1;
    if (cfg) {
        bos_text = config_token(cfg, "bos_token");
        eos_text = config_token(cfg, "eos_token");
        pad_text = config_token(cfg, "pad_token");
        const cJSON *ab = member(cfg, "add_bos_token");
        if (cJSON_IsBool(ab))
            add_bos = cJSON_IsTrue(ab);
        const cJSON *ct = member(cfg, "chat_template");
        const char *tmpl = NULL;
        if (cJSON_IsString(ct)) {
            tmpl = ct->valuestring;
        } else if (cJSON_IsArray(ct)) {
            const cJSON *c;
            cJSON_ArrayForEach(c, ct) {
                const char *name = member_str(c, "name");
                const char *tt = member_str(c, "template");
                if (tt && (!tmpl || (name && strcmp(name, "default") == 0)))
                    tmpl = tt;
            }
        }
        if (tmpl && !(b.chat_template = strdup(tmpl))) {
            st = ds_err_set(err, DS_ERR_NO_MEMORY, "tokenizer: out of memory");
            goto done;
        }
    }
    const char *pp_bos = post_processor_bos(root);
    if (!bos_text && pp_bos) {
        bos_text = pp_bos;
        if (add_bos < 0)
            add_bos = 1;
    }

    if ((st = tok_build_finish(&b, &t, err)) != DS_OK)
        goto done;

    {
        int32_t bos = bos_text ? tok_str_lookup(t, bos_text, strlen(bos_text)) : tok_str_lookup(t, BOS_TEXT, strlen(BOS_TEXT));
        int32_t eos = eos_text ? tok_str_lookup(t, eos_text, strlen(eos_text)) : tok_str_lookup(t, EOS_TEXT, strlen(EOS_TEXT));
        int32_t pad = pad_text ? tok_str_lookup(t, pad_text, strlen(pad_text)) : -1;
        t->bos = bos;
        t->eos = eos;
        t->pad = pad;
        if (eos >= 0)
            t->tflags[eos] |= TOKF_EOG;
        t->add_bos = add_bos > 0 && bos >= 0;
    }
    *out = t;
    t = NULL;
    st = DS_OK;

done:
    if (st != DS_OK)
        tok_builder_free(&b);
    ds_tokenizer_free(t);
    if (root)
        cJSON_Delete(root);
    if (cfg)
        cJSON_Delete(cfg);
    if (have_json)
        ds_mapping_close(&jm);
    if (have_cfg)
        ds_mapping_close(&cm);
    free(cfg_path);
    return st;
}
