/* Reads the per-block timeline of CUDA decode steps (src/backend/cuda/
 * timeline.cuh: a diagnostic build, OB_CUDA_TIMELINE=FILE) and prints where a
 * step's time goes, kernel by kernel.
 *
 *   build/bench/timeline_report FILE [--layers N]
 *
 * For each recorded step: the kernels in launch order, rebuilt from the
 * records (one record per block; a kernel's instances are told apart by start
 * time, since only a kernel's direct successor may start before it ends), and
 * for each kernel, times in microseconds from its predecessor's last block end
 * (the moment its wait can return):
 *   start    its first block's entry (negative: it started early, under PDL)
 *   wait     its first block's return from the PDL wait
 *   end      its last block's exit: the kernel's share of the step's chain
 *   body     mean over blocks of exit - wait return (clock64 of the SM, at
 *            the clock given by --ghz), and the slowest block's
 *   per SM   the most blocks of this kernel that ran on one SM
 *   marks    in the means: the slowest block's OB_TL_MARK(i) points, us
 *            after its wait (see the kernel for what each point is)
 * The first --layers layers (default 2) are printed kernel by kernel, then the
 * mean of every kernel kind over all layers, and the step's total. */
#include "backend/cuda/timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned tag, grid, n_sm_max;
    double start, wait, end, body_mean, body_max; /* us, relative to the predecessor's end */
    double mark[CU_TL_MARKS];                     /* slowest block: us from its wait to OB_TL_MARK(i), -1: none */
    unsigned long long g_first, g_wait, g_end;
} kernel_row;

static const char *tag_name(unsigned tag) {
    static const char *const epi[] = { "store", "add", "glu-relu2", "glu-silu" };
    static char buf[64];
    const char *k = "?";
    switch (tag & 0xf0) {
    case CU_TL_EMBED: return "embed";
    case CU_TL_GEMV_T2: k = "gemv_t2"; break;
    case CU_TL_GEMV_T2S: k = "gemv_t2s"; break;
    case CU_TL_GEMV_F: k = "gemv_f"; break;
    case CU_TL_GEMV_I8: return "gemv_i8 (head)";
    case CU_TL_ATTN_DECODE: return "attn_decode";
    }
    snprintf(buf, sizeof buf, "%s %s", k, (tag & 15) < 4 ? epi[tag & 15] : "?");
    return buf;
}

static int by_tag_then_start(const void *a, const void *b) {
    const cu_tl_rec *x = a, *y = b;
    if (x->tag != y->tag) return x->tag < y->tag ? -1 : 1;
    return x->g[0] < y->g[0] ? -1 : x->g[0] > y->g[0];
}
static int by_first(const void *a, const void *b) {
    const kernel_row *x = a, *y = b;
    return x->g_first < y->g_first ? -1 : x->g_first > y->g_first;
}

/* Kernels of one step from n records (sorted here); returns the count. */
static int rebuild(cu_tl_rec *r, unsigned n, double ghz, kernel_row *out, int max_out) {
    qsort(r, n, sizeof *r, by_tag_then_start);
    int nk = 0;
    unsigned sm_count[1024];
    for (unsigned i = 0; i < n && nk < max_out;) {
        unsigned g = r[i].grid;
        if (g == 0 || i + g > n) break;
        kernel_row *k = &out[nk++];
        memset(k, 0, sizeof *k);
        memset(sm_count, 0, sizeof sm_count);
        k->tag = r[i].tag, k->grid = g;
        k->g_first = ~0ull, k->g_wait = ~0ull;
        for (unsigned j = i; j < i + g; j++) {
            if (r[j].tag != k->tag) {
                fprintf(stderr, "timeline_report: kernel %s has fewer records than blocks\n", tag_name(k->tag));
                return -1;
            }
            if (r[j].g[0] < k->g_first) k->g_first = r[j].g[0];
            if (r[j].g[1] && r[j].g[1] < k->g_wait) k->g_wait = r[j].g[1];
            if (r[j].g[2] > k->g_end) k->g_end = r[j].g[2];
            unsigned long long c1 = r[j].c[1] ? r[j].c[1] : r[j].c[0];
            double body = (double)(r[j].c[2] - c1) / (ghz * 1e3);
            k->body_mean += body / g;
            if (body > k->body_max || j == i) {
                k->body_max = body;
                for (int m = 0; m < CU_TL_MARKS; m++)
                    k->mark[m] = r[j].m[m] ? (double)(long long)(r[j].m[m] - c1) / (ghz * 1e3) : -1;
            }
            if (r[j].smid < 1024 && ++sm_count[r[j].smid] > k->n_sm_max) k->n_sm_max = sm_count[r[j].smid];
        }
        if (k->g_wait == ~0ull) k->g_wait = k->g_first;
        i += g;
    }
    qsort(out, nk, sizeof *out, by_first);
    for (int i = 0; i < nk; i++) {
        unsigned long long ref = i ? out[i - 1].g_end : out[i].g_first;
        out[i].start = ((double)out[i].g_first - (double)ref) * 1e-3;
        out[i].wait = ((double)out[i].g_wait - (double)ref) * 1e-3;
        out[i].end = ((double)out[i].g_end - (double)ref) * 1e-3;
    }
    return nk;
}

static void print_row(const char *name, unsigned grid, double n_sm, double start, double wait, double end, double bm,
                      double bx) {
    printf("  %-22s %6u %5.1f %8.2f %8.2f %8.2f %8.2f %8.2f\n", name, grid, n_sm, start, wait, end, bm, bx);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int show_layers = 2;
    double ghz = 1.98;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) show_layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ghz") && i + 1 < argc) ghz = atof(argv[++i]);
        else if (!path) path = argv[i];
        else {
            fprintf(stderr, "usage: timeline_report FILE [--layers N] [--ghz F]\n");
            return 2;
        }
    }
    if (!path || ghz <= 0) {
        fprintf(stderr, "usage: timeline_report FILE [--layers N] [--ghz F]\n");
        return 2;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "timeline_report: cannot open %s\n", path);
        return 1;
    }
    cu_tl_rec hdr;
    int steps = 0, rc = 0;
    while (fread(&hdr, sizeof hdr, 1, f) == 1) {
        if (hdr.tag != CU_TL_STEP || hdr.smid > (1u << 24)) {
            fprintf(stderr, "timeline_report: %s: not a timeline file (bad step header)\n", path);
            rc = 1;
            break;
        }
        unsigned n = hdr.smid;
        cu_tl_rec *r = malloc(sizeof *r * (n ? n : 1));
        kernel_row *k = malloc(sizeof *k * (n ? n : 1));
        if (!r || !k || fread(r, sizeof *r, n, f) != n) {
            fprintf(stderr, "timeline_report: %s: truncated\n", path);
            free(r), free(k);
            rc = 1;
            break;
        }
        int nk = rebuild(r, n, ghz, k, (int)n);
        if (nk < 0) {
            free(r), free(k);
            rc = 1;
            break;
        }
        double total = nk ? (double)(k[nk - 1].g_end - k[0].g_first) * 1e-3 : 0;
        printf("step %u, position %u: %u records, %d kernels, %.1f us from the first entry to the last exit\n",
               hdr.block, hdr.grid, n, nk, total);
        printf("  %-22s %6s %5s %8s %8s %8s %8s %8s\n", "kernel", "blocks", "/SM", "start", "wait", "end", "body",
               "body max");
        /* per layer: the kernels from one qkv-like GEMV to the next; printed
         * for the first show_layers layers (after the embedding) */
        int layer = -1;
        for (int i = 0; i < nk; i++) {
            if (i > 0 && k[i].tag == k[1].tag) layer++;
            if (layer < show_layers) print_row(tag_name(k[i].tag), k[i].grid, k[i].n_sm_max, k[i].start, k[i].wait,
                                               k[i].end, k[i].body_mean, k[i].body_max);
        }
        /* means per kind, by position in the layer (tags repeat within a layer) */
        printf("  mean over layers:\n");
        int per_layer = 0;
        for (int i = 2; i < nk && k[i].tag != k[1].tag; i++) per_layer++;
        per_layer++;
        for (int j = 0; j < per_layer && nk > 1; j++) {
            double s = 0, w = 0, e = 0, bm = 0, bx = 0, nsm = 0, mk[CU_TL_MARKS] = { 0 };
            int c = 0, mc[CU_TL_MARKS] = { 0 };
            for (int i = 1 + j; i + (per_layer - j) <= nk; i += per_layer)
                if (k[i].tag == k[1 + j].tag) {
                    s += k[i].start, w += k[i].wait, e += k[i].end, bm += k[i].body_mean, bx += k[i].body_max;
                    nsm += k[i].n_sm_max;
                    for (int m = 0; m < CU_TL_MARKS; m++)
                        if (k[i].mark[m] >= 0) mk[m] += k[i].mark[m], mc[m]++;
                    c++;
                }
            if (c) print_row(tag_name(k[1 + j].tag), k[1 + j].grid, nsm / c, s / c, w / c, e / c, bm / c, bx / c);
            if (c && mc[0]) {
                printf("  %22s marks of the slowest block (us after its wait):", "");
                for (int m = 0; m < CU_TL_MARKS; m++)
                    if (mc[m]) printf(" %d:%.2f", m, mk[m] / mc[m]);
                printf("\n");
            }
        }
        if (nk > 1 && k[nk - 1].tag != k[1].tag) {
            printf("  after the layers:\n");
            print_row(tag_name(k[nk - 1].tag), k[nk - 1].grid, k[nk - 1].n_sm_max, k[nk - 1].start, k[nk - 1].wait,
                      k[nk - 1].end, k[nk - 1].body_mean, k[nk - 1].body_max);
        }
        printf("\n");
        free(r), free(k);
        steps++;
    }
    fclose(f);
    if (!rc && !steps) {
        fprintf(stderr, "timeline_report: %s: no steps\n", path);
        rc = 1;
    }
    return rc;
}
