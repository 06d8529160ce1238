/*
 * lib/format/gguf.h — a hardened GGUF v2/v3 parser over an in-memory byte range.
 *
 * Owns: parsing the header, the metadata (every value type, nested arrays) and the tensor
 * records, and validating all of it against the buffer size before anything is used:
 * string lengths, counts (no allocation larger than what the remaining bytes could encode),
 * value/element types, duplicate keys and names, general.alignment, dimension counts and
 * products, type ids, block divisibility, offsets and sizes with overflow checks, overlap.
 * It knows no architecture. It never reads outside [data, data+size).
 *
 * The parsed gguf_file points into the caller's buffer (strings and tensor data are views);
 * keys and tensor names are also copied as NUL-terminated strings. The buffer must outlive
 * the gguf_file. Layout reference: shared/docs/formats.md §1.
 */
#ifndef DS_FORMAT_GGUF_H
#define DS_FORMAT_GGUF_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4,
    GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9,
    GGUF_UINT64 = 10, GGUF_INT64 = 11, GGUF_FLOAT64 = 12, GGUF_VTYPE_COUNT = 13
};

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_KEY_LEN 65535
#define GGUF_MAX_NAME_LEN 63
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_MAX_ALIGNMENT (1u << 20)

/* A string inside the buffer: not NUL-terminated, may hold any bytes. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_value gguf_value;

/* An array value. Numeric/bool elements are left packed in the buffer (`data`, little-endian,
 * possibly unaligned — read them with gguf_arr_* below). STRING elements are in `strs`;
 * ARRAY elements (nested arrays) are in `items`. */
typedef struct gguf_array {
    uint32_t elem_type;
    uint64_t count;
    const uint8_t *data;     /* numeric/bool elements */
    gguf_str *strs;          /* elem_type == GGUF_STRING: count entries (owned) */
    gguf_value *items;       /* elem_type == GGUF_ARRAY: count entries (owned) */
} gguf_array;

struct gguf_value {
    uint32_t type;           /* enum gguf_vtype */
    union {
        uint64_t u64;        /* UINT8..UINT64 (zero-extended), BOOL (0/1) */
        int64_t i64;         /* INT8..INT64 (sign-extended) */
        double f64;          /* FLOAT32, FLOAT64 */
        gguf_str str;        /* STRING */
        gguf_array arr;      /* ARRAY */
    } v;
};

typedef struct gguf_kv {
    char *key;               /* NUL-terminated copy (owned) */
    uint64_t file_offset;    /* offset of the key/value record, for messages */
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor {
    char *name;              /* NUL-terminated copy (owned) */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];  /* unused dims are 1 */
    uint32_t type;           /* ggml type id (known, see ggml_types.h) */
    uint64_t offset;         /* relative to data_start */
    uint64_t nbytes;
    uint64_t n_elems;
    uint64_t row_bytes;      /* bytes of one ne[0] row */
    const uint8_t *data;     /* view into the buffer: data_start + offset */
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *buf;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    /* open-addressing hash indexes (owned) */
    uint64_t *kv_index;      /* slots: index+1, 0 = empty */
    uint64_t kv_index_cap;
    uint64_t *t_index;
    uint64_t t_index_cap;
} gguf_file;

/* Parse and validate. On failure `out` is left empty (nothing to free) and err names the
 * section, key or tensor and the byte offset. Status: DS_ERR_FORMAT for malformed input,
 * DS_ERR_UNSUPPORTED for a well-formed file of an unsupported version/type, DS_ERR_NO_MEMORY. */
ds_status gguf_parse(gguf_file *out, const uint8_t *buf, size_t size, ds_err *err);
void gguf_free(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters with conversion and range checks. Return DS_ERR_NOT_FOUND when absent, and
 * DS_ERR_FORMAT (message names the key) when the type is not convertible or out of range. */
ds_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ds_err *err);
ds_status gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, ds_err *err);
ds_status gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ds_err *err);
ds_status gguf_get_f32(const gguf_file *f, const char *key, float *out, ds_err *err);
ds_status gguf_get_bool(const gguf_file *f, const char *key, bool *out, ds_err *err);
/* String values: view into the buffer (not NUL-terminated). */
ds_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ds_err *err);
/* Array values of a given element type (GGUF_VTYPE_COUNT = any). */
ds_status gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                       const gguf_array **out, ds_err *err);

/* Read element i of a packed numeric array (caller checks i < count and elem_type). */
uint64_t gguf_arr_u64(const gguf_array *a, uint64_t i);  /* unsigned and bool types */
int64_t gguf_arr_i64(const gguf_array *a, uint64_t i);   /* signed or unsigned int types */
double gguf_arr_f64(const gguf_array *a, uint64_t i);    /* any numeric type */

/* Size in bytes of a scalar value type (0 for STRING/ARRAY/unknown). */
size_t gguf_vtype_size(uint32_t type);
const char *gguf_vtype_name(uint32_t type);

#endif
