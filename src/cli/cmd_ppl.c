/* 1bit ppl: perplexity over a text file by llama.cpp's method. The text is
 * tokenized once (with BOS), cut into windows of --ctx tokens whose first
 * token is replaced by BOS; each window is evaluated from an empty cache and
 * only its second half is scored (every scored token then has at least ctx/2
 * tokens of context). */
#include "backend/backend.h"
#include "cli/cli.h"
#include "runtime/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: 1bit ppl -m MODEL -f TEXT [--ctx 512] [--chunks N] [--json] [options]\n\n"
            "  -f FILE              text to score (e.g. wiki.test.raw)\n"
            "  --ctx N              window length in tokens (default 512)\n"
            "  --chunks N           score only the first N windows\n"
            "  --json               print the final figures as JSON on stdout\n%s",
            ob_cli_model_help);
}

/* -log softmax(logits)[target], computed in double. */
static double nll(const float *logits, int n, int target) {
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

int ob_cmd_ppl(int argc, char **argv) {
    const char *cmd = "ppl", *file = NULL;
    long long chunks_max = -1;
    bool json = false;
    ob_cli_model_opts mo = { 0 };
    mo.ctx = 512;
    for (int i = 1; i < argc; i++) {
        int r = ob_cli_model_arg(cmd, &mo, argc, argv, &i);
        if (r < 0) return 1;
        if (r) continue;
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "-f") && has) file = argv[++i];
        else if (!strcmp(argv[i], "--chunks") && has) {
            if (!ob_cli_int(argv[++i], 1, 1 << 30, &chunks_max)) return ob_cli_error(cmd, "--chunks must be a positive count");
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else return ob_cli_error(cmd, "unknown option '%s' (1bit ppl --help)", argv[i]);
    }
    if (!file) return ob_cli_error(cmd, "need -f TEXTFILE");
    if (mo.ctx < 4) return ob_cli_error(cmd, "--ctx must be at least 4");
    char *text = NULL;
    size_t len;
    if (ob_read_file(file, &text, &len)) return ob_cli_fail(cmd);
    ob_model *m = NULL;
    ob_backend *b = NULL;
    int32_t *ids = NULL, *pos = NULL;
    uint8_t *want = NULL;
    float *logits = NULL;
    size_t n_ids = 0;
    int rc = 1;
    if (ob_cli_open(cmd, &mo, 1, &m, &b)) goto done;
    if (!m->tok) { ob_cli_error(cmd, "this model has no tokenizer"); goto done; }
    int bos = ob_tokenizer_bos(m->tok);
    double t0 = ob_time_s();
    if (ob_tokenize(m->tok, text, len, bos >= 0, false, &ids, &n_ids)) { ob_cli_fail(cmd); goto done; }
    double t_tok = ob_time_s() - t0;
    int n_ctx = mo.ctx, first = n_ctx / 2, V = m->hp.n_vocab;
    long long n_chunks = (long long)(n_ids / (size_t)n_ctx);
    if (chunks_max > 0 && chunks_max < n_chunks) n_chunks = chunks_max;
    if (n_chunks < 1) { ob_cli_error(cmd, "the text has %zu tokens: fewer than one window of %d", n_ids, n_ctx); goto done; }
    fprintf(stderr, "1bit ppl: %zu tokens (tokenized in %.2f s), %lld windows of %d, scoring positions %d..%d of each\n",
            n_ids, t_tok, n_chunks, n_ctx, first + 1, n_ctx - 1);
    pos = malloc((size_t)n_ctx * sizeof *pos);
    want = malloc((size_t)n_ctx);
    logits = malloc((size_t)(n_ctx - first) * (size_t)V * sizeof *logits);
    if (!pos || !want || !logits) { ob_cli_error(cmd, "out of memory"); goto done; }
    for (int i = 0; i < n_ctx; i++) pos[i] = i, want[i] = i >= first && i < n_ctx - 1;
    double sum = 0, sum2 = 0;
    long long count = 0;
    t0 = ob_time_s();
    for (long long c = 0; c < n_chunks; c++) {
        int32_t *w = ids + c * n_ctx;
        int32_t saved = w[0];
        if (bos >= 0) w[0] = bos;
        b->ops->seq_truncate(b, 0, 0);
        ob_batch batch = { .n = n_ctx, .token = w, .pos = pos, .seq = NULL, .logits = want };
        ob_status st = b->ops->decode(b, &batch, logits);
        w[0] = saved;
        if (st) { ob_cli_fail(cmd); goto done; }
        for (int j = 0; j < n_ctx - 1 - first; j++) {
            double v = nll(logits + (size_t)j * V, V, w[first + 1 + j]);
            sum += v;
            sum2 += v * v;
            count++;
        }
        fprintf(stderr, "[%lld]%.4f%s", c + 1, exp(sum / count), c + 1 == n_chunks ? "\n" : ",");
        fflush(stderr);
    }
    double secs = ob_time_s() - t0, mean = sum / count, ppl = exp(mean);
    double var = count > 1 ? (sum2 / count - mean * mean) * count / (count - 1) : 0;
    double err = ppl * sqrt(var > 0 ? var / count : 0);
    fprintf(stderr, "Final estimate: PPL = %.4f +/- %.5f (%lld tokens scored, %.1f tok/s evaluated)\n", ppl, err, count,
            n_chunks * n_ctx / secs);
    if (json)
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, \"mean_nll\": %.8f, \"tokens_scored\": %lld, \"chunks\": %lld, "
               "\"ctx\": %d, \"tokens\": %zu, \"seconds\": %.3f}\n",
               ppl, err, mean, count, n_chunks, n_ctx, n_ids, secs);
    rc = 0;
done:
    free(text);
    free(ids);
    free(pos);
    free(want);
    free(logits);
    ob_backend_destroy(b);
    ob_model_free(m);
    return rc;
}
