/* Every CUDA kernel against the CPU scalar twins (backend/cpu/kernels.h) on odd
 * sizes and fresh random data. Integer parts (quantization, ternary and int8
 * dot products, and the float scaling that follows them) must match bitwise;
 * float reductions (float-weight GEMV, attention) within 1e-5 relative. */
#include "backend/cpu/kernels.h"
#include "backend/cuda/ob_cuda.h"
#include "gpu_test.h"

#ifdef OB_HAVE_CUDA

static uint64_t rng;

/* ---- host references: the CPU backend's formulas ------------------------------ */

static void ref_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* A test linear: one tensor with its scales. */
typedef struct tlin {
    ob_tensor t;
    float *scale;
    ob_linear lin;
} tlin;

static void tlin_free(tlin *l) {
    free((void *)l->t.data);
    free(l->scale);
}

static void make_t2(tlin *l, int64_t in, int64_t out, int per_row) {
    memset(l, 0, sizeof *l);
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, in);
    uint8_t *w = malloc(rb * (size_t)out);
    for (int64_t r = 0; r < out; r++) {
        uint8_t *row = w + (size_t)r * rb;
        ob_t2_zero_row(row, rb);
        for (int64_t c = 0; c < in; c++) ob_t2_set(row, c, (int)(gt_rand(&rng) % 3) - 1);
    }
    l->t.type = OB_TYPE_T2;
    l->t.n_dims = 2;
    l->t.ne[0] = in, l->t.ne[1] = out, l->t.ne[2] = l->t.ne[3] = 1;
    l->t.data = w;
    l->t.nbytes = rb * (size_t)out;
    int64_t ns = per_row ? out : 1;
    l->scale = malloc(sizeof(float) * (size_t)ns);
    for (int64_t i = 0; i < ns; i++) l->scale[i] = 0.5f + 0.5f * (gt_uniform(&rng) + 1.0f);
    l->lin = (ob_linear){ &l->t, l->scale, ns, in, out };
}

static void make_float(tlin *l, ob_type type, int64_t in, int64_t out) {
    memset(l, 0, sizeof *l);
    size_t elt = type == OB_TYPE_F32 ? 4 : 2;
    void *w = malloc(elt * (size_t)(in * out));
    for (int64_t i = 0; i < in * out; i++) {
        float v = gt_uniform(&rng) * 0.1f;
        if (type == OB_TYPE_F32) ((float *)w)[i] = v;
        else if (type == OB_TYPE_F16) ((uint16_t *)w)[i] = ob_f32_to_f16(v);
        else ((uint16_t *)w)[i] = ob_f32_to_bf16(v);
    }
    l->t.type = type;
    l->t.n_dims = 2;
    l->t.ne[0] = in, l->t.ne[1] = out, l->t.ne[2] = l->t.ne[3] = 1;
    l->t.data = w;
    l->t.nbytes = elt * (size_t)(in * out);
    l->lin = (ob_linear){ &l->t, NULL, 0, in, out };
}

static void make_i8(tlin *l, int64_t in, int64_t out) {
    memset(l, 0, sizeof *l);
    int8_t *w = malloc((size_t)(in * out));
    for (int64_t i = 0; i < in * out; i++) w[i] = (int8_t)((int)(gt_rand(&rng) % 255) - 127);
    l->t.type = OB_TYPE_I8;
    l->t.n_dims = 2;
    l->t.ne[0] = in, l->t.ne[1] = out, l->t.ne[2] = l->t.ne[3] = 1;
    l->t.data = w;
    l->t.nbytes = (size_t)(in * out);
    l->scale = malloc(sizeof(float) * (size_t)out);
    for (int64_t i = 0; i < out; i++) l->scale[i] = 1e-3f * (1.0f + gt_uniform(&rng) * 0.5f);
    l->lin = (ob_linear){ &l->t, l->scale, out, in, out };
}

static float *random_vec(size_t n, float amp) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = gt_uniform(&rng) * amp;
    /* a few outliers, as real activations have */
    for (size_t i = 0; i < n / 97; i++) x[gt_rand(&rng) % n] *= 8.0f;
    return x;
}

/* Reference output of one linear for n_tok rows (input already normed). */
static void ref_linear(const ob_linear *l, const float *xn, int n_tok, float *y) {
    int64_t in = l->in, out = l->out, pad = ob_act_pad(in);
    int8_t *q = malloc((size_t)pad);
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)out);
    for (int t = 0; t < n_tok; t++) {
        const float *x = xn + (size_t)t * in;
        float *yt = y + (size_t)t * out;
        if (l->w->type == OB_TYPE_T2) {
            int32_t qsum;
            float s = ob_quantize_row_i8(x, in, pad, q, &qsum);
            ob_kernels_scalar.t2_gemm(l->w->data, ob_type_row_bytes(OB_TYPE_T2, in), 0, out, q, (size_t)pad, &qsum, 1,
                                      acc, (size_t)out);
            float inv_s = 1.0f / s;
            for (int64_t r = 0; r < out; r++) yt[r] = (float)acc[r] * inv_s * l->scale[l->n_scale == 1 ? 0 : r];
        } else if (l->w->type == OB_TYPE_I8) {
            float s = ob_quantize_row_i8(x, in, pad, q, NULL);
            ob_kernels_scalar.i8_gemm(l->w->data, in, 0, out, q, (size_t)pad, 1, acc, (size_t)out);
            float inv_s = 1.0f / s;
            for (int64_t r = 0; r < out; r++) yt[r] = (float)acc[r] * inv_s * l->scale[r];
        } else {
            ob_kernels_scalar.f_gemm(l->w->type, l->w->data, in, 0, out, x, (size_t)in, 1, yt, (size_t)out);
        }
    }
    free(q);
    free(acc);
}

static int count_diff(const float *a, const float *b, size_t n) {
    int d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

/* ---- quantization ---------------------------------------------------------------- */

static void test_quant(void) {
    int sizes[] = { 77, 1000, 2560, 6913 };
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int n = sizes[si], n_tok = 3, pad = (int)ob_act_pad(n);
        float *x = random_vec((size_t)n * n_tok, 2.0f), *w = random_vec((size_t)n, 1.0f), *xn = malloc(sizeof(float) * n);
        int8_t *q = malloc((size_t)pad * n_tok), *qr = malloc((size_t)pad);
        float s[3];
        int32_t qsum[3];
        for (int with_norm = 0; with_norm < 2; with_norm++) {
            if (ob_cuda_test_quant(x, n, n_tok, with_norm ? w : NULL, 1e-5f, q, s, qsum)) {
                gt_check(0, "quant n=%d: %s", n, ob_last_error());
                continue;
            }
            int bad = 0, qdiff = 0;
            for (int t = 0; t < n_tok; t++) {
                const float *xt = x + (size_t)t * n;
                if (with_norm) {
                    ref_rmsnorm(xn, xt, w, n, 1e-5f);
                    xt = xn;
                }
                int32_t rs;
                float sr = ob_quantize_row_i8(xt, n, pad, qr, &rs);
                if (sr != s[t] || rs != qsum[t]) bad++;
                for (int i = 0; i < pad; i++) qdiff += qr[i] != q[(size_t)t * pad + i];
            }
            gt_check(bad == 0 && qdiff == 0, "quant%s n=%d: scales and sums exact (%d rows off), int8 exact (%d differ)",
                     with_norm ? "+rmsnorm" : "", n, bad, qdiff);
        }
        free(x), free(w), free(xn), free(q), free(qr);
    }
}

/* ---- linears -------------------------------------------------------------------- */

/* Runs parts through the GPU (decode GEMV, then for ternary weights the
 * prefill GEMMs: k_gemm_t2 and cuBLASLt) and compares with the reference;
 * the two GEMMs must also agree bitwise with each other (where the reference
 * is only near: silu's expf). glu: parts[0] gate, parts[1] up. */
static void check_linear(const char *what, tlin *parts, int n_parts, int glu, int relu2, int n_tok, int epi_add,
                         int exact) {
    int64_t in = parts[0].lin.in, n_out = 0;
    for (int i = 0; i < n_parts; i++) n_out = glu ? parts[0].lin.out : n_out + parts[i].lin.out;
    ob_linear lins[4];
    for (int i = 0; i < n_parts; i++) lins[i] = parts[i].lin;
    float *x = random_vec((size_t)in * n_tok, 1.5f), *norm = random_vec((size_t)in, 1.0f);
    float *xn = malloc(sizeof(float) * (size_t)in * n_tok);
    for (int t = 0; t < n_tok; t++) ref_rmsnorm(xn + (size_t)t * in, x + (size_t)t * in, norm, in, 1e-5f);
    /* reference */
    float *ref = malloc(sizeof(float) * (size_t)n_out * n_tok), *y0 = random_vec((size_t)n_out * n_tok, 1.0f);
    float *part_out[4];
    for (int i = 0; i < n_parts; i++) {
        part_out[i] = malloc(sizeof(float) * (size_t)parts[i].lin.out * n_tok);
        ref_linear(&lins[i], xn, n_tok, part_out[i]);
    }
    for (int t = 0; t < n_tok; t++) {
        float *rt = ref + (size_t)t * n_out;
        if (glu) {
            for (int64_t r = 0; r < n_out; r++) {
                float g = part_out[0][(size_t)t * n_out + r], u = part_out[1][(size_t)t * n_out + r];
                float a = relu2 ? (g > 0 ? g * g : 0.0f) : g / (1.0f + expf(-g));
                rt[r] = a * u;
            }
        } else {
            int64_t o = 0;
            for (int i = 0; i < n_parts; i++) {
                memcpy(rt + o, part_out[i] + (size_t)t * parts[i].lin.out, sizeof(float) * (size_t)parts[i].lin.out);
                o += parts[i].lin.out;
            }
        }
        if (epi_add)
            for (int64_t r = 0; r < n_out; r++) rt[r] = y0[(size_t)t * n_out + r] + rt[r];
    }
    size_t ny = (size_t)n_out * n_tok;
    float *y = malloc(sizeof(float) * ny), *y_t2 = malloc(sizeof(float) * ny), *y_gemv = malloc(sizeof(float) * ny);
    int32_t *am = malloc(sizeof(int32_t) * n_tok);
    /* paths: 0 the decode GEMV (ternary: the staged-weight kernel, shares for
     * one block per SM), 1 k_gemm_t2, 2 cuBLASLt, 3 the register-weight GEMV
     * k_gemv_t2, 4 the staged kernel with shares for two blocks per SM */
    int paths = parts[0].t.type == OB_TYPE_T2 ? 5 : 1, t2_ok = 0, gemv_ok = 0;
    for (int path_i = 0; path_i < paths; path_i++) {
        int gemm = path_i >= 3 ? 0 : path_i;
        memcpy(y, y0, sizeof(float) * ny);
        int want_am = !glu && !epi_add && !gemm;
        ob_cuda_test_gemv_staged(path_i == 3 ? 0 : n_tok, path_i == 4 ? 2 : 1);
        ob_status st = ob_cuda_test_linear(lins, n_parts, glu, relu2, norm, 1e-5f, x, n_tok, epi_add, gemm, y,
                                           want_am ? am : NULL);
        ob_cuda_test_gemv_staged(0, 1);
        if (st) {
            gt_check(0, "%s: %s", what, ob_last_error());
            continue;
        }
        const char *path = (const char *[]){ "gemv", "gemm", "cublaslt", "gemv-registers", "gemv-2bps" }[path_i];
        if (path_i == 0) {
            memcpy(y_gemv, y, sizeof(float) * ny);
            gemv_ok = 1;
        } else if (path_i == 1) {
            memcpy(y_t2, y, sizeof(float) * ny);
            t2_ok = 1;
        } else if (path_i == 2 && t2_ok) {
            int d = count_diff(y, y_t2, ny);
            gt_check(d == 0, "%s [cublaslt] tok=%d: bitwise equal to k_gemm_t2 (%d differ)", what, n_tok, d);
        } else if (path_i >= 3 && gemv_ok) {
            int d = count_diff(y, y_gemv, ny);
            gt_check(d == 0, "%s [%s] tok=%d: bitwise equal to the staged GEMV (%d differ)", what, path, n_tok, d);
        }
        if (exact) {
            int d = count_diff(y, ref, (size_t)n_out * n_tok);
            gt_check(d == 0, "%s [%s] in=%lld out=%lld tok=%d: bitwise equal to the scalar twin (%d differ)", what, path,
                     (long long)in, (long long)n_out, n_tok, d);
        } else {
            double worst = 0;
            for (int t = 0; t < n_tok; t++) {
                double e = gt_rel_err(y + (size_t)t * n_out, ref + (size_t)t * n_out, (size_t)n_out);
                if (e > worst) worst = e;
            }
            gt_check(worst <= 1e-5, "%s [%s] in=%lld out=%lld tok=%d: rel err %.2e <= 1e-5", what, path, (long long)in,
                     (long long)n_out, n_tok, worst);
        }
        if (want_am) {
            int ok = 1;
            for (int t = 0; t < n_tok; t++) ok &= am[t] == gt_argmax(y + (size_t)t * n_out, (int)n_out);
            gt_check(ok, "%s: fused argmax equals the argmax of the returned rows", what);
        }
    }
    for (int i = 0; i < n_parts; i++) free(part_out[i]);
    free(x), free(norm), free(xn), free(ref), free(y0), free(y), free(y_t2), free(y_gemv), free(am);
}

static void test_linears(void) {
    tlin p[3];
    /* single ternary matrices, per-tensor and per-row scales, odd shapes */
    make_t2(&p[0], 1000, 77, 0);
    check_linear("t2", p, 1, 0, 0, 3, 0, 1);
    tlin_free(&p[0]);
    make_t2(&p[0], 2560, 2560, 1);
    check_linear("t2 o-shape +residual", p, 1, 0, 0, 2, 1, 1);
    tlin_free(&p[0]);
    make_t2(&p[0], 6912, 2560 + 48, 0);
    check_linear("t2 down-shape", p, 1, 0, 0, 70, 1, 1);
    tlin_free(&p[0]);
    /* fused q|k|v */
    make_t2(&p[0], 333, 256, 0);
    make_t2(&p[1], 333, 77, 0);
    make_t2(&p[2], 333, 77, 1);
    check_linear("t2 fused qkv", p, 3, 0, 0, 67, 0, 1);
    for (int i = 0; i < 3; i++) tlin_free(&p[i]);
    /* gate/up pairs */
    make_t2(&p[0], 512, 171, 0);
    make_t2(&p[1], 512, 171, 0);
    check_linear("t2 gate/up relu2", p, 2, 1, 1, 5, 0, 1);
    check_linear("t2 gate/up silu", p, 2, 1, 0, 65, 0, 0);
    for (int i = 0; i < 2; i++) tlin_free(&p[i]);
    /* single tokens at the 2B-4T shapes: the staged GEMV's block shares
     * (2, 7 and 2 groups of 16 rows on 132 SMs), a last block with fewer
     * groups, and K = 6912 (seven float4 per thread in the prologue) */
    make_t2(&p[0], 2560, 2560, 1);
    make_t2(&p[1], 2560, 640, 1);
    make_t2(&p[2], 2560, 640, 1);
    check_linear("t2 qkv 2B-4T", p, 3, 0, 0, 1, 0, 1);
    for (int i = 0; i < 3; i++) tlin_free(&p[i]);
    make_t2(&p[0], 2560, 6912, 1);
    make_t2(&p[1], 2560, 6912, 1);
    check_linear("t2 gate/up 2B-4T", p, 2, 1, 1, 1, 0, 1);
    for (int i = 0; i < 2; i++) tlin_free(&p[i]);
    make_t2(&p[0], 6912, 2560, 1);
    check_linear("t2 down 2B-4T +residual", p, 1, 0, 0, 1, 1, 1);
    tlin_free(&p[0]);
    make_t2(&p[0], 1028, 2061, 0);
    check_linear("t2 odd rows", p, 1, 0, 0, 1, 0, 1);
    check_linear("t2 odd rows", p, 1, 0, 0, 2, 1, 1);
    tlin_free(&p[0]);
    /* prompt-sized chunks (the cuBLASLt path's range, n_tok >= 64): n_out not
     * a multiple of 16, K not a multiple of 128, every epilogue */
    make_t2(&p[0], 1000, 333, 1);
    check_linear("t2 prompt", p, 1, 0, 0, 129, 0, 1);
    tlin_free(&p[0]);
    make_t2(&p[0], 2597, 250, 0);
    check_linear("t2 prompt +residual", p, 1, 0, 0, 300, 1, 1);
    tlin_free(&p[0]);
    make_t2(&p[0], 200, 96, 0);
    make_t2(&p[1], 200, 40, 1);
    make_t2(&p[2], 200, 40, 0);
    check_linear("t2 prompt fused qkv", p, 3, 0, 0, 64, 0, 1);
    for (int i = 0; i < 3; i++) tlin_free(&p[i]);
    make_t2(&p[0], 777, 203, 1);
    make_t2(&p[1], 777, 203, 0);
    check_linear("t2 prompt gate/up relu2", p, 2, 1, 1, 100, 0, 1);
    check_linear("t2 prompt gate/up silu", p, 2, 1, 0, 257, 0, 0);
    for (int i = 0; i < 2; i++) tlin_free(&p[i]);
    /* float weights (llama linears, lm_head) */
    ob_type ft[3] = { OB_TYPE_F32, OB_TYPE_F16, OB_TYPE_BF16 };
    const char *fn[3] = { "f32", "f16", "bf16" };
    for (int i = 0; i < 3; i++) {
        char name[64];
        make_float(&p[0], ft[i], 2560, 1001);
        snprintf(name, sizeof name, "%s head", fn[i]);
        check_linear(name, p, 1, 0, 0, 3, 0, 0);
        tlin_free(&p[0]);
        make_float(&p[0], ft[i], 61, 45); /* odd K: the scalar path */
        snprintf(name, sizeof name, "%s odd", fn[i]);
        check_linear(name, p, 1, 0, 0, 2, 1, 0);
        tlin_free(&p[0]);
    }
    make_float(&p[0], OB_TYPE_F32, 64, 172);
    make_float(&p[1], OB_TYPE_F32, 64, 172);
    check_linear("f32 gate/up silu", p, 2, 1, 0, 3, 0, 0);
    for (int i = 0; i < 2; i++) tlin_free(&p[i]);
    /* int8 lm_head */
    make_i8(&p[0], 2560, 1003);
    check_linear("i8 head", p, 1, 0, 0, 3, 0, 1);
    tlin_free(&p[0]);
    make_i8(&p[0], 100, 33);
    check_linear("i8 odd", p, 1, 0, 0, 2, 0, 1);
    tlin_free(&p[0]);
}

/* ---- RoPE + KV append + attention ----------------------------------------------- */

static void ref_rope_table(float *cs, int pos, int rope_dim, float base) {
    for (int i = 0; i < rope_dim / 2; i++) {
        float inv_freq = (float)(1.0 / pow((double)base, (double)(2 * i) / (double)rope_dim));
        float ang = (float)pos * inv_freq;
        cs[2 * i] = (float)cos((double)ang);
        cs[2 * i + 1] = (float)sin((double)ang);
    }
}
static void ref_rope(float *x, const float *cs, int rope_dim, int neox) {
    int half = rope_dim / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

/* Reference attention, as cpu_backend.c: roped q (rq) and k, K/V rounded to
 * the cache type (rk, rv as floats; kbits, vbits as stored: 2 or 4 bytes),
 * softmax, weighted V (ro). Token t sits at position t and sees 0..t. */
static void ref_attention(const float *qkv, const float *cs, int n_head, int n_kv, int hd, int rope_dim, int neox,
                          int n_tok, int kv_f32, float *rq, float *rk, float *rv, uint8_t *kbits, uint8_t *vbits,
                          float *ro) {
    int nq = n_head * hd, kvd = n_kv * hd, ld = nq + 2 * kvd, G = n_head / n_kv;
    float *k = malloc(sizeof(float) * kvd);
    for (int t = 0; t < n_tok; t++) {
        memcpy(rq + (size_t)t * nq, qkv + (size_t)t * ld, sizeof(float) * nq);
        memcpy(k, qkv + (size_t)t * ld + nq, sizeof(float) * kvd);
        for (int h = 0; h < n_head; h++) ref_rope(rq + (size_t)t * nq + h * hd, cs + (size_t)t * rope_dim, rope_dim, neox);
        for (int h = 0; h < n_kv; h++) ref_rope(k + h * hd, cs + (size_t)t * rope_dim, rope_dim, neox);
        for (int i = 0; i < kvd; i++) {
            size_t at = (size_t)t * kvd + i;
            float v = qkv[(size_t)t * ld + nq + kvd + i];
            if (kv_f32) {
                rk[at] = k[i], rv[at] = v;
                memcpy(kbits + 4 * at, &k[i], 4), memcpy(vbits + 4 * at, &v, 4);
            } else {
                uint16_t kb = ob_f32_to_f16(k[i]), vb = ob_f32_to_f16(v);
                rk[at] = ob_f16_to_f32(kb), rv[at] = ob_f16_to_f32(vb);
                memcpy(kbits + 2 * at, &kb, 2), memcpy(vbits + 2 * at, &vb, 2);
            }
        }
    }
    /* in double: the reference must be well inside the tolerance itself */
    double *sd = malloc(sizeof(double) * n_tok), *od = malloc(sizeof(double) * hd);
    double scale = 1.0 / sqrt((double)hd);
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < n_head; h++) {
            const float *q = rq + (size_t)t * nq + h * hd;
            int kvh = h / G;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= t; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[d] * rk[(size_t)p * kvd + kvh * hd + d];
                sd[p] = s * scale;
                mx = fmax(mx, sd[p]);
            }
            for (int p = 0; p <= t; p++) sum += (sd[p] = exp(sd[p] - mx));
            for (int d = 0; d < hd; d++) od[d] = 0;
            for (int p = 0; p <= t; p++)
                for (int d = 0; d < hd; d++) od[d] += sd[p] / sum * rv[(size_t)p * kvd + kvh * hd + d];
            for (int d = 0; d < hd; d++) ro[(size_t)t * nq + h * hd + d] = (float)od[d];
        }
    free(sd), free(od);
    free(k);
}

static double worst_rel_err(const float *out, const float *ref, int n_tok, int n) {
    double worst = 0;
    for (int t = 0; t < n_tok; t++) {
        double e = gt_rel_err(out + (size_t)t * n, ref + (size_t)t * n, (size_t)n);
        if (e > worst) worst = e;
    }
    return worst;
}

/* All tokens as one batch (prompt or server step). */
static void test_attention(int n_head, int n_kv, int hd, int rope_dim, int neox, int n_tok, int n_split) {
    int nq = n_head * hd, kvd = n_kv * hd, ld = nq + 2 * kvd;
    float *qkv = random_vec((size_t)n_tok * ld, 1.0f), *cs = malloc(sizeof(float) * (size_t)n_tok * rope_dim);
    for (int t = 0; t < n_tok; t++) ref_rope_table(cs + (size_t)t * rope_dim, t, rope_dim, 10000.0f);
    float *out = malloc(sizeof(float) * (size_t)n_tok * nq), *qr = malloc(sizeof(float) * (size_t)n_tok * nq);
    uint16_t *kc = malloc(2 * (size_t)n_tok * kvd), *vc = malloc(2 * (size_t)n_tok * kvd);
    float *rq = malloc(sizeof(float) * (size_t)n_tok * nq), *rk = malloc(sizeof(float) * (size_t)n_tok * kvd);
    float *rv = malloc(sizeof(float) * (size_t)n_tok * kvd), *ro = malloc(sizeof(float) * (size_t)n_tok * nq);
    uint16_t *rkb = malloc(2 * (size_t)n_tok * kvd), *rvb = malloc(2 * (size_t)n_tok * kvd);
    if (ob_cuda_test_attention(n_head, n_kv, hd, rope_dim, neox, cs, qkv, n_tok, n_split, out, qr, kc, vc)) {
        gt_check(0, "attention: %s", ob_last_error());
    } else {
        ref_attention(qkv, cs, n_head, n_kv, hd, rope_dim, neox, n_tok, 0, rq, rk, rv, (uint8_t *)rkb, (uint8_t *)rvb,
                      ro);
        int qbad = count_diff(qr, rq, (size_t)n_tok * nq), kbad = 0;
        for (size_t i = 0; i < (size_t)n_tok * kvd; i++) kbad += kc[i] != rkb[i] || vc[i] != rvb[i];
        double worst = worst_rel_err(out, ro, n_tok, nq);
        gt_check(qbad == 0, "rope q heads=%d hd=%d rope=%d %s: bitwise equal (%d differ)", n_head, hd, rope_dim,
                 neox ? "neox" : "adjacent", qbad);
        gt_check(kbad == 0, "rope+append K/V f16 bits equal (%d differ)", kbad);
        gt_check(worst <= 1e-5, "attention heads=%d/%d hd=%d tok=%d splits=%d%s: rel err %.2e <= 1e-5", n_head, n_kv,
                 hd, n_tok, n_split, n_split ? "" : " (tensor-core prompt kernel)", worst);
    }
    free(qkv), free(cs), free(out), free(qr), free(kc), free(vc), free(rq), free(rk), free(rv), free(ro), free(rkb),
        free(rvb);
}

/* The same tokens decoded one per launch (the decode step's fused RoPE + KV
 * append + single-token kernel), f16 or f32 cache; twice, to check that the
 * result does not depend on timing (split merges). */
static void test_attention_steps(int n_head, int n_kv, int hd, int rope_dim, int neox, int n_tok, int n_split,
                                 int kv_f32) {
    int nq = n_head * hd, kvd = n_kv * hd, ld = nq + 2 * kvd;
    size_t es = kv_f32 ? 4 : 2, outb = sizeof(float) * (size_t)n_tok * nq;
    float *qkv = random_vec((size_t)n_tok * ld, 1.0f), *cs = malloc(sizeof(float) * (size_t)n_tok * rope_dim);
    for (int t = 0; t < n_tok; t++) ref_rope_table(cs + (size_t)t * rope_dim, t, rope_dim, 10000.0f);
    float *out = malloc(outb), *out2 = malloc(outb);
    uint8_t *kc = malloc(es * n_tok * kvd), *vc = malloc(es * n_tok * kvd);
    float *rq = malloc(sizeof(float) * (size_t)n_tok * nq), *rk = malloc(sizeof(float) * (size_t)n_tok * kvd);
    float *rv = malloc(sizeof(float) * (size_t)n_tok * kvd), *ro = malloc(outb);
    uint8_t *rkb = malloc(es * n_tok * kvd), *rvb = malloc(es * n_tok * kvd);
    const char *kv = kv_f32 ? "f32" : "f16";
    if (ob_cuda_test_attention_steps(n_head, n_kv, hd, rope_dim, neox, cs, qkv, n_tok, n_split, kv_f32, out, kc, vc) ||
        ob_cuda_test_attention_steps(n_head, n_kv, hd, rope_dim, neox, cs, qkv, n_tok, n_split, kv_f32, out2, kc, vc)) {
        gt_check(0, "attention steps: %s", ob_last_error());
    } else {
        ref_attention(qkv, cs, n_head, n_kv, hd, rope_dim, neox, n_tok, kv_f32, rq, rk, rv, rkb, rvb, ro);
        int kbad = 0;
        for (size_t i = 0; i < (size_t)n_tok * kvd; i++)
            kbad += memcmp(kc + es * i, rkb + es * i, es) != 0 || memcmp(vc + es * i, rvb + es * i, es) != 0;
        double worst = worst_rel_err(out, ro, n_tok, nq);
        gt_check(kbad == 0, "decode steps: fused RoPE + append K/V %s bits equal (%d differ)", kv, kbad);
        gt_check(worst <= 1e-5, "decode steps heads=%d/%d hd=%d tok=%d splits=%d kv %s: rel err %.2e <= 1e-5", n_head,
                 n_kv, hd, n_tok, n_split, kv, worst);
        gt_check(memcmp(out, out2, outb) == 0, "decode steps heads=%d/%d tok=%d splits=%d kv %s: two runs bitwise equal",
                 n_head, n_kv, n_tok, n_split, kv);
        /* the general thread mapping: the same summation orders, so the same
         * bits as the wide one (head_dim 128) */
        ob_cuda_test_attn_decode(0, 0);
        ob_status st = ob_cuda_test_attention_steps(n_head, n_kv, hd, rope_dim, neox, cs, qkv, n_tok, n_split, kv_f32,
                                                    out2, kc, vc);
        ob_cuda_test_attn_decode(1, 0);
        gt_check(!st && memcmp(out, out2, outb) == 0,
                 "decode steps heads=%d/%d tok=%d splits=%d kv %s: general mapping bitwise equal to the wide one", n_head,
                 n_kv, n_tok, n_split, kv);
        /* splits of at least 16 positions (short contexts split too) */
        ob_cuda_test_attn_decode(1, 16);
        st = ob_cuda_test_attention_steps(n_head, n_kv, hd, rope_dim, neox, cs, qkv, n_tok, n_split, kv_f32, out2, kc, vc);
        ob_cuda_test_attn_decode(1, 0);
        double w16 = st ? 1.0 : worst_rel_err(out2, ro, n_tok, nq);
        gt_check(w16 <= 1e-5, "decode steps heads=%d/%d tok=%d splits=%d kv %s, 16-position splits: rel err %.2e <= 1e-5",
                 n_head, n_kv, n_tok, n_split, kv, w16);
    }
    free(qkv), free(cs), free(out), free(out2), free(kc), free(vc), free(rq), free(rk), free(rv), free(ro), free(rkb),
        free(rvb);
}

/* ---- embedding ------------------------------------------------------------------- */

static void test_embed(ob_type head) {
    ob_model *m = NULL;
    if (ob_model_synthetic("tiny", head, gt_rand(&rng), &m)) {
        gt_check(0, "synthetic model: %s", ob_last_error());
        return;
    }
    int n = 9, E = m->hp.n_embd;
    int32_t ids[9];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(gt_rand(&rng) % (uint64_t)m->hp.n_vocab);
    ids[0] = 0, ids[1] = m->hp.n_vocab - 1;
    float *out = malloc(sizeof(float) * (size_t)n * E), *ref = malloc(sizeof(float) * (size_t)E);
    int bad = -1;
    if (!ob_cuda_test_embed(m, ids, n, out)) {
        bad = 0;
        const ob_tensor *sc = ob_model_file_find(&m->file, "token_embd.scale");
        for (int i = 0; i < n; i++) {
            ob_tensor_row_f32(m->tok_embd, ids[i], ref);
            if (m->tok_embd->type == OB_TYPE_I8)
                for (int j = 0; j < E; j++) ref[j] *= ((const float *)sc->data)[ids[i]];
            bad += count_diff(out + (size_t)i * E, ref, (size_t)E);
        }
    }
    gt_check(bad == 0, "embedding (%s): rows bitwise equal (%d differ)%s", ob_type_name(m->tok_embd->type), bad,
             bad < 0 ? ob_last_error() : "");
    free(out), free(ref);
    ob_model_free(m);
}

int main(void) {
    rng = gt_seed();
    if (ob_cuda_device_count() <= 0) {
        gt_check(0, "a CUDA device is present");
        return gt_summary("test_cuda_kernels");
    }
    char name[256];
    ob_cuda_device_name(0, name, sizeof name);
    printf("device: %s\n", name);
    test_quant();
    test_linears();
    test_attention(8, 2, 128, 128, 1, 37, 4);
    test_attention(8, 2, 128, 128, 1, 300, 4);
    test_attention(8, 2, 128, 128, 1, 70, 1);
    test_attention(20, 5, 128, 128, 1, 19, 32);
    test_attention(20, 5, 128, 128, 1, 150, 32);
    test_attention(8, 4, 8, 8, 0, 33, 3);
    test_attention(4, 4, 64, 32, 0, 9, 2);
    /* single-token decode steps: one split (short), several (merge), tiles
     * past the first in a split (n_split 1, 300 positions), f16 and f32 */
    test_attention_steps(20, 5, 128, 128, 1, 150, 32, 0);
    test_attention_steps(20, 5, 128, 128, 1, 300, 1, 0);
    test_attention_steps(20, 5, 128, 128, 1, 600, 4, 1);
    test_attention_steps(8, 2, 128, 64, 0, 200, 3, 1);
    test_attention_steps(8, 4, 8, 8, 0, 100, 2, 0);
    test_attention_steps(4, 4, 64, 32, 0, 140, 2, 0);
    /* the tensor-core prompt kernel (n_split 0): GQA 4, 8 and 1, partial tiles */
    test_attention(20, 5, 128, 128, 0, 200, 0);
    test_attention(16, 2, 128, 128, 1, 130, 0);
    test_attention(8, 8, 128, 64, 0, 70, 0);
    test_attention(4, 1, 128, 128, 1, 5, 0);
    test_embed(OB_TYPE_F16);
    test_embed(OB_TYPE_BF16);
    test_embed(OB_TYPE_I8);
    return gt_summary("test_cuda_kernels");
}

#else
int main(void) {
    printf("FAIL built without CUDA (nvcc not found): nothing to test\n");
    return 1;
}
#endif
