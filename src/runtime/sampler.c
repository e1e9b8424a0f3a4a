/* Token sampling: penalties, temperature, top-k, top-p, min-p, seeded draw. */
#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct ob_sampler {
    ob_sampler_params p;
    int n_vocab;
    ob_rng rng;
    cand *c;          /* [n_vocab] */
    float *prob;      /* [n_vocab] */
    uint32_t *count;  /* [n_vocab] occurrences in the penalty window */
};

ob_sampler_params ob_sampler_defaults(void) {
    ob_sampler_params p = {
        .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .frequency_penalty = 0.0f, .presence_penalty = 0.0f,
        .repeat_last_n = 64, .seed = 0x1b17,
    };
    return p;
}

/* xoshiro256** seeded through splitmix64. */
static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
void ob_rng_seed(ob_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t ob_rng_next(ob_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}
double ob_rng_uniform(ob_rng *r) { return (double)(ob_rng_next(r) >> 11) * 0x1.0p-53; }

ob_status ob_sampler_create(const ob_sampler_params *p, int n_vocab, ob_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0) return ob_fail(OB_ERR_ARG, "sampler: empty vocabulary");
    if (!(p->temperature == p->temperature) || !(p->top_p == p->top_p) || !(p->min_p == p->min_p) ||
        !(p->repeat_penalty > 0) || !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return ob_fail(OB_ERR_ARG, "sampler: invalid parameters");
    ob_sampler *s = calloc(1, sizeof *s);
    if (!s) return ob_fail(OB_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    if (!s->c || !s->prob || !s->count) {
        ob_sampler_free(s);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    ob_rng_seed(&s->rng, p->seed);
    *out = s;
    return OB_OK;
}

void ob_sampler_free(ob_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->prob);
    free(s->count);
    free(s);
}

void ob_sampler_reset(ob_sampler *s, uint64_t seed) {
    s->p.seed = seed;
    ob_rng_seed(&s->rng, seed);
}

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

size_t ob_sampler_keep_count(const ob_sampler_params *p, const float *sorted_probs, size_t n) {
    size_t keep = n;
    if (p->top_k > 0 && (size_t)p->top_k < keep) keep = (size_t)p->top_k;
    /* top-p over the renormalized top-k set: the smallest prefix whose mass >= top_p */
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += sorted_probs[i];
    if (p->top_p < 1.0f && total > 0) {
        double cum = 0;
        for (size_t i = 0; i < keep; i++) {
            cum += sorted_probs[i] / total;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    /* min-p: drop candidates below min_p times the top probability */
    if (p->min_p > 0 && keep > 1) {
        float thresh = p->min_p * sorted_probs[0];
        size_t k = 1;
        while (k < keep && sorted_probs[k] >= thresh) k++;
        keep = k;
    }
    return keep ? keep : 1;
}

static void apply_penalties(ob_sampler *s, float *logits, const int32_t *hist, size_t n_hist) {
    const ob_sampler_params *p = &s->p;
    bool rep = p->repeat_penalty != 1.0f, freq = p->frequency_penalty != 0.0f, pres = p->presence_penalty != 0.0f;
    if (!(rep || freq || pres) || !hist || !n_hist || p->repeat_last_n == 0) return;
    size_t window = p->repeat_last_n < 0 ? n_hist : OB_MIN(n_hist, (size_t)p->repeat_last_n);
    const int32_t *h = hist + (n_hist - window);
    for (size_t i = 0; i < window; i++)
        if (h[i] >= 0 && h[i] < s->n_vocab) s->count[h[i]]++;
    for (size_t i = 0; i < window; i++) {
        int32_t id = h[i];
        if (id < 0 || id >= s->n_vocab || !s->count[id]) continue;
        float *l = &logits[id];
        if (rep) *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        *l -= (float)s->count[id] * p->frequency_penalty + p->presence_penalty * (pres ? 1.0f : 0.0f);
        s->count[id] = 0; /* penalize each id once */
    }
}

/* The top-k candidates (logit / temperature, id) by cand_desc, unordered, in
 * c[0..k): a min-heap whose root is the worst kept. Every logit is compared
 * with the root's raw logit first: one below it cannot enter (x / T <= the
 * root's value, and on equality its larger id loses), so most of the
 * vocabulary costs one compare, with no division and no candidate written.
 * The candidates that do enter go through the same heap steps as a scan of
 * every candidate would take: the kept set and its order are the same. */
static void select_top_k(cand *h, size_t k, const float *logits, int n, float temp) {
    float floor_raw = 0; /* logits[h[0].id] once the heap is full */
    for (size_t i = 0; i < (size_t)n; i++) {
        if (i >= k && (i & 15) == 0 && i + 16 <= (size_t)n) { /* 16 at a time while none can enter */
            int any = 0;
            for (int u = 0; u < 16; u++) any |= !(logits[i + u] < floor_raw);
            if (!any) {
                i += 15;
                continue;
            }
        }
        if (i >= k && logits[i] < floor_raw) continue; /* a NaN takes the full path, as before */
        cand x = { logits[i] / temp, (int32_t)i };
        size_t at;
        if (i < k) {
            at = i; /* sift up */
            while (at > 0 && cand_desc(&h[(at - 1) / 2], &x) < 0) {
                h[at] = h[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            h[at] = x;
        } else if (cand_desc(&x, &h[0]) < 0) {
            at = 0; /* replace the root, sift down */
            for (;;) {
                size_t c = 2 * at + 1;
                if (c >= k) break;
                if (c + 1 < k && cand_desc(&h[c + 1], &h[c]) > 0) c++;
                if (cand_desc(&h[c], &x) <= 0) break;
                h[at] = h[c];
                at = c;
            }
            h[at] = x;
        } else continue;
        if (i + 1 >= k) floor_raw = logits[h[0].id];
    }
}

int32_t ob_sampler_sample(ob_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    int n = s->n_vocab;
    apply_penalties(s, logits, history, n_history);
    if (s->p.temperature <= 0) {
        int32_t best = 0; /* the first maximum; a NaN never wins (nor loses, at id 0) */
        float best_logit = logits[0];
        int i = 1;
        for (; i + 16 <= n; i += 16) { /* blocks with nothing above the best cost one vector compare */
            int any = 0;
            for (int u = 0; u < 16; u++) any |= logits[i + u] > best_logit;
            if (any)
                for (int u = 0; u < 16; u++)
                    if (logits[i + u] > best_logit) best = i + u, best_logit = logits[i + u];
        }
        for (; i < n; i++)
            if (logits[i] > best_logit) best = i, best_logit = logits[i];
        return best;
    }
    /* Candidates: with top-k, a partial selection keeps the sort cheap. */
    size_t nc = (size_t)n;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        nc = (size_t)s->p.top_k;
        select_top_k(s->c, nc, logits, n, s->p.temperature);
    } else
        for (int i = 0; i < n; i++) s->c[i] = (cand){ logits[i] / s->p.temperature, i };
    qsort(s->c, nc, sizeof *s->c, cand_desc);
    float mx = s->c[0].logit;
    double sum = 0;
    for (size_t i = 0; i < nc; i++) {
        s->prob[i] = expf(s->c[i].logit - mx);
        sum += s->prob[i];
    }
    for (size_t i = 0; i < nc; i++) s->prob[i] = (float)(s->prob[i] / sum);
    ob_sampler_params p2 = s->p;
    p2.top_k = 0; /* already applied */
    size_t keep = ob_sampler_keep_count(&p2, s->prob, nc);
    double mass = 0;
    for (size_t i = 0; i < keep; i++) mass += s->prob[i];
    double r = ob_rng_uniform(&s->rng) * mass, cum = 0;
    for (size_t i = 0; i < keep; i++) {
        cum += s->prob[i];
        if (r < cum) return s->c[i].id;
    }
    return s->c[keep - 1].id;
}
