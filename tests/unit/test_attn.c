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

int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_attention_kernels) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
