/*
 * lib/model/model.h — the internal model: hyperparameters and weight views bound by name.
 *
 * Owns: the architecture registry (which GGUF architectures exist and which we support),
 * reading the deepseek2 hyperparameters from GGUF metadata, and binding every tensor the
 * architecture needs to a typed view into the mapping, checked for presence, shape and type.
 * It runs nothing. Names and math: shared/docs/deepseek-architectures.md §2 and §4.2-4.3.
 */
#ifndef DS_MODEL_MODEL_H
#define DS_MODEL_MODEL_H

#include "format/gguf.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight tensor view. For a matrix (n_dims >= 2) ne[0] is the input width (contiguous) and
 * ne[1] the number of output rows; expert stacks have ne[2] = n_expert, each expert matrix
 * contiguous (expert e starts at data + e * ne[1] * row_bytes). data == NULL: absent. */
typedef struct ds_weight {
    const char *name;        /* tensor name (owned by the gguf_file) */
    uint32_t type;           /* ggml type id */
    int64_t ne[4];
    size_t row_bytes;        /* bytes of one ne[0] row */
    size_t nbytes;
    const void *data;
    uint32_t layout;         /* DS_LAYOUT_ROWS (ggml's), or DS_LAYOUT_R16 (repacked at load) */
} ds_weight;

/* ds_weight.layout. R16: groups of 16 rows interleaved for the decode GEMV (lib/kernels/
 * repack.c); only ds_mm reads such a weight (ds_mm_run_rows with ranges on 16-row bounds). */
#define DS_LAYOUT_ROWS 0u
#define DS_LAYOUT_R16 1u

/* deepseek2 hyperparameters (V2, V2-Lite, V3, R1). */
typedef struct ds2_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train;
    uint32_t n_embd;               /* d */
    uint32_t n_layer;
    uint32_t n_head;               /* H */
    uint32_t n_head_kv;            /* as stored (1 for MLA files) */
    uint32_t n_ff;                 /* dense FFN width */
    uint32_t q_lora_rank;          /* 0: no q-LoRA (attn_q used) */
    uint32_t kv_lora_rank;         /* d_c */
    uint32_t qk_nope;              /* d_n */
    uint32_t qk_rope;              /* d_r */
    uint32_t v_head;               /* d_v */
    uint32_t n_expert;             /* 0: no MoE */
    uint32_t n_expert_used;
    uint32_t n_expert_shared;
    uint32_t n_ff_exp;
    uint32_t n_leading_dense;
    uint32_t n_group;              /* >= 1 */
    uint32_t n_group_used;         /* >= 1 */
    uint32_t gating;               /* ds_gating: SOFTMAX or SIGMOID */
    bool expert_weights_norm;
    float expert_weights_scale;    /* routed scaling factor (1.0 if absent) */
    float rms_eps;
    float rope_freq_base;
    uint32_t rope_scaling;         /* ds_rope_scaling */
    float rope_factor;             /* s (1.0 if no scaling) */
    uint32_t rope_orig_ctx;        /* L_orig */
    float mscale_all_dim;          /* yarn_log_multiplier / 0.1 (0 if absent) */
    float yarn_beta_fast;          /* 32 */
    float yarn_beta_slow;          /* 1 */
    bool kv_split;                 /* true: attn_k_b/attn_v_b; false: attn_kv_b */
} ds2_hparams;

typedef struct ds2_layer {
    bool is_moe;
    ds_weight attn_norm;           /* {d} */
    ds_weight attn_q;              /* {d, H*(d_n+d_r)}         no q-LoRA */
    ds_weight attn_q_a;            /* {d, d_q}                 q-LoRA */
    ds_weight attn_q_a_norm;       /* {d_q} */
    ds_weight attn_q_b;            /* {d_q, H*(d_n+d_r)} */
    ds_weight attn_kv_a_mqa;       /* {d, d_c+d_r} */
    ds_weight attn_kv_a_norm;      /* {d_c} */
    ds_weight attn_kv_b;           /* {d_c, H*(d_n+d_v)}       combined form */
    ds_weight attn_k_b;            /* {d_n, d_c, H}            split form (W_UK_i^T) */
    ds_weight attn_v_b;            /* {d_c, d_v, H}            split form (W_UV_i) */
    ds_weight attn_output;         /* {H*d_v, d} */
    ds_weight ffn_norm;            /* {d} */
    ds_weight ffn_gate, ffn_up;    /* {d, n_ff}                dense layers */
    ds_weight ffn_down;            /* {n_ff, d} */
    ds_weight ffn_gate_inp;        /* {d, n_expert}            MoE router */
    ds_weight exp_probs_b;         /* {n_expert} f32           optional selection bias */
    ds_weight ffn_gate_exps, ffn_up_exps;   /* {d, n_ff_exp, n_expert} */
    ds_weight ffn_down_exps;                /* {n_ff_exp, d, n_expert} */
    ds_weight ffn_gate_shexp, ffn_up_shexp; /* {d, n_ff_exp*n_shared} */
    ds_weight ffn_down_shexp;               /* {n_ff_exp*n_shared, d} */
} ds2_layer;

typedef struct ds2_weights {
    ds_weight token_embd;          /* {d, vocab} */
    ds_weight output_norm;         /* {d} */
    ds_weight output;              /* {d, vocab} */
    ds2_layer *layers;             /* n_layer entries (owned) */
} ds2_weights;

/* The architecture a file declares, and whether we run it. */
typedef enum ds_arch {
    DS_ARCH_UNKNOWN = 0,
    DS_ARCH_DEEPSEEK2 = 1
} ds_arch;

typedef struct ds_model_data {
    ds_arch arch;
    char arch_name[64];
    ds2_hparams hp;
    ds2_weights w;
    uint64_t n_params;
} ds_model_data;

/* Read hyperparameters and bind tensors from a parsed GGUF. With vocab_only, only the
 * architecture name is read and no tensor is required. On failure `md` is left empty. */
ds_status ds_model_data_load(ds_model_data *md, const gguf_file *f, bool vocab_only, ds_err *err);
void ds_model_data_free(ds_model_data *md);
/* Repack the qualifying matrices of a model loaded into the writable anonymous memory
 * [base, base + base_len) into the R16 layout, in place, with n_threads threads
 * (repack_weights.c). Counts what it converted. Fails only when out of memory. */
ds_status ds_model_data_repack(ds_model_data *md, void *base, size_t base_len, int n_threads,
                               uint64_t *n_tensors, uint64_t *n_bytes, ds_err *err);

/* Softmax scale of MLA attention: mscale^2 / sqrt(d_n + d_r) (§2.4). */
float ds2_attn_scale(const ds2_hparams *hp);
/* KV cache bytes per token over all layers for an element of `elem_bytes` (absorbed form). */
uint64_t ds2_kv_bytes_per_token(const ds2_hparams *hp, size_t elem_bytes);

#endif
