/*
 * lib/moe/router.h — the DeepSeekMoE router and the grouping of tokens by expert.
 *
 * Owns (deepseek-architectures.md §2.5, §7 items 5-8): scoring of the router logits (softmax
 * or sigmoid, in f32), the selection bias (added for selection only, never to the weights),
 * group-limited selection (softmax models: group score = max of the group; sigmoid models:
 * sum of the top-2 of the group; the n_group_used best groups are kept, every expert of the
 * other groups is masked with -inf), top-k, renormalisation and the routed scaling factor; and,
 * for a batch of tokens, the list of (token, weight) pairs of each expert, so each selected
 * expert runs one batched matmul over its tokens.
 *
 * Ties are broken towards the lower index (expert or group), in every top-k.
 * Everything here is pure computation on caller memory: no allocation, thread-safe.
 */
#ifndef DS_MOE_ROUTER_H
#define DS_MOE_ROUTER_H

#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds_router {
    uint32_t n_expert;       /* routed experts */
    uint32_t n_used;         /* k: experts per token */
    uint32_t n_group;        /* >= 1; must divide n_expert */
    uint32_t n_group_used;   /* groups kept, 1..n_group */
    uint32_t gating;         /* ds_gating: DS_GATING_SOFTMAX or DS_GATING_SIGMOID */
    bool norm;               /* renormalise the k weights to sum 1 */
    float scale;             /* routed scaling factor, applied after renormalisation */
    const float *bias;       /* n_expert selection biases, or NULL */
} ds_router;

/* Check a configuration (sizes, gating, enough unmasked experts for k). */
ds_status ds_router_check(const ds_router *r, ds_err *err);

/* Floats of scratch ds_router_select needs. */
size_t ds_router_scratch_floats(const ds_router *r);

/*
 * Route one token: logits (n_expert raw router outputs) -> ids[k] (selected experts, in
 * descending selection score) and weights[k]. scratch: ds_router_scratch_floats(r) floats.
 * The configuration must have passed ds_router_check.
 */
void ds_router_select(const ds_router *r, const float *logits, int32_t *ids, float *weights,
                      float *scratch);

/* Route T tokens: logits row t at logits + t*ld; ids/weights row t at t*k. */
void ds_router_select_batch(const ds_router *r, const float *logits, size_t ld, uint32_t T,
                            int32_t *ids, float *weights, float *scratch);

/*
 * Group the routing of T tokens by expert (counting sort, tokens ascending within an expert).
 * ids/weights: T rows of k (as from ds_router_select_batch). Outputs: offset[n_expert + 1]
 * (expert e owns entries offset[e]..offset[e+1]-1), tok[T*k] and w[T*k].
 * Returns false if an id is out of range (then the outputs are unspecified).
 */
bool ds_moe_group_tokens(const int32_t *ids, const float *weights, uint32_t T, uint32_t k,
                         uint32_t n_expert, uint32_t *offset, int32_t *tok, float *w);

#endif
