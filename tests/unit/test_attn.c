/* Attention kernels of every available kernel set against the scalar twin, on
 * odd sizes and fresh random data, with f32 and f16 caches. */
#include "testutil.h"

#include "backend/cpu/kernels.h"

#include <math.h>

static float frand(uint64_t *s) { return (float)(ob_test_rand(s) >> 40) * 0x1.0p-24f * 2.0f - 1.0f; }

static void test_attention_kernels(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    const int Ds[] = { 8, 64, 100, 128 }, Gs[] = { 1, 3, 4, 5, 9 }, Ps[] = { 1, 2, 17, 300 };
    int sets = 0;
    for (const ob_cpu_kernels *const *k = ob_cpu_kernels_all(); *k; k++) {
        if (!(*k)->available() || !(*k)->attn_scores || *k == &ob_kernels_scalar) continue;
        int checked = 0;
        for (size_t di = 0; di < 4; di++)
            for (size_t gi = 0; gi < 5; gi++)
                for (size_t pi = 0; pi < 4; pi++)
                    for (int f16 = 0; f16 < 2; f16++) {
                        int D = Ds[di], G = Gs[gi], P = Ps[pi];
                        size_t stride = (size_t)D + 24; /* other heads between rows */
                        ob_type t = f16 ? OB_TYPE_F16 : OB_TYPE_F32;
                        float *q = malloc(sizeof(float) * (size_t)(G * D));
                        void *kc = malloc(stride * (size_t)P * 4), *vc = malloc(stride * (size_t)P * 4);
                        for (int i = 0; i < G * D; i++) q[i] = frand(&seed);
                        for (size_t i = 0; i < stride * (size_t)P; i++) {
                            float a = frand(&seed), b = frand(&seed);
                            if (f16) ((uint16_t *)kc)[i] = ob_f32_to_f16(a), ((uint16_t *)vc)[i] = ob_f32_to_f16(b);
                            else ((float *)kc)[i] = a, ((float *)vc)[i] = b;
                        }
                        float *s0 = malloc(sizeof(float) * (size_t)(G * P)), *s1 = malloc(sizeof(float) * (size_t)(G * P));
                        float *o0 = malloc(sizeof(float) * (size_t)(G * D)), *o1 = malloc(sizeof(float) * (size_t)(G * D));
                        for (int i = 0; i < G * D; i++) o1[i] = NAN; /* every output must be written */
                        ob_kernels_scalar.attn_scores(q, G, kc, t, stride, P, D, 0.125f, s0);
                        (*k)->attn_scores(q, G, kc, t, stride, P, D, 0.125f, s1);
                        for (int i = 0; i < G * P; i++)
                            if (fabsf(s0[i] - s1[i]) > 1e-5f * (float)D) fail_msg("%s scores D=%d G=%d P=%d: %g vs %g", (*k)->name, D, G, P, s0[i], s1[i]);
                        ob_kernels_scalar.attn_values(o0, s0, G, vc, t, stride, P, D);
                        (*k)->attn_values(o1, s0, G, vc, t, stride, P, D);
                        for (int i = 0; i < G * D; i++)
                            if (!(fabsf(o0[i] - o1[i]) <= 1e-5f * (float)P)) fail_msg("%s values D=%d G=%d P=%d: %g vs %g", (*k)->name, D, G, P, o0[i], o1[i]);
                        free(q), free(kc), free(vc), free(s0), free(s1), free(o0), free(o1);
                        checked++;
                    }
        print_message("%s: %d attention shapes match the scalar twin\n", (*k)->name, checked);
        sets++;
    }
    if (!sets) {
        print_message("SKIP: no SIMD attention kernels on this CPU\n");
        skip();
    }
}

/* Attention split by positions (ob_attn_chunk + ob_attn_merge), every set,
 * against the softmax-weighted values computed in double over all positions.
 * Chunk boundaries are random (1 to 9 chunks, some of one position). With
 * |v| <= 1 every output is a convex combination of values, and float32
 * scores, exps and sums over P <= 2049 terms stay within 2e-5 of it (the
 * single-pass scalar path meets the same bound, checked too); a chunk lost,
 * counted twice or rescaled wrongly moves outputs by about 1/sqrt(P) >= 0.02. */
static void test_split_attention(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    const int Ps[] = { 2, 257, 300, 1000, 2049 }, Gs[] = { 1, 3, 4 }, Ds[] = { 64, 100, 128 };
    int checked = 0;
    for (const ob_cpu_kernels *const *k = ob_cpu_kernels_all(); *k; k++) {
        if (!(*k)->available()) continue;
        for (size_t pi = 0; pi < OB_ARRAY_LEN(Ps); pi++)
            for (size_t gi = 0; gi < OB_ARRAY_LEN(Gs); gi++)
                for (int f16 = 0; f16 < 2; f16++) {
                    int P = Ps[pi], G = Gs[gi], D = Ds[(pi + gi) % 3];
                    size_t stride = (size_t)D + 8;
                    ob_type t = f16 ? OB_TYPE_F16 : OB_TYPE_F32;
                    float *q = malloc(sizeof(float) * (size_t)(G * D));
                    void *kc = malloc(stride * (size_t)P * 4), *vc = malloc(stride * (size_t)P * 4);
                    double *kf = malloc(sizeof(double) * stride * (size_t)P), *vf = malloc(sizeof(double) * stride * (size_t)P);
                    for (int i = 0; i < G * D; i++) q[i] = frand(&seed) * 3.0f; /* peaky and flat heads */
                    for (size_t i = 0; i < stride * (size_t)P; i++) {
                        float a = frand(&seed), b = frand(&seed);
                        if (f16) {
                            ((uint16_t *)kc)[i] = ob_f32_to_f16(a), ((uint16_t *)vc)[i] = ob_f32_to_f16(b);
                            kf[i] = ob_f16_to_f32(((uint16_t *)kc)[i]), vf[i] = ob_f16_to_f32(((uint16_t *)vc)[i]);
                        } else {
                            ((float *)kc)[i] = a, ((float *)vc)[i] = b, kf[i] = a, vf[i] = b;
                        }
                    }
                    /* random chunk boundaries */
                    int n_chunks = 1 + (int)(ob_test_rand(&seed) % (uint64_t)(P < 9 ? P : 9)), bounds[10];
                    bounds[0] = 0, bounds[n_chunks] = P;
                    for (int c = 1; c < n_chunks; c++) {
                        int lo = bounds[c - 1] + 1, hi = P - (n_chunks - c);
                        bounds[c] = lo + (int)(ob_test_rand(&seed) % (uint64_t)(hi - lo + 1));
                    }
                    size_t pf = ob_attn_part_floats(G, D), es = f16 ? 2 : 4;
                    float *parts = malloc(sizeof(float) * pf * (size_t)n_chunks), *scores = malloc(sizeof(float) * (size_t)(G * P));
                    for (int c = 0; c < n_chunks; c++)
                        ob_attn_chunk(*k, q, G, (const uint8_t *)kc + (size_t)bounds[c] * stride * es,
                                      (const uint8_t *)vc + (size_t)bounds[c] * stride * es, t, stride,
                                      bounds[c + 1] - bounds[c], D, 0.125f, scores, parts + (size_t)c * pf);
                    float *out = malloc(sizeof(float) * (size_t)(G * D)), *one = malloc(sizeof(float) * (size_t)(G * D));
                    ob_attn_merge(parts, n_chunks, G, D, out);
                    /* the single-pass scalar path, as the backend runs it */
                    ob_kernels_scalar.attn_scores(q, G, kc, t, stride, P, D, 0.125f, scores);
                    for (int g = 0; g < G; g++) {
                        float *sc = scores + (size_t)g * P, mx = -INFINITY, sum = 0;
                        for (int p = 0; p < P; p++) mx = fmaxf(mx, sc[p]);
                        for (int p = 0; p < P; p++) sum += (sc[p] = expf(sc[p] - mx));
                        for (int p = 0; p < P; p++) sc[p] /= sum;
                    }
                    ob_kernels_scalar.attn_values(one, scores, G, vc, t, stride, P, D);
                    for (int g = 0; g < G; g++) {
                        double *w = malloc(sizeof(double) * (size_t)P), mx = -INFINITY, sum = 0;
                        for (int p = 0; p < P; p++) {
                            double s = 0;
                            for (int d = 0; d < D; d++) s += (double)q[g * D + d] * kf[(size_t)p * stride + (size_t)d];
                            w[p] = s * 0.125;
                            if (w[p] > mx) mx = w[p];
                        }
                        for (int p = 0; p < P; p++) sum += (w[p] = exp(w[p] - mx));
                        for (int d = 0; d < D; d++) {
                            double ref = 0;
                            for (int p = 0; p < P; p++) ref += w[p] / sum * vf[(size_t)p * stride + (size_t)d];
                            float got = out[g * D + d], single = one[g * D + d];
                            if (!(fabs(got - ref) <= 2e-5) || !(fabs(single - ref) <= 2e-5))
                                fail_msg("%s split attention P=%d G=%d D=%d chunks=%d: out[%d][%d] = %.8g (single pass %.8g), "
                                         "expected %.8g", (*k)->name, P, G, D, n_chunks, g, d, got, single, ref);
                        }
                        free(w);
                    }
                    free(q), free(kc), free(vc), free(kf), free(vf), free(parts), free(scores), free(out), free(one);
                    checked++;
                }
    }
    print_message("%d split-attention cases match the double-precision softmax\n", checked);
}

int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_attention_kernels), cmocka_unit_test(test_split_attention) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
