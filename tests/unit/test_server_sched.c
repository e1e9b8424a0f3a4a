/* The server's scheduler (src/server/sched.c) on stories260K: greedy
 * continuations equal a direct greedy loop over the backend (decode one token
 * at a time, argmax on the host, detokenize), whether the scheduler samples
 * from the logits or asks the backend for argmax ids (decode_argmax, which the
 * GPU backend has). The CPU backend has no decode_argmax, so a test double
 * adds one built from decode; it also checks the vtable's contract (one output
 * per token) and that only greedy sequences without penalties are ever decoded
 * through it, also when greedy, penalized and sampled requests share the
 * batch. OB_TEST_BACKEND=cuda runs the greedy test on the GPU's own
 * decode_argmax instead (on a GPU machine). Requests are queued under one
 * lock, so both runs see the same batches. */
#include "testutil.h"

#ifdef OB_HAVE_SERVER
#include "server/sched.c"
#include "server/stop.c"

#define N_CTX 256
#define N_SLOTS 4
#define N_GEN 48

static ob_model *g_model;
static ob_backend *g_backend;
static const char *g_backend_name = "cpu";
static const ob_backend_ops *g_base_ops;   /* the backend's own ops */
static ob_backend_ops g_logits_ops;       /* the same without decode_argmax */
static bool g_double;                     /* decode_argmax is the test double */

/* ---- the independent reference ------------------------------------------------ */

static int32_t host_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; /* ties: the lowest id */
    return best;
}

/* Greedy text of n_gen tokens after prompt, decoding one sequence (slot 0)
 * token by token with the backend's plain decode. */
static char *reference_greedy(const int32_t *prompt, int n_prompt, int n_gen) {
    ob_backend *b = g_backend;
    int V = g_model->hp.n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *pos = malloc((size_t)n_prompt * sizeof *pos), *out = malloc((size_t)n_gen * sizeof *out);
    assert_non_null(logits);
    assert_non_null(pos);
    assert_non_null(out);
    for (int i = 0; i < n_prompt; i++) pos[i] = i;
    assert_int_equal(g_base_ops->seq_truncate(b, 0, 0), OB_OK);
    ob_batch batch = { .n = n_prompt, .token = prompt, .pos = pos };
    assert_int_equal(g_base_ops->decode(b, &batch, logits), OB_OK);
    for (int t = 0; t < n_gen; t++) {
        out[t] = host_argmax(logits, V);
        int32_t p = n_prompt + t;
        ob_batch one = { .n = 1, .token = &out[t], .pos = &p };
        if (t + 1 < n_gen) assert_int_equal(g_base_ops->decode(b, &one, logits), OB_OK);
    }
    ob_buf text = { 0 };
    assert_int_equal(ob_detokenize(g_model->tok, out, (size_t)n_gen, &text), OB_OK);
    char *s = strndup(text.data ? text.data : "", text.len);
    ob_buf_free(&text);
    free(logits);
    free(pos);
    free(out);
    return s;
}

/* ---- a decode_argmax double over the CPU backend ---------------------------------- */

static ob_backend_ops g_argmax_ops;
static int g_argmax_calls, g_argmax_tokens;
static ob_sched *g_sched;          /* the running scheduler, to see which job a slot serves */
static ob_job *g_greedy_jobs[8];   /* the only jobs allowed in an argmax step */
static int g_n_greedy_jobs;

static bool is_greedy_job(const ob_job *j) {
    for (int i = 0; i < g_n_greedy_jobs; i++)
        if (g_greedy_jobs[i] == j) return true;
    return false;
}

static ob_status double_decode_argmax(ob_backend *b, const ob_batch *batch, int32_t *ids) {
    int V = g_model->hp.n_vocab;
    g_argmax_calls++;
    g_argmax_tokens += batch->n;
    for (int t = 0; t < batch->n; t++) {
        if (batch->logits && !batch->logits[t]) fail_msg("argmax step with a token that wants no output");
        for (int u = 0; u < t; u++)
            if (batch->seq[u] == batch->seq[t]) fail_msg("argmax step with two tokens of sequence %d", batch->seq[t]);
        const slot *sl = &g_sched->slots[batch->seq[t]];
        if (!is_greedy_job(sl->job)) fail_msg("argmax step for a sequence that is sampled or penalized");
    }
    float *logits = malloc((size_t)batch->n * (size_t)V * sizeof *logits);
    uint8_t *all = malloc((size_t)batch->n);
    if (!logits || !all) return ob_fail(OB_ERR_NOMEM, "out of memory");
    memset(all, 1, (size_t)batch->n);
    ob_batch b2 = *batch;
    b2.logits = all;
    ob_status st = g_base_ops->decode(b, &b2, logits);
    for (int t = 0; !st && t < batch->n; t++) ids[t] = host_argmax(logits + (size_t)t * V, V);
    free(logits);
    free(all);
    return st;
}

/* ---- running the scheduler --------------------------------------------------------- */

typedef struct req {
    const char *prompt;
    ob_sampler_params sp;
    int n_gen;  /* 0: N_GEN */
    ob_job *job;
    char *text; /* result */
} req;

static ob_sampler_params greedy_params(void) {
    ob_sampler_params p = ob_sampler_defaults();
    p.temperature = 0;
    p.repeat_penalty = 1;
    p.frequency_penalty = p.presence_penalty = 0;
    return p;
}

static int32_t *tokenize(const char *text, int *n) {
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(g_model->tok, text, strlen(text), ob_tokenizer_add_bos(g_model->tok), true, &ids, &k),
                     OB_OK);
    *n = (int)k;
    return ids;
}

/* Queues every request at once (under one lock, so the scheduler admits them
 * together and every run sees the same batches), waits for all, and keeps
 * each choice's text. with_argmax: the backend offers decode_argmax. */
static void run_sched(req *rq, int n, bool with_argmax) {
    g_backend->ops = with_argmax ? &g_argmax_ops : &g_logits_ops;
    static ob_metrics metrics;
    memset(&metrics, 0, sizeof metrics);
    ob_sched_params p = { .n_batch = 64, .queue_cap = 16 };
    assert_int_equal(ob_sched_create(g_model, g_backend, &p, &metrics, &g_sched), OB_OK);
    g_n_greedy_jobs = 0;
    for (int i = 0; i < n; i++) {
        int n_prompt;
        int32_t *prompt = tokenize(rq[i].prompt, &n_prompt);
        if (!rq[i].n_gen) rq[i].n_gen = N_GEN;
        rq[i].job = ob_job_create(prompt, n_prompt, 1, rq[i].n_gen, &rq[i].sp, NULL, 0);
        assert_non_null(rq[i].job);
        rq[i].job->ignore_eos = true;
        if (params_greedy(&rq[i].sp)) g_greedy_jobs[g_n_greedy_jobs++] = rq[i].job;
    }
    pthread_mutex_lock(&g_sched->mu);
    for (int i = 0; i < n; i++) assert_int_equal(submit_locked(g_sched, rq[i].job), OB_OK);
    pthread_mutex_unlock(&g_sched->mu);
    for (int i = 0; i < n; i++) {
        ob_job *j = rq[i].job;
        pthread_mutex_lock(&j->mu);
        while (!ob_job_done(j)) pthread_cond_wait(&j->cv, &j->mu);
        pthread_mutex_unlock(&j->mu);
        assert_string_equal(j->choice[0].finish, "length");
        assert_int_equal(j->choice[0].n_gen, rq[i].n_gen);
        rq[i].text = strndup(j->choice[0].text.data ? j->choice[0].text.data : "", j->choice[0].text.len);
    }
    if (g_double || !with_argmax) assert_int_equal((int)metrics.argmax_steps, with_argmax ? g_argmax_calls : 0);
    else g_argmax_calls = (int)metrics.argmax_steps, g_argmax_tokens = -1; /* the GPU's own: steps only */
    ob_sched_free(g_sched);
    g_sched = NULL;
    for (int i = 0; i < n; i++) ob_job_free(rq[i].job);
    g_backend->ops = g_base_ops;
}

static const char *prompts[] = { "Once upon a time", "Lily and Tom went to the park", "The sun was", "One day, a cat" };

static void test_greedy_paths_agree(void **state) {
    (void)state;
    enum { N = 4 };
    char *ref[N];
    for (int i = 0; i < N; i++) {
        int n_prompt;
        int32_t *prompt = tokenize(prompts[i], &n_prompt);
        ref[i] = reference_greedy(prompt, n_prompt, N_GEN);
        free(prompt);
    }
    for (int with_argmax = 0; with_argmax < 2; with_argmax++) {
        req rq[N];
        for (int i = 0; i < N; i++) rq[i] = (req){ .prompt = prompts[i], .sp = greedy_params() };
        g_argmax_calls = g_argmax_tokens = 0;
        run_sched(rq, N, with_argmax);
        for (int i = 0; i < N; i++) {
            if (strcmp(rq[i].text, ref[i]))
                fail_msg("%s path, prompt %d:\n  got  '%s'\n  want '%s'", with_argmax ? "argmax" : "logits", i,
                         rq[i].text, ref[i]);
            free(rq[i].text);
        }
        /* All four prefill in the first step (logits), then every step is
         * an argmax step of all four. */
        if (with_argmax && g_double) {
            assert_int_equal(g_argmax_tokens, N * (N_GEN - 1));
            assert_int_equal(g_argmax_calls, N_GEN - 1);
        } else if (with_argmax) {
            assert_int_equal(g_argmax_calls, N_GEN - 1);
        }
    }
    for (int i = 0; i < N; i++) free(ref[i]);
}

/* Greedy, greedy with a repetition penalty, and temperature sampling in one
 * batch: each gives what it gives without decode_argmax, and argmax steps
 * happen only once the non-greedy sequences are done (the double checks every
 * step); the greedy ones run twice as long, so they do happen. */
static void test_mixed_batches(void **state) {
    (void)state;
    ob_sampler_params penalized = greedy_params(), sampled = ob_sampler_defaults();
    penalized.repeat_penalty = 1.3f;
    sampled.temperature = 0.9f;
    sampled.seed = 1234;
    req base[4] = {
        { .prompt = prompts[0], .sp = greedy_params() },
        { .prompt = prompts[1], .sp = penalized, .n_gen = N_GEN / 2 },
        { .prompt = prompts[2], .sp = sampled, .n_gen = N_GEN / 2 },
        { .prompt = prompts[3], .sp = greedy_params() },
    };
    req a[4], b[4];
    memcpy(a, base, sizeof a);
    memcpy(b, base, sizeof b);
    run_sched(a, 4, false);
    g_argmax_calls = g_argmax_tokens = 0;
    run_sched(b, 4, true);
    for (int i = 0; i < 4; i++) {
        if (strcmp(a[i].text, b[i].text))
            fail_msg("request %d differs:\n  logits '%s'\n  argmax '%s'", i, a[i].text, b[i].text);
        free(a[i].text);
        free(b[i].text);
    }
    /* exactly the greedy tokens made after the others ended */
    assert_int_equal(g_argmax_calls, N_GEN - N_GEN / 2);
    assert_int_equal(g_argmax_tokens, 2 * (N_GEN - N_GEN / 2));

    /* a penalized greedy request that outlives a plain one: no argmax step
     * at all (every step holds the penalized sequence) */
    req c[2] = { { .prompt = prompts[0], .sp = greedy_params(), .n_gen = N_GEN / 2 },
                 { .prompt = prompts[1], .sp = penalized } };
    g_argmax_calls = g_argmax_tokens = 0;
    run_sched(c, 2, true);
    assert_int_equal(g_argmax_calls, 0);
    free(c[0].text);
    free(c[1].text);
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    const char *p = ob_test_shared_path("data/stories260K/stories260K.gguf");
    if (!p) return 0; /* the tests skip */
    snprintf(path, sizeof path, "%s", p);
    if (ob_model_load(path, &g_model)) return -1;
    ob_backend_params bp = { .n_threads = 1, .n_ctx = N_CTX, .n_seq = N_SLOTS };
    const char *name = getenv("OB_TEST_BACKEND");
    if (name && *name) g_backend_name = name;
    if (ob_backend_create(g_backend_name, g_model, &bp, &g_backend)) {
        print_message("cannot create the %s backend: %s\n", g_backend_name, ob_last_error());
        return -1;
    }
    g_base_ops = g_backend->ops;
    g_logits_ops = *g_base_ops;
    g_logits_ops.decode_argmax = NULL;
    g_argmax_ops = *g_base_ops;
    g_double = !g_argmax_ops.decode_argmax;
    if (g_double) g_argmax_ops.decode_argmax = double_decode_argmax;
    print_message("backend %s, decode_argmax: %s\n", g_backend_name, g_double ? "test double" : "the backend's");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (g_backend) g_backend->ops = g_base_ops;
    ob_backend_destroy(g_backend);
    ob_model_free(g_model);
    return 0;
}

#define NEEDS_MODEL()                                                             \
    do {                                                                          \
        char path_[4096];                                                         \
        OB_REQUIRE_SHARED(path_, "data/stories260K/stories260K.gguf");            \
        assert_non_null(g_backend);                                               \
    } while (0)

static void t_greedy(void **state) {
    NEEDS_MODEL();
    test_greedy_paths_agree(state);
}

static void t_mixed(void **state) {
    NEEDS_MODEL();
    if (!g_double) {
        print_message("SKIP: the mixed-batch checks need the test double (CPU backend)\n");
        skip();
    }
    test_mixed_batches(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_greedy),
        cmocka_unit_test(t_mixed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else

OB_TEST_MAIN_NOT_BUILT("the server libraries (civetweb, jansson)")

#endif
