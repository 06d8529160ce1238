/*
 * lib/tokenizer/chat.c — chat templates of the DeepSeek family (no Jinja engine).
 *
 * Owns: recognition of the template family from the model's template text, rendering of a
 * conversation into the exact prompt text of the official templates, and tokenizing that text
 * (public API in include/deepseek/chat.h). Reference: deepseek-architectures.md §6.
 *
 * The renderer records where each byte came from (template text, a special marker such as
 * "<｜User｜>", or message content) so that ds_chat_format_tokens can tokenize message content
 * as plain text on request (DS_CHAT_LITERAL_CONTENT) while still matching the template's own
 * special tokens.
 */
#include "deepseek/chat.h"
#include "tokenizer/chat_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* Literal strings of the templates (U+FF5C "｜" and U+2581 "▁", not ASCII). */
#define TAG_USER "<\xEF\xBD\x9CUser\xEF\xBD\x9C>"
#define TAG_ASSISTANT "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>"
#define TAG_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
#define TAG_THINK "<think>"

enum { SP_TEMPLATE = DS_CHAT_SPAN_TEMPLATE, SP_CONTENT = DS_CHAT_SPAN_CONTENT,
       SP_SPECIAL = DS_CHAT_SPAN_SPECIAL };

/* ---- rendered text builder ---------------------------------------------------------------- */

void ds_chat_text_free(ds_chat_text *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->spans);
    memset(t, 0, sizeof *t);
}

static ds_status text_append(ds_chat_text *t, const char *s, size_t n, int origin, ds_err *err)
{
    if (n == 0)
        return DS_OK;
    if (n > SIZE_MAX / 2 - t->len)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "chat template: text too long");
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *nb = realloc(t->text, cap);
        if (!nb)
            return ds_err_set(err, DS_ERR_NO_MEMORY, "chat template: out of memory (%zu bytes)",
                              cap);
        t->text = nb;
        t->cap = cap;
    }
    /* Adjacent spans of the same origin merge, except special markers (one token each). */
    if (t->n_spans > 0 && origin != SP_SPECIAL && t->spans[t->n_spans - 1].origin == origin) {
        t->spans[t->n_spans - 1].len += n;
    } else {
        if (t->n_spans == t->cap_spans) {
            size_t cap = t->cap_spans ? t->cap_spans * 2 : 16;
            ds_chat_span *ns = realloc(t->spans, cap * sizeof *ns);
            if (!ns)
                return ds_err_set(err, DS_ERR_NO_MEMORY, "chat template: out of memory");
            t->spans = ns;
            t->cap_spans = cap;
        }
        t->spans[t->n_spans].off = t->len;
        t->spans[t->n_spans].len = n;
        t->spans[t->n_spans].origin = origin;
        t->n_spans++;
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = '\0';
    return DS_OK;
}

static ds_status app(ds_chat_text *t, const char *s, int origin, ds_err *err)
{
    return text_append(t, s, strlen(s), origin, err);
}

/* ---- detection ---------------------------------------------------------------------------- */

const char *ds_chat_template_name(ds_chat_template tmpl)
{
    switch (tmpl) {
    case DS_CHAT_TEMPLATE_AUTO: return "auto";
    case DS_CHAT_TEMPLATE_DEEPSEEK2: return "deepseek2";
    case DS_CHAT_TEMPLATE_DEEPSEEK3: return "deepseek3";
    case DS_CHAT_TEMPLATE_DEEPSEEK_R1: return "deepseek-r1";
    }
    return NULL;
}

/* Normalize template text for signature matching: drop ASCII whitespace, use single quotes,
 * and write `message.content` as `message['content']`. Caller frees. */
static char *normalize_template(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 2 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    static const char dot[] = "message.content";
    static const char sub[] = "message['content']";
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (strncmp(s + i, dot, sizeof dot - 1) == 0) {
            memcpy(out + o, sub, sizeof sub - 1);
            o += sizeof sub - 1;
            i += sizeof dot - 1;
            continue;
        }
        out[o++] = c == '"' ? '\'' : c;
        i++;
    }
    out[o] = '\0';
    return out;
}

/* A short, printable excerpt of the template for error messages (whole characters only). */
static void excerpt(const char *s, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    while (s[i] && i < 60) {
        unsigned char c = (unsigned char)s[i];
        size_t clen = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        size_t k = 0;
        while (k < clen && s[i + k])
            k++;
        if (o + k + 4 > cap)
            break;
        if (clen == 1)
            out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : (char)c;
        else {
            memcpy(out + o, s + i, k);
            o += k;
        }
        i += k;
    }
    if (s[i]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

ds_status ds_chat_detect_text(const char *text, ds_chat_template *out, ds_err *err)
{
    if (!text || !text[0])
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "the model has no chat template (tokenizer.chat_template); pass an "
                          "explicit ds_chat_template");
    char *norm = normalize_template(text);
    if (!norm)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "chat template: out of memory");
    ds_status st = DS_OK;
    ds_chat_template t = DS_CHAT_TEMPLATE_AUTO;
    if (strstr(norm, "'Assistant:'+message['content']+eos_token")) {
        t = DS_CHAT_TEMPLATE_DEEPSEEK2;
    } else if (strstr(norm, TAG_USER) && strstr(norm, TAG_ASSISTANT)) {
        if (strstr(norm, TAG_ASSISTANT "</think>") || strstr(norm, "ifthinking") ||
            strstr(norm, "ifnotthinking"))
            st = ds_err_set(err, DS_ERR_UNSUPPORTED,
                            "chat template: the DeepSeek-V3.1 hybrid-thinking template is not "
                            "supported; pass an explicit ds_chat_template");
        else if (strstr(norm, "<think>") || strstr(norm, "</think>"))
            t = DS_CHAT_TEMPLATE_DEEPSEEK_R1;
        else
            t = DS_CHAT_TEMPLATE_DEEPSEEK3;
    } else if (strstr(norm, "###Instruction:")) {
        st = ds_err_set(err, DS_ERR_UNSUPPORTED,
                        "chat template: the DeepSeek-Coder instruct template (\"### Instruction:\") "
                        "is not supported; pass an explicit ds_chat_template");
    } else {
        char ex[96];
        excerpt(text, ex, sizeof ex);
        st = ds_err_set(err, DS_ERR_UNSUPPORTED,
                        "chat template not recognized as a DeepSeek template (\"%s\"); pass an "
                        "explicit ds_chat_template",
                        ex);
    }
    free(norm);
    if (st == DS_OK)
        *out = t;
    return st;
}

/* ---- rendering ---------------------------------------------------------------------------- */

static int role_is(const char *role, const char *name)
{
    return strcmp(role, name) == 0;
}

static ds_status check_messages(const ds_chat_message *msgs, size_t n, ds_err *err)
{
    if (n && !msgs)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "chat: msgs is NULL with n = %zu", n);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return ds_err_set(err, DS_ERR_INVALID_ARG, "chat: message %zu has a NULL %s", i,
                              msgs[i].role ? "content" : "role");
        const char *r = msgs[i].role;
        if (!role_is(r, "system") && !role_is(r, "user") && !role_is(r, "assistant"))
            return ds_err_set(err, DS_ERR_INVALID_ARG,
                              "chat: message %zu has role \"%.40s\"; only \"system\", \"user\" "
                              "and \"assistant\" are supported",
                              i, r);
    }
    return DS_OK;
}

/* DeepSeek-LLM / V2: BOS; system: content "\n\n"; user: "User: " content "\n\n";
 * assistant: "Assistant: " content EOS; prompt "Assistant:". Messages render in order. */
static ds_status render_deepseek2(const char *bos, const char *eos, const ds_chat_message *msgs,
                                  size_t n, int add_prompt, ds_chat_text *t, ds_err *err)
{
    ds_status st = app(t, bos, SP_SPECIAL, err);
    for (size_t i = 0; st == DS_OK && i < n; i++) {
        const char *r = msgs[i].role, *c = msgs[i].content;
        if (role_is(r, "user")) {
            if ((st = app(t, "User: ", SP_TEMPLATE, err)) == DS_OK &&
                (st = app(t, c, SP_CONTENT, err)) == DS_OK)
                st = app(t, "\n\n", SP_TEMPLATE, err);
        } else if (role_is(r, "assistant")) {
            if ((st = app(t, "Assistant: ", SP_TEMPLATE, err)) == DS_OK &&
                (st = app(t, c, SP_CONTENT, err)) == DS_OK)
                st = app(t, eos, SP_SPECIAL, err);
        } else { /* system */
            if ((st = app(t, c, SP_CONTENT, err)) == DS_OK)
                st = app(t, "\n\n", SP_TEMPLATE, err);
        }
    }
    if (st == DS_OK && add_prompt)
        st = app(t, "Assistant:", SP_TEMPLATE, err);
    return st;
}

/* V3 / R1: BOS + system messages joined by "\n\n"; user: "<｜User｜>" content;
 * assistant: "<｜Assistant｜>" content "<｜end▁of▁sentence｜>" (R1: content after the last
 * "</think>"); prompt "<｜Assistant｜>" (R1: + "<think>\n"). */
static ds_status render_deepseek3(int r1, const char *bos, const ds_chat_message *msgs, size_t n,
                                  int add_prompt, ds_chat_text *t, ds_err *err)
{
    ds_status st = app(t, bos, SP_SPECIAL, err);
    int first_sys = 1;
    for (size_t i = 0; st == DS_OK && i < n; i++) {
        if (!role_is(msgs[i].role, "system"))
            continue;
        if (!first_sys)
            st = app(t, "\n\n", SP_TEMPLATE, err);
        if (st == DS_OK)
            st = app(t, msgs[i].content, SP_CONTENT, err);
        first_sys = 0;
    }
    for (size_t i = 0; st == DS_OK && i < n; i++) {
        const char *r = msgs[i].role, *c = msgs[i].content;
        if (role_is(r, "user")) {
            if ((st = app(t, TAG_USER, SP_SPECIAL, err)) == DS_OK)
                st = app(t, c, SP_CONTENT, err);
        } else if (role_is(r, "assistant")) {
            if (r1) { /* content.split('</think>')[-1] */
                const char *p = c, *hit;
                while ((hit = strstr(p, "</think>")) != NULL)
                    p = hit + strlen("</think>");
                c = p;
            }
            if ((st = app(t, TAG_ASSISTANT, SP_SPECIAL, err)) == DS_OK &&
                (st = app(t, c, SP_CONTENT, err)) == DS_OK)
                st = app(t, TAG_EOS, SP_SPECIAL, err);
        }
    }
    if (st == DS_OK && add_prompt) {
        st = app(t, TAG_ASSISTANT, SP_SPECIAL, err);
        if (st == DS_OK && r1 && (st = app(t, TAG_THINK, SP_SPECIAL, err)) == DS_OK)
            st = app(t, "\n", SP_TEMPLATE, err);
    }
    return st;
}

ds_status ds_chat_render(ds_chat_template tmpl, const char *bos, const char *eos,
                         const ds_chat_message *msgs, size_t n, int add_assistant_prompt,
                         ds_chat_text *out, ds_err *err)
{
    memset(out, 0, sizeof *out);
    ds_status st = check_messages(msgs, n, err);
    if (st != DS_OK)
        return st;
    switch (tmpl) {
    case DS_CHAT_TEMPLATE_DEEPSEEK2:
        st = render_deepseek2(bos, eos, msgs, n, add_assistant_prompt, out, err);
        break;
    case DS_CHAT_TEMPLATE_DEEPSEEK3:
    case DS_CHAT_TEMPLATE_DEEPSEEK_R1:
        st = render_deepseek3(tmpl == DS_CHAT_TEMPLATE_DEEPSEEK_R1, bos, msgs, n,
                              add_assistant_prompt, out, err);
        break;
    default:
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "chat: unknown template value %d", (int)tmpl);
    }
    if (st == DS_OK && !out->text) { /* nothing rendered: still give a valid empty string */
        out->text = calloc(1, 1);
        if (!out->text)
            st = ds_err_set(err, DS_ERR_NO_MEMORY, "chat template: out of memory");
        out->cap = 1;
    }
    return st;
}

/* ---- public API --------------------------------------------------------------------------- */

ds_status ds_chat_detect(const ds_tokenizer *tok, ds_chat_template *out)
{
    if (!tok || !out)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_chat_detect: %s is NULL", tok ? "out" : "tok");
    ds_err err;
    ds_err_clear(&err);
    if (ds_chat_detect_text(ds_tokenizer_chat_template(tok), out, &err) != DS_OK) {
        ds_err_prefix(&err, "ds_chat_detect");
        return ds_err_publish(&err);
    }
    return DS_OK;
}

/* Text of a special token by id (rendered with its literal text); "" for id < 0.
 * Caller frees *out. */
static ds_status special_text(const ds_tokenizer *tok, int32_t id, char **out, ds_err *err)
{
    *out = NULL;
    size_t len = 0;
    if (id >= 0) {
        ds_status st = ds_token_to_piece(tok, id, DS_DETOKENIZE_SPECIAL, NULL, 0, &len);
        if (st != DS_OK && st != DS_ERR_BUFFER_TOO_SMALL)
            return ds_err_set(err, st, "token %d: %s", (int)id, ds_last_error());
    }
    char *s = malloc(len + 1);
    if (!s)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "out of memory");
    if (len) {
        ds_status st = ds_token_to_piece(tok, id, DS_DETOKENIZE_SPECIAL, s, len + 1, &len);
        if (st != DS_OK) {
            free(s);
            return ds_err_set(err, st, "token %d: %s", (int)id, ds_last_error());
        }
    }
    s[len] = '\0';
    *out = s;
    return DS_OK;
}

/* Resolve AUTO and render with the tokenizer's BOS/EOS. */
static ds_status render_for(const ds_tokenizer *tok, ds_chat_template *tmpl,
                            const ds_chat_message *msgs, size_t n, int add_prompt,
                            ds_chat_text *out, ds_err *err)
{
    memset(out, 0, sizeof *out);
    if (*tmpl == DS_CHAT_TEMPLATE_AUTO) {
        ds_status st = ds_chat_detect_text(ds_tokenizer_chat_template(tok), tmpl, err);
        if (st != DS_OK)
            return st;
    }
    char *bos = NULL, *eos = NULL;
    ds_status st = special_text(tok, ds_tokenizer_bos(tok), &bos, err);
    if (st == DS_OK)
        st = special_text(tok, ds_tokenizer_eos(tok), &eos, err);
    if (st == DS_OK)
        st = ds_chat_render(*tmpl, bos, eos, msgs, n, add_prompt, out, err);
    free(bos);
    free(eos);
    return st;
}

ds_status ds_chat_format(const ds_tokenizer *tok, ds_chat_template tmpl,
                         const ds_chat_message *msgs, size_t n, int add_assistant_prompt,
                         char *buf, size_t capacity, size_t *len)
{
    if (len)
        *len = 0;
    if (!tok || !len || (!buf && capacity))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_chat_format: %s is NULL",
                             !tok ? "tok" : !len ? "len" : "buf");
    ds_err err;
    ds_err_clear(&err);
    ds_chat_text t;
    ds_status st = render_for(tok, &tmpl, msgs, n, add_assistant_prompt, &t, &err);
    if (st == DS_OK) {
        *len = t.len;
        if (t.len + 1 > capacity) {
            if (capacity)
                buf[0] = '\0';
            ds_err_set(&err, DS_ERR_BUFFER_TOO_SMALL, "needs %zu bytes (+1 for the NUL), capacity is %zu",
                       t.len, capacity);
            st = DS_ERR_BUFFER_TOO_SMALL;
        } else {
            memcpy(buf, t.text, t.len + 1);
        }
    }
    ds_chat_text_free(&t);
    if (st != DS_OK) {
        ds_err_prefix(&err, "ds_chat_format");
        return ds_err_publish(&err);
    }
    return DS_OK;
}

/* Growable id list. */
typedef struct id_list {
    int32_t *ids;
    size_t n, cap;
} id_list;

static ds_status ids_reserve(id_list *l, size_t extra, ds_err *err)
{
    if (l->n + extra <= l->cap)
        return DS_OK;
    size_t cap = l->cap ? l->cap : 64;
    while (cap < l->n + extra)
        cap *= 2;
    int32_t *ni = realloc(l->ids, cap * sizeof *ni);
    if (!ni)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "out of memory");
    l->ids = ni;
    l->cap = cap;
    return DS_OK;
}

/* Tokenize text[0, len) with `flags` (NO_BOS added) and append to l. */
static ds_status tokenize_append(const ds_tokenizer *tok, const char *text, size_t len,
                                 uint32_t flags, id_list *l, ds_err *err)
{
    if (len == 0)
        return DS_OK;
    flags |= DS_TOKENIZE_NO_BOS;
    size_t need = 0;
    ds_status st = ds_tokenize(tok, text, len, flags, NULL, 0, &need);
    if (st != DS_OK && st != DS_ERR_BUFFER_TOO_SMALL)
        return ds_err_set(err, st, "%s", ds_last_error());
    if ((st = ids_reserve(l, need, err)) != DS_OK)
        return st;
    st = ds_tokenize(tok, text, len, flags, l->ids + l->n, need, &need);
    if (st != DS_OK)
        return ds_err_set(err, st, "%s", ds_last_error());
    l->n += need;
    return DS_OK;
}

/* Tokenize with only the template's own special markers matched: markers become their ids,
 * every run of other text is tokenized without special matching. */
static ds_status tokenize_literal(const ds_tokenizer *tok, const ds_chat_text *t, id_list *l,
                                  ds_err *err)
{
    size_t run = 0; /* start of the pending plain run */
    for (size_t i = 0; i < t->n_spans; i++) {
        const ds_chat_span *sp = &t->spans[i];
        if (sp->origin != SP_SPECIAL)
            continue;
        char name[128];
        int32_t id;
        if (sp->len >= sizeof name)
            continue;
        memcpy(name, t->text + sp->off, sp->len);
        name[sp->len] = '\0';
        if (ds_tokenizer_token_id(tok, name, &id) != DS_OK)
            continue; /* not a token of this vocabulary: stays plain text */
        ds_status st = tokenize_append(tok, t->text + run, sp->off - run, 0, l, err);
        if (st == DS_OK)
            st = ids_reserve(l, 1, err);
        if (st != DS_OK)
            return st;
        l->ids[l->n++] = id;
        run = sp->off + sp->len;
    }
    return tokenize_append(tok, t->text + run, t->len - run, 0, l, err);
}

ds_status ds_chat_format_tokens(const ds_tokenizer *tok, ds_chat_template tmpl,
                                const ds_chat_message *msgs, size_t n, int add_assistant_prompt,
                                uint32_t flags, int32_t *tokens, size_t capacity,
                                size_t *n_tokens)
{
    if (n_tokens)
        *n_tokens = 0;
    if (!tok || !n_tokens || (!tokens && capacity))
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_chat_format_tokens: %s is NULL",
                             !tok ? "tok" : !n_tokens ? "n_tokens" : "tokens");
    if (flags & ~(uint32_t)DS_CHAT_LITERAL_CONTENT)
        return ds_err_thread(DS_ERR_INVALID_ARG, "ds_chat_format_tokens: unknown flags 0x%x",
                             (unsigned)(flags & ~(uint32_t)DS_CHAT_LITERAL_CONTENT));
    ds_err err;
    ds_err_clear(&err);
    ds_chat_text t;
    id_list l = {NULL, 0, 0};
    ds_status st = render_for(tok, &tmpl, msgs, n, add_assistant_prompt, &t, &err);
    if (st == DS_OK && tmpl != DS_CHAT_TEMPLATE_DEEPSEEK2) {
        static const char *const needed[] = {TAG_USER, TAG_ASSISTANT, TAG_EOS};
        for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
            int32_t id;
            if (ds_tokenizer_token_id(tok, needed[i], &id) != DS_OK) {
                st = ds_err_set(&err, DS_ERR_UNSUPPORTED,
                                "template %s needs the token %s, which this vocabulary lacks",
                                ds_chat_template_name(tmpl), needed[i]);
                break;
            }
        }
    }
    if (st == DS_OK) {
        if (flags & DS_CHAT_LITERAL_CONTENT)
            st = tokenize_literal(tok, &t, &l, &err);
        else
            st = tokenize_append(tok, t.text, t.len, DS_TOKENIZE_SPECIAL, &l, &err);
    }
    if (st == DS_OK) {
        *n_tokens = l.n;
        if (l.n > capacity) {
            st = ds_err_set(&err, DS_ERR_BUFFER_TOO_SMALL, "needs %zu tokens, capacity is %zu",
                            l.n, capacity);
        } else if (l.n) {
            memcpy(tokens, l.ids, l.n * sizeof *tokens);
        }
    }
    ds_chat_text_free(&t);
    free(l.ids);
    if (st != DS_OK) {
        ds_err_prefix(&err, "ds_chat_format_tokens");
        return ds_err_publish(&err);
    }
    return DS_OK;
}
