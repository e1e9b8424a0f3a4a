/* Machine probes: the limits `1bit bench` divides by, measured in the same run.
 *
 *  - read bandwidth: every thread of a pool streams its share of a buffer much
 *    larger than the caches with 32-byte loads; best of several passes.
 *  - int8 multiply-add peak: independent chains of the int8 dot instruction
 *    the chosen kernel set uses (vpdpbusd for avx512vnni, vpmaddubsw + add for
 *    avx2, sdot for neon-dotprod, smlal for neon, a scalar loop elsewhere) on
 *    every thread at once.
 *
 * Units: GB/s = 1e9 bytes per second; GOPS = 1e9 int8 operations per second,
 * a multiply-add counting as 2 (the usual convention, so a kernel's GOPS is
 * 2 * rows * cols * tokens / seconds). */
#ifndef OB_CPU_PROBE_H
#define OB_CPU_PROBE_H

#include "core/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Streams `bytes` (0: 512 MiB) with every thread of pool (NULL: the caller
 * only), `passes` times (0: 5); *gbps is the best pass. */
ob_status ob_probe_read_bw(ob_pool *pool, size_t bytes, int passes, double *gbps);

/* int8 multiply-add peak for kernel set `kernels` ("avx512vnni", "avx2",
 * "neon-dotprod", "neon"; anything else: scalar), each of `passes` (0: 3) passes lasting about
 * `seconds` (0: 0.1); *gops is the best pass. *how (optional) names the
 * instruction measured. */
ob_status ob_probe_int8_peak(ob_pool *pool, const char *kernels, double seconds, int passes, double *gops,
                             const char **how);

#ifdef __cplusplus
}
#endif
#endif
