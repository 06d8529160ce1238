/*
 * lib/sample/sampler.h — turning logits into a token: greedy, temperature, top-k, top-p,
 * min-p, with a seeded RNG that gives the same sequence on every machine.
 *
 * Order of operations (documented in the public header too): temperature 0 → argmax
 * (lowest id on ties). Otherwise: top-k (keep the k largest), softmax at the temperature,
 * top-p (smallest set with cumulative probability ≥ p, in descending order), min-p (drop
 * tokens with p < min_p · p_max), renormalise, draw with the RNG.
 *
 * The RNG is xoshiro256** seeded through splitmix64; the draw uses 53-bit doubles, so the
 * result depends only on the seed and the logits.
 */
#ifndef DS_SAMPLE_SAMPLER_H
#define DS_SAMPLE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ds_rng {
    uint64_t s[4];
} ds_rng;

void ds_rng_seed(ds_rng *r, uint64_t seed);
uint64_t ds_rng_next(ds_rng *r);
double ds_rng_uniform(ds_rng *r); /* [0, 1) */

typedef struct ds_sampler_cfg {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
} ds_sampler_cfg;

/* Scratch for n_vocab candidates (caller allocates ds_sampler_scratch_bytes(n_vocab)). */
size_t ds_sampler_scratch_bytes(size_t n_vocab);

/* Pick a token. `scratch` must hold ds_sampler_scratch_bytes(n_vocab) bytes. */
int32_t ds_sample(const ds_sampler_cfg *cfg, ds_rng *rng, const float *logits, size_t n_vocab,
                  void *scratch);

#endif
