/*
 * examples/ds/cmd_info.c — `ds info -m MODEL`: the model's facts as one JSON object.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: ds info -m MODEL [--tensors] [--meta]\n\n"
               "Print the facts of a model file as one JSON object.\n"
               "  -m, --model PATH   GGUF model file\n"
               "  --tensors          include every tensor (name, type, shape, offset, bytes)\n"
               "  --meta             include every metadata key with its value as text\n"
               "  --vocab-only       open only the tokenizer metadata (vocab-only GGUF files)\n");
}

static const char *gating_name(uint32_t g)
{
    return g == DS_GATING_SOFTMAX ? "softmax" : g == DS_GATING_SIGMOID ? "sigmoid" : "none";
}

static const char *rope_name(uint32_t r)
{
    return r == DS_ROPE_SCALING_YARN ? "yarn" : r == DS_ROPE_SCALING_LINEAR ? "linear" : "none";
}

int ds_cmd_info(int argc, char **argv)
{
    const char *model_path = NULL;
    bool tensors = false, meta = false, vocab_only = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (strcmp(argv[i], "--tensors") == 0) {
            tensors = true;
        } else if (strcmp(argv[i], "--meta") == 0) {
            meta = true;
        } else if (strcmp(argv[i], "--vocab-only") == 0) {
            vocab_only = true;
        } else {
            fprintf(stderr, "ds info: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    if (!model_path) {
        fprintf(stderr, "ds info: -m MODEL is required\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.vocab_only = vocab_only;
    ds_model *m = NULL;
    ds_status s = ds_model_open(&m, model_path, &mp);
    if (s != DS_OK)
        return ds_cli_fail("info", s);

    ds_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    s = ds_model_info_get(m, &in);
    if (s != DS_OK) {
        ds_model_close(m);
        return ds_cli_fail("info", s);
    }
    FILE *o = stdout;
    fprintf(o, "{\"path\": ");
    json_str(o, model_path);
    fprintf(o, ", \"architecture\": ");
    json_str(o, in.architecture);
    fprintf(o, ", \"name\": ");
    json_str(o, in.name);
    fprintf(o, ", \"file_size\": %" PRIu64 ", \"n_params\": %" PRIu64 ", \"n_tensors\": %" PRIu64,
            in.file_size, in.n_params, in.n_tensors);
    if (!vocab_only) {
        fprintf(o,
                ", \"n_vocab\": %u, \"n_ctx_train\": %u, \"n_embd\": %u, \"n_layer\": %u"
                ", \"n_head\": %u, \"n_head_kv\": %u, \"n_ff\": %u, \"q_lora_rank\": %u"
                ", \"kv_lora_rank\": %u, \"qk_nope_head_dim\": %u, \"qk_rope_head_dim\": %u"
                ", \"v_head_dim\": %u, \"n_expert\": %u, \"n_expert_used\": %u"
                ", \"n_expert_shared\": %u, \"n_ff_expert\": %u, \"n_leading_dense\": %u"
                ", \"n_expert_groups\": %u, \"n_expert_groups_used\": %u, \"gating\": \"%s\""
                ", \"expert_weights_norm\": %s, \"expert_weights_scale\": %.9g"
                ", \"rms_norm_eps\": %.9g, \"rope_freq_base\": %.9g, \"rope_scaling\": \"%s\""
                ", \"rope_scaling_factor\": %.9g, \"rope_orig_ctx\": %u"
                ", \"yarn_mscale_all_dim\": %.9g, \"yarn_beta_fast\": %.9g, \"yarn_beta_slow\": %.9g"
                ", \"kv_form\": \"%s\", \"kv_bytes_per_token\": {\"f32\": %" PRIu64
                ", \"f16\": %" PRIu64 ", \"bf16\": %" PRIu64 "}",
                in.n_vocab, in.n_ctx_train, in.n_embd, in.n_layer, in.n_head, in.n_head_kv, in.n_ff,
                in.q_lora_rank, in.kv_lora_rank, in.qk_nope_head_dim, in.qk_rope_head_dim,
                in.v_head_dim, in.n_expert, in.n_expert_used, in.n_expert_shared, in.n_ff_expert,
                in.n_leading_dense, in.n_expert_groups, in.n_expert_groups_used,
                gating_name(in.gating), in.expert_weights_norm ? "true" : "false",
                (double)in.expert_weights_scale, (double)in.rms_norm_eps,
                (double)in.rope_freq_base, rope_name(in.rope_scaling),
                (double)in.rope_scaling_factor, in.rope_orig_ctx, (double)in.yarn_mscale_all_dim,
                (double)in.yarn_beta_fast, (double)in.yarn_beta_slow,
                in.kv_split ? "split" : "combined", in.kv_bytes_per_token,
                in.kv_bytes_per_token / 2, in.kv_bytes_per_token / 2);
    }
    /* tensor type histogram */
    fprintf(o, ", \"tensor_types\": {");
    {
        uint64_t counts[64] = {0};
        const char *names[64] = {0};
        for (uint64_t i = 0; i < in.n_tensors; i++) {
            ds_tensor_info ti;
            ti.struct_size = sizeof ti;
            if (ds_model_tensor_info(m, i, &ti) == DS_OK && ti.type < 64) {
                counts[ti.type]++;
                names[ti.type] = ti.type_name;
            }
        }
        bool first = true;
        for (int t = 0; t < 64; t++) {
            if (!counts[t])
                continue;
            fprintf(o, "%s", first ? "" : ", ");
            json_str(o, names[t]);
            fprintf(o, ": %" PRIu64, counts[t]);
            first = false;
        }
    }
    fprintf(o, "}");
    if (tensors) {
        fprintf(o, ", \"tensors\": [");
        for (uint64_t i = 0; i < in.n_tensors; i++) {
            ds_tensor_info ti;
            ti.struct_size = sizeof ti;
            if (ds_model_tensor_info(m, i, &ti) != DS_OK)
                continue;
            fprintf(o, "%s{\"name\": ", i ? ", " : "");
            json_str(o, ti.name);
            fprintf(o, ", \"type\": \"%s\", \"ne\": [", ti.type_name);
            for (uint32_t d = 0; d < ti.n_dims; d++)
                fprintf(o, "%s%" PRIu64, d ? ", " : "", ti.ne[d]);
            fprintf(o, "], \"offset\": %" PRIu64 ", \"nbytes\": %" PRIu64 "}", ti.offset, ti.nbytes);
        }
        fprintf(o, "]");
    }
    if (meta) {
        fprintf(o, ", \"metadata\": {");
        uint64_t nk = ds_model_meta_count(m);
        for (uint64_t i = 0; i < nk; i++) {
            const char *key = ds_model_meta_key(m, i);
            size_t need = 0;
            ds_model_meta_string(m, key, NULL, 0, &need);
            char *buf = malloc(need ? need : 1);
            if (!buf)
                continue;
            ds_model_meta_string(m, key, buf, need, NULL);
            fprintf(o, "%s", i ? ", " : "");
            json_str(o, key);
            fprintf(o, ": ");
            json_str(o, buf);
            free(buf);
        }
        fprintf(o, "}");
    }
    fprintf(o, "}\n");
    ds_model_close(m);
    return 0;
}
