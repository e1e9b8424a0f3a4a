/* 1bit logits: float32 little-endian logits [tokens x vocab] for given ids,
 * every position from an empty cache. */
#include "backend/backend.h"
#include "cli/cli.h"
#include "runtime/generate.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp, "usage: 1bit logits -m MODEL --ids 1,2,3 -o OUT.f32 [options]\n\n"
                "Writes float32 little-endian logits, [tokens x vocab], for every position.\n\n%s",
            ob_cli_model_help);
}

int ob_cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *ids_s = NULL, *out_path = NULL;
    ob_cli_model_opts mo = { 0 };
    for (int i = 1; i < argc; i++) {
        int r = ob_cli_model_arg(cmd, &mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_s = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out_path = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else return ob_cli_error(cmd, "unknown option '%s' (1bit logits --help)", argv[i]);
    }
    if (!ids_s || !out_path) return ob_cli_error(cmd, "need --ids and -o (1bit logits --help)");
    int32_t *ids;
    size_t n;
    if (ob_cli_parse_ids(ids_s, &ids, &n) || n == 0) return ob_cli_error(cmd, "--ids must be a list of token ids");
    ob_model *m;
    ob_backend *b;
    if (ob_cli_open(cmd, &mo, 1, &m, &b)) { free(ids); return 1; }
    int rc = 0;
    size_t V = (size_t)m->hp.n_vocab;
    float *logits = malloc(n * V * sizeof *logits);
    ob_session *s = NULL;
    if (!logits || ob_session_create(m, b, &s) || ob_session_logits(s, ids, n, logits)) {
        rc = logits ? ob_cli_fail(cmd) : ob_cli_error(cmd, "out of memory");
    } else {
        FILE *fp = fopen(out_path, "wb");
        if (!fp) rc = ob_cli_error(cmd, "%s: cannot write", out_path);
        else {
            /* float32 little-endian: the host order on every platform we build for */
            if (fwrite(logits, sizeof *logits, n * V, fp) != n * V) rc = ob_cli_error(cmd, "%s: write failed", out_path);
            if (fclose(fp) && !rc) rc = ob_cli_error(cmd, "%s: write failed", out_path);
        }
    }
    free(logits);
    free(ids);
    ob_session_free(s);
    ob_backend_destroy(b);
    ob_model_free(m);
    return rc;
}
