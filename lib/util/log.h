/*
 * lib/util/log.h — internal logging through the host's callback.
 *
 * Owns: ds_logger, a {level, fn, user_data} triple held by each handle. The library never
 * writes to stdout/stderr; a NULL fn means silence. ds_logger_set is synchronized with a
 * mutex so a host may change the callback while other threads log.
 */
#ifndef DS_UTIL_LOG_H
#define DS_UTIL_LOG_H

#include "deepseek/deepseek.h"
#include "util/error.h"

#include <pthread.h>

typedef struct ds_logger {
    pthread_mutex_t lock;
    ds_log_level level;
    ds_log_fn fn;
    void *user_data;
} ds_logger;

void ds_logger_init(ds_logger *lg, ds_log_level level, ds_log_fn fn, void *user_data);
void ds_logger_destroy(ds_logger *lg);
void ds_logger_set(ds_logger *lg, ds_log_level level, ds_log_fn fn, void *user_data);
void ds_log(ds_logger *lg, ds_log_level level, const char *fmt, ...) DS_PRINTF(3, 4);

#endif
