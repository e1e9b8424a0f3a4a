/* 1bit bench: prefill and decode speed, and the share of the machine's own
 * limits measured in the same run.
 *
 *   1. Prefill: a prompt of --prompt tokens (default 512) from an empty cache,
 *      logits for the last token only; median of --reps runs.
 *   2. Decode at each context C of --contexts (default 64,512,2048): the cache
 *      is filled to C positions, then --gen tokens are decoded one at a time,
 *      each with its logits (lm_head included, as in generation).
 *   3. Batched decode (--batch N): N independent sequences, each holding the
 *      context C (copied from sequence 0), decode one token each per step,
 *      all N in one backend call with logits for every token (what a server
 *      step does). Aggregate tokens/s = N * steps / seconds, and its ratio to
 *      the single-stream decode of step 2 at the same context.
 *   4. Probes, after the runs (so peak RSS is the model's) on the same number
 *      of threads: read bandwidth (GB/s) and the int8 multiply-add peak (GOPS)
 *      of the kernel set the backend uses (backend/cpu/probe.h).
 *
 * Bytes read per decoded token = ob_model_weight_bytes (every weight once,
 * lm_head included) + the K and V cache read by attention at that context.
 * Achieved GB/s = bytes per token * tokens/s; its share of the measured read
 * bandwidth is the decode efficiency. Prefill GOPS counts 2 ops per ternary
 * multiply-add (the BitLinear matrices only; attention and the one lm_head
 * row are left out), against the measured int8 peak. Batched decode GOPS
 * counts the BitLinear matrices and, when it is int8, the lm_head (every
 * token of a batched step needs its logits). */
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/probe.h"
#include "cli/cli.h"
#ifdef OB_HAVE_CUDA
#include "backend/cuda/ob_cuda.h"
#endif

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_CONTEXTS 8

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: 1bit bench (--synthetic SHAPE | -m MODEL) [options]\n\n"
            "Prefill and decode speed, bytes read per token, and their shares of the\n"
            "read bandwidth and int8 multiply-add peak measured in the same run.\n\n"
            "  --prompt N           prefill prompt length (default 512)\n"
            "  --contexts A,B,..    decode at these cache lengths (default 64,512,2048)\n"
            "  --gen N              tokens decoded per context (default 16)\n"
            "  --reps N             prefill repetitions, median reported (default 3)\n"
            "  --batch N            also decode N sequences at once, one token each per step,\n"
            "                       at every context (aggregate tok/s and its ratio to one)\n"
            "  --no-probe           skip the machine probes (shares are then null)\n"
            "  --json               one JSON object on stdout\n\n%s",
            ob_cli_model_help);
}

typedef struct bench_opts {
    int prompt, gen, reps, n_ctx, batch;
    int ctx[MAX_CONTEXTS];
    bool probe, json;
} bench_opts;

/* ---- machine probes, per backend ---------------------------------------- */

typedef struct machine {
    double read_gbps;  /* 0: not measured */
    double int8_gops;  /* 0: not measured */
    const char *int8_how;
    const char *bw_how;
} machine;

static int probe_machine(const char *cmd, const char *backend, const char *kernels, int threads, machine *mc) {
    memset(mc, 0, sizeof *mc);
    if (!strcmp(backend, "cpu")) {
        ob_pool *pool = NULL;
        mc->bw_how = "streaming read, 512 MiB";
        if (ob_pool_create(threads, &pool) || ob_probe_read_bw(pool, 0, 5, &mc->read_gbps) ||
            ob_probe_int8_peak(pool, kernels, 0.1, 3, &mc->int8_gops, &mc->int8_how)) {
            ob_pool_destroy(pool);
            return ob_cli_fail(cmd);
        }
        ob_pool_destroy(pool);
    }
#ifdef OB_HAVE_CUDA
    /* GPU: device-to-device copy bandwidth (bytes read + written) on device 0;
     * no int8 peak probe yet, so the prefill share stays null. */
    if (!strcmp(backend, "cuda")) {
        if (ob_cuda_probe_bandwidth(0, &mc->read_gbps)) return ob_cli_fail(cmd);
        mc->bw_how = "device-to-device copy, bytes read + written";
    }
#endif
    return 0;
}

/* ---- the runs -------------------------------------------------------------- */

static uint64_t rng_state = 0x5eed;
static int32_t random_token(int n_vocab) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (int32_t)((z ^ (z >> 31)) % (uint64_t)n_vocab);
}

/* Runs positions [from, to) of sequence 0 in batches of up to `chunk`, logits
 * for the last token only. */
static ob_status run_positions(ob_backend *b, int from, int to, int chunk, int32_t *tok, int32_t *pos, float *logits) {
    for (int p0 = from; p0 < to; p0 += chunk) {
        int n = OB_MIN(chunk, to - p0);
        for (int i = 0; i < n; i++) tok[i] = random_token(b->model->hp.n_vocab), pos[i] = p0 + i;
        ob_batch batch = { .n = n, .token = tok, .pos = pos };
        ob_status st = b->ops->decode(b, &batch, logits);
        if (st) return st;
    }
    return OB_OK;
}

/* Batched decode at context C: sequences 1..N-1 get a copy of sequence 0's C
 * positions, then `gen` steps decode one token of each of the N sequences in
 * one call, with logits for all of them. *tps = N * gen / seconds. */
static ob_status run_batched(ob_backend *b, int N, int C, int gen, double *tps) {
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *pos = malloc(sizeof(int32_t) * (size_t)N);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)N);
    uint8_t *want = malloc((size_t)N);
    float *logits = malloc(sizeof(float) * (size_t)N * (size_t)b->model->hp.n_vocab);
    ob_status st = OB_OK;
    if (!tok || !pos || !seq || !want || !logits) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    for (int s = 1; s < N && !st; s++) st = b->ops->seq_copy(b, 0, s, C);
    double t0 = ob_time_s();
    for (int g = 0; g < gen && !st; g++) {
        for (int s = 0; s < N; s++) tok[s] = random_token(b->model->hp.n_vocab), pos[s] = C + g, seq[s] = s, want[s] = 1;
        ob_batch batch = { .n = N, .token = tok, .pos = pos, .seq = seq, .logits = want };
        st = b->ops->decode(b, &batch, logits);
    }
    *tps = (double)N * gen / (ob_time_s() - t0);
    for (int s = 0; s < N && !st; s++) st = b->ops->seq_truncate(b, s, s ? 0 : C);
    free(tok), free(pos), free(seq), free(want), free(logits);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct results {
    double prefill_s;                 /* median seconds for the prompt */
    double decode_tps[MAX_CONTEXTS];  /* tokens/s */
    double batch_tps[MAX_CONTEXTS];   /* --batch: aggregate tokens/s of N streams */
    uint64_t kv_bytes[MAX_CONTEXTS];  /* KV read per token at that context */
    double peak_rss_mb;
} results;

static ob_status run_bench(ob_backend *b, const bench_opts *o, size_t kv_elem, results *res) {
    const ob_hparams *hp = &b->model->hp;
    int chunk = OB_MAX(o->prompt, 1);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)chunk), *pos = malloc(sizeof(int32_t) * (size_t)chunk);
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    double *times = malloc(sizeof(double) * (size_t)o->reps);
    ob_status st = OB_OK;
    if (!tok || !pos || !logits || !times) {
        st = ob_fail(OB_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* prefill */
    for (int r = 0; r < o->reps && !st; r++) {
        if ((st = b->ops->seq_truncate(b, 0, 0))) break;
        double t0 = ob_time_s();
        st = run_positions(b, 0, o->prompt, chunk, tok, pos, logits);
        times[r] = ob_time_s() - t0;
    }
    if (st) goto done;
    qsort(times, (size_t)o->reps, sizeof *times, cmp_double);
    res->prefill_s = times[o->reps / 2];
    /* decode at each context, ascending; the cache holds `filled` positions */
    int filled = o->prompt;
    for (int c = 0; c < o->n_ctx && !st; c++) {
        int C = o->ctx[c];
        if (filled > C) st = b->ops->seq_truncate(b, 0, C);
        else st = run_positions(b, filled, C, chunk, tok, pos, logits);
        if (st) break;
        double t0 = ob_time_s();
        for (int g = 0; g < o->gen && !st; g++) st = run_positions(b, C + g, C + g + 1, 1, tok, pos, logits);
        res->decode_tps[c] = o->gen / (ob_time_s() - t0);
        if (!st) st = b->ops->seq_truncate(b, 0, C);
        if (!st && o->batch) st = run_batched(b, o->batch, C, o->gen, &res->batch_tps[c]);
        filled = C;
        /* attention reads K and V of every cached position, each layer (mean over the run) */
        double mean_ctx = C + (o->gen - 1) / 2.0 + 1;
        res->kv_bytes[c] = (uint64_t)((double)hp->n_layer * 2.0 * hp->n_head_kv * hp->head_dim * mean_ctx *
                                      (double)kv_elem);
    }
done:
    free(tok);
    free(pos);
    free(logits);
    free(times);
    return st;
}

/* ---- report ------------------------------------------------------------------ */

/* Multiply-adds per token in the ternary (or int8) matrices of the layers. */
static double layer_macs(const ob_model *m) {
    double macs = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const ob_layer *L = &m->layers[l];
        const ob_linear *lin[] = { &L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down };
        for (size_t i = 0; i < OB_ARRAY_LEN(lin); i++) macs += (double)lin[i]->in * (double)lin[i]->out;
    }
    return macs;
}

/* Int8 multiply-adds per token of a batched decode step: the layers, and the
 * lm_head when it is int8. */
static double batch_int8_macs(const ob_model *m) {
    double macs = layer_macs(m);
    if (m->output.w->type == OB_TYPE_I8) macs += (double)m->output.in * (double)m->output.out;
    return macs;
}

static void json_str(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* A ratio, or null when the limit was not measured. */
static void json_share(const char *key, double num, double den, bool comma) {
    if (den > 0) printf("\"%s\": %.4f%s", key, num / den, comma ? ", " : "");
    else printf("\"%s\": null%s", key, comma ? ", " : "");
}

static void print_report(const ob_model *m, const char *backend, const char *kernels, int threads,
                         const bench_opts *o, const machine *mc, const results *res, const char *what) {
    const ob_hparams *hp = &m->hp;
    uint64_t wbytes = ob_model_weight_bytes(m);
    double macs = layer_macs(m);
    double prefill_tps = o->prompt / res->prefill_s;
    double prefill_gops = 2.0 * macs * o->prompt / res->prefill_s / 1e9;
    double rss_mb = res->peak_rss_mb;
    const char *head = ob_type_name(m->output.w->type);
    if (o->json) {
        printf("{\"model\": ");
        json_str(what);
        printf(", \"arch\": \"%s\", \"n_embd\": %d, \"n_layer\": %d, \"n_ff\": %d, \"n_vocab\": %d, \"head_type\": ",
               hp->arch == OB_ARCH_BITNET ? "bitnet" : "llama", hp->n_embd, hp->n_layer, hp->n_ff, hp->n_vocab);
        json_str(head);
        printf(", \"backend\": ");
        json_str(backend);
        printf(", \"kernels\": ");
        json_str(kernels);
        printf(", \"threads\": %d, \"weight_bytes_per_token\": %llu,\n", threads, (unsigned long long)wbytes);
        printf(" \"machine\": {\"read_gbps\": ");
        if (mc->read_gbps > 0) printf("%.2f", mc->read_gbps);
        else printf("null");
        printf(", \"bw_probe\": ");
        if (mc->bw_how) json_str(mc->bw_how);
        else printf("null");
        printf(", \"int8_gops\": ");
        if (mc->int8_gops > 0) printf("%.1f", mc->int8_gops);
        else printf("null");
        printf(", \"int8_instruction\": ");
        if (mc->int8_how) json_str(mc->int8_how);
        else printf("null");
        printf("},\n \"prefill\": {\"tokens\": %d, \"reps\": %d, \"seconds\": %.4f, \"tokens_per_s\": %.2f, \"gops\": %.1f, ",
               o->prompt, o->reps, res->prefill_s, prefill_tps, prefill_gops);
        json_share("int8_peak_share", prefill_gops, mc->int8_gops, false);
        printf("},\n \"decode\": [");
        for (int c = 0; c < o->n_ctx; c++) {
            uint64_t bytes = wbytes + res->kv_bytes[c];
            double gbps = (double)bytes * res->decode_tps[c] / 1e9;
            printf("%s\n  {\"context\": %d, \"tokens\": %d, \"tokens_per_s\": %.2f, \"bytes_per_token\": %llu, "
                   "\"kv_bytes_per_token\": %llu, \"gbps\": %.2f, ",
                   c ? "," : "", o->ctx[c], o->gen, res->decode_tps[c], (unsigned long long)bytes,
                   (unsigned long long)res->kv_bytes[c], gbps);
            json_share("read_bw_share", gbps, mc->read_gbps, false);
            printf("}");
        }
        printf("],\n \"batch\": ");
        if (!o->batch) printf("null");
        else {
            printf("{\"streams\": %d, \"runs\": [", o->batch);
            for (int c = 0; c < o->n_ctx; c++) {
                double gops = 2.0 * batch_int8_macs(m) * res->batch_tps[c] / 1e9;
                printf("%s\n  {\"context\": %d, \"steps\": %d, \"tokens_per_s\": %.2f, \"single_tokens_per_s\": %.2f, "
                       "\"ratio\": %.3f, \"int8_gops\": %.1f, ",
                       c ? "," : "", o->ctx[c], o->gen, res->batch_tps[c], res->decode_tps[c],
                       res->batch_tps[c] / res->decode_tps[c], gops);
                json_share("int8_peak_share", gops, mc->int8_gops, false);
                printf("}");
            }
            printf("]}");
        }
        printf(",\n \"peak_rss_mb\": %.1f}\n", rss_mb);
        return;
    }
    printf("model      %s: %s, %d layers, embd %d, ff %d, vocab %d, lm_head %s\n", what,
           hp->arch == OB_ARCH_BITNET ? "bitnet" : "llama", hp->n_layer, hp->n_embd, hp->n_ff, hp->n_vocab, head);
    printf("backend    %s, kernels %s, %d threads\n", backend, kernels, threads);
    printf("weights    %.1f MB read per token\n", (double)wbytes / 1e6);
    if (mc->read_gbps > 0) printf("machine    bandwidth %.1f GB/s (%s)", mc->read_gbps, mc->bw_how);
    else printf("machine    not probed");
    if (mc->int8_gops > 0) printf(", int8 peak %.0f GOPS (%s)", mc->int8_gops, mc->int8_how);
    printf("\n");
    printf("prefill    %d tokens: %.2f tok/s, %.0f GOPS", o->prompt, prefill_tps, prefill_gops);
    if (mc->int8_gops > 0) printf(" = %.0f%% of the int8 peak", 100 * prefill_gops / mc->int8_gops);
    printf("\n");
    for (int c = 0; c < o->n_ctx; c++) {
        uint64_t bytes = wbytes + res->kv_bytes[c];
        double gbps = (double)bytes * res->decode_tps[c] / 1e9;
        printf("decode     ctx %5d: %7.2f tok/s, %.1f MB/token, %.1f GB/s", o->ctx[c], res->decode_tps[c],
               (double)bytes / 1e6, gbps);
        if (mc->read_gbps > 0) printf(" = %.0f%% of read bandwidth", 100 * gbps / mc->read_gbps);
        printf("\n");
    }
    for (int c = 0; o->batch && c < o->n_ctx; c++) {
        double gops = 2.0 * batch_int8_macs(m) * res->batch_tps[c] / 1e9;
        printf("batch %3d  ctx %5d: %7.2f tok/s aggregate = %.2fx one stream, %.0f int8 GOPS", o->batch, o->ctx[c],
               res->batch_tps[c], res->batch_tps[c] / res->decode_tps[c], gops);
        if (mc->int8_gops > 0) printf(" = %.0f%% of the int8 peak", 100 * gops / mc->int8_gops);
        printf("\n");
    }
    printf("memory     peak RSS %.0f MB\n", rss_mb);
}

static int parse_contexts(const char *cmd, const char *s, bench_opts *o) {
    int32_t *ids;
    size_t n;
    if (ob_cli_parse_ids(s, &ids, &n) || n == 0 || n > MAX_CONTEXTS)
        return ob_cli_error(cmd, "--contexts takes 1 to %d positive lengths, e.g. 64,512,2048", MAX_CONTEXTS);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 1 || ids[i] > (1 << 20) || (i && ids[i] <= ids[i - 1])) {
            free(ids);
            return ob_cli_error(cmd, "--contexts must be increasing lengths in 1..1048576");
        }
        o->ctx[i] = ids[i];
    }
    o->n_ctx = (int)n;
    free(ids);
    return 0;
}

int ob_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    ob_cli_model_opts mo = { 0 };
    bench_opts o = { .prompt = 512, .gen = 16, .reps = 3, .n_ctx = 3, .ctx = { 64, 512, 2048 }, .probe = true };
    long long n;
    for (int i = 1; i < argc; i++) {
        int r = ob_cli_model_arg(cmd, &mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            o.json = true;
        } else if (!strcmp(a, "--no-probe")) {
            o.probe = false;
        } else if (!strcmp(a, "--batch")) {
            if (!v || !ob_cli_int(v, 1, 256, &n)) return ob_cli_error(cmd, "--batch takes a count of sequences in 1..256");
            o.batch = (int)n;
            i++;
        } else if (!strcmp(a, "--prompt") || !strcmp(a, "--gen") || !strcmp(a, "--reps")) {
            if (!v || !ob_cli_int(v, 1, 1 << 20, &n)) return ob_cli_error(cmd, "%s takes a count in 1..1048576", a);
            *(!strcmp(a, "--prompt") ? &o.prompt : !strcmp(a, "--gen") ? &o.gen : &o.reps) = (int)n;
            i++;
        } else if (!strcmp(a, "--contexts")) {
            if (!v) return ob_cli_error(cmd, "--contexts needs a value");
            if (parse_contexts(cmd, v, &o)) return 1;
            i++;
        } else {
            return ob_cli_error(cmd, "unknown option '%s' (1bit bench --help)", a);
        }
    }
    if (!mo.model && !mo.synthetic) return ob_cli_error(cmd, "no model: give --synthetic SHAPE or -m MODEL (1bit bench --help)");
    const char *backend = mo.backend ? mo.backend : "cpu";
    const char *kernels = mo.kernels ? mo.kernels : "auto";
    int threads = mo.threads > 0 ? mo.threads : ob_cpu_count();
    /* The cache must hold the prompt and the largest context plus its decoded tokens. */
    int need = OB_MAX(o.prompt, o.ctx[o.n_ctx - 1] + o.gen);
    if (mo.ctx && mo.ctx < need) return ob_cli_error(cmd, "--ctx %d is too small for these runs (need %d)", mo.ctx, need);
    if (!mo.ctx) mo.ctx = need;

    if (!strcmp(backend, "cpu")) {
        const ob_cpu_kernels *k = ob_cpu_kernels_select(kernels);
        if (!k) return ob_cli_error(cmd, "kernel set '%s' is unknown or not supported here", kernels);
        kernels = k->name;
    }

    ob_model *m;
    ob_backend *b;
    if (ob_cli_open(cmd, &mo, OB_MAX(o.batch, 1), &m, &b)) return 1;
    results res = { 0 };
    int rc = 0;
    if (run_bench(b, &o, mo.kv_f16 ? 2 : 4, &res)) rc = ob_cli_fail(cmd);
    /* Peak RSS now, before the probes' buffer; then the probes, with the model's
     * memory still mapped but idle, on the same number of threads. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res.peak_rss_mb = (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
    machine mc = { 0 };
    if (!rc && o.probe) rc = probe_machine(cmd, backend, kernels, threads, &mc);
    if (!rc) print_report(m, backend, kernels, threads, &o, &mc, &res, mo.synthetic ? mo.synthetic : mo.model);
    ob_backend_destroy(b);
    ob_model_free(m);
    return rc;
}
