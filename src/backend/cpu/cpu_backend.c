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
 * Work is split across a persistent thread pool by output rows (GEMMs) or by
 * (token, head) pairs (attention). */
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "core/threadpool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNK 256   /* tokens per forward chunk (bounds scratch memory) */
#define ROW_ALIGN 16    /* rows per work unit: 64 bytes of f32 output */

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
    int32_t *xsum, *acc;    /* [T], [T][max(out)] */
    float *scores;          /* [n_threads][n_ctx] attention scratch */
    float *rope_cs;         /* [T][rope_dim] cos, sin pairs */
} cpu_backend;

/* ---- helpers -------------------------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static inline void kv_put(const cpu_backend *b, void *base, size_t i, float v) {
    if (b->kv_type == OB_KV_F16) ((uint16_t *)base)[i] = ob_f32_to_f16(v);
    else ((float *)base)[i] = v;
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
} gemm_job;

/* Rows [r0, r1) of one part; acc is this part's [n_tok][out] int32 area. */
static void gemm_rows(const gemm_job *j, const gemm_part *pt, int32_t *acc, int64_t r0, int64_t r1) {
    cpu_backend *b = j->b;
    const ob_linear *l = pt->lin;
    int64_t in_pad = ob_act_pad(l->in);
    size_t acc_stride = (size_t)l->out;
    switch (l->w->type) {
    case OB_TYPE_T2:
    case OB_TYPE_I8:
        if (l->w->type == OB_TYPE_T2)
            b->k->t2_gemm(l->w->data, ob_type_row_bytes(OB_TYPE_T2, l->in), r0, r1, b->xq, (size_t)in_pad, b->xsum,
                          j->n_tok, acc, acc_stride);
        else
            b->k->i8_gemm(l->w->data, l->in, r0, r1, b->xq, (size_t)in_pad, j->n_tok, acc, acc_stride);
        for (int t = 0; t < j->n_tok; t++) {
            const int32_t *a = acc + (size_t)t * acc_stride;
            float *o = pt->out + (size_t)t * pt->out_stride;
            float inv_s = 1.0f / b->xs[t];
            for (int64_t r = r0; r < r1; r++) {
                float beta = l->w->type == OB_TYPE_I8 ? pt->row_scale[r] : l->scale[l->n_scale == 1 ? 0 : r];
                o[r] = (float)a[r] * inv_s * beta;
            }
        }
        break;
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

static void gemm_task(void *arg, int ith, int nth) {
    gemm_job *j = arg;
    int64_t total = 0;
    for (int p = 0; p < j->n_parts; p++) total += j->part[p].lin->out;
    int64_t g0, g1, base = 0;
    ob_split_range(total, ith, nth, ROW_ALIGN, &g0, &g1);
    int32_t *acc = j->b->acc;
    for (int p = 0; p < j->n_parts && g0 < g1; p++) {
        int64_t out = j->part[p].lin->out;
        int64_t r0 = OB_MAX(g0, base) - base, r1 = OB_MIN(g1, base + out) - base;
        if (r0 < r1) gemm_rows(j, &j->part[p], acc, r0, r1);
        acc += (size_t)j->n_tok * (size_t)out;
        base += out;
    }
}

/* Quantizes n_tok rows of `in` (n values each, stride in_stride) into b->xq. */
static void quantize_rows(cpu_backend *b, const float *in, size_t in_stride, int64_t n, int n_tok) {
    int64_t pad = ob_act_pad(n);
    ob_quantize_i8_fn quant = b->k->quantize_i8 ? b->k->quantize_i8 : ob_quantize_row_i8; /* bit-identical */
    for (int t = 0; t < n_tok; t++)
        b->xs[t] = quant(in + (size_t)t * in_stride, n, pad, b->xq + (size_t)t * pad, &b->xsum[t]);
}

static bool needs_quant(const ob_linear *l) { return l->w->type == OB_TYPE_T2 || l->w->type == OB_TYPE_I8; }

/* part[i].out = part[i].lin(in) for every part. Quantized weights read the
 * activations quantized once here (shared by all parts). */
static void linears(cpu_backend *b, const float *in, size_t in_stride, int64_t n_in, int n_tok, int n_parts,
                    const gemm_part *parts) {
    bool q = false;
    for (int p = 0; p < n_parts; p++) q |= needs_quant(parts[p].lin);
    if (q) quantize_rows(b, in, in_stride, n_in, n_tok);
    gemm_job j = { b, n_tok, in, in_stride, n_parts, { { 0 } } };
    memcpy(j.part, parts, (size_t)n_parts * sizeof *parts);
    ob_pool_run(b->pool, gemm_task, &j);
}

/* ---- attention -------------------------------------------------------------- */

typedef struct attn_job {
    cpu_backend *b;
    int layer, n_tok;
    const int32_t *pos, *seq;
} attn_job;

/* One work item = (token, KV head): its G query heads share every K/V row. */
static void attn_task(void *arg, int ith, int nth) {
    attn_job *j = arg;
    cpu_backend *b = j->b;
    const ob_hparams *hp = &b->m->hp;
    int D = hp->head_dim, G = hp->n_head / hp->n_head_kv;
    int64_t Q = (int64_t)hp->n_head * D;
    size_t n_ctx = (size_t)b->base.n_ctx;
    float *scores = b->scores + (size_t)ith * (size_t)G * n_ctx;
    float scale = 1.0f / sqrtf((float)D);
    ob_type kvt = b->kv_type == OB_KV_F16 ? OB_TYPE_F16 : OB_TYPE_F32;
    ob_attn_scores_fn scores_fn = b->k->attn_scores ? b->k->attn_scores : ob_kernels_scalar.attn_scores;
    ob_attn_values_fn values_fn = b->k->attn_values ? b->k->attn_values : ob_kernels_scalar.attn_values;
    int64_t items = (int64_t)j->n_tok * hp->n_head_kv, i0, i1;
    ob_split_range(items, ith, nth, 1, &i0, &i1);
    for (int64_t it = i0; it < i1; it++) {
        int t = (int)(it / hp->n_head_kv), kvh = (int)(it % hp->n_head_kv);
        int n_pos = j->pos[t] + 1, seq = j->seq ? j->seq[t] : 0;
        size_t head_off = kv_offset(b, seq, j->layer, kvh, 0) * b->kv_elem;
        const float *q = b->q + (size_t)t * Q + (size_t)kvh * G * D;
        scores_fn(q, G, (const uint8_t *)b->kv_k + head_off, kvt, (size_t)D, n_pos, D, scale, scores);
        for (int g = 0; g < G; g++) { /* softmax over positions 0..pos */
            float *sc = scores + (size_t)g * (size_t)n_pos, mx = -INFINITY, sum = 0;
            for (int p = 0; p < n_pos; p++) mx = fmaxf(mx, sc[p]);
            for (int p = 0; p < n_pos; p++) { /* exp(-88) is below the smallest float: skip libm's slow path */
                float z = sc[p] - mx;
                sum += (sc[p] = z < -88.0f ? 0.0f : expf(z));
            }
            float inv = 1.0f / sum;
            for (int p = 0; p < n_pos; p++) sc[p] *= inv;
        }
        float *o = b->att + (size_t)t * Q + (size_t)kvh * G * D;
        values_fn(o, scores, G, (const uint8_t *)b->kv_v + head_off, kvt, (size_t)D, n_pos, D);
    }
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

    for (int l = 0; l < hp->n_layer; l++) {
        const ob_layer *L = &m->layers[l];
        /* attention */
        for (int t = 0; t < T; t++) rmsnorm(b->xn + (size_t)t * W, b->x + (size_t)t * E, L->attn_norm, E, eps);
        gemm_part qkv[3] = { { &L->q, b->q, (size_t)Q, NULL }, { &L->k, b->kx, (size_t)KV, NULL },
                             { &L->v, b->vx, (size_t)KV, NULL } };
        linears(b, b->xn, (size_t)W, E, T, 3, qkv);
        for (int t = 0; t < T; t++) {
            const float *cs = b->rope_cs + (size_t)t * hp->rope_dim;
            for (int h = 0; h < hp->n_head; h++) rope_apply(b->q + (size_t)t * Q + (size_t)h * D, cs, hp->rope_dim, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++) rope_apply(b->kx + (size_t)t * KV + (size_t)h * D, cs, hp->rope_dim, hp->rope_neox);
            for (int h = 0; h < hp->n_head_kv; h++) {
                size_t off = kv_offset(b, seq ? seq[t] : 0, l, h, pos[t]);
                for (int64_t d = 0; d < D; d++) {
                    kv_put(b, b->kv_k, off + (size_t)d, b->kx[(size_t)t * KV + h * D + d]);
                    kv_put(b, b->kv_v, off + (size_t)d, b->vx[(size_t)t * KV + h * D + d]);
                }
            }
        }
        attn_job aj = { b, l, T, pos, seq };
        ob_pool_run(b->pool, attn_task, &aj);
        const float *o_in = b->att;
        size_t o_stride = (size_t)Q;
        if (hp->sub_norms) {
            for (int t = 0; t < T; t++) rmsnorm(b->xn + (size_t)t * W, b->att + (size_t)t * Q, L->attn_sub_norm, Q, eps);
            o_in = b->xn;
            o_stride = (size_t)W;
        }
        gemm_part o = { &L->o, b->tmp, (size_t)E, NULL };
        linears(b, o_in, o_stride, Q, T, 1, &o);
        for (size_t i = 0; i < (size_t)T * (size_t)E; i++) b->x[i] += b->tmp[i];

        /* feed-forward */
        for (int t = 0; t < T; t++) rmsnorm(b->xn + (size_t)t * W, b->x + (size_t)t * E, L->ffn_norm, E, eps);
        gemm_part gu[2] = { { &L->gate, b->gate, (size_t)F, NULL }, { &L->up, b->up, (size_t)F, NULL } };
        linears(b, b->xn, (size_t)W, E, T, 2, gu);
        for (size_t i = 0; i < (size_t)T * (size_t)F; i++) {
            float g = b->gate[i];
            float a = hp->act_relu2 ? (g > 0 ? g * g : 0.0f) : g / (1.0f + expf(-g));
            b->gate[i] = a * b->up[i];
        }
        const float *d_in = b->gate;
        size_t d_stride = (size_t)F;
        if (hp->sub_norms) {
            for (int t = 0; t < T; t++) rmsnorm(b->xn + (size_t)t * W, b->gate + (size_t)t * F, L->ffn_sub_norm, F, eps);
            d_in = b->xn;
            d_stride = (size_t)W;
        }
        gemm_part down = { &L->down, b->tmp, (size_t)E, NULL };
        linears(b, d_in, d_stride, F, T, 1, &down);
        for (size_t i = 0; i < (size_t)T * (size_t)E; i++) b->x[i] += b->tmp[i];
    }

    /* final norm and lm_head, only for the rows that want logits */
    int n = 0;
    for (int t = 0; t < T; t++) {
        if (!want[t]) continue;
        rmsnorm(b->xn + (size_t)n * W, b->x + (size_t)t * E, m->output_norm, E, eps);
        n++;
    }
    /* The head's int32 accumulators ([g][n_vocab]) must fit b->acc ([MAX_CHUNK][wide]). */
    int g = (int)OB_MAX(1, (int64_t)MAX_CHUNK * W / hp->n_vocab);
    for (int t0 = 0; t0 < n; t0 += g) {
        int gn = OB_MIN(g, n - t0);
        const float *in = b->xn + (size_t)t0 * W;
        gemm_part head = { &m->output, logits + (size_t)t0 * hp->n_vocab, (size_t)hp->n_vocab, m->output_scale };
        linears(b, in, (size_t)W, E, gn, 1, &head);
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
                     b->xq, b->xs, b->xsum, b->acc, b->scores, b->rope_cs };
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
    /* int32 accumulators of one fused group: [T][q + k + v] or [T][gate + up] */
    size_t acc_w = (size_t)OB_MAX(OB_MAX(Q + 2 * b->kv_dim, 2 * (int64_t)hp->n_ff), (int64_t)hp->n_embd);
    b->acc = scratch(OB_MAX(T * acc_w, (size_t)hp->n_vocab), 4, &ok);
    b->scores = scratch((size_t)ob_pool_size(b->pool) * (size_t)(hp->n_head / hp->n_head_kv) * (size_t)b->base.n_ctx, 4, &ok);
    b->rope_cs = scratch(T * (size_t)hp->rope_dim, 4, &ok);
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
