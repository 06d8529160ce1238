/*
 * lib/model/repack_weights.c — the optional repacking of a loaded model's weights into the
 * R16 layout (lib/kernels/repack.c), at open time.
 *
 * Owns: which tensors are repacked and the in-place conversion of a model in anonymous memory.
 * Only the matrices that the forward pass reads solely through ds_mm, in whole 16-row groups,
 * qualify: attn_q / attn_q_a / attn_q_b, attn_kv_a_mqa, attn_output, the dense, routed-expert
 * and shared-expert FFN matrices and the output head. Not attn_kv_b / attn_k_b / attn_v_b
 * (read per head), token_embd (rows looked up), the router (read in f32) or norms. A tensor
 * qualifies when its type has an R16 kernel on this CPU that is faster than the row-major one
 * (ds_r16_pays: Q5_0, with AVX512-VNNI) and its row count is a multiple of 16.
 *
 * Cost: no memory beyond a 16-row scratch per thread (each group is converted where it lies);
 * one pass over the repacked bytes (BENCHMARKS.md has the load times).
 */
#include "model/model.h"
#include "kernels/kernels_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static bool eligible(const ds_weight *w)
{
    if (!w->data || w->layout != DS_LAYOUT_ROWS || !ds_r16_type(w->type) || !ds_r16_pays(w->type))
        return false;
    if (!ds_r16_gemv(w->type, ds_isa_best()))
        return false;
    const int64_t n = w->ne[1];
    return n > 0 && n % 16 == 0 && w->ne[0] > 0;
}

/* Repack one tensor in place (every expert's rows). False: out of memory. */
static bool repack_one(ds_weight *w, int n_threads)
{
    const int64_t k = w->ne[0], groups = w->ne[1] / 16 * (w->ne[2] > 0 ? w->ne[2] : 1);
    const size_t gb = 16 * w->row_bytes;
    uint8_t *base = (uint8_t *)(uintptr_t)w->data;
    int fail = 0;
#pragma omp parallel num_threads(n_threads) reduction(| : fail)
    {
        uint8_t *scr = malloc(gb);
        if (!scr) {
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            if (!scr)
                continue;
            uint8_t *p = base + (size_t)g * gb;
            memcpy(scr, p, gb);
            ds_r16_pack_group(w->type, scr, w->row_bytes, k, p);
        }
        free(scr);
    }
    if (fail) {
        /* some groups may be converted: nothing is lost, but the tensor is unusable; the
         * caller fails the open */
        return false;
    }
    w->layout = DS_LAYOUT_R16;
    return true;
}

ds_status ds_model_data_repack(ds_model_data *md, void *base, size_t base_len, int n_threads,
                               uint64_t *n_tensors, uint64_t *n_bytes, ds_err *err)
{
    *n_tensors = *n_bytes = 0;
    if (md->arch != DS_ARCH_DEEPSEEK2 || !md->w.layers)
        return DS_OK;
    ds_weight *list[16];
    if (mprotect(base, base_len, PROT_READ | PROT_WRITE) != 0)
        return DS_OK; /* cannot write the copy: keep the rows (nothing is lost) */
    ds_status s = DS_OK;
    for (uint32_t l = 0; l <= md->hp.n_layer && s == DS_OK; l++) {
        int n = 0;
        if (l == md->hp.n_layer) {
            list[n++] = &md->w.output;
        } else {
            ds2_layer *L = &md->w.layers[l];
            ds_weight *all[] = {&L->attn_q, &L->attn_q_a, &L->attn_q_b, &L->attn_kv_a_mqa,
                                &L->attn_output, &L->ffn_gate, &L->ffn_up, &L->ffn_down,
                                &L->ffn_gate_exps, &L->ffn_up_exps, &L->ffn_down_exps,
                                &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                list[n++] = all[i];
        }
        for (int i = 0; i < n; i++) {
            ds_weight *w = list[i];
            if (!eligible(w))
                continue;
            if (!repack_one(w, n_threads)) {
                s = ds_err_set(err, DS_ERR_NO_MEMORY, "repacking tensor '%s': out of memory",
                               w->name ? w->name : "?");
                break;
            }
            (*n_tensors)++;
            *n_bytes += w->nbytes;
        }
    }
    mprotect(base, base_len, PROT_READ);
    return s;
}
