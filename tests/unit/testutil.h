/* Shared helpers for the cmocka unit tests. */
#ifndef OB_TESTUTIL_H
#define OB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Path of a file under ../shared (or $OB_SHARED), or NULL when it is absent.
 * Returns a static buffer. */
static inline const char *ob_test_shared_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("OB_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* main() of a test program whose subject was not built here (e.g. the server
 * without civetweb and jansson): exit status 77, which tests/run reports as
 * SKIP; in CI, where every library is installed, a failure. */
#define OB_TEST_MAIN_NOT_BUILT(what)                                                          \
    int main(void) {                                                                          \
        const char *ci_ = getenv("CI");                                                       \
        if (ci_ && *ci_ && strcmp(ci_, "false") != 0) {                                       \
            printf("FAIL: built without %s (CI installs it)\n", what);                        \
            return 1;                                                                         \
        }                                                                                     \
        printf("SKIP: built without %s\n", what);                                             \
        return 77;                                                                            \
    }

/* Data from ../shared is required in CI (CI=true): missing data fails the test
 * there, and skips it with a clear message elsewhere. Copies the path into
 * `var` (a char array). */
#define OB_REQUIRE_SHARED(var, rel)                                                          \
    do {                                                                                     \
        const char *p_ = ob_test_shared_path(rel);                                           \
        if (!p_) {                                                                           \
            const char *ci_ = getenv("CI");                                                  \
            if (ci_ && *ci_ && strcmp(ci_, "false") != 0)                                    \
                fail_msg("../shared/%s is missing (CI requires ../shared beside the repo)", rel); \
            print_message("SKIP: ../shared/%s is absent; set OB_SHARED or place shared/ beside the repo\n", rel); \
            skip();                                                                          \
        }                                                                                    \
        snprintf(var, sizeof var, "%s", p_);                                                 \
    } while (0)

/* A deterministic RNG for test data (splitmix64). */
static inline uint64_t ob_test_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Fresh seed per run unless OB_TEST_SEED is set; printed so failures replay. */
static inline uint64_t ob_test_seed(void) {
    const char *e = getenv("OB_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    static int printed;
    if (!printed++) print_message("OB_TEST_SEED=0x%llx\n", (unsigned long long)s);
    return s;
}

#endif
