/* The CPU backend: the reference forward pass of bitnet and llama models.
 *
 * It is the specification of the math: float32 everywhere except the exact
 * integer ternary dot products (BitLinear, DESIGN.md). Kernels come from the
 * kernel table (kernels.h): "scalar" is the reference twin, "auto" the best
 * SIMD set, which must give the same integers; the float parts (norms, RoPE,
 * attention, scales) run this same code either way.
 *
 * A batch is processed in chunks of up to MAX_CHUNK tokens; per layer:
 *   xn = rmsnorm(x) -> quantize once -> q, k, v -> RoPE -> append K/V to each
 *   token's sequence -> attention over that sequence's positions <= pos ->
 *   [attn_sub_norm] -> o -> x += ; xn = rmsnorm(x) -> quantize once -> gate, up
 *   -> act(gate) * up -> [ffn_sub_norm] -> down -> x +=
 * then the final norm and the lm_head for the tokens that asked for logits.
 * Work is split across a persistent thread pool by output rows (GEMMs; with
 * several tokens, claimed in shrinking chunks), by tokens (the per-token
 * steps before each GEMM: residual add, activation, norm, quantization; RoPE
 * and the K/V stores) or by (token, KV head) units (attention). Every token's
 * numbers are computed the same way whatever the batch around it, so a
 * sequence decoded in a server's batch gives the logits it gives alone. */
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "core/threadpool.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNK 256   /* tokens per forward chunk (bounds scratch memory) */
#define ROW_ALIGN 16    /* rows per work unit: 64 bytes of f32 output */
#define ACC_CAP 16384   /* int32 accumulators per thread: [n_tok][rows of one block] */

typedef struct cpu_backend {
    ob_backend base;
    const ob_model *m;
    const ob_cpu_kernels *k;
    ob_pool *pool;
    ob_kv_type kv_type;
    size_t kv_elem;         /* bytes per cached value */
    int64_t kv_dim;         /* n_head_kv * head_dim */
    void *kv_k, *kv_v;      /* [n_seq][n_layer][n_head_kv][n_ctx][head_dim] (kv_offset) */
    int *seq_len;           /* cached positions per sequence */

    /* scratch for up to MAX_CHUNK tokens */
    int64_t wide;           /* max(E, Q, F) */
    float *x, *xn, *q, *kx, *vx, *att, *gate, *up, *tmp;
    int8_t *xq;             /* [T][pad(wide)] quantized activations */
    float *xs;              /* [T] activation scales s */
    int32_t *xsum;          /* [T] */
    int32_t *acc;           /* [n_threads][ACC_CAP] */
    float *scores;          /* [n_threads][G][n_ctx] attention scratch */
    float *att_part;        /* [att_slots][G*D + 2G] partial states of split items */
    int att_slots;
    struct attn_unit *att_units; /* [MAX_CHUNK * n_head_kv + att_slots] */
    struct attn_item *att_items; /* [att_slots] */
    float *rope_cs;         /* [T][rope_dim] cos, sin pairs */
} cpu_backend;

/* ---- helpers -------------------------------------------------------------- */

/* Element-wise loops over n values run as n8 = n rounded down to a multiple
 * of 8, then the rest: GCC -O2 (the "very cheap" vectorizer cost model)
 * vectorizes a loop only when no scalar remainder is left, and with n8 it can
 * tell. Each element keeps its scalar operations in order, so the results are
 * the same bits as the plain loops. */
static inline int64_t vec8(int64_t n) { return n & ~(int64_t)7; }

/* out = x * w / sqrt(mean(x^2) + eps), with ss the sum of x^2 (sum_sq*). */
static void rmsnorm_scale(float *restrict out, const float *restrict x, const float *restrict w, int64_t n, float eps,
                          double ss) {
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    int64_t i = 0, n8 = vec8(n);
    for (; i < n8; i++) out[i] = x[i] * scale * w[i];
    for (; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* The sum of squares is one double chain in index order: its order is part of
 * the result's bits. sum_sq4 runs four rows' chains side by side (each in its
 * own order, so the same bits as sum_sq on each row): one chain is bound by
 * the add latency, four share it. */
static double sum_sq(const float *x, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return ss;
}
static void sum_sq4(const float *const x[4], int64_t n, double ss[4]) {
    const float *restrict a = x[0], *restrict b = x[1], *restrict c = x[2], *restrict d = x[3];
    double sa = 0, sb = 0, sc = 0, sd = 0;
    for (int64_t i = 0; i < n; i++) {
        sa += (double)a[i] * a[i];
        sb += (double)b[i] * b[i];
        sc += (double)c[i] * c[i];
        sd += (double)d[i] * d[i];
    }
    ss[0] = sa, ss[1] = sb, ss[2] = sc, ss[3] = sd;
}

static void rmsnorm(float *restrict out, const float *restrict x, const float *restrict w, int64_t n, float eps) {
    rmsnorm_scale(out, x, w, n, eps, sum_sq(x, n));
}

/* x[i] += a[i] */
static void add_row(float *restrict x, const float *restrict a, int64_t n) {
    int64_t i = 0, n8 = vec8(n);
    for (; i < n8; i++) x[i] += a[i];
    for (; i < n; i++) x[i] += a[i];
}

/* x[i] = relu(x[i])^2 * u[i], relu(g) = g > 0 ? g : +0 (NaN gives +0), as a
 * mask on the bits so that the loop has no branch to vectorize around. */
static inline float relu(float g) {
    uint32_t bits;
    memcpy(&bits, &g, sizeof bits);
    bits &= 0u - (uint32_t)(g > 0);
    memcpy(&g, &bits, sizeof g);
    return g;
}
static void relu2_gate_row(float *restrict x, const float *restrict u, int64_t n) {
    int64_t i = 0, n8 = vec8(n);
    for (; i < n8; i++) x[i] = relu(x[i]) * relu(x[i]) * u[i];
    for (; i < n; i++) x[i] = relu(x[i]) * relu(x[i]) * u[i];
}

/* o[r] = (float)a[r] * inv_s * beta[r] (or * beta0 when beta is NULL).
 * noinline: inlined into gemm_rows, GCC 12 -O2 left these loops scalar. */
static __attribute__((noinline)) void dequant_row(float *restrict o, const int32_t *restrict a, int64_t n,
                                                  float inv_s, const float *restrict beta, float beta0) {
    int64_t r = 0, n8 = vec8(n);
    if (beta) {
        for (; r < n8; r++) o[r] = (float)a[r] * inv_s * beta[r];
        for (; r < n; r++) o[r] = (float)a[r] * inv_s * beta[r];
    } else {
        for (; r < n8; r++) o[r] = (float)a[r] * inv_s * beta0;
        for (; r < n; r++) o[r] = (float)a[r] * inv_s * beta0;
    }
}

/* Element offset of (seq, layer, kv head, pos) in a cache laid out
 * [seq][layer][kv_head][ctx][head_dim]: each head's positions are contiguous,
 * so attention streams them in order (interleaving the heads per position
 * left the scores loop waiting on memory at 3 GB/s per core). */
static size_t kv_offset(const cpu_backend *b, int seq, int layer, int kvh, int pos) {
    const ob_hparams *hp = &b->m->hp;
    size_t head = ((size_t)seq * (size_t)hp->n_layer + (size_t)layer) * (size_t)hp->n_head_kv + (size_t)kvh;
    return (head * (size_t)b->base.n_ctx + (size_t)pos) * (size_t)hp->head_dim;
}

/* ---- parallel GEMM jobs -----------------------------------------------------
 * One pool run computes up to three linears that read the same input (q, k, v
 * or gate, up): the threads split the concatenated output rows, so there is
 * one barrier per group and the shares stay balanced. */

typedef struct gemm_part {
    const ob_linear *lin;
    float *out;             /* [n_tok][out_stride] */
    size_t out_stride;
    const float *row_scale; /* I8 weights: per-row scales */
} gemm_part;

typedef struct gemm_job {
    cpu_backend *b;
    int n_tok;
    const float *in;        /* float input [n_tok][in_stride] (float weights) */
    size_t in_stride;
    int n_parts;
    gemm_part part[3];
    int64_t total;          /* output rows of all parts */
    _Atomic int64_t next;   /* several tokens: the first row not yet claimed */
} gemm_job;

/* Rows [r0, r1) of one part. Quantized weights run in blocks of rows whose
 * int32 results for every token fit the thread's ACC_CAP accumulators (acc),
 * so any number of tokens (a whole batch's lm_head) takes one pass over the
 * weights. */
static void gemm_rows(const gemm_job *j, const gemm_part *pt, int32_t *acc, int64_t r0, int64_t r1) {
    cpu_backend *b = j->b;
    const ob_linear *l = pt->lin;
    int64_t in_pad = ob_act_pad(l->in);
    switch (l->w->type) {
    case OB_TYPE_T2:
    case OB_TYPE_I8: {
        bool t2 = l->w->type == OB_TYPE_T2;
        size_t row_bytes = t2 ? ob_type_row_bytes(OB_TYPE_T2, l->in) : (size_t)l->in;
        int64_t blk = OB_MAX(ROW_ALIGN, ACC_CAP / j->n_tok / ROW_ALIGN * ROW_ALIGN); /* n_tok <= MAX_CHUNK */
        for (int64_t rb = r0; rb < r1; rb += blk) {
            int64_t n = OB_MIN(blk, r1 - rb);
            const uint8_t *w = (const uint8_t *)l->w->data + (size_t)rb * row_bytes;
            if (t2) b->k->t2_gemm(w, row_bytes, 0, n, b->xq, (size_t)in_pad, b->xsum, j->n_tok, acc, (size_t)blk);
            else b->k->i8_gemm((const int8_t *)w, l->in, 0, n, b->xq, (size_t)in_pad, j->n_tok, acc, (size_t)blk);
            /* out = acc / s * beta, beta one per matrix or one per row */
            const float *restrict beta = t2 ? (l->n_scale == 1 ? NULL : l->scale + rb) : pt->row_scale + rb;
            for (int t = 0; t < j->n_tok; t++)
                dequant_row(pt->out + (size_t)t * pt->out_stride + rb, acc + (size_t)t * (size_t)blk, n,
                            1.0f / b->xs[t], beta, beta ? 0.0f : l->scale[0]);
        }
        break;
    }
    case OB_TYPE_Q8_0: { /* rare (GGUF heads): dequantize one row at a time */
        float *row = malloc((size_t)l->in * sizeof *row);
        if (!row) break; /* leaves stale values; a few KB, practically unreachable */
        for (int64_t r = r0; r < r1; r++) {
            ob_tensor_row_f32(l->w, r, row);
            for (int t = 0; t < j->n_tok; t++) {
                const float *x = j->in + (size_t)t * j->in_stride;
                float sum = 0;
                for (int64_t c = 0; c < l->in; c++) sum += row[c] * x[c];
                pt->out[(size_t)t * pt->out_stride + r] = sum;
            }
        }
        free(row);
        break;
    }
    default:
        b->k->f_gemm(l->w->type, l->w->data, l->in, r0, r1, j->in, j->in_stride, j->n_tok, pt->out, pt->out_stride);
        break;
    }
}

/* Rows [g0, g1) of the parts' concatenated rows. */
static void gemm_span(const gemm_job *j, int32_t *acc, int64_t g0, int64_t g1) {
    int64_t base = 0;
    for (int p = 0; p < j->n_parts && g0 < g1; p++) {
        int64_t out = j->part[p].lin->out;
        int64_t r0 = OB_MAX(g0, base) - base, r1 = OB_MIN(g1, base + out) - base;
        if (r0 < r1) gemm_rows(j, &j->part[p], acc, r0, r1);
        base += out;
    }
}

/* One token (decode) splits the rows evenly: the weights stream from DRAM
 * and each thread's share is one prefetched run. With several tokens the
 * threads drift apart on even halves (in a 16-token step they finished 5-12%
 * of a GEMM's time apart, more in the server, whose own threads take a core
 * now and then), so they claim chunks of shrinking size, (rows left) / (2 x
 * threads) rounded to ROW_ALIGN and at least 64 rows, until none is left. A
 * row's result does not depend on its chunk. */
#define GEMM_MIN_CHUNK (4 * ROW_ALIGN)
static void gemm_task(void *arg, int ith, int nth) {
    gemm_job *j = arg;
    int32_t *acc = j->b->acc + (size_t)ith * ACC_CAP;
    if (j->n_tok == 1 || nth == 1) {
        int64_t g0, g1;
        ob_split_range(j->total, ith, nth, ROW_ALIGN, &g0, &g1);
        gemm_span(j, acc, g0, g1);
        return;
    }
    int64_t g0 = atomic_load_explicit(&j->next, memory_order_relaxed), n;
    for (;;) {
        do {
            if (g0 >= j->total) return;
            n = OB_MAX(GEMM_MIN_CHUNK, (j->total - g0) / (2 * nth) / ROW_ALIGN * ROW_ALIGN);
        } while (!atomic_compare_exchange_weak_explicit(&j->next, &g0, g0 + n, memory_order_relaxed,
                                                        memory_order_relaxed));
        gemm_span(j, acc, g0, OB_MIN(g0 + n, j->total));
        g0 = atomic_load_explicit(&j->next, memory_order_relaxed);
    }
}

static bool needs_quant(const ob_linear *l) { return l->w->type == OB_TYPE_T2 || l->w->type == OB_TYPE_I8; }

/* part[i].out = part[i].lin(in) for every part. Quantized weights read the
 * activations that prep() quantized into b->xq (once, shared by all parts). */
static void linears(cpu_backend *b, const float *in, size_t in_stride, int n_tok, int n_parts, const gemm_part *parts) {
    gemm_job j = { .b = b, .n_tok = n_tok, .in = in, .in_stride = in_stride, .n_parts = n_parts };
    memcpy(j.part, parts, (size_t)n_parts * sizeof *parts);
    for (int p = 0; p < n_parts; p++) j.total += parts[p].lin->out;
    atomic_init(&j.next, 0);
    ob_pool_run(b->pool, gemm_task, &j);
}

/* ---- per-token steps before a GEMM ------------------------------------------
 * For each token t, in this order, each step optional:
 *   x[t] += add[t]                        (a residual)
 *   x[t] = act(x[t]) * up[t]              (the feed-forward gate)
 *   y[t] = rmsnorm(x[t]) * norm_w         (else y = x)
 *   b->xq[t], xs[t], xsum[t] = quantize(y[t])
 * Split over the pool by tokens when there are several (a prefill chunk or a
 * batched step: one thread doing this for 256 tokens was 10-15% of prefill);
 * one token runs on the caller, with no pool barrier. */

typedef struct prep_job {
    cpu_backend *b;
    int n_tok;
    int64_t n;              /* values per token */
    float *x;               /* [n_tok][x_stride] */
    size_t x_stride;
    const float *add;       /* [n_tok][n] or NULL */
    const float *up;        /* [n_tok][x_stride] or NULL */
    const float *norm_w;    /* [n] or NULL */
    float *y;               /* [n_tok][y_stride] (with norm_w) */
    size_t y_stride;
    bool quant;
} prep_job;

/* Tokens go in groups of up to 4 so that their norms' sums of squares run
 * side by side (sum_sq4); every token's own operations and their order are
 * those of one token alone. */
static void prep_task(void *arg, int ith, int nth) {
    const prep_job *j = arg;
    cpu_backend *b = j->b;
    const ob_hparams *hp = &b->m->hp;
    int64_t t0, t1, n = j->n, pad = ob_act_pad(j->n);
    ob_split_range(j->n_tok, ith, nth, 1, &t0, &t1);
    ob_quantize_i8_fn quant = b->k->quantize_i8 ? b->k->quantize_i8 : ob_quantize_row_i8; /* bit-identical */
    for (int64_t g0 = t0; g0 < t1; g0 += 4) {
        int64_t g1 = OB_MIN(g0 + 4, t1);
        for (int64_t t = g0; t < g1; t++) {
            float *x = j->x + (size_t)t * j->x_stride;
            if (j->add) add_row(x, j->add + (size_t)t * (size_t)n, n);
            if (j->up) {
                const float *u = j->up + (size_t)t * j->x_stride;
                if (hp->act_relu2) relu2_gate_row(x, u, n);
                else
                    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i])) * u[i];
            }
        }
        if (j->norm_w) {
            double ss[4];
            if (g1 - g0 == 1) ss[0] = sum_sq(j->x + (size_t)g0 * j->x_stride, n);
            else { /* a short group repeats its last row in the spare chains */
                const float *rows[4];
                for (int u = 0; u < 4; u++) rows[u] = j->x + (size_t)OB_MIN(g0 + u, g1 - 1) * j->x_stride;
                sum_sq4(rows, n, ss);
            }
            for (int64_t t = g0; t < g1; t++)
                rmsnorm_scale(j->y + (size_t)t * j->y_stride, j->x + (size_t)t * j->x_stride, j->norm_w, n,
                              hp->norm_eps, ss[t - g0]);
        }
        if (j->quant)
            for (int64_t t = g0; t < g1; t++) {
                const float *y = j->norm_w ? j->y + (size_t)t * j->y_stride : j->x + (size_t)t * j->x_stride;
                b->xs[t] = quant(y, n, pad, b->xq + (size_t)t * (size_t)pad, &b->xsum[t]);
            }
    }
}

static void prep(cpu_backend *b, const prep_job *j) {
    if (j->n_tok > 1) ob_pool_run(b->pool, prep_task, (void *)j);
    else prep_task((void *)j, 0, 1);
}

/* ---- attention -------------------------------------------------------------- */

/* Work units of one layer's attention. A unit is positions [p0, p1) of one
 * (token, KV head) item; its G query heads share every K/V row load.
 *  - slot < 0: the whole item (p0 = 0, p1 = pos + 1), softmax and values
 *    written straight to b->att: the reference order (the scalar set always
 *    runs this way, so its path stays the specification);
 *  - slot >= 0: a chunk of an item split by positions (SIMD sets, items over
 *    ATT_SPLIT positions): its partial state (max m, sum l of exp(s - m), and
 *    the unnormalized sum of exp(s - m) v) goes to b->att_part[slot], and
 *    attn_merge_task combines an item's chunks in chunk order.
 * Decode at long context has one item per KV head (5 for 2B-4T, split 3:2
 * over 2 threads when whole); chunks balance it. An item is split by its own
 * length only, so a token's output is the same in any batch. */
#define ATT_SPLIT 256

typedef struct attn_unit { int t, kvh, p0, p1, slot; } attn_unit;
typedef struct attn_item { int t, kvh, slot0, n_chunks; } attn_item; /* a split item */

typedef struct attn_job {
    cpu_backend *b;
    int layer;
    const int32_t *pos, *seq;
    int n_units, n_items;
    _Atomic int next_unit;  /* units are claimed one at a time: they vary in cost */
} attn_job;

static size_t att_part_floats(const ob_hparams *hp) {
    return ob_attn_part_floats(hp->n_head / hp->n_head_kv, hp->head_dim);
}

static void attn_task(void *arg, int ith, int nth) {
    attn_job *j = arg;
    cpu_backend *b = j->b;
    const ob_hparams *hp = &b->m->hp;
    int D = hp->head_dim, G = hp->n_head / hp->n_head_kv;
    int64_t Q = (int64_t)hp->n_head * D;
    float *scores = b->scores + (size_t)ith * (size_t)G * (size_t)b->base.n_ctx;
    float scale = 1.0f / sqrtf((float)D);
    ob_type kvt = b->kv_type == OB_KV_F16 ? OB_TYPE_F16 : OB_TYPE_F32;
    ob_attn_scores_fn scores_fn = b->k->attn_scores ? b->k->attn_scores : ob_kernels_scalar.attn_scores;
    ob_attn_values_fn values_fn = b->k->attn_values ? b->k->attn_values : ob_kernels_scalar.attn_values;
    for (int u; (u = atomic_fetch_add_explicit(&j->next_unit, 1, memory_order_relaxed)) < j->n_units;) {
        const attn_unit *un = &b->att_units[u];
        int n = un->p1 - un->p0, seq = j->seq ? j->seq[un->t] : 0;
        size_t off = kv_offset(b, seq, j->layer, un->kvh, un->p0) * b->kv_elem;
        const float *q = b->q + (size_t)un->t * Q + (size_t)un->kvh * G * D;
        if (un->slot >= 0) {
            ob_attn_chunk(b->k, q, G, (const uint8_t *)b->kv_k + off, (const uint8_t *)b->kv_v + off, kvt, (size_t)D, n,
                          D, scale, scores, b->att_part + (size_t)un->slot * att_part_floats(hp));
            continue;
        }
        scores_fn(q, G, (const uint8_t *)b->kv_k + off, kvt, (size_t)D, n, D, scale, scores);
        for (int g = 0; g < G; g++) { /* softmax over positions 0..pos */
            float *sc = scores + (size_t)g * (size_t)n, mx = -INFINITY, sum = 0;
            for (int p = 0; p < n; p++) mx = sc[p] > mx ? sc[p] : mx; /* fmaxf without the libm call */
            for (int p = 0; p < n; p++) { /* exp(-88) is below the smallest float: skip libm's slow path */
                float z = sc[p] - mx;
                sum += (sc[p] = z < -88.0f ? 0.0f : expf(z));
            }
            float inv = 1.0f / sum;
            for (int p = 0; p < n; p++) sc[p] *= inv;
        }
        float *o = b->att + (size_t)un->t * Q + (size_t)un->kvh * G * D;
        values_fn(o, scores, G, (const uint8_t *)b->kv_v + off, kvt, (size_t)D, n, D);
    }
}

/* Each split item's chunks merged in chunk order (ob_attn_merge). */
static void attn_merge_task(void *arg, int ith, int nth) {
    attn_job *j = arg;
    cpu_backend *b = j->b;
    const ob_hparams *hp = &b->m->hp;
    int D = hp->head_dim, G = hp->n_head / hp->n_head_kv;
    int64_t Q = (int64_t)hp->n_head * D, i0, i1;
    ob_split_range(j->n_items, ith, nth, 1, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const attn_item *it = &b->att_items[i];
        ob_attn_merge(b->att_part + (size_t)it->slot0 * att_part_floats(hp), it->n_chunks, G, D,
                      b->att + (size_t)it->t * Q + (size_t)it->kvh * G * D);
    }
}

static void attn_run(cpu_backend *b, attn_job *j) {
    atomic_store_explicit(&j->next_unit, 0, memory_order_relaxed);
    if (j->n_units) ob_pool_run(b->pool, attn_task, j);
    if (j->n_items) ob_pool_run(b->pool, attn_merge_task, j);
    j->n_units = j->n_items = 0;
}

/* Builds the units of every (token, KV head) item and runs them, in waves
 * when the split items' partial states would overflow att_part. */
static void attention(cpu_backend *b, int layer, int n_tok, const int32_t *pos, const int32_t *seq) {
    const ob_hparams *hp = &b->m->hp;
    attn_job j = { .b = b, .layer = layer, .pos = pos, .seq = seq };
    bool split = b->k != &ob_kernels_scalar;
    int slots = 0;
    for (int t = 0; t < n_tok; t++) {
        int n_pos = pos[t] + 1;
        int n_chunks = split && n_pos > ATT_SPLIT ? (n_pos + ATT_SPLIT - 1) / ATT_SPLIT : 1;
        if (n_chunks > 1 && slots + hp->n_head_kv * n_chunks > b->att_slots) {
            attn_run(b, &j);
            slots = 0;
        }
        for (int h = 0; h < hp->n_head_kv; h++) {
            if (n_chunks == 1) {
                b->att_units[j.n_units++] = (attn_unit){ t, h, 0, n_pos, -1 };
                continue;
            }
            b->att_items[j.n_items++] = (attn_item){ t, h, slots, n_chunks };
            for (int c = 0; c < n_chunks; c++) /* even chunks, by the item's length only */
                b->att_units[j.n_units++] = (attn_unit){ t, h, (int)((int64_t)n_pos * c / n_chunks),
                                                         (int)((int64_t)n_pos * (c + 1) / n_chunks), slots++ };
        }
    }
    attn_run(b, &j);
}

/* RoPE on one head vector x[head_dim] with cos/sin pairs cs[rope_dim]. */
static void rope_apply(float *x, const float *cs, int rope_dim, bool neox) {
    int half = rope_dim / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        int a = neox ? i : 2 * i, bb = neox ? i + half : 2 * i + 1;
        float x0 = x[a], x1 = x[bb];
        x[a] = x0 * c - x1 * s;
        x[bb] = x0 * s + x1 * c;
    }
}

/* cos/sin of pos * base^(-2i/rope_dim), with the float32 angle of HF/llama2.c. */
static void rope_table(float *cs, int pos, int rope_dim, float base) {
    for (int i = 0; i < rope_dim / 2; i++) {
        float inv_freq = (float)(1.0 / pow((double)base, (double)(2 * i) / (double)rope_dim));
        float ang = (float)pos * inv_freq;
        cs[2 * i] = (float)cos((double)ang);
        cs[2 * i + 1] = (float)sin((double)ang);
    }
}

/* RoPE on each token's q and k heads, then its K and V appended to its
 * sequence's cache; split over the pool by tokens (all of them must be in
 * the cache before attention, which reads earlier tokens of the chunk). */
typedef struct rope_job {
    cpu_backend *b;
    int layer, n_tok;
    const int32_t *pos, *seq;
} rope_job;

static void rope_kv_task(void *arg, int ith, int nth) {
    const rope_job *j = arg;
    cpu_backend *b = j->b;
    const ob_hparams *hp = &b->m->hp;
    int64_t D = hp->head_dim, Q = (int64_t)hp->n_head * D, KV = b->kv_dim, t0, t1;
    ob_split_range(j->n_tok, ith, nth, 1, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = b->rope_cs + (size_t)t * hp->rope_dim;
        for (int h = 0; h < hp->n_head; h++) rope_apply(b->q + (size_t)t * Q + (size_t)h * D, cs, hp->rope_dim, hp->rope_neox);
        for (int h = 0; h < hp->n_head_kv; h++) rope_apply(b->kx + (size_t)t * KV + (size_t)h * D, cs, hp->rope_dim, hp->rope_neox);
        for (int h = 0; h < hp->n_head_kv; h++) {
            size_t off = kv_offset(b, j->seq ? j->seq[t] : 0, j->layer, h, j->pos[t]);
            const float *k = b->kx + (size_t)t * KV + h * D, *v = b->vx + (size_t)t * KV + h * D;
            if (b->kv_type == OB_KV_F16) {
                uint16_t *kc = (uint16_t *)b->kv_k + off, *vc = (uint16_t *)b->kv_v + off;
                for (int64_t d = 0; d < D; d++) kc[d] = ob_f32_to_f16(k[d]), vc[d] = ob_f32_to_f16(v[d]);
            } else {
                memcpy((float *)b->kv_k + off, k, (size_t)D * sizeof *k);
                memcpy((float *)b->kv_v + off, v, (size_t)D * sizeof *v);
            }
        }
    }
}

/* ---- the forward pass ---------------------------------------------------------- */

static void embed(const cpu_backend *b, int32_t id, float *out) {
    const ob_model *m = b->m;
    ob_tensor_row_f32(m->tok_embd, id, out);
    if (m->tok_embd_scale)
        for (int i = 0; i < m->hp.n_embd; i++) out[i] *= m->tok_embd_scale[id];
}

static ob_status forward_chunk(cpu_backend *b, int T, const int32_t *tok, const int32_t *pos, const int32_t *seq,
                               const uint8_t *want, float *logits, int *n_logits) {
    const ob_model *m = b->m;
    const ob_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    int64_t Q = (int64_t)hp->n_head * D, KV = b->kv_dim, W = b->wide;
    float eps = hp->norm_eps;

    for (int t = 0; t < T; t++) {
        embed(b, tok[t], b->x + (size_t)t * E);
        rope_table(b->rope_cs + (size_t)t * hp->rope_dim, pos[t], hp->rope_dim, hp->rope_base);
    }

    /* The residual of each layer's down projection (b->tmp) is added by the
     * next per-token step: the next layer's attn_norm, or the final norm. */
    for (int l = 0; l < hp->n_layer; l++) {
        const ob_layer *L = &m->layers[l];
        /* attention */
        prep_job pj = { .b = b, .n_tok = T, .n = E, .x = b->x, .x_stride = (size_t)E, .add = l ? b->tmp : NULL,
                        .norm_w = L->attn_norm, .y = b->xn, .y_stride = (size_t)W,
                        .quant = needs_quant(&L->q) || needs_quant(&L->k) || needs_quant(&L->v) };
        prep(b, &pj);
        gemm_part qkv[3] = { { &L->q, b->q, (size_t)Q, NULL }, { &L->k, b->kx, (size_t)KV, NULL },
                             { &L->v, b->vx, (size_t)KV, NULL } };
        linears(b, b->xn, (size_t)W, T, 3, qkv);
        rope_job rj = { b, l, T, pos, seq };
        if (T > 1) ob_pool_run(b->pool, rope_kv_task, &rj);
        else rope_kv_task(&rj, 0, 1);
        attention(b, l, T, pos, seq);
        bool sub = hp->sub_norms;
        pj = (prep_job){ .b = b, .n_tok = T, .n = Q, .x = b->att, .x_stride = (size_t)Q, .norm_w = sub ? L->attn_sub_norm : NULL,
                         .y = b->xn, .y_stride = (size_t)W, .quant = needs_quant(&L->o) };
        prep(b, &pj);
        gemm_part o = { &L->o, b->tmp, (size_t)E, NULL };
        linears(b, sub ? b->xn : b->att, sub ? (size_t)W : (size_t)Q, T, 1, &o);

        /* feed-forward */
        pj = (prep_job){ .b = b, .n_tok = T, .n = E, .x = b->x, .x_stride = (size_t)E, .add = b->tmp, .norm_w = L->ffn_norm,
                         .y = b->xn, .y_stride = (size_t)W, .quant = needs_quant(&L->gate) || needs_quant(&L->up) };
        prep(b, &pj);
        gemm_part gu[2] = { { &L->gate, b->gate, (size_t)F, NULL }, { &L->up, b->up, (size_t)F, NULL } };
        linears(b, b->xn, (size_t)W, T, 2, gu);
        pj = (prep_job){ .b = b, .n_tok = T, .n = F, .x = b->gate, .x_stride = (size_t)F, .up = b->up,
                         .norm_w = sub ? L->ffn_sub_norm : NULL, .y = b->xn, .y_stride = (size_t)W, .quant = needs_quant(&L->down) };
        prep(b, &pj);
        gemm_part down = { &L->down, b->tmp, (size_t)E, NULL };
        linears(b, sub ? b->xn : b->gate, sub ? (size_t)W : (size_t)F, T, 1, &down);
    }

    /* last residual, final norm and lm_head, only for the rows that want
     * logits (compacted to rows 0..n-1 of xn), all of them in one pass over
     * the head's weights */
    int n = 0;
    for (int t = 0; t < T; t++) n += want[t] != 0;
    if (n == T) { /* every row (a batched decode step): one per-token job does it all */
        prep_job pj = { .b = b, .n_tok = T, .n = E, .x = b->x, .x_stride = (size_t)E, .add = b->tmp,
                        .norm_w = m->output_norm, .y = b->xn, .y_stride = (size_t)W, .quant = needs_quant(&m->output) };
        prep(b, &pj);
    } else if (n) { /* a prompt chunk's last token, typically */
        n = 0;
        for (int t = 0; t < T; t++) {
            if (!want[t]) continue;
            float *x = b->x + (size_t)t * E;
            add_row(x, b->tmp + (size_t)t * (size_t)E, E);
            rmsnorm(b->xn + (size_t)n * W, x, m->output_norm, E, eps);
            n++;
        }
        prep_job pj = { .b = b, .n_tok = n, .n = E, .x = b->xn, .x_stride = (size_t)W, .quant = needs_quant(&m->output) };
        prep(b, &pj);
    }
    if (n) {
        gemm_part head = { &m->output, logits, (size_t)hp->n_vocab, m->output_scale };
        linears(b, b->xn, (size_t)W, n, 1, &head);
    }
    *n_logits = n;
    return OB_OK;
}

static ob_status cpu_decode(ob_backend *base, const ob_batch *batch, float *logits) {
    cpu_backend *b = (cpu_backend *)base;
    const ob_hparams *hp = &b->m->hp;
    ob_status st = ob_batch_advance(base, b->seq_len, batch);
    if (st) return st;

    uint8_t want_chunk[MAX_CHUNK];
    float *out = logits;
    for (int c0 = 0; c0 < batch->n; c0 += MAX_CHUNK) {
        int T = OB_MIN(MAX_CHUNK, batch->n - c0);
        for (int t = 0; t < T; t++)
            want_chunk[t] = batch->logits ? batch->logits[c0 + t] != 0 : (c0 + t == batch->n - 1);
        int n_out = 0;
        st = forward_chunk(b, T, batch->token + c0, batch->pos + c0, batch->seq ? batch->seq + c0 : NULL,
                                     want_chunk, out, &n_out);
        if (st) return st;
        if (out) out += (size_t)n_out * (size_t)hp->n_vocab;
    }
    return OB_OK;
}

static ob_status cpu_seq_truncate(ob_backend *base, int seq, int pos) {
    cpu_backend *b = (cpu_backend *)base;
    if (seq < 0 || seq >= b->base.n_seq) return ob_fail(OB_ERR_ARG, "sequence %d out of range", seq);
    if (pos < 0) pos = 0;
    if (pos < b->seq_len[seq]) b->seq_len[seq] = pos;
    return OB_OK;
}

static ob_status cpu_seq_copy(ob_backend *base, int src, int dst, int n) {
    cpu_backend *b = (cpu_backend *)base;
    if (src < 0 || src >= b->base.n_seq || dst < 0 || dst >= b->base.n_seq)
        return ob_fail(OB_ERR_ARG, "sequence out of range");
    if (n > b->seq_len[src]) n = b->seq_len[src];
    if (src == dst) return OB_OK;
    size_t bytes = (size_t)n * (size_t)b->m->hp.head_dim * b->kv_elem;
    for (int l = 0; l < b->m->hp.n_layer; l++)
        for (int h = 0; h < b->m->hp.n_head_kv; h++) {
            memcpy((uint8_t *)b->kv_k + kv_offset(b, dst, l, h, 0) * b->kv_elem,
                   (uint8_t *)b->kv_k + kv_offset(b, src, l, h, 0) * b->kv_elem, bytes);
            memcpy((uint8_t *)b->kv_v + kv_offset(b, dst, l, h, 0) * b->kv_elem,
                   (uint8_t *)b->kv_v + kv_offset(b, src, l, h, 0) * b->kv_elem, bytes);
        }
    b->seq_len[dst] = n;
    return OB_OK;
}

static void cpu_destroy(ob_backend *base) {
    cpu_backend *b = (cpu_backend *)base;
    if (!b) return;
    ob_pool_destroy(b->pool);
    free(b->kv_k);
    free(b->kv_v);
    free(b->seq_len);
    void *bufs[] = { b->x, b->xn, b->q, b->kx, b->vx, b->att, b->gate, b->up, b->tmp,
                     b->xq, b->xs, b->xsum, b->acc, b->scores, b->rope_cs, b->att_part, b->att_units, b->att_items };
    for (size_t i = 0; i < OB_ARRAY_LEN(bufs); i++) ob_aligned_free(bufs[i]);
    free(b);
}

static void *scratch(size_t n, size_t elem, bool *ok) {
    size_t bytes;
    if (!ob_mul_ok(n, elem, &bytes)) { *ok = false; return NULL; }
    void *p = ob_aligned_alloc(bytes);
    if (!p) *ok = false;
    else memset(p, 0, bytes);
    return p;
}

static ob_status cpu_create(const ob_model *m, const ob_backend_params *p, ob_backend **out) {
    *out = NULL;
    const ob_hparams *hp = &m->hp;
    const char *kname = p && p->kernels ? p->kernels : "auto";
    const ob_cpu_kernels *k = ob_cpu_kernels_select(kname);
    if (!k) return ob_fail(OB_ERR_ARG, "CPU kernel set '%s' is unknown or unsupported on this CPU", kname);
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return ob_fail(OB_ERR_NOMEM, "out of memory");
    b->base.ops = &ob_backend_cpu;
    b->base.model = m;
    b->m = m;
    b->k = k;
    b->base.n_ctx = p && p->n_ctx > 0 ? p->n_ctx : hp->n_ctx_train;
    b->base.n_seq = p && p->n_seq > 0 ? p->n_seq : 1;
    if (b->base.n_ctx > (1 << 20) || b->base.n_seq > 4096) {
        ob_status bad = ob_fail(OB_ERR_ARG, "context %d x %d sequences is too large", b->base.n_ctx, b->base.n_seq);
        free(b);
        return bad;
    }
    b->kv_type = p ? p->kv_type : OB_KV_F32;
    b->kv_elem = b->kv_type == OB_KV_F16 ? 2 : 4;
    b->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    ob_status st = ob_pool_create(p ? p->n_threads : 0, &b->pool);
    if (st) {
        free(b);
        return st;
    }
    int64_t Q = (int64_t)hp->n_head * hp->head_dim;
    b->wide = OB_MAX(OB_MAX((int64_t)hp->n_embd, Q), (int64_t)hp->n_ff);
    size_t T = MAX_CHUNK, kv_vals;
    bool ok = ob_mul_ok((size_t)b->base.n_seq * (size_t)hp->n_layer, (size_t)b->base.n_ctx * (size_t)b->kv_dim, &kv_vals);
    if (ok) { /* calloc: untouched cache pages stay unresident */
        b->kv_k = calloc(kv_vals, b->kv_elem);
        b->kv_v = calloc(kv_vals, b->kv_elem);
        ok = b->kv_k && b->kv_v;
    }
    b->seq_len = calloc((size_t)b->base.n_seq, sizeof *b->seq_len);
    if (!b->seq_len) ok = false;
    b->x = scratch(T * (size_t)hp->n_embd, 4, &ok);
    b->xn = scratch(T * (size_t)b->wide, 4, &ok);
    b->q = scratch(T * (size_t)Q, 4, &ok);
    b->kx = scratch(T * (size_t)b->kv_dim, 4, &ok);
    b->vx = scratch(T * (size_t)b->kv_dim, 4, &ok);
    b->att = scratch(T * (size_t)Q, 4, &ok);
    b->gate = scratch(T * (size_t)hp->n_ff, 4, &ok);
    b->up = scratch(T * (size_t)hp->n_ff, 4, &ok);
    b->tmp = scratch(T * (size_t)hp->n_embd, 4, &ok);
    b->xq = scratch(T * (size_t)ob_act_pad(b->wide), 1, &ok);
    b->xs = scratch(T, 4, &ok);
    b->xsum = scratch(T, 4, &ok);
    b->acc = scratch((size_t)ob_pool_size(b->pool) * ACC_CAP, 4, &ok);
    b->scores = scratch((size_t)ob_pool_size(b->pool) * (size_t)(hp->n_head / hp->n_head_kv) * (size_t)b->base.n_ctx, 4, &ok);
    b->rope_cs = scratch(T * (size_t)hp->rope_dim, 4, &ok);
    /* room for at least one token's split items at full context */
    b->att_slots = OB_MAX(1024, hp->n_head_kv * ((b->base.n_ctx + ATT_SPLIT - 1) / ATT_SPLIT));
    b->att_part = scratch((size_t)b->att_slots, att_part_floats(hp) * sizeof(float), &ok);
    b->att_units = scratch(T * (size_t)hp->n_head_kv + (size_t)b->att_slots, sizeof(attn_unit), &ok);
    b->att_items = scratch((size_t)b->att_slots, sizeof(attn_item), &ok);
    if (!ok) {
        cpu_destroy(&b->base);
        return ob_fail(OB_ERR_NOMEM, "cannot allocate the KV cache and buffers (context %d, %d sequences)",
                       p && p->n_ctx > 0 ? p->n_ctx : hp->n_ctx_train, p && p->n_seq > 0 ? p->n_seq : 1);
    }
    *out = &b->base;
    return OB_OK;
}

const ob_backend_ops ob_backend_cpu = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .seq_truncate = cpu_seq_truncate,
    .seq_copy = cpu_seq_copy,
    .decode = cpu_decode,
    .decode_argmax = NULL,
};
