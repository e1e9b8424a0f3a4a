/* `1bit serve`: an OpenAI-compatible HTTP server (civetweb + jansson).
 *
 * ob_server_start binds the listener first and loads the model in a
 * background thread, so /health answers 503 while loading and 200 after.
 * Files: server.c (lifecycle), http.c (routes, JSON, SSE), sched.c (the
 * continuous-batching scheduler), request.c (request validation), stop.c
 * (stop strings), metrics.c (Prometheus text), peer.c (is the client still
 * connected). */
/* Internal to src/server; C only (C11 atomics). */
#ifndef OB_SERVER_H
#define OB_SERVER_H

#include "backend/backend.h"
#include "server/metrics.h"
#include "server/sched.h"

#include <pthread.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mg_connection;
struct mg_context;

/* Opens the model and creates a backend with n_seq sequence slots; runs on
 * the loader thread. */
typedef ob_status (*ob_server_open_fn)(void *user, int n_seq, ob_model **m, ob_backend **b);

typedef struct ob_server_opts {
    const char *model_path;    /* also the source of the default model id */
    ob_server_open_fn open;    /* NULL: ob_model_load(model_path) + ob_backend_create(backend) */
    void *open_user;
    const char *alias;         /* model id in /v1/models; default: the file's basename */
    const char *host;          /* default 127.0.0.1 */
    int port;                  /* default 8080; 0 picks a free port (see ob_server_port) */
    const char *backend;       /* "cpu" | "cuda" */
    int n_threads;             /* CPU threads (0: all) */
    int n_slots;               /* parallel sequences */
    int n_ctx;                 /* positions per slot (0: min(trained context, 4096)) */
    int n_batch;               /* tokens per decode step */
    int queue;                 /* sequences waiting for a slot before 503 */
    int http_threads;          /* civetweb workers (0: enough for queue + slots + spare) */
    size_t max_body;           /* request body limit in bytes (413 above) */
    const char *api_key;       /* NULL: no authentication */
    const char *chat_template; /* NULL: the model's */
} ob_server_opts;

ob_server_opts ob_server_defaults(void);

typedef enum ob_server_state { OB_SERVER_LOADING, OB_SERVER_READY, OB_SERVER_FAILED } ob_server_state;

/* Internal to src/server: the state handlers read. Fields below `state` are
 * written by the loader thread before it stores READY (release) and only
 * read by handlers that saw READY (acquire). */
typedef struct ob_server {
    ob_server_opts opts;
    char *model_id;            /* alias or basename */
    char *model_base;          /* basename without extension, also accepted as a model name */
    long long created;         /* unix time of start, /v1/models "created" */
    struct mg_context *http;
    int port;
    ob_metrics metrics;
    pthread_t loader;
    bool loader_started;
    atomic_int state;          /* ob_server_state */
    char load_error[512];

    ob_model *model;
    ob_backend *backend;
    ob_sched *sched;
    const char *chat_template; /* template name used for chat */
    int n_ctx;                 /* per slot */
    char fingerprint[64];
} ob_server;

/* Starts the listener and the model load. The caller then waits (signals)
 * and watches ob_server_state for OB_SERVER_FAILED. */
ob_status ob_server_start(const ob_server_opts *o, ob_server **out);
ob_server_state ob_server_get_state(ob_server *s);
int ob_server_port(const ob_server *s); /* the bound port (when opts.port was 0) */
/* Stops accepting, ends every generation, frees everything. */
void ob_server_stop(ob_server *s);

/* http.c: civetweb request handler for every URI (user data: the server). */
int ob_http_dispatch(struct mg_connection *c, void *server);

#ifdef __cplusplus
}
#endif
#endif
