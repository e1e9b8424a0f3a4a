/* HTTP surface: routes, authentication, CORS, JSON replies, SSE streams.
 *
 * Every request lands in ob_http_dispatch on a civetweb worker thread. A
 * generation request is validated completely (body, model name, prompt
 * length, queue room) before any header goes out, so every client mistake is
 * an ordinary 4xx with OpenAI's error JSON. The handler then submits a job to
 * the scheduler and relays its text: as SSE events (stream: true) or as one
 * JSON body. While it waits, the handler watches the client's socket
 * (peer.h); a client that closed it, or a failed write, means the client
 * left: the job is cancelled and its slot freed before the next decode step. */
#include "server/server.h"

#include "server/peer.h"
#include "server/request.h"

#include <civetweb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define COUNT(field) atomic_fetch_add_explicit(&s->metrics.field, 1, memory_order_relaxed)

/* ==== text helpers ========================================================== */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* A JSON string of text[0..n), invalid UTF-8 replaced by U+FFFD (jansson
 * refuses invalid UTF-8, and clients would choke on it anyway). */
static json_t *json_text(const char *text, size_t n) {
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq_len(p + i, n - i);
        if (!k || (k == 1 && !p[i])) break;
        i += k;
    }
    if (i == n) return json_stringn((const char *)p, n);
    ob_buf b = { 0 };
    for (i = 0; i < n;) {
        size_t k = utf8_seq_len(p + i, n - i);
        if (!k || (k == 1 && !p[i])) {
            ob_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            ob_buf_append(&b, p + i, k);
            i += k;
        }
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    ob_buf_free(&b);
    return j;
}

/* Constant-time comparison (no early exit on the first differing byte). */
static bool same_secret(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned diff = (unsigned)(na ^ nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)a[i] ^ (unsigned char)(nb ? b[i % nb] : 0);
    return diff == 0;
}

/* "chatcmpl-" + 24 characters: unique per process start and request. */
static void make_id(char *out, size_t size, const char *prefix) {
    static atomic_ullong counter;
    unsigned long long k = atomic_fetch_add(&counter, 1);
    uint64_t seed[3] = { (uint64_t)time(NULL), (uint64_t)getpid(), k };
    uint64_t h1 = ob_hash64(seed, sizeof seed, 0x1b17), h2 = ob_hash64(seed, sizeof seed, h1);
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char r[25];
    for (int i = 0; i < 24; i++) {
        uint64_t *h = i < 12 ? &h1 : &h2;
        r[i] = digits[*h % 62];
        *h /= 62;
    }
    r[24] = 0;
    snprintf(out, size, "%s%s", prefix, r);
}

/* ==== responses ============================================================= */

/* CORS: browsers (Open WebUI in a tab, any web client) send Origin; echoing it
 * back allows the page to read the reply, as llama.cpp does. */
static void add_cors(struct mg_connection *c) {
    const char *origin = mg_get_header(c, "Origin");
    if (origin && *origin) {
        mg_response_header_add(c, "Access-Control-Allow-Origin", origin, -1);
        mg_response_header_add(c, "Access-Control-Allow-Credentials", "true", -1);
        mg_response_header_add(c, "Vary", "Origin", -1);
    } else {
        mg_response_header_add(c, "Access-Control-Allow-Origin", "*", -1);
    }
}

static void count_status(ob_server *s, int status) {
    if (status >= 500) COUNT(responses_5xx);
    else if (status >= 400) COUNT(responses_4xx);
}

static int send_body(ob_server *s, struct mg_connection *c, int status, const char *ctype, const char *body,
                     size_t len, const char *extra_name, const char *extra_value) {
    count_status(s, status);
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", len);
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", ctype, -1);
    mg_response_header_add(c, "Content-Length", cl, -1);
    if (extra_name) mg_response_header_add(c, extra_name, extra_value, -1);
    add_cors(c);
    mg_response_header_send(c);
    if (len) mg_write(c, body, len);
    return status;
}

/* Sends j (consumed) as the whole reply. */
static int send_json(ob_server *s, struct mg_connection *c, int status, json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}";
        return send_body(s, c, 500, "application/json", oom, sizeof oom - 1, NULL, NULL);
    }
    int r = send_body(s, c, status, "application/json", text, strlen(text), NULL, NULL);
    free(text);
    return r;
}

/* {"error": {"message", "type", "param", "code"}}: OpenAI's shape. */
static json_t *error_json(const ob_api_error *e) {
    json_t *err = json_object();
    json_object_set_new(err, "message", json_text(e->message, strlen(e->message)));
    json_object_set_new(err, "type", json_string(e->type ? e->type : "invalid_request_error"));
    json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
    json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
    return json_pack("{s:o}", "error", err);
}

static int send_error(ob_server *s, struct mg_connection *c, const ob_api_error *e) {
    return send_json(s, c, e->status, error_json(e));
}

static int fail(ob_server *s, struct mg_connection *c, int status, const char *type, const char *code,
                const char *param, const char *message) {
    ob_api_error e;
    ob_api_fail(&e, status, type, code, param, "%s", message);
    return send_error(s, c, &e);
}

/* ==== SSE =================================================================== */

/* One event per write: "data: " + compact JSON + blank line. HTTP/1.1 gets
 * chunked encoding (the connection stays usable); HTTP/1.0 gets the body up to
 * connection close. `failed` latches the first write error: the client left. */
typedef struct sse {
    struct mg_connection *c;
    bool chunked, failed;
} sse;

static void sse_begin(ob_server *s, sse *w, struct mg_connection *c) {
    const struct mg_request_info *ri = mg_get_request_info(c);
    w->c = c;
    w->failed = false;
    w->chunked = ri->http_version && strcmp(ri->http_version, "1.0") != 0;
    if (!w->chunked) mg_disable_connection_keep_alive(c);
    mg_response_header_start(c, 200);
    mg_response_header_add(c, "Content-Type", "text/event-stream", -1);
    mg_response_header_add(c, "Cache-Control", "no-cache", -1);
    mg_response_header_add(c, "X-Accel-Buffering", "no", -1);
    if (w->chunked) mg_response_header_add(c, "Transfer-Encoding", "chunked", -1);
    add_cors(c);
    if (mg_response_header_send(c) < 0) w->failed = true;
}

static bool sse_write(sse *w, const char *data, size_t len) {
    if (w->failed) return false;
    int r = w->chunked ? mg_send_chunk(w->c, data, (unsigned)len) : mg_write(w->c, data, len);
    if (r <= 0) w->failed = true;
    return !w->failed;
}

/* Sends j (consumed) as one event. */
static bool sse_event(sse *w, json_t *j) {
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) return false;
    ob_buf b = { 0 };
    ob_buf_printf(&b, "data: %s\n\n", text);
    free(text);
    bool ok = b.data && sse_write(w, b.data, b.len);
    ob_buf_free(&b);
    return ok;
}

static void sse_end(sse *w) {
    sse_write(w, "data: [DONE]\n\n", 14);
    if (w->chunked) sse_write(w, "", 0); /* the zero-length chunk ends the body */
}

/* ==== generation ============================================================ */

typedef struct gen_ctx {
    ob_server *s;
    struct mg_connection *c;
    ob_gen_request *r;
    ob_job *job;
    int peer_fd;         /* the client's socket (peer.h), -1 when not found */
    char id[48];
    const char *model;   /* echoed: the request's name for the model, else ours */
    long long created;
} gen_ctx;

/* How often a waiting handler looks at its client's socket (seconds): a
 * client that left is noticed within this time even when no token comes. */
#define WATCH_S 0.05

/* Waits until the job changes (or timeout_s passes), then moves each choice's
 * new text into acc[i] (appending) and copies its finish reason. Returns true
 * when every choice has finished. */
static bool job_drain(ob_job *j, uint64_t *seen, ob_buf *acc, const char **finish, double timeout_s) {
    pthread_mutex_lock(&j->mu);
    if (j->version == *seen && !ob_job_done(j)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = ts.tv_sec + ts.tv_nsec * 1e-9 + timeout_s;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        while (j->version == *seen && !ob_job_done(j))
            if (pthread_cond_timedwait(&j->cv, &j->mu, &ts)) break;
    }
    *seen = j->version;
    for (int i = 0; i < j->n_choices; i++) {
        ob_choice_out *o = &j->choice[i];
        if (o->text.len) ob_buf_append(&acc[i], o->text.data, o->text.len);
        o->text.len = 0;
        finish[i] = o->finish;
    }
    bool done = ob_job_done(j);
    pthread_mutex_unlock(&j->mu);
    return done;
}

static json_t *usage_json(const gen_ctx *g) {
    ob_job *j = g->job;
    int completion = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_choices; i++) completion += j->choice[i].n_gen;
    int cached = j->n_cached;
    pthread_mutex_unlock(&j->mu);
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", j->n_prompt, "completion_tokens", completion,
                     "total_tokens", j->n_prompt + completion, "prompt_tokens_details", "cached_tokens", cached);
}

/* The frame shared by every reply and chunk: id, object, created, model. */
static json_t *frame(const gen_ctx *g, const char *object) {
    return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", g->id, "object", object, "created", (json_int_t)g->created,
                     "model", g->model, "system_fingerprint", g->s->fingerprint);
}

/* One streamed chunk for choice i: chat deltas carry {role?, content?};
 * completions carry text. finish: NULL or the finish reason. */
static json_t *chunk(const gen_ctx *g, int i, const char *role, const char *text, size_t len, const char *finish) {
    bool chat = g->r->kind == OB_REQ_CHAT;
    json_t *ch = json_pack("{s:i,s:n}", "index", i, "logprobs");
    if (chat) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string(role));
        if (text) json_object_set_new(delta, "content", json_text(text, len));
        json_object_set_new(ch, "delta", delta);
    } else {
        json_object_set_new(ch, "text", json_text(text, text ? len : 0));
    }
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *f = frame(g, chat ? "chat.completion.chunk" : "text_completion");
    json_object_set_new(f, "choices", json_pack("[o]", ch));
    if (g->r->include_usage) json_object_set_new(f, "usage", json_null());
    return f;
}

/* In-band error after the 200 header went out (the SDKs raise on it). */
static json_t *stream_error(const char *message) {
    ob_api_error e;
    ob_api_fail(&e, 500, "server_error", NULL, NULL, "%s", message && *message ? message : "generation failed");
    return error_json(&e);
}

static int stream_reply(gen_ctx *g, const char *echo, size_t echo_len) {
    ob_server *s = g->s;
    ob_job *j = g->job;
    int nc = j->n_choices; /* <= OB_REQ_MAX_N */
    ob_buf acc[OB_REQ_MAX_N] = { { 0 } };
    const char *finish[OB_REQ_MAX_N] = { 0 };
    bool ended[OB_REQ_MAX_N] = { 0 };
    sse w;
    sse_begin(s, &w, g->c);
    for (int i = 0; i < nc && !w.failed; i++) {
        if (g->r->kind == OB_REQ_CHAT) sse_event(&w, chunk(g, i, "assistant", "", 0, NULL));
        else if (echo_len) sse_event(&w, chunk(g, i, NULL, echo, echo_len, NULL));
    }
    uint64_t seen = 0;
    bool done = false, errored = false;
    double last_write = ob_time_s();
    while (!done && !w.failed) {
        done = job_drain(j, &seen, acc, finish, WATCH_S);
        if (!done && ob_peer_gone(g->peer_fd)) {
            w.failed = true;
            break;
        }
        bool wrote = false;
        for (int i = 0; i < nc && !w.failed; i++) {
            if (acc[i].len) {
                sse_event(&w, chunk(g, i, NULL, acc[i].data, acc[i].len, NULL));
                acc[i].len = 0;
                wrote = true;
            }
            if (finish[i] && !ended[i]) {
                ended[i] = true;
                wrote = true;
                if (!strcmp(finish[i], "error") || !strcmp(finish[i], "cancelled")) {
                    pthread_mutex_lock(&j->mu);
                    char msg[sizeof j->error];
                    memcpy(msg, j->error, sizeof msg);
                    pthread_mutex_unlock(&j->mu);
                    if (!errored) sse_event(&w, stream_error(msg));
                    errored = true;
                } else {
                    sse_event(&w, chunk(g, i, NULL, NULL, 0, finish[i]));
                }
            }
        }
        /* A comment line when nothing happened for a second (queued, long
         * prefill): SSE parsers skip it, and it keeps proxies from timing out. */
        double now = ob_time_s();
        if (wrote) last_write = now;
        else if (!done && now - last_write >= 1.0) {
            sse_write(&w, ": keep-alive\n\n", 14);
            last_write = now;
        }
    }
    if (w.failed && !done) {
        COUNT(disconnects);
        ob_sched_cancel(s->sched, j);
        while (!job_drain(j, &seen, acc, finish, 1.0)) {}
        ob_log(OB_LOG_DEBUG, "serve: %s: client disconnected, generation cancelled", g->id);
    } else if (!w.failed) {
        if (g->r->include_usage && !errored) {
            json_t *f = frame(g, g->r->kind == OB_REQ_CHAT ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(f, "choices", json_array());
            json_object_set_new(f, "usage", usage_json(g));
            sse_event(&w, f);
        }
        sse_end(&w);
    }
    for (int i = 0; i < nc; i++) ob_buf_free(&acc[i]);
    count_status(s, errored ? 500 : 200);
    return 200;
}

static int full_reply(gen_ctx *g, const char *echo, size_t echo_len) {
    ob_server *s = g->s;
    ob_job *j = g->job;
    int nc = j->n_choices; /* <= OB_REQ_MAX_N */
    ob_buf acc[OB_REQ_MAX_N] = { { 0 } };
    const char *finish[OB_REQ_MAX_N] = { 0 };
    for (int i = 0; i < nc; i++)
        if (echo_len) ob_buf_append(&acc[i], echo, echo_len);
    uint64_t seen = 0;
    while (!job_drain(j, &seen, acc, finish, WATCH_S)) {
        if (!ob_peer_gone(g->peer_fd)) continue;
        /* Nothing was sent yet and nothing will be: cancel, wait for the
         * scheduler to let go of the job, and close the connection. */
        COUNT(disconnects);
        ob_sched_cancel(s->sched, j);
        while (!job_drain(j, &seen, acc, finish, 1.0)) {}
        for (int i = 0; i < nc; i++) ob_buf_free(&acc[i]);
        mg_disable_connection_keep_alive(g->c);
        ob_log(OB_LOG_DEBUG, "serve: %s: client disconnected, generation cancelled", g->id);
        return 499; /* nginx's "client closed request", for the log only */
    }
    const char *bad = NULL;
    for (int i = 0; i < nc; i++)
        if (!strcmp(finish[i], "error") || !strcmp(finish[i], "cancelled")) bad = finish[i];
    int status;
    if (bad) {
        status = fail(s, g->c, !strcmp(bad, "error") ? 500 : 503, !strcmp(bad, "error") ? "server_error" : "unavailable_error",
                      NULL, NULL, j->error[0] ? j->error : "generation failed");
    } else {
        bool chat = g->r->kind == OB_REQ_CHAT;
        json_t *choices = json_array();
        for (int i = 0; i < nc; i++) {
            json_t *ch = json_pack("{s:i,s:n,s:s}", "index", i, "logprobs", "finish_reason", finish[i]);
            json_t *text = json_text(acc[i].data, acc[i].len);
            if (chat) json_object_set_new(ch, "message", json_pack("{s:s,s:o}", "role", "assistant", "content", text));
            else json_object_set_new(ch, "text", text);
            json_array_append_new(choices, ch);
        }
        json_t *f = frame(g, chat ? "chat.completion" : "text_completion");
        json_object_set_new(f, "choices", choices);
        json_object_set_new(f, "usage", usage_json(g));
        status = send_json(s, g->c, 200, f);
    }
    for (int i = 0; i < nc; i++) ob_buf_free(&acc[i]);
    return status;
}

/* The request's model name is accepted when it names what we serve: the
 * alias / file name, the file name without extension, or the path given to
 * -m. Absent or empty: ours. Anything else is a 404, so that a client pointed
 * at the wrong server learns it at once. */
static bool model_matches(const ob_server *s, const char *name) {
    return !strcmp(name, s->model_id) || !strcmp(name, s->model_base) || !strcmp(name, s->opts.model_path);
}

/* Prompt ids for the request (malloc'd into *ids). Errors are 400s. */
static ob_status build_prompt(ob_server *s, const ob_gen_request *r, int32_t **ids, size_t *n, ob_api_error *e) {
    const ob_tokenizer *tok = s->model->tok;
    if (!tok && (r->kind == OB_REQ_CHAT || r->prompt))
        return ob_api_fail(e, 400, "invalid_request_error", "unsupported_value", r->kind == OB_REQ_CHAT ? "messages" : "prompt",
                           "this model has no tokenizer: send /v1/completions a prompt of token ids");
    bool bos = tok && ob_tokenizer_add_bos(tok);
    ob_status st;
    if (r->kind == OB_REQ_CHAT) {
        ob_buf text = { 0 };
        st = ob_chat_render(s->chat_template, r->msgs, r->n_msgs, true, &text);
        if (!st) st = ob_tokenize(tok, text.data ? text.data : "", text.len, bos, true, ids, n);
        ob_buf_free(&text);
        if (st) return ob_api_fail(e, 400, "invalid_request_error", NULL, "messages", "%s", ob_last_error());
        return OB_OK;
    }
    if (r->prompt) {
        st = ob_tokenize(tok, r->prompt, strlen(r->prompt), bos, true, ids, n);
        if (st) return ob_api_fail(e, 400, "invalid_request_error", NULL, "prompt", "%s", ob_last_error());
        return OB_OK;
    }
    for (size_t i = 0; i < r->n_prompt_ids; i++)
        if (r->prompt_ids[i] >= s->model->hp.n_vocab)
            return ob_api_fail(e, 400, "invalid_request_error", "invalid_value", "prompt",
                               "prompt token %d is outside the vocabulary (%d)", r->prompt_ids[i], s->model->hp.n_vocab);
    *n = r->n_prompt_ids;
    *ids = ob_malloc(*n * sizeof **ids);
    if (!*ids) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    if (*n) memcpy(*ids, r->prompt_ids, *n * sizeof **ids);
    return OB_OK;
}

static int generate(ob_server *s, struct mg_connection *c, const char *body, size_t len, ob_req_kind kind) {
    ob_gen_request r;
    ob_api_error e;
    ob_sampler_params defaults = ob_sampler_defaults();
    if (ob_request_parse(body, len, kind, &defaults, &r, &e)) return send_error(s, c, &e);
    int status;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *pparam = kind == OB_REQ_CHAT ? "messages" : "prompt";
    if (r.model && !model_matches(s, r.model)) {
        ob_api_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%s' does not exist; this server serves '%s'", r.model, s->model_id);
        status = send_error(s, c, &e);
    } else if (build_prompt(s, &r, &ids, &n_ids, &e)) {
        status = send_error(s, c, &e);
    } else if (!n_ids) {
        status = fail(s, c, 400, "invalid_request_error", "invalid_value", pparam, "the prompt is empty");
    } else if (n_ids >= (size_t)s->n_ctx) {
        ob_api_fail(&e, 400, "invalid_request_error", "context_length_exceeded", pparam,
                    "This model's maximum context length is %d tokens, but the prompt has %zu tokens "
                    "(no room to generate)", s->n_ctx, n_ids);
        status = send_error(s, c, &e);
    } else {
        int room = s->n_ctx - (int)n_ids;
        int n_predict = r.max_tokens < 0 ? room : OB_MIN(r.max_tokens, room);
        if (!r.seed_given) r.sp.seed = ob_sched_random_seed(s->sched);
        ob_job *j = ob_job_create(ids, (int)n_ids, r.n, n_predict, &r.sp, (const char *const *)r.stops, r.n_stops);
        if (!j) {
            status = fail(s, c, 500, "server_error", NULL, NULL, "out of memory");
        } else {
            ids = NULL; /* the job owns them */
            j->ignore_eos = r.ignore_eos;
            ob_status st = ob_sched_submit(s->sched, j);
            if (st) {
                if (st == OB_ERR_RANGE) COUNT(rejected_busy);
                status = fail(s, c, 503, "unavailable_error", st == OB_ERR_RANGE ? "server_busy" : "shutting_down",
                              NULL, ob_last_error());
            } else {
                const struct mg_request_info *ri = mg_get_request_info(c);
                gen_ctx g = { .s = s, .c = c, .r = &r, .job = j, .model = r.model ? r.model : s->model_id,
                              .created = (long long)time(NULL),
                              .peer_fd = ob_peer_find_socket(ri->remote_addr, ri->remote_port, ri->server_port) };
                make_id(g.id, sizeof g.id, kind == OB_REQ_CHAT ? "chatcmpl-" : "cmpl-");
                /* echo (completions): the prompt text precedes the generated text */
                ob_buf echo = { 0 };
                if (r.echo) {
                    if (r.prompt) ob_buf_append(&echo, r.prompt, strlen(r.prompt));
                    else if (s->model->tok) ob_detokenize(s->model->tok, r.prompt_ids, r.n_prompt_ids, &echo);
                }
                status = r.stream ? stream_reply(&g, echo.data, echo.len) : full_reply(&g, echo.data, echo.len);
                ob_buf_free(&echo);
            }
            ob_job_free(j);
        }
    }
    free(ids);
    ob_request_free(&r);
    return status;
}

/* ==== routes ================================================================ */

typedef int (*route_fn)(ob_server *s, struct mg_connection *c, const char *body, size_t len);

static int h_chat(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    return generate(s, c, body, len, OB_REQ_CHAT);
}

static int h_completions(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    return generate(s, c, body, len, OB_REQ_COMPLETION);
}

/* One entry: the id clients pick; filled in from the model once loaded. */
static int h_models(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_id, "object", "model", "created",
                          (json_int_t)s->created, "owned_by", "1bit");
    if (ob_server_get_state(s) == OB_SERVER_READY)
        json_object_set_new(m, "meta", json_pack("{s:i,s:i,s:i,s:i,s:s,s:s}", "n_vocab", s->model->hp.n_vocab,
                                                 "n_ctx_train", s->model->hp.n_ctx_train, "n_ctx", s->n_ctx,
                                                 "n_slots", s->backend->n_seq, "backend", s->backend->ops->name,
                                                 "chat_template", s->chat_template ? s->chat_template : "none"));
    return send_json(s, c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", m));
}

static int h_health(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    switch (ob_server_get_state(s)) {
    case OB_SERVER_READY: return send_json(s, c, 200, json_pack("{s:s}", "status", "ok"));
    case OB_SERVER_LOADING: return fail(s, c, 503, "unavailable_error", "model_loading", NULL, "Loading model");
    default: return fail(s, c, 500, "server_error", "model_load_failed", NULL, s->load_error);
    }
}

static int no_tokenizer(ob_server *s, struct mg_connection *c) {
    return fail(s, c, 400, "invalid_request_error", "unsupported_value", NULL, "this model has no tokenizer");
}

static int h_tokenize(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    if (!s->model->tok) return no_tokenizer(s, c);
    ob_tokenize_request t;
    ob_api_error e;
    if (ob_tokenize_request_parse(body, len, &t, &e)) return send_error(s, c, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    ob_status st = ob_tokenize(s->model->tok, t.content, t.content_len, t.add_special, t.parse_special, &ids, &n);
    free(t.content);
    if (st) return fail(s, c, 400, "invalid_request_error", NULL, "content", ob_last_error());
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!t.with_pieces) {
            json_array_append_new(arr, json_integer(ids[i]));
            continue;
        }
        /* a piece that is not valid UTF-8 on its own (a byte token) is given as its bytes */
        const char *bytes;
        size_t nb = ob_token_bytes(s->model->tok, ids[i], &bytes);
        json_t *piece = json_stringn(bytes, nb);
        if (!piece) {
            piece = json_array();
            for (size_t k = 0; k < nb; k++) json_array_append_new(piece, json_integer((unsigned char)bytes[k]));
        }
        json_array_append_new(arr, json_pack("{s:i,s:o}", "id", ids[i], "piece", piece));
    }
    free(ids);
    return send_json(s, c, 200, json_pack("{s:o}", "tokens", arr));
}

static int h_detokenize(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    if (!s->model->tok) return no_tokenizer(s, c);
    int32_t *ids;
    size_t n;
    ob_api_error e;
    if (ob_detokenize_request_parse(body, len, s->model->hp.n_vocab, &ids, &n, &e)) return send_error(s, c, &e);
    ob_buf out = { 0 };
    ob_status st = ob_detokenize(s->model->tok, ids, n, &out);
    free(ids);
    if (st) {
        ob_buf_free(&out);
        return fail(s, c, 400, "invalid_request_error", NULL, "tokens", ob_last_error());
    }
    json_t *j = json_pack("{s:o}", "content", json_text(out.data, out.len));
    ob_buf_free(&out);
    return send_json(s, c, 200, j);
}

static int h_metrics(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    ob_buf out = { 0 };
    ob_metrics_render(&s->metrics, &out);
    int r = send_body(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "", out.len, NULL,
                      NULL);
    ob_buf_free(&out);
    return r;
}

static int h_embeddings(ob_server *s, struct mg_connection *c, const char *body, size_t len) {
    return fail(s, c, 501, "not_supported_error", "not_supported", NULL,
                "embeddings are not supported: this server runs a generative model");
}

enum { PUBLIC = 1, NEEDS_MODEL = 2, HAS_BODY = 4 };

/* Paths as OpenAI clients and llama.cpp tools use them (with and without /v1). */
static const struct route {
    const char *path, *method;
    ob_route_id id;
    unsigned flags;
    route_fn fn;
} routes[] = {
    { "/v1/chat/completions", "POST", OB_ROUTE_CHAT, NEEDS_MODEL | HAS_BODY, h_chat },
    { "/chat/completions", "POST", OB_ROUTE_CHAT, NEEDS_MODEL | HAS_BODY, h_chat },
    { "/v1/completions", "POST", OB_ROUTE_COMPLETIONS, NEEDS_MODEL | HAS_BODY, h_completions },
    { "/completions", "POST", OB_ROUTE_COMPLETIONS, NEEDS_MODEL | HAS_BODY, h_completions },
    { "/v1/models", "GET", OB_ROUTE_MODELS, PUBLIC, h_models },
    { "/models", "GET", OB_ROUTE_MODELS, PUBLIC, h_models },
    { "/health", "GET", OB_ROUTE_HEALTH, PUBLIC, h_health },
    { "/v1/health", "GET", OB_ROUTE_HEALTH, PUBLIC, h_health },
    { "/tokenize", "POST", OB_ROUTE_TOKENIZE, NEEDS_MODEL | HAS_BODY, h_tokenize },
    { "/detokenize", "POST", OB_ROUTE_DETOKENIZE, NEEDS_MODEL | HAS_BODY, h_detokenize },
    { "/metrics", "GET", OB_ROUTE_METRICS, 0, h_metrics },
    { "/v1/embeddings", "POST", OB_ROUTE_EMBEDDINGS, HAS_BODY, h_embeddings },
    { "/embeddings", "POST", OB_ROUTE_EMBEDDINGS, HAS_BODY, h_embeddings },
};

/* Answered before authentication: browsers send preflights without keys. */
static int preflight(ob_server *s, struct mg_connection *c) {
    const char *req_headers = mg_get_header(c, "Access-Control-Request-Headers");
    mg_response_header_start(c, 204);
    add_cors(c);
    mg_response_header_add(c, "Access-Control-Allow-Methods", "GET, POST, OPTIONS", -1);
    mg_response_header_add(c, "Access-Control-Allow-Headers",
                           req_headers && *req_headers ? req_headers : "Authorization, Content-Type, X-Api-Key", -1);
    mg_response_header_add(c, "Access-Control-Max-Age", "86400", -1);
    mg_response_header_add(c, "Content-Length", "0", -1);
    mg_response_header_send(c);
    return 204;
}

/* Authorization: Bearer KEY, else X-Api-Key: KEY. */
static bool authorized(const ob_server *s, struct mg_connection *c) {
    const char *key = NULL, *h = mg_get_header(c, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        key = h + 7;
        while (*key == ' ') key++;
    }
    if (!key) key = mg_get_header(c, "X-Api-Key");
    return key && same_secret(key, s->opts.api_key);
}

/* Reads the body (at most max_body bytes) into a NUL-terminated buffer.
 * Returns 0, or the HTTP status to answer (413, 400). */
static int read_body(const ob_server *s, struct mg_connection *c, char **out, size_t *len) {
    const struct mg_request_info *ri = mg_get_request_info(c);
    size_t limit = s->opts.max_body;
    *out = NULL;
    *len = 0;
    if (ri->content_length > (long long)limit) return 413;
    size_t cap = ri->content_length >= 0 ? (size_t)ri->content_length + 1 : 4096, n = 0;
    char *buf = ob_malloc(cap);
    if (!buf) return 413;
    for (;;) {
        if (n + 1 >= cap) {
            if (n >= limit) break;
            char *nb = ob_realloc(buf, cap = OB_MIN(cap * 2, limit + 2));
            if (!nb) break;
            buf = nb;
        }
        int r = mg_read(c, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    if (n > limit) {
        free(buf);
        return 413;
    }
    if (ri->content_length >= 0 && n != (size_t)ri->content_length) {
        free(buf);
        return 400;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int ob_http_dispatch(struct mg_connection *c, void *server) {
    ob_server *s = server;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *path = ri->local_uri ? ri->local_uri : "/", *method = ri->request_method;
    if (!strcmp(method, "OPTIONS")) return preflight(s, c);

    const struct route *rt = NULL;
    bool path_known = false;
    for (size_t i = 0; i < OB_ARRAY_LEN(routes) && !rt; i++) {
        if (strcmp(path, routes[i].path)) continue;
        path_known = true;
        if (!strcmp(method, routes[i].method)) rt = &routes[i];
    }
    atomic_fetch_add_explicit(&s->metrics.requests[rt ? rt->id : OB_ROUTE_OTHER], 1, memory_order_relaxed);
    char msg[300];
    if (!rt) {
        snprintf(msg, sizeof msg, path_known ? "method %s is not allowed on %s" : "no route for %s %s", method, path);
        if (!path_known) return fail(s, c, 404, "not_found_error", "not_found", NULL, msg);
        ob_api_error e;
        ob_api_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s", msg);
        json_t *j = error_json(&e);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        char allow[64] = "";
        for (size_t i = 0; i < OB_ARRAY_LEN(routes); i++)
            if (!strcmp(path, routes[i].path)) snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s, ", routes[i].method);
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "OPTIONS");
        int r = send_body(s, c, 405, "application/json", text ? text : "", text ? strlen(text) : 0, "Allow", allow);
        free(text);
        return r;
    }
    if (s->opts.api_key && !(rt->flags & PUBLIC) && !authorized(s, c))
        return fail(s, c, 401, "authentication_error", "invalid_api_key", NULL, "Invalid API Key");
    if (rt->flags & NEEDS_MODEL) {
        ob_server_state st = ob_server_get_state(s);
        if (st == OB_SERVER_LOADING) return fail(s, c, 503, "unavailable_error", "model_loading", NULL, "Loading model");
        if (st == OB_SERVER_FAILED) return fail(s, c, 500, "server_error", "model_load_failed", NULL, s->load_error);
    }
    char *body = NULL;
    size_t len = 0;
    if (rt->flags & HAS_BODY) {
        int bad = read_body(s, c, &body, &len);
        if (bad == 413) {
            mg_disable_connection_keep_alive(c); /* do not read the rest of a huge body */
            snprintf(msg, sizeof msg, "request body larger than the limit of %zu bytes (--max-body)", s->opts.max_body);
            return fail(s, c, 413, "invalid_request_error", "request_too_large", NULL, msg);
        }
        if (bad) return fail(s, c, 400, "invalid_request_error", NULL, NULL, "incomplete request body");
    }
    double t0 = ob_time_s();
    int status = rt->fn(s, c, body, len);
    free(body);
    ob_log(OB_LOG_DEBUG, "serve: %s %s -> %d (%.1f ms)", method, path, status, (ob_time_s() - t0) * 1e3);
    return status;
}
