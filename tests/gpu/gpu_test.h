/* Helpers of the GPU test programs (tests/gpu/test_cuda_*.c). They are plain C
 * programs (the GPU machine has no cmocka): each check prints one PASS or
 * FAIL line, and main returns non-zero when any check failed. */
#ifndef OB_GPU_TEST_H
#define OB_GPU_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int gt_pass, gt_fail;

static inline void gt_check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) gt_pass++;
    else gt_fail++;
}

static inline int gt_summary(const char *prog) {
    printf("%s: %d passed, %d failed\n", prog, gt_pass, gt_fail);
    return gt_fail ? 1 : 0;
}

/* splitmix64 */
static inline uint64_t gt_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [-1, 1) */
static inline float gt_uniform(uint64_t *s) { return (float)((double)(gt_rand(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* Fresh seed per run unless OB_TEST_SEED is set; printed so failures replay. */
static inline uint64_t gt_seed(void) {
    const char *e = getenv("OB_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    printf("OB_TEST_SEED=0x%llx\n", (unsigned long long)s);
    return s;
}

/* Path of rel under $OB_SHARED (or ../shared); NULL when absent. Static buffer. */
static inline const char *gt_shared(const char *rel) {
    static char buf[4096];
    const char *root = getenv("OB_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* ||a - b|| / ||b|| */
static inline double gt_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline int gt_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static inline int gt_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
