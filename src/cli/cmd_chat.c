/* 1bit chat: interactive multi-turn chat with the model's chat template. The
 * KV cache persists across turns: each turn re-renders the conversation and
 * the session reuses the common prefix, so only the new text is prefilled. */
#include "backend/backend.h"
#include "cli/cli.h"
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: 1bit chat -m MODEL [--system TEXT] [--template NAME] [-n N] [sampling options]\n\n"
            "Reads one user message per line from stdin; /reset clears the conversation, /exit (or EOF) quits.\n"
            "  --system TEXT        system prompt\n"
            "  --template NAME      chat template: bitnet, llama3, plain (default: from the model)\n"
            "  -n N                 max tokens per reply (default 512)\n"
            "  sampling: --temp --top-k --top-p --min-p --repeat-penalty --seed ... (as 1bit run)\n%s",
            ob_cli_model_help);
}

typedef struct chat_out {
    ob_buf reply;
} chat_out;

static int on_text(void *user, const char *text, size_t len, int32_t id) {
    chat_out *o = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    ob_buf_append(&o->reply, text, len);
    return 0;
}

typedef struct history {
    ob_chat_msg *msgs;
    char **owned;
    size_t n, cap;
} history;

static int push(history *h, const char *role, const char *content, size_t len) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        ob_chat_msg *m = realloc(h->msgs, cap * sizeof *m);
        char **o = m ? realloc(h->owned, cap * sizeof *o) : NULL;
        if (!m || !o) { if (m) h->msgs = m; return -1; }
        h->msgs = m;
        h->owned = o;
        h->cap = cap;
    }
    char *c = ob_strndup(content, len);
    if (!c) return -1;
    h->owned[h->n] = c;
    h->msgs[h->n++] = (ob_chat_msg){ role, c };
    return 0;
}

static void clear(history *h, size_t keep) {
    while (h->n > keep) free(h->owned[--h->n]);
}

int ob_cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *system = NULL, *tmpl = NULL;
    long long n_predict = 512;
    ob_cli_model_opts mo = { 0 };
    ob_sampler_params sp = ob_sampler_defaults();
    for (int i = 1; i < argc; i++) {
        int r = ob_cli_model_arg(cmd, &mo, argc, argv, &i);
        if (!r) r = ob_cli_sampling_arg(cmd, &sp, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--system") && has) system = argv[++i];
        else if (!strcmp(argv[i], "--template") && has) tmpl = argv[++i];
        else if (!strcmp(argv[i], "-n") && has) {
            if (!ob_cli_int(argv[++i], 1, 1 << 30, &n_predict)) return ob_cli_error(cmd, "-n must be a positive count");
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else return ob_cli_error(cmd, "unknown option '%s' (1bit chat --help)", argv[i]);
    }
    if (tmpl && !ob_chat_template_known(tmpl)) return ob_cli_error(cmd, "unknown chat template '%s'", tmpl);
    ob_model *m;
    ob_backend *b;
    if (ob_cli_open(cmd, &mo, 1, &m, &b)) return 1;
    int rc = 0;
    ob_session *s = NULL;
    history h = { 0 };
    char *line = NULL;
    size_t line_cap = 0;
    if (!m->tok) { rc = ob_cli_error(cmd, "this model has no tokenizer"); goto done; }
    if (ob_session_create(m, b, &s)) { rc = ob_cli_fail(cmd); goto done; }
    if (!tmpl) tmpl = m->chat_template;
    if (system && push(&h, "system", system, strlen(system))) { rc = ob_cli_error(cmd, "out of memory"); goto done; }
    size_t base = h.n;
    bool tty = isatty(0);
    const char *stop_eot[] = { NULL };
    ob_stop_list stops = { stop_eot, 0 };
    for (;;) {
        if (tty) { fputs("> ", stdout); fflush(stdout); }
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            clear(&h, base);
            ob_session_reset(s);
            continue;
        }
        if (!len) continue;
        if (push(&h, "user", line, (size_t)len)) { rc = ob_cli_error(cmd, "out of memory"); break; }
        ob_buf text = { 0 };
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (ob_chat_render(tmpl, h.msgs, h.n, true, &text) ||
            ob_tokenize(m->tok, text.data ? text.data : "", text.len, ob_tokenizer_add_bos(m->tok), true, &ids, &n_ids)) {
            ob_buf_free(&text);
            rc = ob_cli_fail(cmd);
            break;
        }
        ob_buf_free(&text);
        chat_out co = { { 0 } };
        ob_gen_stats gs;
        ob_status st = ob_session_generate(s, ids, n_ids, (int)n_predict, &sp, &stops, on_text, &co, NULL, NULL, &gs);
        free(ids);
        fputs("\n", stdout);
        fflush(stdout);
        if (st == OB_ERR_RANGE) { /* context full: start over with this turn */
            ob_cli_error(cmd, "%s; the conversation was reset", ob_last_error());
            clear(&h, base);
            ob_session_reset(s);
            ob_buf_free(&co.reply);
            continue;
        }
        if (st) { ob_buf_free(&co.reply); rc = ob_cli_fail(cmd); break; }
        if (push(&h, "assistant", co.reply.data ? co.reply.data : "", co.reply.len)) { rc = ob_cli_error(cmd, "out of memory"); break; }
        ob_buf_free(&co.reply);
        if (tty) fprintf(stderr, "[%d new prompt tokens, %d reused; %.1f tok/s]\n", gs.n_prompt - gs.n_cached, gs.n_cached,
                         gs.decode_s > 0 ? gs.n_gen / gs.decode_s : 0.0);
    }
done:
    free(line);
    clear(&h, 0);
    free(h.msgs);
    free(h.owned);
    ob_session_free(s);
    ob_backend_destroy(b);
    ob_model_free(m);
    return rc;
}
