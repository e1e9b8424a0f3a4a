/* The vendor header: the one place that names the GPU runtime.
 *
 * Kernels and host code in backend/cuda are written in CUDA C and call the
 * runtime through the names below, so the same sources can later compile as
 * HIP (AMD) by defining OB_GPU_HIP: runtime calls map cudaX -> hipX, warp
 * shuffles lose their masks, and the int8 dot product maps to the AMD builtin.
 * Architecture-specific instructions (inline PTX: mma.sync) sit behind
 * OB_GPU_HAVE_MMA_S8 with a portable fallback (dp4a loops; -DOB_GPU_NO_MMA
 * forces it on NVIDIA too, to test it).
 *
 * Only .cu files include this header. The HIP half is written but has not been
 * compiled yet (no ROCm toolchain here): expect a few more names to add. */
#ifndef OB_GPU_VENDOR_H
#define OB_GPU_VENDOR_H

#if defined(OB_GPU_HIP)
#include <hip/hip_bf16.h>
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#define __nv_bfloat16 __hip_bfloat16
/* Runtime names used by backend/cuda (extend here, never in the .cu files). */
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaDeviceGetAttribute hipDeviceGetAttribute
#define cudaDevAttrMultiProcessorCount hipDeviceAttributeMultiprocessorCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceProp hipDeviceProp_t
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost hipHostMalloc
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemset hipMemset
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaStreamBeginCapture hipStreamBeginCapture
#define cudaStreamEndCapture hipStreamEndCapture
#define cudaStreamCaptureModeThreadLocal hipStreamCaptureModeThreadLocal
#define cudaGraph_t hipGraph_t
#define cudaGraphExec_t hipGraphExec_t
#define cudaGraphInstantiate(e, g, f) hipGraphInstantiate(e, g, NULL, NULL, 0)
#define cudaGraphLaunch hipGraphLaunch
#define cudaGraphDestroy hipGraphDestroy
#define cudaGraphExecDestroy hipGraphExecDestroy
#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define cudaFuncAttributePreferredSharedMemoryCarveout hipFuncAttributePreferredSharedMemoryCarveout
#define cudaErrorInvalidValue hipErrorInvalidValue
#define cudaMemcpy2D hipMemcpy2D
#define cudaErrorNotSupported hipErrorNotSupported
#define cudaMemGetInfo hipMemGetInfo
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor hipOccupancyMaxActiveBlocksPerMultiprocessor
#define OB_SHFL_XOR(v, m) __shfl_xor((v), (m))
#define OB_WARP 64 /* CDNA; RDNA builds set wave32 and must redefine this */
/* a += dot(4 x int8 of x, 4 x int8 of y) */
#define OB_DP4A(x, y, a) __builtin_amdgcn_sdot4((x), (y), (a), false)
#define OB_LDG(p) (*(p))
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define OB_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m))
#define OB_WARP 32
#define OB_DP4A(x, y, a) __dp4a((x), (y), (a))
#define OB_LDG(p) __ldg(p)
/* Hopper/Ampere int8 tensor-core MMA (m16n8k32, s8 x s8 -> s32) via inline PTX. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(OB_GPU_NO_MMA)
#define OB_GPU_HAVE_MMA_S8 1
#endif
#endif

/* Programmatic dependent launch (Hopper): a kernel launched with it may start
 * while its predecessor drains; OB_PDL_WAIT() blocks until the predecessor's
 * writes are visible (every kernel calls it before reading activations), and
 * OB_PDL_LAUNCH() lets the successor start early. No-ops elsewhere. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(OB_GPU_HIP)
#define OB_PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define OB_PDL_LAUNCH() asm volatile("griddepcontrol.launch_dependents;" :::)
#else
#define OB_PDL_WAIT() ((void)0)
#define OB_PDL_LAUNCH() ((void)0)
#endif

/* Release/acquire fence at device scope (the "last block merges" pattern).
 * __threadfence() is a sequentially consistent fence (MEMBAR.SC), far slower. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700 && !defined(OB_GPU_HIP)
#define OB_FENCE_ACQREL() asm volatile("fence.acq_rel.gpu;" ::: "memory")
#else
#define OB_FENCE_ACQREL() __threadfence()
#endif

/* Coherent (L1-bypassing) load for data another block wrote in this launch. */
#if defined(OB_GPU_HIP)
#define OB_LDCG(p) (*(volatile const __typeof__(*(p)) *)(p))
#else
#define OB_LDCG(p) __ldcg(p)
#endif

/* Asynchronous 16-byte global -> shared copies (Ampere and later): issued by
 * each thread, grouped by OB_CP_COMMIT(), waited for by OB_CP_WAIT(n) (all but
 * the n most recent groups complete; each thread waits for its own copies, so
 * a barrier must follow before other threads read them). Elsewhere a plain
 * synchronous copy, with the same meaning. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(OB_GPU_HIP)
#define OB_CP_ASYNC16(dst, src)                                                                   \
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"((unsigned)__cvta_generic_to_shared(dst)), \
                 "l"(src)                                                                          \
                 : "memory")
#define OB_CP_COMMIT() asm volatile("cp.async.commit_group;" ::: "memory")
#define OB_CP_WAIT(n) asm volatile("cp.async.wait_group %0;" ::"n"(n) : "memory")
#else
#define OB_CP_ASYNC16(dst, src) (*(uint4 *)(dst) = *(const uint4 *)(src))
#define OB_CP_COMMIT() ((void)0)
#define OB_CP_WAIT(n) ((void)0)
#endif

/* Grid-wide barrier counter operations: an acquire load for spinning. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700 && !defined(OB_GPU_HIP)
__device__ static inline unsigned ob_ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
#else
#define ob_ld_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#endif

/* Hopper bulk copies (the TMA engine, plain sm_90): one thread starts a copy
 * of a contiguous global range into shared memory that completes on an
 * mbarrier, without occupying the issuing warps while the bytes arrive (16-byte
 * cp.async stalls its warps once the SM's request queue is full). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(OB_GPU_HIP)
#define OB_HAVE_BULK_COPY 1
__device__ static inline unsigned ob_smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ static inline void ob_mbar_init(unsigned long long *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(ob_smem_addr(bar)), "r"(count) : "memory");
}
/* Orders this thread's earlier generic shared-memory accesses before later
 * async-proxy (bulk copy) writes, and mbarrier inits before their use. */
__device__ static inline void ob_fence_proxy_async(void) {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
/* Arrives on bar and adds bytes to the transaction count of its phase. */
__device__ static inline void ob_mbar_expect(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(ob_smem_addr(bar)), "r"(bytes)
                 : "memory");
}
/* dst, src 16-byte aligned; bytes a multiple of 16. */
__device__ static inline void ob_bulk_copy(void *dst, const void *src, unsigned bytes, unsigned long long *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     ob_smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(ob_smem_addr(bar))
                 : "memory");
}
/* Waits until the phase with this parity (0, 1, 0, ...) of bar has completed. */
__device__ static inline void ob_mbar_wait(unsigned long long *bar, unsigned parity) {
    unsigned done = 0;
    while (!done)
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(ob_smem_addr(bar)), "r"(parity)
                     : "memory");
}
#endif

#endif
