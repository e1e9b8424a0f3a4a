/* 1bit tokenize: text to token ids.
 *
 *   1bit tokenize (-m MODEL | --tokenizer FILE) (-p TEXT | -f FILE) [--bos] [--special] [--pieces]
 *
 * Prints the ids space-separated on one line, or with --pieces one
 * "id<TAB>text" line per token, the text escaped as in C. */
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: 1bit tokenize (-m MODEL | --tokenizer FILE) (-p TEXT | -f FILE) [options]\n"
    "  -m MODEL            .h1b, .gguf or Hugging Face directory (its tokenizer)\n"
    "  --tokenizer FILE    tokenizer.json, a tiktoken tokenizer.model, .gguf or .h1b\n"
    "  -p TEXT             the text\n"
    "  -f FILE             read the text from FILE (bytes as they are)\n"
    "  --bos               prepend BOS\n"
    "  --special           match special tokens such as <|eot_id|> in the text\n"
    "  --pieces            print \"id<TAB>text\" per token instead of one line of ids\n";

/* Token text with C escapes, so every byte is visible on one line. */
static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
        else putchar(c);
    }
}

int ob_cmd_tokenize(int argc, char **argv) {
    const char *cmd = argv[0], *model = NULL, *tok_path = NULL, *text = NULL, *file = NULL;
    bool bos = false, special = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        else if (!strcmp(a, "--bos")) bos = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--pieces")) pieces = true;
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_value) model = argv[++i];
        else if (!strcmp(a, "--tokenizer") && has_value) tok_path = argv[++i];
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_value) text = argv[++i];
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_value) file = argv[++i];
        else if (a[0] == '-' && !has_value && strcmp(a, "-")) return ob_cli_error(cmd, "option %s needs a value (or is unknown); see --help", a);
        else return ob_cli_error(cmd, "unknown argument '%s'; see --help", a);
    }
    if (!model == !tok_path) return ob_cli_error(cmd, "give exactly one of -m MODEL or --tokenizer FILE");
    if (!text == !file) return ob_cli_error(cmd, "give exactly one of -p TEXT or -f FILE");

    char *data = NULL;
    size_t len;
    if (file) {
        if (ob_read_file(file, &data, &len)) return ob_cli_fail(cmd);
    } else {
        len = strlen(text);
    }
    ob_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    if (ob_tokenizer_from_file(model ? model : tok_path, &tok) ||
        ob_tokenize(tok, file ? data : text, len, bos, special, &ids, &n)) {
        rc = ob_cli_fail(cmd);
    } else if (pieces) {
        for (size_t i = 0; i < n; i++) {
            const char *b;
            size_t bl = ob_token_bytes(tok, ids[i], &b);
            printf("%d\t", (int)ids[i]);
            print_escaped(b, bl);
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
    }
    if (fflush(stdout) != 0 && !rc) rc = ob_cli_error(cmd, "writing the output failed");
    free(ids);
    free(data);
    ob_tokenizer_free(tok);
    return rc;
}
