/*
 * lib/util/mapping.c — bring a whole file into memory: mmap, read(2), or read into memory
 * advised for transparent huge pages.
 */
#include "util/mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct read_cb {
    ds_progress_fn progress;
    void *progress_ud;
    ds_abort_fn abort_fn;
    void *abort_ud;
} read_cb;

static ds_status read_all(int fd, uint8_t *dst, size_t size, const char *path, const read_cb *cb,
                          ds_err *err)
{
    size_t done = 0;
    while (done < size) {
        if (cb->abort_fn && cb->abort_fn(cb->abort_ud))
            return ds_err_set(err, DS_ERR_CANCELLED, "%s: loading cancelled after %zu of %zu bytes",
                              path, done, size);
        size_t chunk = size - done;
        if (chunk > (64u << 20))
            chunk = 64u << 20;
        ssize_t r = pread(fd, dst + done, chunk, (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ds_err_set(err, DS_ERR_IO, "%s: read failed at offset %zu: %s", path, done,
                              strerror(errno));
        }
        if (r == 0)
            return ds_err_set(err, DS_ERR_IO, "%s: file shrank while reading (at offset %zu)",
                              path, done);
        done += (size_t)r;
        if (cb->progress)
            cb->progress(cb->progress_ud, done, size);
    }
    return DS_OK;
}

ds_status ds_mapping_open(ds_mapping *m, const char *path, int mode, ds_progress_fn progress,
                          void *progress_ud, ds_abort_fn abort_fn, void *abort_ud, ds_err *err)
{
    memset(m, 0, sizeof *m);
    const read_cb cb = {progress, progress_ud, abort_fn, abort_ud};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ds_err_set(err, DS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ds_err_set(err, DS_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ds_err_set(err, DS_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    m->size = size;
    m->mode = mode;
    if (size == 0) {
        close(fd);
        static const uint8_t empty[1];
        m->data = empty;
        return DS_OK;
    }
    ds_status s = DS_OK;
    if (mode == DS_LOAD_MMAP) {
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            s = ds_err_set(err, errno == ENOMEM ? DS_ERR_NO_MEMORY : DS_ERR_IO,
                           "%s: cannot map %zu bytes: %s", path, size, strerror(errno));
        } else {
            m->base = p;
            m->base_len = size;
            m->data = p;
            if (progress) {
                progress(progress_ud, 0, size);
                progress(progress_ud, size, size);
            }
        }
    } else if (mode == DS_LOAD_READ || mode == DS_LOAD_HUGEPAGES) {
        size_t len = size;
        if (mode == DS_LOAD_HUGEPAGES) {
            const size_t huge = 2u << 20;
            len = (size + huge - 1) & ~(huge - 1);
        }
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            s = ds_err_set(err, DS_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes to read the file",
                           path, len);
        } else {
#ifdef MADV_HUGEPAGE
            if (mode == DS_LOAD_HUGEPAGES)
                madvise(p, len, MADV_HUGEPAGE);
#endif
            s = read_all(fd, p, size, path, &cb, err);
            if (s != DS_OK) {
                munmap(p, len);
            } else {
                mprotect(p, len, PROT_READ);
                m->base = p;
                m->base_len = len;
                m->data = p;
            }
        }
    } else {
        s = ds_err_set(err, DS_ERR_INVALID_ARG, "unknown load mode %d", mode);
    }
    close(fd);
    if (s != DS_OK)
        memset(m, 0, sizeof *m);
    return s;
}

void ds_mapping_close(ds_mapping *m)
{
    if (!m)
        return;
    if (m->base)
        munmap(m->base, m->base_len);
    memset(m, 0, sizeof *m);
}
