/* Internal interface of the CUDA backend: device-side weight layouts and the
 * kernel launchers that cuda_backend.cu strings together (and that the test
 * hooks call one by one). C++ (nvcc) only.
 *
 * Weight layouts on the device (made once at upload, cuda_upload.cu):
 *
 *   GP2 (ternary): rows are cut into groups of 16 "physical" rows and each
 *   row into chunks of 64 weights (16 bytes). Chunk c of row r of group g is
 *   at uint4 index (g * nchunk + c) * 16 + r, so 16 rows of one chunk are 256
 *   contiguous bytes and a warp (two chunks) reads 512. Word j (0..3) of a
 *   chunk holds weights 16j + m (m = 0..15), code t+1, at bit 8*(m%4) + 2*(m/4):
 *   (word >> 2i) & 0x03030303 gives 4 int8 lanes = weights 16j+4i .. 16j+4i+3,
 *   ready for dp4a against 4 consecutive int8 activations, and also the mma
 *   A-fragment layout. Dot products are computed on the codes (0,1,2) and
 *   corrected by the activation sum: sum t*q = sum code*q - sum q.
 *
 *   Float (F32/F16/BF16) and I8: row-major, physical rows in the same order,
 *   row stride `ld` elements (I8 rows padded to 16 bytes).
 *
 * Physical rows: a fused linear concatenates its parts (q|k|v) or interleaves
 * two (gate/up, "GLU"): in each group of 16 physical rows, rows 0-7 are gate
 * rows 8q..8q+7 and rows 8-15 the matching up rows, so one thread of the GEMV
 * epilogue and one lane of the mma accumulator hold both halves of a pair.
 * Padding rows are zero weights; their outputs are never stored. */
#ifndef OB_CUDA_INTERNAL_H
#define OB_CUDA_INTERNAL_H

#include "backend/cuda/gpu_vendor.h"
#include "backend/cuda/timeline.h"

#include <stdint.h>

enum cu_wkind { CU_W_T2, CU_W_F32, CU_W_F16, CU_W_BF16, CU_W_I8 };
/* Epilogue: what a linear does with its output rows. */
enum cu_epi {
    CU_EPI_STORE,     /* y[r] = v */
    CU_EPI_ADD,       /* y[r] += v (residual fused into the producer) */
    CU_EPI_GLU_RELU2, /* y[r] = relu(gate_r)^2 * up_r */
    CU_EPI_GLU_SILU,  /* y[r] = silu(gate_r) * up_r */
};

#define CU_GROUP 16      /* physical rows per group */
#define CU_THREADS 256   /* threads per GEMV block */
#define CU_CHUNK 64      /* weights per 16-byte GP2 chunk */

typedef struct cu_linear {
    int kind;            /* cu_wkind */
    void *w;             /* device weights (layout above) */
    float *beta;         /* [n_phys] per-row output scale (T2, I8); NULL for float */
    int n_phys;          /* physical rows, a multiple of CU_GROUP */
    int n_out;           /* logical outputs */
    int K;               /* inputs */
    int ld;              /* T2: padded K (multiple of 128); float/I8: row stride in elements */
    int epi;             /* cu_epi */
    int8_t *w8;          /* T2 only, may be NULL: the ternary values as int8, [n_phys][ld]
                            row-major, for the cuBLASLt prefill GEMM (gemm_lt.cu) */
} cu_linear;

/* The input of a linear: rows x[t * ldx .. + K), optionally RMS-normalized
 * with weight `norm` first (the norm is fused into every consumer). */
typedef struct cu_input {
    const float *x;
    int ldx;
    const float *norm;   /* NULL: no norm */
    float eps;
} cu_input;

/* Decode GEMV (any n_tok, grid.y = token; each block normalizes/quantizes its
 * token's input itself). argmax (may be NULL): packed (value, ~row) maxima per
 * token, see cu_argmax_key. */
cudaError_t cu_gemv(const cu_linear *L, const cu_input *in, int n_tok, float *y, int ldy,
                    unsigned long long *argmax, cudaStream_t st);

/* Prefill path: RMSNorm (optional) + int8 quantization of n_tok rows into q
 * [n_tok][K_pad] (zero padded), scales s[t] and sums qsum[t]. */
cudaError_t cu_norm_quant(const cu_input *in, int K, int K_pad, int n_tok, int8_t *q, float *s, int *qsum,
                          cudaStream_t st);
/* Prefill path: RMSNorm of n_tok rows into xn [n_tok][K] (float linears). */
cudaError_t cu_norm_rows(const cu_input *in, int K, int n_tok, float *xn, cudaStream_t st);
/* Ternary GEMM on tensor cores (portable dp4a fallback elsewhere):
 * y[t][r] = epi((sum_c t_rc q_tc) / s_t * beta_r) for the pre-quantized rows. */
cudaError_t cu_gemm_t2(const cu_linear *L, const int8_t *q, const float *s, const int *qsum, int n_tok, float *y,
                       int ldy, cudaStream_t st);

/* Prefill ternary GEMM through cuBLASLt (gemm_lt.cu): int8 matmul of L->w8
 * and q into an int32 scratch, then k_gemm_t2's epilogue, bitwise equal to
 * cu_gemm_t2. The backend uses it for chunks of CU_LT_MIN_TOK tokens or more
 * when the library loads and the int8 weights fit (OB_CUDA_LT=0: never,
 * OB_CUDA_LT=N: from N tokens on). */
#define CU_LT_MIN_TOK 8 /* measured faster than k_gemm_t2 from 8 tokens on (docs/PERFORMANCE.md, v11) */
typedef struct cu_lt cu_lt; /* handle, workspace, int32 scratch, cached plans */
/* acc_elems: the largest n_tok * n_phys to run. cudaErrorNotSupported (logged
 * once) when libcublasLt cannot be loaded. */
cudaError_t cu_lt_create(size_t acc_elems, cu_lt **out);
void cu_lt_destroy(cu_lt *lt);
/* Bytes of L's int8 copy (0 unless ternary), and the copy made from L->w
 * into w8 (that many bytes of device memory). */
size_t cu_lt_weight_bytes(const cu_linear *L);
cudaError_t cu_lt_unpack(const cu_linear *L, int8_t *w8, cudaStream_t st);
/* y = epi(L(q)) like cu_gemm_t2 (no activation sums needed); L->w8 must be set. */
cudaError_t cu_gemm_lt(cu_lt *lt, const cu_linear *L, const int8_t *q, const float *s, int n_tok, float *y, int ldy,
                       cudaStream_t st);
/* Its second half (kernels.cu): y = epi(acc / s * beta) from acc [n_tok][n_phys]
 * = sum t*q, with k_gemm_t2's float operations. */
cudaError_t cu_lt_epilogue(const cu_linear *L, const int32_t *acc, const float *s, int n_tok, float *y, int ldy,
                           cudaStream_t st);

/* Token embedding rows -> h[t][n_embd]. */
typedef struct cu_embed {
    int kind;            /* CU_W_F32/F16/BF16/I8 (Q8_0 is converted to F32 at upload) */
    const void *w;       /* [n_vocab][ld] */
    const float *scale;  /* I8: per-row scale */
    int n_vocab, n_embd, ld;
} cu_embed;
/* argmax_reset (may be NULL): n_tok cells set to 0 for a following lm_head. */
cudaError_t cu_embed_rows(const cu_embed *E, const int32_t *tok, int n_tok, float *h,
                          unsigned long long *argmax_reset, cudaStream_t st);

/* Attention geometry and the device KV cache ([layer][seq][pos][n_kv*hd], f16
 * or f32). n_split <= 32. */
typedef struct cu_attn {
    int n_head, n_kv, hd, rope_dim;
    float rope_base;
    int rope_neox;
    const float *rope_cs; /* [n_ctx][rope_dim]: (cos, sin) of pos * freq_i, made by the host as the CPU does */
    int n_ctx;           /* positions per sequence */
    int n_split;         /* KV splits per (token, kv head) */
    int tile;            /* positions per staged K/V tile (set by cu_attention) */
    int min_chunk;       /* fewest positions per split (set by cu_attention): short
                            contexts use few splits, one (and no merge) up to min_chunk */
    int wide;            /* k_attn_decode's thread mapping for head_dim 128 (set by cu_attention) */
    int fuse_rope;       /* single tokens: cu_attention's qr is the raw qkv row (ldqkv
                            apart) and the kernel does RoPE + the KV append itself */
    int ldqkv;
    int kv_f32;          /* cache elements: float (1) or __half (0) */
    void *k, *v;         /* this layer's cache base (seq 0, pos 0) */
    size_t seq_stride;   /* elements per sequence = n_ctx * n_kv * hd */
    float *part;         /* [n_tok][n_kv][n_split][G*(hd+2) rounded up to 4] partial results */
    unsigned *count;     /* [n_tok][n_kv] arrival counters, zero between launches */
} cu_attn;
/* qkv: [n_tok][ldqkv] with q (n_head*hd), k, v (n_kv*hd each) after each
 * other. RoPE on q -> qr [n_tok][n_head*hd]; k (roped) and v into the cache. */
cudaError_t cu_rope_kv(const cu_attn *A, const float *qkv, int ldqkv, const int32_t *pos, const int32_t *seq,
                       int n_tok, float *qr, cudaStream_t st);
/* Split-KV attention over positions [0, pos[t]] of seq[t]; out [n_tok][n_head*hd].
 * With A->fuse_rope (n_tok = 1 only), qr is the raw qkv row and cu_rope_kv is skipped. */
cudaError_t cu_attention(const cu_attn *A, const float *qr, const int32_t *pos, const int32_t *seq, int n_tok,
                         float *out, cudaStream_t st);

/* Tensor-core causal attention for a prompt chunk: tokens at positions
 * p0 .. p0 + n_tok - 1 of sequence sq, whose K/V cu_rope_kv has appended;
 * qr, out as cu_attention. f16 cache and head_dim 128 only:
 * cudaErrorNotSupported otherwise (use cu_attention). */
cudaError_t cu_attention_prompt(const cu_attn *A, const float *qr, int p0, int sq, int n_tok, float *out,
                                cudaStream_t st);

/* Packs T2 rows into GP2. src: device T2 bytes; src_row[p] = byte offset of the
 * source row of physical row p in src, or -1 (padding); src_row_bytes each. */
cudaError_t cu_pack_t2(const uint8_t *src, const int64_t *src_row, int n_phys, int K, int K_pad, size_t src_row_bytes,
                       void *dst, cudaStream_t st);

/* Orders (value, row) pairs so that atomicMax picks the largest value and,
 * among equal values, the lowest row. */
static inline unsigned long long cu_argmax_key_host(float v, uint32_t row) {
    union { float f; uint32_t u; } c = { v };
    uint32_t o = (c.u & 0x80000000u) ? ~c.u : (c.u | 0x80000000u);
    return ((unsigned long long)o << 32) | (0xffffffffu - row);
}
static inline uint32_t cu_argmax_row(unsigned long long key) { return 0xffffffffu - (uint32_t)key; }

/* Shared memory (bytes) a GEMV of this linear needs; the backend raises the
 * kernels' limit once. */
size_t cu_gemv_smem(const cu_linear *L);
cudaError_t cu_kernels_init(int max_smem);
/* Programmatic dependent launch for every kernel (default on; OB_CUDA_PDL=0 turns it off). */
void cu_set_pdl(bool on);
/* Ternary GEMVs of at most max_tok tokens use the staged-weight kernel
 * (default 0: never; OB_CUDA_STAGED=N sets it), its block shares sized for
 * blocks_per_sm blocks on every SM (OB_CUDA_STAGED_BPS, default 1). */
void cu_set_gemv_staged(int max_tok, int blocks_per_sm);
/* k_attn_decode: the wide thread mapping for head_dim 128 (default on) and
 * the fewest positions per split (0: the defaults, AD_MINCHUNK and
 * AD_MINCHUNK_WIDE). */
void cu_set_attn_decode(bool wide, int min_chunk);
/* The diagnostic per-block timeline (timeline.cuh; cudaErrorNotSupported in
 * builds without it): the kernels append to buf (cap records; NULL: off). */
cudaError_t cu_timeline_arm(cu_tl_rec *buf, unsigned cap, cudaStream_t st);
cudaError_t cu_timeline_count(unsigned *n, cudaStream_t st);

/* ---- the persistent decode step (decode_step.cu) ---------------------------
 * One launch runs every layer of a single-token decode step: one block per
 * SM, the phases (embedding; per layer qkv, attention, o, gate/up, down)
 * separated by grid-wide barriers, and each phase's weights copied into
 * shared memory while the previous phase computes, so the weight stream never
 * waits for a kernel boundary. The lm_head stays a separate kernel. */

typedef struct cu_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* sub norms NULL when absent */
    cu_linear qkv, o, gu, down;
} cu_layer;

/* Phases of a step: the embedding, then 5 per layer (qkv, attention, o, gate/up, down). */
#define CU_MEGA_PHASES(n_layer) (1 + 5 * (n_layer))

typedef struct cu_mega {
    const cu_layer *layers;   /* device copy [n_layer] */
    int n_layer;
    cu_embed emb;
    cu_attn attn;             /* geometry; k, v: layer 0's cache; part, count: merge scratch */
    size_t layer_stride;      /* cache elements per layer */
    float *h, *qkv, *att, *mb; /* [E], [nqkv], [Q], [F] activations */
    int E, Q, F, nqkv;
    float eps;
    unsigned *bar;            /* grid barrier counter, zeroed before every launch */
    unsigned long long *amax; /* the head's argmax cell, zeroed by the step */
    unsigned long long *prof; /* NULL, or [CU_MEGA_PHASES(n_layer)][n_block][2] start/end
                                 stamps (ns, %globaltimer) of every block's phases */
    /* set by cu_mega_plan */
    int n_block;              /* persistent blocks, one per SM */
    int buf0, buf1;           /* bytes of the two weight buffers (qkv/gate-up, o/down) */
    int qs_bytes;             /* int8 activation row */
    int tile;                 /* attention positions per staged K/V tile */
    int max_split;            /* KV splits per head */
    size_t smem;              /* dynamic shared memory per block */
} cu_mega;

/* Checks that the model suits the persistent step (ternary linears, the
 * shapes it supports, weights per block within shared memory) and sizes it:
 * n_sm multiprocessors, max_smem bytes of opt-in shared memory per block.
 * host_layers: the layers as on the host (the device copy is M->layers).
 * cudaErrorNotSupported: use the per-kernel path. */
cudaError_t cu_mega_plan(cu_mega *M, const cu_layer *host_layers, int n_sm, size_t max_smem);
/* One decode step: step = device {token, pos, seq}. Leaves the last hidden
 * state in M->h (the lm_head reads it) and zeroes M->amax. */
cudaError_t cu_mega_decode(const cu_mega *M, const int32_t *step, cudaStream_t st);
/* Floats of attention partials (M->attn.part) a planned step needs. */
size_t cu_mega_part_floats(const cu_mega *M);

#endif
