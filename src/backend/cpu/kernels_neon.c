/* ARM NEON kernels (AArch64), two sets chosen at run time:
 *  - "neon": Advanced SIMD only, which every AArch64 core has;
 *  - "neon-dotprod": the same, with the int8 dot product (sdot, ARMv8.2
 *    FEAT_DotProd: Cortex-A55/A76 and later, Neoverse, Apple M) for the
 *    ternary and int8 GEMMs; available when the kernel reports HWCAP_ASIMDDP.
 * The rest of the build stays baseline armv8-a: only the functions marked
 * OB_DOTPROD may contain sdot, and they are only reached through the
 * neon-dotprod set after `available` checked the hardware capability.
 *
 * Ternary GEMM (OB_TYPE_T2), no repacking. A 32-byte block is two 16-byte
 * halves; half h holds, in bits 7-6, 5-4, 3-2 and 1-0 of its byte j, the codes
 * of weights 32k + 16h + j for k = 0..3. So after w >> 6, (w >> 4) & 3,
 * (w >> 2) & 3 and w & 3, the four 16-lane code vectors of a half line up
 * with four contiguous 16-byte activation loads at 16h, 32 + 16h, 64 + 16h,
 * 96 + 16h. A regrouped layout (16-byte groups of 64 consecutive weights) would
 * need the same four shift/mask steps per 16 bytes and the same number of
 * activation loads, so it would only cost a conversion at load time.
 *   sdot multiplies the codes (0..2, as int8) by the activations and adds four
 * products into each int32 lane; sum t*q = sum code*q - qsum (padding has
 * q = 0), as in every set. Without dotprod, smull/smlal multiply 8 lanes into
 * int16: one half-block gives 4 products per lane, |code*q| <= 3 * 128 even for
 * the never-valid code 3 of a corrupt file, so CHUNK = 8 blocks (64 products,
 * at most 24576) stay exact in int16 before sadalp widens them.
 *
 * Register tiles as on x86 (kernels_avx2.c): decode (one token) takes 4 rows so
 * the activation loads are shared by four weight streams; prefill takes 2 rows
 * x 4 tokens (sdot) or 1 row x 4 tokens (smull), each weight block decoded once
 * for four tokens, over row tiles whose weights stay in L2. AArch64 has 32
 * vector registers: the 2 x 4 sdot tile has 16 accumulators, 8 code vectors and
 * 4 activation vectors live (GCC 12 keeps 3 of the accumulators in L1 across
 * the inner loop: 6 loads and stores per 64 sdot).
 *
 * Speed: not measured (the development machine is x86; tests run under qemu).
 * There is no software prefetch: ARM cores' stream prefetchers are expected to
 * follow the 4 row streams of a decode tile, which a real machine must confirm. */
#include "backend/cpu/kernels.h"

#if defined(__aarch64__)

#include "backend/cpu/neon_target.h"

#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

enum {
    CHUNK = 8,     /* T2 blocks summed in int16 by the smull kernel (see above) */
    ROW_TILE = 64, /* prefill rows whose weights stay in L2 while all tokens pass */
};

/* sum q over a padded activation row (when the caller passed no qsum). */
INLINE int32_t row_qsum(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

/* The codes of one 16-byte half block: c[k] pairs with activations 32k + 16h. */
INLINE void t2_codes(const uint8_t *half, int8x16_t c[4]) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    uint8x16_t w = vld1q_u8(half);
    c[0] = vreinterpretq_s8_u8(vshrq_n_u8(w, 6));
    c[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w, 4), m3));
    c[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w, 2), m3));
    c[3] = vreinterpretq_s8_u8(vandq_u8(w, m3));
}

/* One token (decode): 4 rows per tile, bound by DRAM. Several (prefill, a
 * server's batched step): for each tile of ROW_TILE rows (weights in L2), every
 * group of 4 tokens (activations in L1), then the 1-3 left over, RT rows at a
 * time; no token re-reads the matrix on its own. */
#define T2_ROWS(TILE, RT, T)                                                              \
    do {                                                                                  \
        int64_t r = rt;                                                                   \
        for (; r + RT <= re; r += RT) TILE(w, rb, r, RT, qt, qs, qsum, t, T, acc, as);    \
        for (; r < re; r++) TILE(w, rb, r, 1, qt, qs, qsum, t, T, acc, as);               \
    } while (0)

#define T2_GEMM_BODY(TILE, RT)                                                            \
    do {                                                                                  \
        if (n_tok == 1) {                                                                 \
            int64_t r = r0;                                                               \
            for (; r + 4 <= r1; r += 4) TILE(w, rb, r, 4, q, qs, qsum, 0, 1, acc, as);    \
            for (; r < r1; r++) TILE(w, rb, r, 1, q, qs, qsum, 0, 1, acc, as);            \
            break;                                                                        \
        }                                                                                 \
        for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {                                  \
            int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;                         \
            int t = 0;                                                                    \
            const int8_t *qt = q;                                                         \
            for (; t + 4 <= n_tok; t += 4, qt += 4 * qs) T2_ROWS(TILE, RT, 4);            \
            switch (n_tok - t) {                                                          \
            case 3: T2_ROWS(TILE, RT, 3); break;                                          \
            case 2: T2_ROWS(TILE, RT, 2); break;                                          \
            case 1: T2_ROWS(TILE, RT, 1); break;                                          \
            default: break;                                                               \
            }                                                                             \
        }                                                                                 \
    } while (0)

#if HAVE_DOTPROD
/* ---- ternary x int8 with sdot ------------------------------------------- */

/* acc for rows [r, r+R) x tokens [t, t+T); q points at token t's row. Two
 * accumulators per (row, token), slices 0-1 and 2-3, halve the sdot chains. */
INLINE OB_DOTPROD void t2_tile_dot(const uint8_t *w, size_t rb, int64_t r, const int R, const int8_t *q,
                                   size_t qs, const int32_t *qsum, int t, const int T, int32_t *acc, size_t as) {
    const int64_t nblk = (int64_t)(rb / OB_T2_BLOCK_BYTES);
    int32x4_t s01[4][4], s23[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s01[i][k] = s23[i][k] = vdupq_n_s32(0);
    for (int64_t b = 0; b < nblk; b++) {
        UNROLL for (int h = 0; h < 2; h++) {
            int8x16_t c[4][4];
            UNROLL for (int i = 0; i < R; i++) t2_codes(w + (size_t)(r + i) * rb + (size_t)b * 32 + 16 * h, c[i]);
            UNROLL for (int k = 0; k < T; k++) {
                const int8_t *qb = q + (size_t)k * qs + (size_t)b * OB_T2_BLOCK + 16 * h;
                int8x16_t a0 = vld1q_s8(qb), a1 = vld1q_s8(qb + 32), a2 = vld1q_s8(qb + 64), a3 = vld1q_s8(qb + 96);
                UNROLL for (int i = 0; i < R; i++) {
                    s01[i][k] = vdotq_s32(vdotq_s32(s01[i][k], c[i][0], a0), c[i][1], a1);
                    s23[i][k] = vdotq_s32(vdotq_s32(s23[i][k], c[i][2], a2), c[i][3], a3);
                }
            }
        }
    }
    UNROLL for (int k = 0; k < T; k++) {
        int32_t qk = qsum ? qsum[t + k] : row_qsum(q + (size_t)k * qs, nblk * OB_T2_BLOCK);
        UNROLL for (int i = 0; i < R; i++)
            acc[(size_t)(t + k) * as + (size_t)(r + i)] = vaddvq_s32(vaddq_s32(s01[i][k], s23[i][k])) - qk;
    }
}

static OB_DOTPROD void t2_gemm_dot(const uint8_t *w, size_t rb, int64_t r0, int64_t r1, const int8_t *q,
                                   size_t qs, const int32_t *qsum, int n_tok, int32_t *acc, size_t as) {
    T2_GEMM_BODY(t2_tile_dot, 2);
}
#endif /* HAVE_DOTPROD */

/* ---- ternary x int8 with smull/smlal (no dotprod) ------------------------ */

INLINE void t2_tile_mull(const uint8_t *w, size_t rb, int64_t r, const int R, const int8_t *q, size_t qs,
                         const int32_t *qsum, int t, const int T, int32_t *acc, size_t as) {
    const int64_t nblk = (int64_t)(rb / OB_T2_BLOCK_BYTES);
    int32x4_t s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = vdupq_n_s32(0);
    for (int64_t b0 = 0; b0 < nblk; b0 += CHUNK) {
        int64_t b1 = b0 + CHUNK < nblk ? b0 + CHUNK : nblk;
        int16x8_t lo[4][4], hi[4][4]; /* int16 sums of lanes 0-7 and 8-15 of every code vector */
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) lo[i][k] = hi[i][k] = vdupq_n_s16(0);
        for (int64_t b = b0; b < b1; b++) {
            UNROLL for (int h = 0; h < 2; h++) {
                int8x16_t c[4][4];
                UNROLL for (int i = 0; i < R; i++) t2_codes(w + (size_t)(r + i) * rb + (size_t)b * 32 + 16 * h, c[i]);
                UNROLL for (int k = 0; k < T; k++) {
                    const int8_t *qb = q + (size_t)k * qs + (size_t)b * OB_T2_BLOCK + 16 * h;
                    int8x16_t a[4] = { vld1q_s8(qb), vld1q_s8(qb + 32), vld1q_s8(qb + 64), vld1q_s8(qb + 96) };
                    UNROLL for (int i = 0; i < R; i++) UNROLL for (int j = 0; j < 4; j++) {
                        lo[i][k] = vmlal_s8(lo[i][k], vget_low_s8(c[i][j]), vget_low_s8(a[j]));
                        hi[i][k] = vmlal_high_s8(hi[i][k], c[i][j], a[j]);
                    }
                }
            }
        }
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++)
            s[i][k] = vpadalq_s16(vpadalq_s16(s[i][k], lo[i][k]), hi[i][k]);
    }
    UNROLL for (int k = 0; k < T; k++) {
        int32_t qk = qsum ? qsum[t + k] : row_qsum(q + (size_t)k * qs, nblk * OB_T2_BLOCK);
        UNROLL for (int i = 0; i < R; i++) acc[(size_t)(t + k) * as + (size_t)(r + i)] = vaddvq_s32(s[i][k]) - qk;
    }
}

static void t2_gemm_neon(const uint8_t *w, size_t rb, int64_t r0, int64_t r1, const int8_t *q, size_t qs,
                         const int32_t *qsum, int n_tok, int32_t *acc, size_t as) {
    T2_GEMM_BODY(t2_tile_mull, 1);
}

/* ---- int8 x int8 ----------------------------------------------------------
 * sdot is exact for every int8 pair (int32 lanes). Without it, smull gives
 * int16 products (|w*q| <= 2^14, exact) that sadalp widens at once: two
 * products of -128 * -128 would already overflow an int16 sum. */

/* acc for rows [r, r+R) x tokens [t, t+T), 16 columns per step, scalar tail. */
INLINE void i8_tail(const int8_t *w, int64_t n_in, int64_t n16, int64_t r, const int R, const int8_t *q,
                    size_t qs, int t, const int T, int32x4_t s[4][4], int32_t *acc, size_t as) {
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) {
        int32_t sum = vaddvq_s32(s[i][k]);
        const int8_t *row = w + (size_t)(r + i) * (size_t)n_in;
        for (int64_t c = n16; c < n_in; c++) sum += row[c] * q[(size_t)k * qs + (size_t)c];
        acc[(size_t)(t + k) * as + (size_t)(r + i)] = sum;
    }
}

#if HAVE_DOTPROD
INLINE OB_DOTPROD void i8_tile_dot(const int8_t *w, int64_t n_in, int64_t r, const int R, const int8_t *q,
                                   size_t qs, int t, const int T, int32_t *acc, size_t as) {
    const int64_t n16 = n_in / 16 * 16;
    int32x4_t s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = vdupq_n_s32(0);
    for (int64_t c = 0; c < n16; c += 16) {
        int8x16_t qv[4];
        UNROLL for (int k = 0; k < T; k++) qv[k] = vld1q_s8(q + (size_t)k * qs + (size_t)c);
        UNROLL for (int i = 0; i < R; i++) {
            int8x16_t wv = vld1q_s8(w + (size_t)(r + i) * (size_t)n_in + (size_t)c);
            UNROLL for (int k = 0; k < T; k++) s[i][k] = vdotq_s32(s[i][k], wv, qv[k]);
        }
    }
    i8_tail(w, n_in, n16, r, R, q, qs, t, T, s, acc, as);
}
#endif

INLINE void i8_tile_mull(const int8_t *w, int64_t n_in, int64_t r, const int R, const int8_t *q, size_t qs,
                         int t, const int T, int32_t *acc, size_t as) {
    const int64_t n16 = n_in / 16 * 16;
    int32x4_t s[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k] = vdupq_n_s32(0);
    for (int64_t c = 0; c < n16; c += 16) {
        int8x16_t qv[4];
        UNROLL for (int k = 0; k < T; k++) qv[k] = vld1q_s8(q + (size_t)k * qs + (size_t)c);
        UNROLL for (int i = 0; i < R; i++) {
            int8x16_t wv = vld1q_s8(w + (size_t)(r + i) * (size_t)n_in + (size_t)c);
            UNROLL for (int k = 0; k < T; k++) {
                s[i][k] = vpadalq_s16(s[i][k], vmull_s8(vget_low_s8(wv), vget_low_s8(qv[k])));
                s[i][k] = vpadalq_s16(s[i][k], vmull_high_s8(wv, qv[k]));
            }
        }
    }
    i8_tail(w, n_in, n16, r, R, q, qs, t, T, s, acc, as);
}

/* One token: 4 rows per tile. Several: each row (in L1) against groups of 4
 * tokens, then the 1-3 left over. */
#define I8_GEMM_BODY(TILE)                                                                          \
    do {                                                                                            \
        if (n_tok == 1) {                                                                           \
            int64_t r = r0;                                                                         \
            for (; r + 4 <= r1; r += 4) TILE(w, n_in, r, 4, q, qs, 0, 1, acc, as);                  \
            for (; r < r1; r++) TILE(w, n_in, r, 1, q, qs, 0, 1, acc, as);                          \
            break;                                                                                  \
        }                                                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                         \
            int t = 0;                                                                              \
            for (; t + 4 <= n_tok; t += 4) TILE(w, n_in, r, 1, q + (size_t)t * qs, qs, t, 4, acc, as); \
            const int8_t *qt = q + (size_t)t * qs;                                                  \
            switch (n_tok - t) {                                                                    \
            case 3: TILE(w, n_in, r, 1, qt, qs, t, 3, acc, as); break;                              \
            case 2: TILE(w, n_in, r, 1, qt, qs, t, 2, acc, as); break;                              \
            case 1: TILE(w, n_in, r, 1, qt, qs, t, 1, acc, as); break;                              \
            default: break;                                                                         \
            }                                                                                       \
        }                                                                                           \
    } while (0)

#if HAVE_DOTPROD
static OB_DOTPROD void i8_gemm_dot(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q,
                                   size_t qs, int n_tok, int32_t *acc, size_t as) {
    I8_GEMM_BODY(i8_tile_dot);
}
#else
#define t2_gemm_dot t2_gemm_neon
#define i8_gemm_dot i8_gemm_neon
#endif

static void i8_gemm_neon(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q, size_t qs,
                         int n_tok, int32_t *acc, size_t as) {
    I8_GEMM_BODY(i8_tile_mull);
}

/* ---- float weights (F32 / F16 / BF16) ----------------------------------- */

/* 8 weights from element i as two float32x4: F16 by fcvtl (exact), BF16 by a
 * 16-bit left shift (exact), F32 as is. */
INLINE void load8_w(ob_type wtype, const void *w, size_t i, float32x4_t *a, float32x4_t *b) {
    switch (wtype) {
    case OB_TYPE_F16: {
        uint16x8_t h = vld1q_u16((const uint16_t *)w + i);
        *a = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
        *b = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)));
        break;
    }
    case OB_TYPE_BF16: {
        uint16x8_t h = vld1q_u16((const uint16_t *)w + i);
        *a = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        *b = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
        break;
    }
    default:
        *a = vld1q_f32((const float *)w + i);
        *b = vld1q_f32((const float *)w + i + 4);
        break;
    }
}

INLINE float load1_w(ob_type wtype, const void *w, size_t i) {
    switch (wtype) {
    case OB_TYPE_F16: return ob_f16_to_f32(((const uint16_t *)w)[i]);
    case OB_TYPE_BF16: return ob_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

/* out for rows [r, r+R) x tokens [t, t+T); 8 columns per step (two FMA chains
 * per output), scalar tail. */
INLINE void f_tile(ob_type wtype, const void *w, int64_t n_in, int64_t r, const int R, const float *x, size_t xs,
                   int t, const int T, float *out, size_t os) {
    const int64_t n8 = n_in / 8 * 8;
    float32x4_t sa[4][4], sb[4][4];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) sa[i][k] = sb[i][k] = vdupq_n_f32(0);
    for (int64_t c = 0; c < n8; c += 8) {
        UNROLL for (int i = 0; i < R; i++) {
            float32x4_t wa, wb;
            load8_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)c, &wa, &wb);
            UNROLL for (int k = 0; k < T; k++) {
                const float *xk = x + (size_t)k * xs + (size_t)c;
                sa[i][k] = vfmaq_f32(sa[i][k], wa, vld1q_f32(xk));
                sb[i][k] = vfmaq_f32(sb[i][k], wb, vld1q_f32(xk + 4));
            }
        }
    }
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) {
        float sum = vaddvq_f32(vaddq_f32(sa[i][k], sb[i][k]));
        for (int64_t c = n8; c < n_in; c++)
            sum += load1_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)c) * x[(size_t)k * xs + (size_t)c];
        out[(size_t)(t + k) * os + (size_t)(r + i)] = sum;
    }
}

/* Rows [r, r+R) for every token: groups of 4 tokens, then the 1-3 left over.
 * Every (row, token) sum runs the same two 4-lane chains and tail whatever
 * the tile, so a token's output does not depend on the batch it came in. */
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

/* One body per weight type so load8_w's switch folds away. One token: 4 rows
 * per tile; several: 2 rows x 4 tokens (16 FMA chains). */
#define F_GEMM_BODY(WT)                                                                              \
    do {                                                                                             \
        int64_t r = r0;                                                                              \
        if (n_tok == 1) {                                                                            \
            for (; r + 4 <= r1; r += 4) f_tile(WT, w, n_in, r, 4, x, x_stride, 0, 1, out, out_stride); \
            for (; r < r1; r++) f_tile(WT, w, n_in, r, 1, x, x_stride, 0, 1, out, out_stride);     \
            break;                                                                                   \
        }                                                                                            \
        for (; r + 2 <= r1; r += 2) F_ROWS(WT, 2);                                                   \
        if (r < r1) F_ROWS(WT, 1);                                                                   \
    } while (0)

static void f_gemm_neon(ob_type wtype, const void *w, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                        size_t x_stride, int n_tok, float *out, size_t out_stride) {
    switch (wtype) {
    case OB_TYPE_F16: F_GEMM_BODY(OB_TYPE_F16); break;
    case OB_TYPE_BF16: F_GEMM_BODY(OB_TYPE_BF16); break;
    default: F_GEMM_BODY(OB_TYPE_F32); break;
    }
}

/* ---- attention (contract in kernels.h) ------------------------------------
 * As in attn_avx2.c: the G query heads of a group share each K/V row load. */

INLINE float32x4_t kv_load4(const void *base, ob_type t, size_t i) {
    if (t == OB_TYPE_F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)base + i)));
    return vld1q_f32((const float *)base + i);
}

INLINE float kv_load1(const void *base, ob_type t, size_t i) {
    return t == OB_TYPE_F16 ? ob_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* Scores of position p for GN heads starting at g0; 4 columns per step. */
INLINE void scores_pos(const float *q, int g0, const int GN, const void *k, ob_type kv_type, size_t stride, int p,
                       int n_pos, int D, float scale, float *scores) {
    const int D4 = D & ~3;
    const size_t row = (size_t)p * stride;
    float32x4_t acc[4];
    UNROLL for (int g = 0; g < GN; g++) acc[g] = vdupq_n_f32(0);
    for (int d = 0; d < D4; d += 4) {
        float32x4_t kv = kv_load4(k, kv_type, row + (size_t)d);
        UNROLL for (int g = 0; g < GN; g++) acc[g] = vfmaq_f32(acc[g], vld1q_f32(q + (size_t)(g0 + g) * D + d), kv);
    }
    UNROLL for (int g = 0; g < GN; g++) {
        float sum = vaddvq_f32(acc[g]);
        for (int d = D4; d < D; d++) sum += q[(size_t)(g0 + g) * D + d] * kv_load1(k, kv_type, row + (size_t)d);
        scores[(size_t)(g0 + g) * (size_t)n_pos + (size_t)p] = sum * scale;
    }
}

static void attn_scores_neon(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos, int D,
                             float scale, float *scores) {
    for (int g0 = 0; g0 < G; g0 += 4)
        for (int p = 0; p < n_pos; p++) switch (G - g0 < 4 ? G - g0 : 4) {
            case 1: scores_pos(q, g0, 1, k, kv_type, stride, p, n_pos, D, scale, scores); break;
            case 2: scores_pos(q, g0, 2, k, kv_type, stride, p, n_pos, D, scale, scores); break;
            case 3: scores_pos(q, g0, 3, k, kv_type, stride, p, n_pos, D, scale, scores); break;
            default: scores_pos(q, g0, 4, k, kv_type, stride, p, n_pos, D, scale, scores); break;
            }
}

/* out[g][d0 .. d0 + 16) += sum over positions [pb, pe) of w[g][p] * v[p][...]
 * for GN heads from g0 (4 x GN accumulators). */
INLINE void values_tile(float *out, const float *w, const void *v, ob_type kv_type, size_t stride, int n_pos, int D,
                        int pb, int pe, int d0, int g0, const int GN) {
    float32x4_t acc[4][4];
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int j = 0; j < 4; j++)
        acc[g][j] = vld1q_f32(out + (size_t)(g0 + g) * D + d0 + 4 * j);
    for (int p = pb; p < pe; p++) {
        size_t row = (size_t)p * stride + (size_t)d0;
        float32x4_t vv[4];
        UNROLL for (int j = 0; j < 4; j++) vv[j] = kv_load4(v, kv_type, row + (size_t)(4 * j));
        UNROLL for (int g = 0; g < GN; g++) {
            float32x4_t wp = vdupq_n_f32(w[(size_t)(g0 + g) * (size_t)n_pos + (size_t)p]);
            UNROLL for (int j = 0; j < 4; j++) acc[g][j] = vfmaq_f32(acc[g][j], wp, vv[j]);
        }
    }
    UNROLL for (int g = 0; g < GN; g++) UNROLL for (int j = 0; j < 4; j++)
        vst1q_f32(out + (size_t)(g0 + g) * D + d0 + 4 * j, acc[g][j]);
}

/* Positions in blocks of PBLK, so a block's V rows are re-read from L1 by each
 * (16-column chunk, head group) pass. */
#define PBLK 32
static void attn_values_neon(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride,
                             int n_pos, int D) {
    const int D16 = D & ~15;
    for (int i = 0; i < G * D; i++) out[i] = 0;
    for (int pb = 0; pb < n_pos; pb += PBLK) {
        int pe = pb + PBLK < n_pos ? pb + PBLK : n_pos;
        for (int d0 = 0; d0 < D16; d0 += 16)
            for (int g0 = 0; g0 < G; g0 += 4) switch (G - g0 < 4 ? G - g0 : 4) {
                case 1: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 1); break;
                case 2: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 2); break;
                case 3: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 3); break;
                default: values_tile(out, w, v, kv_type, stride, n_pos, D, pb, pe, d0, g0, 4); break;
                }
    }
    for (int g = 0; g < G; g++) /* columns past the last multiple of 16 */
        for (int p = 0; p < n_pos; p++)
            for (int d = D16; d < D; d++)
                out[(size_t)g * D + d] += w[(size_t)g * (size_t)n_pos + (size_t)p] * kv_load1(v, kv_type, (size_t)p * stride + (size_t)d);
}

/* ---- activation quantizer ---------------------------------------------------
 * Bit-identical to ob_quantize_row_i8 (the spec), which GCC compiles on AArch64
 * to fmaxnm/fminnm and frinti:
 *  - max|x|: fmaxnm is fmaxf; max is exact and order-free for non-NaN values.
 *    A NaN is the one case where order matters (fmaxnm ignores a quiet NaN but
 *    turns a signalling one into a NaN that the next fmaxnm drops, losing the
 *    max so far), so a row holding any NaN goes to the spec itself;
 *  - x * s is the same IEEE product; frintn rounds half to even, as frinti does
 *    in the default rounding mode;
 *  - clamp fminnm(fmaxnm(v, -128), 127): the only NaN product left is inf * 0
 *    (max|x| = inf gives s = 0), a quiet NaN that fmaxnm maps to -128 as fmaxf
 *    does. The value is then an exact integer in [-128, 127]. */
static float quantize_neon(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum) {
    float32x4_t mv = vdupq_n_f32(1e-5f);
    uint32x4_t ordered = vdupq_n_u32(~0u); /* lanes stay all-ones while no NaN was seen */
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        ordered = vandq_u32(ordered, vceqq_f32(v, v));
        mv = vmaxnmq_f32(mv, vabsq_f32(v));
    }
    bool has_nan = vminvq_u32(ordered) == 0;
    float m = vmaxnmvq_f32(mv);
    for (; i < n; i++) {
        has_nan |= isnan(x[i]);
        m = fmaxf(m, fabsf(x[i]));
    }
    if (has_nan) return ob_quantize_row_i8(x, n, n_pad, q, qsum);
    const float s = 127.0f / m;
    const float32x4_t sv = vdupq_n_f32(s), lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
    int32x4_t sum = vdupq_n_s32(0);
    for (i = 0; i + 16 <= n; i += 16) {
        int32x4_t v[4];
        UNROLL for (int k = 0; k < 4; k++) {
            float32x4_t r = vrndnq_f32(vmulq_f32(vld1q_f32(x + i + 4 * k), sv));
            v[k] = vcvtq_s32_f32(vminnmq_f32(vmaxnmq_f32(r, lo), hi));
            sum = vaddq_s32(sum, v[k]);
        }
        int16x8_t h0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
        int16x8_t h1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
        vst1q_s8(q + i, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
    }
    int32_t total = vaddvq_s32(sum);
    for (; i < n; i++) {
        q[i] = (int8_t)fminf(fmaxf(nearbyintf(x[i] * s), -128.0f), 127.0f);
        total += q[i];
    }
    if (n_pad > n) memset(q + n, 0, (size_t)(n_pad - n));
    if (qsum) *qsum = total;
    return s;
}

/* Advanced SIMD is mandatory in the AArch64 Linux ABI. */
static bool neon_available(void) { return true; }
static bool dotprod_available(void) { return HAVE_DOTPROD && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }

const ob_cpu_kernels ob_kernels_neon = {
    .name = "neon",
    .available = neon_available,
    .t2_gemm = t2_gemm_neon,
    .f_gemm = f_gemm_neon,
    .i8_gemm = i8_gemm_neon,
    .attn_scores = attn_scores_neon,
    .attn_values = attn_values_neon,
    .quantize_i8 = quantize_neon,
};

const ob_cpu_kernels ob_kernels_neon_dotprod = {
    .name = "neon-dotprod",
    .available = dotprod_available,
    .t2_gemm = t2_gemm_dot,
    .f_gemm = f_gemm_neon,
    .i8_gemm = i8_gemm_dot,
    .attn_scores = attn_scores_neon,
    .attn_values = attn_values_neon,
    .quantize_i8 = quantize_neon,
};

#else
/* ISO C wants at least one declaration per translation unit. */
typedef int ob_kernels_neon_unused;
#endif /* __aarch64__ */
