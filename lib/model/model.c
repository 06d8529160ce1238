/*
 * lib/model/model.c — architecture registry, deepseek2 hyperparameters, tensor binding.
 *
 * Reads `deepseek2.*` metadata (deepseek-architectures.md §4.3) with the defaults real files
 * rely on (gating absent ⇒ softmax, weights_norm absent ⇒ false, weights_scale absent ⇒ 1,
 * groups absent ⇒ 1), decides q-LoRA and the kv_b form by tensor presence, and binds every
 * tensor with its expected ggml shape and a supported type. Nothing here runs a kernel.
 */
#include "model/model.h"

#include "format/ggml_types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GGUF architectures we know of; only deepseek2 runs today. */
static const char *const k_known_archs[] = {"deepseek2", "deepseek", "llama", "qwen2", NULL};

/* Weight types the kernels can multiply today. */
static bool matmul_type_supported(uint32_t type)
{
    switch (type) {
    case DS_GGML_F32: case DS_GGML_F16: case DS_GGML_BF16: case DS_GGML_Q8_0:
    case DS_GGML_Q4_0: case DS_GGML_Q4_1: case DS_GGML_Q5_0: case DS_GGML_Q5_1:
    case DS_GGML_Q2_K: case DS_GGML_Q3_K: case DS_GGML_Q4_K: case DS_GGML_Q5_K:
    case DS_GGML_Q6_K:
        return true;
    default:
        return false;
    }
}

typedef struct binder {
    const gguf_file *f;
    ds_err *err;
    uint64_t n_params;
} binder;

/* Bind `name` expecting ne = {e0, e1, e2} (0 = not checked / absent dims must be 1).
 * kind: 0 = matmul weight (any supported matmul type), 1 = f32 vector (norms, biases). */
static ds_status bind(binder *b, ds_weight *w, const char *name, bool required, int kind,
                      int64_t e0, int64_t e1, int64_t e2)
{
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(b->f, name);
    if (!t) {
        if (!required)
            return DS_OK;
        return ds_err_set(b->err, DS_ERR_FORMAT, "required tensor '%s' is missing", name);
    }
    int64_t want[4] = {e0, e1 ? e1 : 1, e2 ? e2 : 1, 1};
    for (int d = 0; d < 4; d++) {
        if ((int64_t)t->ne[d] != want[d])
            return ds_err_set(b->err, DS_ERR_FORMAT,
                              "tensor '%s' has shape {%llu, %llu, %llu, %llu}, expected {%lld, %lld, "
                              "%lld, 1} from the hyperparameters",
                              name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                              (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                              (long long)want[0], (long long)want[1], (long long)want[2]);
    }
    if (kind == 1) {
        if (t->type != DS_GGML_F32)
            return ds_err_set(b->err, DS_ERR_UNSUPPORTED,
                              "tensor '%s' has type %s; norm and bias vectors must be F32", name,
                              ds_ggml_type_name(t->type));
    } else if (!matmul_type_supported(t->type)) {
        return ds_err_set(b->err, DS_ERR_UNSUPPORTED,
                          "tensor '%s' has type %s, which this version cannot compute with "
                          "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                          name, ds_ggml_type_name(t->type));
    }
    w->name = t->name;
    w->type = t->type;
    for (int d = 0; d < 4; d++)
        w->ne[d] = (int64_t)t->ne[d];
    w->row_bytes = (size_t)t->row_bytes;
    w->nbytes = (size_t)t->nbytes;
    w->data = t->data;
    b->n_params += t->n_elems;
    return DS_OK;
}

static ds_status bindf(binder *b, ds_weight *w, bool required, int kind, int64_t e0, int64_t e1,
                       int64_t e2, const char *fmt, int layer)
{
    char name[96];
    snprintf(name, sizeof name, fmt, layer);
    return bind(b, w, name, required, kind, e0, e1, e2);
}

/* Read a required/optional u32 hyperparameter "<arch>.<key>". */
static ds_status hp_u32(const gguf_file *f, const char *arch, const char *key, uint32_t *out,
                        bool required, uint32_t dflt, ds_err *err)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    ds_status s = gguf_get_u32(f, full, out, err);
    if (s == DS_ERR_NOT_FOUND) {
        if (required)
            return ds_err_set(err, DS_ERR_FORMAT, "required metadata key '%s' is missing", full);
        *out = dflt;
        return DS_OK;
    }
    return s;
}

static ds_status hp_f32(const gguf_file *f, const char *arch, const char *key, float *out,
                        bool required, float dflt, ds_err *err)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    ds_status s = gguf_get_f32(f, full, out, err);
    if (s == DS_ERR_NOT_FOUND) {
        if (required)
            return ds_err_set(err, DS_ERR_FORMAT, "required metadata key '%s' is missing", full);
        *out = dflt;
        return DS_OK;
    }
    if (s == DS_OK && !isfinite(*out))
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key '%s' is not finite", full);
    return s;
}

#define TRY(x)                    \
    do {                          \
        ds_status s_ = (x);       \
        if (s_ != DS_OK)          \
            return s_;            \
    } while (0)

static ds_status range(ds_err *err, const char *what, uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v < lo || v > hi)
        return ds_err_set(err, DS_ERR_FORMAT, "hyperparameter %s = %llu is out of range [%llu, %llu]",
                          what, (unsigned long long)v, (unsigned long long)lo,
                          (unsigned long long)hi);
    return DS_OK;
}

static ds_status read_ds2_hparams(const gguf_file *f, ds2_hparams *hp, ds_err *err)
{
    const char *a = "deepseek2";
    memset(hp, 0, sizeof *hp);
    TRY(hp_u32(f, a, "block_count", &hp->n_layer, true, 0, err));
    TRY(hp_u32(f, a, "context_length", &hp->n_ctx_train, true, 0, err));
    TRY(hp_u32(f, a, "embedding_length", &hp->n_embd, true, 0, err));
    TRY(hp_u32(f, a, "feed_forward_length", &hp->n_ff, true, 0, err));
    TRY(hp_u32(f, a, "attention.head_count", &hp->n_head, true, 0, err));
    TRY(hp_u32(f, a, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head, err));
    TRY(hp_u32(f, a, "attention.q_lora_rank", &hp->q_lora_rank, false, 0, err));
    TRY(hp_u32(f, a, "attention.kv_lora_rank", &hp->kv_lora_rank, true, 0, err));
    TRY(hp_u32(f, a, "rope.dimension_count", &hp->qk_rope, true, 0, err));
    uint32_t key_len, val_len, key_mla, val_mla;
    TRY(hp_u32(f, a, "attention.key_length", &key_len, true, 0, err));
    TRY(hp_u32(f, a, "attention.value_length", &val_len, true, 0, err));
    TRY(hp_u32(f, a, "attention.key_length_mla", &key_mla, false, 0, err));
    TRY(hp_u32(f, a, "attention.value_length_mla", &val_mla, false, 0, err));
    uint32_t qk = key_mla ? key_mla : key_len;
    hp->v_head = val_mla ? val_mla : val_len;
    if (qk <= hp->qk_rope)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "attention key length %u is not larger than the rope dimension %u", qk,
                          hp->qk_rope);
    hp->qk_nope = qk - hp->qk_rope;
    TRY(hp_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps, true, 0, err));
    TRY(hp_f32(f, a, "rope.freq_base", &hp->rope_freq_base, false, 10000.0f, err));

    TRY(hp_u32(f, a, "leading_dense_block_count", &hp->n_leading_dense, false, 0, err));
    TRY(hp_u32(f, a, "expert_count", &hp->n_expert, false, 0, err));
    TRY(hp_u32(f, a, "expert_used_count", &hp->n_expert_used, false, 0, err));
    TRY(hp_u32(f, a, "expert_shared_count", &hp->n_expert_shared, false, 0, err));
    TRY(hp_u32(f, a, "expert_feed_forward_length", &hp->n_ff_exp, false, 0, err));
    TRY(hp_u32(f, a, "expert_group_count", &hp->n_group, false, 1, err));
    TRY(hp_u32(f, a, "expert_group_used_count", &hp->n_group_used, false, hp->n_group, err));
    uint32_t gating;
    TRY(hp_u32(f, a, "expert_gating_func", &gating, false, 0, err));
    hp->gating = gating == 0 ? DS_GATING_SOFTMAX : gating;
    if (hp->gating != DS_GATING_SOFTMAX && hp->gating != DS_GATING_SIGMOID)
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "metadata key 'deepseek2.expert_gating_func' = %u is not a known gating "
                          "function (1 softmax, 2 sigmoid)",
                          gating);
    TRY(hp_f32(f, a, "expert_weights_scale", &hp->expert_weights_scale, false, 1.0f, err));
    ds_status s = gguf_get_bool(f, "deepseek2.expert_weights_norm", &hp->expert_weights_norm, err);
    if (s == DS_ERR_NOT_FOUND)
        hp->expert_weights_norm = false;
    else if (s != DS_OK)
        return s;

    /* RoPE scaling */
    gguf_str st;
    s = gguf_get_str(f, "deepseek2.rope.scaling.type", &st, err);
    hp->rope_scaling = DS_ROPE_SCALING_NONE;
    hp->rope_factor = 1.0f;
    if (s == DS_OK) {
        if (st.len == 4 && memcmp(st.ptr, "yarn", 4) == 0)
            hp->rope_scaling = DS_ROPE_SCALING_YARN;
        else if (st.len == 4 && memcmp(st.ptr, "none", 4) == 0)
            hp->rope_scaling = DS_ROPE_SCALING_NONE;
        else
            return ds_err_set(err, DS_ERR_UNSUPPORTED,
                              "metadata key 'deepseek2.rope.scaling.type' = '%.*s' is not supported "
                              "for deepseek2 (only yarn or none)",
                              (int)(st.len > 32 ? 32 : st.len), st.ptr);
    } else if (s != DS_ERR_NOT_FOUND) {
        return s;
    }
    if (hp->rope_scaling == DS_ROPE_SCALING_YARN) {
        TRY(hp_f32(f, a, "rope.scaling.factor", &hp->rope_factor, true, 1.0f, err));
        TRY(hp_u32(f, a, "rope.scaling.original_context_length", &hp->rope_orig_ctx, true, 0, err));
        float lm;
        TRY(hp_f32(f, a, "rope.scaling.yarn_log_multiplier", &lm, false, 0.0f, err));
        hp->mscale_all_dim = lm / 0.1f;
        if (!(hp->rope_factor >= 1.0f && hp->rope_factor <= 1e6f))
            return ds_err_set(err, DS_ERR_FORMAT, "rope scaling factor %g is out of range",
                              (double)hp->rope_factor);
        TRY(range(err, "rope.scaling.original_context_length", hp->rope_orig_ctx, 1, 1u << 30));
    }
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;

    /* sanity ranges (prevent absurd allocations and division by zero later) */
    TRY(range(err, "block_count", hp->n_layer, 1, 1024));
    TRY(range(err, "embedding_length", hp->n_embd, 1, 1u << 18));
    TRY(range(err, "attention.head_count", hp->n_head, 1, 4096));
    TRY(range(err, "attention.head_count_kv", hp->n_head_kv, 1, hp->n_head));
    TRY(range(err, "feed_forward_length", hp->n_ff, 1, 1u << 20));
    TRY(range(err, "attention.kv_lora_rank", hp->kv_lora_rank, 1, 1u << 16));
    TRY(range(err, "rope.dimension_count", hp->qk_rope, 2, 1024));
    if (hp->qk_rope % 2)
        return ds_err_set(err, DS_ERR_FORMAT, "rope dimension %u is odd", hp->qk_rope);
    TRY(range(err, "qk_nope_head_dim", hp->qk_nope, 1, 4096));
    TRY(range(err, "v_head_dim", hp->v_head, 1, 4096));
    TRY(range(err, "context_length", hp->n_ctx_train, 1, 1u << 30));
    TRY(range(err, "leading_dense_block_count", hp->n_leading_dense, 0, hp->n_layer));
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return ds_err_set(err, DS_ERR_FORMAT, "rms epsilon %g is out of range", (double)hp->rms_eps);
    if (!(hp->rope_freq_base > 1.0f))
        return ds_err_set(err, DS_ERR_FORMAT, "rope freq_base %g is out of range",
                          (double)hp->rope_freq_base);
    if (hp->n_leading_dense < hp->n_layer) {
        /* there are MoE layers */
        TRY(range(err, "expert_count", hp->n_expert, 1, 1u << 16));
        TRY(range(err, "expert_used_count", hp->n_expert_used, 1, hp->n_expert));
        TRY(range(err, "expert_feed_forward_length", hp->n_ff_exp, 1, 1u << 20));
        TRY(range(err, "expert_shared_count", hp->n_expert_shared, 0, 1024));
        TRY(range(err, "expert_group_count", hp->n_group, 1, hp->n_expert));
        TRY(range(err, "expert_group_used_count", hp->n_group_used, 1, hp->n_group));
        if (hp->n_expert % hp->n_group)
            return ds_err_set(err, DS_ERR_FORMAT, "expert_count %u is not divisible by %u groups",
                              hp->n_expert, hp->n_group);
        if ((uint64_t)hp->n_group_used * (hp->n_expert / hp->n_group) < hp->n_expert_used)
            return ds_err_set(err, DS_ERR_FORMAT,
                              "the %u kept groups hold fewer experts than the %u used per token",
                              hp->n_group_used, hp->n_expert_used);
        if (hp->gating == DS_GATING_SIGMOID && hp->n_group > 1 && hp->n_expert / hp->n_group < 2)
            return ds_err_set(err, DS_ERR_FORMAT,
                              "sigmoid group scoring needs at least 2 experts per group");
        if (!(hp->expert_weights_scale > 0.0f))
            return ds_err_set(err, DS_ERR_FORMAT, "expert_weights_scale %g is out of range",
                              (double)hp->expert_weights_scale);
    } else {
        hp->n_expert = hp->n_expert_used = hp->n_expert_shared = hp->n_ff_exp = 0;
        hp->n_group = hp->n_group_used = 1;
    }
    return DS_OK;
}

static ds_status bind_ds2(ds_model_data *md, const gguf_file *f, ds_err *err)
{
    ds2_hparams *hp = &md->hp;
    binder b = {f, err, 0};
    const int64_t d = hp->n_embd, H = hp->n_head, dq = hp->q_lora_rank, dc = hp->kv_lora_rank;
    const int64_t dn = hp->qk_nope, dr = hp->qk_rope, dv = hp->v_head;

    /* vocab size from the embedding (metadata vocab_size, if present, must agree) */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te)
        return ds_err_set(err, DS_ERR_FORMAT, "required tensor 'token_embd.weight' is missing");
    if (te->ne[1] > INT32_MAX)
        return ds_err_set(err, DS_ERR_FORMAT, "tensor 'token_embd.weight' has %llu rows",
                          (unsigned long long)te->ne[1]);
    hp->n_vocab = (uint32_t)te->ne[1];
    uint32_t vs;
    ds_status s = gguf_get_u32(f, "deepseek2.vocab_size", &vs, err);
    if (s == DS_OK && vs != hp->n_vocab)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "metadata deepseek2.vocab_size = %u disagrees with token_embd.weight (%u rows)",
                          vs, hp->n_vocab);
    if (s != DS_OK && s != DS_ERR_NOT_FOUND)
        return s;

    TRY(bind(&b, &md->w.token_embd, "token_embd.weight", true, 0, d, hp->n_vocab, 0));
    TRY(bind(&b, &md->w.output_norm, "output_norm.weight", true, 1, d, 0, 0));
    TRY(bind(&b, &md->w.output, "output.weight", true, 0, d, hp->n_vocab, 0));

    /* q-LoRA and kv_b form by tensor presence (not by layer count) */
    bool has_q_a = gguf_find_tensor(f, "blk.0.attn_q_a.weight") != NULL;
    bool has_q = gguf_find_tensor(f, "blk.0.attn_q.weight") != NULL;
    if (has_q_a == has_q)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "layer 0 must have exactly one of attn_q (no q-LoRA) and attn_q_a (q-LoRA)");
    if (has_q_a && dq == 0)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "attn_q_a is present but deepseek2.attention.q_lora_rank is missing or 0");
    if (!has_q_a)
        hp->q_lora_rank = 0;
    bool has_kvb = gguf_find_tensor(f, "blk.0.attn_kv_b.weight") != NULL;
    bool has_kb = gguf_find_tensor(f, "blk.0.attn_k_b.weight") != NULL;
    if (!has_kvb && !has_kb)
        return ds_err_set(err, DS_ERR_FORMAT,
                          "layer 0 has neither attn_kv_b nor attn_k_b/attn_v_b");
    hp->kv_split = has_kb;

    md->w.layers = calloc(hp->n_layer, sizeof *md->w.layers);
    if (!md->w.layers)
        return ds_err_set(err, DS_ERR_NO_MEMORY, "cannot allocate %u layers", hp->n_layer);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        ds2_layer *L = &md->w.layers[il];
        int i = (int)il;
        L->is_moe = il >= hp->n_leading_dense;
        TRY(bindf(&b, &L->attn_norm, true, 1, d, 0, 0, "blk.%d.attn_norm.weight", i));
        if (hp->q_lora_rank) {
            TRY(bindf(&b, &L->attn_q_a, true, 0, d, dq, 0, "blk.%d.attn_q_a.weight", i));
            TRY(bindf(&b, &L->attn_q_a_norm, true, 1, dq, 0, 0, "blk.%d.attn_q_a_norm.weight", i));
            TRY(bindf(&b, &L->attn_q_b, true, 0, dq, H * (dn + dr), 0, "blk.%d.attn_q_b.weight", i));
        } else {
            TRY(bindf(&b, &L->attn_q, true, 0, d, H * (dn + dr), 0, "blk.%d.attn_q.weight", i));
        }
        TRY(bindf(&b, &L->attn_kv_a_mqa, true, 0, d, dc + dr, 0, "blk.%d.attn_kv_a_mqa.weight", i));
        TRY(bindf(&b, &L->attn_kv_a_norm, true, 1, dc, 0, 0, "blk.%d.attn_kv_a_norm.weight", i));
        if (hp->kv_split) {
            TRY(bindf(&b, &L->attn_k_b, true, 0, dn, dc, H, "blk.%d.attn_k_b.weight", i));
            TRY(bindf(&b, &L->attn_v_b, true, 0, dc, dv, H, "blk.%d.attn_v_b.weight", i));
            /* a combined copy alongside is tolerated but not used */
        } else {
            TRY(bindf(&b, &L->attn_kv_b, true, 0, dc, H * (dn + dv), 0, "blk.%d.attn_kv_b.weight", i));
        }
        TRY(bindf(&b, &L->attn_output, true, 0, H * dv, d, 0, "blk.%d.attn_output.weight", i));
        TRY(bindf(&b, &L->ffn_norm, true, 1, d, 0, 0, "blk.%d.ffn_norm.weight", i));
        if (!L->is_moe) {
            TRY(bindf(&b, &L->ffn_gate, true, 0, d, hp->n_ff, 0, "blk.%d.ffn_gate.weight", i));
            TRY(bindf(&b, &L->ffn_up, true, 0, d, hp->n_ff, 0, "blk.%d.ffn_up.weight", i));
            TRY(bindf(&b, &L->ffn_down, true, 0, hp->n_ff, d, 0, "blk.%d.ffn_down.weight", i));
        } else {
            const int64_t E = hp->n_expert, fe = hp->n_ff_exp;
            TRY(bindf(&b, &L->ffn_gate_inp, true, 0, d, E, 0, "blk.%d.ffn_gate_inp.weight", i));
            TRY(bindf(&b, &L->exp_probs_b, false, 1, E, 0, 0, "blk.%d.exp_probs_b.bias", i));
            TRY(bindf(&b, &L->ffn_gate_exps, true, 0, d, fe, E, "blk.%d.ffn_gate_exps.weight", i));
            TRY(bindf(&b, &L->ffn_up_exps, true, 0, d, fe, E, "blk.%d.ffn_up_exps.weight", i));
            TRY(bindf(&b, &L->ffn_down_exps, true, 0, fe, d, E, "blk.%d.ffn_down_exps.weight", i));
            if (hp->n_expert_shared) {
                const int64_t fs = fe * hp->n_expert_shared;
                TRY(bindf(&b, &L->ffn_gate_shexp, true, 0, d, fs, 0, "blk.%d.ffn_gate_shexp.weight", i));
                TRY(bindf(&b, &L->ffn_up_shexp, true, 0, d, fs, 0, "blk.%d.ffn_up_shexp.weight", i));
                TRY(bindf(&b, &L->ffn_down_shexp, true, 0, fs, d, 0, "blk.%d.ffn_down_shexp.weight", i));
            }
        }
    }
    md->n_params = b.n_params;
    return DS_OK;
}

ds_status ds_model_data_load(ds_model_data *md, const gguf_file *f, bool vocab_only, ds_err *err)
{
    memset(md, 0, sizeof *md);
    gguf_str arch;
    ds_status s = gguf_get_str(f, "general.architecture", &arch, err);
    if (s == DS_ERR_NOT_FOUND)
        return ds_err_set(err, DS_ERR_FORMAT, "metadata key 'general.architecture' is missing");
    if (s != DS_OK)
        return s;
    size_t n = arch.len < sizeof md->arch_name - 1 ? (size_t)arch.len : sizeof md->arch_name - 1;
    memcpy(md->arch_name, arch.ptr, n);
    md->arch_name[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)md->arch_name[i] < 0x20)
            md->arch_name[i] = '?';
    if (vocab_only) {
        md->arch = strcmp(md->arch_name, "deepseek2") == 0 ? DS_ARCH_DEEPSEEK2 : DS_ARCH_UNKNOWN;
        return DS_OK;
    }
    if (strcmp(md->arch_name, "deepseek2") != 0) {
        bool known = false;
        for (int i = 0; k_known_archs[i]; i++)
            known |= strcmp(k_known_archs[i], md->arch_name) == 0;
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "architecture '%s' is %s; this version runs deepseek2 (DeepSeek-V2, "
                          "V2-Lite, V3, R1) only",
                          md->arch_name, known ? "not supported yet" : "unknown");
    }
    md->arch = DS_ARCH_DEEPSEEK2;
    s = read_ds2_hparams(f, &md->hp, err);
    if (s == DS_OK)
        s = bind_ds2(md, f, err);
    if (s != DS_OK)
        ds_model_data_free(md);
    return s;
}

void ds_model_data_free(ds_model_data *md)
{
    if (!md)
        return;
    free(md->w.layers);
    memset(md, 0, sizeof *md);
}

float ds2_attn_scale(const ds2_hparams *hp)
{
    double m = 1.0;
    if (hp->rope_scaling == DS_ROPE_SCALING_YARN && hp->rope_factor > 1.0f && hp->mscale_all_dim > 0.0f)
        m = 1.0 + 0.1 * hp->mscale_all_dim * log((double)hp->rope_factor);
    return (float)(m * m / sqrt((double)(hp->qk_nope + hp->qk_rope)));
}

uint64_t ds2_kv_bytes_per_token(const ds2_hparams *hp, size_t elem_bytes)
{
    return (uint64_t)hp->n_layer * (hp->kv_lora_rank + hp->qk_rope) * elem_bytes;
}
