/* LLaMA-3 byte-level BPE: llama.cpp's 46 vectors (ids from HF tokenizers)
 * from tokenizer.json, tokenizer.model and our own metadata; exact round
 * trips over two corpora; special tokens; invalid UTF-8; streaming decode;
 * chat templates; loader errors. */
#include "testutil.h"

#include "tokenizer/tokenizer.h"

#define LLAMA3 "data/llama3-tokenizer/"
#define EOT_ID 128009
#define BOS_ID 128000

/* Loaded once: tokenizer.json, tokenizer.model, and the tokenizer rebuilt
 * from tokenizer.json's canonical metadata (what a .h1b stores). */
static ob_tokenizer *tok_json, *tok_ranks, *tok_meta;

static ob_tokenizer *load(const char *rel) {
    const char *p = ob_test_shared_path(rel);
    ob_tokenizer *t = NULL;
    if (p && ob_tokenizer_from_file(p, &t) != OB_OK) {
        fprintf(stderr, "loading %s: %s\n", p, ob_last_error());
        return NULL;
    }
    return t;
}

static int setup(void **state) {
    (void)state;
    tok_json = load(LLAMA3 "tokenizer.json");
    tok_ranks = load(LLAMA3 "tokenizer.model");
    if (tok_json) {
        ob_meta m = { 0 };
        if (ob_tokenizer_to_meta(tok_json, &m) || ob_tokenizer_from_meta(&m, &tok_meta))
            fprintf(stderr, "rebuilding from metadata: %s\n", ob_last_error());
        ob_meta_free(&m);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ob_tokenizer_free(tok_json);
    ob_tokenizer_free(tok_ranks);
    ob_tokenizer_free(tok_meta);
    return 0;
}

/* Skips (or fails in CI) when ../shared is absent; fails when it is there
 * but the tokenizers did not load. */
#define REQUIRE_TOKENIZERS()                                  \
    do {                                                      \
        char path_[4096];                                        \
        OB_REQUIRE_SHARED(path_, LLAMA3 "tokenizer.json");       \
        OB_REQUIRE_SHARED(path_, LLAMA3 "tokenizer.model");      \
        assert_non_null(tok_json);                            \
        assert_non_null(tok_ranks);                           \
        assert_non_null(tok_meta);                            \
    } while (0)

static void encode(const ob_tokenizer *t, const char *s, size_t n, bool bos, bool special, int32_t **ids, size_t *k) {
    ob_status st = ob_tokenize(t, s, n, bos, special, ids, k);
    if (st) fail_msg("ob_tokenize: %s", ob_last_error());
}

static void assert_round_trip(const ob_tokenizer *t, const char *s, size_t n) {
    int32_t *ids;
    size_t k;
    encode(t, s, n, false, false, &ids, &k);
    ob_buf out = { 0 };
    assert_int_equal(ob_detokenize(t, ids, k, &out), OB_OK);
    assert_int_equal(out.len, n);
    if (n) assert_memory_equal(out.data, s, n);
    ob_buf_free(&out);
    free(ids);
}

static void read_shared(const char *rel, char **data, size_t *n) {
    char p[4096];
    OB_REQUIRE_SHARED(p, rel);
    assert_int_equal(ob_read_file(p, data, n), OB_OK);
}

static void test_llama_cpp_vectors(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    char *inp, *outp;
    size_t ni, no;
    read_shared(LLAMA3 "ggml-vocab-llama-bpe.gguf.inp", &inp, &ni);
    read_shared(LLAMA3 "ggml-vocab-llama-bpe.gguf.out", &outp, &no);
    const char *sep = "\n__ggml_vocab_test__\n";
    const char *c = inp, *line = outp;
    int cases = 0;
    for (;;) {
        const char *end = strstr(c, sep);
        if (!end) break; /* the file ends with a separator */
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        /* Expected ids, from the .out line. */
        int32_t want[256];
        size_t nw = 0;
        for (const char *p = line; p < eol;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            assert_true(nw < 256);
            want[nw++] = (int32_t)v;
            p = e;
        }
        const ob_tokenizer *toks[] = { tok_json, tok_ranks, tok_meta };
        for (size_t t = 0; t < 3; t++) {
            int32_t *ids;
            size_t k;
            encode(toks[t], c, (size_t)(end - c), false, false, &ids, &k);
            if (k != nw || (k && memcmp(ids, want, k * sizeof *ids) != 0)) {
                fprintf(stderr, "case %d (tokenizer %zu) \"%.*s\": got", cases, t, (int)(end - c), c);
                for (size_t i = 0; i < k; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n");
                fail();
            }
            free(ids);
            assert_round_trip(toks[t], c, (size_t)(end - c));
        }
        cases++;
        c = end + strlen(sep);
        line = eol + 1;
    }
    assert_int_equal(cases, 46);
    assert_true(*line == 0); /* every .out line was used */
    free(inp);
    free(outp);
}

static void test_known_ids(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    /* From the npm llama3-tokenizer-js test suite (reference notes section 5). */
    static const struct { const char *text; int32_t ids[8]; size_t n; } cases[] = {
        { "grabbed", { 59312, 2788 }, 2 },
        { " grabbed", { 30418 }, 1 },
        { " \n", { 720 }, 1 },
        { "This is a test sentence.", { 2028, 374, 264, 1296, 11914, 13 }, 6 },
        { "\xf0\x9f\xa6\x99", { 9468, 99, 247 }, 3 },
        { "\xe9\x95\x87", { 104643 }, 1 },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(cases); i++) {
        int32_t *ids;
        size_t k;
        encode(tok_ranks, cases[i].text, strlen(cases[i].text), false, false, &ids, &k);
        assert_int_equal(k, cases[i].n);
        assert_memory_equal(ids, cases[i].ids, k * sizeof *ids);
        free(ids);
    }
    assert_int_equal(ob_tokenizer_n_vocab(tok_json), 128256);
    assert_int_equal(ob_tokenizer_n_vocab(tok_ranks), 128256);
    assert_int_equal(ob_tokenizer_bos(tok_ranks), BOS_ID);
    assert_int_equal(ob_tokenizer_eos(tok_ranks), 128001);
    assert_int_equal(ob_tokenizer_eot(tok_ranks), EOT_ID);
    assert_int_equal(ob_tokenizer_bos(tok_json), BOS_ID);
    assert_int_equal(ob_tokenizer_eot(tok_json), EOT_ID);
    assert_true(ob_tokenizer_add_bos(tok_ranks));
    assert_true(ob_tokenizer_is_eog(tok_ranks, 128001));
    assert_true(ob_tokenizer_is_eog(tok_ranks, EOT_ID));
    assert_false(ob_tokenizer_is_eog(tok_ranks, 13));
    /* The special token names LLaMA-3 defines in code (tiktoken file) match tokenizer.json. */
    for (int32_t id = 128000; id < 128256; id++) {
        const char *a, *b;
        size_t na = ob_token_bytes(tok_json, id, &a), nb = ob_token_bytes(tok_ranks, id, &b);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
    }
    const char *b;
    assert_int_equal(ob_token_bytes(tok_ranks, 128256, &b), 0);
    assert_int_equal(ob_token_bytes(tok_ranks, -1, &b), 0);
}

/* Whole corpora: exact round trips, and the same ids from both files. */
static void corpus(const char *rel) {
    REQUIRE_TOKENIZERS();
    char *text;
    size_t n;
    read_shared(rel, &text, &n);
    int32_t *a, *b;
    size_t na, nb;
    encode(tok_ranks, text, n, false, false, &a, &na);
    encode(tok_json, text, n, false, false, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_true(na > n / 8 && na < n / 2); /* sane bytes per token */
    ob_buf out = { 0 };
    assert_int_equal(ob_detokenize(tok_ranks, a, na, &out), OB_OK);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, text, n);
    for (size_t i = 0; i < na; i++) assert_true(a[i] >= 0 && a[i] < 128000);
    ob_buf_free(&out);
    free(a);
    free(b);
    free(text);
}
static void test_round_trip_war_and_peace(void **state) { (void)state; corpus("data/war-and-peace/war-and-peace.txt"); }
static void test_round_trip_wikitext(void **state) { (void)state; corpus("data/wikitext-2-raw/wiki.test.raw"); }

static bool contains(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_special_tokens(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    const char *s = "Hi<|eot_id|>there<|begin_of_text|>";
    int32_t *ids, *hi, *there;
    size_t k, khi, kthere;
    /* As user text: no special ids, and it round-trips as text. */
    encode(tok_json, s, strlen(s), false, false, &ids, &k);
    assert_false(contains(ids, k, EOT_ID));
    assert_false(contains(ids, k, BOS_ID));
    free(ids);
    assert_round_trip(tok_json, s, strlen(s));
    /* With parse_special: enc("Hi") 128009 enc("there") 128000. */
    encode(tok_json, s, strlen(s), false, true, &ids, &k);
    encode(tok_json, "Hi", 2, false, false, &hi, &khi);
    encode(tok_json, "there", 5, false, false, &there, &kthere);
    assert_int_equal(k, khi + 1 + kthere + 1);
    assert_memory_equal(ids, hi, khi * sizeof *ids);
    assert_int_equal(ids[khi], EOT_ID);
    assert_memory_equal(ids + khi + 1, there, kthere * sizeof *ids);
    assert_int_equal(ids[k - 1], BOS_ID);
    free(ids);
    free(hi);
    free(there);
    /* add_bos. */
    encode(tok_ranks, "Hello world", 11, true, false, &ids, &k);
    assert_int_equal(k, 3);
    assert_int_equal(ids[0], BOS_ID);
    free(ids);
    /* An unfinished special string is text. */
    encode(tok_ranks, "<|eot_id", 8, false, true, &ids, &k);
    assert_false(contains(ids, k, EOT_ID));
    free(ids);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    static const char *const cases[] = {
        "\xff", "\xc3", "abc\xe2\x82", "\xe2\x82 tail", "\xf0\x9f\xa6", "\xf0\x9f\xa6\x99\xf0\x9f",
        "\xc0\xaf", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80", "  \x80\x80  \n", "Hello\xfeworld", "'s\xff's",
        "\x80", "a\xc3\xa9\xc3", "\xf8\x88\x80\x80\x80", "\n\xff\n",
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(cases); i++) assert_round_trip(tok_ranks, cases[i], strlen(cases[i]));
    /* Random bytes, and random mixes of valid multi-byte text cut anywhere. */
    uint64_t seed = ob_test_seed();
    static const char *const atoms[] = { "a", " ", "\n", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "'", "1", "\t", "!" };
    char buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = ob_test_rand(&seed) % sizeof buf;
        if (iter % 2) {
            for (size_t i = 0; i < n; i++) buf[i] = (char)ob_test_rand(&seed);
        } else {
            size_t k = 0;
            while (k < n) {
                const char *a = atoms[ob_test_rand(&seed) % OB_ARRAY_LEN(atoms)];
                size_t l = strlen(a);
                if (ob_test_rand(&seed) % 8 == 0) l = 1 + ob_test_rand(&seed) % l; /* truncated */
                if (k + l > n) break;
                memcpy(buf + k, a, l);
                k += l;
            }
            n = k;
        }
        assert_round_trip(tok_ranks, buf, n);
    }
}

/* Long runs stress the regex (backtracking, JIT stack) and the merge heap. */
static void test_long_runs(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    size_t n = 200000;
    char *s = malloc(n + 1);
    static const char fills[] = { ' ', 'a', '7', '!', '\n', (char)0xff };
    for (size_t f = 0; f < sizeof fills; f++) {
        memset(s, fills[f], n);
        s[n - 1] = 'x';
        assert_round_trip(tok_ranks, s, n);
    }
    for (size_t i = 0; i < n; i++) s[i] = "ab \xe4\xb8\xad"[i % 5];
    assert_round_trip(tok_ranks, s, n);
    free(s);
    int32_t *ids;
    size_t k;
    encode(tok_ranks, "", 0, false, false, &ids, &k);
    assert_int_equal(k, 0);
    free(ids);
    encode(tok_ranks, "", 0, true, false, &ids, &k);
    assert_int_equal(k, 1);
    free(ids);
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

static void test_stream_decode(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    const char *text = "Emoji \xf0\x9f\xa6\x99\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 and CJK "
                       "\xe4\xb8\xad\xe6\x96\x87\xe9\x95\x87\xe3\x81\x93\xe3\x82\x93 \xd0\x9f\xd1\x80\xd0\xb8 end";
    int32_t *ids;
    size_t k;
    encode(tok_ranks, text, strlen(text), true, false, &ids, &k);
    ob_buf whole = { 0 }, streamed = { 0 };
    assert_int_equal(ob_detokenize(tok_ranks, ids, k, &whole), OB_OK);
    ob_detok_stream s;
    ob_detok_stream_init(&s, tok_ranks);
    size_t held_some = 0;
    for (size_t i = 0; i < k; i++) {
        size_t before = streamed.len;
        assert_int_equal(ob_detok_stream_push(&s, ids[i], &streamed), OB_OK);
        /* What each push emits is complete UTF-8 on its own. */
        assert_true(valid_utf8(streamed.data + before, streamed.len - before));
        held_some += s.n_pending > 0;
    }
    assert_true(held_some > 0); /* the emoji split across tokens were held back */
    assert_int_equal(ob_detok_stream_flush(&s, &streamed), OB_OK);
    assert_int_equal(streamed.len, whole.len);
    assert_memory_equal(streamed.data, whole.data, whole.len);
    /* Invalid bytes: the stream still gives exactly the decoded bytes. */
    const char bad[] = "a\xe4\xb8 \xff\xf0\x9f\xa6";
    free(ids);
    encode(tok_ranks, bad, sizeof bad - 1, false, false, &ids, &k);
    streamed.len = 0;
    ob_detok_stream_init(&s, tok_ranks);
    for (size_t i = 0; i < k; i++) assert_int_equal(ob_detok_stream_push(&s, ids[i], &streamed), OB_OK);
    assert_int_equal(ob_detok_stream_flush(&s, &streamed), OB_OK);
    assert_int_equal(streamed.len, sizeof bad - 1);
    assert_memory_equal(streamed.data, bad, sizeof bad - 1);
    assert_int_equal(ob_detok_stream_push(&s, 999999, &streamed), OB_ERR_RANGE);
    ob_buf_free(&whole);
    ob_buf_free(&streamed);
    free(ids);
}

static void test_chat_bitnet(void **state) {
    (void)state;
    ob_chat_msg msgs[] = { { "user", "Hey, are you conscious? Can you talk to me?" } };
    ob_buf out = { 0 };
    assert_int_equal(ob_chat_render("bitnet", msgs, 1, true, &out), OB_OK);
    const char *want = "User: Hey, are you conscious? Can you talk to me?<|eot_id|>Assistant: ";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);

    REQUIRE_TOKENIZERS();
    /* BOS, enc("User: ...?"), <|eot_id|>, enc("Assistant: "): the sequence
     * BitNet's ChatFormat builds token by token. */
    int32_t *ids, *a, *b;
    size_t k, ka, kb;
    encode(tok_ranks, out.data, out.len, true, true, &ids, &k);
    const char *user = "User: Hey, are you conscious? Can you talk to me?";
    encode(tok_ranks, user, strlen(user), false, false, &a, &ka);
    encode(tok_ranks, "Assistant: ", 11, false, false, &b, &kb);
    assert_int_equal(k, 1 + ka + 1 + kb);
    assert_int_equal(ids[0], BOS_ID);
    assert_memory_equal(ids + 1, a, ka * sizeof *ids);
    assert_int_equal(ids[1 + ka], EOT_ID);
    assert_memory_equal(ids + 2 + ka, b, kb * sizeof *ids);
    assert_int_equal(ids[k - 1], 220); /* the prompt ends in a bare space token, as trained */
    free(ids);
    free(a);
    free(b);
    ob_buf_free(&out);
}

static void test_chat_templates(void **state) {
    (void)state;
    ob_chat_msg msgs[] = {
        { "system", "  Be brief. " }, { "user", "Hi" }, { "assistant", "Hello!" }, { "user", "Bye\n" },
    };
    ob_buf out = { 0 };
    assert_int_equal(ob_chat_render("bitnet", msgs, 4, false, &out), OB_OK);
    const char *want_b = "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello!<|eot_id|>User: Bye<|eot_id|>";
    assert_int_equal(out.len, strlen(want_b));
    assert_memory_equal(out.data, want_b, out.len);
    out.len = 0;
    assert_int_equal(ob_chat_render("llama3", msgs + 1, 1, true, &out), OB_OK);
    const char *want_l = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    assert_int_equal(out.len, strlen(want_l));
    assert_memory_equal(out.data, want_l, out.len);
    out.len = 0;
    ob_chat_msg story[] = { { "user", "Once upon a time" } };
    assert_int_equal(ob_chat_render("plain", story, 1, true, &out), OB_OK);
    assert_int_equal(out.len, 16);
    assert_memory_equal(out.data, "Once upon a time", 16);
    ob_chat_msg bad_role[] = { { "robot", "x" } };
    assert_int_equal(ob_chat_render("bitnet", bad_role, 1, true, &out), OB_ERR_ARG);
    assert_int_equal(ob_chat_render("nope", story, 1, true, &out), OB_ERR_ARG);
    ob_buf_free(&out);
    assert_true(ob_chat_template_known("bitnet"));
    assert_true(ob_chat_template_known("llama3"));
    assert_true(ob_chat_template_known("plain"));
    assert_false(ob_chat_template_known("chatml"));

    /* Choosing a template from metadata. */
    ob_meta m = { 0 };
    assert_string_equal(ob_chat_template_for(&m), "plain");
    ob_meta_set_str(&m, OB_KEY_ARCH, "bitnet");
    assert_string_equal(ob_chat_template_for(&m), "bitnet");
    ob_meta_set_str(&m, OB_KEY_CHAT_TEMPLATE, "{% for m in messages %}<|start_header_id|>{{ m.role }}...");
    assert_string_equal(ob_chat_template_for(&m), "llama3");
    ob_meta_set_str(&m, OB_KEY_CHAT_TEMPLATE, "plain");
    assert_string_equal(ob_chat_template_for(&m), "plain");
    ob_meta_set_str(&m, OB_KEY_ARCH, "llama");
    ob_meta_set_str(&m, OB_KEY_CHAT_TEMPLATE, "{{ 'User: ' + content + '<|eot_id|>' }}{{ 'Assistant: ' }}");
    assert_string_equal(ob_chat_template_for(&m), "bitnet");
    ob_meta_set_str(&m, OB_KEY_CHAT_TEMPLATE, "{{ something else }}");
    assert_string_equal(ob_chat_template_for(&m), "plain");
    const char *toks[] = { "a", "<|eot_id|>" };
    ob_meta_set_str_arr(&m, OB_KEY_TOK_TOKENS, toks, NULL, 2);
    assert_string_equal(ob_chat_template_for(&m), "llama3");
    ob_meta_free(&m);
}

/* The metadata a tokenizer writes describes it completely. */
static void test_meta_round_trip(void **state) {
    (void)state;
    REQUIRE_TOKENIZERS();
    ob_meta m = { 0 };
    assert_int_equal(ob_tokenizer_to_meta(tok_ranks, &m), OB_OK);
    assert_string_equal(ob_meta_str(&m, OB_KEY_TOK_MODEL, ""), "gpt2");
    assert_string_equal(ob_meta_str(&m, OB_KEY_TOK_PRE, ""), "llama3");
    assert_int_equal(ob_meta_int(&m, OB_KEY_BOS, -1), BOS_ID);
    assert_int_equal(ob_meta_int(&m, OB_KEY_EOT, -1), EOT_ID);
    const ob_meta_entry *merges = ob_meta_find(&m, OB_KEY_TOK_MERGES);
    assert_non_null(merges);
    assert_int_equal(merges->count, 280147); /* as many as tokenizer.json lists */
    const ob_meta_entry *toks = ob_meta_find(&m, OB_KEY_TOK_TOKENS);
    assert_string_equal(toks->strs[1917], "\xc4\xa0world"); /* GPT-2 alphabet: "Ġworld" */
    ob_tokenizer *t2;
    assert_int_equal(ob_tokenizer_from_meta(&m, &t2), OB_OK);
    const char *text = "The quick brown fox's 12345 jumps\n\n  over\t\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\xa6\x99!!";
    int32_t *a, *b;
    size_t na, nb;
    encode(tok_ranks, text, strlen(text), true, true, &a, &na);
    encode(t2, text, strlen(text), true, true, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
    ob_tokenizer_free(t2);
    /* Without a pre-tokenizer key (the official BitNet 2B-4T GGUF has none) a
     * LLaMA-3 vocabulary still splits digits in threes: "3333" -> 8765 18. */
    assert_true(ob_meta_remove(&m, OB_KEY_TOK_PRE));
    assert_int_equal(ob_tokenizer_from_meta(&m, &t2), OB_OK);
    encode(t2, "3333", 4, false, false, &a, &na);
    assert_int_equal(na, 2);
    assert_int_equal(a[0], 8765);
    assert_int_equal(a[1], 18);
    free(a);
    ob_tokenizer_free(t2);
    /* A LLaMA-3 model whose EOS is <|eot_id|> still stops at <|end_of_text|>. */
    ob_meta_set_int(&m, OB_KEY_EOS, EOT_ID);
    assert_int_equal(ob_tokenizer_from_meta(&m, &t2), OB_OK);
    assert_int_equal(ob_tokenizer_eos(t2), EOT_ID);
    assert_true(ob_tokenizer_is_eog(t2, EOT_ID));
    assert_true(ob_tokenizer_is_eog(t2, 128001));
    assert_false(ob_tokenizer_is_eog(t2, BOS_ID));
    ob_tokenizer_free(t2);
    ob_meta_free(&m);
}

/* A tiny GPT-2-style vocabulary built here: the 256 byte tokens (in GPT-2's
 * alphabet), two merges, a user-defined and a control token. */
static void test_small_bpe_vocab(void **state) {
    (void)state;
    char *pieces[260];
    int32_t types[260];
    for (int b = 0; b < 256; b++) {
        /* GPT-2: printable bytes stand for themselves, the other 68 are U+0100.. in order. */
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int rank = 0;
        for (int c = 0; c < b; c++) rank += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE));
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)rank;
        pieces[b] = malloc(3);
        if (cp < 0x80) { pieces[b][0] = (char)cp; pieces[b][1] = 0; }
        else { pieces[b][0] = (char)(0xC0 | cp >> 6); pieces[b][1] = (char)(0x80 | (cp & 0x3F)); pieces[b][2] = 0; }
        types[b] = 1;
    }
    assert_string_equal(pieces[' '], "\xc4\xa0"); /* "Ġ" */
    pieces[256] = ob_strdup("ab");
    pieces[257] = ob_strdup("abc");
    pieces[258] = ob_strdup("<tool>");
    pieces[259] = ob_strdup("<|x|>");
    types[256] = types[257] = 1;
    types[258] = 4;
    types[259] = 3;
    const char *merges[] = { "a b", "ab c" };
    ob_meta m = { 0 };
    ob_meta_set_str(&m, OB_KEY_TOK_MODEL, "gpt2");
    ob_meta_set_str(&m, OB_KEY_TOK_PRE, "gpt2");
    ob_meta_set_str_arr(&m, OB_KEY_TOK_TOKENS, (const char *const *)pieces, NULL, 260);
    ob_meta_set_i32_arr(&m, OB_KEY_TOK_TYPES, types, 260);
    ob_meta_set_str_arr(&m, OB_KEY_TOK_MERGES, merges, NULL, 2);
    for (int i = 0; i < 260; i++) free(pieces[i]);
    ob_tokenizer *t;
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_OK);
    ob_meta_free(&m);
    assert_int_equal(ob_tokenizer_bos(t), -1);
    assert_false(ob_tokenizer_add_bos(t));
    static const struct { const char *text; bool special; int32_t ids[8]; size_t n; } cases[] = {
        { "abc abx", false, { 257, ' ', 256, 'x' }, 4 },      /* "abc" | " abx": merges inside pre-tokens only */
        { "a<tool>b", false, { 'a', 258, 'b' }, 3 },          /* user-defined: always matched */
        { "<|x|>", false, { '<', '|', 'x', '|', '>' }, 5 },   /* control: text unless asked */
        { "<|x|>", true, { 259 }, 1 },
        { "\n\xff", false, { '\n', 0xff }, 2 },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(cases); i++) {
        int32_t *ids;
        size_t k;
        encode(t, cases[i].text, strlen(cases[i].text), true, cases[i].special, &ids, &k);
        assert_int_equal(k, cases[i].n);
        assert_memory_equal(ids, cases[i].ids, k * sizeof *ids);
        free(ids);
        if (!cases[i].special) assert_round_trip(t, cases[i].text, strlen(cases[i].text));
    }
    ob_tokenizer_free(t);
}

static void test_loader_errors(void **state) {
    (void)state;
    ob_tokenizer *t = NULL;
    ob_meta m = { 0 };
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_UNSUPPORTED);
    ob_meta_set_str(&m, OB_KEY_TOK_MODEL, "gpt2");
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_FORMAT); /* no tokens */
    const char *few[] = { "a", "b", "ab" };
    ob_meta_set_str_arr(&m, OB_KEY_TOK_TOKENS, few, NULL, 3);
    const char *merges[] = { "a b" };
    ob_meta_set_str_arr(&m, OB_KEY_TOK_MERGES, merges, NULL, 1);
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_FORMAT); /* byte tokens missing */
    assert_non_null(strstr(ob_last_error(), "byte"));
    ob_meta_set_str(&m, OB_KEY_TOK_MODEL, "llama");
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_FORMAT); /* no scores */
    float sc[2] = { 0, 0 };
    ob_meta_set_f32_arr(&m, OB_KEY_TOK_SCORES, sc, 2);
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_FORMAT); /* wrong count */
    ob_meta_set_str(&m, OB_KEY_TOK_MODEL, "wordpiece");
    assert_int_equal(ob_tokenizer_from_meta(&m, &t), OB_ERR_UNSUPPORTED);
    assert_null(t);
    ob_meta_free(&m);

    /* Files: malformed JSON, a tiktoken file with a repeated rank, garbage. */
    char dir[] = "/tmp/ob_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const struct { const char *name, *body; ob_status st; } files[] = {
        { "trunc.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": ", OB_ERR_FORMAT },
        { "wp.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", OB_ERR_UNSUPPORTED },
        { "gap.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": [\"a b\"]},"
                      " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", OB_ERR_FORMAT },
        { "dup.model", "YQ== 0\nYg== 1\nYWI= 1\n", OB_ERR_FORMAT },
        { "junk.bin", "\x01\x02 not a tokenizer", OB_ERR_FORMAT },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(files); i++) {
        char *p = ob_path_join(dir, files[i].name);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        fputs(files[i].body, f);
        fclose(f);
        ob_status st = ob_tokenizer_from_file(p, &t);
        if (st != files[i].st) fail_msg("%s: status %d (%s)", files[i].name, st, ob_last_error());
        assert_null(t);
        assert_true(strlen(ob_last_error()) > 0);
        unlink(p);
        free(p);
    }
    rmdir(dir);
    assert_int_equal(ob_tokenizer_from_file("/nonexistent/tokenizer.json", &t), OB_ERR_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpp_vectors),
        cmocka_unit_test(test_known_ids),
        cmocka_unit_test(test_round_trip_war_and_peace),
        cmocka_unit_test(test_round_trip_wikitext),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_runs),
        cmocka_unit_test(test_stream_decode),
        cmocka_unit_test(test_chat_bitnet),
        cmocka_unit_test(test_chat_templates),
        cmocka_unit_test(test_meta_round_trip),
        cmocka_unit_test(test_small_bpe_vocab),
        cmocka_unit_test(test_loader_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
