/*
 * lib/format/ggml_types.h — the table of ggml tensor types found in GGUF files.
 *
 * Owns: type ids, names, block sizes (elements per block) and block byte sizes, and whether a
 * type is known at all. Ids that were removed from ggml (4, 5, 31-33, 36-38) and ids >= 39
 * are unknown. Layouts: shared/docs/formats.md §2.
 */
#ifndef DS_FORMAT_GGML_TYPES_H
#define DS_FORMAT_GGML_TYPES_H

#include <stdbool.h>
#include <stdint.h>

enum ds_ggml_type {
    DS_GGML_F32 = 0, DS_GGML_F16 = 1, DS_GGML_Q4_0 = 2, DS_GGML_Q4_1 = 3,
    DS_GGML_Q5_0 = 6, DS_GGML_Q5_1 = 7, DS_GGML_Q8_0 = 8, DS_GGML_Q8_1 = 9,
    DS_GGML_Q2_K = 10, DS_GGML_Q3_K = 11, DS_GGML_Q4_K = 12, DS_GGML_Q5_K = 13,
    DS_GGML_Q6_K = 14, DS_GGML_Q8_K = 15,
    DS_GGML_IQ2_XXS = 16, DS_GGML_IQ2_XS = 17, DS_GGML_IQ3_XXS = 18, DS_GGML_IQ1_S = 19,
    DS_GGML_IQ4_NL = 20, DS_GGML_IQ3_S = 21, DS_GGML_IQ2_S = 22, DS_GGML_IQ4_XS = 23,
    DS_GGML_I8 = 24, DS_GGML_I16 = 25, DS_GGML_I32 = 26, DS_GGML_I64 = 27, DS_GGML_F64 = 28,
    DS_GGML_IQ1_M = 29, DS_GGML_BF16 = 30, DS_GGML_TQ1_0 = 34, DS_GGML_TQ2_0 = 35,
    DS_GGML_TYPE_COUNT = 39
};

typedef struct ds_ggml_type_traits {
    const char *name;
    uint32_t block_elems;  /* elements per block; 0 = unknown/removed id */
    uint32_t block_bytes;  /* bytes per block */
} ds_ggml_type_traits;

/* Traits of `type`; for unknown ids block_elems == 0 and name == "unknown". */
const ds_ggml_type_traits *ds_ggml_type_get(uint32_t type);
bool ds_ggml_type_known(uint32_t type);
const char *ds_ggml_type_name(uint32_t type);

#endif
