/* Sampler: filtering keeps exactly the right candidate sets, penalties, greedy,
 * seeded reproducibility and the sampled distribution. */
#include "testutil.h"

#include "runtime/sampler.h"

#include <math.h>

static void test_keep_sets(void **state) {
    (void)state;
    const float probs[6] = { 0.4f, 0.25f, 0.15f, 0.1f, 0.06f, 0.04f };
    ob_sampler_params p = ob_sampler_defaults();
    p.top_k = 0, p.top_p = 1.0f, p.min_p = 0;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 6);
    p.top_k = 3;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 3);
    p.top_k = 0, p.top_p = 0.65f; /* 0.4 + 0.25 = 0.65 reaches it */
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 2);
    p.top_p = 0.66f;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 3);
    p.top_p = 0.01f;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 1);
    p.top_p = 1.0f, p.min_p = 0.3f; /* threshold 0.12: keeps 0.4, 0.25, 0.15 */
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 3);
    p.min_p = 0.09f; /* threshold 0.036: keeps all six */
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 6);
    /* top-p is taken over the renormalized top-k set: top 2 = 0.4/0.65, 0.25/0.65 */
    p.min_p = 0, p.top_k = 2, p.top_p = 0.6f;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 1);
    p.top_p = 0.7f;
    assert_int_equal(ob_sampler_keep_count(&p, probs, 6), 2);
}

static void test_greedy_and_penalties(void **state) {
    (void)state;
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 0;
    ob_sampler *s;
    assert_int_equal(ob_sampler_create(&p, 5, &s), OB_OK);
    float l1[5] = { 1, 3, 3, 2, -1 };
    assert_int_equal(ob_sampler_sample(s, l1, NULL, 0), 1); /* ties: lowest id */
    ob_sampler_free(s);

    p.repeat_penalty = 2.0f; /* positive logits halve, negative double */
    p.repeat_last_n = 2;
    assert_int_equal(ob_sampler_create(&p, 5, &s), OB_OK);
    float l2[5] = { 1, 3, 2.5f, 2, -1 };
    int32_t hist[3] = { 2, 1, 4 }; /* window of 2: ids 1 and 4 */
    assert_int_equal(ob_sampler_sample(s, l2, hist, 3), 2);
    assert_true(l2[1] == 1.5f && l2[4] == -2.0f && l2[2] == 2.5f);
    ob_sampler_free(s);

    p.repeat_penalty = 1.0f, p.frequency_penalty = 0.5f, p.presence_penalty = 0.25f, p.repeat_last_n = -1;
    assert_int_equal(ob_sampler_create(&p, 5, &s), OB_OK);
    float l3[5] = { 0, 0, 0, 0, 0 };
    int32_t h3[4] = { 3, 3, 3, 0 };
    ob_sampler_sample(s, l3, h3, 4);
    assert_true(fabsf(l3[3] - (-1.5f - 0.25f)) < 1e-6f);
    assert_true(fabsf(l3[0] - (-0.5f - 0.25f)) < 1e-6f);
    assert_true(l3[1] == 0 && l3[2] == 0);
    ob_sampler_free(s);
}

static void draw(ob_sampler_params *p, int32_t *out, int n) {
    ob_sampler *s;
    assert_int_equal(ob_sampler_create(p, 50, &s), OB_OK);
    for (int i = 0; i < n; i++) {
        float l[50];
        for (int k = 0; k < 50; k++) l[k] = (float)((k * 7) % 13) * 0.3f;
        out[i] = ob_sampler_sample(s, l, NULL, 0);
    }
    ob_sampler_free(s);
}

static void test_seed_reproducible(void **state) {
    (void)state;
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0;
    int32_t a[200], b[200], c[200];
    p.seed = 42;
    draw(&p, a, 200);
    draw(&p, b, 200);
    assert_memory_equal(a, b, sizeof a);
    p.seed = 43;
    draw(&p, c, 200);
    assert_memory_not_equal(a, c, sizeof a);
}

/* The empirical distribution with temperature 1 matches softmax, and top-k /
 * min-p never emit a filtered candidate. */
static void test_distribution(void **state) {
    (void)state;
    float base[8] = { 2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f };
    double pr[8], z = 0;
    for (int i = 0; i < 8; i++) z += exp(base[i]);
    for (int i = 0; i < 8; i++) pr[i] = exp(base[i]) / z;
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0, p.seed = ob_test_seed();
    ob_sampler *s;
    assert_int_equal(ob_sampler_create(&p, 8, &s), OB_OK);
    int counts[8] = { 0 }, N = 40000;
    for (int i = 0; i < N; i++) {
        float l[8];
        memcpy(l, base, sizeof l);
        counts[ob_sampler_sample(s, l, NULL, 0)]++;
    }
    for (int i = 0; i < 8; i++) {
        double sd = sqrt(pr[i] * (1 - pr[i]) / N);
        if (fabs(counts[i] / (double)N - pr[i]) > 5 * sd + 1e-4)
            fail_msg("id %d: frequency %.4f, expected %.4f", i, counts[i] / (double)N, pr[i]);
    }
    ob_sampler_free(s);
    p.top_k = 3;
    assert_int_equal(ob_sampler_create(&p, 8, &s), OB_OK);
    for (int i = 0; i < 2000; i++) {
        float l[8];
        memcpy(l, base, sizeof l);
        assert_true(ob_sampler_sample(s, l, NULL, 0) < 3);
    }
    ob_sampler_free(s);
    p.top_k = 0, p.min_p = 0.5f; /* keeps ids with p >= 0.5 p_max: 0 and 1 (e^-0.5 = 0.61) */
    assert_int_equal(ob_sampler_create(&p, 8, &s), OB_OK);
    for (int i = 0; i < 2000; i++) {
        float l[8];
        memcpy(l, base, sizeof l);
        assert_true(ob_sampler_sample(s, l, NULL, 0) < 2);
    }
    ob_sampler_free(s);
}

/* top-k selection over a large vocabulary keeps exactly the k best. */
static void test_topk_large(void **state) {
    (void)state;
    int V = 5000;
    float *l = malloc((size_t)V * sizeof *l);
    uint64_t seed = ob_test_seed();
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 1.0f, p.top_k = 10, p.top_p = 1.0f, p.min_p = 0;
    ob_sampler *s;
    assert_int_equal(ob_sampler_create(&p, V, &s), OB_OK);
    for (int rep = 0; rep < 200; rep++) {
        for (int i = 0; i < V; i++) l[i] = (float)(ob_test_rand(&seed) % 100000) / 1000.0f;
        float sorted_kth;
        {
            float *c = malloc((size_t)V * sizeof *c);
            memcpy(c, l, (size_t)V * sizeof *c);
            for (int k = 0; k < 10; k++) { /* partial selection sort */
                int best = k;
                for (int i = k + 1; i < V; i++)
                    if (c[i] > c[best]) best = i;
                float t = c[k];
                c[k] = c[best];
                c[best] = t;
            }
            sorted_kth = c[9];
            free(c);
        }
        float copy_id_val;
        int32_t id = ob_sampler_sample(s, l, NULL, 0);
        copy_id_val = l[id];
        assert_true(copy_id_val >= sorted_kth);
    }
    ob_sampler_free(s);
    free(l);
}

/* The top-k selection (which skips most logits after one compare) draws
 * exactly what the full sort draws when every id outside the top k, chosen
 * here by an independent sort on (logit / temperature, id), is masked to
 * -inf: the same candidates in the same order, so the same ids from the same
 * seed. Logits come from a small set of values, so that ties (also ties made
 * by the division) fall on the k-th place. */
typedef struct ref_cand { float v; int id; } ref_cand;
static int ref_desc(const void *a, const void *b) {
    const ref_cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static void test_topk_matches_full_sort(void **state) {
    (void)state;
    const int V = 3001;
    const struct { float temp, top_p, min_p; int k, levels; } cases[] = {
        { 0.8f, 0.95f, 0.05f, 40, 64 }, { 0.7f, 1.0f, 0.01f, 40, 9 }, { 1.3f, 0.5f, 0.02f, 7, 1000 },
        { 0.8f, 0.9f, 0.05f, 1, 5 },    { 2.0f, 1.0f, 0.001f, 300, 30 },
    };
    float *l = malloc((size_t)V * sizeof *l), *masked = malloc((size_t)V * sizeof *masked);
    ref_cand *rc = malloc((size_t)V * sizeof *rc);
    uint64_t seed = ob_test_seed();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ob_sampler_params p = ob_sampler_defaults();
        p.temperature = cases[c].temp, p.top_p = cases[c].top_p, p.min_p = cases[c].min_p, p.seed = seed + c;
        p.top_k = cases[c].k;
        ob_sampler *fast, *full;
        assert_int_equal(ob_sampler_create(&p, V, &fast), OB_OK);
        p.top_k = 0;
        assert_int_equal(ob_sampler_create(&p, V, &full), OB_OK);
        for (int rep = 0; rep < 200; rep++) {
            for (int i = 0; i < V; i++)
                l[i] = (float)(int)(ob_test_rand(&seed) % (uint64_t)cases[c].levels) * 0.0137f - 3.0f;
            for (int i = 0; i < V; i++) rc[i] = (ref_cand){ l[i] / p.temperature, i };
            qsort(rc, (size_t)V, sizeof *rc, ref_desc);
            for (int i = 0; i < V; i++) masked[i] = -INFINITY;
            for (int i = 0; i < cases[c].k; i++) masked[rc[i].id] = l[rc[i].id];
            int32_t a = ob_sampler_sample(fast, l, NULL, 0), b = ob_sampler_sample(full, masked, NULL, 0);
            if (a != b) fail_msg("case %zu rep %d: top-k drew %d, the full sort %d", c, rep, a, b);
        }
        ob_sampler_free(fast);
        ob_sampler_free(full);
    }
    free(l);
    free(masked);
    free(rc);
}

/* Greedy over a large vocabulary is the first maximum (ties to the lowest id,
 * a NaN never chosen after id 0), whatever the block the maximum falls in. */
static void test_greedy_large(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 0;
    for (int V = 1; V < 200; V += 13) {
        ob_sampler *s;
        assert_int_equal(ob_sampler_create(&p, V, &s), OB_OK);
        float l[200];
        for (int rep = 0; rep < 50; rep++) {
            for (int i = 0; i < V; i++) l[i] = (float)(int)(ob_test_rand(&seed) % 7);
            if (rep % 5 == 1) l[ob_test_rand(&seed) % (uint64_t)V] = NAN;
            int best = 0;
            for (int i = 0; i < V; i++) /* a NaN at id 0 stays the answer: nothing compares above it */
                if (l[i] > l[best]) best = i;
            assert_int_equal(ob_sampler_sample(s, l, NULL, 0), best);
        }
        ob_sampler_free(s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_sets), cmocka_unit_test(test_greedy_and_penalties),
        cmocka_unit_test(test_seed_reproducible), cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_topk_large), cmocka_unit_test(test_topk_matches_full_sort),
        cmocka_unit_test(test_greedy_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
