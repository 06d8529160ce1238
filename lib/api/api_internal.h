/*
 * lib/api/api_internal.h — the structs behind the public handles, shared by the api/ files.
 */
#ifndef DS_API_INTERNAL_H
#define DS_API_INTERNAL_H

#include "deepseek/deepseek.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "util/error.h"
#include "util/log.h"
#include "util/mapping.h"

#include <pthread.h>

struct ds_tokenizer;

struct ds_model {
    ds_model_params params;    /* full-size copy of the caller's params */
    char *path;
    ds_mapping map;
    gguf_file gguf;
    ds_model_data data;
    ds_logger logger;
    struct ds_tokenizer *tokenizer;  /* NULL if the file has no tokenizer */
    ds_mm *mm;                 /* matmul context shared by all sessions (NULL if vocab-only) */
    int n_threads;
    char name[256];
    pthread_mutex_t err_lock;
    char errmsg[DS_ERRMSG_MAX];
};

/* Record a failure on the model handle and on the calling thread; returns err->status. */
ds_status ds_model_fail(const ds_model *m, const ds_err *err);
/* Same with a formatted message. */
ds_status ds_model_failf(const ds_model *m, ds_status status, const char *fmt, ...) DS_PRINTF(3, 4);

/* Copy a caller's params struct (of any size up to ours) over the defaults. */
ds_status ds_params_copy(void *dst, size_t dst_size, const void *src, const char *what);

#endif
