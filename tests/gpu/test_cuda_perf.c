/* Speed of the CUDA backend on the synthetic BitNet 2B-4T shape (random
 * weights, real sizes), batch 1, against the device's measured copy
 * bandwidth: prefill of a 512-token prompt, greedy decode (decode_argmax: the
 * graph, one id back per token) at context 64 and 4096, and decode returning
 * logits. Checks only that every run succeeds and returns valid ids; the
 * numbers go to docs/PERFORMANCE.md. */
#include "backend/backend.h"
#include "backend/cuda/ob_cuda.h"
#include "gpu_test.h"

#ifdef OB_HAVE_CUDA

static uint64_t rng;

static double now(void) { return ob_time_s(); }

/* Fills positions [from, to) of sequence 0 in batches of up to 512. */
static ob_status fill(ob_backend *b, int from, int to) {
    int V = b->model->hp.n_vocab;
    static int32_t tok[512], pos[512];
    for (int p0 = from; p0 < to; p0 += 512) {
        int n = to - p0 < 512 ? to - p0 : 512;
        for (int i = 0; i < n; i++) tok[i] = (int32_t)(gt_rand(&rng) % (uint64_t)V), pos[i] = p0 + i;
        ob_batch batch = { n, tok, pos, NULL, NULL };
        ob_status st = b->ops->decode(b, &batch, NULL);
        if (st) return st;
    }
    return OB_OK;
}

/* n greedy steps from position p; returns tokens/s (0 on failure). */
static double decode_run(ob_backend *b, int p, int n, int with_logits, float *logits, int *bad_ids) {
    int V = b->model->hp.n_vocab;
    int32_t tok = 1, pos, id = 0;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        pos = p + i;
        ob_batch batch = { 1, &tok, &pos, NULL, NULL };
        ob_status st = with_logits ? b->ops->decode(b, &batch, logits) : b->ops->decode_argmax(b, &batch, &id);
        if (st) return 0;
        if (with_logits) id = gt_argmax(logits, V);
        if (id < 0 || id >= V) ++*bad_ids;
        tok = id;
    }
    return n / (now() - t0);
}

static void bench_head(ob_type head, double bw) {
    ob_model *m = NULL;
    if (ob_model_synthetic("2b4t", head, gt_rand(&rng), &m)) {
        gt_check(0, "synthetic 2b4t: %s", ob_last_error());
        return;
    }
    const ob_hparams *hp = &m->hp;
    int n_ctx = 4096 + 256;
    ob_backend_params p = { 0 };
    p.n_ctx = n_ctx;
    p.kv_type = OB_KV_F16;
    ob_backend *b = NULL;
    double t0 = now();
    if (ob_backend_create("cuda", m, &p, &b)) {
        gt_check(0, "create cuda backend (2b4t, %s head): %s", ob_type_name(head), ob_last_error());
        ob_model_free(m);
        return;
    }
    printf("upload: %.2f s\n", now() - t0);
    double wbytes = (double)ob_model_weight_bytes(m);
    double kv_per_pos = (double)hp->n_layer * 2.0 * hp->n_head_kv * hp->head_dim * 2.0; /* f16 K and V */
    float *logits = malloc(sizeof(float) * hp->n_vocab);
    int bad = 0;
    ob_status st = OB_OK;

    /* prefill 512: median of 5 after a warm-up */
    double times[5], pf = 0;
    for (int r = -1; r < 5 && !st; r++) {
        if ((st = b->ops->seq_truncate(b, 0, 0))) break;
        double a = now();
        st = fill(b, 0, 512);
        if (r >= 0) times[r] = now() - a;
    }
    if (!st) {
        qsort(times, 5, sizeof *times, gt_cmp_double);
        pf = 512 / times[2];
    }
    /* decode at context 64 */
    double d64 = 0, d64l = 0, d4k = 0;
    if (!st) st = b->ops->seq_truncate(b, 0, 64);
    if (!st) {
        decode_run(b, 64, 32, 0, logits, &bad); /* warm-up, captures the graph */
        b->ops->seq_truncate(b, 0, 64);
        d64 = decode_run(b, 64, 256, 0, logits, &bad);
        b->ops->seq_truncate(b, 0, 64);
        d64l = decode_run(b, 64, 128, 1, logits, &bad);
    }
    /* decode at context 4096 */
    if (!st) st = b->ops->seq_truncate(b, 0, 64);
    if (!st) st = fill(b, 64, 4096);
    if (!st) d4k = decode_run(b, 4096, 128, 0, logits, &bad);
    gt_check(!st && bad == 0 && pf > 0 && d64 > 0 && d64l > 0 && d4k > 0,
             "2b4t %s head: every run succeeded with valid ids%s%s", ob_type_name(head), st ? ": " : "",
             st ? ob_last_error() : "");
    double kv64 = kv_per_pos * (64 + 128), kv4k = kv_per_pos * (4096 + 64);
    printf("PERF 2b4t head=%s weights/token=%.1f MB\n", ob_type_name(head), wbytes / 1e6);
    printf("PERF   prefill 512:        %9.0f tok/s (%.2f ms)\n", pf, 512 / pf * 1e3);
    printf("PERF   decode ctx 64:      %9.0f tok/s (%.3f ms/token, %.0f GB/s = %.0f%% of copy bw)\n", d64, 1e3 / d64,
           (wbytes + kv64) * d64 / 1e9, 100 * (wbytes + kv64) * d64 / 1e9 / bw);
    printf("PERF   decode ctx 64 +logits: %6.0f tok/s\n", d64l);
    printf("PERF   decode ctx 4096:    %9.0f tok/s (%.3f ms/token, %.0f GB/s = %.0f%% of copy bw)\n", d4k, 1e3 / d4k,
           (wbytes + kv4k) * d4k / 1e9, 100 * (wbytes + kv4k) * d4k / 1e9 / bw);
    free(logits);
    ob_backend_destroy(b);
    ob_model_free(m);
}

int main(void) {
    rng = gt_seed();
    if (getenv("OB_CUDA_PROFILE")) ob_set_log_level(OB_LOG_INFO); /* the per-kernel breakdown */
    if (ob_cuda_device_count() <= 0) {
        gt_check(0, "a CUDA device is present");
        return gt_summary("test_cuda_perf");
    }
    char name[256];
    ob_cuda_device_name(0, name, sizeof name);
    double bw = 0;
    ob_status st = ob_cuda_probe_bandwidth(0, &bw);
    gt_check(!st && bw > 0, "bandwidth probe on %s: %.0f GB/s (copy, read + write)", name, bw);
    if (st) return gt_summary("test_cuda_perf");
    bench_head(OB_TYPE_I8, bw);
    bench_head(OB_TYPE_F16, bw);
    return gt_summary("test_cuda_perf");
}

#else
int main(void) {
    printf("FAIL built without CUDA (nvcc not found): nothing to test\n");
    return 1;
}
#endif
