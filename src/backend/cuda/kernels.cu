/* CUDA kernels of the decode and prefill paths (layouts: cuda_internal.h).
 *
 * Numerics follow backend/cpu/kernels.h exactly where the contract is exact:
 * int8 activation quantization (float32 products, round half to even via
 * rintf), integer ternary dot products, then y = acc / s * beta in float32.
 * Products and sums that the CPU writes as separate operations use __fmul_rn /
 * __fadd_rn so nvcc cannot contract them into FMAs. Float reductions (norms,
 * float GEMV, attention) differ from the CPU only in summation order. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/device_common.cuh"
#include "backend/cuda/timeline.cuh"

#include <math.h>
#include <stdlib.h>

#define WARPS (CU_THREADS / 32)

/* Every kernel is launched through here: with programmatic dependent launch
 * when cu_pdl is set (each kernel waits with OB_PDL_WAIT before it reads what
 * earlier kernels wrote), else as a plain launch. */
static bool cu_pdl = true;
void cu_set_pdl(bool on) { cu_pdl = on; }

/* Ternary GEMVs of at most cu_staged_tok tokens take the staged-weight
 * kernel, k_gemv_t2s. Off (0) by default: in the decode graph it measured
 * slower than k_gemv_t2 (docs/PERFORMANCE.md, CUDA v13); OB_CUDA_STAGED=1
 * turns it on, and the GPU tests run both. */
static int cu_staged_tok = 0, cu_staged_bps = 1;
void cu_set_gemv_staged(int max_tok, int blocks_per_sm) {
    cu_staged_tok = max_tok;
    cu_staged_bps = blocks_per_sm > 0 ? blocks_per_sm : 1;
}
/* Shared memory one staged block may take: with 227 KB per SM on Hopper, two
 * of them and a neighbour kernel's block fit side by side. */
#define T2S_MAX_SMEM (96 * 1024)

static int cu_sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && v > 0)
            n = v;
        else
            n = 132;
    }
    return n;
}

template <typename... KArgs, typename... Args>
static cudaError_t launch_k(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, Args... args) {
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    /* One shared-memory carve-out for every kernel, so consecutive kernels of
     * a step never wait for the SMs to reconfigure L1 versus shared memory;
     * the largest when staged GEMVs run, so that their blocks (up to 96 KB)
     * can sit beside the blocks of the kernels around them. */
    cudaError_t ce = cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout, cu_staged_tok ? 100 : 50);
    if (ce != cudaSuccess) return ce;
#if defined(OB_GPU_HIP)
    k<<<grid, block, smem, st>>>(args...);
    return cudaGetLastError();
#else
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = cu_pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, args...);
#endif
}

/* The diagnostic timeline (timeline.cuh): arms the kernels of this file. */
cudaError_t cu_timeline_arm(cu_tl_rec *buf, unsigned cap, cudaStream_t st) {
#ifdef OB_CUDA_TIMELINE
    return cu_tl_arm_here(buf, cap, st);
#else
    (void)buf, (void)cap, (void)st;
    return cudaErrorNotSupported;
#endif
}
cudaError_t cu_timeline_count(unsigned *n, cudaStream_t st) {
#ifdef OB_CUDA_TIMELINE
    return cu_tl_count_here(n, st);
#else
    (void)n, (void)st;
    return cudaErrorNotSupported;
#endif
}

/* ---- block reductions (CU_THREADS threads; every thread gets the result) -- */


/* sh: WARPS values of scratch. The tree and the order of the final sum are
 * fixed, so every block computes bitwise the same result from the same data. */
__device__ static float block_max(float v, float *sh) {
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = sh[0];
    for (int i = 1; i < WARPS; i++) t = fmaxf(t, sh[i]);
    __syncthreads();
    return t;
}
__device__ static double block_sum_d(double v, double *sh) {
    for (int o = 16; o; o >>= 1) v += OB_SHFL_XOR(v, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    for (int i = 0; i < WARPS; i++) t += sh[i];
    __syncthreads();
    return t;
}
__device__ static int block_sum_i(int v, int *sh) {
    v = warp_sum_i(v);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    int t = 0;
    for (int i = 0; i < WARPS; i++) t += sh[i];
    __syncthreads();
    return t;
}

/* Sum of q over the block: into *qsum (block in sync on return), or, with
 * qsum NULL, deferred: each warp's sum goes to shi[warp] after one barrier,
 * and the caller adds shi[0..WARPS) after its own next barrier. */
__device__ static void finish_qsum(int sum, int *qsum, int *shi) {
    if (qsum) {
        *qsum = block_sum_i(sum, shi);
        return;
    }
    sum = warp_sum_i(sum);
    if ((threadIdx.x & 31) == 0) shi[threadIdx.x >> 5] = sum;
    __syncthreads();
}

/* ---- prologues: RMSNorm (optional) and int8 quantization of one row -------
 * The row is staged once in shared memory (xs) with independent, unrolled
 * loads; every later pass reads it there. */

/* xs[0..K) = x, RMS-normalized with weight `norm` when it is not NULL:
 * x * (1 / sqrt(mean(x^2) + eps)) * norm, the sum of squares in double as the
 * CPU computes it, so the scale almost always matches it bitwise despite the
 * different summation order. */
__device__ static void stage_row(const float *x, int K, const float *norm, float eps, float *xs) {
    __shared__ double shd[WARPS];
    double ss = 0.0;
#pragma unroll 4
    for (int i = threadIdx.x; i < K; i += CU_THREADS) {
        float v = x[i];
        xs[i] = v;
        ss += (double)v * (double)v;
    }
    if (!norm) return; /* each thread reads back only the elements it wrote */
    ss = block_sum_d(ss, shd);
    float inv = 1.0f / sqrtf((float)(ss / (double)K) + eps);
#pragma unroll 4
    for (int i = threadIdx.x; i < K; i += CU_THREADS) xs[i] = __fmul_rn(__fmul_rn(xs[i], inv), norm[i]);
}

/* Stages the row in xs, then q[0..K_pad) = its int8 quantization (zero
 * padded); returns s and the sum of q (finish_qsum). Ends with the block in sync. */
__device__ static float quantize_row(const float *x, int K, int K_pad, const float *norm, float eps, float *xs,
                                     int8_t *q, int *qsum, float *shf, int *shi) {
    stage_row(x, K, norm, eps, xs);
    float m = 1e-5f;
    for (int i = threadIdx.x; i < K; i += CU_THREADS) m = fmaxf(m, fabsf(xs[i]));
    m = block_max(m, shf);
    float s = 127.0f / m;
    int sum = 0;
    for (int i = threadIdx.x; i < K_pad; i += CU_THREADS) {
        int v = 0;
        if (i < K) v = quant_i8(xs[i], s);
        q[i] = (int8_t)v;
        sum += v;
    }
    finish_qsum(sum, qsum, shi);
    return s;
}

/* The same with the row in registers (K % 4 == 0, K <= 1024 * NV): float4
 * loads, packed char4 stores, no staging pass. The norm weights are loaded
 * before OB_PDL_WAIT (they do not depend on the predecessor kernel), which
 * this function calls. Bitwise the same results as quantize_row. */
template <int NV>
__device__ static float quantize_row_fast(const float *x, int K, int K_pad, const float *norm, float eps, int8_t *q,
                                          int *qsum, float *shf, int *shi) {
    __shared__ double shd[WARPS];
    const int K4 = K / 4;
    float4 g[NV], v[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = threadIdx.x + i * CU_THREADS;
        if (norm && j < K4) g[i] = OB_LDG((const float4 *)norm + j);
    }
    OB_PDL_WAIT();
    double ss = 0.0;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = threadIdx.x + i * CU_THREADS;
        if (j < K4) {
            v[i] = ((const float4 *)x)[j];
            if (norm)
                ss += ((double)v[i].x * v[i].x + (double)v[i].y * v[i].y) +
                      ((double)v[i].z * v[i].z + (double)v[i].w * v[i].w);
        }
    }
    float inv = 1.0f;
    if (norm) {
        ss = block_sum_d(ss, shd);
        inv = 1.0f / sqrtf((float)(ss / (double)K) + eps);
    }
    float m = 1e-5f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = threadIdx.x + i * CU_THREADS;
        if (j < K4) {
            if (norm) {
                v[i].x = __fmul_rn(__fmul_rn(v[i].x, inv), g[i].x);
                v[i].y = __fmul_rn(__fmul_rn(v[i].y, inv), g[i].y);
                v[i].z = __fmul_rn(__fmul_rn(v[i].z, inv), g[i].z);
                v[i].w = __fmul_rn(__fmul_rn(v[i].w, inv), g[i].w);
            }
            m = fmaxf(m, fmaxf(fmaxf(fabsf(v[i].x), fabsf(v[i].y)), fmaxf(fabsf(v[i].z), fabsf(v[i].w))));
        }
    }
    m = block_max(m, shf);
    float s = 127.0f / m;
    int sum = 0;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = threadIdx.x + i * CU_THREADS;
        if (j < K4) {
            sum += quant_i8x4(v[i], s, (char4 *)q + j);
        }
    }
    for (int j = K4 + threadIdx.x; j < K_pad / 4; j += CU_THREADS) ((int *)q)[j] = 0;
    finish_qsum(sum, qsum, shi);
    return s;
}

/* Picks the register-resident prologue when the row fits, else the staged one. */
__device__ static float quantize_any(const float *x, int K, int K_pad, const float *norm, float eps, float *xs,
                                     int8_t *q, int *qsum, float *shf, int *shi) {
    if (K % 4 == 0 && K <= 4 * CU_THREADS * 3) return quantize_row_fast<3>(x, K, K_pad, norm, eps, q, qsum, shf, shi);
    if (K % 4 == 0 && K <= 4 * CU_THREADS * 7) return quantize_row_fast<7>(x, K, K_pad, norm, eps, q, qsum, shf, shi);
    OB_PDL_WAIT();
    return quantize_row(x, K, K_pad, norm, eps, xs, q, qsum, shf, shi);
}

/* Dynamic shared memory of a prologue: xs (K floats, 16-byte rounded) then q. */
__host__ __device__ static inline size_t xs_bytes(int K) { return ((size_t)K * 4 + 15) / 16 * 16; }

/* ---- epilogues ---------------------------------------------------------- */


/* ysm: the block's n physical rows starting at physical row prow0 (a multiple
 * of CU_GROUP). y: this token's output row. Ends with the block in sync. */
template <int EPI>
__device__ static void epilogue(const float *ysm, int n, int prow0, const cu_linear &L, float *y,
                                unsigned long long *amax) {
    int t = threadIdx.x;
    if (t < n) {
        if (EPI == CU_EPI_STORE || EPI == CU_EPI_ADD) {
            int r = prow0 + t;
            if (r < L.n_out) y[r] = EPI == CU_EPI_ADD ? __fadd_rn(y[r], ysm[t]) : ysm[t];
        } else if ((t & 15) < 8) {
            int r = (prow0 + t - (t & 15)) / 2 + (t & 15);
            float g = ysm[t], u = ysm[t + 8];
            if (r < L.n_out) y[r] = __fmul_rn(EPI == CU_EPI_GLU_RELU2 ? act_relu2(g) : act_silu(g), u);
        }
    }
    if (EPI == CU_EPI_STORE && amax) {
        if (t < 32) {
            unsigned long long best = 0;
            for (int i = t; i < n; i += 32)
                if (prow0 + i < L.n_out) {
                    unsigned long long k = argmax_key(ysm[i], (unsigned)(prow0 + i));
                    best = k > best ? k : best;
                }
            for (int o = 16; o; o >>= 1) {
                unsigned long long k = OB_SHFL_XOR(best, o);
                best = k > best ? k : best;
            }
            if (t == 0 && best) atomicMax(amax, best);
        }
    }
    __syncthreads();
}

/* ---- ternary GEMV --------------------------------------------------------- */


/* Chunks per thread held in registers before the prologue: 8 when the input
 * row takes 7 float4 per thread (K <= 7168; stays within 128 registers, two
 * blocks per SM), else 12 (e.g. 4 groups x 3 chunks: every weight of a
 * 4-group block at K <= 3072). */
__host__ __device__ static constexpr int t2_prefetch(int nv) { return nv == 7 ? 8 : 12; }


/* Block: 16 rows x 16 K-slices (thread t: row t%16, slice t/16, chunks
 * slice, slice+16, ...) for each of GPB (1, 2 or 4) groups of 16 rows.
 * grid = (groups/GPB, n_tok). Register slot k holds chunk slice + 16 (k / GPB)
 * of group k % GPB, so the group of every slot is known at compile time; the
 * slots and the rows' beta are loaded before the prologue, so their latency
 * hides behind the norm and the quantization (and, with PDL, behind the
 * previous kernel's tail). The prologue's activation sum is deferred to the
 * final reduction (finish_qsum), and slice pairs meet by shuffle: after the
 * input row the block passes six barriers (normed prologue: five), not nine. */
template <int GPB, int EPI, int NV>
__global__ void __launch_bounds__(CU_THREADS) k_gemv_t2(cu_linear L, cu_input in, float *y, int ldy,
                                                        unsigned long long *amax) {
    OB_TL_SCOPE(CU_TL_GEMV_T2 | EPI);
    constexpr int PF = t2_prefetch(NV), SLOTS = PF / GPB; /* SLOTS: chunks per group in registers */
    extern __shared__ __align__(16) unsigned char smem[];
    float *xs = (float *)smem;
    int8_t *qs = (int8_t *)(smem + xs_bytes(L.K));
    __shared__ int red[GPB][WARPS][16];
    __shared__ float shf[WARPS];
    __shared__ int shi[WARPS];
    const int tid = threadIdx.x, row = tid & 15, slice = tid >> 4, warp = tid >> 5, tok = blockIdx.y;
    const int nchunk = L.ld / CU_CHUNK, n_groups = L.n_phys / CU_GROUP;
    const uint4 *W = (const uint4 *)L.w;
    const int g0 = blockIdx.x * GPB, ng = min(GPB, n_groups - g0);

    uint4 wr[GPB * SLOTS];
#pragma unroll
    for (int k = 0; k < GPB * SLOTS; k++) {
        int g = k % GPB, c = slice + 16 * (k / GPB);
        if (g < ng && c < nchunk) wr[k] = OB_LDG(W + ((size_t)(g0 + g) * nchunk + c) * 16 + row);
    }
    const float beta = tid < 16 * ng ? OB_LDG(L.beta + g0 * 16 + tid) : 0.0f;
    OB_PDL_LAUNCH();
    /* the prologue waits for the predecessor's output; NV: float4 per thread
     * of the register-resident path (0: the staged path) */
    float s;
    const float *x = in.x + (size_t)tok * in.ldx;
    if (NV) {
        s = quantize_row_fast<NV ? NV : 1>(x, L.K, L.ld, in.norm, in.eps, qs, NULL, shf, shi);
    } else {
        OB_PDL_WAIT();
        s = quantize_row(x, L.K, L.ld, in.norm, in.eps, xs, qs, NULL, shf, shi);
    }
    OB_TL_MARK(0);
    const int prow0 = g0 * CU_GROUP;
    float *yt = y + (size_t)tok * ldy;
    float yold = 0.0f; /* residual, read now so its latency overlaps the dot products */
    if (EPI == CU_EPI_ADD && tid < 16 * ng && prow0 + tid < L.n_out) yold = yt[prow0 + tid];

    int acc[GPB];
#pragma unroll
    for (int g = 0; g < GPB; g++) acc[g] = 0;
#pragma unroll
    for (int k = 0; k < GPB * SLOTS; k++) {
        int g = k % GPB, c = slice + 16 * (k / GPB);
        if (g < ng && c < nchunk) acc[g] = dot64(wr[k], qs + c * CU_CHUNK, acc[g]);
    }
#pragma unroll
    for (int g = 0; g < GPB; g++) /* rows longer than the slots (K > 64 * 16 * SLOTS): loaded here */
        if (g < ng)
            for (int c = slice + 16 * SLOTS; c < nchunk; c += 16)
                acc[g] = dot64(OB_LDG(W + ((size_t)(g0 + g) * nchunk + c) * 16 + row), qs + c * CU_CHUNK, acc[g]);
    OB_TL_MARK(1);
    /* lanes l and l ^ 16 hold the same row (slices 2w, 2w + 1) */
#pragma unroll
    for (int g = 0; g < GPB; g++) {
        int v = acc[g] + OB_SHFL_XOR(acc[g], 16);
        if ((tid & 31) < 16) red[g][warp][row] = v;
    }
    __syncthreads();
    OB_TL_MARK(2);
    if (warp < (GPB + 1) / 2) { /* whole warps: thread tid finishes row tid of the block */
        const int g = min(tid >> 4, GPB - 1); /* GPB 1: lanes 16-31 repeat group 0, store nothing */
        int t = 0, qsum = 0;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            t += red[g][w][row];
            qsum += shi[w];
        }
        float v = __fmul_rn(__fmul_rn((float)(t - qsum), __fdiv_rn(1.0f, s)), beta);
        epilogue_warp<EPI>(v, yold, ng * 16 - 32 * warp, prow0 + 32 * warp, L, yt, amax ? amax + tok : NULL);
    }
}

/* ---- ternary GEMV, weights staged in shared memory --------------------------
 * k_gemv_t2 keeps its weights in registers: 115-134 per thread, two blocks
 * fill an SM, so the next kernel's blocks cannot become resident (and start
 * their own weight loads) until this kernel's blocks have left, and every
 * GEMV of a step pays its weight latency after its predecessor ends. Here a
 * block owns gpb (<= T2S_MAXG) consecutive groups, at most one block per SM,
 * and one warp starts bulk copies of the whole share (one contiguous range)
 * into shared memory before the block waits for its predecessor; the block
 * needs half the registers, so with PDL it sits beside the running kernel and
 * its weights arrive while that kernel computes. The arithmetic is
 * k_gemv_t2's (bitwise equal): the same prologue, integer dot products and
 * epilogue. Shared memory: the weights, q [ld], the copy's mbarrier.
 * Measured (CUDA v13): as fast as k_gemv_t2 alone, slower in the decode
 * graph, so it is opt-in (OB_CUDA_STAGED=1) until that is understood. */
#define T2S_MAXG 8

__host__ __device__ static inline size_t t2s_weight_bytes(const cu_linear &L, int gpb) {
    return (size_t)gpb * (L.ld / CU_CHUNK) * CU_GROUP * 16;
}
static size_t t2s_smem(const cu_linear &L, int gpb) { return t2s_weight_bytes(L, gpb) + (size_t)L.ld + 16; }

template <int EPI, int NV>
__global__ void __launch_bounds__(CU_THREADS) k_gemv_t2s(cu_linear L, cu_input in, float *y, int ldy,
                                                         unsigned long long *amax, int gpb) {
    OB_TL_SCOPE(CU_TL_GEMV_T2S | EPI);
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ int red[T2S_MAXG][WARPS][16];
    __shared__ float shf[WARPS];
    __shared__ int shi[WARPS];
    const int tid = threadIdx.x, row = tid & 15, slice = tid >> 4, warp = tid >> 5, tok = blockIdx.y;
    const int nchunk = L.ld / CU_CHUNK, n_groups = L.n_phys / CU_GROUP;
    const int g0 = blockIdx.x * gpb, ng = min(gpb, n_groups - g0);
    const size_t wbytes = t2s_weight_bytes(L, gpb), nbytes = (size_t)ng * nchunk * CU_GROUP * 16;
    const uint4 *ws = (const uint4 *)smem;
    int8_t *qs = (int8_t *)(smem + wbytes);
    const unsigned char *src = (const unsigned char *)L.w + (size_t)g0 * nchunk * CU_GROUP * 16;
#ifdef OB_HAVE_BULK_COPY
    unsigned long long *bar = (unsigned long long *)(qs + L.ld); /* ld: a multiple of 64 */
    if (warp == 0) { /* lane 0 arms the barrier, every lane starts 16 KB pieces */
        if (tid == 0) {
            ob_mbar_init(bar, 1);
            ob_fence_proxy_async();
            ob_mbar_expect(bar, (unsigned)nbytes);
        }
        __syncwarp();
        const size_t piece = 16384;
        for (size_t off = tid * piece; off < nbytes; off += 32 * piece)
            ob_bulk_copy(smem + off, src + off, (unsigned)(nbytes - off < piece ? nbytes - off : piece), bar);
    }
#else
    for (size_t i = tid; i < nbytes / 16; i += CU_THREADS) OB_CP_ASYNC16((uint4 *)smem + i, (const uint4 *)src + i);
    OB_CP_COMMIT();
#endif
    const float beta = tid < 16 * ng ? OB_LDG(L.beta + g0 * 16 + tid) : 0.0f;
    const float *x = in.x + (size_t)tok * in.ldx;
    const float s = quantize_row_fast<NV>(x, L.K, L.ld, in.norm, in.eps, qs, NULL, shf, shi); /* ends in a barrier */
    /* the successor may start only now that this kernel's own wait has
     * returned: launched earlier, it would start its successor in turn, and
     * blocks of several kernels ahead would hold the SMs while they wait */
    OB_PDL_LAUNCH();
    OB_TL_MARK(0);
    const int prow0 = g0 * CU_GROUP;
    float *yt = y + (size_t)tok * ldy;
    float yold = 0.0f;
    if (EPI == CU_EPI_ADD && tid < 16 * ng && prow0 + tid < L.n_out) yold = yt[prow0 + tid];
#ifdef OB_HAVE_BULK_COPY
    ob_mbar_wait(bar, 0); /* the barrier's init was published by the prologue's barriers */
#else
    OB_CP_WAIT(0);
    __syncthreads();
#endif
    OB_TL_MARK(1);
    int acc[T2S_MAXG];
#pragma unroll
    for (int g = 0; g < T2S_MAXG; g++) {
        acc[g] = 0;
        if (g < ng)
            for (int c = slice; c < nchunk; c += 16)
                acc[g] = dot64(ws[((size_t)g * nchunk + c) * 16 + row], qs + c * CU_CHUNK, acc[g]);
    }
#pragma unroll
    for (int g = 0; g < T2S_MAXG; g++) { /* lanes l and l ^ 16 hold the same row */
        int v = acc[g] + OB_SHFL_XOR(acc[g], 16);
        if (g < ng && (tid & 31) < 16) red[g][warp][row] = v;
    }
    __syncthreads();
    if (warp < (ng + 1) / 2) { /* thread tid finishes row tid of the block */
        const int g = min(tid >> 4, ng - 1);
        int t = 0, qsum = 0;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            t += red[g][w][row];
            qsum += shi[w];
        }
        float v = __fmul_rn(__fmul_rn((float)(t - qsum), __fdiv_rn(1.0f, s)), beta);
        epilogue_warp<EPI>(v, yold, ng * 16 - 32 * warp, prow0 + 32 * warp, L, yt, amax ? amax + tok : NULL);
    }
}

/* ---- float-weight GEMV (F32/F16/BF16 rows) -------------------------------- */

template <typename WT> struct wtraits;
template <> struct wtraits<float> {
    static __device__ inline float get(const float *p, int i) { return p[i]; }
    enum { VEC = 4 };
    static __device__ inline float dot16(uint4 v, const float *x) {
        return __uint_as_float(v.x) * x[0] + __uint_as_float(v.y) * x[1] + __uint_as_float(v.z) * x[2] +
               __uint_as_float(v.w) * x[3];
    }
};
template <> struct wtraits<__half> {
    static __device__ inline float get(const __half *p, int i) { return __half2float(p[i]); }
    enum { VEC = 8 };
    static __device__ inline float dot16(uint4 v, const float *x) {
        float2 a = h2f(v.x), b = h2f(v.y), c = h2f(v.z), d = h2f(v.w);
        return a.x * x[0] + a.y * x[1] + b.x * x[2] + b.y * x[3] + c.x * x[4] + c.y * x[5] + d.x * x[6] + d.y * x[7];
    }
};
template <> struct wtraits<__nv_bfloat16> {
    static __device__ inline float get(const __nv_bfloat16 *p, int i) { return __bfloat162float(p[i]); }
    enum { VEC = 8 };
    static __device__ inline float dot16(uint4 v, const float *x) {
        float2 a = b2f(v.x), b = b2f(v.y), c = b2f(v.z), d = b2f(v.w);
        return a.x * x[0] + a.y * x[1] + b.x * x[2] + b.y * x[3] + c.x * x[4] + c.y * x[5] + d.x * x[6] + d.y * x[7];
    }
};

#define F_RPW 8 /* rows per warp: a block covers WARPS * F_RPW = 64 physical rows */

template <typename WT, int EPI>
__global__ void __launch_bounds__(CU_THREADS) k_gemv_f(cu_linear L, cu_input in, float *y, int ldy,
                                                       unsigned long long *amax) {
    OB_TL_SCOPE(CU_TL_GEMV_F | EPI);
    extern __shared__ __align__(16) unsigned char smem[];
    float *xs = (float *)smem;
    __shared__ float ysm[WARPS * F_RPW];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, tok = blockIdx.y;
    const int prow0 = blockIdx.x * WARPS * F_RPW;
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    stage_row(in.x + (size_t)tok * in.ldx, L.K, in.norm, in.eps, xs);
    __syncthreads();

    const WT *W = (const WT *)L.w;
    float acc[F_RPW];
    const WT *wrow[F_RPW];
#pragma unroll
    for (int j = 0; j < F_RPW; j++) {
        int r = prow0 + warp * F_RPW + j;
        acc[j] = 0.0f;
        wrow[j] = r < L.n_phys ? W + (size_t)r * L.ld : NULL;
    }
    const int V = wtraits<WT>::VEC;
    if (L.K % V == 0 && L.ld % V == 0) {
        for (int c = lane * V; c < L.K; c += 32 * V) {
            uint4 wv[F_RPW];
#pragma unroll
            for (int j = 0; j < F_RPW; j++)
                if (wrow[j]) wv[j] = OB_LDG((const uint4 *)(wrow[j] + c));
#pragma unroll
            for (int j = 0; j < F_RPW; j++)
                if (wrow[j]) acc[j] += wtraits<WT>::dot16(wv[j], xs + c);
        }
    } else {
        for (int c = lane; c < L.K; c += 32) {
#pragma unroll
            for (int j = 0; j < F_RPW; j++)
                if (wrow[j]) acc[j] += wtraits<WT>::get(wrow[j], c) * xs[c];
        }
    }
#pragma unroll
    for (int j = 0; j < F_RPW; j++) {
        float v = warp_sum(acc[j]);
        if (lane == 0) ysm[warp * F_RPW + j] = v;
    }
    __syncthreads();
    int n = min(WARPS * F_RPW, L.n_phys - prow0);
    epilogue<EPI>(ysm, n, prow0, L, y + (size_t)tok * ldy, amax ? amax + tok : NULL);
}

/* ---- int8-weight GEMV (quantized lm_head) -------------------------------- */

__global__ void __launch_bounds__(CU_THREADS) k_gemv_i8(cu_linear L, cu_input in, float *y, int ldy,
                                                        unsigned long long *amax) {
    OB_TL_SCOPE(CU_TL_GEMV_I8);
    extern __shared__ __align__(16) unsigned char smem[];
    float *xs = (float *)smem;
    int8_t *qs = (int8_t *)(smem + xs_bytes(L.K));
    __shared__ float ysm[WARPS * F_RPW];
    __shared__ float shf[WARPS];
    __shared__ int shi[WARPS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, tok = blockIdx.y;
    const int prow0 = blockIdx.x * WARPS * F_RPW;
    OB_PDL_LAUNCH();
    /* signed int8 weights need no activation sum: its reduction is left pending */
    float s = quantize_any(in.x + (size_t)tok * in.ldx, L.K, L.ld, in.norm, in.eps, xs, qs, NULL, shf, shi);
    const int8_t *W = (const int8_t *)L.w;
    int acc[F_RPW];
    const int8_t *wrow[F_RPW];
#pragma unroll
    for (int j = 0; j < F_RPW; j++) {
        int r = prow0 + warp * F_RPW + j;
        acc[j] = 0;
        wrow[j] = r < L.n_phys ? W + (size_t)r * L.ld : NULL;
    }
    for (int c = lane * 16; c < L.ld; c += 512) {
        uint4 wv[F_RPW];
#pragma unroll
        for (int j = 0; j < F_RPW; j++)
            if (wrow[j]) wv[j] = OB_LDG((const uint4 *)(wrow[j] + c));
        int4 a = *(const int4 *)(qs + c);
#pragma unroll
        for (int j = 0; j < F_RPW; j++)
            if (wrow[j]) {
                acc[j] = OB_DP4A((int)wv[j].x, a.x, acc[j]);
                acc[j] = OB_DP4A((int)wv[j].y, a.y, acc[j]);
                acc[j] = OB_DP4A((int)wv[j].z, a.z, acc[j]);
                acc[j] = OB_DP4A((int)wv[j].w, a.w, acc[j]);
            }
    }
#pragma unroll
    for (int j = 0; j < F_RPW; j++) {
        int v = warp_sum_i(acc[j]);
        int r = prow0 + warp * F_RPW + j;
        if (lane == 0 && r < L.n_phys) ysm[warp * F_RPW + j] = __fmul_rn(__fmul_rn((float)v, __fdiv_rn(1.0f, s)), L.beta[r]);
    }
    __syncthreads();
    int n = min(WARPS * F_RPW, L.n_phys - prow0);
    epilogue<CU_EPI_STORE>(ysm, n, prow0, L, y + (size_t)tok * ldy, amax ? amax + tok : NULL);
}

/* ---- launch: cu_gemv ------------------------------------------------------ */

size_t cu_gemv_smem(const cu_linear *L) {
    switch (L->kind) {
    case CU_W_T2:
    case CU_W_I8: return xs_bytes(L->K) + (size_t)L->ld;
    default: return xs_bytes(L->K);
    }
}

template <typename KERN> static cudaError_t launch(KERN k, dim3 grid, size_t smem, cudaStream_t st, const cu_linear *L,
                                                   const cu_input *in, float *y, int ldy, unsigned long long *amax) {
    return launch_k(k, grid, dim3(CU_THREADS), smem, st, *L, *in, y, ldy, amax);
}

template <int EPI> static cudaError_t gemv_epi(const cu_linear *L, const cu_input *in, int n_tok, float *y, int ldy,
                                               unsigned long long *amax, cudaStream_t st) {
    size_t smem = cu_gemv_smem(L);
    int n_groups = L->n_phys / CU_GROUP;
    int fblocks = (L->n_phys + WARPS * F_RPW - 1) / (WARPS * F_RPW);
    switch (L->kind) {
    case CU_W_T2: {
        if (n_tok <= cu_staged_tok && L->K % 4 == 0 && L->K <= 7 * 4 * CU_THREADS) {
            /* staged: the groups spread over at most one block per SM */
            int n_sm = cu_sm_count() * cu_staged_bps, gpb = (n_groups + n_sm - 1) / n_sm;
            size_t sm = t2s_smem(*L, gpb);
            if (gpb <= T2S_MAXG && sm <= T2S_MAX_SMEM) {
                dim3 g((n_groups + gpb - 1) / gpb, n_tok);
                if (L->K <= 3 * 4 * CU_THREADS)
                    return launch_k(k_gemv_t2s<EPI, 3>, g, dim3(CU_THREADS), sm, st, *L, *in, y, ldy, amax, gpb);
                return launch_k(k_gemv_t2s<EPI, 7>, g, dim3(CU_THREADS), sm, st, *L, *in, y, ldy, amax, gpb);
            }
        }
        /* groups per block: as few as keep the grid within one wave of two
         * blocks per SM (264 on an H100; the register budget allows two), so
         * no block waits for another to finish */
        int nv = L->K % 4 ? 0 : L->K <= 3 * 4 * CU_THREADS ? 3 : L->K <= 7 * 4 * CU_THREADS ? 7 : 0;
        int gpb = n_groups * n_tok <= 264 ? 1 : n_groups * n_tok <= 2 * 264 || nv == 7 ? 2 : 4;
        dim3 grid((n_groups + gpb - 1) / gpb, n_tok);
#define T2_LAUNCH(NV)                                                                          \
    return gpb == 1   ? launch(k_gemv_t2<1, EPI, NV>, grid, smem, st, L, in, y, ldy, amax)     \
           : gpb == 2 ? launch(k_gemv_t2<2, EPI, NV>, grid, smem, st, L, in, y, ldy, amax)     \
                      : launch(k_gemv_t2<4, EPI, NV>, grid, smem, st, L, in, y, ldy, amax)
        if (nv == 3) T2_LAUNCH(3);
        if (nv == 7) T2_LAUNCH(7);
        T2_LAUNCH(0);
#undef T2_LAUNCH
    }
    case CU_W_F32: return launch(k_gemv_f<float, EPI>, dim3(fblocks, n_tok), smem, st, L, in, y, ldy, amax);
    case CU_W_F16: return launch(k_gemv_f<__half, EPI>, dim3(fblocks, n_tok), smem, st, L, in, y, ldy, amax);
    case CU_W_BF16:
        return launch(k_gemv_f<__nv_bfloat16, EPI>, dim3(fblocks, n_tok), smem, st, L, in, y, ldy, amax);
    case CU_W_I8:
        if (EPI != CU_EPI_STORE) return cudaErrorInvalidValue;
        return launch(k_gemv_i8, dim3(fblocks, n_tok), smem, st, L, in, y, ldy, amax);
    }
    return cudaErrorInvalidValue;
}

cudaError_t cu_gemv(const cu_linear *L, const cu_input *in, int n_tok, float *y, int ldy, unsigned long long *amax,
                    cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    switch (L->epi) {
    case CU_EPI_STORE: return gemv_epi<CU_EPI_STORE>(L, in, n_tok, y, ldy, amax, st);
    case CU_EPI_ADD: return gemv_epi<CU_EPI_ADD>(L, in, n_tok, y, ldy, NULL, st);
    case CU_EPI_GLU_RELU2: return gemv_epi<CU_EPI_GLU_RELU2>(L, in, n_tok, y, ldy, NULL, st);
    case CU_EPI_GLU_SILU: return gemv_epi<CU_EPI_GLU_SILU>(L, in, n_tok, y, ldy, NULL, st);
    }
    return cudaErrorInvalidValue;
}

/* ---- prefill: norm + quantization of whole rows ------------------------- */

__global__ void __launch_bounds__(CU_THREADS) k_norm_quant(cu_input in, int K, int K_pad, int8_t *q, float *s,
                                                           int *qsum) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float shf[WARPS];
    __shared__ int shi[WARPS];
    int t = blockIdx.x, sum;
    OB_PDL_LAUNCH();
    float sc = quantize_any(in.x + (size_t)t * in.ldx, K, K_pad, in.norm, in.eps, (float *)smem, q + (size_t)t * K_pad,
                            &sum, shf, shi);
    if (threadIdx.x == 0) {
        s[t] = sc;
        qsum[t] = sum;
    }
}

cudaError_t cu_norm_quant(const cu_input *in, int K, int K_pad, int n_tok, int8_t *q, float *s, int *qsum,
                          cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    return launch_k(k_norm_quant, dim3(n_tok), dim3(CU_THREADS), xs_bytes(K), st, *in, K, K_pad, q, s, qsum);
}

__global__ void __launch_bounds__(CU_THREADS) k_norm_rows(cu_input in, int K, float *xn) {
    int t = blockIdx.x;
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    stage_row(in.x + (size_t)t * in.ldx, K, in.norm, in.eps, xn + (size_t)t * K);
}

cudaError_t cu_norm_rows(const cu_input *in, int K, int n_tok, float *xn, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    return launch_k(k_norm_rows, dim3(n_tok), dim3(CU_THREADS), 0, st, *in, K, xn);
}

/* ---- prefill: ternary x int8 GEMM on tensor cores ----------------------- */

#define GM_ROWS 64  /* physical rows per block: 4 warps x one 16-row group */
#define GM_TOK 64   /* tokens per block: 8 mma n-tiles of 8 */
#define GM_QLD 80   /* smem row stride of the token tile (64 bytes + 16: no bank conflicts) */

#ifdef OB_GPU_HAVE_MMA_S8
__device__ static inline void mma_s8(int *c, int a0, int a1, int a2, int a3, int b0, int b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ static inline unsigned word_of(uint4 v, int j) { return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w; }
#endif


/* Block: 4 warps; warp w computes group blockIdx.x*4+w (16 rows) x 64 tokens.
 * Per 64-weight chunk: the token tile goes to smem, each lane loads the
 * chunks of rows lane/4 and lane/4+8 (the A fragment rows), decodes 2-bit
 * codes to int8 with shift+mask and issues 2 x 8 mma m16n8k32. Accumulator
 * c[nt][0..1]: row lane/4, tokens nt*8 + (lane%4)*2 + {0,1}; c[nt][2..3]: row +8. */
template <int EPI>
__global__ void __launch_bounds__(128) k_gemm_t2(cu_linear L, const int8_t *q, const float *s, const int *qsum,
                                                 int n_tok, float *y, int ldy) {
    __shared__ __align__(16) int8_t qt[GM_TOK * GM_QLD];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = blockIdx.x * 4 + warp, tok0 = blockIdx.y * GM_TOK;
    const int nchunk = L.ld / CU_CHUNK, n_groups = L.n_phys / CU_GROUP;
    const bool active = g < n_groups;
    const int gr = lane >> 2, tig = lane & 3;
    const uint4 *W = (const uint4 *)L.w + (size_t)(active ? g : 0) * nchunk * 16;
    int acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0;

    /* registers hold chunk c+1 (token tile slice and A rows) while chunk c computes */
    uint4 qv[2], w0 = make_uint4(0, 0, 0, 0), w1 = w0;
    auto load = [&](int c) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int idx = tid + 128 * i, t = tok0 + (idx >> 2);
            qv[i] = t < n_tok ? *(const uint4 *)(q + (size_t)t * L.ld + c * CU_CHUNK + (idx & 3) * 16)
                              : make_uint4(0, 0, 0, 0);
        }
        if (active) {
            w0 = OB_LDG(W + (size_t)c * 16 + gr);
            w1 = OB_LDG(W + (size_t)c * 16 + gr + 8);
        }
    };
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    load(0);
    for (int c = 0; c < nchunk; c++) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int idx = tid + 128 * i;
            *(uint4 *)(qt + (idx >> 2) * GM_QLD + (idx & 3) * 16) = qv[i];
        }
        const uint4 cw0 = w0, cw1 = w1;
        __syncthreads();
        if (c + 1 < nchunk) load(c + 1);
        if (active) {
#ifdef OB_GPU_HAVE_MMA_S8
#pragma unroll
            for (int ks = 0; ks < 2; ks++) {
                int sh = 2 * tig;
                int a0 = (int)((word_of(cw0, 2 * ks) >> sh) & T2_MASK);
                int a1 = (int)((word_of(cw1, 2 * ks) >> sh) & T2_MASK);
                int a2 = (int)((word_of(cw0, 2 * ks + 1) >> sh) & T2_MASK);
                int a3 = (int)((word_of(cw1, 2 * ks + 1) >> sh) & T2_MASK);
#pragma unroll
                for (int nt = 0; nt < 8; nt++) {
                    const int8_t *b = qt + (nt * 8 + gr) * GM_QLD + ks * 32 + tig * 4;
                    mma_s8(acc[nt], a0, a1, a2, a3, *(const int *)b, *(const int *)(b + 16));
                }
            }
#else
            /* Portable fallback: each lane computes its accumulator elements
             * from the whole chunks of its two rows with dp4a. */
#pragma unroll
            for (int nt = 0; nt < 8; nt++) {
                const int8_t *b = qt + (nt * 8 + tig * 2) * GM_QLD;
                acc[nt][0] = dot64(cw0, b, acc[nt][0]);
                acc[nt][1] = dot64(cw0, b + GM_QLD, acc[nt][1]);
                acc[nt][2] = dot64(cw1, b, acc[nt][2]);
                acc[nt][3] = dot64(cw1, b + GM_QLD, acc[nt][3]);
            }
#endif
        }
        __syncthreads();
    }
    if (!active) return;
    const int r0 = g * 16 + gr, r1 = r0 + 8;
    const float b0 = L.beta[r0], b1 = L.beta[r1];
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int t = tok0 + nt * 8 + tig * 2 + e;
            if (t >= n_tok) continue;
            float inv_s = __fdiv_rn(1.0f, s[t]);
            int qs = qsum[t];
            float v0 = __fmul_rn(__fmul_rn((float)(acc[nt][e] - qs), inv_s), b0);
            float v1 = __fmul_rn(__fmul_rn((float)(acc[nt][2 + e] - qs), inv_s), b1);
            float *yt = y + (size_t)t * ldy;
            if (EPI == CU_EPI_STORE || EPI == CU_EPI_ADD) {
                if (r0 < L.n_out) yt[r0] = EPI == CU_EPI_ADD ? __fadd_rn(yt[r0], v0) : v0;
                if (r1 < L.n_out) yt[r1] = EPI == CU_EPI_ADD ? __fadd_rn(yt[r1], v1) : v1;
            } else {
                int r = g * 8 + gr;
                if (r < L.n_out) yt[r] = __fmul_rn(EPI == CU_EPI_GLU_RELU2 ? act_relu2(v0) : act_silu(v0), v1);
            }
        }
    }
}

cudaError_t cu_gemm_t2(const cu_linear *L, const int8_t *q, const float *s, const int *qsum, int n_tok, float *y,
                       int ldy, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (L->kind != CU_W_T2) return cudaErrorInvalidValue;
    dim3 grid((L->n_phys / CU_GROUP + 3) / 4, (n_tok + GM_TOK - 1) / GM_TOK);
    switch (L->epi) {
    case CU_EPI_STORE: return launch_k(k_gemm_t2<CU_EPI_STORE>, grid, dim3(128), 0, st, *L, q, s, qsum, n_tok, y, ldy);
    case CU_EPI_ADD: return launch_k(k_gemm_t2<CU_EPI_ADD>, grid, dim3(128), 0, st, *L, q, s, qsum, n_tok, y, ldy);
    case CU_EPI_GLU_RELU2:
        return launch_k(k_gemm_t2<CU_EPI_GLU_RELU2>, grid, dim3(128), 0, st, *L, q, s, qsum, n_tok, y, ldy);
    case CU_EPI_GLU_SILU:
        return launch_k(k_gemm_t2<CU_EPI_GLU_SILU>, grid, dim3(128), 0, st, *L, q, s, qsum, n_tok, y, ldy);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- prefill: epilogue of the cuBLASLt GEMM (gemm_lt.cu) ------------------
 * acc [n_tok][n_phys] is sum t*q exactly, the integer k_gemm_t2 forms as
 * acc - qsum; the float operations below are k_gemm_t2's, one by one, so
 * both GEMMs give the same bits. */

/* Outputs 4*qd .. 4*qd+3 of one token. STORE/ADD: 4 consecutive physical
 * rows; GLU: gate rows pg .. pg+3 and the up rows 8 further on (same group). */
template <int EPI>
__device__ static inline void lt_epi_quad(const int32_t *at, const float *beta, float inv_s, int qd, int n_out,
                                          float *yt) {
    if (EPI == CU_EPI_STORE || EPI == CU_EPI_ADD) {
        int p = 4 * qd;
        int4 a = *(const int4 *)(at + p);
        float4 b = *(const float4 *)(beta + p);
        float v[4] = { __fmul_rn(__fmul_rn((float)a.x, inv_s), b.x), __fmul_rn(__fmul_rn((float)a.y, inv_s), b.y),
                       __fmul_rn(__fmul_rn((float)a.z, inv_s), b.z), __fmul_rn(__fmul_rn((float)a.w, inv_s), b.w) };
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (p + i < n_out) yt[p + i] = EPI == CU_EPI_ADD ? __fadd_rn(yt[p + i], v[i]) : v[i];
    } else {
        int r = 4 * qd, pg = (r / 8) * CU_GROUP + r % 8;
        int4 ag = *(const int4 *)(at + pg), au = *(const int4 *)(at + pg + 8);
        float4 bg = *(const float4 *)(beta + pg), bu = *(const float4 *)(beta + pg + 8);
        int ga[4] = { ag.x, ag.y, ag.z, ag.w }, ua[4] = { au.x, au.y, au.z, au.w };
        float gb[4] = { bg.x, bg.y, bg.z, bg.w }, ub[4] = { bu.x, bu.y, bu.z, bu.w };
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (r + i >= n_out) break;
            float g = __fmul_rn(__fmul_rn((float)ga[i], inv_s), gb[i]);
            float u = __fmul_rn(__fmul_rn((float)ua[i], inv_s), ub[i]);
            yt[r + i] = __fmul_rn(EPI == CU_EPI_GLU_RELU2 ? act_relu2(g) : act_silu(g), u);
        }
    }
}

/* Output quads per token (padding included): n_phys/4 rows, n_phys/8 pairs. */
__host__ __device__ static inline int lt_quads(int epi, int n_phys) {
    return epi == CU_EPI_GLU_RELU2 || epi == CU_EPI_GLU_SILU ? n_phys / 8 : n_phys / 4;
}

/* One thread per quad of outputs, over all tokens. */
template <int EPI>
__global__ void __launch_bounds__(256) k_lt_epilogue(const int32_t *acc, const float *beta, const float *s, int n_phys,
                                                     int n_out, int n_tok, float *y, int ldy) {
    const int quads = lt_quads(EPI, n_phys);
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    OB_PDL_WAIT();
    if (idx >= (size_t)quads * n_tok) return;
    int t = (int)(idx / quads);
    lt_epi_quad<EPI>(acc + (size_t)t * n_phys, beta, __fdiv_rn(1.0f, s[t]), (int)(idx % quads), n_out,
                     y + (size_t)t * ldy);
}

cudaError_t cu_lt_epilogue(const cu_linear *L, const int32_t *acc, const float *s, int n_tok, float *y, int ldy,
                           cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (L->n_phys % CU_GROUP) return cudaErrorInvalidValue;
    dim3 grid((unsigned)(((size_t)lt_quads(L->epi, L->n_phys) * n_tok + 255) / 256)), block(256);
#define LT_EPI(E) launch_k(k_lt_epilogue<E>, grid, block, 0, st, acc, L->beta, s, L->n_phys, L->n_out, n_tok, y, ldy)
    switch (L->epi) {
    case CU_EPI_STORE: return LT_EPI(CU_EPI_STORE);
    case CU_EPI_ADD: return LT_EPI(CU_EPI_ADD);
    case CU_EPI_GLU_RELU2: return LT_EPI(CU_EPI_GLU_RELU2);
    case CU_EPI_GLU_SILU: return LT_EPI(CU_EPI_GLU_SILU);
    default: return cudaErrorInvalidValue;
    }
#undef LT_EPI
}

/* ---- embedding ------------------------------------------------------------ */

__global__ void k_embed(cu_embed E, const int32_t *tok, float *h, unsigned long long *amax) {
    OB_TL_SCOPE(CU_TL_EMBED);
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    int t = blockIdx.x, id = tok[t];
    if (amax && threadIdx.x == 0) amax[t] = 0;
    float *o = h + (size_t)t * E.n_embd;
    if (id < 0 || id >= E.n_vocab) { /* the host validates ids; never read out of bounds */
        for (int i = threadIdx.x; i < E.n_embd; i += blockDim.x) o[i] = 0.0f;
        return;
    }
    size_t base = (size_t)id * E.ld;
    for (int i = threadIdx.x; i < E.n_embd; i += blockDim.x) {
        float v;
        switch (E.kind) {
        case CU_W_F16: v = __half2float(((const __half *)E.w)[base + i]); break;
        case CU_W_BF16: v = __bfloat162float(((const __nv_bfloat16 *)E.w)[base + i]); break;
        case CU_W_I8: v = __fmul_rn((float)((const int8_t *)E.w)[base + i], E.scale[id]); break;
        default: v = ((const float *)E.w)[base + i]; break;
        }
        o[i] = v;
    }
}

cudaError_t cu_embed_rows(const cu_embed *E, const int32_t *tok, int n_tok, float *h,
                          unsigned long long *argmax_reset, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    return launch_k(k_embed, dim3(n_tok), dim3(256), 0, st, *E, tok, h, argmax_reset);
}

/* ---- RoPE + KV append ----------------------------------------------------- */



/* grid (ceil((n_head + 2 n_kv) * hd / 256), n_tok): one thread per value. */
template <typename KV>
__global__ void k_rope_kv(cu_attn A, const float *qkv, int ldqkv, const int32_t *pos, const int32_t *seq, float *qr) {
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    const int t = blockIdx.y, p = pos[t], sq = seq ? seq[t] : 0;
    const int hd = A.hd, nq = A.n_head * hd, nk = A.n_kv * hd;
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= nq + 2 * nk) return;
    const float *q = qkv + (size_t)t * ldqkv;
    size_t off = (size_t)sq * A.seq_stride + (size_t)p * nk;
    int head = idx / hd, d = idx - head * hd;
    if (head < A.n_head) qr[(size_t)t * nq + idx] = rope_dim_value(q + (size_t)head * hd, d, p, A);
    else if (idx < nq + nk) ((KV *)A.k)[off + idx - nq] = kvt<KV>::put(rope_dim_value(q + (size_t)head * hd, d, p, A));
    else ((KV *)A.v)[off + idx - nq - nk] = kvt<KV>::put(q[idx]);
}

cudaError_t cu_rope_kv(const cu_attn *A, const float *qkv, int ldqkv, const int32_t *pos, const int32_t *seq,
                       int n_tok, float *qr, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    dim3 grid(((A->n_head + 2 * A->n_kv) * A->hd + 255) / 256, n_tok);
    if (A->kv_f32) return launch_k(k_rope_kv<float>, grid, dim3(256), 0, st, *A, qkv, ldqkv, pos, seq, qr);
    return launch_k(k_rope_kv<__half>, grid, dim3(256), 0, st, *A, qkv, ldqkv, pos, seq, qr);
}

/* ---- split-KV attention (flash decoding) ---------------------------------- */

#define AT_THREADS 128
#define AT_TILE 64    /* positions per tile: two threads per position for the scores */
#define AT_MAXG 8     /* query heads per KV head */
#define AT_MAXD 2     /* head dims per thread in the V sum: hd <= 256 */
#define AT_MAXSPLIT 32  /* = warp size: the merge gives one lane per split */
#define AT_MINCHUNK 16

/* grid (n_split, n_kv, n_tok). Block (split, kvh, t) attends the G query heads
 * of kv head kvh over its slice of positions [0, pos[t]] with an online
 * softmax, writes (o, m, l) partials, and the last block of the (t, kvh) to
 * finish merges all splits that hold positions (no second launch). Every K/V row is read once for
 * the G heads that share it; loads are independent and unrolled (latency, not
 * bandwidth, bounds this kernel at short contexts). */
template <typename KV, int G, int DPT>
__global__ void __launch_bounds__(AT_THREADS) k_attention(cu_attn A, const float *qr, const int32_t *pos,
                                                          const int32_t *seq, float *out) {
    extern __shared__ float qsh[]; /* [G][hd] query, then [4][G][hd] merge scratch */
    __shared__ float ssh[AT_MAXG][AT_TILE];
    __shared__ float m_run[AT_MAXG], l_run[AT_MAXG], alpha[AT_MAXG], den[AT_MAXG];
    __shared__ float wsh[AT_MAXG][AT_MAXSPLIT];
    __shared__ unsigned ticket;
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    const int split = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int hd = A.hd, hh = hd / 2, nk = A.n_kv * hd;
    const int n_pos = pos[t] + 1, sq = seq ? seq[t] : 0;
    /* at least AT_MINCHUNK positions per split: short contexts merge few splits */
    const int chunk = max(AT_MINCHUNK, (n_pos + A.n_split - 1) / A.n_split);
    const int n_used = (n_pos + chunk - 1) / chunk; /* splits that hold positions */
    const int p0 = split * chunk, p1 = min(n_pos, p0 + chunk);
    const float scale = 1.0f / sqrtf((float)hd);
    const KV *kb = (const KV *)A.k + (size_t)sq * A.seq_stride + (size_t)kvh * hd;
    const KV *vb = (const KV *)A.v + (size_t)sq * A.seq_stride + (size_t)kvh * hd;
    const int V = kvt<KV>::VEC;
    /* splits past the last position have nothing to do: they neither write
     * partials nor count, and the merge waits for the n_used that hold some */
    if (split >= n_used) return;

    if (A.fuse_rope) {
        /* single-token step: RoPE and the KV append happen here (no k_rope_kv
         * launch). qr is the raw q|k|v row; the block whose slice holds the
         * new position writes its K/V row before staging tiles from the cache. */
        const float *q = qr + (size_t)t * A.ldqkv, *kr = q + A.n_head * hd, *vr = kr + nk;
        const int p = n_pos - 1;
        for (int i = tid; i < G * hd; i += AT_THREADS) {
            int h = i / hd;
            qsh[i] = rope_dim_value(q + (size_t)(kvh * G + h) * hd, i - h * hd, p, A);
        }
        if (split == n_used - 1) {
            KV *kc = (KV *)A.k + (size_t)sq * A.seq_stride + (size_t)p * nk + (size_t)kvh * hd;
            KV *vc = (KV *)A.v + (size_t)sq * A.seq_stride + (size_t)p * nk + (size_t)kvh * hd;
            for (int i = tid; i < hd; i += AT_THREADS) {
                kc[i] = kvt<KV>::put(rope_dim_value(kr + (size_t)kvh * hd, i, p, A));
                vc[i] = kvt<KV>::put(vr[(size_t)kvh * hd + i]);
            }
        }
    } else {
        for (int i = tid; i < G * hd; i += AT_THREADS)
            qsh[i] = qr[(size_t)t * A.n_head * hd + (size_t)kvh * G * hd + i];
    }
    if (tid < AT_MAXG) {
        m_run[tid] = -INFINITY;
        l_run[tid] = 0.0f;
    }
    float oacc[G][DPT];
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int j = 0; j < DPT; j++) oacc[h][j] = 0.0f;
    __syncthreads();

    /* K and V tiles of `tile` positions staged in shared memory with
     * independent 16-byte loads (one latency per tile, not one per position);
     * K rows padded by 16 bytes so the two-threads-per-row score reads do not
     * collide in banks. */
    const int kld = hd + V;                           /* K tile row stride (elements) */
    const int tile = A.tile;
    KV *kt = (KV *)(qsh + G * hd), *vt = kt + (size_t)tile * kld;
    const bool vec = hd % V == 0;
    for (int tile0 = p0; tile0 < p1; tile0 += tile) {
        const int nt = min(tile, p1 - tile0);
        if (vec) {
            const int rv = hd / V, nv = nt * rv;      /* 16-byte vectors per row, per tile */
#pragma unroll 4
            for (int i = tid; i < nv; i += AT_THREADS) {
                int j = i / rv, c = (i - j * rv) * V;
                uint4 kk = *(const uint4 *)(kb + (size_t)(tile0 + j) * nk + c);
                uint4 vv = *(const uint4 *)(vb + (size_t)(tile0 + j) * nk + c);
                *(uint4 *)(kt + (size_t)j * kld + c) = kk;
                *(uint4 *)(vt + (size_t)j * hd + c) = vv;
            }
        } else {
            for (int i = tid; i < nt * hd; i += AT_THREADS) {
                int j = i / hd, c = i - j * hd;
                kt[(size_t)j * kld + c] = kb[(size_t)(tile0 + j) * nk + c];
                vt[(size_t)j * hd + c] = vb[(size_t)(tile0 + j) * nk + c];
            }
        }
        __syncthreads();
        /* scores: threads 2j, 2j+1 take the two halves of position j's K row */
        for (int j0 = 0; j0 < nt; j0 += AT_THREADS / 2) {
            const int j = j0 + (tid >> 1), hf = tid & 1;
            float part[G];
#pragma unroll
            for (int h = 0; h < G; h++) part[h] = 0.0f;
            if (j < nt) {
                const KV *kp = kt + (size_t)j * kld + hf * hh;
                const float *qp = qsh + hf * hh;
                if (hh % V == 0) {
                    for (int d = 0; d < hh; d += V) {
                        float kv[8];
                        kvt<KV>::load(kp + d, kv);
#pragma unroll
                        for (int e = 0; e < V; e++)
#pragma unroll
                            for (int h = 0; h < G; h++) part[h] += qp[h * hd + d + e] * kv[e];
                    }
                } else {
                    for (int d = 0; d < hh; d++) {
                        float kv = kvt<KV>::get(kp + d);
#pragma unroll
                        for (int h = 0; h < G; h++) part[h] += qp[h * hd + d] * kv;
                    }
                }
            }
#pragma unroll
            for (int h = 0; h < G; h++) part[h] += OB_SHFL_XOR(part[h], 1);
            if (j < nt && hf == 0)
#pragma unroll
                for (int h = 0; h < G; h++) ssh[h][j] = part[h] * scale;
        }
        __syncthreads();
        for (int h = warp; h < G; h += AT_THREADS / 32) { /* online softmax, one warp per head */
            float s0 = lane < nt ? ssh[h][lane] : -INFINITY, s1 = lane + 32 < nt ? ssh[h][lane + 32] : -INFINITY;
            float mold = m_run[h], mnew = fmaxf(mold, warp_max(fmaxf(s0, s1)));
            float e0 = lane < nt ? expf(s0 - mnew) : 0.0f, e1 = lane + 32 < nt ? expf(s1 - mnew) : 0.0f;
            ssh[h][lane] = e0;
            ssh[h][lane + 32] = e1;
            float sum = warp_sum(e0 + e1);
            if (lane == 0) {
                float a = mold == -INFINITY ? 0.0f : expf(mold - mnew);
                alpha[h] = a;
                l_run[h] = l_run[h] * a + sum;
                m_run[h] = mnew;
            }
        }
        __syncthreads();
#pragma unroll
        for (int h = 0; h < G; h++)
#pragma unroll
            for (int jj = 0; jj < DPT; jj++) oacc[h][jj] *= alpha[h];
#pragma unroll 4
        for (int j = 0; j < nt; j++) {
#pragma unroll
            for (int jj = 0; jj < DPT; jj++) {
                int d = tid + AT_THREADS * jj;
                if (d < hd) {
                    float v = kvt<KV>::get(vt + (size_t)j * hd + d);
#pragma unroll
                    for (int h = 0; h < G; h++) oacc[h][jj] += ssh[h][j] * v;
                }
            }
        }
        __syncthreads();
    }

    /* partial: [G][hd] o, then m[G], l[G] */
    const int pstride = (G * (hd + 2) + 3) & ~3; /* 16-byte aligned partials */
    float *part = A.part + (((size_t)t * A.n_kv + kvh) * A.n_split + split) * pstride;
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int jj = 0; jj < DPT; jj++) {
            int d = tid + AT_THREADS * jj;
            if (d < hd) part[h * hd + d] = oacc[h][jj];
        }
    if (tid < G) {
        part[G * hd + tid] = m_run[tid];
        part[G * hd + G + tid] = l_run[tid];
    }
    unsigned *cnt = A.count + (size_t)t * A.n_kv + kvh;
    if (!arrive_last(cnt, (unsigned)n_used, &ticket)) return;
    /* Last block: merge the used splits with weights exp(m_s - M) / sum_s l_s exp(m_s - M).
     * Weights: warp per head, lane per split. Sums: warp w adds splits w, w+4, ...
     * with float4 loads all in flight, then the 4 warps' sums meet in smem. */
    const float *pb = A.part + ((size_t)t * A.n_kv + kvh) * A.n_split * pstride;
    for (int h = warp; h < G; h += AT_THREADS / 32) {
        float m = -INFINITY, l = 0.0f;
        if (lane < n_used) {
            m = OB_LDCG(pb + (size_t)lane * pstride + G * hd + h);
            l = OB_LDCG(pb + (size_t)lane * pstride + G * hd + G + h);
        }
        float M = warp_max(m), w = lane < n_used ? expf(m - M) : 0.0f;
        float d = warp_sum(w * l);
        wsh[h][lane] = w;
        if (lane == 0) den[h] = d;
    }
    __syncthreads();
    float *merge = qsh + G * hd; /* [4][G * hd], over the K/V tiles */
    const int n4 = G * hd / 4;
    for (int i4 = lane; i4 < n4; i4 += 32) {
        const int h = i4 * 4 / hd;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
        for (int sp = warp; sp < n_used; sp += AT_THREADS / 32) {
            float4 v = OB_LDCG((const float4 *)(pb + (size_t)sp * pstride) + i4);
            float w = wsh[h][sp];
            acc.x += w * v.x, acc.y += w * v.y, acc.z += w * v.z, acc.w += w * v.w;
        }
        ((float4 *)(merge + warp * G * hd))[i4] = acc;
    }
    __syncthreads();
    for (int i = tid; i < G * hd; i += AT_THREADS) {
        float num = merge[i] + merge[G * hd + i] + merge[2 * G * hd + i] + merge[3 * G * hd + i];
        out[(size_t)t * A.n_head * hd + (size_t)kvh * G * hd + i] = num / den[i / hd];
    }
    if (tid == 0) *cnt = 0;
}

template <typename KV, int G>
static cudaError_t attention_g(const cu_attn *A, dim3 grid, size_t smem, cudaStream_t st, const float *qr,
                               const int32_t *pos, const int32_t *seq, float *out) {
    if (A->hd <= AT_THREADS)
        return launch_k(k_attention<KV, G, 1>, grid, dim3(AT_THREADS), smem, st, *A, qr, pos, seq, out);
    return launch_k(k_attention<KV, G, 2>, grid, dim3(AT_THREADS), smem, st, *A, qr, pos, seq, out);
}

template <typename KV>
static cudaError_t attention_kv(const cu_attn *A, int G, dim3 grid, size_t smem, cudaStream_t st, const float *qr,
                                const int32_t *pos, const int32_t *seq, float *out) {
    switch (G) { /* the group size is a compile-time constant: small, branch-free code */
    case 1: return attention_g<KV, 1>(A, grid, smem, st, qr, pos, seq, out);
    case 2: return attention_g<KV, 2>(A, grid, smem, st, qr, pos, seq, out);
    case 3: return attention_g<KV, 3>(A, grid, smem, st, qr, pos, seq, out);
    case 4: return attention_g<KV, 4>(A, grid, smem, st, qr, pos, seq, out);
    case 5: return attention_g<KV, 5>(A, grid, smem, st, qr, pos, seq, out);
    case 6: return attention_g<KV, 6>(A, grid, smem, st, qr, pos, seq, out);
    case 7: return attention_g<KV, 7>(A, grid, smem, st, qr, pos, seq, out);
    case 8: return attention_g<KV, 8>(A, grid, smem, st, qr, pos, seq, out);
    }
    return cudaErrorInvalidValue;
}

/* OB_CUDA_ATTN_OLD=1 (read once) runs k_attention for every batch, for A/B
 * measurements against k_attn_decode. */
static bool ad_old(void) {
    static int v = -1;
    if (v < 0) {
        const char *s = getenv("OB_CUDA_ATTN_OLD");
        v = s && *s && atoi(s) != 0;
    }
    return v != 0;
}

/* k_attn_decode's thread mapping for head_dim 128 (ad_wide, below): on by
 * default; the GPU tests compare it bitwise with the general mapping. And the
 * fewest positions per split (0: AD_MINCHUNK or AD_MINCHUNK_WIDE;
 * OB_CUDA_ATTN_MINCHUNK=N). */
static bool cu_attn_wide = true;
static int cu_attn_minchunk = 0;
void cu_set_attn_decode(bool wide, int min_chunk) {
    cu_attn_wide = wide;
    cu_attn_minchunk = min_chunk;
}

/* ---- split-KV attention, v12 (k_attn_decode) ------------------------------
 * grid (n_split, n_kv, n_tok), AD_THREADS threads. Block (split, kvh, t) takes
 * the G query heads of KV head kvh over its slice of positions [0, pos[t]]:
 * at least A.min_chunk positions, so short contexts run few splits per KV
 * head (one, and no merge, up to min_chunk positions), while long ones spread over n_split blocks per head
 * (the decode graph asks for one block per SM). The slice goes through two
 * shared-memory buffers of A.tile positions filled by 16-byte cp.async: tile
 * i + 1 streams in while tile i is used, and tile i + 2 is issued into tile
 * i's buffer as soon as that is free.
 *
 * With A.fuse_rope (one token: qr is the raw q|k|v row) the cached rows do not
 * depend on the previous kernel, so the first two tiles are issued *before*
 * OB_PDL_WAIT and stream in while the qkv GEMV drains; after the wait the
 * block ropes q, and the block holding the new position writes its K/V row to
 * the cache and straight into its tile.
 *
 * Per tile: scores, an online softmax by one warp per head, the weighted V
 * sum, in k_attention's summation orders (see below). Splits merge in the last
 * block by arrival ticket, in a fixed order: results do not depend on timing. */
#define AD_THREADS 256
#define AD_WARPS (AD_THREADS / 32)
/* positions per split at least. The general mapping: 128 (v12: 64 measured
 * slower, 256 no better); the wide one, whose work shrinks with the slice:
 * 32 (v14: 957 vs 907-923 tok/s at context 64 over 128, equal at 4096) */
#define AD_MINCHUNK 128
#define AD_MINCHUNK_WIDE 32

/* 8 elements of a staged row as floats (16 bytes of f16, 32 of f32). */
__device__ static inline void kv_load8(const __half *p, float *o) { kvt<__half>::load(p, o); }
__device__ static inline void kv_load8(const float *p, float *o) {
    kvt<float>::load(p, o);
    kvt<float>::load(p + 4, o + 4);
}

/* 2 consecutive elements as floats (d even). */
__device__ static inline float2 kv_load2(const __half *p) { return __half22float2(*(const __half2 *)p); }
__device__ static inline float2 kv_load2(const float *p) { return *(const float2 *)p; }

/* K tile row stride (elements): the row's 16-byte units plus a pad that makes
 * it congruent to tpr (the threads reading one row at a time) mod 8, so
 * consecutive rows start in different 16-byte bank groups. */
static __host__ __device__ inline int ad_kld(int hd, int es, int tpr) {
    int units = hd * es / 16, pad = ((tpr - units) % 8 + 8) % 8;
    return (units + pad) * 16 / es;
}

template <typename KV, int G>
__global__ void __launch_bounds__(AD_THREADS) k_attn_decode(cu_attn A, const float *qr, const int32_t *pos,
                                                            const int32_t *seq, float *out) {
    OB_TL_SCOPE(CU_TL_ATTN_DECODE);
    extern __shared__ float4 ad_smem[];
    __shared__ float m_run[G], l_run[G], alpha[G];
    __shared__ float wsh[G][AT_MAXSPLIT], den[G];
    __shared__ unsigned ticket;
    OB_PDL_LAUNCH();
    const bool fuse = A.fuse_rope;
    const int split = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    if (!fuse) OB_PDL_WAIT(); /* K/V and q come from the previous kernel */
    const int hd = A.hd, nk = A.n_kv * hd, T = A.tile;
    /* pos/seq: written before the graph (or chunk) starts, never by a kernel */
    const int n_pos = pos[t] + 1, sq = seq ? seq[t] : 0;
    const int chunk = max(A.min_chunk, (n_pos + A.n_split - 1) / A.n_split);
    const int n_used = (n_pos + chunk - 1) / chunk;
    if (split >= n_used) return;
    const int p0 = split * chunk, p1 = min(n_pos, p0 + chunk);
    const int n_cached = fuse ? n_pos - 1 : n_pos; /* rows in the cache before this launch */
    const KV *kb = (const KV *)A.k + (size_t)sq * A.seq_stride + (size_t)kvh * hd;
    const KV *vb = (const KV *)A.v + (size_t)sq * A.seq_stride + (size_t)kvh * hd;
    const int kld = ad_kld(hd, (int)sizeof(KV), 2);

    /* shared memory: qs [G][hd] query; ssh [G][T] scores then weights; knew,
     * vnew [hd] the new row (when it falls in a tile staged after the wait);
     * then two buffers of a K tile [T][kld] and a V tile [T][hd] (tile i in
     * buffer i % 2), reused at the end for the merge */
    /* qw [G][2][68]: q again for the wide mapping (below), each half row
     * padded so that the 8 (head, half) rows a warp reads sit in distinct banks */
    const bool wide = A.wide && A.hd == 128;
    float *qw = (float *)ad_smem, *qs = qw + G * 136, *ssh = qs + G * hd;
    auto put_q = [&](int i, float v) {
        qs[i] = v;
        if (wide) qw[(i >> 7) * 136 + ((i >> 6) & 1) * 68 + (i & 63)] = v;
    };
    KV *knew = (KV *)(ssh + G * T), *vnew = knew + hd;
    KV *kbuf = vnew + hd;
    const size_t buf = (size_t)T * (kld + hd); /* elements per buffer */
    float *red = (float *)kbuf;
    const int n_tiles = (p1 - p0 + T - 1) / T;

    const int units = hd * (int)sizeof(KV) / 16; /* 16-byte units per row */
    auto stage = [&](int ti) {                   /* the cached rows of tile ti */
        const int tile0 = p0 + ti * T, nc = min(min(T, p1 - tile0), n_cached - tile0);
        KV *kt = kbuf + (ti & 1) * buf, *vt = kt + (size_t)T * kld;
        for (int i = tid; i < nc * units; i += AD_THREADS) {
            const int j = i / units, c = i - j * units;
            const size_t g = (size_t)(tile0 + j) * nk;
            OB_CP_ASYNC16((uint4 *)(kt + (size_t)j * kld) + c, (const uint4 *)(kb + g) + c);
            OB_CP_ASYNC16((uint4 *)(vt + (size_t)j * hd) + c, (const uint4 *)(vb + g) + c);
        }
        OB_CP_COMMIT();
    };
    stage(0);
    if (n_tiles > 1) stage(1);

    if (fuse) {
        OB_PDL_WAIT();
        const float *q = qr + (size_t)t * A.ldqkv, *kr = q + A.n_head * hd + (size_t)kvh * hd;
        const float *vr = q + A.n_head * hd + nk + (size_t)kvh * hd;
        const int p = n_pos - 1;
        for (int i = tid; i < G * hd; i += AD_THREADS) {
            const int h = i / hd;
            put_q(i, rope_dim_value(q + (size_t)(kvh * G + h) * hd, i - h * hd, p, A));
        }
        if (split == n_used - 1) { /* this slice holds the new position */
            KV *kc = (KV *)A.k + (size_t)sq * A.seq_stride + (size_t)p * nk + (size_t)kvh * hd;
            KV *vc = (KV *)A.v + (size_t)sq * A.seq_stride + (size_t)p * nk + (size_t)kvh * hd;
            /* tiles 0 and 1 are staged already: the row goes straight into
             * its buffer; later tiles copy it in from knew/vnew when staged */
            const int tn = (p - p0) / T, jn = p - p0 - tn * T;
            KV *kt = kbuf + (tn & 1) * buf, *vt = kt + (size_t)T * kld;
            KV *kd = tn < 2 ? kt + (size_t)jn * kld : knew, *vd = tn < 2 ? vt + (size_t)jn * hd : vnew;
            for (int i = tid; i < hd; i += AD_THREADS) {
                const KV kk = kvt<KV>::put(rope_dim_value(kr, i, p, A)), vv = kvt<KV>::put(vr[i]);
                kc[i] = kd[i] = kk;
                vc[i] = vd[i] = vv;
            }
        }
    } else {
        for (int i = tid; i < G * hd; i += AD_THREADS) put_q(i, qr[(size_t)t * A.n_head * hd + (size_t)kvh * G * hd + i]);
    }
    OB_TL_MARK(0);
    if (tid < G) {
        m_run[tid] = -INFINITY;
        l_run[tid] = 0.0f;
    }

    /* scores: threads 2r and 2r + 1 take the two halves of row r, each a
     * sequential chain over its dims; V: thread (d, hg) keeps dim d of heads
     * hg, hg + nhg, ... and adds the tile's rows in order. These are
     * k_attention's orders, so over the same tiles both give the same bits.
     *
     * Wide mapping (A.wide: head_dim 128): the same chains, bitwise the same
     * results, spread so that a thread's work shrinks with the tile. Scores:
     * thread (row slot rs, head hq, half hf) reads its half of q from qw and
     * runs the chains of rows rs, rs + RS, ... (two at a time); V: thread
     * i keeps dims 2 (i % 64) and 2 (i % 64) + 1 of head i / 64 (VP pairs per
     * thread). The general mapping gives every thread a row's four heads (the
     * scores) and every row of the tile (V) however few positions it holds,
     * which is what made a short context one block's long chain. */
    const float scale = 1.0f / sqrtf((float)hd);
    const int row = tid >> 1, hf = tid & 1, hh = hd / 2;
    const int nhg = AD_THREADS / hd, d = tid % hd, hg = tid / hd;
    unsigned own = 0; /* bit h: this thread holds head h (none when hg >= nhg) */
    for (int h = hg; h < G && hg < nhg; h += nhg) own |= 1u << h;
    float acc[G];
#pragma unroll
    for (int h = 0; h < G; h++) acc[h] = 0.0f;
    constexpr int RS = AD_THREADS / (2 * G), VP = (G * 64 + AD_THREADS - 1) / AD_THREADS;
    const int hq = (tid >> 1) % G, rs = (tid >> 1) / G;
    const float *qh = qw + hq * 136 + hf * 68;
    float2 acc2[VP];
#pragma unroll
    for (int k = 0; k < VP; k++) acc2[k] = make_float2(0.0f, 0.0f);

    for (int ti = 0; ti < n_tiles; ti++) {
        const int tile0 = p0 + ti * T, nt = min(T, p1 - tile0);
        const KV *kt = kbuf + (ti & 1) * buf, *vt = kt + (size_t)T * kld;
        if (ti + 1 < n_tiles) OB_CP_WAIT(1); /* tile ti landed, ti + 1 may be in flight */
        else OB_CP_WAIT(0);
        __syncthreads();
        if (ti == 0) OB_TL_MARK(1);

        if (wide) {
            for (int r0 = 0; r0 < nt; r0 += 2 * RS) { /* uniform trip count: the shuffles need every lane */
                const int ra = r0 + rs, rb = r0 + RS + rs;
                const bool va = rs < RS && ra < nt, vb = rs < RS && rb < nt;
                const KV *ka = kt + (size_t)(va ? ra : 0) * kld + hf * 64, *kb2 = kt + (size_t)(vb ? rb : 0) * kld + hf * 64;
                float pa = 0.0f, pb2 = 0.0f;
                /* a rolled loop: the same instructions eight times, not 64
                 * dims of straight-line code (measured: unrolled with q in
                 * registers, the score phase took twice as long) */
#pragma unroll 1
                for (int c = 0; c < 64; c += 8) {
                    float xa[8], xb[8];
                    const float4 q0 = *(const float4 *)(qh + c), q1 = *(const float4 *)(qh + c + 4);
                    const float qv[8] = { q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w };
                    kv_load8(ka + c, xa);
                    kv_load8(kb2 + c, xb);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        pa += qv[e] * xa[e];
                        pb2 += qv[e] * xb[e];
                    }
                }
                pa += OB_SHFL_XOR(pa, 1);
                pb2 += OB_SHFL_XOR(pb2, 1);
                if (hf == 0 && va) ssh[hq * T + ra] = pa * scale;
                if (hf == 0 && vb) ssh[hq * T + rb] = pb2 * scale;
            }
        } else {
            float part[G];
#pragma unroll
            for (int h = 0; h < G; h++) part[h] = 0.0f;
            if (row < nt) {
                const KV *kp = kt + (size_t)row * kld + hf * hh;
                const float *qp = qs + hf * hh;
                if (hh % 8 == 0) {
                    for (int c = 0; c < hh; c += 8) {
                        float kv[8];
                        kv_load8(kp + c, kv);
#pragma unroll
                        for (int e = 0; e < 8; e++)
#pragma unroll
                            for (int h = 0; h < G; h++) part[h] += qp[h * hd + c + e] * kv[e];
                    }
                } else {
                    for (int c = 0; c < hh; c++) {
                        const float kv = kvt<KV>::get(kp + c);
#pragma unroll
                        for (int h = 0; h < G; h++) part[h] += qp[h * hd + c] * kv;
                    }
                }
            }
#pragma unroll
            for (int h = 0; h < G; h++) part[h] += OB_SHFL_XOR(part[h], 1);
            if (hf == 0 && row < nt)
#pragma unroll
                for (int h = 0; h < G; h++) ssh[h * T + row] = part[h] * scale;
        }
        __syncthreads();
        if (ti == 0) OB_TL_MARK(2);

        if (warp < G) { /* online softmax: warp h takes head h */
            const int h = warp;
            float mt = -INFINITY;
            for (int j = lane; j < nt; j += 32) mt = fmaxf(mt, ssh[h * T + j]);
            const float mold = m_run[h], mnew = fmaxf(mold, warp_max(mt));
            float sum = 0.0f;
            for (int j = lane; j < nt; j += 32) {
                const float e = expf(ssh[h * T + j] - mnew);
                ssh[h * T + j] = e;
                sum += e;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float a = mold == -INFINITY ? 0.0f : expf(mold - mnew);
                alpha[h] = a;
                l_run[h] = l_run[h] * a + sum;
                m_run[h] = mnew;
            }
        }
        __syncthreads();
        if (ti == 0) OB_TL_MARK(3);

        if (wide) {
#pragma unroll
            for (int k = 0; k < VP; k++) {
                const int pi = tid + k * AD_THREADS, h = pi >> 6;
                if (pi < G * 64) {
                    const float a = alpha[h];
                    acc2[k].x *= a;
                    acc2[k].y *= a;
                }
            }
#pragma unroll 4
            for (int j = 0; j < nt; j++) {
#pragma unroll
                for (int k = 0; k < VP; k++) {
                    const int pi = tid + k * AD_THREADS, h = pi >> 6, dd = (pi & 63) * 2;
                    if (pi < G * 64) {
                        const float2 v = kv_load2(vt + (size_t)j * hd + dd);
                        const float w = ssh[h * T + j];
                        acc2[k].x += w * v.x;
                        acc2[k].y += w * v.y;
                    }
                }
            }
        } else {
#pragma unroll
            for (int h = 0; h < G; h++) acc[h] *= alpha[h];
            if (own) {
                const KV *vp = vt + d;
#pragma unroll 4
                for (int j = 0; j < nt; j++) {
                    const float v = kvt<KV>::get(vp + (size_t)j * hd);
#pragma unroll
                    for (int h = 0; h < G; h++)
                        if (own >> h & 1) acc[h] += ssh[h * T + j] * v;
                }
            }
        }
        __syncthreads(); /* this buffer and ssh are rewritten next */
        if (ti == 0) OB_TL_MARK(4);
        if (ti + 2 < n_tiles) {
            stage(ti + 2);
            const int jn = n_pos - 1 - (tile0 + 2 * T); /* the new row, in knew/vnew since the first barrier */
            if (fuse && jn >= 0 && jn < T) {
                KV *kd = kbuf + (ti & 1) * buf, *vd = kd + (size_t)T * kld;
                for (int i = tid; i < hd; i += AD_THREADS) {
                    kd[(size_t)jn * kld + i] = knew[i];
                    vd[(size_t)jn * hd + i] = vnew[i];
                }
            }
        }
    }
    OB_TL_MARK(5);
    /* one split: the output; else this split's partial, [G][hd] o, then
     * m[G], l[G] (layout of k_attention's) */
    const int GH = G * hd;
    float *obase = out + (size_t)t * A.n_head * hd + (size_t)kvh * GH;
    const int pstride = (G * (hd + 2) + 3) & ~3;
    float *pb = A.part + ((size_t)t * A.n_kv + kvh) * A.n_split * pstride;
    float *mine = pb + (size_t)split * pstride;
    if (wide) {
#pragma unroll
        for (int k = 0; k < VP; k++) {
            const int pi = tid + k * AD_THREADS, h = pi >> 6, o = h * hd + (pi & 63) * 2;
            if (pi < G * 64) {
                if (n_used == 1) {
                    obase[o] = acc2[k].x / l_run[h];
                    obase[o + 1] = acc2[k].y / l_run[h];
                } else {
                    mine[o] = acc2[k].x;
                    mine[o + 1] = acc2[k].y;
                }
            }
        }
    } else {
#pragma unroll
        for (int h = 0; h < G; h++)
            if (own >> h & 1) {
                if (n_used == 1) obase[h * hd + d] = acc[h] / l_run[h];
                else mine[h * hd + d] = acc[h];
            }
    }
    if (n_used == 1) return;
    if (tid < G) {
        mine[GH + tid] = m_run[tid];
        mine[GH + G + tid] = l_run[tid];
    }
    unsigned *cnt = A.count + (size_t)t * A.n_kv + kvh;
    if (!arrive_last(cnt, (unsigned)n_used, &ticket)) return;
    OB_TL_MARK(6);
    /* last block: weights exp(m_s - M) / sum_s l_s exp(m_s - M), warp per head
     * and lane per split; then warp w sums splits w, w + AD_WARPS, ... and the
     * warps' sums meet in red (free again: the barrier above follows its reads) */
    if (warp < G) {
        const int h = warp;
        float m = -INFINITY, l = 0.0f;
        if (lane < n_used) {
            m = OB_LDCG(pb + (size_t)lane * pstride + GH + h);
            l = OB_LDCG(pb + (size_t)lane * pstride + GH + G + h);
        }
        const float M = warp_max(m), w = lane < n_used ? expf(m - M) : 0.0f;
        const float d = warp_sum(w * l);
        wsh[h][lane] = w;
        if (lane == 0) den[h] = d;
    }
    __syncthreads();
    for (int i4 = lane; i4 < GH / 4; i4 += 32) {
        const int h = i4 * 4 / hd;
        float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4 /* the loads of several splits in flight at once (measured: 5.5 us merges at 26 splits) */
        for (int sp = warp; sp < n_used; sp += AD_WARPS) {
            const float4 v = OB_LDCG((const float4 *)(pb + (size_t)sp * pstride) + i4);
            const float w = wsh[h][sp];
            s.x += w * v.x, s.y += w * v.y, s.z += w * v.z, s.w += w * v.w;
        }
        ((float4 *)(red + (size_t)warp * GH))[i4] = s;
    }
    __syncthreads();
    for (int i = tid; i < GH; i += AD_THREADS) {
        float num = 0.0f;
        for (int w = 0; w < AD_WARPS; w++) num += red[(size_t)w * GH + i];
        obase[i] = num / den[i / hd];
    }
    if (tid == 0) *cnt = 0;
}

template <typename KV>
static cudaError_t attn_decode_kv(const cu_attn *A, int G, dim3 grid, size_t smem, cudaStream_t st, const float *qr,
                                  const int32_t *pos, const int32_t *seq, float *out) {
    switch (G) {
    case 1: return launch_k(k_attn_decode<KV, 1>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 2: return launch_k(k_attn_decode<KV, 2>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 3: return launch_k(k_attn_decode<KV, 3>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 4: return launch_k(k_attn_decode<KV, 4>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 5: return launch_k(k_attn_decode<KV, 5>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 6: return launch_k(k_attn_decode<KV, 6>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 7: return launch_k(k_attn_decode<KV, 7>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    case 8: return launch_k(k_attn_decode<KV, 8>, grid, dim3(AD_THREADS), smem, st, *A, qr, pos, seq, out);
    }
    return cudaErrorInvalidValue;
}

/* Tiles of 128, 64 or 32 positions (the largest whose two buffers fit in
 * about 72 KB), shared memory for them, and the launch. Batches get the same
 * tile and chunk sizes as single tokens, so a token computes bitwise the same
 * in a batch as in a decode step (the summation order follows the tiles). */
static cudaError_t attn_decode(const cu_attn *A, int G, int n_tok, cudaStream_t st, const float *qr,
                               const int32_t *pos, const int32_t *seq, float *out) {
    cu_attn At = *A;
    const int hd = A->hd, es = A->kv_f32 ? 4 : 2;
    auto tiles = [&](int T) { return (size_t)T * (ad_kld(hd, es, 2) + hd) * es; };
    At.tile = 128;
    while (At.tile > 32 && 2 * tiles(At.tile) > 72 * 1024) At.tile /= 2;
    At.wide = cu_attn_wide;
    At.min_chunk = cu_attn_minchunk > 0 ? cu_attn_minchunk : At.wide && hd == 128 ? AD_MINCHUNK_WIDE : AD_MINCHUNK;
    size_t merge = (size_t)AD_WARPS * G * hd * 4; /* the last block's per-warp sums */
    size_t big = 2 * tiles(At.tile);
    if (merge > big) big = merge;
    size_t smem = (size_t)G * 136 * 4 + (size_t)G * hd * 4 + (size_t)G * At.tile * 4 + 2 * (size_t)hd * es + big;
    dim3 grid(A->n_split, A->n_kv, n_tok);
    if (A->kv_f32) return attn_decode_kv<float>(&At, G, grid, smem, st, qr, pos, seq, out);
    return attn_decode_kv<__half>(&At, G, grid, smem, st, qr, pos, seq, out);
}

cudaError_t cu_attention(const cu_attn *A, const float *qr, const int32_t *pos, const int32_t *seq, int n_tok,
                         float *out, cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    int G = A->n_head / A->n_kv;
    if (G > AT_MAXG || A->hd > AT_THREADS * 2 || A->hd % 4 || A->n_split < 1 || A->n_split > AT_MAXSPLIT)
        return cudaErrorInvalidValue;
    /* K/V tile: as many positions (16, 32 or 64) as fit in about 36 KB */
    /* k_attn_decode needs whole 16-byte units per f16 row; k_attention takes the rest */
    if (A->hd % 8 == 0 && !ad_old()) return attn_decode(A, G, n_tok, st, qr, pos, seq, out);
    cu_attn At = *A;
    size_t elt = A->kv_f32 ? 4 : 2, row = (size_t)(2 * A->hd + 16 / elt) * elt;
    At.tile = AT_TILE;
    while (At.tile > 16 && (size_t)At.tile * row > 36 * 1024) At.tile /= 2;
    if (n_tok > 1 && At.tile > 32) At.tile = 32; /* prompts: many blocks, keep several per SM */
    size_t tiles = (size_t)At.tile * row, merge = (size_t)4 * G * A->hd * sizeof(float);
    size_t smem = (size_t)G * A->hd * sizeof(float) + (tiles > merge ? tiles : merge);
    dim3 grid(A->n_split, A->n_kv, n_tok);
    if (A->kv_f32) return attention_kv<float>(&At, G, grid, smem, st, qr, pos, seq, out);
    return attention_kv<__half>(&At, G, grid, smem, st, qr, pos, seq, out);
}

/* ---- prompt attention on tensor cores --------------------------------------
 * A prompt chunk of consecutive positions p0 .. p0 + n_tok - 1 of one
 * sequence, f16 cache, head_dim 128: flash attention with the causal mask on
 * mma.sync m16n8k16 (f16 inputs, f32 accumulators). Block (query tile, head):
 * 4 warps x 16 query rows; K tiles of 64 keys row-major and V tiles
 * transposed in shared memory (rows padded: conflict-free fragment loads);
 * online softmax in registers, P reused from the S accumulators as the A
 * operand. Exactness: K and V are f16 in the cache already; q and p are split
 * into f16 hi + lo parts (x - hi is exact in f32, its f16 rounding leaves
 * 2^-22 relative), each product issued twice, so the result differs from the
 * float reference only by summation order, as the split-KV kernel's does
 * (the roped q must stay within f16 range, |q| < 65504). */

#define PA_Q 64               /* query rows per block */
#define PA_K 64               /* keys per tile */
#define PA_HD 128             /* head dim */
#define PA_KLD (PA_HD + 8)    /* K tile row stride (halves) */
#define PA_VLD (PA_K + 8)     /* V^T tile row stride (halves) */

#ifdef OB_GPU_HAVE_MMA_S8
__device__ static inline void mma_f16(float *c, const unsigned *a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ static inline unsigned half2_bits(__half a, __half b) {
    __half2 v = __halves2half2(a, b); /* a in the low 16 bits: the lower column */
    return *(unsigned *)&v;
}
/* (x0, x1) = hi + lo, each a pair of f16. */
__device__ static inline void split_f16(float x0, float x1, unsigned &hi, unsigned &lo) {
    __half h0 = __float2half_rn(x0), h1 = __float2half_rn(x1);
    hi = half2_bits(h0, h1);
    lo = half2_bits(__float2half_rn(x0 - __half2float(h0)), __float2half_rn(x1 - __half2float(h1)));
}
#endif

/* Launched only where the host side says the device has mma (not HIP, not OB_GPU_NO_MMA). */
__global__ void __launch_bounds__(128) k_attn_prompt(cu_attn A, const float *qr, int p0, int sq, int n_tok,
                                                     float *out) {
#ifdef OB_GPU_HAVE_MMA_S8
    __shared__ __align__(16) __half ks[PA_K * PA_KLD];
    __shared__ __align__(16) __half vts[PA_HD * PA_VLD];
    OB_PDL_LAUNCH();
    OB_PDL_WAIT();
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gr = lane >> 2, tig = lane & 3;
    const int h = blockIdx.y, kvh = h / (A.n_head / A.n_kv);
    const int nq = A.n_head * PA_HD, nk = A.n_kv * PA_HD;
    const int t0 = blockIdx.x * PA_Q + warp * 16 + gr, t1 = t0 + 8; /* this lane's two query rows */
    const int qp0 = p0 + t0, qp1 = p0 + t1;
    const int n_keys = p0 + min(n_tok, (int)(blockIdx.x + 1) * PA_Q); /* keys 0 .. the block's last position */
    const float scale = 1.0f / sqrtf((float)PA_HD);

    /* Q as A fragments, 8 k-steps of 16 dims: a0 (row t0, dims 2tig, +1), a1 (t1),
     * a2 (t0, +8), a3 (t1, +8) */
    unsigned qh[8][4], ql[8][4];
#pragma unroll
    for (int kq = 0; kq < 8; kq++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int row = i & 1 ? t1 : t0, col = 16 * kq + 2 * tig + (i & 2 ? 8 : 0);
            float x0 = 0.0f, x1 = 0.0f;
            if (row < n_tok) {
                const float2 v = *(const float2 *)(qr + (size_t)row * nq + (size_t)h * PA_HD + col);
                x0 = v.x, x1 = v.y;
            }
            split_f16(x0, x1, qh[kq][i], ql[kq][i]);
        }
    float o[16][4];
#pragma unroll
    for (int d = 0; d < 16; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const __half *kb = (const __half *)A.k + (size_t)sq * A.seq_stride + (size_t)kvh * PA_HD;
    const __half *vb = (const __half *)A.v + (size_t)sq * A.seq_stride + (size_t)kvh * PA_HD;

    for (int k0 = 0; k0 < n_keys; k0 += PA_K) {
        const int nt = min(PA_K, n_keys - k0);
        for (int i = tid; i < PA_K * (PA_HD / 8); i += 128) {
            const int j = i / (PA_HD / 8), c = (i % (PA_HD / 8)) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
            if (j < nt) {
                kv = *(const uint4 *)(kb + (size_t)(k0 + j) * nk + c);
                vv = *(const uint4 *)(vb + (size_t)(k0 + j) * nk + c);
            }
            *(uint4 *)(ks + j * PA_KLD + c) = kv;
            const __half *e = (const __half *)&vv;
#pragma unroll
            for (int u = 0; u < 8; u++) vts[(c + u) * PA_VLD + j] = e[u];
        }
        __syncthreads();

        float s[8][4]; /* S = Q K^T: 8 key tiles of 8; c0, c1 row t0, c2, c3 row t1; keys 8nj + 2tig + {0,1} */
#pragma unroll
        for (int nj = 0; nj < 8; nj++) {
            s[nj][0] = s[nj][1] = s[nj][2] = s[nj][3] = 0.0f;
#pragma unroll
            for (int kq = 0; kq < 8; kq++) {
                const __half *kr = ks + (8 * nj + gr) * PA_KLD + 16 * kq + 2 * tig;
                const unsigned b0 = *(const unsigned *)kr, b1 = *(const unsigned *)(kr + 8);
                mma_f16(s[nj], qh[kq], b0, b1);
                mma_f16(s[nj], ql[kq], b0, b1);
            }
        }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nj = 0; nj < 8; nj++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = k0 + 8 * nj + 2 * tig + e;
                const bool in = key < n_keys;
                s[nj][e] = in && key <= qp0 ? s[nj][e] * scale : -INFINITY;
                s[nj][2 + e] = in && key <= qp1 ? s[nj][2 + e] * scale : -INFINITY;
                mx0 = fmaxf(mx0, s[nj][e]);
                mx1 = fmaxf(mx1, s[nj][2 + e]);
            }
        mx0 = fmaxf(mx0, OB_SHFL_XOR(mx0, 1)), mx0 = fmaxf(mx0, OB_SHFL_XOR(mx0, 2));
        mx1 = fmaxf(mx1, OB_SHFL_XOR(mx1, 1)), mx1 = fmaxf(mx1, OB_SHFL_XOR(mx1, 2));
        /* key 0 is never masked, so the maxima are finite after the first tile */
        const float a0 = expf(m0 - mx0), a1 = expf(m1 - mx1);
        m0 = mx0, m1 = mx1;
        float r0 = 0.0f, r1 = 0.0f;
#pragma unroll
        for (int nj = 0; nj < 8; nj++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[nj][e] = expf(s[nj][e] - mx0);
                s[nj][2 + e] = expf(s[nj][2 + e] - mx1);
                r0 += s[nj][e];
                r1 += s[nj][2 + e];
            }
        r0 += OB_SHFL_XOR(r0, 1), r0 += OB_SHFL_XOR(r0, 2);
        r1 += OB_SHFL_XOR(r1, 1), r1 += OB_SHFL_XOR(r1, 2);
        l0 = l0 * a0 + r0, l1 = l1 * a1 + r1;
#pragma unroll
        for (int d = 0; d < 16; d++) o[d][0] *= a0, o[d][1] *= a0, o[d][2] *= a1, o[d][3] *= a1;
#pragma unroll
        for (int kk = 0; kk < 4; kk++) { /* O += P V over keys 16kk .. 16kk + 15 */
            unsigned ph[4], pl[4];
            split_f16(s[2 * kk][0], s[2 * kk][1], ph[0], pl[0]);
            split_f16(s[2 * kk][2], s[2 * kk][3], ph[1], pl[1]);
            split_f16(s[2 * kk + 1][0], s[2 * kk + 1][1], ph[2], pl[2]);
            split_f16(s[2 * kk + 1][2], s[2 * kk + 1][3], ph[3], pl[3]);
#pragma unroll
            for (int d = 0; d < 16; d++) {
                const __half *vr = vts + (8 * d + gr) * PA_VLD + 16 * kk + 2 * tig;
                const unsigned b0 = *(const unsigned *)vr, b1 = *(const unsigned *)(vr + 8);
                mma_f16(o[d], ph, b0, b1);
                mma_f16(o[d], pl, b0, b1);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int d = 0; d < 16; d++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int col = h * PA_HD + 8 * d + 2 * tig + e;
            if (t0 < n_tok) out[(size_t)t0 * nq + col] = o[d][e] / l0;
            if (t1 < n_tok) out[(size_t)t1 * nq + col] = o[d][2 + e] / l1;
        }
#endif
}

cudaError_t cu_attention_prompt(const cu_attn *A, const float *qr, int p0, int sq, int n_tok, float *out,
                                cudaStream_t st) {
#if defined(OB_GPU_HIP) || defined(OB_GPU_NO_MMA)
    (void)A, (void)qr, (void)p0, (void)sq, (void)n_tok, (void)out, (void)st;
    return cudaErrorNotSupported;
#else
    if (n_tok <= 0) return cudaSuccess;
    if (A->kv_f32 || A->hd != PA_HD || A->n_kv < 1 || A->n_head % A->n_kv || p0 < 0 || sq < 0)
        return cudaErrorNotSupported;
    return launch_k(k_attn_prompt, dim3((n_tok + PA_Q - 1) / PA_Q, A->n_head), dim3(128), 0, st, *A, qr, p0, sq,
                    n_tok, out);
#endif
}

/* ---- weight repacking ----------------------------------------------------- */

__global__ void k_pack_t2(const uint8_t *src, const int64_t *src_row, int n_phys, int K, int K_pad, uint32_t *dst) {
    const int nchunk = K_pad / CU_CHUNK;
    size_t total = (size_t)(n_phys / CU_GROUP) * nchunk * CU_GROUP * 4;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(idx & 3), r = (int)((idx >> 2) & 15);
        size_t gc = idx >> 6;
        int g = (int)(gc / nchunk), c = (int)(gc % nchunk);
        int64_t off = src_row[g * CU_GROUP + r];
        uint32_t word = 0;
        for (int m = 0; m < 16; m++) {
            int k = c * CU_CHUNK + j * 16 + m;
            uint32_t code = 1;
            if (off >= 0 && k < K) {
                const uint8_t *blk = src + off + (size_t)(k / 128) * 32;
                int kk = k % 128;
                code = (blk[kk % 32] >> (6 - 2 * (kk / 32))) & 3;
            }
            word |= code << (8 * (m % 4) + 2 * (m / 4));
        }
        dst[idx] = word;
    }
}

cudaError_t cu_pack_t2(const uint8_t *src, const int64_t *src_row, int n_phys, int K, int K_pad, size_t src_row_bytes,
                       void *dst, cudaStream_t st) {
    (void)src_row_bytes;
    k_pack_t2<<<1024, 256, 0, st>>>(src, src_row, n_phys, K, K_pad, (uint32_t *)dst);
    return cudaGetLastError();
}

cudaError_t cu_kernels_init(int max_smem) {
    (void)max_smem;
    return cudaSuccess;
}
