/* OpenAI request parsing and validation (src/server/request.c): every bad
 * body gets a 400 naming the offending key; good bodies keep what was sent
 * and fall back to the given defaults. Needs jansson (the server libraries). */
#include "testutil.h"

#ifdef OB_HAVE_SERVER
#include "server/request.c"

static ob_sampler_params defaults(void) {
    ob_sampler_params p = { .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                            .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 7 };
    return p;
}

/* Parses body as kind and expects a 400 whose param is `param`. */
static void expect_bad(ob_req_kind kind, const char *body, const char *param) {
    ob_gen_request r;
    ob_api_error e = { 0 };
    ob_sampler_params d = defaults();
    ob_status st = ob_request_parse(body, strlen(body), kind, &d, &r, &e);
    if (st == OB_OK) fail_msg("accepted: %s", body);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_true(e.message[0] != 0);
    if (strcmp(e.param, param)) fail_msg("%s: param '%s', expected '%s' (%s)", body, e.param, param, e.message);
    assert_null(r.msgs); /* cleared on failure */
}

static void test_bad_bodies(void **state) {
    (void)state;
    expect_bad(OB_REQ_CHAT, "{", "");
    expect_bad(OB_REQ_CHAT, "[1,2]", "");
    expect_bad(OB_REQ_CHAT, "{\"messages\": \"hi\"}", "messages");
    expect_bad(OB_REQ_CHAT, "{}", "messages");
    expect_bad(OB_REQ_CHAT, "{\"messages\": []}", "messages");
    expect_bad(OB_REQ_CHAT, "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "messages[0].role");
    expect_bad(OB_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content");
    expect_bad(OB_REQ_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
               "messages[0].content");
    const char *msg = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
    char body[512];
    static const struct { const char *field, *param; } bad[] = {
        { "\"temperature\": \"hot\"", "temperature" },
        { "\"top_p\": 1.5", "top_p" },
        { "\"top_k\": 2.5", "top_k" },
        { "\"max_tokens\": 0", "max_tokens" },
        { "\"max_tokens\": \"10\"", "max_tokens" },
        { "\"max_completion_tokens\": -5", "max_completion_tokens" },
        { "\"n\": 0", "n" },
        { "\"n\": 1000", "n" },
        { "\"stream\": \"yes\"", "stream" },
        { "\"stream_options\": 3", "stream_options" },
        { "\"stream_options\": {\"include_usage\": 1}", "include_usage" },
        { "\"stop\": 5", "stop" },
        { "\"stop\": [\"a\", 5]", "stop" },
        { "\"presence_penalty\": 3", "presence_penalty" },
        { "\"seed\": \"x\"", "seed" },
        { "\"model\": 12", "model" },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(bad); i++) {
        snprintf(body, sizeof body, "{%s, %s}", msg, bad[i].field);
        expect_bad(OB_REQ_CHAT, body, bad[i].param);
    }
    expect_bad(OB_REQ_COMPLETION, "{}", "prompt");
    expect_bad(OB_REQ_COMPLETION, "{\"prompt\": 3}", "prompt");
    expect_bad(OB_REQ_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", "prompt");
    expect_bad(OB_REQ_COMPLETION, "{\"prompt\": [1, -2]}", "prompt");
    expect_bad(OB_REQ_COMPLETION, "{\"prompt\": \"x\", \"echo\": 1}", "echo");
    /* deep nesting is refused before jansson recurses into it */
    char *deep = malloc(400002);
    memset(deep, '[', 200000);
    memset(deep + 200000, ']', 200000);
    deep[400000] = 0;
    expect_bad(OB_REQ_CHAT, deep, "");
    memcpy(deep, "{\"messages\": \"", 14); /* brackets inside a string do not count */
    deep[200000] = '"', deep[200001] = '}', deep[200002] = 0;
    expect_bad(OB_REQ_CHAT, deep, "messages"); /* reaches the type check */
    free(deep);
    /* invalid UTF-8 inside a string is malformed JSON */
    expect_bad(OB_REQ_COMPLETION, "{\"prompt\": \"\xff\"}", "");
}

static void test_good_chat(void **state) {
    (void)state;
    const char *body = "{\"model\": \"m\", \"messages\": [{\"role\": \"developer\", \"content\": \"be brief\"},"
                       "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"},"
                       "{\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"assistant\", \"content\": null}],"
                       "\"temperature\": 0, \"top_k\": 5, \"max_completion_tokens\": 12, \"seed\": 42,"
                       "\"stop\": [\"x\", \"\", \"yz\"], \"stream\": true, \"stream_options\": {\"include_usage\": true},"
                       "\"n\": 2, \"top_p\": null, \"user\": \"ignored\", \"logit_bias\": {}}";
    ob_gen_request r;
    ob_api_error e = { 0 };
    ob_sampler_params d = defaults();
    assert_int_equal(ob_request_parse(body, strlen(body), OB_REQ_CHAT, &d, &r, &e), OB_OK);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n_msgs, 3);
    assert_string_equal(r.msgs[0].role, "system");
    assert_string_equal(r.msgs[0].content, "be brief");
    assert_string_equal(r.msgs[1].content, "a\nb");
    assert_string_equal(r.msgs[2].content, "");
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.max_tokens, 12);
    assert_true(r.seed_given);
    assert_int_equal(r.sp.seed, 42);
    assert_true(r.sp.temperature == 0.0f);
    assert_int_equal(r.sp.top_k, 5);
    assert_true(r.sp.top_p == d.top_p); /* null = absent = default */
    assert_true(r.sp.min_p == d.min_p);
    assert_int_equal(r.n_stops, 2);
    assert_string_equal(r.stops[0], "x");
    assert_string_equal(r.stops[1], "yz");
    ob_request_free(&r);
}

static void test_good_completion(void **state) {
    (void)state;
    ob_gen_request r;
    ob_api_error e = { 0 };
    ob_sampler_params d = defaults();
    const char *b1 = "{\"prompt\": [\"Once\"], \"stop\": \"\\n\", \"max_tokens\": 3.0, \"echo\": true}";
    assert_int_equal(ob_request_parse(b1, strlen(b1), OB_REQ_COMPLETION, &d, &r, &e), OB_OK);
    assert_string_equal(r.prompt, "Once");
    assert_int_equal(r.n_stops, 1);
    assert_string_equal(r.stops[0], "\n");
    assert_int_equal(r.max_tokens, 3);
    assert_true(r.echo);
    assert_false(r.seed_given);
    assert_int_equal(r.n, 1);
    ob_request_free(&r);
    const char *b2 = "{\"prompt\": [1, 2, 3]}";
    assert_int_equal(ob_request_parse(b2, strlen(b2), OB_REQ_COMPLETION, &d, &r, &e), OB_OK);
    assert_null(r.prompt);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 3);
    assert_int_equal(r.max_tokens, -1);
    ob_request_free(&r);
}

static void test_tokenize_bodies(void **state) {
    (void)state;
    ob_tokenize_request t;
    ob_api_error e = { 0 };
    const char *b = "{\"content\": \"hi there\", \"with_pieces\": true}";
    assert_int_equal(ob_tokenize_request_parse(b, strlen(b), &t, &e), OB_OK);
    assert_string_equal(t.content, "hi there");
    assert_true(t.with_pieces && !t.add_special);
    free(t.content);
    b = "{\"content\": 1}";
    assert_int_not_equal(ob_tokenize_request_parse(b, strlen(b), &t, &e), OB_OK);
    assert_string_equal(e.param, "content");
    int32_t *ids;
    size_t n;
    b = "{\"tokens\": [0, 5, 9]}";
    assert_int_equal(ob_detokenize_request_parse(b, strlen(b), 10, &ids, &n, &e), OB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 5);
    free(ids);
    b = "{\"tokens\": [0, 10]}";
    assert_int_not_equal(ob_detokenize_request_parse(b, strlen(b), 10, &ids, &n, &e), OB_OK);
    assert_int_equal(e.status, 400);
    assert_null(ids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_good_chat),
        cmocka_unit_test(test_good_completion),
        cmocka_unit_test(test_tokenize_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
OB_TEST_MAIN_NOT_BUILT("the server libraries (civetweb, jansson)")
#endif
