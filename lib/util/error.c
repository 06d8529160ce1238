/*
 * lib/util/error.c — ds_err records and the per-thread last-error text (ds_last_error).
 */
#include "util/error.h"

#include <stdio.h>
#include <string.h>

/* The only per-thread state of the library: the last failure message of this thread. */
static _Thread_local char tl_last_error[DS_ERRMSG_MAX];

void ds_err_clear(ds_err *err)
{
    if (!err)
        return;
    err->status = DS_OK;
    err->msg[0] = '\0';
}

ds_status ds_err_set(ds_err *err, ds_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}

void ds_err_prefix(ds_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char pre[DS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char both[2 * DS_ERRMSG_MAX + 2];
    size_t n = strlen(pre);
    memcpy(both, pre, n);
    both[n++] = ':';
    both[n++] = ' ';
    memcpy(both + n, err->msg, strlen(err->msg) + 1);
    memcpy(err->msg, both, DS_ERRMSG_MAX - 1);
    err->msg[DS_ERRMSG_MAX - 1] = '\0';
}

ds_status ds_err_publish(const ds_err *err)
{
    if (!err)
        return DS_ERR_INVALID_ARG;
    if (err->status != DS_OK) {
        if (err->msg[0])
            snprintf(tl_last_error, sizeof tl_last_error, "%s", err->msg);
        else
            snprintf(tl_last_error, sizeof tl_last_error, "%s", ds_status_string(err->status));
    }
    return err->status;
}

ds_status ds_err_thread(ds_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_last_error, sizeof tl_last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *ds_last_error(void)
{
    return tl_last_error;
}

const char *ds_status_string(ds_status status)
{
    switch (status) {
    case DS_OK: return "ok";
    case DS_DONE: return "done";
    case DS_AGAIN: return "more input needed";
    case DS_ERR_INVALID_ARG: return "invalid argument";
    case DS_ERR_IO: return "input/output error";
    case DS_ERR_FORMAT: return "bad format";
    case DS_ERR_UNSUPPORTED: return "unsupported";
    case DS_ERR_NO_MEMORY: return "out of memory";
    case DS_ERR_CONTEXT_FULL: return "context full";
    case DS_ERR_CANCELLED: return "cancelled";
    case DS_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case DS_ERR_NOT_FOUND: return "not found";
    case DS_ERR_STATE: return "invalid state";
    case DS_ERR_MODEL_MISMATCH: return "model mismatch";
    case DS_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
