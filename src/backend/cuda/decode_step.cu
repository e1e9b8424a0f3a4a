/* The persistent decode step: every layer of a one-token step in one launch.
 *
 * Why: a decode step reads 17 MB of weights per layer, 5.8 us at HBM speed,
 * but as five kernels it took about 42 us per layer: each kernel paid its
 * launch, ramp-up and drain, and its weight loads could start only when the
 * kernel did. Here one block per SM stays resident for the whole step; the
 * phases of a layer are separated by grid-wide barriers, and each block
 * starts copying its share of the NEXT phase's weights, their output scales
 * and the input's norm weights into shared memory (Hopper bulk copies on an
 * mbarrier; cp.async elsewhere) before it computes the current one, so HBM
 * streams weights while the barriers, norms and reductions run.
 *
 * Phases and buffers (block b owns a contiguous run of 16-row groups of each
 * linear, the same split in every layer):
 *
 *   embed                          -> h               (qkv weights -> buf0)
 *   qkv      h, attn_norm          -> qkv   buf0      (o weights   -> buf1)
 *   attention + RoPE + KV append   -> att   K/V tiles in buf0
 *   o        att, attn_sub_norm    -> h +=  buf1      (gate/up     -> buf0)
 *   gate/up  h, ffn_norm, act      -> mb    buf0      (down        -> buf1)
 *   down     mb, ffn_sub_norm      -> h +=  buf1      (next qkv    -> buf0)
 *
 * Each GEMV phase normalizes and quantizes its whole input row in every block
 * (the row is 10-28 KB in L2; one block per SM makes that cheaper than a
 * separate phase and barrier). Data written by other blocks in this launch is
 * read with L1-bypassing loads (OB_LDCG); weights, norms and scales are
 * read-only. The numerics are those of kernels.cu: the same int8
 * quantization, exact integer dot products and epilogues; norms and
 * attention differ only in float summation order.
 *
 * The launch is cooperative (all blocks resident, or the launch fails), which
 * the barriers need.
 *
 * Status: correct (tests/gpu/test_cuda_model.c compares it with the per-kernel
 * path) but SLOWER than it on an H100 (700 against 864 tokens/s at context
 * 64), so it is opt-in (OB_CUDA_MEGA=1). With OB_CUDA_PROFILE=1 every block
 * stamps its phases: a GEMV phase takes 4-6 us of work in each block and a
 * barrier about 1.2 us, against the 1-2 us the arithmetic and data predict;
 * prefetching norms and scales, bulk copies instead of cp.async, 256 instead
 * of 512 threads and issuing weights one phase ahead or not all measured the
 * same (docs/PERFORMANCE.md, CUDA v9). The kernel's code is about 320 KB of
 * SASS, far above the instruction caches, which is the next suspect. */
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/device_common.cuh"

#ifndef MK_THREADS
#define MK_THREADS 512   /* one block per SM */
#endif
#define MK_WARPS (MK_THREADS / 32)
#define MK_NV (8192 / 4 / MK_THREADS) /* float4 per thread in the prologue: K <= 8192 */
#define MK_MAXG 16       /* 16-row groups of one linear per block */
#define MK_MAXH 8        /* query heads per KV head */
#define MK_MAXHD 256     /* head dim */
#define MK_MINCHUNK 64   /* positions per attention split, at least */
#define MK_MAXSPLIT 32   /* = warp size: the merge gives one lane per split */

/* Static shared state of a block. */
struct mk_shared {
    int red[MK_MAXG][MK_WARPS][16]; /* GEMV: per-warp row sums */
    double shd[MK_WARPS];           /* prologue reductions, one array each so */
    float shf[MK_WARPS];            /* that each needs a single barrier */
    int shi[MK_WARPS];
    float m_run[MK_MAXH], l_run[MK_MAXH], alpha[MK_MAXH], den[MK_MAXH];
    float wsh[MK_MAXH][MK_MAXSPLIT];
    unsigned ticket;
};

/* Profiling stamps (M.prof set): thread 0 of each block records the global
 * timer at the start (after the barrier) and end (before the next) of each phase. */
__device__ static inline void stamp(const cu_mega &M, int phase, int end) {
    if (M.prof && threadIdx.x == 0) {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        M.prof[((size_t)phase * gridDim.x + blockIdx.x) * 2 + end] = t;
    }
}

/* Block b's share of n items: [lo, lo + cnt). */
__device__ static inline void block_share(int n, int &lo, int &cnt) {
    lo = (int)((long long)n * blockIdx.x / gridDim.x);
    cnt = (int)((long long)n * (blockIdx.x + 1) / gridDim.x) - lo;
}

/* Grid-wide barrier: every block's writes before it are visible to every
 * block after it. bar counts arrivals over the whole launch; target is this
 * block's running count of expected arrivals. */
__device__ static inline void grid_sync(unsigned *bar, unsigned &target) {
#ifdef OB_HAVE_BULK_COPY
    ob_fence_proxy_async(); /* this thread's shared-memory accesses before the next bulk copies */
#endif
    __syncthreads();
    target += gridDim.x;
    if (threadIdx.x == 0) {
        OB_FENCE_ACQREL();
        atomicAdd(bar, 1u);
        while (ob_ld_acquire(bar) < target) {
        }
        OB_FENCE_ACQREL();
    }
    __syncthreads();
}

/* A weight buffer and how its copies complete: with bulk copies an mbarrier
 * whose phase parity flips at each fill; else cp.async groups (at most two
 * in flight: this phase's and the next's). */
struct mk_wbuf {
    unsigned char *p;
    unsigned long long *bar;
    unsigned fills; /* completed waits so far: the next wait's parity is fills & 1 */
};

/* Starts copying this block's groups of L into b, followed by the groups'
 * output scales (beta) and the input's norm weights (K floats; none when
 * norm is NULL), so that no read after the phase's barrier misses to HBM.
 * Every generic access of b's previous contents must be behind a barrier
 * (grid_sync has one). */
__device__ static void issue_weights(const cu_linear &L, const float *norm, mk_wbuf &b) {
    int lo, ng;
    block_share(L.n_phys / CU_GROUP, lo, ng);
    const size_t per_group = (size_t)L.ld / CU_CHUNK * CU_GROUP * 16; /* bytes */
    const unsigned char *src = (const unsigned char *)L.w + (size_t)lo * per_group;
    const size_t n = (size_t)ng * per_group, nbeta = (size_t)ng * CU_GROUP * 4, nnorm = norm ? (size_t)L.K * 4 : 0;
    const float *beta = L.beta + (size_t)lo * CU_GROUP;
#ifdef OB_HAVE_BULK_COPY
    if (threadIdx.x < 32) { /* warp 0: lane 0 sets the byte count, lanes copy 16 KB pieces */
        const size_t piece = 16384;
        if (threadIdx.x == 0) {
            ob_fence_proxy_async();
            ob_mbar_expect(b.bar, (unsigned)(n + nbeta + nnorm));
            if (nbeta) ob_bulk_copy(b.p + n, beta, (unsigned)nbeta, b.bar);
        }
        if (threadIdx.x == 1 && nnorm) ob_bulk_copy(b.p + n + nbeta, norm, (unsigned)nnorm, b.bar);
        __syncwarp();
        for (size_t off = threadIdx.x * piece; off < n; off += 32 * piece)
            ob_bulk_copy(b.p + off, src + off, (unsigned)(n - off < piece ? n - off : piece), b.bar);
    }
#else
    for (size_t i = threadIdx.x; i < n / 16; i += MK_THREADS) OB_CP_ASYNC16((uint4 *)b.p + i, (const uint4 *)src + i);
    for (size_t i = threadIdx.x; i < nbeta / 16; i += MK_THREADS)
        OB_CP_ASYNC16((uint4 *)(b.p + n) + i, (const uint4 *)beta + i);
    for (size_t i = threadIdx.x; i < nnorm / 16; i += MK_THREADS)
        OB_CP_ASYNC16((uint4 *)(b.p + n + nbeta) + i, (const uint4 *)norm + i);
    OB_CP_COMMIT();
#endif
}

/* Waits for the copy most recently issued into b (the caller's next barrier
 * makes every thread see it). */
__device__ static inline void wait_weights(mk_wbuf &b) {
#ifdef OB_HAVE_BULK_COPY
    ob_mbar_wait(b.bar, b.fills & 1);
#else
    OB_CP_WAIT(1); /* this phase's group; the next phase's may still be in flight */
#endif
    b.fills++;
}

/* RMSNorm (norm != NULL) and int8 quantization of the row x[0..K) into
 * qs[0..K_pad) (zero padded), as quantize_row_fast in kernels.cu; returns the
 * scale, leaves each warp's sum of q in S.shi. The row's loads are issued
 * first, then the phase's weights (with norm, in shared memory) are waited
 * for. The caller's next barrier publishes qs and S.shi. */
template <int NV>
__device__ static float mk_quant(const float *x, int K, int K_pad, const float *norm, float eps,
                                 int8_t *qs, mk_wbuf &wb, mk_shared &S) {
    const int K4 = K / 4, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float4 g[NV], v[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = tid + i * MK_THREADS;
        if (j < K4) v[i] = OB_LDCG((const float4 *)x + j);
    }
    wait_weights(wb);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = tid + i * MK_THREADS;
        if (norm && j < K4) g[i] = ((const float4 *)norm)[j];
    }
    if (norm) {
        double ss = 0.0;
#pragma unroll
        for (int i = 0; i < NV; i++)
            if (tid + i * MK_THREADS < K4)
                ss += ((double)v[i].x * v[i].x + (double)v[i].y * v[i].y) +
                      ((double)v[i].z * v[i].z + (double)v[i].w * v[i].w);
        for (int o = 16; o; o >>= 1) ss += OB_SHFL_XOR(ss, o);
        if (lane == 0) S.shd[warp] = ss;
        __syncthreads();
        double t = 0.0;
        for (int w = 0; w < MK_WARPS; w++) t += S.shd[w];
        const float inv = 1.0f / sqrtf((float)(t / (double)K) + eps);
#pragma unroll
        for (int i = 0; i < NV; i++)
            if (tid + i * MK_THREADS < K4) {
                v[i].x = __fmul_rn(__fmul_rn(v[i].x, inv), g[i].x);
                v[i].y = __fmul_rn(__fmul_rn(v[i].y, inv), g[i].y);
                v[i].z = __fmul_rn(__fmul_rn(v[i].z, inv), g[i].z);
                v[i].w = __fmul_rn(__fmul_rn(v[i].w, inv), g[i].w);
            }
    }
    float m = 1e-5f;
#pragma unroll
    for (int i = 0; i < NV; i++)
        if (tid + i * MK_THREADS < K4)
            m = fmaxf(m, fmaxf(fmaxf(fabsf(v[i].x), fabsf(v[i].y)), fmaxf(fabsf(v[i].z), fabsf(v[i].w))));
    m = warp_max(m);
    if (lane == 0) S.shf[warp] = m;
    __syncthreads();
    m = S.shf[0];
    for (int w = 1; w < MK_WARPS; w++) m = fmaxf(m, S.shf[w]);
    const float s = 127.0f / m;
    int sum = 0;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = tid + i * MK_THREADS;
        if (j < K4) {
            sum += quant_i8x4(v[i], s, (char4 *)qs + j);
        }
    }
    for (int j = K4 + tid; j < K_pad / 4; j += MK_THREADS) ((int *)qs)[j] = 0;
    sum = warp_sum_i(sum);
    if (lane == 0) S.shi[warp] = sum;
    return s;
}

/* y = epi(L(norm(x))) for this block's groups, whose weights are (arriving)
 * in wbuf. Thread t: row t % 16 of every group, chunks t / 16 + 32 k. */
template <int EPI, int NV>
__device__ static void mk_gemv(const cu_mega &M, const cu_linear &L, const float *x, const float *norm, float eps, float *y,
                               mk_wbuf &wb, int8_t *qs, mk_shared &S) {
    const uint4 *wbuf = (const uint4 *)wb.p;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, row = tid & 15, slice = tid >> 4;
    int lo, ng;
    block_share(L.n_phys / CU_GROUP, lo, ng);
    const int prow0 = lo * CU_GROUP, nchunk = L.ld / CU_CHUNK;
    const size_t nw = (size_t)ng * nchunk * CU_GROUP * 16;
    const float *beta_sm = (const float *)(wb.p + nw), *norm_sm = norm ? beta_sm + ng * CU_GROUP : NULL;
    float yold = 0.0f; /* the residual first: its latency overlaps the prologue */
    if (EPI == CU_EPI_ADD && tid < 16 * ng && prow0 + tid < L.n_out) yold = OB_LDCG(y + prow0 + tid);
    const float s = mk_quant<NV>(x, L.K, L.ld, norm_sm, eps, qs, wb, S);
    const float beta = tid < 16 * ng ? beta_sm[tid] : 0.0f;
    __syncthreads(); /* qs and S.shi complete */
    for (int gi = 0; gi < ng; gi++) {
        const uint4 *W = wbuf + (size_t)gi * nchunk * CU_GROUP + row;
        int acc = 0;
        for (int c = slice; c < nchunk; c += 2 * MK_WARPS) acc = dot64(W[c * CU_GROUP], qs + c * CU_CHUNK, acc);
        acc += OB_SHFL_XOR(acc, 16); /* lanes l and l ^ 16 hold the same row */
        if (lane < 16) S.red[gi][warp][row] = acc;
    }
    __syncthreads();
    if (warp < (ng + 1) / 2) { /* whole warps: thread t finishes row t of the block */
        const int g = min(tid >> 4, ng - 1);
        int t = 0, qsum = 0;
#pragma unroll
        for (int w = 0; w < MK_WARPS; w++) {
            t += S.red[g][w][row];
            qsum += S.shi[w];
        }
        float v = __fmul_rn(__fmul_rn((float)(t - qsum), __fdiv_rn(1.0f, s)), beta);
        epilogue_warp<EPI>(v, yold, ng * 16 - 32 * warp, prow0 + 32 * warp, L, y, NULL);
    }
}

/* One linear phase: the prologue keeps the input
 * row in registers, NV float4 per thread (half or all of MK_NV). */
template <int EPI>
__device__ static void mk_linear(const cu_mega &M, const cu_linear &L, const float *x, const float *norm,
                                 float eps, float *y, mk_wbuf &wb, int8_t *qs, mk_shared &S) {
    if (L.K <= MK_NV / 2 * 4 * MK_THREADS) mk_gemv<EPI, MK_NV / 2>(M, L, x, norm, eps, y, wb, qs, S);
    else mk_gemv<EPI, MK_NV>(M, L, x, norm, eps, y, wb, qs, S);
}

/* h = embedding row of tok, each block writing its share of h. */
__device__ static void mk_embed(const cu_mega &M, int tok) {
    const cu_embed &E = M.emb;
    int lo, n;
    block_share(E.n_embd, lo, n);
    const bool ok = tok >= 0 && tok < E.n_vocab; /* the host validates ids; never read out of bounds */
    const size_t base = (size_t)(ok ? tok : 0) * E.ld;
    for (int i = lo + threadIdx.x; i < lo + n; i += MK_THREADS) {
        float v;
        switch (E.kind) {
        case CU_W_F16: v = __half2float(((const __half *)E.w)[base + i]); break;
        case CU_W_BF16: v = __bfloat162float(((const __nv_bfloat16 *)E.w)[base + i]); break;
        case CU_W_I8: v = __fmul_rn((float)((const int8_t *)E.w)[base + i], E.scale[ok ? tok : 0]); break;
        default: v = ((const float *)E.w)[base + i]; break;
        }
        M.h[i] = ok ? v : 0.0f;
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && M.amax) *M.amax = 0;
}

/* rope_dim_value (device_common.cuh) with position p's (cos, sin) row
 * already in shared memory. */
__device__ static inline float rope_smem(const float *v, int d, const float *cs, const cu_attn &A) {
    if (d >= A.rope_dim) return v[d];
    const int half = A.rope_dim / 2;
    int i, d0, d1;
    if (A.rope_neox) {
        i = d < half ? d : d - half;
        d0 = i;
        d1 = i + half;
    } else {
        i = d / 2;
        d0 = 2 * i;
        d1 = 2 * i + 1;
    }
    const float c = cs[2 * i], sn = cs[2 * i + 1], x0 = v[d0], x1 = v[d1];
    if (d == d0) return __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, sn));
    return __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, c));
}

/* Attention of the one new token at position p of sequence sq in layer
 * `layer`, with RoPE and the KV append. Work items (KV head, split of
 * positions) go one per block; a split holds at least MK_MINCHUNK positions,
 * and the last block of a head to finish merges the splits' partials.
 * Latency is what costs here, so the item's first K/V tile, its raw q/k/v
 * rows and the RoPE row are all loaded in one round; the new K/V row is
 * patched into the tile from shared memory rather than re-read.
 * tiles: K/V staging (M.tile positions); qsh: [G][hd] roped query; raw:
 * [G + 3][hd]: raw q rows, raw k, raw v, roped k; cs: the (cos, sin) row of p;
 * ssh: [MK_MAXH][tile] scores. */
template <typename KV, int G>
__device__ static void mk_attention(const cu_mega &M, int layer, int p, int sq, unsigned char *tiles, float *qsh,
                                    float *raw, float *ssh, const float *cs, mk_shared &S) {
    const cu_attn &A = M.attn;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int hd = A.hd, nk = A.n_kv * hd, GD = G * hd, n_pos = p + 1;
    const int chunk = max(MK_MINCHUNK, (n_pos + M.max_split - 1) / M.max_split);
    const int n_used = (n_pos + chunk - 1) / chunk, items = A.n_kv * n_used;
    const size_t loff = (size_t)layer * M.layer_stride + (size_t)sq * A.seq_stride;
    KV *kc = (KV *)A.k + loff, *vc = (KV *)A.v + loff;
    const int V = kvt<KV>::VEC, kld = hd + V, T = M.tile, TPP = MK_THREADS / T, DPS = hd / TPP, rv = hd / V;
    const float scale = 1.0f / sqrtf((float)hd);
    KV *kt = (KV *)tiles, *vt = kt + (size_t)T * kld;
    float *kraw = raw + GD, *vraw = kraw + hd, *knew = vraw + hd;
    const int pstride = (GD + 2 * G + 3) & ~3;

    for (int item = blockIdx.x; item < items; item += gridDim.x) {
        const int kvh = item / n_used, split = item - kvh * n_used;
        const int p0 = split * chunk, p1 = min(n_pos, p0 + chunk);
        const bool has_new = p >= p0 && p < p1; /* the split holding p appends its K/V row */
        /* K/V rows [tile0, tile0 + nt) into the tiles; row p comes from
         * knew/vraw when `patch` (they are ready), else is left for later */
        auto stage = [&](int tile0, int nt, bool patch) {
            for (int i = tid; i < nt * rv; i += MK_THREADS) {
                const int j = i / rv, c = (i - j * rv) * V;
                if (has_new && tile0 + j == p) {
                    if (patch)
                        for (int e = 0; e < V; e++) {
                            kt[(size_t)j * kld + c + e] = kvt<KV>::put(knew[c + e]);
                            vt[(size_t)j * hd + c + e] = kvt<KV>::put(vraw[c + e]);
                        }
                    continue;
                }
                const size_t off = (size_t)(tile0 + j) * nk + (size_t)kvh * hd + c;
                const uint4 kk = OB_LDCG((const uint4 *)(kc + off)), vv = OB_LDCG((const uint4 *)(vc + off));
                *(uint4 *)(kt + (size_t)j * kld + c) = kk;
                *(uint4 *)(vt + (size_t)j * hd + c) = vv;
            }
        };
        /* round 1: raw rows and the first tile, all in flight together */
        const float *q = M.qkv + (size_t)kvh * GD, *kn = M.qkv + A.n_head * hd + (size_t)kvh * hd, *vn = kn + nk;
        for (int i = tid; i < GD; i += MK_THREADS) raw[i] = OB_LDCG(q + i);
        if (has_new)
            for (int i = tid; i < hd; i += MK_THREADS) {
                kraw[i] = OB_LDCG(kn + i);
                vraw[i] = OB_LDCG(vn + i);
            }
        stage(p0, min(T, p1 - p0), false);
        if (tid < MK_MAXH) {
            S.m_run[tid] = -INFINITY;
            S.l_run[tid] = 0.0f;
        }
        __syncthreads();
        for (int i = tid; i < GD; i += MK_THREADS) {
            int h = i / hd;
            qsh[i] = rope_smem(raw + h * hd, i - h * hd, cs, A);
        }
        if (has_new)
            for (int i = tid; i < hd; i += MK_THREADS) {
                const float k = rope_smem(kraw, i, cs, A);
                knew[i] = k;
                kc[(size_t)p * nk + (size_t)kvh * hd + i] = kvt<KV>::put(k);
                vc[(size_t)p * nk + (size_t)kvh * hd + i] = kvt<KV>::put(vraw[i]);
                if (p < p0 + T) { /* the first tile holds p: patch it here */
                    kt[(size_t)(p - p0) * kld + i] = kvt<KV>::put(k);
                    vt[(size_t)(p - p0) * hd + i] = kvt<KV>::put(vraw[i]);
                }
            }
        float oacc[4] = { 0.0f, 0.0f, 0.0f, 0.0f }; /* outputs tid + 512 k of [G][hd] */
        __syncthreads();

        for (int tile0 = p0; tile0 < p1; tile0 += T) {
            const int nt = min(T, p1 - tile0);
            if (tile0 != p0) {
                stage(tile0, nt, true);
                __syncthreads();
            }
            { /* scores: TPP threads per position, DPS dims each, all G heads */
                const int j = tid / TPP, seg = tid - j * TPP;
                float part[G];
#pragma unroll
                for (int h = 0; h < G; h++) part[h] = 0.0f;
                if (j < nt) {
                    const KV *kp = kt + (size_t)j * kld + seg * DPS;
                    const float *qp = qsh + seg * DPS;
                    for (int d = 0; d < DPS; d += V) {
                        float kv[8];
                        kvt<KV>::load(kp + d, kv);
#pragma unroll
                        for (int e = 0; e < V; e++)
#pragma unroll
                            for (int h = 0; h < G; h++) part[h] += qp[h * hd + d + e] * kv[e];
                    }
                }
                for (int o = TPP / 2; o; o >>= 1)
#pragma unroll
                    for (int h = 0; h < G; h++) part[h] += OB_SHFL_XOR(part[h], o);
                if (j < nt && seg == 0)
#pragma unroll
                    for (int h = 0; h < G; h++) ssh[h * T + j] = part[h] * scale;
            }
            __syncthreads();
            if (warp < G) { /* online softmax, a warp per head (T <= 64: two scores per lane) */
                const int h = warp;
                float s0 = lane < nt ? ssh[h * T + lane] : -INFINITY;
                float s1 = lane + 32 < nt ? ssh[h * T + lane + 32] : -INFINITY;
                float mold = S.m_run[h], mnew = fmaxf(mold, warp_max(fmaxf(s0, s1)));
                float e0 = lane < nt ? expf(s0 - mnew) : 0.0f, e1 = lane + 32 < nt ? expf(s1 - mnew) : 0.0f;
                if (lane < T) ssh[h * T + lane] = e0;
                if (lane + 32 < T) ssh[h * T + lane + 32] = e1;
                float sum = warp_sum(e0 + e1);
                if (lane == 0) {
                    float a = mold == -INFINITY ? 0.0f : expf(mold - mnew);
                    S.alpha[h] = a;
                    S.l_run[h] = S.l_run[h] * a + sum;
                    S.m_run[h] = mnew;
                }
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int e = tid + k * MK_THREADS;
                if (e < GD) { /* four independent chains over the tile's positions */
                    const int h = e / hd, d = e - h * hd;
                    const float *w = ssh + h * T;
                    const KV *vp = vt + d;
                    float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
                    int j = 0;
                    for (; j + 4 <= nt; j += 4) {
                        o0 += w[j] * kvt<KV>::get(vp + (size_t)j * hd);
                        o1 += w[j + 1] * kvt<KV>::get(vp + (size_t)(j + 1) * hd);
                        o2 += w[j + 2] * kvt<KV>::get(vp + (size_t)(j + 2) * hd);
                        o3 += w[j + 3] * kvt<KV>::get(vp + (size_t)(j + 3) * hd);
                    }
                    for (; j < nt; j++) o0 += w[j] * kvt<KV>::get(vp + (size_t)j * hd);
                    oacc[k] = oacc[k] * S.alpha[h] + ((o0 + o1) + (o2 + o3));
                }
            }
            __syncthreads();
        }

        float *out = M.att + (size_t)kvh * GD;
        if (n_used == 1) {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int e = tid + k * MK_THREADS;
                if (e < GD) out[e] = oacc[k] / S.l_run[e / hd];
            }
        } else {
            /* partial: [G][hd] o, then m[G], l[G] */
            float *part = A.part + ((size_t)kvh * MK_MAXSPLIT + split) * pstride;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int e = tid + k * MK_THREADS;
                if (e < GD) part[e] = oacc[k];
            }
            if (tid < G) {
                part[GD + tid] = S.m_run[tid];
                part[GD + G + tid] = S.l_run[tid];
            }
            if (arrive_last(A.count + kvh, (unsigned)n_used, &S.ticket)) { /* the last split of this head merges */
                const float *pb = A.part + (size_t)kvh * MK_MAXSPLIT * pstride;
                if (warp < G) {
                    const int h = warp;
                    float m = -INFINITY, l = 0.0f;
                    if (lane < n_used) {
                        m = OB_LDCG(pb + (size_t)lane * pstride + GD + h);
                        l = OB_LDCG(pb + (size_t)lane * pstride + GD + G + h);
                    }
                    float Mx = warp_max(m), w = lane < n_used ? expf(m - Mx) : 0.0f;
                    float d = warp_sum(w * l);
                    S.wsh[h][lane] = w;
                    if (lane == 0) S.den[h] = d;
                }
                __syncthreads();
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int e = tid + k * MK_THREADS;
                    if (e < GD) {
                        const int h = e / hd;
                        float num = 0.0f;
                        for (int sp = 0; sp < n_used; sp++) num += S.wsh[h][sp] * OB_LDCG(pb + (size_t)sp * pstride + e);
                        out[e] = num / S.den[h];
                    }
                }
                if (tid == 0) A.count[kvh] = 0;
            }
        }
        __syncthreads(); /* the next item reuses the scratch */
    }
}

template <typename KV, int G>
__global__ void __launch_bounds__(MK_THREADS, 1) k_decode_step(const __grid_constant__ cu_mega M, const int32_t *step) {
    extern __shared__ __align__(128) unsigned char smem[];
    __shared__ mk_shared S;
    __shared__ __align__(8) unsigned long long mbar[2];
    __shared__ float rope_row[MK_MAXHD]; /* (cos, sin) of position p, for every layer */
    mk_wbuf b0 = { smem, &mbar[0], 0 }, b1 = { smem + M.buf0, &mbar[1], 0 };
    int8_t *qs = (int8_t *)(b1.p + M.buf1);
    const int GD = G * M.attn.hd;
    float *qsh = (float *)(qs + M.qs_bytes), *raw = qsh + GD, *ssh = raw + GD + 4 * M.attn.hd;
    const int tok = step[0], p = step[1], sq = step[2];
    const cu_layer *Ls = M.layers;
    unsigned target = 0;
#ifdef OB_HAVE_BULK_COPY
    if (threadIdx.x == 0) {
        ob_mbar_init(&mbar[0], 1);
        ob_mbar_init(&mbar[1], 1);
        ob_fence_proxy_async();
    }
    __syncthreads();
#endif

    issue_weights(Ls[0].qkv, Ls[0].attn_norm, b0);
    stamp(M, 0, 0);
    for (int i = threadIdx.x; i < M.attn.rope_dim; i += MK_THREADS)
        rope_row[i] = OB_LDG(M.attn.rope_cs + (size_t)p * M.attn.rope_dim + i);
    mk_embed(M, tok);
    stamp(M, 0, 1);
    grid_sync(M.bar, target);
    for (int l = 0; l < M.n_layer; l++) {
        const cu_layer &Ly = Ls[l];
        const int ph = 1 + 5 * l;
        stamp(M, ph, 0);
        issue_weights(Ly.o, Ly.attn_sub_norm, b1);
        mk_linear<CU_EPI_STORE>(M, Ly.qkv, M.h, Ly.attn_norm, M.eps, M.qkv, b0, qs, S);
        stamp(M, ph, 1);
        grid_sync(M.bar, target);
        stamp(M, ph + 1, 0);
        mk_attention<KV, G>(M, l, p, sq, b0.p, qsh, raw, ssh, rope_row, S);
        stamp(M, ph + 1, 1);
        grid_sync(M.bar, target);
        stamp(M, ph + 2, 0);
        issue_weights(Ly.gu, Ly.ffn_norm, b0);
        mk_linear<CU_EPI_ADD>(M, Ly.o, M.att, Ly.attn_sub_norm, M.eps, M.h, b1, qs, S);
        stamp(M, ph + 2, 1);
        grid_sync(M.bar, target);
        stamp(M, ph + 3, 0);
        issue_weights(Ly.down, Ly.ffn_sub_norm, b1);
        if (Ly.gu.epi == CU_EPI_GLU_RELU2)
            mk_linear<CU_EPI_GLU_RELU2>(M, Ly.gu, M.h, Ly.ffn_norm, M.eps, M.mb, b0, qs, S);
        else
            mk_linear<CU_EPI_GLU_SILU>(M, Ly.gu, M.h, Ly.ffn_norm, M.eps, M.mb, b0, qs, S);
        stamp(M, ph + 3, 1);
        grid_sync(M.bar, target);
        stamp(M, ph + 4, 0);
        if (l + 1 < M.n_layer) issue_weights(Ls[l + 1].qkv, Ls[l + 1].attn_norm, b0);
#ifndef OB_HAVE_BULK_COPY
        else OB_CP_COMMIT(); /* an empty group keeps OB_CP_WAIT(1) meaning "this phase's" */
#endif
        mk_linear<CU_EPI_ADD>(M, Ly.down, M.mb, Ly.ffn_sub_norm, M.eps, M.h, b1, qs, S);
        stamp(M, ph + 4, 1);
        if (l + 1 < M.n_layer) grid_sync(M.bar, target);
    }
#ifndef OB_HAVE_BULK_COPY
    OB_CP_WAIT(0);
#endif
}

/* ---- host side ------------------------------------------------------------ */

typedef void (*mk_kernel)(const cu_mega, const int32_t *);

/* The instance for the cache type and group size; NULL when not built. */
static mk_kernel pick_kernel(const cu_attn &A) {
    const int G = A.n_head / A.n_kv;
#define MK_PICK(g) \
    if (G == g) return A.kv_f32 ? (mk_kernel)k_decode_step<float, g> : (mk_kernel)k_decode_step<__half, g>
    MK_PICK(1);
    MK_PICK(2);
    MK_PICK(4);
    MK_PICK(8);
#undef MK_PICK
    return NULL;
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

cudaError_t cu_mega_plan(cu_mega *M, const cu_layer *L, int n_sm, size_t max_smem) {
    const cu_attn &A = M->attn;
    if (n_sm < 1 || A.n_kv < 1 || A.n_head % A.n_kv) return cudaErrorNotSupported;
    const int G = A.n_head / A.n_kv, hd = A.hd;
    if (G > MK_MAXH || hd > MK_MAXHD || A.rope_dim > hd || G * hd > 4 * MK_THREADS || hd % 8)
        return cudaErrorNotSupported;
    M->n_block = n_sm;
    size_t buf0 = 0, buf1 = 0, ld_max = 0;
    for (int l = 0; l < M->n_layer; l++) {
        const cu_linear *lin[4] = { &L[l].qkv, &L[l].o, &L[l].gu, &L[l].down };
        const int epi[4] = { CU_EPI_STORE, CU_EPI_ADD, L[l].gu.epi, CU_EPI_ADD };
        for (int i = 0; i < 4; i++) {
            const cu_linear *x = lin[i];
            if (x->kind != CU_W_T2 || x->epi != epi[i] || x->K % 4 || x->K > 4 * MK_THREADS * MK_NV)
                return cudaErrorNotSupported;
            int groups = x->n_phys / CU_GROUP, per_block = (groups + n_sm - 1) / n_sm;
            if (per_block > MK_MAXG) return cudaErrorNotSupported;
            size_t bytes = (size_t)per_block * (x->ld / CU_CHUNK) * CU_GROUP * 16 /* weights */
                           + (size_t)per_block * CU_GROUP * 4 + (size_t)x->K * 4; /* beta, norm */
            size_t &buf = (i == 0 || i == 2) ? buf0 : buf1;
            if (bytes > buf) buf = bytes;
            if ((size_t)x->ld > ld_max) ld_max = (size_t)x->ld;
        }
    }
    /* attention tile: 64 positions (MK_THREADS / 64 threads per position) or 32 */
    const size_t elt = A.kv_f32 ? 4 : 2, V = 16 / elt;
    int tile = hd % (MK_THREADS / 64 * V) == 0 ? 64 : hd % (MK_THREADS / 32 * V) == 0 ? 32 : 0;
    if (!tile) return cudaErrorNotSupported;
    size_t tiles = (size_t)tile * (2 * hd + V) * elt;
    if (tiles > buf0) buf0 = tiles;
    M->buf0 = (int)(buf0 + 127) / 128 * 128;
    M->buf1 = (int)(buf1 + 127) / 128 * 128;
    M->qs_bytes = (int)round16(ld_max);
    M->tile = tile;
    M->max_split = n_sm / A.n_kv < 1 ? 1 : n_sm / A.n_kv > MK_MAXSPLIT ? MK_MAXSPLIT : n_sm / A.n_kv;
    size_t scratch = (size_t)(2 * G * hd + 4 * hd + MK_MAXH * tile) * sizeof(float);
    M->smem = (size_t)M->buf0 + M->buf1 + M->qs_bytes + scratch;
    if (M->smem + sizeof(mk_shared) > max_smem) return cudaErrorNotSupported;
    /* cooperative launches need every block resident: one per SM must fit */
    mk_kernel k = pick_kernel(A);
    if (!k) return cudaErrorNotSupported;
    cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)M->smem);
    if (e != cudaSuccess) return e;
    int per_sm = 0;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, MK_THREADS, M->smem);
    if (e != cudaSuccess) return e;
    return per_sm >= 1 ? cudaSuccess : cudaErrorNotSupported;
}

/* Floats of the attention partials a plan needs (the caller's M->attn.part). */
size_t cu_mega_part_floats(const cu_mega *M) {
    const int G = M->attn.n_head / M->attn.n_kv;
    return (size_t)M->attn.n_kv * MK_MAXSPLIT * ((G * (M->attn.hd + 2) + 3) & ~3);
}

cudaError_t cu_mega_decode(const cu_mega *M, const int32_t *step, cudaStream_t st) {
    cudaError_t e = cudaMemsetAsync(M->bar, 0, sizeof(unsigned), st);
    if (e != cudaSuccess) return e;
    mk_kernel k = pick_kernel(M->attn);
    if (!k) return cudaErrorNotSupported;
#if defined(OB_GPU_HIP)
    k<<<M->n_block, MK_THREADS, M->smem, st>>>(*M, step);
    return cudaGetLastError();
#else
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(M->n_block);
    cfg.blockDim = dim3(MK_THREADS);
    cfg.dynamicSmemBytes = M->smem;
    cfg.stream = st;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative; /* every block resident, or an error */
    attr[0].val.cooperative = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, k, *M, step);
#endif
}
