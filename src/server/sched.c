/* Continuous-batching scheduler: see sched.h.
 *
 * Threads: HTTP workers call ob_sched_submit / ob_sched_cancel and wait on
 * their job; the scheduler thread alone calls the backend. Locks: s->mu guards
 * the queue and `stopping`; each job's mu guards its outputs. Order when both
 * are held: s->mu, then job->mu. */
#include "server/sched.h"

#include "core/threadpool.h"
#include "server/stop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- jobs ------------------------------------------------------------------ */

ob_job *ob_job_create(int32_t *prompt, int n_prompt, int n_choices, int n_predict, const ob_sampler_params *sp,
                      const char *const *stops, size_t n_stops) {
    ob_job *j = ob_calloc(1, sizeof *j);
    if (!j || !(j->choice = ob_calloc((size_t)n_choices, sizeof *j->choice))) {
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->prompt = prompt;
    j->n_prompt = n_prompt;
    j->n_choices = n_choices;
    j->n_predict = n_predict;
    j->sp = *sp;
    j->stops = stops;
    j->n_stops = n_stops;
    atomic_init(&j->cancel, false);
    return j;
}

void ob_job_free(ob_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_choices; i++) ob_buf_free(&j->choice[i].text);
    free(j->choice);
    free(j->prompt);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

bool ob_job_done(const ob_job *j) { return j->n_finished == j->n_choices; }

/* Appends text to a choice and, when finish is set, ends it. After the last
 * choice ends the handler may free the job: do not touch it afterwards. */
static void job_publish(ob_job *j, int c, const char *text, size_t len, const char *finish, const char *error) {
    pthread_mutex_lock(&j->mu);
    ob_choice_out *o = &j->choice[c];
    if (len) ob_buf_append(&o->text, text, len);
    if (!j->t_first && len) j->t_first = ob_time_s();
    if (finish) {
        o->finish = finish;
        j->n_finished++;
        if (error && !j->error[0]) snprintf(j->error, sizeof j->error, "%s", error);
    }
    j->version++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- slots ----------------------------------------------------------------- */

typedef enum slot_state { SLOT_IDLE, SLOT_PREFILL, SLOT_GEN } slot_state;

typedef struct slot {
    int id;
    slot_state state;
    ob_job *job;           /* NULL when idle */
    int choice;
    int32_t *cache;        /* [n_ctx] ids whose K/V the backend holds for this sequence */
    int n_cache;
    int32_t next;          /* GEN: sampled id, fed at the next step */
    int n_gen;
    ob_sampler *smp;
    bool greedy;           /* its next token is the plain argmax of the logits */
    ob_detok_stream ds;
    ob_stop_matcher stop;
    uint64_t last_used;    /* admission tick, for least-recently-used choice */
} slot;

/* A sequence whose logits came back this step, and the id sampled from them. */
typedef struct sample_row {
    slot *sl;
    float *logits;  /* [n_vocab], sampled in place */
    int32_t id;
} sample_row;

typedef struct sample_task_arg {
    sample_row *rows;
    int n;
} sample_task_arg;

typedef struct qentry {
    ob_job *job;
    int choice;
} qentry;

struct ob_sched {
    const ob_model *m;
    ob_backend *b;
    ob_sched_params p;
    ob_metrics *metrics;
    int n_slots, n_ctx, n_vocab;
    slot *slots;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    qentry *queue;         /* ring [queue_cap] */
    int q_head, q_len;
    bool stopping;
    pthread_t thread;
    bool thread_started;

    /* scheduler-thread state */
    int32_t *tok, *pos, *seq; /* [n_batch] the step's batch */
    uint8_t *want;            /* [n_batch] */
    float *logits;            /* [n_slots x n_vocab] */
    int32_t *ids;             /* [n_batch] argmax ids when the backend picks them (decode_argmax) */
    int *step_slot, *step_count; /* [n_slots] slots in this step, tokens each */
    sample_row *rows;         /* [n_slots] */
    ob_pool *sample_pool;     /* NULL: sample on the scheduler thread */
    uint64_t tick;
    int rr;                   /* round-robin start for prefill chunks */
    ob_rng rng;               /* seeds for requests that sent none */
};

#define METRIC_ADD(field, v) atomic_fetch_add_explicit(&s->metrics->field, (v), memory_order_relaxed)

static void update_gauges(ob_sched *s) {
    long long used = 0;
    int busy = 0;
    for (int i = 0; i < s->n_slots; i++) {
        used += s->slots[i].n_cache;
        busy += s->slots[i].state != SLOT_IDLE;
    }
    atomic_store_explicit(&s->metrics->kv_used, used, memory_order_relaxed);
    atomic_store_explicit(&s->metrics->slots_busy, busy, memory_order_relaxed);
}

/* Ends the slot's current choice and frees the slot (its cache stays valid
 * for prefix reuse). Generated text still held back (an unfinished stop-string
 * prefix, a partial UTF-8 tail) is released first, unless the end was an
 * error or a cancel. */
static void slot_finish(ob_sched *s, slot *sl, const char *finish, const char *error) {
    ob_buf tail = { 0 };
    if (s->m->tok && (!strcmp(finish, "length") || !strcmp(finish, "stop"))) {
        ob_buf raw = { 0 };
        ob_detok_stream_flush(&sl->ds, &raw);
        if (raw.len) ob_stop_push(&sl->stop, raw.data, raw.len, &tail);
        if (ob_stop_flush(&sl->stop, &tail)) finish = "stop";
        ob_buf_free(&raw);
    }
    ob_job *j = sl->job;
    int c = sl->choice;
    pthread_mutex_lock(&j->mu);
    j->choice[c].n_gen = sl->n_gen;
    pthread_mutex_unlock(&j->mu);
    sl->job = NULL;
    sl->state = SLOT_IDLE;
    ob_sampler_free(sl->smp);
    sl->smp = NULL;
    ob_stop_free(&sl->stop);
    METRIC_ADD(generations, 1);
    update_gauges(s); /* before the client can see the end */
    job_publish(j, c, tail.data, tail.len, finish, error);
    ob_buf_free(&tail);
}

/* Greedy without penalties: the sampler would return argmax(logits) (ties to
 * the lowest id, as the backends' argmax), so a backend may pick the id itself. */
static bool params_greedy(const ob_sampler_params *p) {
    bool penalties = p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
    return p->temperature <= 0 && (!penalties || p->repeat_last_n == 0);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = 0, lim = OB_MIN(na, nb);
    while (n < lim && a[n] == b[n]) n++;
    return n;
}

/* Binds a queued choice to a free slot. The slot is the free one whose cache
 * shares the longest prefix with the prompt (least recently used on ties);
 * when another slot, busy or not, holds a longer prefix, its K/V are copied
 * over (n choices of one prompt, or the same conversation in flight twice).
 * At least the last prompt token is always run, to get its logits. */
static void slot_start(ob_sched *s, slot *sl, ob_job *j, int c) {
    const ob_backend_ops *ops = s->b->ops;
    int keep = common_prefix(sl->cache, sl->n_cache, j->prompt, j->n_prompt);
    int src = -1, src_keep = keep;
    if (ops->seq_copy)
        for (int i = 0; i < s->n_slots; i++) {
            slot *o = &s->slots[i];
            int k = o == sl ? 0 : common_prefix(o->cache, o->n_cache, j->prompt, j->n_prompt);
            if (k > src_keep) src = i, src_keep = k;
        }
    ob_status st = OB_OK;
    if (src >= 0 && OB_MIN(src_keep, j->n_prompt - 1) > keep) {
        keep = OB_MIN(src_keep, j->n_prompt - 1);
        st = ops->seq_copy(s->b, src, sl->id, keep);
        if (!st) memcpy(sl->cache, s->slots[src].cache, (size_t)keep * sizeof *sl->cache);
    } else {
        keep = OB_MIN(keep, j->n_prompt - 1);
        st = ops->seq_truncate(s->b, sl->id, keep);
    }
    if (st) keep = 0, ops->seq_truncate(s->b, sl->id, 0);
    sl->n_cache = keep;

    sl->job = j;
    sl->choice = c;
    sl->n_gen = 0;
    sl->last_used = ++s->tick;
    sl->state = SLOT_PREFILL;
    if (s->m->tok) ob_detok_stream_init(&sl->ds, s->m->tok);
    ob_stop_init(&sl->stop, j->stops, j->n_stops);
    ob_sampler_params sp = j->sp;
    sp.seed += (uint64_t)c;
    st = ob_sampler_create(&sp, s->n_vocab, &sl->smp);
    sl->greedy = params_greedy(&sp);
    pthread_mutex_lock(&j->mu);
    if (c == 0 || !j->n_cached) j->n_cached = keep;
    pthread_mutex_unlock(&j->mu);
    METRIC_ADD(cached_tokens, (unsigned long long)keep);
    if (st) slot_finish(s, sl, "error", ob_last_error());
}

static slot *pick_free_slot(ob_sched *s, const ob_job *j) {
    slot *best = NULL;
    int best_k = -1;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_IDLE) continue;
        int k = common_prefix(sl->cache, sl->n_cache, j->prompt, j->n_prompt);
        if (k > best_k || (k == best_k && sl->last_used < best->last_used)) best = sl, best_k = k;
    }
    return best;
}

/* ---- the queue --------------------------------------------------------------- */

/* Under s->mu: queues every choice of j and wakes the scheduler. */
static ob_status submit_locked(ob_sched *s, ob_job *j) {
    j->t_submit = ob_time_s();
    if (s->stopping) return ob_fail(OB_ERR_CANCELLED, "the server is shutting down");
    if (s->q_len + j->n_choices > s->p.queue_cap)
        return ob_fail(OB_ERR_RANGE, "the server is busy (%d requests queued); retry later", s->q_len);
    for (int c = 0; c < j->n_choices; c++) s->queue[(s->q_head + s->q_len++) % s->p.queue_cap] = (qentry){ j, c };
    atomic_store_explicit(&s->metrics->queue_depth, s->q_len, memory_order_relaxed);
    pthread_cond_signal(&s->cv);
    return OB_OK;
}

ob_status ob_sched_submit(ob_sched *s, ob_job *j) {
    pthread_mutex_lock(&s->mu);
    ob_status st = submit_locked(s, j);
    pthread_mutex_unlock(&s->mu);
    return st;
}

void ob_sched_cancel(ob_sched *s, ob_job *j) {
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Under s->mu: drops cancelled entries, and moves entries into free slots
 * (in arrival order) as long as there are any. Returns how many were taken. */
static int take_queued(ob_sched *s, qentry *taken, qentry *dropped, int *n_dropped) {
    int n_free = 0, n = 0;
    for (int i = 0; i < s->n_slots; i++) n_free += s->slots[i].state == SLOT_IDLE;
    int kept = 0;
    *n_dropped = 0;
    for (int i = 0; i < s->q_len; i++) {
        qentry e = s->queue[(s->q_head + i) % s->p.queue_cap];
        if (atomic_load(&e.job->cancel) || s->stopping) dropped[(*n_dropped)++] = e;
        else if (n < n_free) taken[n++] = e;
        else s->queue[(s->q_head + kept++) % s->p.queue_cap] = e;
    }
    s->q_len = kept;
    atomic_store_explicit(&s->metrics->queue_depth, kept, memory_order_relaxed);
    return n;
}

/* ---- one decode step ----------------------------------------------------------- */

static void sample_task(void *arg, int ith, int nth) {
    sample_task_arg *a = arg;
    for (int r = ith; r < a->n; r += nth) {
        slot *sl = a->rows[r].sl;
        a->rows[r].id = ob_sampler_sample(sl->smp, a->rows[r].logits, sl->cache, (size_t)sl->n_cache);
    }
}

/* Routes the token sampled for sl: end of generation, text through the stop
 * matcher to the job, or the next token to feed. */
static void slot_accept(ob_sched *s, slot *sl, int32_t id) {
    sl->state = SLOT_GEN;
    if (s->m->tok && !sl->job->ignore_eos && ob_tokenizer_is_eog(s->m->tok, id)) {
        slot_finish(s, sl, "stop", NULL);
        return;
    }
    sl->n_gen++;
    METRIC_ADD(generated_tokens, 1);
    ob_buf raw = { 0 }, out = { 0 };
    bool matched = false;
    if (s->m->tok && ob_detok_stream_push(&sl->ds, id, &raw) == OB_OK && raw.len)
        matched = ob_stop_push(&sl->stop, raw.data, raw.len, &out);
    if (out.len) job_publish(sl->job, sl->choice, out.data, out.len, NULL, NULL);
    ob_buf_free(&raw);
    ob_buf_free(&out);
    if (matched) slot_finish(s, sl, "stop", NULL);
    else if (sl->n_gen >= sl->job->n_predict || sl->n_cache >= s->n_ctx) slot_finish(s, sl, "length", NULL);
    else sl->next = id;
}

/* Builds the batch: one token per generating slot, then prefill chunks in
 * round-robin order until n_batch tokens. Returns the token count. */
static int build_batch(ob_sched *s, int *n_steps, int *n_prefill) {
    int n = 0, k = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_GEN) continue;
        s->tok[n] = sl->next, s->pos[n] = sl->n_cache, s->seq[n] = sl->id, s->want[n] = 1;
        n++;
        s->step_slot[k] = i, s->step_count[k++] = 1;
    }
    int gen = n;
    for (int r = 0; r < s->n_slots && n < s->p.n_batch; r++) {
        int i = (s->rr + r) % s->n_slots;
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_PREFILL) continue;
        int take = OB_MIN(sl->job->n_prompt - sl->n_cache, s->p.n_batch - n);
        for (int t = 0; t < take; t++) {
            s->tok[n] = sl->job->prompt[sl->n_cache + t];
            s->pos[n] = sl->n_cache + t;
            s->seq[n] = sl->id;
            s->want[n] = sl->n_cache + t == sl->job->n_prompt - 1;
            n++;
        }
        s->step_slot[k] = i, s->step_count[k++] = take;
    }
    s->rr = (s->rr + 1) % s->n_slots;
    *n_steps = k;
    *n_prefill = n - gen;
    return n;
}

/* decode_argmax serves a step when every token in it is the one token of a
 * greedy sequence (the vtable's contract: one output per token, argmax only).
 * A GPU backend then returns ids instead of n x n_vocab floats. Steps with a
 * prefill chunk or a sampled sequence take the logits. */
static bool argmax_step(const ob_sched *s, int n, int n_steps) {
    if (!s->b->ops->decode_argmax) return false;
    for (int t = 0; t < n; t++)
        if (!s->want[t]) return false;
    for (int k = 0; k < n_steps; k++)
        if (!s->slots[s->step_slot[k]].greedy) return false;
    return true;
}

static void step(ob_sched *s) {
    int n_steps, n_prefill;
    int n = build_batch(s, &n_steps, &n_prefill);
    if (!n) return;
    ob_batch batch = { .n = n, .token = s->tok, .pos = s->pos, .seq = s->seq, .logits = s->want };
    bool by_argmax = argmax_step(s, n, n_steps);
    double t0 = ob_time_s();
    ob_status st = by_argmax ? s->b->ops->decode_argmax(s->b, &batch, s->ids)
                             : s->b->ops->decode(s->b, &batch, s->logits);
    double dt = ob_time_s() - t0;
    METRIC_ADD(decode_steps, 1);
    if (by_argmax) METRIC_ADD(argmax_steps, 1);
    METRIC_ADD(batch_tokens, (unsigned long long)n);
    METRIC_ADD(prompt_tokens, (unsigned long long)n_prefill);
    METRIC_ADD(prefill_ns, (unsigned long long)(dt * 1e9 * n_prefill / n));
    METRIC_ADD(decode_ns, (unsigned long long)(dt * 1e9 * (n - n_prefill) / n));

    int at = 0, n_rows = 0;
    for (int k = 0; k < n_steps; k++) {
        slot *sl = &s->slots[s->step_slot[k]];
        int cnt = s->step_count[k];
        if (st) {
            /* The cache content of every sequence in the batch is unknown now. */
            s->b->ops->seq_truncate(s->b, sl->id, 0);
            sl->n_cache = 0;
            slot_finish(s, sl, "error", ob_last_error());
            continue;
        }
        memcpy(sl->cache + sl->n_cache, s->tok + at, (size_t)cnt * sizeof *s->tok);
        sl->n_cache += cnt;
        bool has_row = s->want[at + cnt - 1];
        at += cnt;
        if (!has_row) continue;
        s->rows[n_rows] = by_argmax ? (sample_row){ sl, NULL, s->ids[n_rows] }
                                    : (sample_row){ sl, s->logits + (size_t)n_rows * (size_t)s->n_vocab, -1 };
        n_rows++;
    }
    if (st) {
        ob_log(OB_LOG_ERROR, "serve: decode failed: %s", ob_last_error());
        return;
    }
    /* Sampling is independent per sequence: spread it over the sample pool
     * (only created for GPU backends, where the host is otherwise idle). An
     * argmax step has its ids already. */
    sample_task_arg arg = { s->rows, n_rows };
    if (!by_argmax) {
        if (s->sample_pool && n_rows > 1) ob_pool_run(s->sample_pool, sample_task, &arg);
        else sample_task(&arg, 0, 1);
    }
    for (int r = 0; r < n_rows; r++) {
        slot *sl = s->rows[r].sl;
        if (atomic_load(&sl->job->cancel)) slot_finish(s, sl, "cancelled", NULL);
        else slot_accept(s, sl, s->rows[r].id);
    }
}


/* ---- the thread ----------------------------------------------------------------- */

static bool any_active(const ob_sched *s) {
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].state != SLOT_IDLE) return true;
    return false;
}

static void *sched_main(void *arg) {
    ob_sched *s = arg;
    qentry *taken = ob_calloc((size_t)s->p.queue_cap, sizeof *taken);
    qentry *dropped = ob_calloc((size_t)s->p.queue_cap, sizeof *dropped);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->q_len && !any_active(s)) pthread_cond_wait(&s->cv, &s->mu);
        int n_dropped, n_taken = take_queued(s, taken, dropped, &n_dropped);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < n_dropped; i++)
            job_publish(dropped[i].job, dropped[i].choice, NULL, 0, "cancelled",
                        stopping ? "the server is shutting down" : NULL);
        for (int i = 0; i < s->n_slots; i++) {
            slot *sl = &s->slots[i];
            if (sl->state != SLOT_IDLE && (stopping || atomic_load(&sl->job->cancel)))
                slot_finish(s, sl, "cancelled", stopping ? "the server is shutting down" : NULL);
        }
        if (stopping) break;
        for (int i = 0; i < n_taken; i++) slot_start(s, pick_free_slot(s, taken[i].job), taken[i].job, taken[i].choice);
        step(s);
        update_gauges(s);
    }
    free(taken);
    free(dropped);
    return NULL;
}

ob_status ob_sched_create(const ob_model *m, ob_backend *b, const ob_sched_params *p, ob_metrics *metrics,
                          ob_sched **out) {
    *out = NULL;
    ob_sched *s = ob_calloc(1, sizeof *s);
    if (!s) return ob_fail(OB_ERR_NOMEM, "out of memory");
    s->m = m;
    s->b = b;
    s->p = *p;
    if (s->p.n_batch < 1) s->p.n_batch = 512;
    if (s->p.queue_cap < 1) s->p.queue_cap = 1;
    s->metrics = metrics;
    s->n_slots = b->n_seq;
    s->n_ctx = b->n_ctx;
    s->n_vocab = m->hp.n_vocab;
    s->p.n_batch = OB_MAX(s->p.n_batch, s->n_slots); /* a token for every generating slot fits */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ob_rng_seed(&s->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));

    size_t nb = (size_t)s->p.n_batch;
    s->slots = ob_calloc((size_t)s->n_slots, sizeof *s->slots);
    s->queue = ob_calloc((size_t)s->p.queue_cap, sizeof *s->queue);
    s->tok = ob_malloc(nb * sizeof *s->tok);
    s->pos = ob_malloc(nb * sizeof *s->pos);
    s->seq = ob_malloc(nb * sizeof *s->seq);
    s->want = ob_malloc(nb);
    s->ids = ob_malloc(nb * sizeof *s->ids);
    s->step_slot = ob_malloc((size_t)s->n_slots * sizeof *s->step_slot);
    s->step_count = ob_malloc((size_t)s->n_slots * sizeof *s->step_count);
    s->rows = ob_malloc((size_t)s->n_slots * sizeof *s->rows);
    size_t n_logits;
    bool ok = ob_mul_ok((size_t)s->n_slots, (size_t)s->n_vocab, &n_logits) &&
              (s->logits = ob_malloc(n_logits * sizeof(float)));
    ok = ok && s->slots && s->queue && s->tok && s->pos && s->seq && s->want && s->ids && s->step_slot &&
         s->step_count && s->rows;
    /* A CPU backend's own threads are idle while we sample, and a second pool
     * would only compete with them: sample in parallel for GPU backends only. */
    if (ok && strcmp(b->ops->name, "cpu") && s->n_slots > 1)
        ob_pool_create(OB_MIN(ob_cpu_count(), OB_MIN(s->n_slots, 8)), &s->sample_pool);
    for (int i = 0; ok && i < s->n_slots; i++) {
        s->slots[i].id = i;
        ok = (s->slots[i].cache = ob_malloc((size_t)s->n_ctx * sizeof(int32_t))) != NULL;
        b->ops->seq_truncate(b, i, 0);
    }
    if (!ok) {
        ob_sched_free(s);
        return ob_fail(OB_ERR_NOMEM, "out of memory for %d slots", b->n_seq);
    }
    metrics->slots_total = s->n_slots;
    metrics->kv_capacity = (long long)s->n_slots * s->n_ctx;
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        ob_sched_free(s);
        return ob_fail(OB_ERR_INTERNAL, "cannot start the scheduler thread");
    }
    s->thread_started = true;
    *out = s;
    return OB_OK;
}

void ob_sched_stop(ob_sched *s) {
    if (!s || !s->thread_started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

void ob_sched_free(ob_sched *s) {
    if (!s) return;
    ob_sched_stop(s);
    for (int i = 0; s->slots && i < s->n_slots; i++) free(s->slots[i].cache);
    free(s->slots);
    free(s->queue);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->ids);
    free(s->logits);
    free(s->step_slot);
    free(s->step_count);
    free(s->rows);
    ob_pool_destroy(s->sample_pool);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

uint64_t ob_sched_random_seed(ob_sched *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t v = ob_rng_next(&s->rng);
    pthread_mutex_unlock(&s->mu);
    return v;
}
