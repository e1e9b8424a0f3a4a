/* A persistent thread pool for data-parallel kernels.
 *
 * ob_pool_run(pool, fn, arg) calls fn(arg, ith, nth) on every thread (the
 * caller is thread 0) and returns when all have finished. Workers wait for the
 * next job by spinning briefly, then sleeping on a condition variable, so a
 * decode step's many short jobs do not pay a futex wake each, and an idle pool
 * burns no CPU. Jobs must not call ob_pool_run on the same pool. */
#ifndef OB_THREADPOOL_H
#define OB_THREADPOOL_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_pool ob_pool;
typedef void (*ob_task_fn)(void *arg, int ith, int nth);

/* n_threads <= 0 picks the number of online CPUs. */
ob_status ob_pool_create(int n_threads, ob_pool **out);
void ob_pool_destroy(ob_pool *pool);
int ob_pool_size(const ob_pool *pool);
/* pool may be NULL: then fn runs once on the caller with nth = 1. */
void ob_pool_run(ob_pool *pool, ob_task_fn fn, void *arg);

/* The [begin, end) share of n items for thread ith of nth, in chunks that are
 * multiples of `align` items (cache-line-sized row groups). */
void ob_split_range(int64_t n, int ith, int nth, int64_t align, int64_t *begin, int64_t *end);

int ob_cpu_count(void);

#ifdef __cplusplus
}
#endif
#endif
