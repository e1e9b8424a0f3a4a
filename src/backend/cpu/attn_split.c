/* Attention over one KV head split by positions (contract in kernels.h): each
 * chunk keeps the softmax's running state (max m, sum l of exp(s - m)) and the
 * unnormalized sum of exp(s - m) v; the merge rescales every chunk to the
 * common max. Same math as one softmax over all positions, in another float
 * order (tests/unit/test_attn.c bounds the difference). */
#include "backend/cpu/kernels.h"

#include <math.h>

size_t ob_attn_part_floats(int G, int D) { return (size_t)G * (size_t)D + 2 * (size_t)G; }

void ob_attn_chunk(const ob_cpu_kernels *k, const float *q, int G, const void *kc, const void *vc, ob_type kv_type,
                   size_t stride, int n_pos, int D, float scale, float *scores, float *part) {
    ob_attn_scores_fn scores_fn = k->attn_scores ? k->attn_scores : ob_kernels_scalar.attn_scores;
    ob_attn_values_fn values_fn = k->attn_values ? k->attn_values : ob_kernels_scalar.attn_values;
    scores_fn(q, G, kc, kv_type, stride, n_pos, D, scale, scores);
    float *ml = part + (size_t)G * (size_t)D;
    for (int g = 0; g < G; g++) {
        float *sc = scores + (size_t)g * (size_t)n_pos, mx = -INFINITY, sum = 0;
        for (int p = 0; p < n_pos; p++) mx = sc[p] > mx ? sc[p] : mx; /* fmaxf (a NaN is skipped) without the libm call */
        for (int p = 0; p < n_pos; p++) { /* exp(-88) is below the smallest float: skip libm's slow path */
            float z = sc[p] - mx;
            sum += (sc[p] = z < -88.0f ? 0.0f : expf(z));
        }
        ml[2 * g] = mx;
        ml[2 * g + 1] = sum;
    }
    values_fn(part, scores, G, vc, kv_type, stride, n_pos, D);
}

void ob_attn_merge(const float *parts, int n_chunks, int G, int D, float *out) {
    size_t stride = ob_attn_part_floats(G, D), GD = (size_t)G * (size_t)D;
    for (int g = 0; g < G; g++) {
        float *o = out + (size_t)g * (size_t)D, mx = -INFINITY, sum = 0;
        for (int c = 0; c < n_chunks; c++) mx = fmaxf(mx, parts[(size_t)c * stride + GD + 2 * (size_t)g]);
        for (int d = 0; d < D; d++) o[d] = 0;
        for (int c = 0; c < n_chunks; c++) {
            const float *part = parts + (size_t)c * stride;
            float e = expf(part[GD + 2 * (size_t)g] - mx);
            sum += e * part[GD + 2 * (size_t)g + 1];
            for (int d = 0; d < D; d++) o[d] += e * part[(size_t)g * D + (size_t)d];
        }
        float inv = 1.0f / sum;
        for (int d = 0; d < D; d++) o[d] *= inv;
    }
}
