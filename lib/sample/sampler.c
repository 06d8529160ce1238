/*
 * lib/sample/sampler.c — samplers and the RNG (see sampler.h for the documented order).
 */
#include "sample/sampler.h"

#include "kernels/kernels.h"

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

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t ds_sampler_scratch_bytes(size_t n_vocab, size_t max_window)
{
    return align16(n_vocab * sizeof(cand)) + align16(n_vocab * sizeof(float)) +
           align16(max_window * sizeof(int32_t)) + 16;
}

int ds_sampler_uses_penalties(const ds_sampler_cfg *cfg)
{
    return cfg->repeat_penalty != 1.0f || cfg->frequency_penalty != 0.0f ||
           cfg->presence_penalty != 0.0f;
}

static int cmp_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id; /* deterministic ties: lower id first */
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* usable: not NaN and not -inf */
static inline int usable(float v)
{
    return !isnan(v) && v != -INFINITY;
}

/* The first usable logit of the largest value (-1: none): the vector max (NaN ignored), then
 * the first element equal to it (a whole-vocabulary scalar scan with its usable() test was
 * ~60 us a token at 102,400 logits). */
static int32_t argmax(const float *logits, size_t n)
{
    const float m = ds_max_f32(logits, (int64_t)n);
    if (!usable(m))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (logits[i] == m)
            return (int32_t)i;
    return -1;
}

/* logits after bias and penalties into `work` (or the input when nothing changes them) */
static const float *adjusted(const ds_sampler_cfg *cfg, const float *logits, size_t n_vocab,
                             const ds_logit_bias *bias, size_t n_bias, const int32_t *window,
                             size_t n_window, float *work, int32_t *wsort)
{
    const int pen = n_window > 0 && ds_sampler_uses_penalties(cfg);
    if (n_bias == 0 && !pen)
        return logits;
    memcpy(work, logits, n_vocab * sizeof(float));
    for (size_t i = 0; i < n_bias; i++)
        if (bias[i].token >= 0 && (size_t)bias[i].token < n_vocab)
            work[bias[i].token] += bias[i].bias;
    if (pen) {
        size_t m = 0;
        for (size_t i = 0; i < n_window; i++)
            if (window[i] >= 0 && (size_t)window[i] < n_vocab)
                wsort[m++] = window[i];
        qsort(wsort, m, sizeof *wsort, cmp_i32);
        const float r = cfg->repeat_penalty;
        for (size_t i = 0; i < m;) {
            size_t j = i;
            while (j < m && wsort[j] == wsort[i])
                j++;
            const float c = (float)(j - i);
            float *l = &work[wsort[i]];
            if (r != 1.0f)
                *l = *l > 0.0f ? *l / r : *l * r;
            *l -= c * cfg->frequency_penalty + cfg->presence_penalty;
            i = j;
        }
    }
    return work;
}

int32_t ds_sample(const ds_sampler_cfg *cfg, ds_rng *rng, const float *logits, size_t n_vocab,
                  const ds_logit_bias *bias, size_t n_bias, const int32_t *window,
                  size_t n_window, void *scratch)
{
    if (n_vocab == 0)
        return -1;
    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + 15) & ~(uintptr_t)15);
    cand *c = (cand *)base;
    float *work = (float *)(base + align16(n_vocab * sizeof(cand)));
    int32_t *wsort = (int32_t *)((uint8_t *)work + align16(n_vocab * sizeof(float)));
    const float *lg = adjusted(cfg, logits, n_vocab, bias, n_bias, window, n_window, work, wsort);

    if (!(cfg->temperature > 0.0f) || cfg->top_k == 1)
        return argmax(lg, n_vocab);
    size_t n = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        if (!usable(lg[i]))
            continue;
        c[n].logit = lg[i];
        c[n].id = (int32_t)i;
        n++;
    }
    if (n == 0)
        return -1;
    /* sort descending: full sort keeps it simple and deterministic; top-k bounds it first */
    qsort(c, n, sizeof *c, cmp_desc);
    if (c[0].logit == INFINITY) /* a +inf logit (model overflow): the first such token wins */
        return c[0].id;
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
