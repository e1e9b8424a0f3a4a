/* Server lifecycle: listener first, model in the background, orderly stop. */
#include "server/server.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ob_server_opts ob_server_defaults(void) {
    ob_server_opts o = {
        .host = "127.0.0.1", .port = 8080, .backend = "cpu", .n_slots = 4, .n_batch = 512,
        .queue = 64, .max_body = 8u << 20,
    };
    return o;
}

ob_server_state ob_server_get_state(ob_server *s) { return (ob_server_state)atomic_load(&s->state); }

/* Loads the model, creates the backend with one KV slot per parallel
 * sequence, starts the scheduler; then publishes READY. */
static void *load_main(void *arg) {
    ob_server *s = arg;
    const ob_server_opts *o = &s->opts;
    double t0 = ob_time_s();
    ob_status st;
    if (o->open) {
        st = o->open(o->open_user, o->n_slots, &s->model, &s->backend);
    } else {
        st = ob_model_load(o->model_path, &s->model);
        if (!st) {
            ob_backend_params bp = { .n_threads = o->n_threads, .n_ctx = o->n_ctx, .n_seq = o->n_slots };
            st = ob_backend_create(o->backend, s->model, &bp, &s->backend);
        }
    }
    if (!st && s->model->tok) {
        s->chat_template = o->chat_template ? o->chat_template : s->model->chat_template;
        if (!s->chat_template || !ob_chat_template_known(s->chat_template))
            st = ob_fail(OB_ERR_ARG, "unknown chat template '%s'", s->chat_template ? s->chat_template : "(none)");
    }
    if (!st && !s->model->tok)
        ob_log(OB_LOG_WARN, "serve: the model has no tokenizer: only /v1/completions with token-id prompts works");
    if (!st) {
        s->n_ctx = s->backend->n_ctx;
        snprintf(s->fingerprint, sizeof s->fingerprint, "1bit-%s-%s", OB_VERSION_STRING, s->backend->ops->name);
        ob_sched_params sp = { .n_batch = o->n_batch, .queue_cap = o->queue };
        st = ob_sched_create(s->model, s->backend, &sp, &s->metrics, &s->sched);
    }
    if (st) {
        snprintf(s->load_error, sizeof s->load_error, "%s", ob_last_error());
        atomic_store(&s->state, OB_SERVER_FAILED);
        return NULL;
    }
    ob_log(OB_LOG_INFO, "serve: %s loaded in %.2f s (%s backend, %d slots x %d positions, template %s)", s->model_id,
           ob_time_s() - t0, s->backend->ops->name, s->backend->n_seq, s->n_ctx,
           s->chat_template ? s->chat_template : "none");
    atomic_store(&s->state, OB_SERVER_READY);
    return NULL;
}

/* civetweb's own messages (bad requests, socket errors) at debug level. */
static int log_civetweb(const struct mg_connection *c, const char *msg) {
    (void)c;
    ob_log(OB_LOG_DEBUG, "serve: http: %s", msg);
    return 1;
}

static char *basename_of(const char *path, bool strip_ext) {
    while (strlen(path) > 1 && path[strlen(path) - 1] == '/') {
        /* "dir/" names its directory */
        char *t = ob_strndup(path, strlen(path) - 1);
        char *r = t ? basename_of(t, strip_ext) : NULL;
        free(t);
        return r;
    }
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    const char *dot = strrchr(b, '.');
    if (strip_ext && dot && dot != b) n = (size_t)(dot - b);
    return ob_strndup(b, n);
}

ob_status ob_server_start(const ob_server_opts *o, ob_server **out) {
    *out = NULL;
    if (!o->model_path) return ob_fail(OB_ERR_ARG, "no model (-m MODEL)");
    if (!o->open && !o->backend) return ob_fail(OB_ERR_ARG, "no backend");
    if (o->n_slots < 1 || o->n_slots > 256) return ob_fail(OB_ERR_ARG, "--slots must be 1..256");
    if (o->queue < 1) return ob_fail(OB_ERR_ARG, "--queue must be at least 1");
    ob_server *s = ob_calloc(1, sizeof *s);
    if (!s) return ob_fail(OB_ERR_NOMEM, "out of memory");
    s->opts = *o;
    s->model_id = o->alias ? ob_strdup(o->alias) : basename_of(o->model_path, false);
    s->model_base = basename_of(o->model_path, true);
    s->created = (long long)time(NULL);
    atomic_init(&s->state, OB_SERVER_LOADING);
    if (!s->model_id || !s->model_base) {
        ob_server_stop(s);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }

    /* Every streaming client pins a civetweb worker, and so does an idle
     * keep-alive connection: size the pool for the queue plus spares. */
    int threads = o->http_threads > 0 ? o->http_threads : OB_MAX(64, o->queue + o->n_slots + 32);
    char ports[300], nthreads[16];
    snprintf(ports, sizeof ports, strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, o->port);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", nthreads,
        "request_timeout_ms", "60000",   /* a client that stops reading for a minute is gone */
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "15000",/* longer than clients' idle timeouts, so they close first */
        "tcp_nodelay", "1",              /* SSE events are small: no Nagle delay on each */
        "listen_backlog", "512",
        "connection_queue", "256",
        /* CORS is ours (http.c): civetweb would answer preflights itself */
        "access_control_allow_origin", "",
        "access_control_allow_methods", "",
        NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_civetweb;
    mg_init_library(0);
    s->http = mg_start(&cb, s, options);
    if (!s->http) {
        ob_server_stop(s);
        return ob_fail(OB_ERR_IO, "cannot listen on %s (address in use or not allowed?)", ports);
    }
    struct mg_server_port sp[4];
    int n_ports = mg_get_server_ports(s->http, 4, sp);
    s->port = n_ports > 0 ? sp[0].port : o->port;
    mg_set_request_handler(s->http, "/", ob_http_dispatch, s);

    if (pthread_create(&s->loader, NULL, load_main, s)) {
        ob_server_stop(s);
        return ob_fail(OB_ERR_INTERNAL, "cannot start the loader thread");
    }
    s->loader_started = true;
    *out = s;
    return OB_OK;
}

int ob_server_port(const ob_server *s) { return s->port; }

void ob_server_stop(ob_server *s) {
    if (!s) return;
    if (s->loader_started) pthread_join(s->loader, NULL);
    /* End every generation first so that handlers waiting on jobs return,
     * then stop civetweb (it waits for its handlers), then free the engine. */
    ob_sched_stop(s->sched);
    if (s->http) {
        mg_stop(s->http);
        mg_exit_library();
    }
    ob_sched_free(s->sched);
    ob_backend_destroy(s->backend);
    ob_model_free(s->model);
    free(s->model_id);
    free(s->model_base);
    free(s);
}
