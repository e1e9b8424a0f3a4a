/* CUDA backend extras callable from C: device probing, the bandwidth probe
 * the benchmark reports against, and test hooks that run single kernels on
 * host data (tests/gpu compares them with the CPU scalar twins).
 * Everything here exists only when built with OB_HAVE_CUDA. */
#ifndef OB_CUDA_H
#define OB_CUDA_H

#include "backend/backend.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef OB_HAVE_CUDA

/* Number of usable CUDA devices; 0 when there is no driver or GPU (never fails). */
int ob_cuda_device_count(void);
/* Device name into buf (empty when unavailable). */
void ob_cuda_device_name(int device, char *buf, size_t size);
/* Device-to-device copy bandwidth in GB/s, counting bytes read plus written
 * (the ceiling a decode step is measured against). */
ob_status ob_cuda_probe_bandwidth(int device, double *gbps);
/* Whether a CUDA backend decodes single tokens through the persistent step
 * (decode_step.cu) rather than one kernel per operation. */
int ob_cuda_persistent_decode(const ob_backend *b);
/* Whether a CUDA backend runs prompt GEMMs through cuBLASLt (gemm_lt.cu). */
int ob_cuda_lt_prefill(const ob_backend *b);

/* ---- test hooks (tests/gpu) ------------------------------------------------
 * One fused linear on the GPU: parts are concatenated (glu = 0) or
 * interleaved as gate/up pairs (glu = 1, two parts, output act(gate) * up with
 * relu^2 when relu2 else silu). The input rows x [n_tok][in] are RMS-normed
 * with `norm` first when it is not NULL. epi_add: y += result instead of y =.
 * use_gemm: the prefill path (quantize rows, tensor-core GEMM) instead of the
 * decode GEMV: 1 k_gemm_t2, 2 cuBLASLt's int8 matmul (ternary weights only;
 * fails when libcublasLt cannot be loaded). argmax (may be NULL): [n_tok] row of the largest output.
 * I8 parts use part->scale as per-row scales. y: [n_tok][n_out]. */
ob_status ob_cuda_test_linear(const ob_linear *parts, int n_parts, int glu, int relu2, const float *norm, float eps,
                              const float *x, int n_tok, int epi_add, int use_gemm, float *y, int32_t *argmax);
/* Ternary decode GEMVs of at most max_tok tokens take the staged-weight
 * kernel (k_gemv_t2s; default 0), others the register-weight one; its block
 * shares are sized for blocks_per_sm blocks on every SM (default 1). */
void ob_cuda_test_gemv_staged(int max_tok, int blocks_per_sm);
/* The decode attention's thread mapping for head_dim 128 (wide: default 1;
 * 0: the general one, bitwise the same results) and its fewest positions per
 * split (0: the default). */
void ob_cuda_test_attn_decode(int wide, int min_chunk);
/* RMSNorm (norm may be NULL) + int8 quantization of n_tok rows of n. */
ob_status ob_cuda_test_quant(const float *x, int n, int n_tok, const float *norm, float eps, int8_t *q, float *s,
                             int32_t *qsum);
/* RoPE + KV append + split-KV attention for one sequence: tokens at positions
 * 0..n_tok-1 given as qkv rows [n_tok][(n_head + 2 n_kv) * hd], processed as
 * one batch with n_split splits (0: the tensor-core prompt kernel, head_dim
 * 128 only); rope_cs [n_tok][rope_dim] (cos, sin).
 * out [n_tok][n_head * hd]; q_roped [n_tok][n_head * hd]; k_cache, v_cache
 * [n_tok][n_kv * hd] as stored (f16 bits). */
ob_status ob_cuda_test_attention(int n_head, int n_kv, int hd, int rope_dim, int neox, const float *rope_cs,
                                 const float *qkv, int n_tok, int n_split, float *out, float *q_roped,
                                 uint16_t *k_cache, uint16_t *v_cache);
/* The same tokens as ob_cuda_test_attention, decoded one at a time as a decode
 * step does (fused RoPE + KV append, single-token kernel): step t at position
 * t over a cache of kv_f32 ? f32 : f16 elements, n_split splits.
 * out [n_tok][n_head * hd]; k_cache, v_cache [n_tok][n_kv * hd] elements as
 * stored (2 or 4 bytes each). */
ob_status ob_cuda_test_attention_steps(int n_head, int n_kv, int hd, int rope_dim, int neox, const float *rope_cs,
                                       const float *qkv, int n_tok, int n_split, int kv_f32, float *out,
                                       void *k_cache, void *v_cache);
/* Embedding rows of ids through the model's token embedding. */
ob_status ob_cuda_test_embed(const ob_model *m, const int32_t *ids, int n, float *out);

#endif

#ifdef __cplusplus
}
#endif
#endif
