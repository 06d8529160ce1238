/*
 * lib/moe/router.c — DeepSeekMoE routing (see router.h; deepseek-architectures.md §2.5).
 */
#include "moe/router.h"

#include "deepseek/deepseek.h"

#include <math.h>
#include <string.h>

ds_status ds_router_check(const ds_router *r, ds_err *err)
{
    if (!r)
        return ds_err_set(err, DS_ERR_INVALID_ARG, "router: NULL configuration");
    if (r->n_expert == 0 || r->n_used == 0 || r->n_used > r->n_expert)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "router: %u experts used of %u", r->n_used,
                          r->n_expert);
    if (r->gating != DS_GATING_SOFTMAX && r->gating != DS_GATING_SIGMOID)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "router: unsupported gating function %u",
                          r->gating);
    if (r->n_group == 0 || r->n_expert % r->n_group != 0)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "router: %u groups do not divide %u experts",
                          r->n_group, r->n_expert);
    if (r->n_group_used == 0 || r->n_group_used > r->n_group)
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "router: %u groups used of %u",
                          r->n_group_used, r->n_group);
    if ((uint64_t)r->n_group_used * (r->n_expert / r->n_group) < r->n_used)
        return ds_err_set(err, DS_ERR_UNSUPPORTED,
                          "router: %u kept groups of %u experts cannot supply %u experts",
                          r->n_group_used, r->n_expert / r->n_group, r->n_used);
    if (!isfinite(r->scale))
        return ds_err_set(err, DS_ERR_UNSUPPORTED, "router: non-finite scaling factor");
    return DS_OK;
}

size_t ds_router_scratch_floats(const ds_router *r)
{
    /* probs, selection scores, taken marks; group scores, group marks */
    return 3 * (size_t)r->n_expert + 2 * (size_t)r->n_group;
}

/* Index of the largest x[i] with mark[i] == 0; ties -> lowest index. Values that compare
 * false (NaN) lose against anything else, but an index is always returned while any is free.
 * Returns -1 only if every index is marked. */
static int64_t argmax_free(const float *x, const float *mark, uint32_t n)
{
    int64_t best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mark[i] != 0.0f)
            continue;
        if (best < 0 || x[i] > x[best] || (isnan(x[best]) && !isnan(x[i])))
            best = i;
    }
    return best;
}

void ds_router_select(const ds_router *r, const float *logits, int32_t *ids, float *weights,
                      float *scratch)
{
    const uint32_t E = r->n_expert, k = r->n_used, G = r->n_group;
    float *p = scratch;              /* unbiased scores (the weights) */
    float *q = p + E;                /* selection scores */
    float *taken = q + E;            /* 1: expert already chosen */
    float *gs = taken + E;           /* group scores */
    float *gkeep = gs + G;           /* 1: group kept */

    /* scores, in f32 */
    if (r->gating == DS_GATING_SIGMOID) {
        for (uint32_t e = 0; e < E; e++)
            p[e] = 1.0f / (1.0f + expf(-logits[e]));
    } else {
        float mx = logits[0];
        for (uint32_t e = 1; e < E; e++)
            if (logits[e] > mx)
                mx = logits[e];
        float sum = 0.0f;
        for (uint32_t e = 0; e < E; e++) {
            p[e] = expf(logits[e] - mx);
            sum += p[e];
        }
        float inv = 1.0f / sum;
        for (uint32_t e = 0; e < E; e++)
            p[e] *= inv;
    }

    /* selection scores: the bias is for selection only */
    for (uint32_t e = 0; e < E; e++) {
        q[e] = r->bias ? p[e] + r->bias[e] : p[e];
        taken[e] = 0.0f;
    }

    /* group-limited selection */
    if (G > 1 && r->n_group_used < G) {
        const uint32_t gsz = E / G;
        for (uint32_t g = 0; g < G; g++) {
            const float *qg = q + (size_t)g * gsz;
            if (r->gating == DS_GATING_SIGMOID) {
                /* sum of the top-2 (top-1 if the group has a single expert) */
                float a = -INFINITY, b = -INFINITY;
                for (uint32_t j = 0; j < gsz; j++) {
                    if (qg[j] > a) {
                        b = a;
                        a = qg[j];
                    } else if (qg[j] > b) {
                        b = qg[j];
                    }
                }
                gs[g] = gsz >= 2 ? a + b : a;
            } else {
                float a = qg[0];
                for (uint32_t j = 1; j < gsz; j++)
                    if (qg[j] > a)
                        a = qg[j];
                gs[g] = a;
            }
            gkeep[g] = 0.0f;
        }
        for (uint32_t u = 0; u < r->n_group_used; u++) {
            int64_t g = argmax_free(gs, gkeep, G);
            gkeep[g] = 1.0f;
        }
        for (uint32_t g = 0; g < G; g++)
            if (gkeep[g] == 0.0f)
                for (uint32_t j = 0; j < gsz; j++)
                    q[(size_t)g * gsz + j] = -INFINITY;
    }

    /* top-k over the masked selection scores; the weights are the unbiased scores */
    for (uint32_t u = 0; u < k; u++) {
        int64_t e = argmax_free(q, taken, E);
        taken[e] = 1.0f;
        ids[u] = (int32_t)e;
        weights[u] = p[e];
    }

    if (r->norm) {
        float sum = 0.0f;
        for (uint32_t u = 0; u < k; u++)
            sum += weights[u];
        float inv = 1.0f / (sum + 1e-20f);
        for (uint32_t u = 0; u < k; u++)
            weights[u] *= inv;
    }
    if (r->scale != 1.0f)
        for (uint32_t u = 0; u < k; u++)
            weights[u] *= r->scale;
}

void ds_router_select_batch(const ds_router *r, const float *logits, size_t ld, uint32_t T,
                            int32_t *ids, float *weights, float *scratch)
{
    for (uint32_t t = 0; t < T; t++)
        ds_router_select(r, logits + t * ld, ids + (size_t)t * r->n_used,
                         weights + (size_t)t * r->n_used, scratch);
}

bool ds_moe_group_tokens(const int32_t *ids, const float *weights, uint32_t T, uint32_t k,
                         uint32_t n_expert, uint32_t *offset, int32_t *tok, float *w)
{
    memset(offset, 0, ((size_t)n_expert + 1) * sizeof *offset);
    const size_t n = (size_t)T * k;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= n_expert)
            return false;
        offset[ids[i] + 1]++;
    }
    for (uint32_t e = 0; e < n_expert; e++)
        offset[e + 1] += offset[e];
    /* fill: use offset[e] as the running cursor, then shift back */
    for (size_t i = 0; i < n; i++) {
        uint32_t e = (uint32_t)ids[i];
        uint32_t at = offset[e]++;
        tok[at] = (int32_t)(i / k);
        w[at] = weights[i];
    }
    for (uint32_t e = n_expert; e > 0; e--)
        offset[e] = offset[e - 1];
    offset[0] = 0;
    return true;
}
