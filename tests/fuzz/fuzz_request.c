/* libFuzzer target: the server's request parsers (server/request.c) on
 * arbitrary bodies, as a client could send them.
 *
 *   make fuzz && build-fuzz/fuzz/fuzz_request -max_total_time=60
 *
 * The first input byte picks the parser (chat, completion, /tokenize,
 * /detokenize); the rest is the body. Every body must end either in OB_OK
 * with a request inside the limits request.h documents, or in OB_ERR_ARG
 * with a 4xx error that carries a message and a cleared request: never a
 * crash, a leak (the sanitizers check) or an out-of-range setting. Built only
 * with the server libraries (jansson); the Makefile leaves it out otherwise. */
#include "server/request.c"

#include "fuzz_check.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_VOCAB = 1000 }; /* for /detokenize's id check */

static void check_error(const ob_api_error *e) {
    /* a client's mistake is a 4xx; only a failed allocation is the server's */
    CHECK((e->status >= 400 && e->status < 500) || (e->status == 500 && !strcmp(e->type, "server_error")));
    CHECK(e->message[0] != '\0');
}

static void check_request(const ob_gen_request *r, ob_req_kind kind) {
    CHECK(r->kind == kind);
    if (kind == OB_REQ_CHAT) {
        CHECK(r->n_msgs >= 1 && r->msgs != NULL);
        for (size_t i = 0; i < r->n_msgs; i++) {
            const char *role = r->msgs[i].role;
            CHECK(role && (!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant")));
            CHECK(r->msgs[i].content != NULL);
        }
    } else {
        CHECK(!(r->prompt && r->n_prompt_ids));
        for (size_t i = 0; i < r->n_prompt_ids; i++) CHECK(r->prompt_ids[i] >= 0);
    }
    CHECK(r->n >= 1 && r->n <= OB_REQ_MAX_N);
    CHECK(r->max_tokens == -1 || r->max_tokens >= 1);
    CHECK(r->n_stops <= OB_REQ_MAX_STOPS);
    for (size_t i = 0; i < r->n_stops; i++) {
        size_t n = r->stops[i] ? strlen(r->stops[i]) : 0;
        CHECK(n >= 1 && n <= OB_REQ_MAX_STOP_LEN);
    }
    const ob_sampler_params *sp = &r->sp;
    CHECK(isfinite(sp->temperature));
    CHECK(sp->top_p >= 0.0f && sp->top_p <= 1.0f);
    CHECK(sp->min_p >= 0.0f && sp->min_p <= 1.0f);
    CHECK(sp->presence_penalty >= -2.0f && sp->presence_penalty <= 2.0f);
    CHECK(sp->frequency_penalty >= -2.0f && sp->frequency_penalty <= 2.0f);
    CHECK(sp->repeat_penalty > 0.0f && isfinite(sp->repeat_penalty));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *body = (const char *)data + 1;
    const size_t len = size - 1;
    ob_api_error e = { .type = "" };
    switch (data[0] % 4) {
    case 0:
    case 1: {
        ob_req_kind kind = data[0] % 4 == 0 ? OB_REQ_CHAT : OB_REQ_COMPLETION;
        ob_sampler_params defaults = ob_sampler_defaults();
        ob_gen_request r;
        if (ob_request_parse(body, len, kind, &defaults, &r, &e) == OB_OK) {
            check_request(&r, kind);
            ob_request_free(&r);
        } else {
            check_error(&e);
            CHECK(!r.model && !r.msgs && !r.prompt && !r.prompt_ids && !r.n_stops);
        }
        break;
    }
    case 2: {
        ob_tokenize_request t;
        if (ob_tokenize_request_parse(body, len, &t, &e) == OB_OK) {
            CHECK(t.content != NULL);
            free(t.content);
        } else {
            check_error(&e);
        }
        break;
    }
    default: {
        int32_t *ids = NULL;
        size_t n = 0;
        if (ob_detokenize_request_parse(body, len, N_VOCAB, &ids, &n, &e) == OB_OK) {
            for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < N_VOCAB);
            free(ids);
        } else {
            check_error(&e);
        }
        break;
    }
    }
    return 0;
}
