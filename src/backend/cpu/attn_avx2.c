/* AVX2 attention kernels (contract in kernels.h): the query group's G heads
 * share each K/V row load, so a KV head's cache is streamed once per token
 * instead of once per query head. */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define OB_AVX2 __attribute__((target("avx2,fma,f16c")))

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

/* Software prefetch of a K/V row ahead of use: the rows of one head are read
 * once, in order, and the hardware prefetcher alone left the loops waiting on
 * DRAM (7 GB/s per core on the scores loop). */
static inline __attribute__((always_inline)) void prefetch_row(const void *base, ob_type t, size_t i, int D) {
    const char *p = (const char *)base + i * (t == OB_TYPE_F16 ? 2 : 4);
    int bytes = D * (t == OB_TYPE_F16 ? 2 : 4);
    for (int o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

static inline float load1(const void *base, ob_type t, size_t i) {
    return t == OB_TYPE_F16 ? ob_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

#define UNROLL _Pragma("GCC unroll 8")

/* Scores of positions [p0, p0 + NP) for GN heads; NP and GN are constants at
 * every call, so the accumulators stay in registers (with run-time bounds the
 * compiler kept them on the stack). */
static inline __attribute__((always_inline)) OB_AVX2 void scores_tile(const float *qg, const void *k, ob_type kv_type,
                                                                      size_t stride, int p0, int n_pos, int D,
                                                                      float scale, float *scores, const int GN,
                                                                      const int NP, int g_off) {
    int D8 = D & ~7;
    __m256 acc[4][2];
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int i = 0; i < NP; i++) acc[g][i] = _mm256_setzero_ps();
    if (p0 + NP + 8 < n_pos) UNROLL for (int i = 0; i < NP; i++) prefetch_row(k, kv_type, (size_t)(p0 + i + 8) * stride, D);
    for (int d = 0; d < D8; d += 8) {
        __m256 kv[2];
        UNROLL for (int i = 0; i < NP; i++) kv[i] = load8(k, kv_type, (size_t)(p0 + i) * stride + (size_t)d);
        UNROLL for (int g = 0; g < GN; g++) {
            __m256 qv = _mm256_loadu_ps(qg + (size_t)g * D + d);
            UNROLL for (int i = 0; i < NP; i++) acc[g][i] = _mm256_fmadd_ps(qv, kv[i], acc[g][i]);
        }
    }
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int i = 0; i < NP; i++) {
        float sum = hsum(acc[g][i]);
        for (int d = D8; d < D; d++) sum += qg[(size_t)g * D + d] * load1(k, kv_type, (size_t)(p0 + i) * stride + (size_t)d);
        scores[(size_t)(g_off + g) * (size_t)n_pos + (size_t)(p0 + i)] = sum * scale;
    }
}

#define SCORES_FOR(GN)                                                                                  \
    do {                                                                                                \
        int p = 0;                                                                                      \
        for (; p + 2 <= n_pos; p += 2) scores_tile(qg, k, kv_type, stride, p, n_pos, D, scale, scores, GN, 2, g0); \
        if (p < n_pos) scores_tile(qg, k, kv_type, stride, p, n_pos, D, scale, scores, GN, 1, g0);      \
    } while (0)

/* Scores: two positions per tile, up to four heads of the group per pass. */
OB_AVX2 void ob_attn_scores_avx2(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos,
                                 int D, float scale, float *scores) {
    for (int g0 = 0; g0 < G; g0 += 4) {
        const float *qg = q + (size_t)g0 * D;
        switch (G - g0 < 4 ? G - g0 : 4) {
        case 1: SCORES_FOR(1); break;
        case 2: SCORES_FOR(2); break;
        case 3: SCORES_FOR(3); break;
        default: SCORES_FOR(4); break;
        }
    }
}

/* out[g][d0 .. d0 + 32) += sum over positions [pb, pe) of w[g][p] * v[p][...],
 * GN heads; constant GN keeps the 4 x GN accumulators in registers. */
static inline __attribute__((always_inline)) OB_AVX2 void values_tile(float *out, const float *w, const void *v,
                                                                      ob_type kv_type, size_t stride, int n_pos,
                                                                      int D, int pb, int pe, int d0, int g0,
                                                                      const int GN) {
    __m256 acc[3][4];
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int j = 0; j < 4; j++)
        acc[g][j] = _mm256_loadu_ps(out + (size_t)(g0 + g) * D + d0 + 8 * j);
    for (int p = pb; p < pe; p++) {
        size_t row = (size_t)p * stride + (size_t)d0;
        __m256 vv[4];
        UNROLL for (int j = 0; j < 4; j++) vv[j] = load8(v, kv_type, row + (size_t)(8 * j));
        UNROLL for (int g = 0; g < GN; g++) {
            __m256 wp = _mm256_set1_ps(w[(size_t)(g0 + g) * (size_t)n_pos + (size_t)p]);
            UNROLL for (int j = 0; j < 4; j++) acc[g][j] = _mm256_fmadd_ps(wp, vv[j], acc[g][j]);
        }
    }
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int j = 0; j < 4; j++)
        _mm256_storeu_ps(out + (size_t)(g0 + g) * D + d0 + 8 * j, acc[g][j]);
}

/* Values: positions in blocks of PBLK, so a block's V rows come from memory
 * once (prefetched during the previous block) and are re-read from L1 by each
 * (32-column chunk, head group) pass. */
#define PBLK 32
OB_AVX2 void ob_attn_values_avx2(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride,
                                 int n_pos, int D) {
    int D32 = D & ~31;
    for (int g = 0; g < G; g++)
        for (int d = 0; d < D; d++) out[(size_t)g * D + d] = 0;
    for (int pb = 0; pb < n_pos; pb += PBLK) {
        int pe = pb + PBLK < n_pos ? pb + PBLK : n_pos;
        for (int p = pe; p < pe + PBLK && p < n_pos; p++) prefetch_row(v, kv_type, (size_t)p * stride, D);
        for (int d0 = 0; d0 < D32; d0 += 32)
            for (int g0 = 0; g0 < G; g0 += 3) switch (G - g0 < 3 ? G - g0 : 3) {
                case 1: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 1); break;
                case 2: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 2); break;
                default: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 3); break;
                }
    }
    for (int g = 0; g < G; g++) /* columns past the last multiple of 32 */
        for (int p = 0; p < n_pos; p++)
            for (int d = D32; d < D; d++)
                out[(size_t)g * D + d] += w[(size_t)g * (size_t)n_pos + (size_t)p] * load1(v, kv_type, (size_t)p * stride + (size_t)d);
}

#endif
