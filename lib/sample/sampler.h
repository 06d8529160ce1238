/*
 * lib/sample/sampler.h — turning logits into a token: logit bias, repetition / frequency /
 * presence penalties, greedy, temperature, top-k, top-p, min-p, with a seeded RNG that gives
 * the same sequence on every machine.
 *
 * Order of operations (documented in the public header deepseek/session.h too):
 *   1. copy the logits; 2. add the logit bias; 3. penalties over the window (for each distinct
 *   token with c occurrences: repetition l = l > 0 ? l / r : l * r, then
 *   l -= c * freq + presence); 4. temperature <= 0 or top_k == 1 → argmax (lowest id on ties);
 *   5. top-k (keep the k largest, lower id first on ties); 6. softmax at the temperature in
 *   double (exp); 7. top-p (smallest prefix with cumulative probability >= p, descending);
 *   8. min-p (drop p < min_p * p_max); 9. renormalise and draw with one 53-bit uniform.
 *
 * The RNG is xoshiro256** seeded through splitmix64; the draw uses 53-bit doubles, so the
 * result depends only on the seed, the settings and the logits.
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
    float repeat_penalty;    /* 1 = off */
    float frequency_penalty; /* 0 = off */
    float presence_penalty;  /* 0 = off */
} ds_sampler_cfg;

/* One logit bias entry (entries sorted by token, unique). */
typedef struct ds_logit_bias {
    int32_t token;
    float bias;
} ds_logit_bias;

/* Scratch for n_vocab candidates and a penalty window of up to max_window tokens. */
size_t ds_sampler_scratch_bytes(size_t n_vocab, size_t max_window);

/* Whether the configuration needs the penalty window at all. */
int ds_sampler_uses_penalties(const ds_sampler_cfg *cfg);

/*
 * Pick a token from `logits` (n_vocab floats, not modified). `bias` (n_bias entries) and
 * `window` (n_window tokens, the penalty window; ids outside [0, n_vocab) are ignored) may be
 * NULL when their count is 0. `scratch` must hold ds_sampler_scratch_bytes(n_vocab, n_window).
 * Returns the token, or -1 when no token is possible (every logit is NaN or -inf after bias
 * and penalties, or n_vocab == 0); the RNG is used only when a draw happens.
 */
int32_t ds_sample(const ds_sampler_cfg *cfg, ds_rng *rng, const float *logits, size_t n_vocab,
                  const ds_logit_bias *bias, size_t n_bias, const int32_t *window,
                  size_t n_window, void *scratch);

#endif
