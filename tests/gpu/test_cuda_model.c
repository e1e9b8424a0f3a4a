/* Whole-model parity of the CUDA backend with the CPU backend (the
 * specification) and with the fixture's reference logits, by the criterion
 * of shared/fixtures/README.md:
 *   e_t = ||gpu_t - ref_t|| / ||ref_t|| per position; every e_t <= 0.1,
 *   median <= 3e-2, argmax equal at >= 90% of positions (int8 activation
 *   rounding may flip near-ties, since GPU float reductions differ in order);
 *   fixture prompt 0: every row <= 1e-4, greedy ids equal up to the first
 *   step whose reference margin is below 0.05.
 * stories260K (f32 llama, no int8 rounding): every row within 1e-4 and greedy
 * ids identical. Both GPU paths are checked: a prompt as one batch (tensor-core
 * GEMM) and token by token (the CUDA graph). The CPU runs with an f16 KV cache,
 * as the GPU does. Data comes from $OB_SHARED (or ../shared). */
#include "backend/backend.h"
#include "backend/cuda/ob_cuda.h"
#include "core/json.h"
#include "gpu_test.h"

#ifdef OB_HAVE_CUDA

static uint64_t rng;

static ob_kv_type kv_type = OB_KV_F16;

static ob_backend *make_backend(const char *name, const ob_model *m, int n_ctx, int n_seq) {
    ob_backend_params p = { 0 };
    p.n_ctx = n_ctx;
    p.n_seq = n_seq;
    p.kv_type = kv_type;
    ob_backend *b = NULL;
    if (ob_backend_create(name, m, &p, &b)) {
        gt_check(0, "create %s backend: %s", name, ob_last_error());
        return NULL;
    }
    return b;
}

/* Logits of every position of ids[0..n) on sequence seq starting at pos0:
 * as one batch (steps = 0) or one token per call (steps = 1). */
static int run_logits(ob_backend *b, const int32_t *ids, int n, int seq, int pos0, int steps, float *out) {
    int V = b->model->hp.n_vocab;
    int32_t *pos = malloc(sizeof(int32_t) * n), *sq = malloc(sizeof(int32_t) * n);
    uint8_t *want = malloc((size_t)n);
    for (int i = 0; i < n; i++) pos[i] = pos0 + i, sq[i] = seq, want[i] = 1;
    ob_status st = OB_OK;
    if (!steps) {
        ob_batch batch = { n, ids, pos, sq, want };
        st = b->ops->decode(b, &batch, out);
    } else {
        for (int i = 0; i < n && !st; i++) {
            ob_batch batch = { 1, ids + i, pos + i, sq + i, want + i };
            st = b->ops->decode(b, &batch, out + (size_t)i * V);
        }
    }
    free(pos), free(sq), free(want);
    if (st) gt_check(0, "%s decode: %s", b->ops->name, ob_last_error());
    return st == OB_OK;
}

typedef struct parity {
    double median, max;
    int argmax_ok, n;
} parity;

static parity compare_rows(const float *got, const float *ref, int n, int V) {
    parity p = { 0, 0, 0, n };
    double *e = malloc(sizeof(double) * n);
    for (int t = 0; t < n; t++) {
        e[t] = gt_rel_err(got + (size_t)t * V, ref + (size_t)t * V, (size_t)V);
        if (getenv("OB_TEST_VERBOSE")) printf("     row %d: e %.3e\n", t, e[t]);
        if (!(e[t] <= p.max)) p.max = e[t]; /* NaN propagates */
        p.argmax_ok += gt_argmax(got + (size_t)t * V, V) == gt_argmax(ref + (size_t)t * V, V);
    }
    qsort(e, (size_t)n, sizeof *e, gt_cmp_double);
    p.median = e[n / 2];
    free(e);
    return p;
}

static void check_parity(const char *what, parity p) {
    gt_check(p.max <= 0.1 && p.median <= 3e-2 && p.argmax_ok * 10 >= p.n * 9,
             "%s: median e %.2e <= 3e-2, max %.2e <= 0.1, argmax %d/%d >= 90%%", what, p.median, p.max, p.argmax_ok,
             p.n);
}

/* A model against the CPU backend: one prompt as a batch and token by token,
 * plus decode_argmax, seq_copy and truncate behaviour on the GPU.
 * strict > 0: every row within strict. strict < 0 (deep random models, where
 * one int8 rounding flip from a different attention summation order cascades
 * through 30 layers): row 0 (attention is exact there) within -strict, the
 * criterion's statistics reported only.
 * synthetic: random weights from ob_model_synthetic. One flipped int8 rounding
 * there (graph and batch use different attention kernels, whose float orders
 * differ by ~1e-6) moves a later row by 0.1-0.4 and every row after it through
 * the cache: seeds 0x4d06b02b1c9 and 0x2f76b02a586 failed the per-row bound
 * and the 90% argmax share this way on the pre-cuBLASLt code too. So for them
 * position 0 is held to 1e-5 (no flip can precede it), the median to 3e-2 and
 * the argmax share to 80%; the largest row is reported. */
static void test_vs_cpu(const char *name, ob_model *m, int n_prompt, double strict, int synthetic) {
    int V = m->hp.n_vocab, n_ctx = n_prompt + 8;
    int32_t *ids = malloc(sizeof(int32_t) * n_prompt);
    for (int i = 0; i < n_prompt; i++) ids[i] = (int32_t)(gt_rand(&rng) % (uint64_t)V);
    float *ref = malloc(sizeof(float) * (size_t)n_prompt * V), *gb = malloc(sizeof(float) * (size_t)n_prompt * V),
          *gs = malloc(sizeof(float) * (size_t)n_prompt * V);
    ob_backend *cpu = make_backend("cpu", m, n_ctx, 1), *gpu = make_backend("cuda", m, n_ctx, 2);
    if (!cpu || !gpu) goto done;
    if (!run_logits(cpu, ids, n_prompt, 0, 0, 0, ref)) goto done;
    if (!run_logits(gpu, ids, n_prompt, 0, 0, 0, gb)) goto done;
    if (!run_logits(gpu, ids, n_prompt, 1, 0, 1, gs)) goto done;
    char what[256];
    parity pb = compare_rows(gb, ref, n_prompt, V), ps = compare_rows(gs, ref, n_prompt, V);
    parity pg = compare_rows(gs, gb, n_prompt, V);
    snprintf(what, sizeof what, "%s: graph vs batch on the GPU", name);
    if (strict >= 0 && n_prompt <= 64 && !synthetic) check_parity(what, pg);
    else if (strict >= 0) /* random weights or long prompts: one flip persists through the cache, so no per-row bound */
        gt_check(pg.median <= 3e-2 && pg.argmax_ok * 10 >= pg.n * (synthetic ? 8 : 9),
                 "%s, %d steps: median e %.2e <= 3e-2, argmax %d/%d >= %d%% (max %.2e)", what, n_prompt, pg.median,
                 pg.argmax_ok, pg.n, synthetic ? 80 : 90, pg.max);
    if (strict < 0) {
        double e0b = gt_rel_err(gb, ref, (size_t)V), e0s = gt_rel_err(gs, ref, (size_t)V);
        gt_check(e0b <= -strict && e0s <= -strict, "%s: position 0 logits vs CPU within %.0e (batch %.2e, graph %.2e)",
                 name, -strict, e0b, e0s);
        printf("     info: %s all rows vs CPU: batch median %.2e max %.2e argmax %d/%d; graph median %.2e max %.2e\n",
               name, pb.median, pb.max, pb.argmax_ok, pb.n, ps.median, ps.max);
    } else if (strict > 0) {
        gt_check(pb.max <= strict, "%s: batch (GEMM) logits vs CPU, every row within %.0e (max %.2e, median %.2e)", name,
                 strict, pb.max, pb.median);
        gt_check(ps.max <= strict, "%s: graph (token by token) logits vs CPU, every row within %.0e (max %.2e)", name,
                 strict, ps.max);
    } else {
        /* Random models amplify a rounding flip more than the fixture does, so
         * the per-row bound 0.1 is not asserted here; position 0 is. */
        double e0b = gt_rel_err(gb, ref, (size_t)V), e0s = gt_rel_err(gs, ref, (size_t)V);
        gt_check(e0b <= 1e-5 && e0s <= 1e-5, "%s: position 0 logits vs CPU within 1e-5 (batch %.2e, graph %.2e)", name,
                 e0b, e0s);
        int share = synthetic ? 8 : 9;
        gt_check(pb.median <= 3e-2 && pb.argmax_ok * 10 >= pb.n * share && ps.median <= 3e-2 &&
                     ps.argmax_ok * 10 >= ps.n * share,
                 "%s: batch/graph vs CPU median e %.2e/%.2e <= 3e-2, argmax %d/%d and %d/%d >= %d%% (max e %.2e/%.2e)",
                 name, pb.median, ps.median, pb.argmax_ok, pb.n, ps.argmax_ok, ps.n, share * 10, pb.max, ps.max);
    }
    /* decode_argmax = argmax of decode's logits, and seq_copy continues a prefix */
    {
        int32_t tok = ids[0], pos = n_prompt, seq0 = 0, seq1 = 1, id0 = -1, id1 = -1;
        float *l0 = malloc(sizeof(float) * V), *l1 = malloc(sizeof(float) * V);
        ob_status st = gpu->ops->seq_copy(gpu, 0, 1, n_prompt);
        ob_batch b0 = { 1, &tok, &pos, &seq0, NULL }, b1 = { 1, &tok, &pos, &seq1, NULL };
        if (!st) st = gpu->ops->decode(gpu, &b0, l0);
        if (!st) st = gpu->ops->decode(gpu, &b1, l1);
        if (!st) st = gpu->ops->seq_truncate(gpu, 0, n_prompt);
        if (!st) st = gpu->ops->decode_argmax(gpu, &b0, &id0);
        if (!st) st = gpu->ops->seq_truncate(gpu, 1, n_prompt);
        if (!st) st = gpu->ops->decode_argmax(gpu, &b1, &id1);
        gt_check(!st && !memcmp(l0, l1, sizeof(float) * V),
                 "%s: seq_copy'd sequence continues bitwise like the original%s%s", name, st ? ": " : "",
                 st ? ob_last_error() : "");
        gt_check(!st && id0 == gt_argmax(l0, V) && id1 == id0, "%s: decode_argmax (%d, %d) = argmax of logits (%d)", name,
                 id0, id1, gt_argmax(l0, V));
        free(l0), free(l1);
    }
done:
    ob_backend_destroy(cpu);
    ob_backend_destroy(gpu);
    free(ids), free(ref), free(gb), free(gs);
}

static void test_synthetic(const char *shape, ob_type head, int n_prompt, double strict) {
    ob_model *m = NULL;
    char name[128];
    snprintf(name, sizeof name, "synthetic %s (%s head)", shape, ob_type_name(head));
    if (ob_model_synthetic(shape, head, gt_rand(&rng), &m)) {
        gt_check(0, "%s: %s", name, ob_last_error());
        return;
    }
    test_vs_cpu(name, m, n_prompt, strict, 1);
    ob_model_free(m);
}

/* ---- the bitnet-tiny fixture: HF reference logits ------------------------------ */

static void test_fixture(void) {
    const char *dir = gt_shared("fixtures/bitnet-tiny");
    char path[4096], ref_path[4096], log_path[4096];
    if (!dir) {
        gt_check(0, "fixtures/bitnet-tiny present under $OB_SHARED");
        return;
    }
    snprintf(path, sizeof path, "%s", dir);
    snprintf(ref_path, sizeof ref_path, "%s/reference.json", path);
    snprintf(log_path, sizeof log_path, "%s/logits.f32", path);
    ob_model *m = NULL;
    char *json = NULL, *logits = NULL;
    kv_type = OB_KV_F32; /* the reference is float32 throughout */
    size_t jlen, llen;
    ob_json_doc doc = { 0 };
    if (ob_model_load(path, &m) || ob_read_file(ref_path, &json, &jlen) || ob_read_file(log_path, &logits, &llen) ||
        ob_json_parse(json, jlen, &doc)) {
        gt_check(0, "bitnet-tiny fixture loads: %s", ob_last_error());
        goto done;
    }
    int V = m->hp.n_vocab;
    const ob_json *prompts = ob_json_get(doc.root, "prompts");
    const float *refl = (const float *)logits;
    size_t off = 0;
    int all_argmax = 0, all_n = 0;
    ob_backend *gpu = make_backend("cuda", m, 256, 1);
    if (!gpu) goto done;
    int pi = 0;
    for (const ob_json *pr = prompts ? prompts->child : NULL; pr; pr = pr->next, pi++) {
        const ob_json *jids = ob_json_get(pr, "ids");
        int n = (int)jids->count;
        int32_t *ids = malloc(sizeof(int32_t) * n);
        int i = 0;
        for (const ob_json *v = jids->child; v; v = v->next) ids[i++] = (int32_t)v->number;
        if ((off + (size_t)n * V) * sizeof(float) > llen) {
            gt_check(0, "logits.f32 holds prompt %d", pi);
            free(ids);
            break;
        }
        for (int steps = 0; steps < 2; steps++) {
            float *got = malloc(sizeof(float) * (size_t)n * V);
            gpu->ops->seq_truncate(gpu, 0, 0);
            if (run_logits(gpu, ids, n, 0, 0, steps, got)) {
                parity p = compare_rows(got, refl + off, n, V);
                char what[128];
                snprintf(what, sizeof what, "bitnet-tiny prompt %d (%d tokens, %s) vs HF reference", pi, n,
                         steps ? "graph" : "batch");
                check_parity(what, p);
                if (pi == 0) gt_check(p.max <= 1e-4, "bitnet-tiny prompt 0 %s: every row <= 1e-4 (max %.2e)",
                                      steps ? "graph" : "batch", p.max);
                all_argmax += p.argmax_ok;
                all_n += n;
            }
            free(got);
        }
        if (pi == 0) { /* greedy continuation with decode_argmax */
            const ob_json *greedy = ob_json_get(pr, "greedy"), *margins = ob_json_get(pr, "greedy_margins");
            int32_t tok = ids[n - 1], pos, seq = 0, id = -1;
            int agree = 1, checked = 0;
            gpu->ops->seq_truncate(gpu, 0, n - 1);
            const ob_json *g = greedy ? greedy->child : NULL, *mg = margins ? margins->child : NULL;
            for (int step = 0; g && mg; step++, g = g->next, mg = mg->next) {
                pos = n - 1 + step;
                ob_batch b = { 1, &tok, &pos, &seq, NULL };
                if (gpu->ops->decode_argmax(gpu, &b, &id)) {
                    agree = 0;
                    break;
                }
                if (id != (int32_t)g->number) {
                    agree = mg->number < 0.05; /* a near-tie may legitimately flip */
                    break;
                }
                checked++;
                tok = id;
            }
            gt_check(agree && checked > 0, "bitnet-tiny greedy ids equal the reference for %d steps (until the first "
                     "margin < 0.05 or the end)", checked);
        }
        off += (size_t)n * V;
        free(ids);
    }
    gt_check(all_n > 0 && all_argmax * 10 >= all_n * 9, "bitnet-tiny: argmax agreement %d/%d >= 90%% over all positions",
             all_argmax, all_n);
    ob_backend_destroy(gpu);
    /* and against the CPU backend on the same checkpoint */
    test_vs_cpu("bitnet-tiny", m, 48, 0, 0);
done:
    kv_type = OB_KV_F16;
    ob_json_free(&doc);
    free(json);
    free(logits);
    ob_model_free(m);
}

/* ---- stories260K: a float llama, strict ----------------------------------------- */

static void test_stories(void) {
    const char *p = gt_shared("data/stories260K/stories260K.gguf");
    ob_model *m = NULL;
    if (!p || ob_model_load(p, &m)) {
        gt_check(0, "stories260K.gguf loads: %s", p ? ob_last_error() : "absent");
        return;
    }
    kv_type = OB_KV_F32;
    test_vs_cpu("stories260K", m, 40, 1e-4, 0);
    /* greedy text: 64 steps from BOS on both backends */
    int V = m->hp.n_vocab, n = 64;
    ob_backend *cpu = make_backend("cpu", m, n + 1, 1), *gpu = make_backend("cuda", m, n + 1, 1);
    if (cpu && gpu) {
        int32_t tc = 1, tg = 1, pos, seq = 0, idg = -1, same = 1, i;
        float *l = malloc(sizeof(float) * V);
        for (i = 0; i < n && same; i++) {
            pos = i;
            ob_batch bc = { 1, &tc, &pos, &seq, NULL }, bg = { 1, &tg, &pos, &seq, NULL };
            if (cpu->ops->decode(cpu, &bc, l) || gpu->ops->decode_argmax(gpu, &bg, &idg)) break;
            tc = gt_argmax(l, V);
            same = idg == tc;
            tg = idg;
        }
        gt_check(same && i == n, "stories260K: %d greedy ids identical on CPU and GPU", i);
        free(l);
    }
    ob_backend_destroy(cpu);
    ob_backend_destroy(gpu);
    ob_model_free(m);
    kv_type = OB_KV_F16;
}

/* The persistent decode step against the one-kernel-per-operation path on
 * the same GPU: both token by token, on the 2B-4T shape (2 layers). */
static void test_persistent_vs_kernels(void) {
    ob_model *m = NULL;
    if (ob_model_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_I8, gt_rand(&rng), &m)) {
        gt_check(0, "synthetic model: %s", ob_last_error());
        return;
    }
    const int n = 150, V = m->hp.n_vocab;
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(gt_rand(&rng) % (uint64_t)V);
    float *a = malloc(sizeof(float) * (size_t)n * V), *k = malloc(sizeof(float) * (size_t)n * V);
    setenv("OB_CUDA_MEGA", "1", 1);
    ob_backend *pers = make_backend("cuda", m, n + 8, 1);
    unsetenv("OB_CUDA_MEGA");
    ob_backend *kern = make_backend("cuda", m, n + 8, 1);
    if (pers && kern) {
        gt_check(ob_cuda_persistent_decode(pers) && !ob_cuda_persistent_decode(kern),
                 "OB_CUDA_MEGA=1 decodes the 2B-4T shape through the persistent step (default: per kernel)");
        if (run_logits(pers, ids, n, 0, 0, 1, a) && run_logits(kern, ids, n, 0, 0, 1, k)) {
            /* The two attention kernels sum in different orders, so int8
             * roundings may flip (random models amplify a flip, see
             * test_vs_cpu): position 0, where attention is exact, within
             * 1e-5, and the criterion's median and argmax over all steps. */
            parity p = compare_rows(a, k, n, V);
            double e0 = gt_rel_err(a, k, (size_t)V);
            gt_check(e0 <= 1e-5, "persistent vs per-kernel decode: position 0 within 1e-5 (%.2e)", e0);
            gt_check(p.median <= 3e-2 && p.argmax_ok * 10 >= p.n * 9,
                     "persistent vs per-kernel decode, %d steps: median e %.2e <= 3e-2, argmax %d/%d >= 90%% (max %.2e)",
                     n, p.median, p.argmax_ok, p.n, p.max);
        }
    }
    ob_backend_destroy(pers);
    ob_backend_destroy(kern);
    free(ids), free(a), free(k);
    ob_model_free(m);
}

/* The cuBLASLt prefill GEMMs against k_gemm_t2 (OB_CUDA_LT=0) on the 2B-4T
 * shape (2 layers): integers are exact and the epilogues do the same float
 * operations, so a prompt's logits must be the same bits. */
static void test_lt_vs_fallback(void) {
    ob_model *m = NULL;
    if (ob_model_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_I8, gt_rand(&rng), &m)) {
        gt_check(0, "synthetic model: %s", ob_last_error());
        return;
    }
    const int n = 300, V = m->hp.n_vocab;
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(gt_rand(&rng) % (uint64_t)V);
    float *a = malloc(sizeof(float) * (size_t)n * V), *k = malloc(sizeof(float) * (size_t)n * V);
    const char *env = getenv("OB_CUDA_LT");
    char *saved = env ? strdup(env) : NULL; /* the default path, whatever the caller's environment */
    unsetenv("OB_CUDA_LT");
    ob_backend *lt = make_backend("cuda", m, n + 8, 1);
    setenv("OB_CUDA_LT", "0", 1);
    ob_backend *t2 = make_backend("cuda", m, n + 8, 1);
    if (saved) setenv("OB_CUDA_LT", saved, 1);
    else unsetenv("OB_CUDA_LT");
    free(saved);
    if (lt && t2) {
        gt_check(ob_cuda_lt_prefill(lt) && !ob_cuda_lt_prefill(t2),
                 "prompts run their GEMMs through cuBLASLt by default, through k_gemm_t2 with OB_CUDA_LT=0");
        if (run_logits(lt, ids, n, 0, 0, 0, a) && run_logits(t2, ids, n, 0, 0, 0, k)) {
            int d = 0;
            for (size_t i = 0; i < (size_t)n * V; i++) d += memcmp(&a[i], &k[i], sizeof(float)) != 0;
            gt_check(d == 0, "%d-token prompt: cuBLASLt logits bitwise equal to OB_CUDA_LT=0 (%d differ)", n, d);
        }
    }
    ob_backend_destroy(lt);
    ob_backend_destroy(t2);
    free(ids), free(a), free(k);
    ob_model_free(m);
}

int main(void) {
    rng = gt_seed();
    if (ob_cuda_device_count() <= 0) {
        gt_check(0, "a CUDA device is present");
        return gt_summary("test_cuda_model");
    }
    test_synthetic("tiny", OB_TYPE_F16, 40, 0);
    test_synthetic("tiny", OB_TYPE_I8, 70, 0);
    test_fixture();
    test_stories();
    test_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_F16, 24, 0); /* 2B-4T widths, 2 layers */
    test_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_I8, 24, 0);
    /* 160 token-by-token steps: the persistent step's attention splits and merges */
    test_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_I8, 160, 0);
    kv_type = OB_KV_F32;
    test_synthetic("bitnet:2560,2,20,5,6912,128256", OB_TYPE_I8, 100, 0);
    kv_type = OB_KV_F16;
    test_persistent_vs_kernels();
    test_lt_vs_fallback();
    test_synthetic("2b4t", OB_TYPE_F16, 12, -1e-5);
    test_synthetic("2b4t", OB_TYPE_I8, 12, -1e-5);
    return gt_summary("test_cuda_model");
}

#else
int main(void) {
    printf("FAIL built without CUDA (nvcc not found): nothing to test\n");
    return 1;
}
#endif
