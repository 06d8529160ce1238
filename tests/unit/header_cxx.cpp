/*
 * tests/unit/header_cxx.cpp — the public headers compile as C++17 (-pedantic -Wall -Wextra
 * -Werror), have C linkage, and their declarations are usable from C++.
 * tokenizer.h, chat.h and session.h are included only if they exist.
 */
#if defined(__has_include)
#if __has_include("deepseek/session.h")
#include "deepseek/session.h" /* first: it must pull in what it needs itself */
#define DS_HAVE_SESSION_H 1
#endif
#if __has_include("deepseek/chat.h")
#include "deepseek/chat.h"
#define DS_HAVE_CHAT_H 1
#endif
#if __has_include("deepseek/tokenizer.h")
#include "deepseek/tokenizer.h"
#define DS_HAVE_TOKENIZER_H 1
#endif
#endif
#include "deepseek/deepseek.h"
#include "deepseek/version.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(std::is_same<decltype(&ds_model_open),
                           ds_status (*)(ds_model **, const char *, const ds_model_params *)>::value,
              "ds_model_open signature");
static_assert(std::is_same<decltype(&ds_status_string), const char *(*)(ds_status)>::value,
              "ds_status_string signature");
static_assert(std::is_standard_layout<ds_model_params>::value, "params are a C struct");
static_assert(std::is_trivially_copyable<ds_model_info>::value, "info is a C struct");
static_assert(offsetof(ds_model_params, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(ds_model_info, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(ds_tensor_info, struct_size) == 0, "struct_size comes first");
static_assert(DS_OK == 0 && DS_ERR_INVALID_ARG == -1 && DS_ERR_INTERNAL == -12, "ABI values");
static_assert(DS_VERSION_NUMBER ==
                  DS_VERSION_MAJOR * 10000 + DS_VERSION_MINOR * 100 + DS_VERSION_PATCH,
              "version number");
#ifdef DS_HAVE_TOKENIZER_H
static_assert(std::is_same<decltype(ds_tokenizer_n_vocab(nullptr)), int32_t>::value,
              "ds_tokenizer_n_vocab returns int32_t");
static_assert(DS_TOKEN_TYPE_BYTE == 6, "token type values follow GGUF");
#endif
#ifdef DS_HAVE_CHAT_H
static_assert(std::is_same<decltype(ds_chat_template_name(DS_CHAT_TEMPLATE_AUTO)), const char *>::value,
              "ds_chat_template_name returns text");
#endif

#ifdef DS_HAVE_SESSION_H
static_assert(std::is_same<decltype(ds_session_n_tokens(nullptr)), size_t>::value,
              "ds_session_n_tokens returns size_t");
#endif

namespace {
struct Counter {
    int n = 0;
};

extern "C" void log_cb(void *user_data, ds_log_level, const char *)
{
    static_cast<Counter *>(user_data)->n++;
}
} // namespace

int main()
{
    int bad = 0;
    if (ds_version() != static_cast<uint32_t>(DS_VERSION_NUMBER))
        bad |= 1;
    if (std::strcmp(ds_version_string(), DS_VERSION_STRING) != 0)
        bad |= 2;
    ds_model_params p{};
    if (ds_model_default_params(&p, sizeof p) != DS_OK || p.struct_size != sizeof p)
        bad |= 4;
    Counter c;
    p.log_fn = log_cb;
    p.log_user_data = &c;
    p.log_level = DS_LOG_ERROR;
    ds_model *m = nullptr;
    if (ds_model_open(&m, "/nonexistent/header-test.gguf", &p) != DS_ERR_IO || m != nullptr)
        bad |= 8;
    ds_model_close(m);
    ds_free(nullptr);
    if (std::strlen(ds_last_error()) == 0 || std::strcmp(ds_status_string(DS_ERR_IO), "") == 0)
        bad |= 16;
    ds_model_info info{};
    info.struct_size = sizeof info;
    if (ds_model_info_get(nullptr, &info) != DS_ERR_INVALID_ARG)
        bad |= 32;
    if (bad)
        std::printf("header_cxx: failures 0x%x\n", bad);
    return bad ? 1 : 0;
}
