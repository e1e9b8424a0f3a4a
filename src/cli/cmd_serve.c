/* 1bit serve: the OpenAI-compatible server (src/server). Options, start-up
 * line, and the wait for SIGINT/SIGTERM; everything else lives in the server.
 * Without civetweb + jansson at build time the command says so and fails. */
#include "cli/cli.h"

#ifdef OB_HAVE_SERVER

#include "server/server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: 1bit serve -m MODEL [options]\n\n"
            "  --host ADDR          address to bind (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "  --port N             port (default 8080; 0 picks a free one, printed at start)\n"
            "  --alias NAME         model id in /v1/models (default: the model file's name)\n"
            "  --slots N            sequences decoded together (default 4); each has its own KV cache\n"
            "  --batch N            tokens per decode step, prefill chunks included (default 512)\n"
            "  --queue N            requests waiting for a slot before 503 (default 64)\n"
            "  --http-threads N     HTTP worker threads (default: queue + slots + 32, at least 64)\n"
            "  --max-body BYTES     request body limit, 413 above (default 8388608)\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'\n"
            "                       (/health and /v1/models stay open); also $ONEBIT_API_KEY\n"
            "  --chat-template NAME override the model's chat template (bitnet, llama3, plain)\n"
            "  -v, --verbose        log requests and load details\n"
            "A request's \"model\" may be absent, the alias, the file name (with or without its\n"
            "extension) or the -m path; any other name is answered 404 model_not_found.\n"
            "model options (--ctx N is per slot):\n%s",
            ob_cli_model_help);
}

typedef struct open_ctx {
    ob_cli_model_opts mo;
} open_ctx;

/* Runs on the server's loader thread: the same model options as every command. */
static ob_status open_model(void *user, int n_seq, ob_model **m, ob_backend **b) {
    open_ctx *o = user;
    if (!ob_cli_open("serve", &o->mo, n_seq, m, b)) return OB_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", *ob_last_error() ? ob_last_error() : "cannot open the model");
    return ob_fail(OB_ERR_ARG, "%s", msg);
}

int ob_cmd_serve(int argc, char **argv) {
    const char *cmd = argv[0];
    ob_server_opts so = ob_server_defaults();
    open_ctx oc;
    memset(&oc, 0, sizeof oc);
    so.api_key = getenv("ONEBIT_API_KEY");
    if (so.api_key && !*so.api_key) so.api_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = ob_cli_model_arg(cmd, &oc.mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            ob_set_log_level(OB_LOG_DEBUG);
            continue;
        }
        if (i + 1 >= argc) return ob_cli_error(cmd, "unknown option '%s' (1bit serve --help)", a);
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "--host")) so.host = v;
        else if (!strcmp(a, "--alias")) so.alias = v;
        else if (!strcmp(a, "--api-key")) so.api_key = *v ? v : NULL;
        else if (!strcmp(a, "--chat-template")) so.chat_template = v;
        else if (!strcmp(a, "--port")) {
            if (!ob_cli_int(v, 0, 65535, &n)) return ob_cli_error(cmd, "--port must be 0..65535");
            so.port = (int)n;
        } else if (!strcmp(a, "--slots") || !strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            if (!ob_cli_int(v, 1, 256, &n)) return ob_cli_error(cmd, "--slots must be 1..256");
            so.n_slots = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (!ob_cli_int(v, 1, 1 << 16, &n)) return ob_cli_error(cmd, "--batch must be 1..65536");
            so.n_batch = (int)n;
        } else if (!strcmp(a, "--queue")) {
            if (!ob_cli_int(v, 1, 1 << 16, &n)) return ob_cli_error(cmd, "--queue must be 1..65536");
            so.queue = (int)n;
        } else if (!strcmp(a, "--http-threads")) {
            if (!ob_cli_int(v, 4, 4096, &n)) return ob_cli_error(cmd, "--http-threads must be 4..4096");
            so.http_threads = (int)n;
        } else if (!strcmp(a, "--max-body")) {
            if (!ob_cli_int(v, 64, 1ll << 34, &n)) return ob_cli_error(cmd, "--max-body must be 64..2^34 bytes");
            so.max_body = (size_t)n;
        } else {
            return ob_cli_error(cmd, "unknown option '%s' (1bit serve --help)", a);
        }
    }
    if (!oc.mo.model && !oc.mo.synthetic) return ob_cli_error(cmd, "no model: give -m MODEL (1bit serve --help)");
    char synthetic_name[128];
    if (oc.mo.synthetic) {
        snprintf(synthetic_name, sizeof synthetic_name, "synthetic-%s", oc.mo.synthetic);
        so.model_path = synthetic_name;
    } else {
        so.model_path = oc.mo.model;
    }
    so.open = open_model;
    so.open_user = &oc;

    /* SIGINT/SIGTERM are taken by sigtimedwait below: block them before any
     * thread starts so that every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ob_server *srv;
    if (ob_server_start(&so, &srv)) return ob_cli_fail(cmd);
    fprintf(stderr, "1bit serve: listening on http://%s%s%s:%d (model %s loading)\n", strchr(so.host, ':') ? "[" : "",
            so.host, strchr(so.host, ':') ? "]" : "", ob_server_port(srv), srv->model_id);
    if (so.api_key) {
        size_t k = strlen(so.api_key);
        fprintf(stderr, "1bit serve: API key required (ends in ...%s)\n", so.api_key + (k > 4 ? k - 4 : 0));
    }
    int rc = 0;
    bool announced = false;
    for (;;) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "1bit serve: %s, shutting down\n", sig == SIGINT ? "interrupted" : "terminated");
            break;
        }
        ob_server_state st = ob_server_get_state(srv);
        if (st == OB_SERVER_FAILED) { /* the loader printed why */
            rc = 1;
            break;
        }
        if (st == OB_SERVER_READY && !announced) {
            announced = true;
            fprintf(stderr, "1bit serve: ready (%s backend, %d slots x %d positions)\n", srv->backend->ops->name,
                    srv->backend->n_seq, srv->n_ctx);
        }
    }
    ob_server_stop(srv);
    return rc;
}

#else

int ob_cmd_serve(int argc, char **argv) {
    (void)argc;
    return ob_cli_error(argv[0], "built without server support (civetweb, jansson)");
}

#endif
