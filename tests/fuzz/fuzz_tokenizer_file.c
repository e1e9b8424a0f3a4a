/* libFuzzer target: the tokenizer file loaders (tokenizer.json, tiktoken
 * ranks files) on arbitrary bytes, as `1bit tokenize --tokenizer FILE` and
 * the Hugging Face importer read them.
 *
 *   make fuzz && build-fuzz/fuzz/fuzz_tokenizer_file -max_total_time=60
 *
 * The input becomes a file (an anonymous memfd, opened by its /proc path) and
 * goes through ob_tokenizer_from_file, which picks the loader by content
 * (GGUF and .h1b images are fuzz_gguf's and fuzz_h1b's). A load must end in
 * an error with a message, or in a tokenizer that encodes a fixed text with
 * ids in its vocabulary and decodes them again.
 *
 * Valid starting points (a loader rejects a vocabulary without all 256 byte
 * tokens, which mutations would never build): FUZZ_TOKENIZER_FILE_WRITE_SEEDS=DIR
 * makes the first run write a byte-level BPE tokenizer.json and a tiktoken
 * ranks file there (tests/fuzz/run does). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#include "fuzz_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* DIR/bpe.json: the 256 byte tokens in the GPT-2 alphabet, merges "a b" and
 * "Ġ a", a special <s>. DIR/ranks.model: the 256 bytes, then "ab", " a". */
static void write_seeds(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/bpe.json", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs("{\"added_tokens\":[{\"id\":258,\"content\":\"<s>\",\"special\":true}],"
          "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
          "\"model\":{\"type\":\"BPE\",\"vocab\":{", f);
    for (int b = 0; b < 256; b++) { /* the alphabet is printable: only " and \\ need escapes */
        char u[4];
        int n = ob_utf8_encode(ob_tok_byte_to_cp((uint8_t)b), u);
        fputc('"', f);
        if (b == '"' || b == '\\') fputc('\\', f);
        fwrite(u, 1, (size_t)n, f);
        fprintf(f, "\":%d,", b);
    }
    fputs("\"ab\":256,\"\\u0120a\":257,\"<s>\":258},\"merges\":[\"a b\",\"\\u0120 a\"]}}", f);
    CHECK(fclose(f) == 0);
    snprintf(p, sizeof p, "%s/ranks.model", dir);
    f = fopen(p, "w");
    CHECK(f);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; b++) fprintf(f, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    fputs("YWI= 256\nIGE= 257\n", f);
    CHECK(fclose(f) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("FUZZ_TOKENIZER_FILE_WRITE_SEEDS");
    if (dir && *dir) write_seeds(dir);
    return 0;
}

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("fuzz-tokenizer", 0);
        CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
    ob_tokenizer *tok = NULL;
    if (ob_tokenizer_from_file(path, &tok) != OB_OK) {
        CHECK(tok == NULL && *ob_last_error());
        return 0;
    }
    static const char text[] = "Hello, world! 123 <s> \xc3\xa9t\xc3\xa9 \xf0\x9f\x99\x82\n";
    const int32_t n_vocab = ob_tokenizer_n_vocab(tok);
    CHECK(n_vocab > 0);
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (ob_tokenize(tok, text, sizeof text - 1, special, special, &ids, &n) == OB_OK) {
            for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < n_vocab);
            ob_buf out = { 0 };
            CHECK(ob_detokenize(tok, ids, n, &out) == OB_OK); /* ids from ob_tokenize are all valid */
            ob_buf_free(&out);
        } else {
            CHECK(*ob_last_error());
        }
        free(ids);
    }
    ob_tokenizer_free(tok);
    return 0;
}
