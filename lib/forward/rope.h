/*
 * lib/forward/rope.h — rotary position embedding for deepseek2 (adjacent pairs + YaRN).
 *
 * Owns (deepseek-architectures.md §2.3-2.4): the per-pair frequencies f'_j (YaRN ramp between
 * low = max(floor(corr(beta_fast)), 0) and high = min(ceil(corr(beta_slow)), d_r - 1), or
 * linear scaling, or none), the rotation of adjacent pairs (x[2j], x[2j+1]) by p * f'_j with
 * unit-magnitude cos/sin, and the MLA softmax scale mscale^2 / sqrt(d_n + d_r) with
 * mscale = 1 + 0.1 * mscale_all_dim * ln(s) under YaRN (1 otherwise).
 */
#ifndef DS_FORWARD_ROPE_H
#define DS_FORWARD_ROPE_H

#include <stdint.h>

#define DS_ROPE_MAX_PAIRS 512

typedef struct ds_rope {
    uint32_t n_dims;                    /* d_r (even) */
    uint32_t n_pairs;                   /* d_r / 2 */
    double freq[DS_ROPE_MAX_PAIRS];     /* f'_j, radians per position */
    int corr_low, corr_high;            /* YaRN correction range (0, 0 without YaRN) */
} ds_rope;

/* Inputs of the table: rope_scaling is a ds_rope_scaling. Returns 0 on success, -1 if n_dims
 * is odd, zero or larger than 2 * DS_ROPE_MAX_PAIRS, or theta <= 1. */
int ds_rope_init(ds_rope *r, uint32_t n_dims, float theta, uint32_t rope_scaling, float factor,
                 uint32_t orig_ctx, float beta_fast, float beta_slow);

/* YaRN correction dimension corr(b) = d_r ln(L_orig / (b 2 pi)) / (2 ln theta). */
double ds_rope_yarn_corr_dim(uint32_t n_dims, uint32_t orig_ctx, double beta, double theta);

/* cs[2j] = cos(pos f'_j), cs[2j+1] = sin(pos f'_j) for j < n_pairs (angles in double). */
void ds_rope_cos_sin(const ds_rope *r, uint32_t pos, float *cs);

/* Rotate adjacent pairs of x[0..n_dims) in place by the cos/sin of ds_rope_cos_sin:
 * x'[2j] = x[2j] c - x[2j+1] s, x'[2j+1] = x[2j] s + x[2j+1] c. */
void ds_rope_apply(const ds_rope *r, const float *cs, float *x);

/* Softmax scale of MLA (§2.4). rope_scaling a ds_rope_scaling; factor s; mscale_all_dim as
 * in ds2_hparams (already divided by 0.1). */
float ds_rope_attn_scale(uint32_t d_qk, uint32_t rope_scaling, float factor,
                         float mscale_all_dim);

/* yarn_get_mscale(s, m) = 1 + 0.1 m ln s (1 if s <= 1). */
double ds_rope_yarn_mscale(double s, double m);

#endif
