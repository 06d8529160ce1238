/*
 * lib/format/ggml_types.c — the ggml type table (formats.md §2.1).
 */
#include "format/ggml_types.h"

static const ds_ggml_type_traits k_unknown = {"unknown", 0, 0};

static const ds_ggml_type_traits k_types[DS_GGML_TYPE_COUNT] = {
    [DS_GGML_F32] = {"F32", 1, 4},
    [DS_GGML_F16] = {"F16", 1, 2},
    [DS_GGML_Q4_0] = {"Q4_0", 32, 18},
    [DS_GGML_Q4_1] = {"Q4_1", 32, 20},
    [4] = {"unknown", 0, 0},
    [5] = {"unknown", 0, 0},
    [DS_GGML_Q5_0] = {"Q5_0", 32, 22},
    [DS_GGML_Q5_1] = {"Q5_1", 32, 24},
    [DS_GGML_Q8_0] = {"Q8_0", 32, 34},
    [DS_GGML_Q8_1] = {"Q8_1", 32, 36},
    [DS_GGML_Q2_K] = {"Q2_K", 256, 84},
    [DS_GGML_Q3_K] = {"Q3_K", 256, 110},
    [DS_GGML_Q4_K] = {"Q4_K", 256, 144},
    [DS_GGML_Q5_K] = {"Q5_K", 256, 176},
    [DS_GGML_Q6_K] = {"Q6_K", 256, 210},
    [DS_GGML_Q8_K] = {"Q8_K", 256, 292},
    [DS_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [DS_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [DS_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [DS_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [DS_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [DS_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [DS_GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [DS_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [DS_GGML_I8] = {"I8", 1, 1},
    [DS_GGML_I16] = {"I16", 1, 2},
    [DS_GGML_I32] = {"I32", 1, 4},
    [DS_GGML_I64] = {"I64", 1, 8},
    [DS_GGML_F64] = {"F64", 1, 8},
    [DS_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [DS_GGML_BF16] = {"BF16", 1, 2},
    [31] = {"unknown", 0, 0},
    [32] = {"unknown", 0, 0},
    [33] = {"unknown", 0, 0},
    [DS_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [DS_GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [36] = {"unknown", 0, 0},
    [37] = {"unknown", 0, 0},
    [38] = {"unknown", 0, 0},
};

const ds_ggml_type_traits *ds_ggml_type_get(uint32_t type)
{
    if (type >= DS_GGML_TYPE_COUNT)
        return &k_unknown;
    return &k_types[type];
}

bool ds_ggml_type_known(uint32_t type)
{
    return ds_ggml_type_get(type)->block_elems != 0;
}

const char *ds_ggml_type_name(uint32_t type)
{
    return ds_ggml_type_get(type)->name;
}
