/* Scalar reference kernels: the specification every SIMD and GPU kernel matches. */
#include "backend/cpu/kernels.h"

#include <math.h>
#include <string.h>

float ob_quantize_row_i8(const float *x, int64_t n, int64_t n_pad, int8_t *q, int32_t *qsum) {
    float m = 1e-5f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    float s = 127.0f / m;
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * s); /* default rounding mode: half to even */
        v = fminf(fmaxf(v, -128.0f), 127.0f);
        q[i] = (int8_t)v;
        sum += q[i];
    }
    if (n_pad > n) memset(q + n, 0, (size_t)(n_pad - n));
    if (qsum) *qsum = sum;
    return s;
}

static void t2_gemm_scalar(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const int8_t *q,
                           size_t q_stride, const int32_t *qsum, int n_tok, int32_t *acc, size_t acc_stride) {
    (void)qsum;
    int64_t nblk = (int64_t)(row_bytes / OB_T2_BLOCK_BYTES);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int t = 0; t < n_tok; t++) {
            const int8_t *qt = q + (size_t)t * q_stride;
            int32_t sum = 0;
            for (int64_t b = 0; b < nblk; b++) {
                const uint8_t *blk = row + b * OB_T2_BLOCK_BYTES;
                const int8_t *qb = qt + b * OB_T2_BLOCK;
                for (int j = 0; j < OB_T2_BLOCK; j++) {
                    int code = (blk[j % 32] >> (6 - 2 * (j / 32))) & 3;
                    sum += (code - 1) * qb[j];
                }
            }
            acc[(size_t)t * acc_stride + r] = sum;
        }
    }
}

static inline float load_w(ob_type wtype, const void *w, size_t i) {
    switch (wtype) {
    case OB_TYPE_F16: return ob_f16_to_f32(((const uint16_t *)w)[i]);
    case OB_TYPE_BF16: return ob_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

static void f_gemm_scalar(ob_type wtype, const void *w, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                          size_t x_stride, int n_tok, float *out, size_t out_stride) {
    for (int64_t r = r0; r < r1; r++) {
        size_t base = (size_t)r * (size_t)n_in;
        for (int t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * x_stride;
            float sum = 0.0f;
            for (int64_t c = 0; c < n_in; c++) sum += load_w(wtype, w, base + (size_t)c) * xt[c];
            out[(size_t)t * out_stride + r] = sum;
        }
    }
}

static void i8_gemm_scalar(const int8_t *w, int64_t n_in, int64_t r0, int64_t r1, const int8_t *q,
                           size_t q_stride, int n_tok, int32_t *acc, size_t acc_stride) {
    for (int64_t r = r0; r < r1; r++) {
        const int8_t *row = w + (size_t)r * (size_t)n_in;
        for (int t = 0; t < n_tok; t++) {
            const int8_t *qt = q + (size_t)t * q_stride;
            int32_t sum = 0;
            for (int64_t c = 0; c < n_in; c++) sum += row[c] * qt[c];
            acc[(size_t)t * acc_stride + r] = sum;
        }
    }
}

static inline float kv_load(const void *base, ob_type t, size_t i) {
    return t == OB_TYPE_F16 ? ob_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static void attn_scores_scalar(const float *q, int G, const void *k, ob_type kv_type, size_t stride, int n_pos, int D,
                               float scale, float *scores) {
    for (int g = 0; g < G; g++)
        for (int p = 0; p < n_pos; p++) {
            float s = 0;
            for (int d = 0; d < D; d++) s += q[g * D + d] * kv_load(k, kv_type, (size_t)p * stride + (size_t)d);
            scores[(size_t)g * (size_t)n_pos + (size_t)p] = s * scale;
        }
}

static void attn_values_scalar(float *out, const float *w, int G, const void *v, ob_type kv_type, size_t stride,
                               int n_pos, int D) {
    for (int g = 0; g < G; g++) {
        float *o = out + (size_t)g * (size_t)D;
        for (int d = 0; d < D; d++) o[d] = 0;
        for (int p = 0; p < n_pos; p++) {
            float wp = w[(size_t)g * (size_t)n_pos + (size_t)p];
            for (int d = 0; d < D; d++) o[d] += wp * kv_load(v, kv_type, (size_t)p * stride + (size_t)d);
        }
    }
}

static bool always(void) { return true; }

const ob_cpu_kernels ob_kernels_scalar = {
    .name = "scalar",
    .available = always,
    .t2_gemm = t2_gemm_scalar,
    .f_gemm = f_gemm_scalar,
    .i8_gemm = i8_gemm_scalar,
    .attn_scores = attn_scores_scalar,
    .attn_values = attn_values_scalar,
};
