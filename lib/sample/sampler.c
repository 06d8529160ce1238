/*
 * lib/sample/sampler.c — samplers and the RNG (see sampler.h for the documented order).
 */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ds_rng_seed(ds_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ds_rng_next(ds_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ds_rng_uniform(ds_rng *r)
{
    return (double)(ds_rng_next(r) >> 11) * 0x1.0p-53;
}

typedef struct cand {
    float logit;
    int32_t id;
    double p;
} cand;

size_t ds_sampler_scratch_bytes(size_t n_vocab)
{
    return n_vocab * sizeof(cand);
}

static int cmp_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id; /* deterministic ties: lower id first */
}

static int32_t argmax(const float *logits, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return (int32_t)best;
}

int32_t ds_sample(const ds_sampler_cfg *cfg, ds_rng *rng, const float *logits, size_t n_vocab,
                  void *scratch)
{
    if (n_vocab == 0)
        return -1;
    if (!(cfg->temperature > 0.0f) || cfg->top_k == 1)
        return argmax(logits, n_vocab);
    cand *c = scratch;
    size_t n = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        if (isnan(logits[i]) || logits[i] == -INFINITY)
            continue;
        c[n].logit = logits[i];
        c[n].id = (int32_t)i;
        n++;
    }
    if (n == 0)
        return argmax(logits, n_vocab);
    /* sort descending: full sort keeps it simple and deterministic; top-k bounds it first */
    qsort(c, n, sizeof *c, cmp_desc);
    if (cfg->top_k > 0 && (size_t)cfg->top_k < n)
        n = (size_t)cfg->top_k;
    double inv_t = 1.0 / cfg->temperature, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp(((double)c[i].logit - c[0].logit) * inv_t);
        sum += c[i].p;
    }
    for (size_t i = 0; i < n; i++)
        c[i].p /= sum;
    if (cfg->top_p > 0.0f && cfg->top_p < 1.0f) {
        double cum = 0.0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= cfg->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (cfg->min_p > 0.0f) {
        double thr = cfg->min_p * c[0].p;
        size_t keep = 1;
        while (keep < n && c[keep].p >= thr)
            keep++;
        n = keep;
    }
    sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += c[i].p;
    double u = ds_rng_uniform(rng) * sum, cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}
