/* Tokenizer speed: encodes a text file on one thread and reports the best and
 * median of several runs, in MB/s of input and tokens/s.
 *
 *   build/bench/bench_tokenizer [TOKENIZER] [TEXT] [RUNS]
 *
 * Defaults: ../shared/data/llama3-tokenizer/tokenizer.json and
 * ../shared/data/war-and-peace/war-and-peace.txt, 7 runs. Also times
 * loading the tokenizer and decoding the ids back (checked to round-trip). */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *tok_path = argc > 1 ? argv[1] : "../shared/data/llama3-tokenizer/tokenizer.json";
    const char *text_path = argc > 2 ? argv[2] : "../shared/data/war-and-peace/war-and-peace.txt";
    int runs = argc > 3 ? atoi(argv[3]) : 7;
    if (runs < 1 || runs > 1000) runs = 7;

    double t0 = ob_time_s();
    ob_tokenizer *tok;
    if (ob_tokenizer_from_file(tok_path, &tok)) {
        fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
        return 1;
    }
    double load_s = ob_time_s() - t0;
    char *text;
    size_t len;
    if (ob_read_file(text_path, &text, &len)) {
        fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
        ob_tokenizer_free(tok);
        return 1;
    }
    double *enc = malloc((size_t)runs * sizeof *enc), *dec = malloc((size_t)runs * sizeof *dec);
    size_t n_ids = 0;
    int rc = 0;
    for (int r = 0; r < runs && !rc; r++) {
        int32_t *ids;
        t0 = ob_time_s();
        if (ob_tokenize(tok, text, len, false, false, &ids, &n_ids)) {
            fprintf(stderr, "bench_tokenizer: %s\n", ob_last_error());
            rc = 1;
            break;
        }
        enc[r] = ob_time_s() - t0;
        ob_buf out = { 0 };
        t0 = ob_time_s();
        ob_status st = ob_detokenize(tok, ids, n_ids, &out);
        dec[r] = ob_time_s() - t0;
        if (st || out.len != len || memcmp(out.data, text, len) != 0) {
            fprintf(stderr, "bench_tokenizer: the text does not round-trip\n");
            rc = 1;
        }
        ob_buf_free(&out);
        free(ids);
    }
    if (!rc) {
        qsort(enc, (size_t)runs, sizeof *enc, cmp_double);
        qsort(dec, (size_t)runs, sizeof *dec, cmp_double);
        double mb = (double)len / 1e6;
        printf("tokenizer %s\ntext      %s: %zu bytes, %zu tokens (%.2f bytes/token)\n", tok_path, text_path, len,
               n_ids, (double)len / (double)(n_ids ? n_ids : 1));
        printf("load      %.3f s\n", load_s);
        printf("encode    best %.1f MB/s %.0f tok/s, median %.1f MB/s %.0f tok/s (%d runs, 1 thread)\n",
               mb / enc[0], (double)n_ids / enc[0], mb / enc[runs / 2], (double)n_ids / enc[runs / 2], runs);
        printf("decode    best %.1f MB/s, median %.1f MB/s\n", mb / dec[0], mb / dec[runs / 2]);
    }
    free(enc);
    free(dec);
    free(text);
    ob_tokenizer_free(tok);
    return rc;
}
