/* Device helpers shared by the CUDA kernel files (kernels.cu: one kernel per
 * operation; decode_step.cu: the persistent decode kernel). Included by .cu
 * files only, after cuda_internal.h. Everything here is static inline: each
 * translation unit gets its own copy. */
#ifndef OB_CUDA_DEVICE_COMMON_CUH
#define OB_CUDA_DEVICE_COMMON_CUH

#include "backend/cuda/cuda_internal.h"

#include <math.h>

/* ---- warp reductions (every lane gets the result) ------------------------ */

__device__ static inline float warp_sum(float v) {
    for (int o = 16; o; o >>= 1) v += OB_SHFL_XOR(v, o);
    return v;
}
__device__ static inline float warp_max(float v) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, OB_SHFL_XOR(v, o));
    return v;
}
__device__ static inline int warp_sum_i(int v) {
    for (int o = 16; o; o >>= 1) v += OB_SHFL_XOR(v, o);
    return v;
}

/* int8 quantization of one value with scale s, as ob_quantize_row_i8: the
 * product rounded half to even, clamped to [-128, 127] (NaN -> -128 via fmaxf). */
__device__ static inline int quant_i8(float v, float s) {
    return (int)fminf(fmaxf(rintf(__fmul_rn(v, s)), -128.0f), 127.0f);
}
/* The four lanes of v quantized into *q; returns their sum. */
__device__ static inline int quant_i8x4(float4 v, float s, char4 *q) {
    int a = quant_i8(v.x, s), b = quant_i8(v.y, s), c = quant_i8(v.z, s), d = quant_i8(v.w, s);
    *q = make_char4((signed char)a, (signed char)b, (signed char)c, (signed char)d);
    return a + b + c + d;
}

/* The hand-off of split-KV attention: every block writes its partial result,
 * then calls this (all threads). It publishes those writes and returns true,
 * in every thread, only in the last of n blocks to arrive at *count, which
 * then sees all n partials and merges them. slot: a shared word of the block. */
__device__ static inline bool arrive_last(unsigned *count, unsigned n, unsigned *slot) {
    OB_FENCE_ACQREL();
    __syncthreads();
    if (threadIdx.x == 0) *slot = atomicAdd(count, 1u);
    __syncthreads();
    if (*slot != n - 1) return false;
    OB_FENCE_ACQREL();
    return true;
}

__device__ static inline float act_relu2(float g) { return g > 0.0f ? __fmul_rn(g, g) : 0.0f; }
__device__ static inline float act_silu(float g) { return __fdiv_rn(g, __fadd_rn(1.0f, expf(-g))); }

__device__ static inline unsigned long long argmax_key(float v, unsigned row) {
    unsigned u = __float_as_uint(v);
    unsigned o = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)o << 32) | (0xffffffffu - row);
}

#define T2_MASK 0x03030303

/* acc += sum over one 64-weight chunk of code * q (q: 64 int8 in smem). */
__device__ static inline int dot64(uint4 w, const int8_t *q, int acc) {
    const int4 *a = (const int4 *)q;
    int4 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    acc = OB_DP4A((int)(w.x & T2_MASK), a0.x, acc);
    acc = OB_DP4A((int)((w.x >> 2) & T2_MASK), a0.y, acc);
    acc = OB_DP4A((int)((w.x >> 4) & T2_MASK), a0.z, acc);
    acc = OB_DP4A((int)((w.x >> 6) & T2_MASK), a0.w, acc);
    acc = OB_DP4A((int)(w.y & T2_MASK), a1.x, acc);
    acc = OB_DP4A((int)((w.y >> 2) & T2_MASK), a1.y, acc);
    acc = OB_DP4A((int)((w.y >> 4) & T2_MASK), a1.z, acc);
    acc = OB_DP4A((int)((w.y >> 6) & T2_MASK), a1.w, acc);
    acc = OB_DP4A((int)(w.z & T2_MASK), a2.x, acc);
    acc = OB_DP4A((int)((w.z >> 2) & T2_MASK), a2.y, acc);
    acc = OB_DP4A((int)((w.z >> 4) & T2_MASK), a2.z, acc);
    acc = OB_DP4A((int)((w.z >> 6) & T2_MASK), a2.w, acc);
    acc = OB_DP4A((int)(w.w & T2_MASK), a3.x, acc);
    acc = OB_DP4A((int)((w.w >> 2) & T2_MASK), a3.y, acc);
    acc = OB_DP4A((int)((w.w >> 4) & T2_MASK), a3.z, acc);
    acc = OB_DP4A((int)((w.w >> 6) & T2_MASK), a3.w, acc);
    return acc;
}

__device__ static inline float2 h2f(unsigned u) {
    __half2 h = *(__half2 *)&u;
    return __half22float2(h);
}
__device__ static inline float2 b2f(unsigned u) {
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

/* Rotated value of dim d of one head vector v at position p. */
__device__ static inline float rope_dim_value(const float *v, int d, int p, const cu_attn &A) {
    if (d >= A.rope_dim) return v[d];
    int half = A.rope_dim / 2, i, d0, d1;
    if (A.rope_neox) {
        i = d < half ? d : d - half;
        d0 = i;
        d1 = i + half;
    } else {
        i = d / 2;
        d0 = 2 * i;
        d1 = 2 * i + 1;
    }
    const float *cs2 = A.rope_cs + (size_t)p * A.rope_dim + 2 * i;
    float cs = cs2[0], sn = cs2[1];
    float x0 = v[d0], x1 = v[d1];
    if (d == d0) return __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
    return __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
}

/* KV cache element: f16 (default) or f32 (kv_type f32, as the CPU's default). */
template <typename KV> struct kvt;
template <> struct kvt<__half> {
    static __device__ inline __half put(float v) { return __float2half_rn(v); }
    static __device__ inline float get(const __half *p) { return __half2float(*p); }
    enum { VEC = 8 }; /* elements per 16-byte load */
    static __device__ inline void load(const __half *p, float *o) {
        uint4 u = *(const uint4 *)p;
        float2 a = h2f(u.x), b = h2f(u.y), c = h2f(u.z), d = h2f(u.w);
        o[0] = a.x, o[1] = a.y, o[2] = b.x, o[3] = b.y, o[4] = c.x, o[5] = c.y, o[6] = d.x, o[7] = d.y;
    }
};
template <> struct kvt<float> {
    static __device__ inline float put(float v) { return v; }
    static __device__ inline float get(const float *p) { return *p; }
    enum { VEC = 4 };
    static __device__ inline void load(const float *p, float *o) {
        float4 u = *(const float4 *)p;
        o[0] = u.x, o[1] = u.y, o[2] = u.z, o[3] = u.w;
    }
};

/* Epilogue of a GEMV whose output rows sit one per lane: lane i of the
 * calling warp holds physical row prow0 + i (v), n rows valid (n may exceed
 * 32: the rest belong to other warps); yold: y[row] read early (CU_EPI_ADD).
 * Warp-level only; no barrier. */
template <int EPI>
__device__ static inline void epilogue_warp(float v, float yold, int n, int prow0, const cu_linear &L, float *y,
                                     unsigned long long *amax) {
    const int lane = threadIdx.x & 31;
    if (EPI == CU_EPI_STORE || EPI == CU_EPI_ADD) {
        int r = prow0 + lane;
        if (lane < n && r < L.n_out) y[r] = EPI == CU_EPI_ADD ? __fadd_rn(yold, v) : v;
        if (EPI == CU_EPI_STORE && amax) {
            unsigned long long best = lane < n && r < L.n_out ? argmax_key(v, (unsigned)r) : 0;
            for (int o = 16; o; o >>= 1) {
                unsigned long long k = OB_SHFL_XOR(best, o);
                best = k > best ? k : best;
            }
            if (lane == 0 && best) atomicMax(amax, best);
        }
    } else {
        float u = OB_SHFL_XOR(v, 8); /* lane i < 8 of each 16: gate row, lane i + 8: its up row */
        if (lane < n && (lane & 15) < 8) {
            int r = (prow0 + lane - (lane & 15)) / 2 + (lane & 15);
            if (r < L.n_out) y[r] = __fmul_rn(EPI == CU_EPI_GLU_RELU2 ? act_relu2(v) : act_silu(v), u);
        }
    }
}

#endif
