/* 1bit: entry point and the subcommand table. */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    ob_cmd_fn fn;
    const char *help;
} commands[] = {
    { "run",        ob_cmd_run,        "generate text from a prompt" },
    { "chat",       ob_cmd_chat,       "interactive multi-turn chat with the model's template" },
    { "serve",      ob_cmd_serve,      "OpenAI-compatible HTTP server" },
    { "bench",      ob_cmd_bench,      "prefill/decode speed against the machine's bandwidth" },
    { "ppl",        ob_cmd_ppl,        "perplexity over a text file (llama.cpp's method)" },
    { "logits",     ob_cmd_logits,     "write float32 logits for token ids" },
    { "convert",    ob_cmd_convert,    "HF directory or GGUF to .h1b" },
    { "info",       ob_cmd_info,       "architecture, dims, tensor types and sizes" },
    { "tokenize",   ob_cmd_tokenize,   "text to token ids" },
    { "detokenize", ob_cmd_detokenize, "token ids to text" },
};

static void usage(FILE *fp) {
    fprintf(fp, "1bit %s: inference for ternary (1.58-bit) language models\n\n"
                "usage: 1bit <command> [options]   (1bit <command> --help for its options)\n\n",
            OB_VERSION_STRING);
    for (size_t i = 0; i < OB_ARRAY_LEN(commands); i++)
        fprintf(fp, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(fp, "\nEvery -m MODEL accepts a .h1b file, a .gguf file or a Hugging Face model directory.\n");
}

int ob_cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "1bit %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int ob_cli_fail(const char *cmd) { return ob_cli_error(cmd, "%s", ob_last_error()); }

bool ob_cli_int(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool ob_cli_float(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

int ob_cli_parse_ids(const char *s, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return -1;
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) { free(v); return -1; }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
        if (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n') {
            free(v);
            return -1;
        }
    }
    *ids = v;
    *n = k;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("1bit %s\n", OB_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < OB_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "1bit: unknown command '%s' (1bit --help lists them)\n", argv[1]);
    return 1;
}
