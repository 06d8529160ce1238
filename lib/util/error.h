/*
 * lib/util/error.h — internal error reporting.
 *
 * Owns: the ds_err record that every internal fallible function fills (a status plus a
 * formatted message naming what was wrong), and the per-thread "last error" text behind
 * ds_last_error(). Internal code never prints; it fills a ds_err and returns its status.
 */
#ifndef DS_UTIL_ERROR_H
#define DS_UTIL_ERROR_H

#include "deepseek/deepseek.h"

#include <stdarg.h>

#define DS_ERRMSG_MAX 512

typedef struct ds_err {
    ds_status status;
    char msg[DS_ERRMSG_MAX];
} ds_err;

#if defined(__GNUC__)
#define DS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DS_PRINTF(a, b)
#endif

/* Clear `err` (status DS_OK, empty message). Accepts NULL. */
void ds_err_clear(ds_err *err);

/* Record a failure: sets status and a formatted message; returns `status` so callers can write
 * `return ds_err_set(err, DS_ERR_FORMAT, "...", ...);`. Accepts err == NULL. */
ds_status ds_err_set(ds_err *err, ds_status status, const char *fmt, ...) DS_PRINTF(3, 4);

/* Prefix the existing message with "<context>: " (used when an inner error bubbles up). */
void ds_err_prefix(ds_err *err, const char *fmt, ...) DS_PRINTF(2, 3);

/* Publish `err` as this thread's last error (ds_last_error()) and return its status.
 * If status is DS_OK the thread's message is left unchanged. */
ds_status ds_err_publish(const ds_err *err);

/* Publish a status with a formatted message as this thread's last error; returns status. */
ds_status ds_err_thread(ds_status status, const char *fmt, ...) DS_PRINTF(2, 3);

#endif
