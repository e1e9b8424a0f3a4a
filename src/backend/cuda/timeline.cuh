/* Per-block timeline of the decode kernels: a diagnostic build only.
 *
 *   make BUILD=build-tl NVCC_DEFS=-DOB_CUDA_TIMELINE build-tl/1bit
 *   OB_CUDA_TIMELINE=tl.bin build-tl/1bit bench --backend cuda ...
 *
 * Every instrumented kernel (OB_TL_SCOPE at its top) has thread 0 of each
 * block append one cu_tl_rec when it leaves: which kernel (tag), block,
 * grid size, SM, and three %globaltimer stamps (ns, one clock for the whole
 * GPU) with their clock64 twins (cycles of that SM): entry, return from the
 * PDL wait (OB_PDL_WAIT), exit; and the clock64 of up to CU_TL_MARKS points
 * inside the kernel (OB_TL_MARK). cuda_backend.cu arms the buffer before chosen
 * decode graph launches and appends what they recorded to the file (format:
 * cuda_backend.cu, tl_dump). In every other build the macros are empty and
 * the kernels are the production ones. */
#ifndef OB_CUDA_TIMELINE_CUH
#define OB_CUDA_TIMELINE_CUH

#ifdef OB_CUDA_TIMELINE
/* One buffer per translation unit (static: no -rdc), set by cu_timeline_arm. */
static __device__ cu_tl_rec *cu_tl_buf;
static __device__ unsigned cu_tl_cap, cu_tl_n;
static __shared__ unsigned long long cu_tl_wait_g, cu_tl_wait_c, cu_tl_mark[CU_TL_MARKS];

__device__ static inline unsigned long long cu_tl_gtime(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ static inline unsigned cu_tl_smid(void) {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}

struct cu_tl_scope {
    unsigned tag;
    unsigned long long g0, c0;
    __device__ explicit cu_tl_scope(unsigned t) : tag(t) {
        g0 = cu_tl_gtime();
        c0 = clock64();
        if (threadIdx.x == 0) {
            cu_tl_wait_g = cu_tl_wait_c = 0;
            for (int i = 0; i < CU_TL_MARKS; i++) cu_tl_mark[i] = 0;
        }
    }
    __device__ ~cu_tl_scope() {
        if (threadIdx.x != 0 || !cu_tl_buf) return;
        unsigned long long g2 = cu_tl_gtime(), c2 = clock64();
        unsigned i = atomicAdd(&cu_tl_n, 1u);
        if (i >= cu_tl_cap) return;
        cu_tl_rec r;
        r.tag = tag;
        r.block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
        r.grid = gridDim.x * gridDim.y * gridDim.z;
        r.smid = cu_tl_smid();
        r.g[0] = g0, r.g[1] = cu_tl_wait_g, r.g[2] = g2;
        r.c[0] = c0, r.c[1] = cu_tl_wait_c, r.c[2] = c2;
        for (int k = 0; k < CU_TL_MARKS; k++) r.m[k] = cu_tl_mark[k];
        cu_tl_buf[i] = r;
    }
};
#define OB_TL_SCOPE(tag) cu_tl_scope cu_tl_scope_((unsigned)(tag))
/* thread 0 passes point i (0 <= i < CU_TL_MARKS) of the kernel */
#define OB_TL_MARK(i)                                  \
    do {                                               \
        if (threadIdx.x == 0) cu_tl_mark[i] = clock64(); \
    } while (0)
/* the production wait, then thread 0's stamps */
__device__ static inline void cu_tl_pdl_wait(void) {
    OB_PDL_WAIT();
    if (threadIdx.x == 0) {
        cu_tl_wait_g = cu_tl_gtime();
        cu_tl_wait_c = clock64();
    }
}
#undef OB_PDL_WAIT
#define OB_PDL_WAIT() cu_tl_pdl_wait()

/* Host side (in the translation unit that includes this): points the
 * kernels at buf (cap records; NULL: off) and zeroes the count. */
static cudaError_t cu_tl_arm_here(cu_tl_rec *buf, unsigned cap, cudaStream_t st) {
    unsigned zero = 0;
    cudaError_t e = cudaMemcpyToSymbolAsync(cu_tl_buf, &buf, sizeof buf, 0, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyToSymbolAsync(cu_tl_cap, &cap, sizeof cap, 0, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyToSymbolAsync(cu_tl_n, &zero, sizeof zero, 0, cudaMemcpyHostToDevice, st);
    return e;
}
static cudaError_t cu_tl_count_here(unsigned *n, cudaStream_t st) {
    return cudaMemcpyFromSymbolAsync(n, cu_tl_n, sizeof *n, 0, cudaMemcpyDeviceToHost, st);
}
#else
#define OB_TL_SCOPE(tag) ((void)0)
#define OB_TL_MARK(i) ((void)0)
#endif

#endif
