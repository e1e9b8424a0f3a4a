/* Persistent thread pool: spin-then-sleep job start, atomic completion count. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERS 20000 /* ~tens of microseconds before a worker sleeps */

struct ob_pool {
    int n;                       /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t generation; /* bumped once per job */
    _Atomic int pending;         /* workers still running the current job */
    _Atomic int stop;
    ob_task_fn fn;
    void *arg;
};

typedef struct { ob_pool *pool; int ith; } worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    ob_pool *pool = wa.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load(&pool->stop)) return NULL;
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = g;
        pool->fn(pool->arg, wa.ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

int ob_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

ob_status ob_pool_create(int n_threads, ob_pool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = ob_cpu_count();
    if (n_threads > 1024) return ob_fail(OB_ERR_ARG, "too many threads (%d)", n_threads);
    ob_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return ob_fail(OB_ERR_NOMEM, "out of memory");
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) { free(pool); return ob_fail(OB_ERR_NOMEM, "out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->pool = pool, wa->ith = i, pthread_create(&pool->threads[i], NULL, worker_main, wa))) {
            free(wa);
            pool->n = i; /* destroy joins the ones started */
            ob_pool_destroy(pool);
            return ob_fail(OB_ERR_INTERNAL, "cannot start thread %d", i);
        }
    }
    *out = pool;
    return OB_OK;
}

void ob_pool_destroy(ob_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int ob_pool_size(const ob_pool *pool) { return pool ? pool->n : 1; }

void ob_pool_run(ob_pool *pool, ob_task_fn fn, void *arg) {
    if (!pool || pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu); /* pairs with the sleepers' check */
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    fn(arg, 0, pool->n);
    /* Spin for the stragglers; yield once it takes long (an oversubscribed CPU). */
    for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

void ob_split_range(int64_t n, int ith, int nth, int64_t align, int64_t *begin, int64_t *end) {
    if (align < 1) align = 1;
    int64_t chunks = (n + align - 1) / align;
    int64_t per = chunks / nth, extra = chunks % nth;
    int64_t c0 = ith * per + (ith < extra ? ith : extra);
    int64_t c1 = c0 + per + (ith < extra ? 1 : 0);
    *begin = OB_MIN(c0 * align, n);
    *end = OB_MIN(c1 * align, n);
}
