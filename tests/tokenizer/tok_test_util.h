/*
 * tests/tokenizer/tok_test_util.h — helpers shared by the tokenizer tests (header-only).
 *
 * Paths: DS_SHARED_DIR (the shared fixtures, default ../shared) and DS_SOURCE_ROOT (the project,
 * default "."), both set by tests/meson.build.
 */
#ifndef TOK_TEST_UTIL_H
#define TOK_TEST_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* exit status meson counts as "skipped" */
#define TOK_TEST_SKIP_STATUS 77

static inline const char *tt_shared_dir(void)
{
    const char *d = getenv("DS_SHARED_DIR");
    return d && *d ? d : "../shared";
}

static inline const char *tt_source_root(void)
{
    const char *d = getenv("DS_SOURCE_ROOT");
    return d && *d ? d : ".";
}

/* Join into a static-per-call buffer the caller owns (malloc). */
static inline char *tt_path(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static inline bool tt_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Read a whole file; caller frees. NUL-terminated; *len excludes the NUL. */
static inline char *tt_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    char *b = malloc((size_t)n + 1);
    if (!b) {
        fclose(f);
        return NULL;
    }
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    if (len)
        *len = got;
    return b;
}

/* Deterministic PRNG (splitmix64). */
static inline uint64_t tt_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline size_t tt_put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* Print ids as "a b c" into a malloc'd string (caller frees). */
static inline char *tt_ids_str(const int32_t *ids, size_t n)
{
    char *s = malloc(n * 12 + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    s[0] = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "%s%d", i ? " " : "", (int)ids[i]);
    return s;
}

#endif
