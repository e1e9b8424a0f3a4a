/* AArch64: how code that uses the int8 dot product (sdot, FEAT_DotProd) is
 * compiled, shared by kernels_neon.c and probe.c so both decide alike.
 *
 * GCC: functions marked OB_DOTPROD get target("arch=armv8.2-a+dotprod")
 * ("+dotprod" alone is refused by GCC 12's arm_neon.h inlining check); the rest
 * of the file stays baseline armv8-a. Clang 14 offers vdotq_s32 only when the
 * whole file targets dotprod (-march=armv8.2-a+dotprod); otherwise
 * HAVE_DOTPROD is 0 and the dotprod code is left out, as unavailable.
 * HWCAP_ASIMDDP: the run-time check (getauxval(AT_HWCAP)). */
#ifndef OB_NEON_TARGET_H
#define OB_NEON_TARGET_H

#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

#if !defined(__clang__)
#define OB_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define HAVE_DOTPROD 1
#elif defined(__ARM_FEATURE_DOTPROD)
#define OB_DOTPROD
#define HAVE_DOTPROD 1
#else
#define HAVE_DOTPROD 0
#endif
#endif

#endif
