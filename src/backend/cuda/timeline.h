/* The record of the diagnostic per-block timeline (timeline.cuh). */
#ifndef OB_CUDA_TIMELINE_H
#define OB_CUDA_TIMELINE_H

/* tag: kernel kind in the high bits, its epilogue (cu_epi) in the low 4 */
enum {
    CU_TL_EMBED = 0x10,
    CU_TL_GEMV_T2 = 0x20,
    CU_TL_GEMV_T2S = 0x30,
    CU_TL_GEMV_F = 0x40,
    CU_TL_GEMV_I8 = 0x50,
    CU_TL_ATTN_DECODE = 0x60,
    CU_TL_STEP = 0xff /* a file's step header: block = step, grid = position, smid = records */
};

#define CU_TL_MARKS 8

typedef struct {
    unsigned tag, block, grid, smid;
    unsigned long long g[3]; /* %globaltimer (ns): entry, after the PDL wait (0: none), exit */
    unsigned long long c[3]; /* clock64 of the same moments (that SM's cycles) */
    unsigned long long m[CU_TL_MARKS]; /* clock64 at the kernel's OB_TL_MARK(i) points (0: not reached) */
} cu_tl_rec;                 /* 128 bytes */

#endif
