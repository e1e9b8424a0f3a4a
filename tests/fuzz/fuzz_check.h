/* CHECK(cond) for the libFuzzer targets: an invariant that does not hold
 * aborts with its text, a crash libFuzzer reports and saves the input of. */
#ifndef OB_FUZZ_CHECK_H
#define OB_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

#endif
