/* The CUDA backend: the forward pass of backend/cpu/cpu_backend.c on the GPU.
 *
 * Weights are uploaded once (cuda_internal.h has the layouts): q|k|v fused
 * into one linear, gate/up interleaved into one with the activation in its
 * epilogue, o and down adding into the residual stream. Every linear fuses
 * the RMSNorm and int8 quantization of its input into its own prologue, so a
 * layer is 5 kernels: qkv, RoPE + KV append, attention (split-KV with the
 * merge done by the last block), o (+residual), gate/up (+act), down
 * (+residual); then the final norm + lm_head with a fused argmax.
 *
 * Decode of one token is one CUDA graph, captured on first use and replayed
 * per token: it reads the token, position and sequence from device memory, so
 * the host only copies 12 bytes in and the argmax id (or the logits) out.
 * Batches of more tokens (prompts) run the same kernels eagerly, with the
 * ternary linears on tensor cores (quantize rows once, mma GEMM) and, for one
 * sequence at consecutive positions, a tensor-core causal flash attention.
 * OB_CUDA_MEGA=1 replaces a single-token step's layers by the persistent
 * kernel of decode_step.cu (measured slower so far; kept for that work).
 *
 * The KV cache holds f16 or f32 as kv_type asks, like the CPU's. */
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/ob_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_TOKENS 512  /* tokens per eager forward chunk (bounds scratch memory) */
#define MAX_SPLIT 32      /* KV splits of the decode attention */

static ob_status cu_fail(cudaError_t e, const char *what) {
    return ob_fail(OB_ERR_BACKEND, "CUDA: %s: %s", what, cudaGetErrorString(e));
}
#define CK(call)                                      \
    do {                                              \
        cudaError_t e_ = (call);                      \
        if (e_ != cudaSuccess) return cu_fail(e_, #call); \
    } while (0)

/* ---- device allocations, freed together ------------------------------------ */

typedef struct cu_mem {
    void **p;
    size_t n, cap;
} cu_mem;

static void *dev_alloc(cu_mem *mm, size_t bytes) {
    if (mm->n == mm->cap) {
        size_t cap = mm->cap ? mm->cap * 2 : 64;
        void **p = (void **)realloc(mm->p, cap * sizeof *p);
        if (!p) return NULL;
        mm->p = p;
        mm->cap = cap;
    }
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 16) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    mm->p[mm->n++] = d;
    return d;
}
static void cu_mem_free(cu_mem *mm) {
    for (size_t i = 0; i < mm->n; i++) cudaFree(mm->p[i]);
    free(mm->p);
    memset(mm, 0, sizeof *mm);
}
static ob_status oom(size_t bytes) {
    return ob_fail(OB_ERR_NOMEM, "CUDA: cannot allocate %.1f MB of device memory", (double)bytes / 1e6);
}
static ob_status upload(cu_mem *mm, const void *src, size_t bytes, void **out) {
    void *d = dev_alloc(mm, bytes);
    if (!d) return oom(bytes);
    CK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
    *out = d;
    return OB_OK;
}

/* ---- weight upload ----------------------------------------------------------- */

static bool is_float_type(ob_type t) { return t == OB_TYPE_F32 || t == OB_TYPE_F16 || t == OB_TYPE_BF16; }
static int kind_of(ob_type t) {
    return t == OB_TYPE_F16 ? CU_W_F16 : t == OB_TYPE_BF16 ? CU_W_BF16 : CU_W_F32;
}

/* Source (part, row) of physical row p, or part -1 for padding. */
static void phys_source(int p, int glu, const ob_linear *parts, int n_parts, int n_out, int *part, int64_t *row) {
    *part = -1;
    *row = 0;
    if (glu) {
        int g = p / 16, w = p % 16;
        int64_t lr = (int64_t)g * 8 + (w % 8);
        if (lr < n_out) {
            *part = w < 8 ? 0 : 1;
            *row = lr;
        }
        return;
    }
    int64_t r = p;
    for (int i = 0; i < n_parts; i++) {
        if (r < parts[i].out) {
            *part = i;
            *row = r;
            return;
        }
        r -= parts[i].out;
    }
}

/* Uploads parts as one fused linear (see cuda_internal.h). row_scale: per-row
 * scales of an I8 linear (NULL otherwise). */
static ob_status upload_linear(cu_mem *mm, const ob_linear *parts, int n_parts, int glu, int epi,
                               const float *row_scale, cu_linear *out) {
    memset(out, 0, sizeof *out);
    int64_t K = parts[0].in, n_out = 0;
    ob_type t0 = parts[0].w->type;
    bool same = true;
    for (int i = 0; i < n_parts; i++) {
        if (parts[i].in != K) return ob_fail(OB_ERR_FORMAT, "fused linear parts differ in input size");
        if (parts[i].w->type != t0) same = false;
        n_out = glu ? parts[0].out : n_out + parts[i].out;
    }
    if (glu && (n_parts != 2 || parts[1].out != parts[0].out))
        return ob_fail(OB_ERR_FORMAT, "gate and up projections differ in shape");
    if (K > (1 << 24) || n_out > (1 << 24)) return ob_fail(OB_ERR_UNSUPPORTED, "linear too large for the CUDA backend");
    int64_t n_phys = glu ? (n_out + 7) / 8 * 16 : (n_out + 15) / 16 * 16;
    out->n_phys = (int)n_phys;
    out->n_out = (int)n_out;
    out->K = (int)K;
    out->epi = epi;

    /* host map: physical row -> (part, row) */
    int *mp = (int *)malloc((size_t)n_phys * sizeof *mp);
    int64_t *mr = (int64_t *)malloc((size_t)n_phys * sizeof *mr);
    float *beta = (float *)calloc((size_t)n_phys, sizeof *beta);
    ob_status st = OB_OK;
    void *tmp = NULL, *host = NULL;
    cudaError_t ce = cudaSuccess;
    if (!mp || !mr || !beta) {
        st = ob_fail(OB_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t p = 0; p < n_phys; p++) phys_source((int)p, glu, parts, n_parts, (int)n_out, &mp[p], &mr[p]);

    if (t0 == OB_TYPE_T2) {
        if (!same) {
            st = ob_fail(OB_ERR_UNSUPPORTED, "CUDA: a fused linear mixes ternary and float parts");
            goto done;
        }
        size_t rb = ob_type_row_bytes(OB_TYPE_T2, K), total = 0, off[4] = { 0 };
        for (int i = 0; i < n_parts; i++) {
            off[i] = total;
            total += rb * (size_t)parts[i].out;
        }
        out->kind = CU_W_T2;
        out->ld = (int)ob_act_pad(K);
        for (int64_t p = 0; p < n_phys; p++) {
            if (mp[p] < 0) continue;
            const ob_linear *l = &parts[mp[p]];
            beta[p] = l->scale[l->n_scale == 1 ? 0 : mr[p]];
            mr[p] = (int64_t)(off[mp[p]] + (size_t)mr[p] * rb);
        }
        for (int64_t p = 0; p < n_phys; p++)
            if (mp[p] < 0) mr[p] = -1;
        size_t wbytes = (size_t)n_phys * (size_t)out->ld / 4;
        out->w = dev_alloc(mm, wbytes);
        if (!out->w) {
            st = oom(wbytes);
            goto done;
        }
        if ((ce = cudaMalloc(&tmp, total + (size_t)n_phys * sizeof(int64_t))) != cudaSuccess) {
            tmp = NULL;
            st = cu_fail(ce, "cudaMalloc (weight staging)");
            goto done;
        }
        for (int i = 0; i < n_parts && ce == cudaSuccess; i++)
            ce = cudaMemcpy((uint8_t *)tmp + off[i], parts[i].w->data, rb * (size_t)parts[i].out,
                            cudaMemcpyHostToDevice);
        int64_t *dmap = (int64_t *)((uint8_t *)tmp + total);
        if (ce == cudaSuccess) ce = cudaMemcpy(dmap, mr, (size_t)n_phys * sizeof *mr, cudaMemcpyHostToDevice);
        if (ce == cudaSuccess) ce = cu_pack_t2((const uint8_t *)tmp, dmap, (int)n_phys, (int)K, out->ld, rb, out->w, 0);
        if (ce == cudaSuccess) ce = cudaDeviceSynchronize();
        if (ce != cudaSuccess) {
            st = cu_fail(ce, "ternary weight upload");
            goto done;
        }
    } else if (t0 == OB_TYPE_I8) {
        if (n_parts != 1 || !row_scale) {
            st = ob_fail(OB_ERR_UNSUPPORTED, "CUDA: int8 weights only as a single linear with row scales");
            goto done;
        }
        out->kind = CU_W_I8;
        out->ld = (int)((K + 15) / 16 * 16);
        for (int64_t p = 0; p < n_out; p++) beta[p] = row_scale[p];
        size_t bytes = (size_t)n_phys * (size_t)out->ld;
        out->w = dev_alloc(mm, bytes);
        if (!out->w) {
            st = oom(bytes);
            goto done;
        }
        if ((ce = cudaMemset(out->w, 0, bytes)) == cudaSuccess)
            ce = cudaMemcpy2D(out->w, (size_t)out->ld, parts[0].w->data, (size_t)K, (size_t)K, (size_t)n_out,
                              cudaMemcpyHostToDevice);
        if (ce != cudaSuccess) {
            st = cu_fail(ce, "int8 weight upload");
            goto done;
        }
    } else {
        /* Float weights: kept in their type when all parts share one of
         * F32/F16/BF16; otherwise (Q8_0, mixed) converted to F32 exactly. */
        bool native = same && is_float_type(t0);
        out->kind = native ? kind_of(t0) : CU_W_F32;
        size_t elt = out->kind == CU_W_F32 ? 4 : 2, rowb = (size_t)K * elt, bytes = (size_t)n_phys * rowb;
        out->ld = (int)K;
        out->w = dev_alloc(mm, bytes);
        if (!out->w) {
            st = oom(bytes);
            goto done;
        }
        if (native && n_parts == 1) { /* the big lm_head: no host staging */
            ce = cudaMemcpy(out->w, parts[0].w->data, (size_t)n_out * rowb, cudaMemcpyHostToDevice);
            if (ce == cudaSuccess && n_phys > n_out)
                ce = cudaMemset((uint8_t *)out->w + (size_t)n_out * rowb, 0, (size_t)(n_phys - n_out) * rowb);
        } else {
            host = calloc((size_t)n_phys, rowb);
            if (!host) {
                st = ob_fail(OB_ERR_NOMEM, "out of memory");
                goto done;
            }
            for (int64_t p = 0; p < n_phys && st == OB_OK; p++) {
                if (mp[p] < 0) continue;
                const ob_tensor *w = parts[mp[p]].w;
                uint8_t *dst = (uint8_t *)host + (size_t)p * rowb;
                if (native) memcpy(dst, (const uint8_t *)w->data + (size_t)mr[p] * rowb, rowb);
                else st = ob_tensor_row_f32(w, mr[p], (float *)dst);
            }
            if (st == OB_OK) ce = cudaMemcpy(out->w, host, bytes, cudaMemcpyHostToDevice);
        }
        if (st == OB_OK && ce != cudaSuccess) st = cu_fail(ce, "float weight upload");
        if (st) goto done;
    }
    if (out->kind == CU_W_T2 || out->kind == CU_W_I8) {
        void *d;
        if ((st = upload(mm, beta, (size_t)n_phys * sizeof *beta, &d))) goto done;
        out->beta = (float *)d;
    }
done:
    if (tmp) cudaFree(tmp);
    free(host);
    free(mp);
    free(mr);
    free(beta);
    return st;
}

/* Token embedding: shares the lm_head's device copy when tied and identical. */
static ob_status upload_embed(cu_mem *mm, const ob_model *m, const cu_linear *head, cu_embed *E) {
    const ob_tensor *t = m->tok_embd;
    int64_t V = m->hp.n_vocab, D = m->hp.n_embd;
    memset(E, 0, sizeof *E);
    E->n_vocab = (int)V;
    E->n_embd = (int)D;
    if (t == m->output.w && is_float_type(t->type) && head->kind == kind_of(t->type) && head->ld == D) {
        E->kind = head->kind;
        E->w = head->w;
        E->ld = (int)D;
        return OB_OK;
    }
    void *d;
    ob_status st;
    if (is_float_type(t->type) || t->type == OB_TYPE_I8) {
        E->kind = t->type == OB_TYPE_I8 ? CU_W_I8 : kind_of(t->type);
        E->ld = (int)D;
        if ((st = upload(mm, t->data, t->nbytes, &d))) return st;
        E->w = d;
        if (t->type == OB_TYPE_I8) {
            const ob_tensor *s = ob_model_file_find(&m->file, "token_embd.scale");
            if (!s || s->type != OB_TYPE_F32 || s->ne[0] != V)
                return ob_fail(OB_ERR_FORMAT, "int8 token embedding without token_embd.scale");
            if ((st = upload(mm, s->data, (size_t)V * sizeof(float), &d))) return st;
            E->scale = (const float *)d;
        }
        return OB_OK;
    }
    /* Q8_0 and anything else readable: exact f32 rows */
    size_t bytes = (size_t)V * (size_t)D * sizeof(float);
    float *host = (float *)malloc(bytes);
    if (!host) return ob_fail(OB_ERR_NOMEM, "out of memory");
    st = OB_OK;
    for (int64_t r = 0; r < V && st == OB_OK; r++) st = ob_tensor_row_f32(t, r, host + (size_t)r * D);
    if (st == OB_OK) st = upload(mm, host, bytes, &d);
    free(host);
    if (st) return st;
    E->kind = CU_W_F32;
    E->ld = (int)D;
    E->w = d;
    return OB_OK;
}

/* ---- the backend object ------------------------------------------------------- */

enum { PROF_START, PROF_EMBED, PROF_QKV, PROF_ROPE, PROF_ATTN, PROF_O, PROF_GU, PROF_DOWN, PROF_HEAD, PROF_KINDS };
static const char *const prof_names[PROF_KINDS] = { "", "embed", "qkv", "rope+kv", "attention", "o", "gate/up", "down", "head" };

typedef struct cuda_backend {
    ob_backend base;
    const ob_model *m;
    cudaStream_t st;
    cu_mem mem;
    cu_layer *L;
    cu_linear head;
    const float *out_norm;
    cu_embed emb;
    cu_attn attn;            /* geometry; k, v, part, count set per layer/call */
    uint8_t *kc, *vc;        /* [n_layer][n_seq][n_ctx][kv_dim] of kv_elem bytes */
    size_t layer_stride;     /* elements per layer of the cache */
    size_t kv_elem;          /* 2 (f16) or 4 (f32) */
    int *seq_len;            /* host: cached positions per sequence */
    int nqkv, Q, E, F;

    /* scratch for up to CHUNK_TOKENS tokens */
    float *h, *qkv, *qr, *att, *mb, *xsel, *logits, *part;
    int8_t *q8;
    float *qs;
    int *qsum;
    unsigned *count;
    unsigned long long *amax;
    int32_t *d_io;           /* [3][CHUNK_TOKENS]: token, pos, seq */
    int32_t *d_step;         /* [3]: the graph's token, pos, seq */
    int32_t *h_io;           /* pinned mirror of d_io (+3 for d_step) */
    unsigned long long *h_amax; /* pinned [CHUNK_TOKENS] */
    int part_rows;           /* (token, split) pairs the partial buffer holds */
    int n_split_decode;
    cudaGraphExec_t graph;
    cu_mega mega;            /* the persistent decode step (decode_step.cu) */
    bool use_mega;           /* single-token steps run through it */
    bool prompt_tc;          /* prompt chunks use the tensor-core attention (OB_CUDA_PROMPT_TC=0: off) */
    cu_lt *lt;               /* cuBLASLt prefill GEMMs (NULL: k_gemm_t2 only), see setup_lt */
    int lt_min_tok;          /* ... for chunks of this many tokens or more */

    /* OB_CUDA_PROFILE=1: decode steps run eagerly with an event after every
     * kernel, and the time per kernel kind is logged (INFO) every 64 steps. */
    bool prof;
    cudaEvent_t ev[1024];
    int ev_kind[1024], n_ev;
    double prof_ms[PROF_KINDS];
    int prof_steps;
    unsigned long long *h_stamps; /* persistent step's phase stamps (host copy) */
    double stamp_us[6][3];        /* per phase kind: mean and max block time, wall time */

    /* OB_CUDA_TIMELINE=file in a diagnostic build (timeline.cuh): every
     * 64th decode graph step (the 33rd, 97th, ...) appends its per-block
     * records to the file */
    const char *tl_path;
    cu_tl_rec *tl_buf, *h_tl;
    int tl_step;
    bool tl_on;
} cuda_backend;

#define TL_CAP 65536 /* records of one step: 2B-4T takes about 27k */

static ob_status tl_before(cuda_backend *b) {
    if (!b->tl_path) return OB_OK;
    b->tl_on = b->tl_step++ % 64 == 32;
    if (b->tl_on) CK(cu_timeline_arm(b->tl_buf, TL_CAP, b->st));
    return OB_OK;
}

/* The step's records, after a header record (tag CU_TL_STEP, block = step,
 * grid = position, smid = count), appended to the file. */
static ob_status tl_after(cuda_backend *b) {
    if (!b->tl_on) return OB_OK;
    unsigned n = 0;
    CK(cu_timeline_count(&n, b->st));
    CK(cu_timeline_arm(NULL, 0, b->st));
    CK(cudaStreamSynchronize(b->st));
    if (n > TL_CAP) n = TL_CAP;
    CK(cudaMemcpy(b->h_tl, b->tl_buf, (size_t)n * sizeof(cu_tl_rec), cudaMemcpyDeviceToHost));
    cu_tl_rec hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.tag = CU_TL_STEP, hdr.block = (unsigned)b->tl_step - 1, hdr.grid = (unsigned)b->h_io[3 * CHUNK_TOKENS + 1];
    hdr.smid = n;
    FILE *f = fopen(b->tl_path, "ab");
    if (!f) return ob_fail(OB_ERR_IO, "cannot open %s", b->tl_path);
    bool ok = fwrite(&hdr, sizeof hdr, 1, f) == 1 && fwrite(b->h_tl, sizeof(cu_tl_rec), n, f) == n;
    if (fclose(f) || !ok) return ob_fail(OB_ERR_IO, "cannot write %s", b->tl_path);
    b->tl_on = false;
    return OB_OK;
}

static void prof_mark(cuda_backend *b, int kind) {
    if (!b->prof || b->n_ev >= (int)OB_ARRAY_LEN(b->ev)) return;
    b->ev_kind[b->n_ev] = kind;
    cudaEventRecord(b->ev[b->n_ev++], b->st);
}

static bool use_lt(const cuda_backend *b, const cu_linear *L, int n) {
    return b->lt && L && L->kind == CU_W_T2 && L->w8 && n >= b->lt_min_tok;
}

/* y = L(in) for n tokens. gemm: the prefill path for ternary weights. */
static cudaError_t run_linear(cuda_backend *b, const cu_linear *L, const cu_input *in, int n, float *y, int ldy,
                              bool gemm, unsigned long long *amax) {
    if (gemm && L->kind == CU_W_T2) {
        cudaError_t e = cu_norm_quant(in, L->K, L->ld, n, b->q8, b->qs, b->qsum, b->st);
        if (e != cudaSuccess) return e;
        if (use_lt(b, L, n)) return cu_gemm_lt(b->lt, L, b->q8, b->qs, n, y, ldy, b->st);
        return cu_gemm_t2(L, b->q8, b->qs, b->qsum, n, y, ldy, b->st);
    }
    return cu_gemv(L, in, n, y, ldy, amax, b->st);
}

/* Enqueues the forward pass of n tokens (ids/positions/sequences at tok/pos/
 * seq on the device) through every layer into b->h. run_p0 >= 0: the tokens
 * are positions run_p0, run_p0 + 1, ... of sequence run_seq (a prompt chunk),
 * which the tensor-core attention takes where it can. */
static cudaError_t enqueue_layers(cuda_backend *b, int n, const int32_t *tok, const int32_t *pos, const int32_t *seq,
                                  int n_split, bool gemm, int run_p0, int run_seq) {
    const ob_hparams *hp = &b->m->hp;
    float eps = hp->norm_eps;
    prof_mark(b, PROF_START);
    cudaError_t e = cu_embed_rows(&b->emb, tok, n, b->h, b->amax, b->st);
    prof_mark(b, PROF_EMBED);
    cu_attn A = b->attn;
    A.n_split = n_split;
    A.part = b->part;
    A.count = b->count;
    for (int l = 0; l < hp->n_layer && e == cudaSuccess; l++) {
        const cu_layer *L = &b->L[l];
        A.k = b->kc + (size_t)l * b->layer_stride * b->kv_elem;
        A.v = b->vc + (size_t)l * b->layer_stride * b->kv_elem;
        cu_input in = { b->h, b->E, L->attn_norm, eps };
        e = run_linear(b, &L->qkv, &in, n, b->qkv, b->nqkv, gemm, NULL);
        prof_mark(b, PROF_QKV);
        if (n == 1) { /* one token: RoPE and the KV append fused into attention */
            A.fuse_rope = 1;
            A.ldqkv = b->nqkv;
            if (e == cudaSuccess) e = cu_attention(&A, b->qkv, pos, seq, n, b->att, b->st);
        } else {
            A.fuse_rope = 0;
            if (e == cudaSuccess) e = cu_rope_kv(&A, b->qkv, b->nqkv, pos, seq, n, b->qr, b->st);
            prof_mark(b, PROF_ROPE);
            cudaError_t ea = cudaErrorNotSupported;
            if (e == cudaSuccess && run_p0 >= 0 && gemm) ea = cu_attention_prompt(&A, b->qr, run_p0, run_seq, n, b->att, b->st);
            if (e == cudaSuccess && ea == cudaErrorNotSupported) e = cu_attention(&A, b->qr, pos, seq, n, b->att, b->st);
            else if (e == cudaSuccess) e = ea;
        }
        prof_mark(b, PROF_ATTN);
        cu_input io = { b->att, b->Q, hp->sub_norms ? L->attn_sub_norm : NULL, eps };
        if (e == cudaSuccess) e = run_linear(b, &L->o, &io, n, b->h, b->E, gemm, NULL);
        prof_mark(b, PROF_O);
        cu_input ig = { b->h, b->E, L->ffn_norm, eps };
        if (e == cudaSuccess) e = run_linear(b, &L->gu, &ig, n, b->mb, b->F, gemm, NULL);
        prof_mark(b, PROF_GU);
        cu_input id = { b->mb, b->F, hp->sub_norms ? L->ffn_sub_norm : NULL, eps };
        if (e == cudaSuccess) e = run_linear(b, &L->down, &id, n, b->h, b->E, gemm, NULL);
        prof_mark(b, PROF_DOWN);
    }
    return e;
}

/* OB_CUDA_PROFILE with the persistent step: every block stamps each phase;
 * logged per phase kind: the mean and the slowest block's time in the phase
 * (work), and the wall time from the phase's first start to the next phase's
 * first start (work + barrier + skew). */
static ob_status prof_mega_step(cuda_backend *b) {
    static const char *const kinds[6] = { "embed", "qkv", "attention", "o", "gate/up", "down" };
    cu_mega *M = &b->mega;
    const int nph = CU_MEGA_PHASES(M->n_layer), nb = M->n_block;
    size_t n = (size_t)nph * nb * 2;
    if (!M->prof) {
        if (!(M->prof = (unsigned long long *)dev_alloc(&b->mem, n * 8))) return oom(n * 8);
        if (!(b->h_stamps = (unsigned long long *)malloc(n * 8))) return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    CK(cudaMemcpyAsync(b->d_step, b->h_io + 3 * CHUNK_TOKENS, 3 * sizeof(int32_t), cudaMemcpyHostToDevice, b->st));
    CK(cu_mega_decode(M, b->d_step, b->st));
    cu_input in = { b->h, b->E, b->out_norm, b->m->hp.norm_eps };
    CK(cu_gemv(&b->head, &in, 1, b->logits, b->head.n_out, b->amax, b->st));
    CK(cudaMemcpyAsync(b->h_stamps, M->prof, n * 8, cudaMemcpyDeviceToHost, b->st));
    CK(cudaStreamSynchronize(b->st));
    const unsigned long long *t = b->h_stamps;
    for (int ph = 0; ph < nph; ph++) {
        int kind = ph == 0 ? 0 : 1 + (ph - 1) % 5;
        double sum = 0, mx = 0;
        unsigned long long first = ~0ull, last = 0, next = ~0ull;
        for (int i = 0; i < nb; i++) {
            unsigned long long s0 = t[((size_t)ph * nb + i) * 2], s1 = t[((size_t)ph * nb + i) * 2 + 1];
            double d = (double)(s1 - s0) * 1e-3;
            sum += d;
            mx = d > mx ? d : mx;
            first = s0 < first ? s0 : first;
            last = s1 > last ? s1 : last;
            if (ph + 1 < nph) {
                unsigned long long s2 = t[((size_t)(ph + 1) * nb + i) * 2];
                next = s2 < next ? s2 : next;
            }
        }
        b->stamp_us[kind][0] += sum / nb;
        b->stamp_us[kind][1] += mx;
        b->stamp_us[kind][2] += (double)((ph + 1 < nph ? next : last) - first) * 1e-3;
    }
    if (++b->prof_steps % 64 == 0) {
        double total = 0;
        for (int k = 0; k < 6; k++) total += b->stamp_us[k][2];
        for (int k = 0; k < 6; k++)
            ob_log(OB_LOG_INFO, "cuda profile: %-10s mean block %7.2f  slowest block %7.2f  wall %7.2f us/token",
                   kinds[k], b->stamp_us[k][0] / b->prof_steps, b->stamp_us[k][1] / b->prof_steps,
                   b->stamp_us[k][2] / b->prof_steps);
        ob_log(OB_LOG_INFO, "cuda profile: persistent step wall %.2f us/token over %d steps (lm_head not included)",
               total / b->prof_steps, b->prof_steps);
    }
    return OB_OK;
}

/* Eager decode step with an event after each kernel (OB_CUDA_PROFILE). */
static ob_status prof_step(cuda_backend *b) {
    if (b->use_mega) return prof_mega_step(b);
    b->n_ev = 0;
    CK(cudaMemcpyAsync(b->d_step, b->h_io + 3 * CHUNK_TOKENS, 3 * sizeof(int32_t), cudaMemcpyHostToDevice, b->st));
    CK(enqueue_layers(b, 1, b->d_step, b->d_step + 1, b->d_step + 2, b->n_split_decode, false, -1, -1));
    cu_input in = { b->h, b->E, b->out_norm, b->m->hp.norm_eps };
    CK(cu_gemv(&b->head, &in, 1, b->logits, b->head.n_out, b->amax, b->st));
    prof_mark(b, PROF_HEAD);
    CK(cudaStreamSynchronize(b->st));
    for (int i = 1; i < b->n_ev; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, b->ev[i - 1], b->ev[i]);
        b->prof_ms[b->ev_kind[i]] += ms;
    }
    if (++b->prof_steps % 64 == 0) {
        double total = 0;
        for (int k = 1; k < PROF_KINDS; k++) total += b->prof_ms[k];
        for (int k = 1; k < PROF_KINDS; k++)
            ob_log(OB_LOG_INFO, "cuda profile: %-10s %8.2f us/token (%4.1f%%)", prof_names[k],
                   1e3 * b->prof_ms[k] / b->prof_steps, 100 * b->prof_ms[k] / total);
        ob_log(OB_LOG_INFO, "cuda profile: total      %8.2f us/token over %d eager steps", 1e3 * total / b->prof_steps,
               b->prof_steps);
    }
    return OB_OK;
}

/* One token through the graph: inputs already in h_io[3*CHUNK..+3]. */
static ob_status graph_step(cuda_backend *b) {
    if (b->prof) return prof_step(b);
    if (!b->graph) {
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(b->st, cudaStreamCaptureModeThreadLocal));
        cudaError_t e;
        if (b->use_mega) e = cu_mega_decode(&b->mega, b->d_step, b->st);
        else e = enqueue_layers(b, 1, b->d_step, b->d_step + 1, b->d_step + 2, b->n_split_decode, false, -1, -1);
        cu_input in = { b->h, b->E, b->out_norm, b->m->hp.norm_eps };
        if (e == cudaSuccess) e = cu_gemv(&b->head, &in, 1, b->logits, b->head.n_out, b->amax, b->st);
        cudaError_t e2 = cudaStreamEndCapture(b->st, &g);
        if (e2 == cudaSuccess && e == cudaSuccess) {
            e = cudaGraphInstantiate(&b->graph, g, 0);
            cudaGraphDestroy(g);
        } else if (e2 == cudaSuccess) {
            cudaGraphDestroy(g);
        }
        if (e == cudaSuccess) e = e2;
        if (e != cudaSuccess) {
            b->graph = NULL;
            if (b->use_mega) { /* e.g. a runtime that cannot capture cooperative launches */
                ob_log(OB_LOG_WARN, "CUDA: persistent decode step not usable (%s); using one kernel per operation",
                       cudaGetErrorString(e));
                cudaGetLastError();
                b->use_mega = false;
                return graph_step(b);
            }
            return cu_fail(e, "capturing the decode graph");
        }
    }
    CK(cudaMemcpyAsync(b->d_step, b->h_io + 3 * CHUNK_TOKENS, 3 * sizeof(int32_t), cudaMemcpyHostToDevice, b->st));
    ob_status st = tl_before(b);
    if (st) return st;
    CK(cudaGraphLaunch(b->graph, b->st));
    return tl_after(b);
}

/* Runs the batch; for each token that wants output, writes its logits row
 * (logits != NULL) and/or its argmax id (ids != NULL), in batch order. */
static ob_status run_batch(cuda_backend *b, const ob_batch *batch, float *logits, int32_t *ids, bool all_want) {
    ob_status st = ob_batch_advance(&b->base, b->seq_len, batch);
    if (st) return st;
    const int V = b->head.n_out;
    if (batch->n == 1) {
        b->h_io[3 * CHUNK_TOKENS] = batch->token[0];
        b->h_io[3 * CHUNK_TOKENS + 1] = batch->pos[0];
        b->h_io[3 * CHUNK_TOKENS + 2] = batch->seq ? batch->seq[0] : 0;
        bool want = all_want || !batch->logits || batch->logits[0];
        if ((st = graph_step(b))) return st;
        if (want && ids) CK(cudaMemcpyAsync(b->h_amax, b->amax, sizeof *b->h_amax, cudaMemcpyDeviceToHost, b->st));
        if (want && logits)
            CK(cudaMemcpyAsync(logits, b->logits, (size_t)V * sizeof(float), cudaMemcpyDeviceToHost, b->st));
        CK(cudaStreamSynchronize(b->st));
        if (want && ids) ids[0] = (int32_t)cu_argmax_row(b->h_amax[0]);
        return OB_OK;
    }
    float *lout = logits;
    int32_t *iout = ids;
    for (int c0 = 0; c0 < batch->n; c0 += CHUNK_TOKENS) {
        int n = OB_MIN(CHUNK_TOKENS, batch->n - c0);
        for (int t = 0; t < n; t++) {
            b->h_io[t] = batch->token[c0 + t];
            b->h_io[CHUNK_TOKENS + t] = batch->pos[c0 + t];
            b->h_io[2 * CHUNK_TOKENS + t] = batch->seq ? batch->seq[c0 + t] : 0;
        }
        CK(cudaMemcpyAsync(b->d_io, b->h_io, 3 * CHUNK_TOKENS * sizeof(int32_t), cudaMemcpyHostToDevice, b->st));
        int n_split = OB_MAX(1, OB_MIN(MAX_SPLIT, b->part_rows / n));
        bool gemm = n > 4;
        /* one sequence at consecutive positions (a prompt): tensor-core attention */
        int run_p0 = b->h_io[CHUNK_TOKENS], run_seq = b->h_io[2 * CHUNK_TOKENS];
        for (int t = 1; t < n && run_p0 >= 0; t++)
            if (b->h_io[CHUNK_TOKENS + t] != run_p0 + t || b->h_io[2 * CHUNK_TOKENS + t] != run_seq) run_p0 = -1;
        if (!b->prompt_tc) run_p0 = -1;
        CK(enqueue_layers(b, n, b->d_io, b->d_io + CHUNK_TOKENS, b->d_io + 2 * CHUNK_TOKENS, n_split, gemm, run_p0,
                          run_seq));
        /* gather the rows that want output, then one head GEMV over them */
        int n_sel = 0;
        for (int t = 0; t < n; t++) {
            bool want = all_want || (batch->logits ? batch->logits[c0 + t] != 0 : (c0 + t == batch->n - 1));
            if (!want) continue;
            CK(cudaMemcpyAsync(b->xsel + (size_t)n_sel * b->E, b->h + (size_t)t * b->E, (size_t)b->E * sizeof(float),
                               cudaMemcpyDeviceToDevice, b->st));
            n_sel++;
        }
        if (n_sel) {
            CK(cudaMemsetAsync(b->amax, 0, (size_t)n_sel * sizeof *b->amax, b->st));
            cu_input in = { b->xsel, b->E, b->out_norm, b->m->hp.norm_eps };
            CK(cu_gemv(&b->head, &in, n_sel, b->logits, V, b->amax, b->st));
            if (lout)
                CK(cudaMemcpyAsync(lout, b->logits, (size_t)n_sel * V * sizeof(float), cudaMemcpyDeviceToHost, b->st));
            if (iout)
                CK(cudaMemcpyAsync(b->h_amax, b->amax, (size_t)n_sel * sizeof *b->h_amax, cudaMemcpyDeviceToHost, b->st));
        }
        CK(cudaStreamSynchronize(b->st));
        if (iout)
            for (int i = 0; i < n_sel; i++) iout[i] = (int32_t)cu_argmax_row(b->h_amax[i]);
        if (lout) lout += (size_t)n_sel * V;
        if (iout) iout += n_sel;
    }
    return OB_OK;
}

static ob_status cuda_decode(ob_backend *base, const ob_batch *batch, float *logits) {
    return run_batch((cuda_backend *)base, batch, logits, NULL, false);
}

static ob_status cuda_decode_argmax(ob_backend *base, const ob_batch *batch, int32_t *ids) {
    return run_batch((cuda_backend *)base, batch, NULL, ids, true);
}

static ob_status cuda_seq_truncate(ob_backend *base, int seq, int pos) {
    cuda_backend *b = (cuda_backend *)base;
    if (seq < 0 || seq >= b->base.n_seq) return ob_fail(OB_ERR_ARG, "sequence %d out of range", seq);
    if (pos < 0) pos = 0;
    if (pos < b->seq_len[seq]) b->seq_len[seq] = pos;
    return OB_OK;
}

static ob_status cuda_seq_copy(ob_backend *base, int src, int dst, int n) {
    cuda_backend *b = (cuda_backend *)base;
    if (src < 0 || src >= b->base.n_seq || dst < 0 || dst >= b->base.n_seq)
        return ob_fail(OB_ERR_ARG, "sequence out of range");
    if (n > b->seq_len[src]) n = b->seq_len[src];
    if (n < 0) n = 0;
    if (src == dst) return OB_OK;
    size_t kvd = (size_t)b->attn.n_kv * b->attn.hd, bytes = (size_t)n * kvd * b->kv_elem;
    for (int l = 0; l < b->m->hp.n_layer; l++) {
        size_t so = ((size_t)l * b->layer_stride + (size_t)src * b->attn.seq_stride) * b->kv_elem;
        size_t do_ = ((size_t)l * b->layer_stride + (size_t)dst * b->attn.seq_stride) * b->kv_elem;
        CK(cudaMemcpyAsync(b->kc + do_, b->kc + so, bytes, cudaMemcpyDeviceToDevice, b->st));
        CK(cudaMemcpyAsync(b->vc + do_, b->vc + so, bytes, cudaMemcpyDeviceToDevice, b->st));
    }
    CK(cudaStreamSynchronize(b->st));
    b->seq_len[dst] = n;
    return OB_OK;
}

static void cuda_destroy(ob_backend *base) {
    cuda_backend *b = (cuda_backend *)base;
    if (!b) return;
    if (b->graph) cudaGraphExecDestroy(b->graph);
    free(b->h_stamps);
    free(b->h_tl);
    if (b->prof)
        for (size_t i = 0; i < OB_ARRAY_LEN(b->ev); i++) cudaEventDestroy(b->ev[i]);
    if (b->st) cudaStreamDestroy(b->st);
    cu_lt_destroy(b->lt);
    cu_mem_free(&b->mem);
    if (b->h_io) cudaFreeHost(b->h_io);
    if (b->h_amax) cudaFreeHost(b->h_amax);
    free(b->L);
    free(b->seq_len);
    free(b);
}

/* The cuBLASLt prefill path (gemm_lt.cu): an int8 copy of every layer's
 * ternary weights (2.1 GB for 2B-4T), made only when libcublasLt loads and
 * the copies fit with room to spare, so a card that holds the model holds it
 * still. OB_CUDA_LT=0 keeps k_gemm_t2; OB_CUDA_LT=N uses cuBLASLt from chunks
 * of N tokens on (default CU_LT_MIN_TOK). Failing here is never fatal. */
static ob_status setup_lt(cuda_backend *b) {
    const char *env = getenv("OB_CUDA_LT");
    b->lt_min_tok = env && *env ? atoi(env) : CU_LT_MIN_TOK;
    if (b->lt_min_tok <= 0) return OB_OK;
    const int n_layer = b->m->hp.n_layer;
    size_t need = 0, max_phys = 0;
    for (int l = 0; l < n_layer; l++) {
        cu_linear *lin[4] = { &b->L[l].qkv, &b->L[l].o, &b->L[l].gu, &b->L[l].down };
        for (int i = 0; i < 4; i++) {
            need += cu_lt_weight_bytes(lin[i]);
            if (lin[i]->kind == CU_W_T2) max_phys = OB_MAX(max_phys, (size_t)lin[i]->n_phys);
        }
    }
    if (!need) return OB_OK;
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    size_t acc_elems = CHUNK_TOKENS * max_phys, margin = OB_MAX((size_t)1 << 30, total_b / 20);
    size_t want = need + acc_elems * 4 + ((size_t)32 << 20) + margin; /* + int32 scratch, workspace */
    if (want > free_b) {
        ob_log(OB_LOG_INFO, "CUDA: int8 weight copies (%.2f GB) do not fit beside %.2f GB free: prefill GEMMs stay on "
               "k_gemm_t2", (double)need / 1e9, (double)free_b / 1e9);
        return OB_OK;
    }
    cudaError_t e = cu_lt_create(acc_elems, &b->lt);
    if (e != cudaSuccess) { /* a missing library was logged once by cu_lt_create */
        cudaGetLastError();
        if (e != cudaErrorNotSupported)
            ob_log(OB_LOG_INFO, "CUDA: cuBLASLt setup failed (%s): prefill GEMMs stay on k_gemm_t2", cudaGetErrorString(e));
        return OB_OK;
    }
    for (int l = 0; l < n_layer; l++) {
        cu_linear *lin[4] = { &b->L[l].qkv, &b->L[l].o, &b->L[l].gu, &b->L[l].down };
        for (int i = 0; i < 4; i++) {
            size_t bytes = cu_lt_weight_bytes(lin[i]);
            if (!bytes) continue;
            int8_t *w8 = (int8_t *)dev_alloc(&b->mem, bytes);
            if (!w8) return oom(bytes);
            CK(cu_lt_unpack(lin[i], w8, b->st));
            lin[i]->w8 = w8;
        }
    }
    CK(cudaStreamSynchronize(b->st));
    return OB_OK;
}

static ob_status create_inner(cuda_backend *b, const ob_backend_params *p) {
    const ob_model *m = b->m;
    const ob_hparams *hp = &m->hp;
    int dev = p ? p->device : 0, n_dev = ob_cuda_device_count();
    if (n_dev <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU or driver found");
    if (dev < 0 || dev >= n_dev) return ob_fail(OB_ERR_ARG, "CUDA device %d does not exist (%d found)", dev, n_dev);
    CK(cudaSetDevice(dev));
    CK(cudaStreamCreateWithFlags(&b->st, cudaStreamNonBlocking));
    int G = hp->n_head / hp->n_head_kv;
    if (hp->n_head % hp->n_head_kv || G > 8 || hp->head_dim > 256 || hp->head_dim % 4)
        return ob_fail(OB_ERR_UNSUPPORTED, "CUDA: attention shape %d heads / %d KV heads of %d is not supported",
                       hp->n_head, hp->n_head_kv, hp->head_dim);
    b->E = hp->n_embd;
    b->F = hp->n_ff;
    b->Q = hp->n_head * hp->head_dim;
    int KVD = hp->n_head_kv * hp->head_dim;
    b->nqkv = b->Q + 2 * KVD;
    ob_status st;

    /* weights */
    b->L = (cu_layer *)calloc((size_t)hp->n_layer, sizeof *b->L);
    if (!b->L) return ob_fail(OB_ERR_NOMEM, "out of memory");
    void *d;
    for (int l = 0; l < hp->n_layer; l++) {
        const ob_layer *ml = &m->layers[l];
        cu_layer *L = &b->L[l];
        ob_linear qkv[3] = { ml->q, ml->k, ml->v }, gu[2] = { ml->gate, ml->up };
        if ((st = upload_linear(&b->mem, qkv, 3, 0, CU_EPI_STORE, NULL, &L->qkv)) ||
            (st = upload_linear(&b->mem, &ml->o, 1, 0, CU_EPI_ADD, NULL, &L->o)) ||
            (st = upload_linear(&b->mem, gu, 2, 1, hp->act_relu2 ? CU_EPI_GLU_RELU2 : CU_EPI_GLU_SILU, NULL, &L->gu)) ||
            (st = upload_linear(&b->mem, &ml->down, 1, 0, CU_EPI_ADD, NULL, &L->down)))
            return ob_fail_prefix(st, "layer %d", l);
        if ((st = upload(&b->mem, ml->attn_norm, (size_t)b->E * 4, &d))) return st;
        L->attn_norm = (const float *)d;
        if ((st = upload(&b->mem, ml->ffn_norm, (size_t)b->E * 4, &d))) return st;
        L->ffn_norm = (const float *)d;
        if (hp->sub_norms) {
            if ((st = upload(&b->mem, ml->attn_sub_norm, (size_t)b->Q * 4, &d))) return st;
            L->attn_sub_norm = (const float *)d;
            if ((st = upload(&b->mem, ml->ffn_sub_norm, (size_t)b->F * 4, &d))) return st;
            L->ffn_sub_norm = (const float *)d;
        }
    }
    if ((st = upload_linear(&b->mem, &m->output, 1, 0, CU_EPI_STORE, m->output_scale, &b->head)))
        return ob_fail_prefix(st, "lm_head");
    if ((st = upload(&b->mem, m->output_norm, (size_t)b->E * 4, &d))) return st;
    b->out_norm = (const float *)d;
    if ((st = upload_embed(&b->mem, m, &b->head, &b->emb))) return st;

    /* KV cache and RoPE table */
    int n_ctx = b->base.n_ctx, n_seq = b->base.n_seq;
    b->attn.n_head = hp->n_head;
    b->attn.n_kv = hp->n_head_kv;
    b->attn.hd = hp->head_dim;
    b->attn.rope_dim = hp->rope_dim;
    b->attn.rope_neox = hp->rope_neox;
    b->attn.n_ctx = n_ctx;
    b->attn.seq_stride = (size_t)n_ctx * KVD;
    b->layer_stride = (size_t)n_seq * b->attn.seq_stride;
    b->attn.kv_f32 = p ? p->kv_type == OB_KV_F32 : 1; /* the CPU's default too */
    b->kv_elem = b->attn.kv_f32 ? 4 : 2;
    size_t kv_bytes = (size_t)hp->n_layer * b->layer_stride * b->kv_elem;
    if (!(b->kc = (uint8_t *)dev_alloc(&b->mem, kv_bytes)) || !(b->vc = (uint8_t *)dev_alloc(&b->mem, kv_bytes)))
        return oom(kv_bytes);
    CK(cudaMemset(b->kc, 0, kv_bytes));
    CK(cudaMemset(b->vc, 0, kv_bytes));
    {
        size_t n = (size_t)n_ctx * hp->rope_dim;
        float *cs = (float *)malloc(n * sizeof *cs);
        if (!cs) return ob_fail(OB_ERR_NOMEM, "out of memory");
        for (int pos = 0; pos < n_ctx; pos++) /* exactly the CPU backend's rope_table */
            for (int i = 0; i < hp->rope_dim / 2; i++) {
                float inv_freq = (float)(1.0 / pow((double)hp->rope_base, (double)(2 * i) / (double)hp->rope_dim));
                float ang = (float)pos * inv_freq;
                cs[(size_t)pos * hp->rope_dim + 2 * i] = (float)cos((double)ang);
                cs[(size_t)pos * hp->rope_dim + 2 * i + 1] = (float)sin((double)ang);
            }
        st = upload(&b->mem, cs, n * sizeof *cs, &d);
        free(cs);
        if (st) return st;
        b->attn.rope_cs = (const float *)d;
    }

    /* scratch */
    size_t T = CHUNK_TOKENS;
    int wide_pad = (int)ob_act_pad(OB_MAX(OB_MAX(b->E, b->Q), b->F));
    /* decode splits: as many (KV head, split) blocks as SMs, so a long
     * context streams through every SM in one wave (one block per SM: the
     * kernel's double-buffered tiles take ~70 KB of shared memory) */
    int n_sm = 132;
    {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) n_sm = prop.multiProcessorCount;
    }
    b->n_split_decode = OB_MAX(1, OB_MIN(OB_MIN(MAX_SPLIT, n_sm / hp->n_head_kv), (n_ctx + 15) / 16));
    b->part_rows = (int)OB_MAX(8 * T, (size_t)MAX_SPLIT); /* prompts of T tokens get 8 splits each */
    size_t part_floats = (size_t)b->part_rows * hp->n_head_kv * (G * (hp->head_dim + 2) + 3);
    struct { void **p; size_t bytes; } bufs[] = {
        { (void **)&b->h, T * b->E * 4 },       { (void **)&b->qkv, T * b->nqkv * 4 },
        { (void **)&b->qr, T * b->Q * 4 },      { (void **)&b->att, T * b->Q * 4 },
        { (void **)&b->mb, T * b->F * 4 },      { (void **)&b->xsel, T * b->E * 4 },
        { (void **)&b->logits, T * (size_t)b->head.n_out * 4 },
        { (void **)&b->part, part_floats * 4 }, { (void **)&b->q8, T * wide_pad },
        { (void **)&b->qs, T * 4 },             { (void **)&b->qsum, T * 4 },
        { (void **)&b->count, T * hp->n_head_kv * 4 },
        { (void **)&b->amax, T * 8 },           { (void **)&b->d_io, (3 * T + 3) * 4 },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(bufs); i++) {
        if (!(*bufs[i].p = dev_alloc(&b->mem, bufs[i].bytes))) return oom(bufs[i].bytes);
        CK(cudaMemset(*bufs[i].p, 0, bufs[i].bytes));
    }
    b->d_step = b->d_io + 3 * T;
    CK(cudaMallocHost((void **)&b->h_io, (3 * T + 3) * sizeof(int32_t)));
    CK(cudaMallocHost((void **)&b->h_amax, T * sizeof(unsigned long long)));
    b->seq_len = (int *)calloc((size_t)n_seq, sizeof *b->seq_len);
    if (!b->seq_len) return ob_fail(OB_ERR_NOMEM, "out of memory");
    if ((st = setup_lt(b))) return st;
    /* the persistent decode step (decode_step.cu), opt-in with OB_CUDA_MEGA=1
     * where the model suits it: measured slower than one kernel per
     * operation so far (docs/PERFORMANCE.md, CUDA v9) */
    const char *mega = getenv("OB_CUDA_MEGA");
    if (mega && !strcmp(mega, "1")) {
        cudaDeviceProp prop;
        CK(cudaGetDeviceProperties(&prop, dev));
        cu_mega *M = &b->mega;
        M->n_layer = hp->n_layer;
        M->emb = b->emb;
        M->attn = b->attn;
        M->attn.k = b->kc;
        M->attn.v = b->vc;
        M->attn.part = b->part;
        M->attn.count = b->count;
        M->layer_stride = b->layer_stride;
        M->h = b->h, M->qkv = b->qkv, M->att = b->att, M->mb = b->mb;
        M->E = b->E, M->Q = b->Q, M->F = b->F, M->nqkv = b->nqkv;
        M->eps = hp->norm_eps;
        M->amax = b->amax;
        cudaError_t e = cu_mega_plan(M, b->L, prop.multiProcessorCount, prop.sharedMemPerBlockOptin);
        if (e == cudaSuccess && cu_mega_part_floats(M) <= part_floats) {
            size_t lb = (size_t)hp->n_layer * sizeof *b->L;
            if ((st = upload(&b->mem, b->L, lb, &d))) return st;
            M->layers = (const cu_layer *)d;
            if (!(M->bar = (unsigned *)dev_alloc(&b->mem, sizeof(unsigned)))) return oom(sizeof(unsigned));
            b->use_mega = true;
            ob_log(OB_LOG_INFO, "CUDA: persistent decode step, %d blocks, %zu bytes of shared memory each",
                   M->n_block, M->smem);
        } else {
            cudaGetLastError();
            ob_log(OB_LOG_INFO, "CUDA: one kernel per operation for decode (%s)",
                   e == cudaSuccess ? "partials" : cudaGetErrorString(e));
        }
    }
    const char *tc = getenv("OB_CUDA_PROMPT_TC");
    b->prompt_tc = !(tc && !strcmp(tc, "0"));
    const char *pdl = getenv("OB_CUDA_PDL");
    cu_set_pdl(!(pdl && !strcmp(pdl, "0")));
    /* OB_CUDA_STAGED=N: GEMVs of up to N tokens staged (default 0: off);
     * OB_CUDA_STAGED_BPS=B: their shares sized for B blocks per SM (default 1) */
    const char *staged = getenv("OB_CUDA_STAGED"), *bps = getenv("OB_CUDA_STAGED_BPS");
    if (staged && *staged) cu_set_gemv_staged(atoi(staged), bps && *bps ? atoi(bps) : 1);
    /* OB_CUDA_ATTN_WIDE=0: k_attn_decode's general thread mapping only;
     * OB_CUDA_ATTN_MINCHUNK=N: at least N positions per decode split */
    const char *aw = getenv("OB_CUDA_ATTN_WIDE"), *amc = getenv("OB_CUDA_ATTN_MINCHUNK");
    cu_set_attn_decode(!(aw && !strcmp(aw, "0")), amc && *amc ? atoi(amc) : 0);
    const char *tl = getenv("OB_CUDA_TIMELINE");
    if (tl && *tl) {
        cudaError_t e = cu_timeline_arm(NULL, 0, b->st);
        if (e == cudaErrorNotSupported) {
            ob_log(OB_LOG_WARN, "OB_CUDA_TIMELINE: this build has no timeline (make ... NVCC_DEFS=-DOB_CUDA_TIMELINE)");
        } else {
            CK(e);
            if (!(b->tl_buf = (cu_tl_rec *)dev_alloc(&b->mem, TL_CAP * sizeof(cu_tl_rec))))
                return oom(TL_CAP * sizeof(cu_tl_rec));
            if (!(b->h_tl = (cu_tl_rec *)malloc(TL_CAP * sizeof(cu_tl_rec)))) return ob_fail(OB_ERR_NOMEM, "out of memory");
            b->tl_path = tl;
        }
    }
    const char *prof = getenv("OB_CUDA_PROFILE");
    if (prof && *prof && strcmp(prof, "0")) {
        for (size_t i = 0; i < OB_ARRAY_LEN(b->ev); i++) CK(cudaEventCreate(&b->ev[i]));
        b->prof = true;
    }
    CK(cudaDeviceSynchronize());
    return OB_OK;
}

static ob_status cuda_create(const ob_model *m, const ob_backend_params *p, ob_backend **out) {
    *out = NULL;
    cuda_backend *b = (cuda_backend *)calloc(1, sizeof *b);
    if (!b) return ob_fail(OB_ERR_NOMEM, "out of memory");
    b->base.ops = &ob_backend_cuda;
    b->base.model = m;
    b->m = m;
    b->base.n_ctx = p && p->n_ctx > 0 ? p->n_ctx : m->hp.n_ctx_train;
    b->base.n_seq = p && p->n_seq > 0 ? p->n_seq : 1;
    if (b->base.n_ctx > (1 << 20) || b->base.n_seq > 4096) {
        free(b);
        return ob_fail(OB_ERR_ARG, "context %d x %d sequences is too large", p->n_ctx, p->n_seq);
    }
    ob_status st = create_inner(b, p);
    if (st) {
        cuda_destroy(&b->base);
        return st;
    }
    *out = &b->base;
    return OB_OK;
}

extern "C" const ob_backend_ops ob_backend_cuda = {
    "cuda", cuda_create, cuda_destroy, cuda_seq_truncate, cuda_seq_copy, cuda_decode, cuda_decode_argmax,
};

extern "C" int ob_cuda_persistent_decode(const ob_backend *b) {
    return b && b->ops == &ob_backend_cuda && ((const cuda_backend *)b)->use_mega;
}

extern "C" int ob_cuda_lt_prefill(const ob_backend *b) {
    return b && b->ops == &ob_backend_cuda && ((const cuda_backend *)b)->lt != NULL;
}

/* ---- device probing --------------------------------------------------------------- */

extern "C" int ob_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" void ob_cuda_device_name(int device, char *buf, size_t size) {
    cudaDeviceProp prop;
    if (!size) return;
    buf[0] = 0;
    if (device < 0 || device >= ob_cuda_device_count()) return;
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) snprintf(buf, size, "%s", prop.name);
}

extern "C" ob_status ob_cuda_probe_bandwidth(int device, double *gbps) {
    *gbps = 0;
    if (device < 0 || device >= ob_cuda_device_count()) return ob_fail(OB_ERR_BACKEND, "CUDA: no device %d", device);
    CK(cudaSetDevice(device));
    const size_t bytes = (size_t)512 << 20;
    void *a = NULL, *c = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    ob_status st = OB_OK;
    float ms = 0;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&c, bytes) != cudaSuccess) {
        cudaGetLastError();
        st = oom(2 * bytes);
    } else if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        st = ob_fail(OB_ERR_BACKEND, "CUDA: cannot create events");
    } else {
        cudaMemset(a, 1, bytes);
        cudaMemcpy(c, a, bytes, cudaMemcpyDeviceToDevice); /* warm-up */
        const int reps = 10;
        cudaEventRecord(e0, 0);
        for (int i = 0; i < reps; i++) cudaMemcpy(i % 2 ? a : c, i % 2 ? c : a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1, 0);
        cudaError_t e = cudaEventSynchronize(e1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, e0, e1);
        if (e != cudaSuccess) st = cu_fail(e, "bandwidth probe");
        else *gbps = 2.0 * (double)bytes * reps / (ms * 1e-3) / 1e9;
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(c);
    return st;
}

/* ---- test hooks ------------------------------------------------------------------- */

extern "C" ob_status ob_cuda_test_linear(const ob_linear *parts, int n_parts, int glu, int relu2, const float *norm,
                                         float eps, const float *x, int n_tok, int epi_add, int use_gemm, float *y,
                                         int32_t *argmax) {
    if (ob_cuda_device_count() <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU");
    cu_mem mm = {};
    cu_linear L;
    int epi = glu ? (relu2 ? CU_EPI_GLU_RELU2 : CU_EPI_GLU_SILU) : epi_add ? CU_EPI_ADD : CU_EPI_STORE;
    ob_status st = upload_linear(&mm, parts, n_parts, glu, epi, parts[0].w->type == OB_TYPE_I8 ? parts[0].scale : NULL, &L);
    if (st) {
        cu_mem_free(&mm);
        return st;
    }
    int K = L.K, n_out = L.n_out;
    void *dx, *dy, *dn = NULL, *dq, *ds, *dsum, *dam;
    size_t ybytes = (size_t)n_tok * n_out * 4;
    if ((st = upload(&mm, x, (size_t)n_tok * K * 4, &dx)) || (st = upload(&mm, y, ybytes, &dy)) ||
        (norm && (st = upload(&mm, norm, (size_t)K * 4, &dn)))) {
        cu_mem_free(&mm);
        return st;
    }
    dq = dev_alloc(&mm, (size_t)n_tok * ob_act_pad(K));
    ds = dev_alloc(&mm, (size_t)n_tok * 4);
    dsum = dev_alloc(&mm, (size_t)n_tok * 4);
    dam = dev_alloc(&mm, (size_t)n_tok * 8);
    if (!dq || !ds || !dsum || !dam) {
        cu_mem_free(&mm);
        return oom(0);
    }
    cu_input in = { (const float *)dx, K, (const float *)dn, eps };
    cudaError_t e = cudaMemset(dam, 0, (size_t)n_tok * 8);
    if (e == cudaSuccess) {
        if (use_gemm == 2 && L.kind == CU_W_T2) { /* cuBLASLt: its own int8 weights and scratch */
            cu_lt *lt = NULL;
            size_t w8_bytes = cu_lt_weight_bytes(&L);
            e = cu_lt_create((size_t)n_tok * L.n_phys, &lt);
            if (e == cudaSuccess) {
                L.w8 = (int8_t *)dev_alloc(&mm, w8_bytes);
                e = L.w8 ? cu_lt_unpack(&L, L.w8, 0) : cudaErrorMemoryAllocation;
            }
            if (e == cudaSuccess) e = cu_norm_quant(&in, K, L.ld, n_tok, (int8_t *)dq, (float *)ds, (int *)dsum, 0);
            if (e == cudaSuccess)
                e = cu_gemm_lt(lt, &L, (int8_t *)dq, (float *)ds, n_tok, (float *)dy, n_out, 0);
            if (e == cudaSuccess) e = cudaDeviceSynchronize();
            cu_lt_destroy(lt);
        } else if (use_gemm && L.kind == CU_W_T2) {
            e = cu_norm_quant(&in, K, L.ld, n_tok, (int8_t *)dq, (float *)ds, (int *)dsum, 0);
            if (e == cudaSuccess) e = cu_gemm_t2(&L, (int8_t *)dq, (float *)ds, (int *)dsum, n_tok, (float *)dy, n_out, 0);
        } else {
            e = cu_gemv(&L, &in, n_tok, (float *)dy, n_out, argmax ? (unsigned long long *)dam : NULL, 0);
        }
    }
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(y, dy, ybytes, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess && argmax) {
        unsigned long long *k = (unsigned long long *)malloc((size_t)n_tok * 8);
        if (!k) st = ob_fail(OB_ERR_NOMEM, "out of memory");
        else {
            e = cudaMemcpy(k, dam, (size_t)n_tok * 8, cudaMemcpyDeviceToHost);
            for (int t = 0; t < n_tok; t++) argmax[t] = (int32_t)cu_argmax_row(k[t]);
            free(k);
        }
    }
    if (e != cudaSuccess) st = cu_fail(e, "test linear");
    cu_mem_free(&mm);
    return st;
}

extern "C" void ob_cuda_test_gemv_staged(int max_tok, int blocks_per_sm) { cu_set_gemv_staged(max_tok, blocks_per_sm); }
extern "C" void ob_cuda_test_attn_decode(int wide, int min_chunk) { cu_set_attn_decode(wide != 0, min_chunk); }

extern "C" ob_status ob_cuda_test_quant(const float *x, int n, int n_tok, const float *norm, float eps, int8_t *q,
                                        float *s, int32_t *qsum) {
    if (ob_cuda_device_count() <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU");
    cu_mem mm = {};
    void *dx, *dn = NULL;
    ob_status st;
    int pad = (int)ob_act_pad(n);
    if ((st = upload(&mm, x, (size_t)n_tok * n * 4, &dx)) || (norm && (st = upload(&mm, norm, (size_t)n * 4, &dn)))) {
        cu_mem_free(&mm);
        return st;
    }
    void *dq = dev_alloc(&mm, (size_t)n_tok * pad), *ds = dev_alloc(&mm, (size_t)n_tok * 4),
         *dsum = dev_alloc(&mm, (size_t)n_tok * 4);
    if (!dq || !ds || !dsum) {
        cu_mem_free(&mm);
        return oom(0);
    }
    cu_input in = { (const float *)dx, n, (const float *)dn, eps };
    cudaError_t e = cu_norm_quant(&in, n, pad, n_tok, (int8_t *)dq, (float *)ds, (int *)dsum, 0);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(q, dq, (size_t)n_tok * pad, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(s, ds, (size_t)n_tok * 4, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(qsum, dsum, (size_t)n_tok * 4, cudaMemcpyDeviceToHost);
    st = e == cudaSuccess ? OB_OK : cu_fail(e, "test quant");
    cu_mem_free(&mm);
    return st;
}

/* The attention description of the test hooks: one sequence of n_ctx
 * positions, f16 cache, no fused RoPE; the caller sets the buffers. */
static cu_attn test_attn_desc(int n_head, int n_kv, int hd, int rope_dim, int neox, const float *rope_cs, int n_ctx,
                              int n_split) {
    cu_attn A;
    memset(&A, 0, sizeof A);
    A.n_head = n_head;
    A.n_kv = n_kv;
    A.hd = hd;
    A.rope_dim = rope_dim;
    A.rope_neox = neox;
    A.rope_cs = rope_cs;
    A.n_ctx = n_ctx;
    A.n_split = n_split;
    A.seq_stride = (size_t)n_ctx * n_kv * hd;
    return A;
}

extern "C" ob_status ob_cuda_test_attention(int n_head, int n_kv, int hd, int rope_dim, int neox, const float *rope_cs,
                                            const float *qkv, int n_tok, int n_split, float *out, float *q_roped,
                                            uint16_t *k_cache, uint16_t *v_cache) {
    if (ob_cuda_device_count() <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU");
    cu_mem mm = {};
    ob_status st;
    int G = n_head / n_kv, nq = n_head * hd, kvd = n_kv * hd, ld = nq + 2 * kvd;
    void *dqkv, *dcs;
    if ((st = upload(&mm, qkv, (size_t)n_tok * ld * 4, &dqkv)) ||
        (st = upload(&mm, rope_cs, (size_t)n_tok * rope_dim * 4, &dcs))) {
        cu_mem_free(&mm);
        return st;
    }
    int32_t *hp = (int32_t *)malloc((size_t)n_tok * 4);
    if (!hp) {
        cu_mem_free(&mm);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < n_tok; t++) hp[t] = t;
    void *dpos;
    st = upload(&mm, hp, (size_t)n_tok * 4, &dpos);
    free(hp);
    if (st) {
        cu_mem_free(&mm);
        return st;
    }
    cu_attn A = test_attn_desc(n_head, n_kv, hd, rope_dim, neox, (const float *)dcs, n_tok, n_split);
    A.k = dev_alloc(&mm, (size_t)n_tok * kvd * 2);
    A.v = dev_alloc(&mm, (size_t)n_tok * kvd * 2);
    A.part = (float *)dev_alloc(&mm, (size_t)n_tok * n_kv * OB_MAX(n_split, 1) * (G * (hd + 2) + 3) * 4);
    A.count = (unsigned *)dev_alloc(&mm, (size_t)n_tok * n_kv * 4);
    float *dqr = (float *)dev_alloc(&mm, (size_t)n_tok * nq * 4), *dout = (float *)dev_alloc(&mm, (size_t)n_tok * nq * 4);
    if (!A.k || !A.v || !A.part || !A.count || !dqr || !dout) {
        cu_mem_free(&mm);
        return oom(0);
    }
    cudaError_t e = cudaMemset(A.count, 0, (size_t)n_tok * n_kv * 4);
    if (e == cudaSuccess) e = cu_rope_kv(&A, (const float *)dqkv, ld, (const int32_t *)dpos, NULL, n_tok, dqr, 0);
    if (e == cudaSuccess)
        e = n_split ? cu_attention(&A, dqr, (const int32_t *)dpos, NULL, n_tok, dout, 0)
                    : cu_attention_prompt(&A, dqr, 0, 0, n_tok, dout, 0);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(out, dout, (size_t)n_tok * nq * 4, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(q_roped, dqr, (size_t)n_tok * nq * 4, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(k_cache, A.k, (size_t)n_tok * kvd * 2, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(v_cache, A.v, (size_t)n_tok * kvd * 2, cudaMemcpyDeviceToHost);
    st = e == cudaSuccess ? OB_OK : cu_fail(e, "test attention");
    cu_mem_free(&mm);
    return st;
}

extern "C" ob_status ob_cuda_test_attention_steps(int n_head, int n_kv, int hd, int rope_dim, int neox,
                                                  const float *rope_cs, const float *qkv, int n_tok, int n_split,
                                                  int kv_f32, float *out, void *k_cache, void *v_cache) {
    if (ob_cuda_device_count() <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU");
    cu_mem mm = {};
    ob_status st;
    int G = n_head / n_kv, nq = n_head * hd, kvd = n_kv * hd, ld = nq + 2 * kvd;
    size_t es = kv_f32 ? 4 : 2;
    void *dqkv, *dcs;
    if ((st = upload(&mm, qkv, (size_t)n_tok * ld * 4, &dqkv)) ||
        (st = upload(&mm, rope_cs, (size_t)n_tok * rope_dim * 4, &dcs))) {
        cu_mem_free(&mm);
        return st;
    }
    cu_attn A = test_attn_desc(n_head, n_kv, hd, rope_dim, neox, (const float *)dcs, n_tok, n_split);
    A.fuse_rope = 1;
    A.ldqkv = ld;
    A.kv_f32 = kv_f32;
    A.k = dev_alloc(&mm, (size_t)n_tok * kvd * es);
    A.v = dev_alloc(&mm, (size_t)n_tok * kvd * es);
    A.part = (float *)dev_alloc(&mm, (size_t)n_kv * n_split * (G * (hd + 2) + 3) * 4);
    A.count = (unsigned *)dev_alloc(&mm, (size_t)n_kv * 4);
    int32_t *dpos = (int32_t *)dev_alloc(&mm, 4);
    float *dout = (float *)dev_alloc(&mm, (size_t)n_tok * nq * 4);
    if (!A.k || !A.v || !A.part || !A.count || !dpos || !dout) {
        cu_mem_free(&mm);
        return oom(0);
    }
    cudaError_t e = cudaMemset(A.count, 0, (size_t)n_kv * 4);
    /* one launch per position; the position is copied in before each (as the
     * decode graph's step is), which also orders it after the previous step */
    for (int32_t t = 0; t < n_tok && e == cudaSuccess; t++) {
        e = cudaMemcpy(dpos, &t, 4, cudaMemcpyHostToDevice);
        if (e == cudaSuccess)
            e = cu_attention(&A, (const float *)dqkv + (size_t)t * ld, dpos, NULL, 1, dout + (size_t)t * nq, 0);
    }
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(out, dout, (size_t)n_tok * nq * 4, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(k_cache, A.k, (size_t)n_tok * kvd * es, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) e = cudaMemcpy(v_cache, A.v, (size_t)n_tok * kvd * es, cudaMemcpyDeviceToHost);
    st = e == cudaSuccess ? OB_OK : cu_fail(e, "test attention steps");
    cu_mem_free(&mm);
    return st;
}

extern "C" ob_status ob_cuda_test_embed(const ob_model *m, const int32_t *ids, int n, float *out) {
    if (ob_cuda_device_count() <= 0) return ob_fail(OB_ERR_BACKEND, "CUDA: no GPU");
    cu_mem mm = {};
    cu_linear head;
    memset(&head, 0, sizeof head);
    cu_embed E;
    void *dids;
    ob_status st = upload_embed(&mm, m, &head, &E);
    if (!st) st = upload(&mm, ids, (size_t)n * 4, &dids);
    float *dout = st ? NULL : (float *)dev_alloc(&mm, (size_t)n * E.n_embd * 4);
    if (!st && !dout) st = oom(0);
    if (!st) {
        cudaError_t e = cu_embed_rows(&E, (const int32_t *)dids, n, dout, NULL, 0);
        if (e == cudaSuccess) e = cudaDeviceSynchronize();
        if (e == cudaSuccess) e = cudaMemcpy(out, dout, (size_t)n * E.n_embd * 4, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) st = cu_fail(e, "test embed");
    }
    cu_mem_free(&mm);
    return st;
}
