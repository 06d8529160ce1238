/*
 * tests/unit/header_c99.c — the public headers compile as strict C99 (-std=c99 -pedantic
 * -Wall -Wextra -Werror) and their declarations are usable.
 *
 * Built several times with DS_FIRST_HEADER = 1 (deepseek.h), 2 (tokenizer.h), 3 (chat.h),
 * 4 (session.h) so that each header is checked first, i.e. alone, without anything included
 * before it. tokenizer.h, chat.h and session.h are included only if they exist.
 */
#ifndef DS_FIRST_HEADER
#define DS_FIRST_HEADER 1
#endif

#if defined(__has_include)
#if __has_include("deepseek/tokenizer.h")
#define DS_HAVE_TOKENIZER_H 1
#endif
#if __has_include("deepseek/chat.h")
#define DS_HAVE_CHAT_H 1
#endif
#if __has_include("deepseek/session.h")
#define DS_HAVE_SESSION_H 1
#endif
#endif

#if DS_FIRST_HEADER == 2 && defined(DS_HAVE_TOKENIZER_H)
#include "deepseek/tokenizer.h"
#elif DS_FIRST_HEADER == 3 && defined(DS_HAVE_CHAT_H)
#include "deepseek/chat.h"
#elif DS_FIRST_HEADER == 4 && defined(DS_HAVE_SESSION_H)
#include "deepseek/session.h"
#endif

#include "deepseek/deepseek.h"
#include "deepseek/deepseek.h" /* include guard */
#include "deepseek/version.h"
#ifdef DS_HAVE_TOKENIZER_H
#include "deepseek/tokenizer.h"
#endif
#ifdef DS_HAVE_CHAT_H
#include "deepseek/chat.h"
#endif
#ifdef DS_HAVE_SESSION_H
#include "deepseek/session.h"
#endif

#include <stdio.h>
#include <string.h>

/* A log callback with exactly the documented signature. */
static void log_cb(void *user_data, ds_log_level level, const char *message)
{
    (void)user_data;
    (void)level;
    (void)message;
}

int main(void)
{
    int bad = 0;
    ds_log_fn fn = log_cb;
    ds_model_params p;
    ds_model_info info;
    ds_tensor_info ti;
    ds_model *m = NULL;
    ds_meta_type mt = DS_META_FLOAT64;
    ds_load_mode lm = DS_LOAD_HUGEPAGES;
    ds_precision pr = DS_PRECISION_F32;
    ds_gating g = DS_GATING_SIGMOID;
    ds_rope_scaling rs = DS_ROPE_SCALING_YARN;
    ds_status s;

    memset(&info, 0, sizeof info);
    memset(&ti, 0, sizeof ti);
    if (ds_version() != (uint32_t)DS_VERSION_NUMBER)
        bad |= 1;
    if (strcmp(ds_version_string(), DS_VERSION_STRING) != 0)
        bad |= 2;
    if (ds_model_default_params(&p, sizeof p) != DS_OK || p.struct_size != sizeof p)
        bad |= 4;
    p.log_fn = fn;
    p.log_level = DS_LOG_DEBUG;
    s = ds_model_open(&m, "/nonexistent/header-test.gguf", &p);
    if (s != DS_ERR_IO || m != NULL || ds_last_error()[0] == '\0')
        bad |= 8;
    ds_model_close(m);
    ds_free(NULL);
    if (ds_model_meta_count(NULL) != 0 || ds_model_meta_key(NULL, 0) != NULL)
        bad |= 16;
    if ((int)mt != 12 || (int)lm != 2 || (int)pr != 1 || (int)g != 2 || (int)rs != 2 ||
        DS_ERR_INTERNAL != -12 || DS_ABI_MAJOR < 0)
        bad |= 32;
#ifdef DS_HAVE_TOKENIZER_H
    {
        /* unevaluated: the declarations must exist with these types */
        ds_token_type tt = DS_TOKEN_TYPE_CONTROL;
        const ds_tokenizer *tok = NULL;
        unsigned flags = DS_TOKENIZE_ADD_BOS | DS_TOKENIZE_SPECIAL | DS_DETOKENIZE_SPECIAL;
        if (sizeof(ds_tokenizer_n_vocab(tok)) != sizeof(int32_t) || (int)tt != 3 || flags == 0)
            bad |= 64;
    }
#endif
#ifdef DS_HAVE_CHAT_H
    {
        ds_chat_template ct = (ds_chat_template)0;
        ds_chat_message msg;
        memset(&msg, 0, sizeof msg);
        if (sizeof(ds_chat_template_name(ct)) != sizeof(const char *))
            bad |= 128;
    }
#endif
#ifdef DS_HAVE_SESSION_H
    {
        const ds_session *sess = NULL;
        if (sizeof(ds_session_n_tokens(sess)) != sizeof(size_t))
            bad |= 256;
    }
#endif
    if (bad)
        printf("header_c99: failures 0x%x\n", bad);
    return bad ? 1 : 0;
}
