/* AVX-512 VNNI kernels (x86-64 with AVX-512 F/BW/VL + VNNI: Ice Lake, Zen 4
 * and later), selected at run time. Ternary decode (single tokens),
 * attention and the activation quantizer are the AVX2 ones: they are bound by
 * memory, which these instructions do not read faster (the float GEMM is its
 * own for its decode stream, below).
 *
 * vpdpbusd multiplies 4 unsigned by 4 signed bytes and adds them into an
 * int32 lane with no intermediate saturation, so the int16 chunking of the
 * AVX2 kernel disappears and so do the decode shifts:
 *
 * Ternary GEMM (OB_TYPE_T2). A 32-byte block is broadcast to both halves of a
 * zmm; masking with 0xC0 (low half) | 0x30 (high half) leaves 64*code of
 * slice 0 and 16*code of slice 1, which line up with the 64 contiguous
 * activations q[0..63] of the block; the block shifted left by 4 and masked
 * the same way does slices 2 and 3 against q[64..127], at the same scales.
 * Each lane so accumulates 2^k * sum code*q for a fixed k, and a per-lane
 * arithmetic shift by k (exact: every term is a multiple of 2^k) recovers
 * sum code*q (bounds in t2_tile). Then, as in every set,
 * sum t*q = sum code*q - qsum.
 *
 * Int8 GEMM. w ^ 0x80 = w + 128 as an unsigned byte, so dpbusd(w ^ 0x80, q)
 * sums w*q + 128*q, and dpbusd(0x80, q) sums the 128*q to subtract. Both are
 * exact modulo 2^32, and so is their difference, which is the int32 answer.
 * Masked loads handle any n_in (zeros beyond the row contribute nothing). */
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define OB_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline)) OB_VNNI
#define UNROLL _Pragma("GCC unroll 8")

/* acc += dpbusd(u8 a, s8 b). GCC 12 wraps every vpdpbusd intrinsic in two
 * register copies (it treats the accumulator as a fresh destination), which
 * doubles the instruction count of the inner loops; the instruction itself,
 * with its accumulator tied in place, avoids that. Its operands are registers
 * ("v", not "vm"): allowed a memory operand, GCC reloaded each activation
 * vector once per row of a tile, and the 2 x 4 tiles were bound by loads. */
#if defined(__GNUC__) && !defined(__clang__)
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))
#else
#define DPBUSD(acc, a, b) ((acc) = _mm512_dpbusd_epi32((acc), (a), (b)))
#endif

/* How a tile prefetches: the first token group reads the weights ahead
 * into L1 (they come from DRAM); the later groups share the next row tile's
 * L2 prefetch, group g >= 1 of G taking every (G-1)-th 4-row tile, so the
 * DRAM reads spread over the whole pass instead of one group's. */
enum { PF_NONE, PF_AHEAD, PF_NEXT_TILE };
#define PF_MODE(r) (t == 0 ? PF_AHEAD : ((r) - rt) / 4 % (n_grp - 1) == t / 4 - 1 ? PF_NEXT_TILE : PF_NONE)

enum {
    CHUNK = 4096,   /* T2 blocks accumulated before the per-lane shift (see t2_tile) */
    ROW_TILE = 64,  /* prefill rows whose weights stay in L2 while all tokens pass */
    PF_MIN = 4096   /* decode prefetch distance, at least; see kernels_avx2.c */
};

/* The AVX2 set (ternary decode) and its quantizer (kernels_avx2.c). */
extern const ob_cpu_kernels ob_kernels_avx2;
float ob_quantize_row_i8_avx2(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum);

INLINE size_t pf_distance(int R, size_t row_bytes) { return R * row_bytes > PF_MIN ? R * row_bytes : PF_MIN; }

INLINE void prefetch_ahead(const uint8_t *consumed, const int n, size_t dist) {
    UNROLL for (int i = 0; i < n; i += 64) _mm_prefetch((const char *)consumed + dist + i, _MM_HINT_T0);
}

/* The same n bytes of the next tile of ROW_TILE rows (row_bytes each), into
 * L2: while the later token groups of a several-token GEMM compute from L2,
 * they fetch the weights the first group will need next, so that group stops
 * waiting on DRAM (without it, the first group streamed at DRAM speed and
 * the others computed, one after the other). Past the matrix end it is a
 * harmless hint. */
INLINE void prefetch_next_tile(const uint8_t *consumed, const int n, size_t row_bytes) {
    UNROLL for (int i = 0; i < n; i += 64)
        _mm_prefetch((const char *)consumed + (size_t)ROW_TILE * row_bytes + i, _MM_HINT_T1);
}

/* Lane sums of T accumulators into tot[0..T) (wrapping int32 adds, the same
 * as _mm512_reduce_add_epi32). For T = 4, one reduction tree serves all four:
 * at 2560 columns a 2 x 4 tile's 8 separate reductions cost about a quarter
 * of its multiply-adds. */
INLINE void reduce_tile(const __m512i *v, const int T, int32_t *tot) {
    if (T != 4) {
        UNROLL for (int k = 0; k < T; k++) tot[k] = _mm512_reduce_add_epi32(v[k]);
        return;
    }
    __m256i h[4];
    UNROLL for (int k = 0; k < 4; k++)
        h[k] = _mm256_add_epi32(_mm512_castsi512_si256(v[k]), _mm512_extracti64x4_epi64(v[k], 1));
    __m256i ab = _mm256_hadd_epi32(h[0], h[1]), cd = _mm256_hadd_epi32(h[2], h[3]);
    __m256i abcd = _mm256_hadd_epi32(ab, cd); /* per 128-bit half: partial a, b, c, d */
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
    _mm_storeu_si128((__m128i *)tot, sum);
}

/* ---- ternary x int8 ---------------------------------------------------- */

/* acc for rows [r, r+R) x tokens [t, t+T); q points at token t's row.
 *
 * One accumulator per (row, token): slices 2 and 3 are first moved onto the
 * bit positions of slices 0 and 1 (a 16-bit shift left by 4 carries bits 0-3
 * of each byte to 4-7 and bits 4-7 of the low byte into the high byte, which
 * the mask drops), so both dpbusd of a block add 64*code (low half) or
 * 16*code (high half) into the same lanes. A lane gains at most
 * 2 * 4 * 192 * 128 < 2^18 per block, so CHUNK blocks stay below 2^31
 * before the per-lane shift. With R = 4, T = 4 a block takes 16 accumulators,
 * 8 activation vectors and 4 weight loads for 32 dpbusd (the 2 x 4 tile with
 * a pair of accumulators per product needed 10 loads for 16). */
INLINE void t2_tile(const uint8_t *w, size_t rb, int64_t r, const int R, const int8_t *q, size_t qs,
                    const int32_t *qsum, int t, const int T, int pf, int32_t *acc, size_t as) {
    const int64_t nblk = (int64_t)(rb / OB_T2_BLOCK_BYTES);
    const __m512i m01 = _mm512_inserti64x4(_mm512_set1_epi8((char)0xC0), _mm256_set1_epi8(0x30), 1);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi32(6), _mm256_set1_epi32(4), 1);
    const size_t pf_dist = pf_distance(R, rb);
    int32_t tot[4][4] = { { 0 } };
    for (int64_t b0 = 0; b0 < nblk; b0 += CHUNK) {
        int64_t b1 = b0 + CHUNK < nblk ? b0 + CHUNK : nblk;
        __m512i a[4][4];
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) a[i][k] = _mm512_setzero_si512();
        for (int64_t b = b0; b < b1; b++) {
            if (pf == PF_AHEAD) prefetch_ahead(w + (size_t)r * rb + (size_t)b * 32 * R, 32 * R, pf_dist);
            else if (pf == PF_NEXT_TILE) prefetch_next_tile(w + (size_t)r * rb + (size_t)b * 32 * R, 32 * R, rb);
            __m512i q01[4], q23[4]; /* each token's block, loaded once for the R rows */
            UNROLL for (int k = 0; k < T; k++) {
                const int8_t *qb = q + (size_t)k * qs + (size_t)b * OB_T2_BLOCK;
                q01[k] = _mm512_loadu_si512(qb);
                q23[k] = _mm512_loadu_si512(qb + 64);
            }
            UNROLL for (int i = 0; i < R; i++) {
                __m512i wv = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *)(w + (size_t)(r + i) * rb + (size_t)b * 32)));
                __m512i c01 = _mm512_and_si512(wv, m01);
                __m512i c23 = _mm512_and_si512(_mm512_slli_epi16(wv, 4), m01);
                UNROLL for (int k = 0; k < T; k++) {
                    DPBUSD(a[i][k], c01, q01[k]);
                    DPBUSD(a[i][k], c23, q23[k]);
                }
            }
        }
        UNROLL for (int i = 0; i < R; i++) {
            __m512i v[4];
            int32_t part[4];
            UNROLL for (int k = 0; k < T; k++) v[k] = _mm512_srav_epi32(a[i][k], sh01);
            reduce_tile(v, T, part);
            UNROLL for (int k = 0; k < T; k++) tot[i][k] = (int32_t)((uint32_t)tot[i][k] + (uint32_t)part[k]);
        }
    }
    UNROLL for (int k = 0; k < T; k++) {
        int32_t qk = 0;
        if (qsum) qk = qsum[t + k];
        else
            for (int64_t c = 0; c < nblk * OB_T2_BLOCK; c++) qk += q[(size_t)k * qs + (size_t)c];
        UNROLL for (int i = 0; i < R; i++) acc[(size_t)(t + k) * as + (size_t)(r + i)] = tot[i][k] - qk;
    }
}

/* Rows [rt, re) x tokens [t, t + T): 4 rows per tile, then 2, then 1. */
#define T2_ROWS(T)                                                                                     \
    do {                                                                                               \
        int64_t r = rt;                                                                                \
        for (; r + 4 <= re; r += 4)                                                                    \
            t2_tile(w, row_bytes, r, 4, qt, q_stride, qsum, t, T, PF_MODE(r), acc, acc_stride);        \
        if (r + 2 <= re) {                                                                             \
            t2_tile(w, row_bytes, r, 2, qt, q_stride, qsum, t, T, PF_MODE(r), acc, acc_stride);        \
            r += 2;                                                                                    \
        }                                                                                              \
        if (r < re) t2_tile(w, row_bytes, r, 1, qt, q_stride, qsum, t, T, PF_MODE(r), acc, acc_stride); \
    } while (0)

static OB_VNNI void t2_gemm_vnni(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const int8_t *q,
                                 size_t q_stride, const int32_t *qsum, int n_tok, int32_t *acc, size_t acc_stride) {
    /* One token (decode): the AVX2 kernel. A 4-row VNNI decode tile runs 40%
     * faster from cache but read DRAM at 20-23 GB/s against the AVX2 kernel's
     * 32-43 GB/s (2 threads, Zen 4; docs/PERFORMANCE.md), and decode is bound
     * by DRAM. */
    if (n_tok == 1) {
        ob_kernels_avx2.t2_gemm(w, row_bytes, r0, r1, q, q_stride, qsum, 1, acc, acc_stride);
        return;
    }
    /* Several tokens (prefill, batched decode): 4 rows x 4 tokens per
     * register tile, then 4 rows x the 1-3 tokens left over. The 4 tokens'
     * activations (4 x 6912 B at most) stay in L1 while a tile of ROW_TILE
     * rows streams its weights from L2 (ROW_TILE x 1728 B at most), so the
     * weights come from DRAM once per step whatever the token count. */
    for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {
        int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
        int t = 0, n_grp = (n_tok + 3) / 4;
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

/* ---- int8 x int8 -------------------------------------------------------
 * The correction sum(128 * q) depends on the token only, so it is computed
 * once per token per call (corr[]), not once per tile. */

INLINE void i8_tile(const int8_t *w, int64_t n_in, int64_t r, const int R, const int8_t *q, size_t qs, int t,
                    const int T, int pf, const uint32_t *corr, int32_t *acc, size_t as) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const size_t pf_dist = pf_distance(R, (size_t)n_in);
    __m512i s[4][4];
    UNROLL for (int k = 0; k < T; k++) UNROLL for (int i = 0; i < R; i++) s[i][k] = _mm512_setzero_si512();
    for (int64_t c = 0; c < n_in; c += 64) {
        __mmask64 m = n_in - c >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n_in - c)) - 1);
        const uint8_t *wc = (const uint8_t *)w + (size_t)r * (size_t)n_in + (size_t)c * R;
        if (pf == PF_AHEAD) prefetch_ahead(wc, 64 * R, pf_dist);
        else if (pf == PF_NEXT_TILE) prefetch_next_tile(wc, 64 * R, (size_t)n_in);
        __m512i qv[4];
        UNROLL for (int k = 0; k < T; k++) qv[k] = _mm512_maskz_loadu_epi8(m, q + (size_t)k * qs + (size_t)c);
        UNROLL for (int i = 0; i < R; i++) {
            __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w + (size_t)(r + i) * (size_t)n_in + (size_t)c), bias);
            UNROLL for (int k = 0; k < T; k++) DPBUSD(s[i][k], wv, qv[k]);
        }
    }
    int32_t tot[4][4];
    UNROLL for (int i = 0; i < R; i++) reduce_tile(s[i], T, tot[i]);
    UNROLL for (int k = 0; k < T; k++) UNROLL for (int i = 0; i < R; i++)
        acc[(size_t)(t + k) * as + (size_t)(r + i)] = (int32_t)((uint32_t)tot[i][k] - corr[t + k]);
}

/* 128 * sum q of one token's row, modulo 2^32 (what dpbusd(0x80, q) sums). */
INLINE uint32_t i8_corr(const int8_t *q, int64_t n_in) {
    __m512i sum = _mm512_setzero_si512();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t c = 0; c < n_in; c += 64) {
        __mmask64 m = n_in - c >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n_in - c)) - 1);
        DPBUSD(sum, bias, _mm512_maskz_loadu_epi8(m, q + c));
    }
    return (uint32_t)_mm512_reduce_add_epi32(sum);
}

/* Rows [rt, re) x tokens [t, t + T): 4 rows per tile, then 2, then 1. */
#define I8_ROWS(T)                                                                                       \
    do {                                                                                                 \
        int64_t r = rt;                                                                                  \
        for (; r + 4 <= re; r += 4) i8_tile(w, n_in, r, 4, qt, q_stride, t, T, PF_MODE(r), corr, acc, acc_stride); \
        if (r + 2 <= re) {                                                                               \
            i8_tile(w, n_in, r, 2, qt, q_stride, t, T, PF_MODE(r), corr, acc, acc_stride);               \
            r += 2;                                                                                      \
        }                                                                                                \
        if (r < re) i8_tile(w, n_in, r, 1, qt, q_stride, t, T, PF_MODE(r), corr, acc, acc_stride);       \
    } while (0)

enum { I8_MAX_TOK = 64 }; /* tokens per pass over the rows (corr[] on the stack) */

static OB_VNNI void i8_pass(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q, size_t q_stride,
                            int n_tok, int32_t *acc, size_t acc_stride) {
    uint32_t corr[I8_MAX_TOK];
    for (int t = 0; t < n_tok; t++) corr[t] = i8_corr(q + (size_t)t * q_stride, n_in);
    if (n_tok == 1) { /* decode, bound by DRAM: one row at a time, one linear stream (see f_gemm_vnni) */
        for (int64_t r = r0; r < r1; r++) i8_tile(w, n_in, r, 1, q, q_stride, 0, 1, PF_AHEAD, corr, acc, acc_stride);
        return;
    }
    /* Several tokens: 4 rows x 4 tokens per tile (16 dpbusd per 4 + 4 loads,
     * 16 accumulators), then 4 rows x the 1-3 left over; as in t2_gemm_vnni, each group of 4
     * tokens (in L1) passes over a tile of ROW_TILE rows (in L2). Rows
     * outermost, with all tokens' activations streamed from L2, ran at half
     * the speed for 16 tokens. */
    for (int64_t rt = r0; rt < r1; rt += ROW_TILE) {
        int64_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
        int t = 0, n_grp = (n_tok + 3) / 4;
        const int8_t *qt = q;
        for (; t + 4 <= n_tok; t += 4, qt += 4 * q_stride) I8_ROWS(4);
        switch (n_tok - t) {
        case 3: I8_ROWS(3); break;
        case 2: I8_ROWS(2); break;
        case 1: I8_ROWS(1); break;
        default: break;
        }
    }
}

static OB_VNNI void i8_gemm_vnni(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q,
                                 size_t q_stride, int n_tok, int32_t *acc, size_t acc_stride) {
    for (int t0 = 0; t0 < n_tok; t0 += I8_MAX_TOK)
        i8_pass(w, n_in, r0, r1, q + (size_t)t0 * q_stride, q_stride, OB_MIN(I8_MAX_TOK, n_tok - t0),
                acc + (size_t)t0 * acc_stride, acc_stride);
}

/* ---- float weights (F32 / F16 / BF16) -----------------------------------
 * Each (row, token) sum runs two sixteen-lane chains: column c adds into chain
 * (c / 16) % 2, lane c % 16, the last partial step with masked (zero) loads;
 * the two chains are then added and the 16 lanes reduced by one fixed tree.
 * Every tile shape runs exactly these operations, so a token's output does not
 * depend on the batch it came in (test_f_gemm_batch_invariant); the error
 * bound of any summation order holds (test_f_gemm).
 *
 * One token (decode, bound by DRAM): one row at a time, so each thread reads
 * its contiguous rows as one linear stream, as the bandwidth probe does, one
 * 64-byte load per 32 F16/BF16 weights (both halves converted from the
 * register), prefetched into L2 (prefetch_l2_ahead). The AVX2 set's 4-row
 * tile (four streams side by side, 16-byte loads, prefetch into L1) read the
 * 657 MB F16 lm_head at 53-72% of the probe in paired rounds where this one
 * read at 82-96% (docs/PERFORMANCE.md). Several tokens: 2 rows x 4 tokens
 * per tile (16 accumulators, 4 weight and 8 activation vectors per step). */

enum {
    F_STEP = 32,     /* columns per step: 64 bytes of F16/BF16 */
    F_PF_L2 = 4096,  /* decode prefetch distance (4 and 8 KB measured alike) */
    PF_L2_AHEAD = PF_NEXT_TILE + 1
};

/* Columns [c, c+32) of a row as two 16-float vectors; full steps only. */
INLINE void load32_w(ob_type wtype, const void *w, size_t i, __m512 *lo, __m512 *hi) {
    switch (wtype) {
    case OB_TYPE_F16: {
        __m512i raw = _mm512_loadu_si512((const uint16_t *)w + i);
        *lo = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
        *hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
        break;
    }
    case OB_TYPE_BF16: {
        __m512i raw = _mm512_loadu_si512((const uint16_t *)w + i);
        *lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(raw)), 16));
        *hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(raw, 1)), 16));
        break;
    }
    default:
        *lo = _mm512_loadu_ps((const float *)w + i);
        *hi = _mm512_loadu_ps((const float *)w + i + 16);
        break;
    }
}

/* Up to 16 columns from i (mask m), zeros elsewhere. */
INLINE __m512 load16_w(ob_type wtype, const void *w, size_t i, __mmask16 m) {
    switch (wtype) {
    case OB_TYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i));
    case OB_TYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i)), 16));
    default: return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    }
}

/* One row's stream, F_PF_L2 bytes ahead into L2 only (_MM_HINT_T1): the L1
 * prefetcher follows a single stream from there, and L1 keeps the 10 KB of
 * activations. Into L1 (as prefetch_ahead) the 1-row F16 decode read 15%
 * slower in paired runs; the 4-row ternary tile, which L1's prefetcher cannot
 * follow, reads 20-30% slower with T1, so only this stream uses it. */
INLINE void prefetch_l2_ahead(const uint8_t *consumed, const int n) {
    UNROLL for (int i = 0; i < n; i += 64) _mm_prefetch((const char *)consumed + F_PF_L2 + i, _MM_HINT_T1);
}

/* out for rows [r, r+R) x tokens [t, t+T); x points at token t's row. pf:
 * PF_AHEAD (several tokens: the first group, into L1), PF_L2_AHEAD (decode)
 * or PF_NONE (the later token groups, which find the rows in L1). */
INLINE void f_tile(ob_type wtype, const void *w, int64_t n_in, int64_t r, const int R, const float *x, size_t xs,
                   int t, const int T, int pf, float *out, size_t os) {
    const size_t esize = wtype == OB_TYPE_F32 ? 4 : 2;
    __m512 s[2][4][2];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++) s[i][k][0] = s[i][k][1] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + F_STEP <= n_in; c += F_STEP) {
        const uint8_t *consumed = (const uint8_t *)w + ((size_t)r * (size_t)n_in + (size_t)c * R) * esize;
        if (pf == PF_AHEAD) prefetch_ahead(consumed, (int)(F_STEP * R * esize), pf_distance(R, (size_t)n_in * esize));
        else if (pf == PF_L2_AHEAD) prefetch_l2_ahead(consumed, (int)(F_STEP * R * esize));
        __m512 x0[4], x1[4];
        UNROLL for (int k = 0; k < T; k++) {
            x0[k] = _mm512_loadu_ps(x + (size_t)k * xs + (size_t)c);
            x1[k] = _mm512_loadu_ps(x + (size_t)k * xs + (size_t)c + 16);
        }
        UNROLL for (int i = 0; i < R; i++) {
            __m512 w0, w1;
            load32_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)c, &w0, &w1);
            UNROLL for (int k = 0; k < T; k++) {
                s[i][k][0] = _mm512_fmadd_ps(w0, x0[k], s[i][k][0]);
                s[i][k][1] = _mm512_fmadd_ps(w1, x1[k], s[i][k][1]);
            }
        }
    }
    for (int h = 0; h < 2 && c + 16 * h < n_in; h++) { /* the last partial step: zeros add +0 */
        int64_t ch = c + 16 * h, left = n_in - ch;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 xv[4];
        UNROLL for (int k = 0; k < T; k++) xv[k] = _mm512_maskz_loadu_ps(m, x + (size_t)k * xs + (size_t)ch);
        UNROLL for (int i = 0; i < R; i++) {
            __m512 wv = load16_w(wtype, w, (size_t)(r + i) * (size_t)n_in + (size_t)ch, m);
            UNROLL for (int k = 0; k < T; k++) s[i][k][h] = _mm512_fmadd_ps(wv, xv[k], s[i][k][h]);
        }
    }
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int k = 0; k < T; k++)
        out[(size_t)(t + k) * os + (size_t)(r + i)] = _mm512_reduce_add_ps(_mm512_add_ps(s[i][k][0], s[i][k][1]));
}

/* Rows [r, r+R) for every token: groups of 4 tokens, then the 1-3 left over;
 * only the first group prefetches (the later ones find the rows in L1). */
#define F_ROWS(WT, R)                                                                                          \
    do {                                                                                                       \
        int t = 0;                                                                                             \
        for (; t + 4 <= n_tok; t += 4)                                                                         \
            f_tile(WT, w, n_in, r, R, x + (size_t)t * x_stride, x_stride, t, 4, t ? PF_NONE : PF_AHEAD, out, out_stride); \
        const float *xt = x + (size_t)t * x_stride;                                                            \
        int pft = t ? PF_NONE : PF_AHEAD;                                                                      \
        switch (n_tok - t) {                                                                                   \
        case 3: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 3, pft, out, out_stride); break;                    \
        case 2: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 2, pft, out, out_stride); break;                    \
        case 1: f_tile(WT, w, n_in, r, R, xt, x_stride, t, 1, pft, out, out_stride); break;                    \
        default: break;                                                                                        \
        }                                                                                                      \
    } while (0)

/* One body per weight type so the loads' switches fold away. */
#define F_GEMM_BODY(WT)                                                                                        \
    do {                                                                                                       \
        int64_t r = r0;                                                                                        \
        if (n_tok == 1) {                                                                                      \
            for (; r < r1; r++) f_tile(WT, w, n_in, r, 1, x, x_stride, 0, 1, PF_L2_AHEAD, out, out_stride);    \
            break;                                                                                             \
        }                                                                                                      \
        for (; r + 2 <= r1; r += 2) F_ROWS(WT, 2);                                                             \
        if (r < r1) F_ROWS(WT, 1);                                                                             \
    } while (0)

static OB_VNNI void f_gemm_vnni(ob_type wtype, const void *w, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                                size_t x_stride, int n_tok, float *out, size_t out_stride) {
    switch (wtype) {
    case OB_TYPE_F16: F_GEMM_BODY(OB_TYPE_F16); break;
    case OB_TYPE_BF16: F_GEMM_BODY(OB_TYPE_BF16); break;
    default: F_GEMM_BODY(OB_TYPE_F32); break;
    }
}

static bool vnni_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const ob_cpu_kernels ob_kernels_avx512vnni = {
    .name = "avx512vnni",
    .available = vnni_available,
    .t2_gemm = t2_gemm_vnni,
    .f_gemm = f_gemm_vnni,
    .i8_gemm = i8_gemm_vnni,
    .attn_scores = ob_attn_scores_avx2,
    .attn_values = ob_attn_values_avx2,
    .quantize_i8 = ob_quantize_row_i8_avx2,
};

#endif /* __x86_64__ */
