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

#endif
