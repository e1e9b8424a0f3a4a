/* 1bit run: generate from a prompt (text or ids), streaming text to stdout and
 * prefill/decode speed to stderr. */
#include "backend/backend.h"
#include "cli/cli.h"
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: 1bit run -m MODEL (-p TEXT | -f FILE | --ids 1,2,3) [options]\n\n"
            "  -p TEXT              prompt text (BOS is added when the model wants it)\n"
            "  -f FILE              prompt from a file\n"
            "  --ids 1,2,3          prompt as token ids (used as given)\n"
            "  --chat               wrap -p TEXT as one user turn of the model's chat template\n"
            "  -n N                 tokens to generate (default 128; -1: until end or context full)\n"
            "  --temp T             temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K --top-p P --min-p P\n"
            "  --repeat-penalty R --repeat-last-n N --frequency-penalty F --presence-penalty P\n"
            "  --seed S             sampling seed (default 0x1b17)\n"
            "  --stop TEXT          stop string (repeatable)\n"
            "  --special            parse special tokens (<|eot_id|>...) in the prompt text\n"
            "  --print-ids          print the generated ids on one line instead of text\n"
            "  --quiet              no speed report on stderr\n%s",
            ob_cli_model_help);
}

typedef struct run_out {
    bool print_ids;
} run_out;

static int on_text(void *user, const char *text, size_t len, int32_t id) {
    run_out *o = user;
    if (!o->print_ids && len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int ob_cmd_run(int argc, char **argv) {
    const char *cmd = "run", *prompt = NULL, *file = NULL, *ids_s = NULL;
    const char *stops[16];
    size_t n_stops = 0;
    long long n_predict = 128;
    bool special = false, quiet = false, as_chat = false;
    run_out ro = { false };
    ob_cli_model_opts mo = { 0 };
    ob_sampler_params sp = ob_sampler_defaults();
    for (int i = 1; i < argc; i++) {
        int r = ob_cli_model_arg(cmd, &mo, argc, argv, &i);
        if (!r) r = ob_cli_sampling_arg(cmd, &sp, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-p") && has) prompt = argv[++i];
        else if (!strcmp(a, "-f") && has) file = argv[++i];
        else if (!strcmp(a, "--ids") && has) ids_s = argv[++i];
        else if (!strcmp(a, "-n") && has) {
            if (!ob_cli_int(argv[++i], -1, 1 << 30, &n_predict)) return ob_cli_error(cmd, "-n must be -1 or a count");
        } else if (!strcmp(a, "--stop") && has) {
            if (n_stops == OB_ARRAY_LEN(stops)) return ob_cli_error(cmd, "too many --stop strings");
            stops[n_stops++] = argv[++i];
        } else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--chat")) as_chat = true;
        else if (!strcmp(a, "--print-ids")) ro.print_ids = true;
        else if (!strcmp(a, "--quiet")) quiet = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else return ob_cli_error(cmd, "unknown option '%s' (1bit run --help)", a);
    }
    if (!!prompt + !!file + !!ids_s != 1) return ob_cli_error(cmd, "give exactly one of -p TEXT, -f FILE or --ids");

    char *file_text = NULL;
    if (file) {
        size_t len;
        if (ob_read_file(file, &file_text, &len)) return ob_cli_fail(cmd);
        prompt = file_text;
    }
    ob_model *m = NULL;
    ob_backend *b = NULL;
    ob_session *s = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0, n_gen = 0;
    int rc = 1;
    if (ob_cli_open(cmd, &mo, 1, &m, &b)) goto done;
    if (ids_s) {
        if (ob_cli_parse_ids(ids_s, &ids, &n_ids) || !n_ids) { ob_cli_error(cmd, "--ids must be a list of token ids"); goto done; }
    } else {
        if (!m->tok) { ob_cli_error(cmd, "this model has no tokenizer: give --ids"); goto done; }
        ob_buf text = { 0 };
        const char *src = prompt;
        size_t len = strlen(prompt);
        if (as_chat) {
            ob_chat_msg msg = { "user", prompt };
            if (ob_chat_render(m->chat_template, &msg, 1, true, &text)) { ob_cli_fail(cmd); goto done; }
            src = text.data ? text.data : "";
            len = text.len;
            special = true;
        }
        ob_status st = ob_tokenize(m->tok, src, len, ob_tokenizer_add_bos(m->tok), special, &ids, &n_ids);
        ob_buf_free(&text);
        if (st) { ob_cli_fail(cmd); goto done; }
        if (!n_ids) { ob_cli_error(cmd, "the prompt is empty and the model adds no BOS"); goto done; }
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= m->hp.n_vocab) { ob_cli_error(cmd, "token id %d is out of range (vocabulary %d)", ids[i], m->hp.n_vocab); goto done; }
    if (ob_session_create(m, b, &s)) { ob_cli_fail(cmd); goto done; }
    ob_stop_list sl = { stops, n_stops };
    ob_gen_stats gs;
    if (ob_session_generate(s, ids, n_ids, (int)n_predict, &sp, &sl, on_text, &ro, &gen, &n_gen, &gs)) {
        fflush(stdout);
        ob_cli_fail(cmd);
        goto done;
    }
    if (ro.print_ids) {
        for (size_t i = 0; i < n_gen; i++) printf(i ? " %d" : "%d", gen[i]);
        printf("\n");
    } else if (!m->tok) {
        printf("\n");
    }
    fflush(stdout);
    if (!quiet) {
        int n_pre = gs.n_prompt - gs.n_cached;
        fprintf(stderr, "\n1bit run: prefill %d tokens in %.3f s (%.1f tok/s); decode %d tokens in %.3f s (%.2f tok/s); %s\n",
                n_pre, gs.prefill_s, gs.prefill_s > 0 ? n_pre / gs.prefill_s : 0.0, gs.n_gen, gs.decode_s,
                gs.decode_s > 0 && gs.n_gen > 1 ? (gs.n_gen - 1) / gs.decode_s : 0.0, gs.finish);
    }
    rc = 0;
done:
    free(file_text);
    free(ids);
    free(gen);
    ob_session_free(s);
    ob_backend_destroy(b);
    ob_model_free(m);
    return rc;
}
