/* A single-sequence generation session over any backend. */
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>

struct ob_session {
    const ob_model *m;
    ob_backend *b;
    int32_t *ids;     /* tokens whose K/V are in sequence 0 of the cache */
    size_t n_ids, cap;
    float *logits;    /* [n_vocab] */
};

ob_status ob_session_create(const ob_model *m, ob_backend *b, ob_session **out) {
    *out = NULL;
    ob_session *s = calloc(1, sizeof *s);
    if (!s) return ob_fail(OB_ERR_NOMEM, "out of memory");
    s->m = m;
    s->b = b;
    s->cap = 256;
    s->ids = malloc(s->cap * sizeof *s->ids);
    s->logits = malloc((size_t)m->hp.n_vocab * sizeof *s->logits);
    if (!s->ids || !s->logits) {
        ob_session_free(s);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return OB_OK;
}

void ob_session_free(ob_session *s) {
    if (!s) return;
    free(s->ids);
    free(s->logits);
    free(s);
}

const int32_t *ob_session_ids(const ob_session *s, size_t *n) {
    *n = s->n_ids;
    return s->ids;
}

void ob_session_reset(ob_session *s) {
    s->n_ids = 0;
    s->b->ops->seq_truncate(s->b, 0, 0);
}

static ob_status push_id(ob_session *s, int32_t id) {
    if (s->n_ids == s->cap) {
        int32_t *n = realloc(s->ids, s->cap * 2 * sizeof *n);
        if (!n) return ob_fail(OB_ERR_NOMEM, "out of memory");
        s->ids = n;
        s->cap *= 2;
    }
    s->ids[s->n_ids++] = id;
    return OB_OK;
}

/* Runs ids[0..n) at positions from s->n_ids on; logits of the last into s->logits. */
static ob_status eval(ob_session *s, const int32_t *ids, size_t n, bool want_logits) {
    if (n == 0) return OB_OK;
    if (s->n_ids + n > (size_t)s->b->n_ctx)
        return ob_fail(OB_ERR_RANGE, "context is full: %zu + %zu tokens exceed %d", s->n_ids, n, s->b->n_ctx);
    int32_t *pos = malloc(n * sizeof *pos);
    uint8_t *want = calloc(n, 1);
    if (!pos || !want) {
        free(pos);
        free(want);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) pos[i] = (int32_t)(s->n_ids + i);
    want[n - 1] = want_logits;
    ob_batch batch = { .n = (int)n, .token = ids, .pos = pos, .seq = NULL, .logits = want };
    ob_status st = s->b->ops->decode(s->b, &batch, want_logits ? s->logits : NULL);
    free(pos);
    free(want);
    if (st) {
        s->b->ops->seq_truncate(s->b, 0, (int)s->n_ids);
        return st;
    }
    for (size_t i = 0; i < n; i++)
        if ((st = push_id(s, ids[i]))) return st;
    return OB_OK;
}

ob_status ob_session_logits(ob_session *s, const int32_t *ids, size_t n, float *logits) {
    ob_session_reset(s);
    if (n > (size_t)s->b->n_ctx) return ob_fail(OB_ERR_RANGE, "%zu tokens exceed the context of %d", n, s->b->n_ctx);
    int32_t *pos = malloc(n * sizeof *pos);
    uint8_t *want = malloc(n);
    if (!pos || !want) {
        free(pos);
        free(want);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) pos[i] = (int32_t)i, want[i] = 1;
    ob_batch batch = { .n = (int)n, .token = ids, .pos = pos, .seq = NULL, .logits = want };
    ob_status st = s->b->ops->decode(s->b, &batch, logits);
    free(pos);
    free(want);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        if ((st = push_id(s, ids[i]))) return st;
    return OB_OK;
}

/* Stop-string scan over the generated text: returns the offset where a stop
 * string starts, or -1; *partial is the length of the longest suffix of text
 * that is a proper prefix of some stop string (text to withhold). */
static long find_stop(const ob_stop_list *stops, const char *text, size_t len, size_t *partial) {
    *partial = 0;
    if (!stops) return -1;
    long first = -1;
    for (size_t k = 0; k < stops->n; k++) {
        const char *st = stops->strs[k];
        size_t sl = strlen(st);
        if (!sl) continue;
        const char *hit = len >= sl ? memmem(text, len, st, sl) : NULL;
        if (hit && (first < 0 || hit - text < first)) first = hit - text;
        for (size_t p = OB_MIN(sl - 1, len); p > *partial; p--)
            if (!memcmp(text + len - p, st, p)) {
                *partial = p;
                break;
            }
    }
    return first;
}

ob_status ob_session_generate(ob_session *s, const int32_t *prompt, size_t n_prompt, int n_predict,
                              const ob_sampler_params *sp, const ob_stop_list *stops, ob_text_fn on_text,
                              void *user, int32_t **out_ids, size_t *n_out, ob_gen_stats *stats) {
    ob_gen_stats st_local = { 0 };
    ob_gen_stats *gs = stats ? stats : &st_local;
    memset(gs, 0, sizeof *gs);
    gs->finish = "length";
    if (out_ids) *out_ids = NULL;
    if (n_out) *n_out = 0;
    if (n_prompt == 0) return ob_fail(OB_ERR_ARG, "empty prompt (give at least one token, e.g. BOS)");

    /* Reuse the longest common prefix already in the cache; always re-run at
     * least the last prompt token to get its logits. */
    size_t common = 0;
    while (common < s->n_ids && common < n_prompt && s->ids[common] == prompt[common]) common++;
    if (common == n_prompt) common--;
    s->n_ids = common;
    s->b->ops->seq_truncate(s->b, 0, (int)common);
    gs->n_cached = (int)common;
    gs->n_prompt = (int)n_prompt;

    double t0 = ob_time_s();
    ob_status st = eval(s, prompt + common, n_prompt - common, true);
    gs->prefill_s = ob_time_s() - t0;
    if (st) return st;

    ob_sampler *smp = NULL;
    if ((st = ob_sampler_create(sp, s->m->hp.n_vocab, &smp))) return st;
    ob_detok_stream ds;
    if (s->m->tok) {
        ob_detok_stream_init(&ds, s->m->tok);
        ob_detok_stream_after(&ds, prompt, n_prompt); /* continuing text keeps its leading space */
    }
    ob_buf text = { 0 };      /* generated text not yet emitted */
    int32_t *gen = NULL;
    size_t n_gen = 0;
    t0 = ob_time_s();
    for (int i = 0; n_predict < 0 || i < n_predict; i++) {
        int32_t id = ob_sampler_sample(smp, s->logits, s->ids, s->n_ids);
        int32_t *g = realloc(gen, (n_gen + 1) * sizeof *g);
        if (!g) { st = ob_fail(OB_ERR_NOMEM, "out of memory"); break; }
        gen = g;
        gen[n_gen++] = id;
        gs->n_gen++;
        if (s->m->tok && ob_tokenizer_is_eog(s->m->tok, id)) {
            gs->finish = "stop";
            n_gen--; /* the end-of-generation id is not part of the output */
            break;
        }
        bool stop_now = false;
        if (s->m->tok) {
            if ((st = ob_detok_stream_push(&ds, id, &text))) break;
            size_t partial;
            long hit = find_stop(stops, text.data ? text.data : "", text.len, &partial);
            if (hit >= 0) {
                text.len = (size_t)hit;
                gs->finish = "stop";
                stop_now = true;
            }
            size_t emit = stop_now ? text.len : text.len - partial;
            if (emit && on_text && on_text(user, text.data, emit, id)) stop_now = true;
            memmove(text.data, text.data + emit, text.len - emit);
            text.len -= emit;
        } else if (on_text && on_text(user, "", 0, id)) {
            stop_now = true;
        }
        if (stop_now) {
            if (!strcmp(gs->finish, "length")) gs->finish = "stop";
            break;
        }
        if (n_predict >= 0 && i + 1 >= n_predict) break; /* no need to evaluate the last token */
        if ((st = eval(s, &id, 1, true))) {
            if (st == OB_ERR_RANGE) { st = OB_OK; gs->finish = "length"; }
            break;
        }
    }
    gs->decode_s = ob_time_s() - t0;
    if (!st && s->m->tok && !strcmp(gs->finish, "length")) {
        /* flush withheld text (an unfinished stop-string prefix, partial UTF-8) */
        ob_detok_stream_flush(&ds, &text);
        if (text.len && on_text) on_text(user, text.data, text.len, -1);
    }
    ob_buf_free(&text);
    ob_sampler_free(smp);
    if (st) {
        free(gen);
        return st;
    }
    if (out_ids) *out_ids = gen;
    else free(gen);
    if (n_out) *n_out = n_gen;
    return OB_OK;
}
