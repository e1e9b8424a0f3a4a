/* Kernel micro-benchmarks at the BitNet 2B-4T shapes (not a test).
 *
 *   build-X/bench/bench_kernels [--quick] [--set NAME] [--threads N] [--only PART]
 *
 * Prints the machine's measured read bandwidth and int8 multiply-add peak,
 * then for each kernel set that runs here:
 *  - t2_gemm decode (1 token) at 2560x2560, 640x2560, 6912x2560, 2560x6912
 *    (and the fused 3840x2560 / 13824x2560): weight GB/s and its share of the
 *    measured bandwidth. Enough copies of the matrix are cycled through that
 *    every call reads from DRAM, as in a real decode step.
 *  - t2_gemm prefill (64..512 tokens): GOPS and share of the int8 peak.
 *  - batched decode (2..16 tokens, weights from DRAM as in a server step) on
 *    the fused gate/up matrix and the i8 lm_head: GOPS, and the time per call
 *    against one token's.
 *  - f_gemm (F16) and i8_gemm decode on the 128256x2560 lm_head: GB/s.
 * --only runs one part: decode (t2 decode and batched), prefill, or head (the
 * lm_head, F16 and i8, 1 to 16 tokens).
 * Threads split output rows in 64-row chunks, as the CPU backend does. */
#include "backend/cpu/kernels.h"
#include "backend/cpu/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const ob_cpu_kernels *k;
    int kind; /* 0 t2, 1 f16, 2 i8 */
    const void *w;
    size_t row_bytes;
    int64_t rows, cols;
    const int8_t *q;
    const int32_t *qsum;
    const float *x;
    size_t stride; /* activation row stride (elements) */
    int n_tok;
    void *out; /* n_tok x rows */
} job;

static void run_task(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t r0, r1;
    ob_split_range(j->rows, ith, nth, 64, &r0, &r1);
    if (r0 >= r1) return;
    switch (j->kind) {
    case 0: j->k->t2_gemm(j->w, j->row_bytes, r0, r1, j->q, j->stride, j->qsum, j->n_tok, j->out, (size_t)j->rows); break;
    case 1: j->k->f_gemm(OB_TYPE_F16, j->w, j->cols, r0, r1, j->x, j->stride, j->n_tok, j->out, (size_t)j->rows); break;
    default: j->k->i8_gemm(j->w, j->cols, r0, r1, j->q, j->stride, j->n_tok, j->out, (size_t)j->rows); break;
    }
}

static uint64_t rng = 0x1b17;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *xalloc(size_t n) {
    void *p = ob_aligned_alloc(n);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory (%zu MiB)\n", n >> 20);
        exit(1);
    }
    return p;
}

static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = next();
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* T2 bytes: random codes in 0..2 (never 3). */
static void fill_t2(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t v = next();
        p[i] = (uint8_t)((v % 3) << 6 | (v >> 8) % 3 << 4 | (v >> 16) % 3 << 2 | (v >> 24) % 3);
    }
}

/* Seconds per call: best of `reps` sweeps over the copies (each copy once). */
static double time_calls(ob_pool *pool, job *j, const uint8_t *base, size_t mat_bytes, int copies, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = ob_time_s();
        for (int c = 0; c < copies; c++) {
            j->w = base + (size_t)c * mat_bytes;
            ob_pool_run(pool, run_task, j);
        }
        double dt = (ob_time_s() - t0) / copies;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    bool quick = false;
    const char *only = NULL, *part = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) part = argv[++i];
        else {
            fprintf(stderr, "usage: bench_kernels [--quick] [--set NAME] [--threads N] [--only decode|prefill|head]\n");
            return 1;
        }
    }
    const bool run_decode = !part || !strcmp(part, "decode"), run_prefill = !part || !strcmp(part, "prefill"),
               run_head = !part || !strcmp(part, "head");
    if (!run_decode && !run_prefill && !run_head) {
        fprintf(stderr, "bench_kernels: --only takes decode, prefill or head\n");
        return 1;
    }
    int max_threads = ob_cpu_count();
    int thread_counts[2] = { 1, max_threads }, n_counts = max_threads > 1 ? 2 : 1;
    if (threads > 0) thread_counts[0] = threads, n_counts = 1;
    const size_t stream_bytes = (size_t)(quick ? 128 : 384) << 20; /* > 4x the 32 MB L3 of this class of CPU */
    const int reps = quick ? 2 : 4;

    ob_pool *pools[2] = { NULL, NULL };
    for (int c = 0; c < n_counts; c++)
        if (ob_pool_create(thread_counts[c], &pools[c]) != OB_OK) {
            fprintf(stderr, "bench_kernels: %s\n", ob_last_error());
            return 1;
        }
    double bw[2];
    for (int c = 0; c < n_counts; c++) {
        ob_probe_read_bw(pools[c], stream_bytes, quick ? 3 : 6, &bw[c]);
        printf("probe  read bandwidth, %d thread(s): %.1f GB/s\n", thread_counts[c], bw[c]);
    }

    /* Activations for up to 512 tokens of 6912 columns. */
    const int max_tok = 512;
    const int64_t max_cols = 6912;
    int8_t *q = xalloc((size_t)max_tok * max_cols);
    int32_t *qsum = xalloc(sizeof(int32_t) * max_tok);
    float *x = xalloc(sizeof(float) * max_cols * 16);
    for (int t = 0; t < max_tok; t++) {
        int32_t s = 0;
        for (int64_t c = 0; c < max_cols; c++) s += q[t * max_cols + c] = (int8_t)(next() % 255 - 127);
        qsum[t] = s;
    }
    for (int64_t i = 0; i < max_cols * 16; i++) x[i] = (float)(next() % 2001) / 1000.0f - 1.0f;
    void *out = xalloc(sizeof(int32_t) * (size_t)max_tok * 13824); /* >= 128256 x 16 too */

    static const struct { int64_t rows, cols; const char *what; } t2_shapes[] = {
        { 2560, 2560, "wq/wo" }, { 640, 2560, "wk/wv" }, { 3840, 2560, "wqkv fused" },
        { 6912, 2560, "w1/w3" }, { 13824, 2560, "w13 fused" }, { 2560, 6912, "w2" },
    };
    const int prefill_toks[] = { 64, 128, 256, 512 };

    for (const ob_cpu_kernels *const *kp = ob_cpu_kernels_all(); *kp; kp++) {
        const ob_cpu_kernels *k = *kp;
        if (!k->available() || (only && strcmp(only, k->name))) continue;
        if (!only && k == &ob_kernels_scalar) continue; /* minutes at these sizes; --set scalar runs it */
        printf("\n== kernel set %s ==\n", k->name);
        double peak[2];
        for (int c = 0; c < n_counts; c++) {
            const char *how;
            ob_probe_int8_peak(pools[c], k->name, 0.1, 3, &peak[c], &how);
            printf("probe  int8 peak, %d thread(s): %.0f GOPS (%s)\n", thread_counts[c], peak[c], how);
        }
        for (size_t s = 0; s < OB_ARRAY_LEN(t2_shapes) && (run_decode || run_prefill); s++) {
            int64_t rows = t2_shapes[s].rows, cols = t2_shapes[s].cols;
            size_t rb = ob_type_row_bytes(OB_TYPE_T2, cols), mat = rb * (size_t)rows;
            int copies = (int)((stream_bytes + mat - 1) / mat);
            uint8_t *w = xalloc(mat * (size_t)copies);
            fill_t2(w, mat);
            for (int c = 1; c < copies; c++) memcpy(w + (size_t)c * mat, w, mat);
            job j = { .k = k, .kind = 0, .row_bytes = rb, .rows = rows, .cols = cols, .q = q, .qsum = qsum,
                      .stride = (size_t)cols, .n_tok = 1, .out = out };
            for (int c = 0; c < n_counts && run_decode; c++) {
                double dt = time_calls(pools[c], &j, w, mat, copies, reps);
                double gbs = (double)mat / dt / 1e9;
                printf("t2 decode  %5lldx%-5lld %-10s %d thr: %8.1f us  %5.1f GB/s  %3.0f%% of read bw\n",
                       (long long)rows, (long long)cols, t2_shapes[s].what, thread_counts[c], dt * 1e6, gbs,
                       100 * gbs / bw[c]);
            }
            if (rows == 13824 && run_decode) { /* batched decode: n tokens, every call from DRAM */
                double t1 = 0;
                for (int n_tok = 1; n_tok <= 16; n_tok = n_tok < 4 ? n_tok + 1 : n_tok * 2) {
                    j.n_tok = n_tok;
                    int c = n_counts - 1;
                    double dt = time_calls(pools[c], &j, w, mat, copies, reps);
                    if (n_tok == 1) t1 = dt;
                    double gops = 2.0 * (double)rows * (double)cols * n_tok / dt / 1e9;
                    printf("t2 batch   %5lldx%-5lld %3d tok   %d thr: %8.1f us  %5.0f GOPS  %3.0f%% of int8 peak  %.2fx one token's time\n",
                           (long long)rows, (long long)cols, n_tok, thread_counts[c], dt * 1e6, gops, 100 * gops / peak[c], dt / t1);
                }
                j.n_tok = 1;
            }
            if (rows == 640 || rows == 3840 || rows == 13824 || !run_prefill) {
                ob_aligned_free(w);
                continue;
            }
            for (size_t p = 0; p < OB_ARRAY_LEN(prefill_toks); p++) {
                int n_tok = prefill_toks[p];
                if (quick && n_tok != 256) continue;
                j.n_tok = n_tok;
                for (int c = 0; c < n_counts; c++) {
                    double dt = time_calls(pools[c], &j, w, mat, 1, reps);
                    double gops = 2.0 * (double)rows * (double)cols * n_tok / dt / 1e9;
                    printf("t2 prefill %5lldx%-5lld %3d tok   %d thr: %8.1f us  %5.0f GOPS  %3.0f%% of int8 peak\n",
                           (long long)rows, (long long)cols, n_tok, thread_counts[c], dt * 1e6, gops,
                           100 * gops / peak[c]);
                }
            }
            j.n_tok = 1;
            ob_aligned_free(w);
        }
        /* lm_head 128256 x 2560: F16 (657 MB) and I8 (328 MB); one copy is already >> L3. */
        for (int kind = 1; kind <= 2 && run_head; kind++) {
            const int64_t rows = 128256, cols = 2560;
            size_t mat = (size_t)rows * cols * (kind == 1 ? 2 : 1);
            uint8_t *w = xalloc(mat);
            if (kind == 1) {
                uint16_t *h = (uint16_t *)w;
                for (size_t i = 0; i < mat / 2; i++) h[i] = ob_f32_to_f16((float)(next() % 2001) / 1000.0f - 1.0f);
            } else {
                fill_random(w, mat);
            }
            job j = { .k = k, .kind = kind, .rows = rows, .cols = cols, .q = q, .x = x, .stride = (size_t)cols,
                      .n_tok = 1, .out = out };
            for (int c = 0; c < n_counts; c++) {
                double dt = time_calls(pools[c], &j, w, mat, 1, reps);
                double gbs = (double)mat / dt / 1e9;
                printf("%s lm_head %lldx%lld      %d thr: %8.1f us  %5.1f GB/s  %3.0f%% of read bw\n",
                       kind == 1 ? "f16" : "i8 ", (long long)rows, (long long)cols, thread_counts[c], dt * 1e6, gbs,
                       100 * gbs / bw[c]);
            }
            for (int n_tok = 4; n_tok <= 16; n_tok *= 2) { /* a batched step's logits */
                j.n_tok = n_tok;
                int c = n_counts - 1;
                double dt = time_calls(pools[c], &j, w, mat, 1, reps);
                double gops = 2.0 * (double)rows * (double)cols * n_tok / dt / 1e9;
                printf("%s lm_head %2d tok      %d thr: %8.1f us  %5.0f G(FL)OPS (%3.0f%% of int8 peak)\n", kind == 1 ? "f16" : "i8 ",
                       n_tok, thread_counts[c], dt * 1e6, gops, 100 * gops / peak[c]);
            }
            ob_aligned_free(w);
        }
    }
    ob_aligned_free(q);
    ob_aligned_free(qsum);
    ob_aligned_free(x);
    ob_aligned_free(out);
    for (int c = 0; c < n_counts; c++) ob_pool_destroy(pools[c]);
    return 0;
}
