/*
 * lib/util/mapping.h — a read-only view of a whole file in memory.
 *
 * Owns: opening a file and making its bytes addressable, in one of three ways (ds_load_mode):
 * a shared read-only mmap, a private anonymous copy read with read(2), or an anonymous copy
 * advised for transparent huge pages. Everything that parses files works on (data, size).
 */
#ifndef DS_UTIL_MAPPING_H
#define DS_UTIL_MAPPING_H

#include "util/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ds_mapping {
    const uint8_t *data;
    size_t size;
    int mode;        /* ds_load_mode */
    void *base;      /* what to unmap/free */
    size_t base_len;
} ds_mapping;

/* progress/abort may be NULL; they are called between chunks of a read (not for mmap, which
 * reports 0 and the size once each). */
ds_status ds_mapping_open(ds_mapping *m, const char *path, int mode, ds_progress_fn progress,
                          void *progress_ud, ds_abort_fn abort_fn, void *abort_ud, ds_err *err);
void ds_mapping_close(ds_mapping *m);

#endif
