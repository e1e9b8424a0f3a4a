/* SentencePiece BPE (llama2 vocabularies) on stories260K's 512-token
 * vocabulary: ids against an independent brute-force version of llama2.c's
 * encoder that reads tok512.bin directly, the same ids from
 * stories260K.gguf, decoding (llama2.c's expected output), streaming. */
#include "testutil.h"

#include "tokenizer/tokenizer.h"

#define S260 "data/stories260K/"
#define N_TOK 512

/* ---- tok512.bin and a brute-force llama2.c encoder ---------------------------
 * Format: int32 max_token_length, then per token: f32 score, int32 len, bytes.
 * Spaces are plain ' ' there, BOS/EOS are "\n<s>\n" / "\n</s>\n", ids 3..258
 * are the byte tokens <0x00>..<0xFF>. */
typedef struct ref_vocab {
    char *str[N_TOK];
    float score[N_TOK];
    int sorted[N_TOK]; /* ids sorted by string, for lookup by binary search */
} ref_vocab;
static ref_vocab ref;
static bool ref_loaded;
static ob_tokenizer *tok512;  /* built by us from tok512.bin's pieces and scores */

static int cmp_ids(const void *a, const void *b) {
    return strcmp(ref.str[*(const int *)a], ref.str[*(const int *)b]);
}

static int ref_lookup(const char *s) {
    int lo = 0, hi = N_TOK - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(s, ref.str[ref.sorted[mid]]);
        if (c == 0) return ref.sorted[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

/* llama2.c: dummy-prefix " ", one token per UTF-8 character or its bytes
 * (id = byte + 3), then repeatedly merge the pair whose concatenation is the
 * best-scoring vocabulary string (the first such pair on ties). */
static size_t ref_encode(const char *text, int *out) {
    size_t n = 0, len = strlen(text);
    char buf[64];
    if (len) out[n++] = ref_lookup(" ");
    for (size_t i = 0; i < len;) {
        size_t l = 1;
        while (i + l < len && l < 4 && ((unsigned char)text[i + l] & 0xC0) == 0x80) l++;
        memcpy(buf, text + i, l);
        buf[l] = 0;
        int id = ref_lookup(buf);
        if (id >= 0) out[n++] = id;
        else
            for (size_t k = 0; k < l; k++) out[n++] = (unsigned char)text[i + k] + 3;
        i += l;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1;
        size_t best_at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            snprintf(buf, sizeof buf, "%s%s", ref.str[out[i]], ref.str[out[i + 1]]);
            int id = ref_lookup(buf);
            if (id >= 0 && ref.score[id] > best) { best = ref.score[id]; best_id = id; best_at = i; }
        }
        if (best_id < 0) break;
        out[best_at] = best_id;
        memmove(out + best_at + 1, out + best_at + 2, (n - best_at - 2) * sizeof *out);
        n--;
    }
    return n;
}

/* Our tokenizer from tok512.bin, in GGUF conventions: "▁" for space,
 * <s>/</s>, token types. */
static ob_tokenizer *build_from_ref(void) {
    ob_meta m = { 0 };
    char *pieces[N_TOK];
    int32_t types[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        const char *s = ref.str[i];
        char *p = malloc(strlen(s) * 3 + 1), *q = p;
        if (i == 1) s = "<s>";
        if (i == 2) s = "</s>";
        for (; *s; s++) {
            if (*s == ' ') { memcpy(q, "\xe2\x96\x81", 3); q += 3; }
            else *q++ = *s;
        }
        *q = 0;
        pieces[i] = p;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    ob_meta_set_str(&m, OB_KEY_TOK_MODEL, "llama");
    ob_meta_set_str_arr(&m, OB_KEY_TOK_TOKENS, (const char *const *)pieces, NULL, N_TOK);
    ob_meta_set_f32_arr(&m, OB_KEY_TOK_SCORES, ref.score, N_TOK);
    ob_meta_set_i32_arr(&m, OB_KEY_TOK_TYPES, types, N_TOK);
    ob_meta_set_int(&m, OB_KEY_BOS, 1);
    ob_meta_set_int(&m, OB_KEY_EOS, 2);
    ob_tokenizer *t = NULL;
    if (ob_tokenizer_from_meta(&m, &t)) fprintf(stderr, "from_meta: %s\n", ob_last_error());
    for (int i = 0; i < N_TOK; i++) free(pieces[i]);
    ob_meta_free(&m);
    return t;
}

static int setup(void **state) {
    (void)state;
    const char *p = ob_test_shared_path(S260 "tok512.bin");
    if (!p) return 0;
    char *data;
    size_t size;
    if (ob_read_file(p, &data, &size)) return 0;
    size_t off = 4;
    for (int i = 0; i < N_TOK; i++) {
        if (off + 8 > size) break;
        uint32_t len;
        memcpy(&ref.score[i], data + off, 4);
        memcpy(&len, data + off + 4, 4);
        off += 8;
        if (len > 60 || off + len > size) break;
        ref.str[i] = ob_strndup(data + off, len);
        ref.sorted[i] = i;
        off += len;
        ref_loaded = i == N_TOK - 1;
    }
    free(data);
    if (ref_loaded) {
        qsort(ref.sorted, N_TOK, sizeof *ref.sorted, cmp_ids);
        tok512 = build_from_ref();
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < N_TOK; i++) free(ref.str[i]);
    ob_tokenizer_free(tok512);
    return 0;
}

#define REQUIRE_TOK512()                          \
    do {                                          \
        char path_[4096];                         \
        OB_REQUIRE_SHARED(path_, S260 "tok512.bin"); \
        assert_true(ref_loaded);                  \
        assert_non_null(tok512);                  \
    } while (0)

/* Random strings from story words, characters the vocabulary lacks (byte
 * fallback) and odd spacing. */
static size_t random_text(uint64_t *seed, char *buf, size_t cap) {
    static const char *const atoms[] = {
        "Once", " upon", " a", " time", " Lily", " and", " Ben", " played", " happy", " the", " dog", " said",
        "a", "b", "e", "k", "q", "x", "z", "T", "W", " ", "  ", ",", ".", "!", "?", "\"", "'", "\n", "1", "42",
        "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\t", "-", "ing", "ed", "s",
    };
    size_t n = 0, want = ob_test_rand(seed) % (cap / 2);
    while (n < want) {
        const char *a = atoms[ob_test_rand(seed) % OB_ARRAY_LEN(atoms)];
        size_t l = strlen(a);
        if (n + l >= cap) break;
        memcpy(buf + n, a, l);
        n += l;
    }
    buf[n] = 0;
    return n;
}

static void check_against_ref(const ob_tokenizer *t, const char *text) {
    int want[512];
    size_t nw = ref_encode(text, want);
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(t, text, strlen(text), false, false, &ids, &k), OB_OK);
    bool same = k == nw;
    for (size_t i = 0; same && i < k; i++) same = ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "\"%s\":\n  ours", text);
        for (size_t i = 0; i < k; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n  ref ");
        for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
    /* Decoding gives the text back (the dummy-prefix space is dropped). */
    ob_buf out = { 0 };
    assert_int_equal(ob_detokenize(t, ids, k, &out), OB_OK);
    assert_int_equal(out.len, strlen(text));
    assert_memory_equal(out.data, text, out.len);
    ob_buf_free(&out);
    free(ids);
}

static const char *const prompts[] = {
    "Once upon a time", "Once upon a time, there was a little girl named Lily.", "", " ", "  leading spaces",
    "trailing space ", "Lily's mom said, \"Lily, let's go to the park.\"", "\n", "One day\n\nthe end",
    "emoji \xf0\x9f\x98\x80 and \xe4\xb8\xad\xe6\x96\x87 use byte fallback", "Tom and Sue were best friends.",
};

static void test_prompts_against_llama2c(void **state) {
    (void)state;
    REQUIRE_TOK512();
    for (size_t i = 0; i < OB_ARRAY_LEN(prompts); i++) check_against_ref(tok512, prompts[i]);
    /* A known answer from llama2.c's tokenizer on this vocabulary. */
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(tok512, "Once upon a time", 16, true, false, &ids, &k), OB_OK);
    assert_int_equal(k, 5);
    assert_int_equal(ids[0], 1);
    int want[64];
    assert_int_equal(ref_encode("Once upon a time", want), 4);
    assert_memory_equal(ids + 1, want, 4 * sizeof *ids);
    free(ids);
}

static void test_random_against_llama2c(void **state) {
    (void)state;
    REQUIRE_TOK512();
    uint64_t seed = ob_test_seed();
    char buf[200];
    for (int i = 0; i < 3000; i++) {
        random_text(&seed, buf, sizeof buf);
        check_against_ref(tok512, buf);
    }
}

/* stories260K.gguf's own vocabulary (read by the GGUF importer) gives the same ids. */
static void test_gguf_vocab(void **state) {
    (void)state;
    REQUIRE_TOK512();
    char path[4096];
    OB_REQUIRE_SHARED(path, S260 "stories260K.gguf");
    ob_tokenizer *g = NULL;
    if (ob_tokenizer_from_file(path, &g)) fail_msg("%s: %s", path, ob_last_error());
    assert_int_equal(ob_tokenizer_n_vocab(g), N_TOK);
    assert_int_equal(ob_tokenizer_bos(g), 1);
    assert_int_equal(ob_tokenizer_eos(g), 2);
    assert_true(ob_tokenizer_add_bos(g));
    uint64_t seed = ob_test_seed();
    char buf[200];
    for (int i = 0; i < 500; i++) {
        if (i < (int)OB_ARRAY_LEN(prompts)) snprintf(buf, sizeof buf, "%s", prompts[i]);
        else random_text(&seed, buf, sizeof buf);
        check_against_ref(g, buf);
    }
    /* And its metadata rebuilds it exactly. */
    ob_meta m = { 0 };
    ob_tokenizer *g2 = NULL;
    assert_int_equal(ob_tokenizer_to_meta(g, &m), OB_OK);
    assert_string_equal(ob_meta_str(&m, OB_KEY_TOK_MODEL, ""), "llama");
    assert_int_equal(ob_tokenizer_from_meta(&m, &g2), OB_OK);
    for (int i = 0; i < 200; i++) {
        random_text(&seed, buf, sizeof buf);
        check_against_ref(g2, buf);
    }
    ob_meta_free(&m);
    ob_tokenizer_free(g2);
    ob_tokenizer_free(g);
}

/* llama2.c prints the text after BOS without the dummy-prefix space: the
 * model's expected output decodes back from [BOS] + its ids exactly. */
static void test_decode_expected_output(void **state) {
    (void)state;
    REQUIRE_TOK512();
    char path[4096];
    OB_REQUIRE_SHARED(path, S260 "expected-run-t0-n200.txt");
    char *text;
    size_t n;
    assert_int_equal(ob_read_file(path, &text, &n), OB_OK);
    assert_true(n > 16 && memcmp(text, "Once upon a time", 16) == 0);
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(tok512, text, n, true, false, &ids, &k), OB_OK);
    const char *piece;
    assert_int_equal(ob_token_bytes(tok512, ids[1], &piece), 5);
    assert_memory_equal(piece, " Once", 5); /* the dummy prefix is in the token */
    ob_buf out = { 0 }, streamed = { 0 };
    assert_int_equal(ob_detokenize(tok512, ids, k, &out), OB_OK);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, text, n);
    ob_detok_stream s;
    ob_detok_stream_init(&s, tok512);
    for (size_t i = 0; i < k; i++) assert_int_equal(ob_detok_stream_push(&s, ids[i], &streamed), OB_OK);
    assert_int_equal(ob_detok_stream_push(&s, 2, &streamed), OB_OK); /* EOS: no text */
    assert_int_equal(ob_detok_stream_flush(&s, &streamed), OB_OK);
    assert_int_equal(streamed.len, n);
    assert_memory_equal(streamed.data, text, n);
    /* A stream that continues shown text keeps the space of its first piece. */
    streamed.len = 0;
    ob_detok_stream_init(&s, tok512);
    s.started = true;
    assert_int_equal(ob_detok_stream_push(&s, ids[1], &streamed), OB_OK);
    assert_int_equal(streamed.len, 5);
    assert_memory_equal(streamed.data, " Once", 5);
    /* The same, told by the ids before it: BOS alone gave no text, BOS + "Once" did. */
    streamed.len = 0;
    ob_detok_stream_init(&s, tok512);
    ob_detok_stream_after(&s, ids, 1);
    assert_false(s.started);
    ob_detok_stream_after(&s, ids, 2);
    assert_true(s.started);
    assert_int_equal(ob_detok_stream_push(&s, ids[2], &streamed), OB_OK);
    assert_true(streamed.len > 1 && streamed.data[0] == ' ');
    ob_buf_free(&out);
    ob_buf_free(&streamed);
    free(ids);
    free(text);
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t j = 1; j < l; j++)
            if (((unsigned char)s[i + j] >> 6) != 2) return false;
        i += l;
    }
    return true;
}

static void test_byte_fallback_stream(void **state) {
    (void)state;
    REQUIRE_TOK512();
    const char *text = "Hi \xf0\x9f\x98\x80\xe4\xb8\xad!";
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(tok512, text, strlen(text), false, false, &ids, &k), OB_OK);
    ob_detok_stream s;
    ob_detok_stream_init(&s, tok512);
    ob_buf out = { 0 };
    size_t pushes_with_nothing = 0;
    for (size_t i = 0; i < k; i++) {
        size_t before = out.len;
        assert_int_equal(ob_detok_stream_push(&s, ids[i], &out), OB_OK);
        pushes_with_nothing += out.len == before;
        assert_true(valid_utf8(out.data + before, out.len - before)); /* never a partial character */
    }
    assert_true(pushes_with_nothing >= 5); /* 3 of the emoji's 4 bytes, 2 of the CJK's 3 */
    assert_int_equal(ob_detok_stream_flush(&s, &out), OB_OK);
    assert_int_equal(out.len, strlen(text));
    assert_memory_equal(out.data, text, out.len);
    ob_buf_free(&out);
    free(ids);
}

static void test_spm_special(void **state) {
    (void)state;
    REQUIRE_TOK512();
    int32_t *ids;
    size_t k;
    assert_int_equal(ob_tokenize(tok512, "<s>Hi</s>", 9, false, true, &ids, &k), OB_OK);
    assert_true(k >= 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[k - 1], 2);
    free(ids);
    assert_int_equal(ob_tokenize(tok512, "<s>Hi</s>", 9, false, false, &ids, &k), OB_OK);
    for (size_t i = 0; i < k; i++) assert_true(ids[i] > 2);
    free(ids);
    /* Invalid UTF-8 becomes byte tokens and decodes to the same bytes. */
    const char bad[] = "a\xff\xe4\xb8 b\x80";
    assert_int_equal(ob_tokenize(tok512, bad, sizeof bad - 1, false, false, &ids, &k), OB_OK);
    ob_buf out = { 0 };
    assert_int_equal(ob_detokenize(tok512, ids, k, &out), OB_OK);
    assert_int_equal(out.len, sizeof bad - 1);
    assert_memory_equal(out.data, bad, out.len);
    ob_buf_free(&out);
    free(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompts_against_llama2c),
        cmocka_unit_test(test_random_against_llama2c),
        cmocka_unit_test(test_gguf_vocab),
        cmocka_unit_test(test_decode_expected_output),
        cmocka_unit_test(test_byte_fallback_stream),
        cmocka_unit_test(test_spm_special),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
