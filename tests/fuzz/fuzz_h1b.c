/* libFuzzer target: the .h1b reader (ob_h1b_open_mem) and verifier.
 *
 * Mutated bytes almost never carry a matching head checksum, which would stop
 * every input at the first check, so the harness recomputes it into each
 * input before opening: mutations then reach the header, table and metadata
 * parsers. (The checksum's own rejection is covered by tests/unit/test_h1b.c.)
 *
 * A valid starting point: FUZZ_H1B_WRITE_SEED=corpus/seed.h1b makes the first
 * run write a small model with every tensor and metadata type there.
 *   make fuzz && mkdir -p corpus
 *   FUZZ_H1B_WRITE_SEED=corpus/seed.h1b build-fuzz/fuzz/fuzz_h1b -max_total_time=60 corpus */
#include "format/h1b.h"

#include <stdlib.h>
#include <string.h>

static void write_seed(const char *path) {
    ob_model_file mf = { 0 };
    ob_meta *m = &mf.meta;
    const char *toks[] = { "<s>", "a\0b", "" };
    uint32_t lens[] = { 3, 3, 0 };
    int32_t ids[] = { 1, -2 };
    float sc[] = { 0.5f, -1.0f };
    ob_meta_set_str(m, OB_KEY_ARCH, "bitnet");
    ob_meta_set_int(m, OB_KEY_EMBD, 128);
    ob_meta_set_float(m, OB_KEY_NORM_EPS, 1e-5);
    ob_meta_set_bool(m, OB_KEY_TIED, true);
    ob_meta_set_str_arr(m, OB_KEY_TOK_TOKENS, toks, lens, 3);
    ob_meta_set_i32_arr(m, OB_KEY_TOK_TYPES, ids, 2);
    ob_meta_set_f32_arr(m, OB_KEY_TOK_SCORES, sc, 2);
    static const struct { const char *name; ob_type type; int64_t ne[2]; } t[] = {
        { "a.weight", OB_TYPE_T2, { 130, 2 } }, { "a.scale", OB_TYPE_F32, { 1, 1 } },
        { "b.weight", OB_TYPE_Q8_0, { 32, 2 } }, { "c.weight", OB_TYPE_I8, { 3, 2 } },
        { "c.scale", OB_TYPE_F32, { 2, 1 } },    { "d.weight", OB_TYPE_F16, { 5, 1 } },
        { "e.weight", OB_TYPE_BF16, { 4, 1 } },  { "f.ids", OB_TYPE_I32, { 2, 2 } },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        void *data;
        if (ob_model_file_new_tensor(&mf, t[i].name, t[i].type, 2, t[i].ne, &data) == OB_OK && t[i].type == OB_TYPE_F32)
            for (int64_t k = 0; k < t[i].ne[0]; k++) ((float *)data)[k] = 0.25f;
    }
    ob_h1b_write(&mf, path);
    ob_model_file_close(&mf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *seed = getenv("FUZZ_H1B_WRITE_SEED");
    if (seed && *seed) write_seed(seed);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *img = malloc(size ? size : 1);
    if (!img) return 0;
    if (size) memcpy(img, data, size);
    uint64_t sum;
    if (ob_h1b_head_checksum(img, size, &sum))
        for (int i = 0; i < 8; i++) img[96 + i] = (uint8_t)(sum >> 8 * i);
    ob_model_file mf;
    if (ob_h1b_open_mem(img, size, "fuzz.h1b", &mf) == OB_OK) {
        /* Touch everything the reader vouched for, so ASan sees any bad bound. */
        volatile uint8_t acc = 0;
        for (size_t i = 0; i < mf.n_tensors; i++)
            for (uint64_t k = 0; k < mf.tensors[i].nbytes; k++) acc ^= ((const uint8_t *)mf.tensors[i].data)[k];
        for (size_t i = 0; i < mf.meta.n; i++) {
            const ob_meta_entry *e = &mf.meta.e[i];
            if (e->type == OB_META_STR) acc ^= (uint8_t)e->str[e->str_len];
            if (e->type == OB_META_STR_ARR)
                for (uint64_t k = 0; k < e->count; k++) acc ^= (uint8_t)e->strs[k][e->str_lens[k]];
        }
        (void)acc;
        ob_h1b_verify(&mf);
        ob_model_file_close(&mf);
    }
    free(img);
    return 0;
}
