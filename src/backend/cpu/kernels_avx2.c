/* AVX2 kernels (x86-64 with AVX2 + FMA + F16C), selected at run time.
 *
 * The rest of the build stays baseline x86-64: every function here carries
 * the target attribute OB_AVX2 and is only reached through ob_kernels_avx2
 * after `available` checked the CPU.
 *
 * Ternary GEMM (OB_TYPE_T2). One 32-byte load of a 128-weight block gives,
 * after shifts by 6/4/2/0 and & 3, four vectors of 32 codes (t + 1, 0..2)
 * that line up with the block's four 32-activation slices. maddubs(code, q)
 * sums code*q over lane pairs into int16 (|pair| <= 2*2*128 = 512, so no
 * saturation); the four slices of one block stay within 2048 and CHUNK = 8
 * blocks within 16384, so int16 accumulation is exact before widening with
 * madd(.., 1). sum t*q = sum code*q - sum q (qsum), as padding has q = 0.
 * Even the never-valid code 3 of a corrupt file stays exact and matches the
 * scalar twin (t = 2): 8 blocks then reach at most 24576.
 *
 * Register tiles: R rows x T tokens share every load. One token (decode)
 * takes 4 rows so the activation slices are loaded once for four weight
 * streams; several tokens (prefill, a server's batched decode step) take 1 row
 * x 4 tokens and 1 row x the 1-3 tokens left over, so a weight block is
 * decoded once for up to four tokens, and every token passes over a tile of
 * rows while its weights are in L2 (activations in L1). Left-over tokens used
 * to re-read whole matrices from DRAM one token at a time: a 15-token step
 * read the weights four times. */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define OB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) OB_AVX2
#define UNROLL _Pragma("GCC unroll 8")

enum {
    CHUNK = 8,      /* T2 blocks accumulated in int16 before widening (see above) */
    ROW_TILE = 64,  /* prefill rows whose weights stay in L2 while all tokens pass */
};

INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

INLINE float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Decode reads R rows side by side, R short streams that the hardware
 * prefetchers follow poorly (6 GB/s instead of 24 on Zen 4). The R rows are
 * contiguous, so the kernels consume them as one linear region and prefetch
 * that region pf_distance bytes ahead, one line per 64 bytes consumed: at
 * least the next R-row group (whose later rows would otherwise start cold),
 * and at least PF_MIN, about one memory latency times one core's bandwidth.
 * Prefetches past the end of the weights are harmless hints. Several-token
 * tiles do the same in their first token group (t == 0), the one that brings
 * the rows from DRAM: without it a batched 4-token step read weights at
 * 4-6 GB/s. */
#define PF_MIN 4096
INLINE size_t pf_distance(int R, size_t row_bytes) { return R * row_bytes > PF_MIN ? R * row_bytes : PF_MIN; }
INLINE void prefetch_ahead(const uint8_t *consumed, const int n, size_t dist) {
    UNROLL for (int i = 0; i < n; i += 64) _mm_prefetch((const char *)consumed + dist + i, _MM_HINT_T0);
}

/* sum q over a padded activation row (when the caller passed no qsum). */
INLINE int32_t row_qsum(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

/* ---- ternary x int8 ---------------------------------------------------- */

/* acc for rows [r, r+R) x tokens [t, t+T); q points at token t's row. */
INLINE void t2_tile(const uint8_t *w, size_t rb, int64_t r, const int R, const int8_t *q, size_t qs,
                    const int32_t *qsum, int t, const int T, int32_t *acc, size_t as) {
    const int64_t nblk = (int64_t)(rb / OB_T2_BLOCK_BYTES);
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    const size_t pf_dist = pf_distance(R, rb);
    __m256i s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = _mm256_setzero_si256();
    for (int64_t b0 = 0; b0 < nblk; b0 += CHUNK) {
        int64_t b1 = b0 + CHUNK < nblk ? b0 + CHUNK : nblk;
        __m256i h[4][4];
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) h[i][k] = _mm256_setzero_si256();
        for (int64_t b = b0; b < b1; b++) {
            if (t == 0) prefetch_ahead((const uint8_t *)w + (size_t)r * rb + (size_t)b * 32 * R, 32 * R, pf_dist);
            UNROLL for (int i = 0; i < R; i++) {
                __m256i wv = _mm256_loadu_si256((const __m256i *)(w + (size_t)(r + i) * rb + (size_t)b * 32));
                __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(wv, 6), m3);
                __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m3);
                __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(wv, 2), m3);
                __m256i c3 = _mm256_and_si256(wv, m3);
                UNROLL for (int k = 0; k < T; k++) {
                    const int8_t *qb = q + (size_t)k * qs + (size_t)b * OB_T2_BLOCK;
                    __m256i p0 = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)qb));
                    __m256i p1 = _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)(qb + 32)));
                    __m256i p2 = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)(qb + 64)));
                    __m256i p3 = _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)(qb + 96)));
                    h[i][k] = _mm256_add_epi16(h[i][k], _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)));
                }
            }
        }
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++)
            s[i][k] = _mm256_add_epi32(s[i][k], _mm256_madd_epi16(h[i][k], ones));
    }
    UNROLL for (int k = 0; k < T; k++) {
        int32_t qk = qsum ? qsum[t + k] : row_qsum(q + (size_t)k * qs, nblk * OB_T2_BLOCK);
        UNROLL for (int i = 0; i < R; i++) acc[(size_t)(t + k) * as + (size_t)(r + i)] = hsum_i32(s[i][k]) - qk;
    }
}

/* Several tokens: for each tile of ROW_TILE rows (weights in L2), every group
 * of 4 tokens (activations in L1), then the 1-3 left over, 1 row at a time. */
#define T2_ROWS(T) \
    for (int64_t r = rt; r < re; r++) t2_tile(w, row_bytes, r, 1, qt, q_stride, qsum, t, T, acc, acc_stride)

static OB_AVX2 void t2_gemm_avx2(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const int8_t *q,
                                 size_t q_stride, const int32_t *qsum, int n_tok, int32_t *acc, size_t acc_stride) {
    if (n_tok == 1) { /* decode: 4 rows per tile, bound by DRAM */
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) t2_tile(w, row_bytes, r, 4, q, q_stride, qsum, 0, 1, acc, acc_stride);
        for (; r < r1; r++) t2_tile(w, row_bytes, r, 1, q, q_stride, qsum, 0, 1, acc, acc_stride);
        return;
    }
    for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {
        int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
        int t = 0;
        const int8_t *qt = q;
        for (; t + 4 <= n_tok; t += 4, qt += 4 * q_stride) T2_ROWS(4);
        switch (n_tok - t) {
        case 3: T2_ROWS(3); break;
        case 2: T2_ROWS(2); break;
        case 1: T2_ROWS(1); break;
        default: break;
        }
    }
}

/* ---- float weights (F32 / F16 / BF16) --------------------------------- */

INLINE __m256 load8_w(ob_type wtype, const void *w, size_t i) {
    switch (wtype) {
    case OB_TYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    case OB_TYPE_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
    default: return _mm256_loadu_ps((const float *)w + i);
    }
}

INLINE float load1_w(ob_type wtype, const void *w, size_t i) {
    switch (wtype) {
    case OB_TYPE_F16: return ob_f16_to_f32(((const uint16_t *)w)[i]);
    case OB_TYPE_BF16: return ob_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

/* out for rows [r, r+R) x tokens [t, t+T); 8 columns per step, scalar tail. */
INLINE void f_tile(ob_type wtype, const void *w, int64_t n_in, int64_t r, const int R, const float *x, size_t xs,
                   int t, const int T, float *out, size_t os) {
    const int64_t n8 = n_in / 8 * 8;
    __m256 s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = _mm256_setzero_ps();
    const size_t esize = wtype == OB_TYPE_F32 ? 4 : 2, pf_dist = pf_distance(R, (size_t)n_in * esize);
    for (int64_t c = 0; c < n8; c += 8) {
        if (t == 0) prefetch_ahead((const uint8_t *)w + ((size_t)r * (size_t)n_in + (size_t)c * R) * esize, (int)(8 * R * esize), pf_dist);
        UNROLL for (int i = 0; i < R; i++) {
            __m256 wv = load8_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)c);
            UNROLL for (int k = 0; k < T; k++)
                s[i][k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (size_t)k * xs + (size_t)c), s[i][k]);
        }
    }
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) {
        float sum = hsum_f32(s[i][k]);
        for (int64_t c = n8; c < n_in; c++)
            sum += load1_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)c) * x[(size_t)k * xs + (size_t)c];
        out[(size_t)(t + k) * os + (size_t)(r + i)] = sum;
    }
}

/* Rows [r, r+R) for every token: groups of 4 tokens, then the 1-3 left over,
 * while the R rows stay in L1. Each (row, token) sum runs the same 8-lane
 * chains whatever the tile, so a token's output does not depend on the batch
 * it came in (a server's batched step gives single-stream results). */
#define F_ROWS(WT, R)                                                                                   \
    do {                                                                                                \
        int t = 0;                                                                                      \
        for (; t + 4 <= n_tok; t += 4) f_tile(WT, w, n_in, r, R, x + (size_t)t * x_stride, x_stride, t, 4, out, out_stride); \
        const float *xt = x + (size_t)t * x_stride;                                                     \
        switch (n_tok - t) {                                                                            \
        case 3: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 3, out, out_stride); break;                  \
        case 2: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 2, out, out_stride); break;                  \
        case 1: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 1, out, out_stride); break;                  \
        default: break;                                                                                 \
        }                                                                                               \
    } while (0)

/* One body per weight type so load8_w's switch folds away. One token: 2 rows
 * per tile (bound by DRAM: two streams and two FMA chains; 4-row tiles read
 * 20-30% slower, a single row's one chain waits on FMA latency, and two
 * chains per row would change the summation order that batches share);
 * several: 2 rows x 4 tokens (8 FMA chains, 2 weight and 4 activation loads
 * per 8 FMAs, bound by the FMA units). */
#define F_GEMM_BODY(WT)                                                                              \
    do {                                                                                             \
        int64_t r = r0;                                                                              \
        if (n_tok == 1) {                                                                            \
            for (; r + 2 <= r1; r += 2) f_tile(WT, w, n_in, r, 2, x, x_stride, 0, 1, out, out_stride); \
            for (; r < r1; r++) f_tile(WT, w, n_in, r, 1, x, x_stride, 0, 1, out, out_stride);     \
            break;                                                                                   \
        }                                                                                            \
        for (; r + 2 <= r1; r += 2) F_ROWS(WT, 2);                                                   \
        if (r < r1) F_ROWS(WT, 1);                                                                   \
    } while (0)

static OB_AVX2 void f_gemm_avx2(ob_type wtype, const void *w, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                            size_t x_stride, int n_tok, float *out, size_t out_stride) {
    switch (wtype) {
    case OB_TYPE_F16: F_GEMM_BODY(OB_TYPE_F16); break;
    case OB_TYPE_BF16: F_GEMM_BODY(OB_TYPE_BF16); break;
    default: F_GEMM_BODY(OB_TYPE_F32); break;
    }
}

/* ---- int8 x int8 -------------------------------------------------------
 * maddubs needs an unsigned operand and saturates at 2 * 128 * 128, so the
 * exact path widens both sides to int16 and uses madd (products <= 2^14, a
 * pair <= 2^15, summed in int32). */

INLINE void i8_tile(const int8_t *w, int64_t n_in, int64_t r, const int R, const int8_t *q, size_t qs, int t,
                    const int T, int32_t *acc, size_t as) {
    const int64_t n16 = n_in / 16 * 16;
    const size_t pf_dist = pf_distance(R, (size_t)n_in);
    __m256i s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = _mm256_setzero_si256();
    for (int64_t c = 0; c < n16; c += 16) {
        if (t == 0) prefetch_ahead((const uint8_t *)w + (size_t)r * (size_t)n_in + (size_t)c * R, 16 * R, pf_dist);
        __m256i qv[4];
        UNROLL for (int k = 0; k < T; k++)
            qv[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + (size_t)k * qs + (size_t)c)));
        UNROLL for (int i = 0; i < R; i++) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + (size_t)(r + i) * (size_t)n_in + (size_t)c)));
            UNROLL for (int k = 0; k < T; k++) s[i][k] = _mm256_add_epi32(s[i][k], _mm256_madd_epi16(wv, qv[k]));
        }
    }
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) {
        int32_t sum = hsum_i32(s[i][k]);
        const int8_t *row = w + (size_t)(r + i) * (size_t)n_in;
        for (int64_t c = n16; c < n_in; c++) sum += row[c] * q[(size_t)k * qs + (size_t)c];
        acc[(size_t)(t + k) * as + (size_t)(r + i)] = sum;
    }
}

/* One token: 4 rows per tile. Several: each row (in L1) against groups of 4
 * tokens, then the 1-3 left over. */
static OB_AVX2 void i8_gemm_avx2(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q,
                                 size_t q_stride, int n_tok, int32_t *acc, size_t acc_stride) {
    if (n_tok == 1) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) i8_tile(w, n_in, r, 4, q, q_stride, 0, 1, acc, acc_stride);
        for (; r < r1; r++) i8_tile(w, n_in, r, 1, q, q_stride, 0, 1, acc, acc_stride);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        int t = 0;
        for (; t + 4 <= n_tok; t += 4) i8_tile(w, n_in, r, 1, q + (size_t)t * q_stride, q_stride, t, 4, acc, acc_stride);
        const int8_t *qt = q + (size_t)t * q_stride;
        switch (n_tok - t) {
        case 3: i8_tile(w, n_in, r, 1, qt, q_stride, t, 3, acc, acc_stride); break;
        case 2: i8_tile(w, n_in, r, 1, qt, q_stride, t, 2, acc, acc_stride); break;
        case 1: i8_tile(w, n_in, r, 1, qt, q_stride, t, 1, acc, acc_stride); break;
        default: break;
        }
    }
}

/* ---- activation quantizer --------------------------------------------------
 * Bit-identical to ob_quantize_row_i8 (the spec) for every input:
 *  - max|x|: maxps(|x|, m) returns m when x is NaN, as fmaxf ignores a NaN;
 *    max is exact and order-free for the non-NaN values;
 *  - x * s is the same IEEE product; roundps to nearest is nearbyintf in the
 *    default rounding mode (half to even);
 *  - the clamp maxps(v, -128) returns -128 for a NaN v, as fmaxf does, then
 *    minps(., 127); the value is then an exact integer in [-128, 127]. */

INLINE float clamp_q(float v) { /* fminf(fmaxf(v, -128), 127), NaN -> -128 */
    if (!(v >= -128.0f)) v = -128.0f;
    return v > 127.0f ? 127.0f : v;
}

/* Not static: the AVX-512 set uses it too. */
float ob_quantize_row_i8_avx2(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum);
OB_AVX2 float ob_quantize_row_i8_avx2(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mv = _mm256_set1_ps(1e-5f), nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mv = _mm256_max_ps(_mm256_and_ps(v, abs_mask), mv);
    }
    bool has_nan = _mm256_movemask_ps(nan) != 0;
    for (int64_t j = i; j < n; j++) has_nan |= isnan(x[j]);
    /* A NaN's effect on fmaxf's running maximum depends on its kind and place
     * (a signalling NaN makes fmaxf return NaN, which the next step drops), so
     * such rows, never seen in a sane model, go to the specification. */
    if (has_nan) return ob_quantize_row_i8(x, n, n_pad, q, qsum);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float m = _mm_cvtss_f32(m4);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    const float s = 127.0f / m;
    const __m256 sv = _mm256_set1_ps(s), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undoes the per-lane packs */
    __m256i sum = _mm256_setzero_si256();
    for (i = 0; i + 32 <= n; i += 32) {
        __m256i v[4];
        UNROLL for (int k = 0; k < 4; k++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), sv),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
            sum = _mm256_add_epi32(sum, v[k]);
        }
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(b, order));
    }
    int32_t total = hsum_i32(sum);
    for (; i < n; i++) {
        q[i] = (int8_t)clamp_q(nearbyintf(x[i] * s));
        total += q[i];
    }
    if (n_pad > n) memset(q + n, 0, (size_t)(n_pad - n));
    if (qsum) *qsum = total;
    return s;
}

static bool avx2_available(void) {
    unsigned a, b, c, d; /* F16C is CPUID.1:ECX bit 29 (not every compiler names it) */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __get_cpuid(1, &a, &b, &c, &d) &&
           (c >> 29 & 1);
}

const ob_cpu_kernels ob_kernels_avx2 = {
    .name = "avx2",
    .available = avx2_available,
    .t2_gemm = t2_gemm_avx2,
    .f_gemm = f_gemm_avx2,
    .i8_gemm = i8_gemm_avx2,
    .attn_scores = ob_attn_scores_avx2,
    .attn_values = ob_attn_values_avx2,
    .quantize_i8 = ob_quantize_row_i8_avx2,
};

#endif /* __x86_64__ */
