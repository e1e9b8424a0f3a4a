/* libFuzzer target: ob_tokenize + decode with the LLaMA-3 tokenizer.
 *
 *   make fuzz && build-fuzz/fuzz/fuzz_tokenizer -max_total_time=60
 *
 * The tokenizer comes from $OB_FUZZ_TOKENIZER, else
 * ../shared/data/llama3-tokenizer/tokenizer.model (run from the repo root).
 * The first input byte picks the flags; the rest is the text. Without
 * special-token parsing, decoding must give the text back byte for byte, and
 * the streaming decoder must agree with the whole decode. */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ob_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("OB_FUZZ_TOKENIZER");
    if (!path) path = "../shared/data/llama3-tokenizer/tokenizer.model";
    if (ob_tokenizer_from_file(path, &tok)) {
        fprintf(stderr, "fuzz_tokenizer: %s (set OB_FUZZ_TOKENIZER)\n", ob_last_error());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool special = data[0] & 1, bos = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t *ids;
    size_t k;
    if (ob_tokenize(tok, text, n, bos, special, &ids, &k)) {
        fprintf(stderr, "ob_tokenize failed: %s\n", ob_last_error());
        abort();
    }
    ob_buf whole = { 0 }, streamed = { 0 };
    size_t skip = bos ? 1 : 0;
    if (ob_detokenize(tok, ids + skip, k - skip, &whole)) abort();
    if (!special && (whole.len != n || memcmp(whole.data, text, n) != 0)) {
        fprintf(stderr, "round trip differs\n");
        abort();
    }
    ob_detok_stream s;
    ob_detok_stream_init(&s, tok);
    for (size_t i = skip; i < k; i++)
        if (ob_detok_stream_push(&s, ids[i], &streamed)) abort();
    if (ob_detok_stream_flush(&s, &streamed)) abort();
    if (streamed.len != whole.len || memcmp(streamed.data, whole.data, whole.len) != 0) {
        fprintf(stderr, "stream decode differs\n");
        abort();
    }
    ob_buf_free(&whole);
    ob_buf_free(&streamed);
    free(ids);
    return 0;
}
