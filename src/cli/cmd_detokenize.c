/* 1bit detokenize: token ids to text.
 *
 *   1bit detokenize (-m MODEL | --tokenizer FILE) --ids 1,2,3
 *
 * Writes exactly the decoded bytes (no newline is added), so that
 * detokenize(tokenize(x)) reproduces x byte for byte. */
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: 1bit detokenize (-m MODEL | --tokenizer FILE) --ids 1,2,3\n"
    "  -m MODEL            .h1b, .gguf or Hugging Face directory (its tokenizer)\n"
    "  --tokenizer FILE    tokenizer.json, a tiktoken tokenizer.model, .gguf or .h1b\n"
    "  --ids LIST          token ids separated by commas or spaces\n"
    "Prints the text exactly, without an added newline.\n";

int ob_cmd_detokenize(int argc, char **argv) {
    const char *cmd = argv[0], *model = NULL, *tok_path = NULL, *list = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_value) model = argv[++i];
        else if (!strcmp(a, "--tokenizer") && has_value) tok_path = argv[++i];
        else if (!strcmp(a, "--ids") && has_value) list = argv[++i];
        else return ob_cli_error(cmd, "unknown argument '%s' (or missing value); see --help", a);
    }
    if (!model == !tok_path) return ob_cli_error(cmd, "give exactly one of -m MODEL or --tokenizer FILE");
    if (!list) return ob_cli_error(cmd, "--ids LIST is required");
    int32_t *ids;
    size_t n;
    if (ob_cli_parse_ids(list, &ids, &n)) return ob_cli_error(cmd, "--ids: expected non-negative integers separated by commas or spaces");
    ob_tokenizer *tok = NULL;
    ob_buf text = { 0 };
    int rc = 0;
    if (ob_tokenizer_from_file(model ? model : tok_path, &tok) || ob_detokenize(tok, ids, n, &text)) rc = ob_cli_fail(cmd);
    else if (text.len && fwrite(text.data, 1, text.len, stdout) != text.len) rc = ob_cli_error(cmd, "writing the output failed");
    if (!rc && fflush(stdout) != 0) rc = ob_cli_error(cmd, "writing the output failed");
    ob_buf_free(&text);
    free(ids);
    ob_tokenizer_free(tok);
    return rc;
}
