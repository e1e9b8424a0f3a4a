/* Prefill ternary GEMMs through cuBLASLt's int8 tensor-core matmul.
 *
 * For prompt chunks of CU_LT_MIN_TOK tokens or more, a ternary linear runs as
 *
 *   acc[t][p] = sum_k w8[p][k] * q[t][k]          (cuBLASLt, int8 x int8 -> int32)
 *   y[t][r]   = epi(acc / s[t] * beta[p])         (cu_lt_epilogue, kernels.cu)
 *
 * where w8 is a second copy of the weights made at upload: the ternary values
 * themselves (-1/0/+1 as int8, physical row order, row-major [n_phys][ld]),
 * so acc is sum t*q directly, the integer k_gemm_t2 gets from codes minus the
 * activation sum. Integers are exact and the epilogue repeats k_gemm_t2's float
 * operations one by one, so both paths give the same bits.
 *
 * cuBLASLt is column-major: with m = n_phys, n = n_tok, k = ld, the weights
 * [n_phys][ld] are a k x m matrix used transposed, the activations [n_tok][ld]
 * a k x n matrix, and acc [n_tok][n_phys] the m x n result ("TN", the form
 * the int8 kernels require; ld is a multiple of 128 and n_phys of 16, within
 * their alignment rules).
 *
 * The library is loaded at run time (dlopen), so build/1bit still starts on
 * machines without it: cudart is static for the same reason. Only the types
 * come from <cublasLt.h>. When it cannot be loaded, cu_lt_create says why
 * once and the backend keeps k_gemm_t2. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/device_common.cuh"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

/* Only the header is needed at build time; a toolkit without it builds the
 * stubs at the end (k_gemm_t2 everywhere), as HIP does. */
#if !defined(OB_GPU_HIP) && defined(__has_include)
#if __has_include(<cublasLt.h>)
#define OB_HAVE_CUBLASLT 1
#endif
#endif

#ifdef OB_HAVE_CUBLASLT
#include <cublasLt.h>
#include <dlfcn.h>
#include <pthread.h>

/* ---- the library, resolved once per process ------------------------------- */

#define LT_FUNCS(X)                                                                                        \
    X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetVersion) X(cublasLtMatmulDescCreate)                  \
    X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)            \
    X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy)     \
    X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

static struct {
#define LT_FIELD(f) decltype(&::f) f;
    LT_FUNCS(LT_FIELD)
#undef LT_FIELD
} lt_api;
static const char *lt_error; /* why the library is unusable; NULL when loaded */
static pthread_once_t lt_once = PTHREAD_ONCE_INIT;

static void lt_load_try(void) {
    /* newest first; the toolkit's own directory when the loader path lacks it */
    static const char *const names[] = {
        "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
        "/usr/local/cuda/lib64/libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.12",
        "/usr/local/cuda/lib64/libcublasLt.so",
    };
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        lt_error = "libcublasLt not found";
        return;
    }
#define LT_RESOLVE(f)                                              \
    if (!(*(void **)&lt_api.f = dlsym(h, #f))) {                   \
        lt_error = "libcublasLt lacks " #f;                        \
        return;                                                    \
    }
    LT_FUNCS(LT_RESOLVE)
#undef LT_RESOLVE
}
static void lt_load(void) {
    lt_load_try();
    if (lt_error) ob_log(OB_LOG_INFO, "CUDA: %s: prefill GEMMs stay on k_gemm_t2", lt_error);
}

/* ---- per-backend state: handle, workspace, accumulator scratch, plans ----- */

#define LT_PLANS 16                 /* (m, k, n) shapes kept; a prompt needs 4 per chunk size */
#define LT_WORKSPACE (32u << 20)    /* cuBLASLt's advice for Hopper */

typedef struct lt_plan {
    int m, k, n;                    /* 0: empty slot */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct cu_lt {
    cublasLtHandle_t handle;
    void *workspace;                /* LT_WORKSPACE bytes */
    int32_t *acc;                   /* [acc_elems] int32 results of one matmul */
    size_t acc_elems;
    lt_plan plans[LT_PLANS];
    int next_evict;
};

static cudaError_t lt_status(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return cudaSuccess;
    ob_log(OB_LOG_WARN, "cuBLASLt: %s failed (status %d)", what, (int)s);
    return s == CUBLAS_STATUS_NOT_SUPPORTED ? cudaErrorNotSupported : cudaErrorUnknown;
}

static void plan_free(lt_plan *p) {
    if (p->c) lt_api.cublasLtMatrixLayoutDestroy(p->c);
    if (p->b) lt_api.cublasLtMatrixLayoutDestroy(p->b);
    if (p->a) lt_api.cublasLtMatrixLayoutDestroy(p->a);
    if (p->desc) lt_api.cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

/* Descriptors and the heuristic's first algorithm for acc (m x n) = w^T (k x m)^T q (k x n). */
static cudaError_t plan_make(cu_lt *lt, lt_plan *p, int m, int k, int n) {
    memset(p, 0, sizeof *p);
    cublasStatus_t s = lt_api.cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I);
    cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    if (!s) s = lt_api.cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t);
    if (!s) s = lt_api.cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n);
    if (!s) s = lt_api.cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8I, (uint64_t)k, (uint64_t)m, k);
    if (!s) s = lt_api.cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8I, (uint64_t)k, (uint64_t)n, k);
    if (!s) s = lt_api.cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32I, (uint64_t)m, (uint64_t)n, m);
    cublasLtMatmulPreference_t pref = NULL;
    if (!s) s = lt_api.cublasLtMatmulPreferenceCreate(&pref);
    size_t ws = LT_WORKSPACE;
    if (!s) s = lt_api.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!s) s = lt_api.cublasLtMatmulAlgoGetHeuristic(lt->handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res,
                                                      &found);
    if (pref) lt_api.cublasLtMatmulPreferenceDestroy(pref);
    if (!s && found < 1) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (s) {
        plan_free(p);
        return lt_status(s, "planning an int8 matmul");
    }
    p->algo = res.algo;
    p->m = m, p->k = k, p->n = n;
    return cudaSuccess;
}

static cudaError_t plan_get(cu_lt *lt, int m, int k, int n, const lt_plan **out) {
    for (int i = 0; i < LT_PLANS; i++) {
        const lt_plan *p = &lt->plans[i];
        if (p->m == m && p->k == k && p->n == n) {
            *out = p;
            return cudaSuccess;
        }
    }
    lt_plan *slot = NULL;
    for (int i = 0; i < LT_PLANS && !slot; i++)
        if (!lt->plans[i].m) slot = &lt->plans[i];
    if (!slot) { /* full: round robin (a run sees a handful of shapes) */
        slot = &lt->plans[lt->next_evict];
        lt->next_evict = (lt->next_evict + 1) % LT_PLANS;
        plan_free(slot);
    }
    cudaError_t e = plan_make(lt, slot, m, k, n);
    if (e == cudaSuccess) *out = slot;
    return e;
}

cudaError_t cu_lt_create(size_t acc_elems, cu_lt **out) {
    *out = NULL;
    pthread_once(&lt_once, lt_load);
    if (lt_error) return cudaErrorNotSupported; /* lt_load said why, once */
    cu_lt *lt = (cu_lt *)calloc(1, sizeof *lt);
    if (!lt) return cudaErrorMemoryAllocation;
    cudaError_t e = lt_status(lt_api.cublasLtCreate(&lt->handle), "cublasLtCreate");
    if (e == cudaSuccess) e = cudaMalloc(&lt->workspace, LT_WORKSPACE);
    if (e == cudaSuccess) e = cudaMalloc((void **)&lt->acc, acc_elems * sizeof(int32_t));
    if (e != cudaSuccess) {
        cudaGetLastError();
        cu_lt_destroy(lt);
        return e;
    }
    lt->acc_elems = acc_elems;
    ob_log(OB_LOG_INFO, "CUDA: prefill GEMMs through cuBLASLt %zu (int8 tensor cores)", lt_api.cublasLtGetVersion());
    *out = lt;
    return cudaSuccess;
}

void cu_lt_destroy(cu_lt *lt) {
    if (!lt) return;
    for (int i = 0; i < LT_PLANS; i++)
        if (lt->plans[i].m) plan_free(&lt->plans[i]);
    if (lt->handle) lt_api.cublasLtDestroy(lt->handle);
    cudaFree(lt->workspace);
    cudaFree(lt->acc);
    free(lt);
}

/* ---- int8 weight copy --------------------------------------------------------- */

/* One thread per (physical row, 64-weight chunk): the GP2 chunk (16 bytes,
 * word j holds weights 16j + m at bit 8*(m%4) + 2*(m/4), code t+1) becomes 64
 * int8 values t. GP2 padding (rows and columns) holds code 1, so it becomes 0. */
__global__ void k_unpack_t2_i8(const uint4 *w, int n_phys, int nchunk, int8_t *w8) {
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)n_phys * nchunk) return;
    int p = (int)(idx / nchunk), c = (int)(idx % nchunk);
    uint4 v = w[((size_t)(p / CU_GROUP) * nchunk + c) * CU_GROUP + p % CU_GROUP];
    unsigned words[4] = { v.x, v.y, v.z, v.w };
    uint4 out[4];
    unsigned *o = (unsigned *)out;
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            /* bytes of (word >> 2i) & 0x03030303 are the codes of weights 16j+4i .. +3 */
            unsigned codes = (words[j] >> (2 * i)) & T2_MASK;
            o[4 * j + i] = __vsub4(codes, 0x01010101u); /* per byte: code - 1 */
        }
    uint4 *dst = (uint4 *)(w8 + (size_t)p * nchunk * CU_CHUNK + (size_t)c * CU_CHUNK);
#pragma unroll
    for (int i = 0; i < 4; i++) dst[i] = out[i];
}

size_t cu_lt_weight_bytes(const cu_linear *L) { return L->kind == CU_W_T2 ? (size_t)L->n_phys * L->ld : 0; }

cudaError_t cu_lt_unpack(const cu_linear *L, int8_t *w8, cudaStream_t st) {
    if (L->kind != CU_W_T2 || L->ld % CU_CHUNK) return cudaErrorInvalidValue;
    int nchunk = L->ld / CU_CHUNK;
    size_t n = (size_t)L->n_phys * nchunk;
    k_unpack_t2_i8<<<(unsigned)((n + 255) / 256), 256, 0, st>>>((const uint4 *)L->w, L->n_phys, nchunk, w8);
    return cudaGetLastError();
}

/* ---- the GEMM -------------------------------------------------------------------- */

cudaError_t cu_gemm_lt(cu_lt *lt, const cu_linear *L, const int8_t *q, const float *s, int n_tok, float *y, int ldy,
                       cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (!lt || !L->w8 || L->kind != CU_W_T2 || L->n_phys % CU_GROUP || L->ld % 16) return cudaErrorInvalidValue;
    if ((size_t)n_tok * L->n_phys > lt->acc_elems) return cudaErrorInvalidValue;
    const lt_plan *p;
    cudaError_t e = plan_get(lt, L->n_phys, L->ld, n_tok, &p);
    if (e != cudaSuccess) return e;
    const int32_t one = 1, zero = 0;
    e = lt_status(lt_api.cublasLtMatmul(lt->handle, p->desc, &one, L->w8, p->a, q, p->b, &zero, lt->acc, p->c, lt->acc,
                                        p->c, &p->algo, lt->workspace, LT_WORKSPACE, st),
                  "int8 matmul");
    if (e != cudaSuccess) return e;
    return cu_lt_epilogue(L, lt->acc, s, n_tok, y, ldy, st);
}

#else /* HIP (hipBLASLt would take this place) or no cublasLt.h: k_gemm_t2 everywhere */

cudaError_t cu_lt_create(size_t acc_elems, cu_lt **out) {
    (void)acc_elems;
    *out = NULL;
    return cudaErrorNotSupported;
}
void cu_lt_destroy(cu_lt *lt) { (void)lt; }
size_t cu_lt_weight_bytes(const cu_linear *L) { return 0; }
cudaError_t cu_lt_unpack(const cu_linear *L, int8_t *w8, cudaStream_t st) { return cudaErrorNotSupported; }
cudaError_t cu_gemm_lt(cu_lt *lt, const cu_linear *L, const int8_t *q, const float *s, int n_tok, float *y, int ldy,
                       cudaStream_t st) {
    return cudaErrorNotSupported;
}

#endif
