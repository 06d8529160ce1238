/*
 * tests/unit/gguf_builder.h — a small in-memory GGUF writer for tests.
 *
 * Builds GGUF v3 files byte by byte: header, metadata of every value type (nested arrays and
 * string arrays included), tensor records, alignment padding and tensor data. It knows nothing
 * of the library: block sizes of the few ggml types it lays out are its own table, so a test
 * compares the parser against an independent writer.
 *
 * Knobs for broken files: override the magic, the version and both header counts; write any
 * value type id, array element type, string length (declared length != bytes written),
 * n_dims (independent of the number of ne values written), tensor type id and offset; remove
 * or replace any key or tensor; and cut the result at any byte (gb_build gives the layout of
 * every section so a test can truncate inside a chosen record).
 *
 * Allocation failures abort (this is test code).
 */
#ifndef DS_TESTS_GGUF_BUILDER_H
#define DS_TESTS_GGUF_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF value type ids (formats.md §1.2), independent of lib/format/gguf.h. */
enum {
    GB_UINT8 = 0, GB_INT8 = 1, GB_UINT16 = 2, GB_INT16 = 3, GB_UINT32 = 4, GB_INT32 = 5,
    GB_FLOAT32 = 6, GB_BOOL = 7, GB_STRING = 8, GB_ARRAY = 9, GB_UINT64 = 10, GB_INT64 = 11,
    GB_FLOAT64 = 12
};

/* ggml tensor type ids used by the tests. */
enum {
    GB_T_F32 = 0, GB_T_F16 = 1, GB_T_Q4_0 = 2, GB_T_Q8_0 = 8, GB_T_Q4_K = 12, GB_T_Q6_K = 14, GB_T_Q8_K = 15, GB_T_IQ2_XXS = 16,
    GB_T_I64 = 27, GB_T_F64 = 28, GB_T_BF16 = 30
};

/* ---- a growable byte buffer with little-endian writers ---------------------------------- */

typedef struct gb_blob {
    uint8_t *data;
    size_t len;
    size_t cap;
} gb_blob;

void gb_blob_init(gb_blob *b);
void gb_blob_free(gb_blob *b);
void gb_put_bytes(gb_blob *b, const void *p, size_t n);
void gb_put_zeros(gb_blob *b, size_t n);
void gb_put_u8(gb_blob *b, uint8_t v);
void gb_put_u16(gb_blob *b, uint16_t v);
void gb_put_u32(gb_blob *b, uint32_t v);
void gb_put_u64(gb_blob *b, uint64_t v);
void gb_put_f32(gb_blob *b, float v);
void gb_put_f64(gb_blob *b, double v);
/* A GGUF string: u64 length + bytes. */
void gb_put_str(gb_blob *b, const char *s);
void gb_put_strn(gb_blob *b, const void *p, size_t n);
/* A string whose length field says `declared` but only `n` bytes follow (broken files). */
void gb_put_str_declared(gb_blob *b, uint64_t declared, const void *p, size_t n);
/* An array header: elem_type u32 + count u64 (the caller writes the elements). */
void gb_put_arr_hdr(gb_blob *b, uint32_t elem_type, uint64_t count);

/* ---- the builder ------------------------------------------------------------------------- */

typedef struct gb_tensor {
    uint8_t name[128];         /* raw name bytes (may hold NUL or invalid UTF-8) */
    size_t name_len;           /* bytes written */
    bool name_declared_set;
    uint64_t name_declared;    /* length field written, if set */
    uint32_t n_dims;           /* value written in the record */
    uint32_t n_ne;             /* number of ne values written (default n_dims, max 8) */
    uint64_t ne[8];
    uint32_t type;             /* written as is */
    bool offset_set;
    uint64_t offset;           /* written instead of the computed offset, if offset_set */
    uint64_t nbytes;           /* bytes laid out in the data section */
    uint8_t *data;             /* nbytes bytes (owned) */
    uint64_t layout_offset;    /* computed by gb_build: offset relative to data_start */
} gb_tensor;

typedef struct gguf_builder gguf_builder;

gguf_builder *gb_new(void);
void gb_free(gguf_builder *b);

/* Header knobs. */
void gb_set_magic(gguf_builder *b, const char magic[4]);
void gb_set_version(gguf_builder *b, uint32_t version);
void gb_set_kv_count(gguf_builder *b, uint64_t n);       /* written instead of the real count */
void gb_set_tensor_count(gguf_builder *b, uint64_t n);
/* Alignment of the layout (data start and tensor offsets). Does NOT add general.alignment. */
void gb_set_alignment(gguf_builder *b, uint32_t alignment);
/* Pad the last tensor's data to the alignment (as llama.cpp's writer does; default true). */
void gb_set_trailing_pad(gguf_builder *b, bool pad);

/* ---- metadata (appended in order; duplicates are allowed, to build broken files) --------- */

void gb_kv_u8(gguf_builder *b, const char *key, uint8_t v);
void gb_kv_i8(gguf_builder *b, const char *key, int8_t v);
void gb_kv_u16(gguf_builder *b, const char *key, uint16_t v);
void gb_kv_i16(gguf_builder *b, const char *key, int16_t v);
void gb_kv_u32(gguf_builder *b, const char *key, uint32_t v);
void gb_kv_i32(gguf_builder *b, const char *key, int32_t v);
void gb_kv_u64(gguf_builder *b, const char *key, uint64_t v);
void gb_kv_i64(gguf_builder *b, const char *key, int64_t v);
void gb_kv_f32(gguf_builder *b, const char *key, float v);
void gb_kv_f64(gguf_builder *b, const char *key, double v);
void gb_kv_bool(gguf_builder *b, const char *key, uint8_t raw);  /* raw byte: 0, 1 or broken */
void gb_kv_str(gguf_builder *b, const char *key, const char *s);
void gb_kv_strn(gguf_builder *b, const char *key, const void *p, size_t n);
/* A numeric/bool array from packed little-endian elements (count elements, nbytes bytes). */
void gb_kv_arr(gguf_builder *b, const char *key, uint32_t elem_type, uint64_t count,
               const void *packed, size_t nbytes);
void gb_kv_arr_i32(gguf_builder *b, const char *key, const int32_t *v, size_t n);
void gb_kv_arr_f32(gguf_builder *b, const char *key, const float *v, size_t n);
void gb_kv_arr_str(gguf_builder *b, const char *key, const char *const *s, size_t n);
/* key (as a normal GGUF string) + type id + the value bytes in `value`, verbatim. */
void gb_kv_value(gguf_builder *b, const char *key, uint32_t type, const gb_blob *value);
/* A whole record (key, type and value) verbatim; `lookup` names it for gb_kv_remove. */
void gb_kv_raw(gguf_builder *b, const char *lookup, const void *record, size_t n);
/* Remove every pair named `key`; returns how many were removed. */
int gb_kv_remove(gguf_builder *b, const char *key);
/* Index (in file order) of the first pair named `key`, or -1. */
long gb_kv_find(const gguf_builder *b, const char *key);
size_t gb_kv_count(const gguf_builder *b);

/* ---- tensors ------------------------------------------------------------------------------ */

/* Add a tensor with deterministic data (derived from its name) sized from its type and shape.
 * For types not in the builder's table, nbytes is the element count (set t->nbytes and call
 * gb_tensor_fill if a test needs another size). Returns a pointer valid until the next
 * gb_tensor_add/remove. */
gb_tensor *gb_tensor_add(gguf_builder *b, const char *name, uint32_t type, uint32_t n_dims,
                         const uint64_t *ne);
gb_tensor *gb_tensor_find(gguf_builder *b, const char *name);
gb_tensor *gb_tensor_at(gguf_builder *b, size_t i);
size_t gb_tensor_count(const gguf_builder *b);
bool gb_tensor_remove(gguf_builder *b, const char *name);
/* Change type or shape and recompute nbytes and data. */
void gb_tensor_set_type(gb_tensor *t, uint32_t type);
void gb_tensor_set_shape(gb_tensor *t, uint32_t n_dims, const uint64_t *ne);
/* Set raw name bytes (any bytes, up to 128). */
void gb_tensor_set_name(gb_tensor *t, const void *name, size_t n);
/* (Re)generate t->data for t->nbytes bytes. */
void gb_tensor_fill(gb_tensor *t);
/* Bytes of a tensor of `type` and shape ne (ceil for rows that are not whole blocks). */
uint64_t gb_type_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne);

/* ---- output -------------------------------------------------------------------------------- */

/* Where things landed in the last gb_build (absolute file offsets). */
typedef struct gb_layout {
    size_t header_end;        /* end of magic/version/counts (24) */
    size_t n_kv;
    size_t *kv_off;           /* start of each kv record (n_kv entries) */
    size_t kv_end;
    size_t n_tensors;
    size_t *tensor_rec_off;   /* start of each tensor record */
    size_t infos_end;         /* end of the last tensor record */
    size_t data_start;        /* aligned start of the data section */
    size_t *tensor_data_off;  /* absolute offset of each tensor's data */
    size_t size;              /* total size */
} gb_layout;

/* Serialize. Returns a malloc'd buffer of *size bytes (caller frees). */
uint8_t *gb_build(gguf_builder *b, size_t *size);
const gb_layout *gb_get_layout(const gguf_builder *b);
/* Serialize and write to `path`, keeping only the first `keep` bytes (SIZE_MAX: all).
 * Returns 0 on success. */
int gb_write_file(gguf_builder *b, const char *path, size_t keep);
/* Write a buffer to a file. Returns 0 on success. */
int gb_write_bytes(const char *path, const void *p, size_t n);

/* ---- a tiny deepseek2 model --------------------------------------------------------------- */

typedef struct gb_ds2_config {
    const char *name;               /* general.name (NULL: none) */
    uint32_t n_layer, n_embd, n_head, n_vocab, n_ctx;
    uint32_t q_lora_rank;           /* 0: attn_q (no q-LoRA) */
    uint32_t kv_lora_rank, qk_nope, qk_rope, v_head;
    uint32_t n_ff;
    uint32_t n_expert, n_expert_used, n_expert_shared, n_ff_exp, n_leading_dense;
    uint32_t n_group, n_group_used; /* 0: keys absent */
    uint32_t gating;                /* 0: key absent; else 1 softmax, 2 sigmoid */
    bool kv_split;                  /* MLA attn_k_b/attn_v_b (+ _mla keys, head_count_kv 1) */
    bool exp_probs_b;
    bool expert_weights_norm;       /* written as BOOL when true */
    float expert_weights_scale;     /* 0: key absent */
    float rms_eps, rope_freq_base;
    bool yarn;
    float yarn_factor, yarn_log_multiplier;
    uint32_t yarn_orig_ctx;
    uint32_t matrix_type;           /* type of weight matrices whose ne[0] fits its blocks; else F16 */
    bool write_vocab_size;          /* deepseek2.vocab_size */
} gb_ds2_config;

/* A tiny config: 2 layers (1 dense + 1 MoE), d 32, 2 heads, combined kv_b, F16 matrices. */
void gb_ds2_default(gb_ds2_config *c);
/* An even smaller one (a file of a few KB) for exhaustive truncation sweeps. */
void gb_ds2_small(gb_ds2_config *c);
/* Add general.architecture, every deepseek2.* key and every tensor of the config. */
void gb_add_ds2(gguf_builder *b, const gb_ds2_config *c);
/* Parameter count (sum of tensor elements) of the model gb_add_ds2 writes. */
uint64_t gb_ds2_n_params(const gb_ds2_config *c);

#endif
