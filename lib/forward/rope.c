/*
 * lib/forward/rope.c — deepseek2 RoPE with YaRN (see rope.h; §2.3-2.4).
 */
#include "forward/rope.h"

#include "deepseek/deepseek.h"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

double ds_rope_yarn_corr_dim(uint32_t n_dims, uint32_t orig_ctx, double beta, double theta)
{
    return (double)n_dims * log((double)orig_ctx / (beta * 2.0 * M_PI)) / (2.0 * log(theta));
}

double ds_rope_yarn_mscale(double s, double m)
{
    if (s <= 1.0)
        return 1.0;
    return 1.0 + 0.1 * m * log(s);
}

int ds_rope_init(ds_rope *r, uint32_t n_dims, float theta, uint32_t rope_scaling, float factor,
                 uint32_t orig_ctx, float beta_fast, float beta_slow)
{
    if (n_dims == 0 || n_dims % 2 != 0 || n_dims / 2 > DS_ROPE_MAX_PAIRS || !(theta > 1.0f))
        return -1;
    r->n_dims = n_dims;
    r->n_pairs = n_dims / 2;
    r->corr_low = r->corr_high = 0;
    const double th = theta;
    for (uint32_t j = 0; j < r->n_pairs; j++)
        r->freq[j] = pow(th, -2.0 * j / (double)n_dims);

    const double s = factor;
    if (rope_scaling == DS_ROPE_SCALING_LINEAR && s > 0.0) {
        for (uint32_t j = 0; j < r->n_pairs; j++)
            r->freq[j] /= s;
    } else if (rope_scaling == DS_ROPE_SCALING_YARN && s > 1.0 && orig_ctx > 0) {
        double bf = beta_fast > 0.0f ? beta_fast : 32.0;
        double bs = beta_slow > 0.0f ? beta_slow : 1.0;
        double lo = floor(ds_rope_yarn_corr_dim(n_dims, orig_ctx, bf, th));
        double hi = ceil(ds_rope_yarn_corr_dim(n_dims, orig_ctx, bs, th));
        if (lo < 0.0)
            lo = 0.0;
        if (hi > (double)(n_dims - 1))
            hi = (double)(n_dims - 1);
        r->corr_low = (int)lo;
        r->corr_high = (int)hi;
        double span = hi - lo;
        if (span < 0.001)
            span = 0.001;
        for (uint32_t j = 0; j < r->n_pairs; j++) {
            double ramp = ((double)j - lo) / span;
            if (ramp < 0.0)
                ramp = 0.0;
            if (ramp > 1.0)
                ramp = 1.0;
            double f = r->freq[j];
            r->freq[j] = f * (1.0 - ramp) + (f / s) * ramp;
        }
    }
    return 0;
}

void ds_rope_cos_sin(const ds_rope *r, uint32_t pos, float *cs)
{
    for (uint32_t j = 0; j < r->n_pairs; j++) {
        double a = (double)pos * r->freq[j];
        cs[2 * j] = (float)cos(a);
        cs[2 * j + 1] = (float)sin(a);
    }
}

void ds_rope_apply(const ds_rope *r, const float *cs, float *x)
{
    for (uint32_t j = 0; j < r->n_pairs; j++) {
        float c = cs[2 * j], s = cs[2 * j + 1];
        float x0 = x[2 * j], x1 = x[2 * j + 1];
        x[2 * j] = x0 * c - x1 * s;
        x[2 * j + 1] = x0 * s + x1 * c;
    }
}

float ds_rope_attn_scale(uint32_t d_qk, uint32_t rope_scaling, float factor,
                         float mscale_all_dim)
{
    double m = 1.0;
    if (rope_scaling == DS_ROPE_SCALING_YARN)
        m = ds_rope_yarn_mscale(factor, mscale_all_dim);
    return (float)(m * m / sqrt((double)d_qk));
}
