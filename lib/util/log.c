/*
 * lib/util/log.c — formatting log lines and handing them to the host's callback.
 */
#include "util/log.h"

#include <stdio.h>

void ds_logger_init(ds_logger *lg, ds_log_level level, ds_log_fn fn, void *user_data)
{
    pthread_mutex_init(&lg->lock, NULL);
    lg->level = level;
    lg->fn = fn;
    lg->user_data = user_data;
}

void ds_logger_destroy(ds_logger *lg)
{
    pthread_mutex_destroy(&lg->lock);
}

void ds_logger_set(ds_logger *lg, ds_log_level level, ds_log_fn fn, void *user_data)
{
    pthread_mutex_lock(&lg->lock);
    lg->level = level;
    lg->fn = fn;
    lg->user_data = user_data;
    pthread_mutex_unlock(&lg->lock);
}

void ds_log(ds_logger *lg, ds_log_level level, const char *fmt, ...)
{
    if (!lg)
        return;
    pthread_mutex_lock(&lg->lock);
    ds_log_fn fn = lg->fn;
    void *ud = lg->user_data;
    ds_log_level max = lg->level;
    pthread_mutex_unlock(&lg->lock);
    if (!fn || level > max)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fn(ud, level, line);
}
