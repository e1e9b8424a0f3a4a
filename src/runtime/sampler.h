/* Token sampling. Order of operations (as llama.cpp): penalties (repetition,
 * frequency, presence over the last repeat_last_n ids) -> temperature ->
 * top-k -> softmax -> top-p -> min-p -> draw. temperature <= 0 is greedy
 * (argmax after penalties; ties go to the lowest id). */
#ifndef OB_SAMPLER_H
#define OB_SAMPLER_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_sampler_params {
    float temperature;      /* default 0.8; <= 0 greedy */
    int top_k;              /* <= 0: off (default 40) */
    float top_p;            /* >= 1: off (default 0.95) */
    float min_p;            /* <= 0: off (default 0.05) */
    float repeat_penalty;   /* 1: off */
    float frequency_penalty;
    float presence_penalty;
    int repeat_last_n;      /* default 64 */
    uint64_t seed;
} ob_sampler_params;

ob_sampler_params ob_sampler_defaults(void);

typedef struct ob_sampler ob_sampler;
ob_status ob_sampler_create(const ob_sampler_params *p, int n_vocab, ob_sampler **out);
void ob_sampler_free(ob_sampler *s);
void ob_sampler_reset(ob_sampler *s, uint64_t seed);
/* Samples from logits (modified in place). history: ids so far (prompt and
 * generated) for the penalties. */
int32_t ob_sampler_sample(ob_sampler *s, float *logits, const int32_t *history, size_t n_history);

/* Candidate filtering exposed for tests: after top-k/top-p/min-p on probs
 * sorted descending, how many candidates are kept. */
size_t ob_sampler_keep_count(const ob_sampler_params *p, const float *sorted_probs, size_t n);

/* splitmix64/xoshiro-style RNG state used by the sampler (reproducible). */
typedef struct ob_rng { uint64_t s[4]; } ob_rng;
void ob_rng_seed(ob_rng *r, uint64_t seed);
uint64_t ob_rng_next(ob_rng *r);
double ob_rng_uniform(ob_rng *r); /* [0, 1) */

#ifdef __cplusplus
}
#endif
#endif
