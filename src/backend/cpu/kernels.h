/* CPU kernels: the scalar reference twins (kernels_scalar.c) and the SIMD
 * variants, chosen at run time by CPU features through one table.
 *
 * Contract (DESIGN.md numerics):
 *  - Activation quantization (BitLinear input), per token row of n floats:
 *      m = max(max_i |x_i|, 1e-5); s = 127 / m;
 *      q_i = clamp(round_half_even(x_i * s), -128, 127)  (float32 product)
 *    q is zero-padded to a multiple of OB_T2_BLOCK; qsum = sum q_i.
 *  - Ternary GEMM on OB_TYPE_T2 rows: acc[t][r] = sum_c t_{r,c} * q[t][c], exact
 *    int32, for rows r in [r0, r1) and every token t. Every implementation must
 *    return the same integers (tests/unit/test_kernels.c checks each against the
 *    scalar twin on odd sizes and fresh random data).
 *  - Float GEMM (full-precision weights: lm_head, llama f32 models):
 *    out[t][r] = sum_c w[r][c] * x[t][c], float32 accumulation. SIMD variants may
 *    reorder the sum (parity within the criterion of shared/fixtures/README.md).
 *  - Int8 GEMM (quantized lm_head, OB_TYPE_I8 rows): exact int32 dot products of
 *    int8 weights with int8 activations.
 */
#ifndef OB_CPU_KERNELS_H
#define OB_CPU_KERNELS_H

#include "format/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Padded activation length for a row of n (multiple of OB_T2_BLOCK). */
static inline int64_t ob_act_pad(int64_t n) { return (n + OB_T2_BLOCK - 1) / OB_T2_BLOCK * OB_T2_BLOCK; }

/* The reference quantizer (float math identical on every backend). Returns s. */
float ob_quantize_row_i8(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum);

/* Ternary x int8 GEMM over a row range.
 *   w: T2 rows (row_bytes each, from row 0); q: n_tok rows of q_stride int8
 *   (q_stride = padded length = row_bytes * 4); qsum: n_tok sums;
 *   acc: acc[t * acc_stride + r] for r in [r0, r1). */
typedef void (*ob_t2_gemm_fn)(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                              const int8_t *q, size_t q_stride, const int32_t *qsum, int n_tok,
                              int32_t *acc, size_t acc_stride);

/* Float-weight GEMM over a row range. w: rows of n_in elements of type wtype
 * (F32, F16 or BF16); x: n_tok rows of x_stride floats; out[t*out_stride + r]. */
typedef void (*ob_f_gemm_fn)(ob_type wtype, const void *w, int64_t n_in, int64_t r0, int64_t r1,
                             const float *x, size_t x_stride, int n_tok, float *out, size_t out_stride);

/* Int8-weight GEMM over a row range (w: rows of n_in int8, q: n_tok rows of
 * q_stride int8, n_in a multiple of 32 is NOT required). */
typedef void (*ob_i8_gemm_fn)(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q,
                              size_t q_stride, int n_tok, int32_t *acc, size_t acc_stride);

/* Attention over one KV head for a group of G query heads sharing it (GQA):
 *   scores[g * n_pos + p] = scale * sum_d q[g * D + d] * k[p * stride + d]
 *   out[g * D + d] = sum_p w[g * n_pos + p] * v[p * stride + d]   (out overwritten)
 * k and v are rows of f32 or f16 (kv_type) `stride` elements apart. Float
 * order may differ between implementations (parity criterion). */
typedef void (*ob_attn_scores_fn)(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos,
                                  int D, float scale, float *scores);
typedef void (*ob_attn_values_fn)(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride,
                                  int n_pos, int D);

/* The activation quantizer with ob_quantize_row_i8's contract and bit-identical
 * results (q, qsum and the returned s), for every input including NaN/inf. */
typedef float (*ob_quantize_i8_fn)(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum);

typedef struct ob_cpu_kernels {
    const char *name;          /* "scalar", "avx2", "avx512vnni", "neon", "neon-dotprod" */
    bool (*available)(void);   /* CPU supports it */
    ob_t2_gemm_fn t2_gemm;
    ob_f_gemm_fn f_gemm;
    ob_i8_gemm_fn i8_gemm;
    ob_attn_scores_fn attn_scores; /* NULL: the scalar twin */
    ob_attn_values_fn attn_values;
    ob_quantize_i8_fn quantize_i8; /* NULL: ob_quantize_row_i8 */
} ob_cpu_kernels;

extern const ob_cpu_kernels ob_kernels_scalar;
#if defined(__x86_64__)
/* AVX2 attention (attn_avx2.c); callers check AVX2 support first. */
void ob_attn_scores_avx2(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos, int D,
                         float scale, float *scores);
void ob_attn_values_avx2(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride, int n_pos,
                         int D);
#endif

/* Attention split by positions (attn_split.c), with set k's kernels (NULL
 * pointers: the scalar twins). A chunk of n_pos positions (kc, vc point at its
 * first K and V rows) writes its partial state to part[ob_attn_part_floats]:
 * [G][D] sums of exp(s - m) v, then (m, l) per head, m = max score, l = sum
 * exp(s - m); scores is [G][n_pos] scratch. ob_attn_merge combines n_chunks
 * consecutive parts, in order, into out[G][D], the softmax-weighted values
 * over all positions (another float order than the single-pass kernels). */
size_t ob_attn_part_floats(int G, int D);
void ob_attn_chunk(const ob_cpu_kernels *k, const float *q, int G, const void *kc, const void *vc, ob_type kv_type,
                   size_t stride, int n_pos, int D, float scale, float *scores, float *part);
void ob_attn_merge(const float *parts, int n_chunks, int G, int D, float *out);

/* name NULL or "auto": the best available; "scalar": the reference twins.
 * NULL when the named set is unknown or unavailable here. */
const ob_cpu_kernels *ob_cpu_kernels_select(const char *name);
/* The table of every compiled set, NULL-terminated (tests iterate it). */
const ob_cpu_kernels *const *ob_cpu_kernels_all(void);

#ifdef __cplusplus
}
#endif
#endif
