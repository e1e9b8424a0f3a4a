/* The scheduler: one thread owns the backend and runs continuous batching.
 *
 * HTTP handlers create a job (one request; n choices = n sequences), submit
 * it, and wait on the job's condition variable for text. The scheduler thread
 * loops: admit queued sequences into free slots (reusing the longest cached
 * prompt prefix of any slot), build ONE batch with a token for every
 * generating sequence plus prefill chunks of new ones, decode it, sample,
 * detokenize, match stop strings, and append the released text to each job.
 * A step whose sequences are all greedy (temperature 0, no penalties) and all
 * generating goes through the backend's decode_argmax when it has one: a GPU
 * then returns one id per sequence instead of n_vocab floats.
 *
 * Ownership: the handler allocates the job and frees it (ob_job_free) only
 * after ob_job_done() is true; the scheduler never touches a job after it
 * marked its last choice finished. A model without a tokenizer generates ids
 * only (no text, no end-of-generation token): what benchmarks need. Cancelling (client gone) sets a flag that
 * the scheduler honours before its next step, freeing the slot at once. */
/* Internal to src/server; C only (C11 atomics). */
#ifndef OB_SERVER_SCHED_H
#define OB_SERVER_SCHED_H

#include "backend/backend.h"
#include "runtime/sampler.h"
#include "server/metrics.h"

#include <pthread.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_choice_out {
    ob_buf text;        /* released text not yet taken by the handler */
    const char *finish; /* NULL while running; "stop" | "length" | "cancelled" | "error" */
    int n_gen;          /* tokens generated (end-of-generation token not counted) */
} ob_choice_out;

typedef struct ob_job {
    /* input, fixed at submit (owned by the job except stops) */
    int32_t *prompt;            /* [n_prompt] */
    int n_prompt;
    int n_predict;              /* generation cap per choice (already clamped to the context) */
    int n_choices;
    ob_sampler_params sp;       /* choice i samples with seed sp.seed + i */
    const char *const *stops;   /* borrowed: must outlive the job */
    size_t n_stops;
    bool ignore_eos;            /* end-of-generation tokens do not stop (benchmarks) */

    /* shared with the scheduler thread, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t version;           /* bumped at every change; handlers wait for it to move */
    ob_choice_out *choice;      /* [n_choices] */
    int n_finished;
    int n_cached;               /* prompt tokens found in a KV cache (first admitted choice) */
    char error[256];            /* message when a choice finished with "error" */
    double t_submit, t_first;   /* monotonic seconds; t_first: first token of any choice */
    atomic_bool cancel;
} ob_job;

/* Takes ownership of prompt (malloc'd). Returns NULL when out of memory. */
ob_job *ob_job_create(int32_t *prompt, int n_prompt, int n_choices, int n_predict, const ob_sampler_params *sp,
                      const char *const *stops, size_t n_stops);
void ob_job_free(ob_job *j);
bool ob_job_done(const ob_job *j); /* call with j->mu held */

typedef struct ob_sched_params {
    int n_batch;   /* tokens per decode step (prefill chunks fill what generation leaves) */
    int queue_cap; /* sequences waiting for a slot before submit answers busy */
} ob_sched_params;

typedef struct ob_sched ob_sched;

/* Starts the scheduler thread on backend b (b->n_seq slots of b->n_ctx). */
ob_status ob_sched_create(const ob_model *m, ob_backend *b, const ob_sched_params *p, ob_metrics *metrics,
                          ob_sched **out);
/* Ends every job (finish "cancelled", error "shutting down") and joins the
 * thread; submit fails afterwards. Idempotent. */
void ob_sched_stop(ob_sched *s);
/* Stops if needed, then frees. The backend stays the caller's. */
void ob_sched_free(ob_sched *s);

/* Queues all choices of j. OB_ERR_RANGE: the queue is full (answer 503);
 * OB_ERR_CANCELLED: shutting down. */
ob_status ob_sched_submit(ob_sched *s, ob_job *j);
/* A fresh random seed for a request that sent none (thread-safe). */
uint64_t ob_sched_random_seed(ob_sched *s);
/* Asks the scheduler to stop j (client gone); wait for ob_job_done after. */
void ob_sched_cancel(ob_sched *s, ob_job *j);

#ifdef __cplusplus
}
#endif
#endif
