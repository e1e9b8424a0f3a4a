/* The table of CPU kernel sets, best first, and run-time selection. */
#include "backend/cpu/kernels.h"

#include <string.h>

/* SIMD sets are declared here as they are added (kernels_<isa>.c), each
 * compiled only for its architecture; later entries are better. */
#if defined(__x86_64__)
extern const ob_cpu_kernels ob_kernels_avx2;
extern const ob_cpu_kernels ob_kernels_avx512vnni;
#endif
#if defined(__aarch64__)
extern const ob_cpu_kernels ob_kernels_neon;
extern const ob_cpu_kernels ob_kernels_neon_dotprod;
#endif

static const ob_cpu_kernels *const all_kernels[] = {
    &ob_kernels_scalar,
#if defined(__x86_64__)
    &ob_kernels_avx2,
    &ob_kernels_avx512vnni,
#endif
#if defined(__aarch64__)
    &ob_kernels_neon,
    &ob_kernels_neon_dotprod,
#endif
    NULL,
};

const ob_cpu_kernels *const *ob_cpu_kernels_all(void) { return all_kernels; }

const ob_cpu_kernels *ob_cpu_kernels_select(const char *name) {
    bool any = !name || !strcmp(name, "auto");
    for (const ob_cpu_kernels *const *k = all_kernels; *k; k++) {
        if (!(*k)->available()) continue;
        if (!any && strcmp((*k)->name, name) != 0) continue;
        /* all_kernels lists the scalar set first; "auto" prefers any SIMD set. */
        if (any && *k == &ob_kernels_scalar && k[1]) {
            const ob_cpu_kernels *best = NULL;
            for (const ob_cpu_kernels *const *j = k + 1; *j; j++)
                if ((*j)->available()) best = *j; /* later entries are better */
            if (best) return best;
        }
        return *k;
    }
    return NULL;
}
