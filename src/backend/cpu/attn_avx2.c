/* AVX2 attention kernels (contract in kernels.h): the query group's G heads
 * share each K/V row load, so a KV head's cache is streamed once per token
 * instead of once per query head. */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define OB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define GMAX 8 /* query heads per pass */

static inline __attribute__((always_inline)) OB_AVX2 __m256 load8(const void *base, ob_type t, size_t i) {
    if (t == OB_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

static inline __attribute__((always_inline)) OB_AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float load1(const void *base, ob_type t, size_t i) {
    return t == OB_TYPE_F16 ? ob_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

OB_AVX2 void ob_attn_scores_avx2(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos,
                                 int D, float scale, float *scores) {
    int D8 = D & ~7;
    for (int g0 = 0; g0 < G; g0 += GMAX) {
        int gn = G - g0 < GMAX ? G - g0 : GMAX;
        for (int p = 0; p < n_pos; p++) {
            __m256 acc[GMAX];
            for (int g = 0; g < gn; g++) acc[g] = _mm256_setzero_ps();
            size_t row = (size_t)p * stride;
            for (int d = 0; d < D8; d += 8) {
                __m256 kv = load8(k, kv_type, row + (size_t)d);
                for (int g = 0; g < gn; g++)
                    acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)(g0 + g) * D + d), kv, acc[g]);
            }
            for (int g = 0; g < gn; g++) {
                float s = hsum(acc[g]);
                for (int d = D8; d < D; d++) s += q[(size_t)(g0 + g) * D + d] * load1(k, kv_type, row + (size_t)d);
                scores[(size_t)(g0 + g) * (size_t)n_pos + (size_t)p] = s * scale;
            }
        }
    }
}

OB_AVX2 void ob_attn_values_avx2(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride,
                                 int n_pos, int D) {
    int D8 = D & ~7;
    for (int g = 0; g < G; g++)
        for (int d = 0; d < D; d++) out[(size_t)g * D + d] = 0;
    /* 32 output columns x up to 3 heads = 12 accumulators, plus the V loads. */
    for (int d0 = 0; d0 < D8; d0 += 32) {
        int dn = D8 - d0 < 32 ? (D8 - d0) / 8 : 4;
        for (int g0 = 0; g0 < G; g0 += 3) {
            int gn = G - g0 < 3 ? G - g0 : 3;
            __m256 acc[3][4];
            for (int g = 0; g < 3; g++)
                for (int j = 0; j < 4; j++) acc[g][j] = _mm256_setzero_ps();
            for (int p = 0; p < n_pos; p++) {
                size_t row = (size_t)p * stride + (size_t)d0;
                __m256 vv[4];
                for (int j = 0; j < dn; j++) vv[j] = load8(v, kv_type, row + (size_t)(8 * j));
                for (int g = 0; g < gn; g++) {
                    __m256 wp = _mm256_set1_ps(w[(size_t)(g0 + g) * (size_t)n_pos + (size_t)p]);
                    for (int j = 0; j < dn; j++) acc[g][j] = _mm256_fmadd_ps(wp, vv[j], acc[g][j]);
                }
            }
            for (int g = 0; g < gn; g++)
                for (int j = 0; j < dn; j++) _mm256_storeu_ps(out + (size_t)(g0 + g) * D + d0 + 8 * j, acc[g][j]);
        }
    }
    for (int g = 0; g < G; g++) /* columns past the last multiple of 8 */
        for (int p = 0; p < n_pos; p++)
            for (int d = D8; d < D; d++)
                out[(size_t)g * D + d] += w[(size_t)g * (size_t)n_pos + (size_t)p] * load1(v, kv_type, (size_t)p * stride + (size_t)d);
}

#endif
