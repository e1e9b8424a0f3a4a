/* Request parsing and validation: see request.h.
 *
 * Conventions (as OpenAI and llama.cpp clients expect): a key set to null is
 * the same as an absent key; unknown keys are ignored; a present key of the
 * wrong type, or a value out of range, is a 400 naming the key in "param". */
#include "server/request.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ob_status ob_api_fail(ob_api_error *e, int status, const char *type, const char *code, const char *param,
                      const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return OB_ERR_ARG;
}

#define BAD(e, param, code, ...) ob_api_fail(e, 400, "invalid_request_error", code, param, __VA_ARGS__)

/* ---- typed getters: each returns OB_OK and leaves *out alone when the key is
 * absent or null ------------------------------------------------------------ */

static json_t *member(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static ob_status get_bool(json_t *obj, const char *key, bool *out, ob_api_error *e) {
    json_t *v = member(obj, key);
    if (!v) return OB_OK;
    if (!json_is_boolean(v)) return BAD(e, key, "invalid_type", "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return OB_OK;
}

static ob_status get_num(json_t *obj, const char *key, double lo, double hi, float *out, ob_api_error *e) {
    json_t *v = member(obj, key);
    if (!v) return OB_OK;
    if (!json_is_number(v)) return BAD(e, key, "invalid_type", "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return BAD(e, key, "invalid_value", "'%s' must be between %g and %g", key, lo, hi);
    *out = (float)x;
    return OB_OK;
}

/* An integer (or a float with an integral value, as some clients send 1.0). */
static ob_status get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out,
                         ob_api_error *e) {
    json_t *v = member(obj, key);
    if (!v) return OB_OK;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v);
    } else {
        return BAD(e, key, "invalid_type", "'%s' must be an integer", key);
    }
    if (x < lo || x > hi) return BAD(e, key, "invalid_value", "'%s' must be between %lld and %lld", key, lo, hi);
    *out = x;
    return OB_OK;
}

/* jansson's parser recurses once per nesting level, on a civetweb worker's
 * stack: a body of a few hundred thousand '[' would overflow it. Request
 * bodies nest a handful of levels, so anything deeper is refused up front
 * (strings are skipped, escapes included). */
#define MAX_JSON_DEPTH 64

static bool nesting_ok(const char *s, size_t n) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_JSON_DEPTH) return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

static ob_status load_object(const char *body, size_t len, json_t **root, ob_api_error *e) {
    json_error_t jerr;
    *root = NULL;
    if (!nesting_ok(body, len))
        return BAD(e, NULL, "invalid_json", "request body nests deeper than %d levels", MAX_JSON_DEPTH);
    *root = json_loadb(body, len, 0, &jerr);
    if (!*root) return BAD(e, NULL, "invalid_json", "invalid JSON in request body: %s (line %d, column %d)",
                           jerr.text, jerr.line, jerr.column);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return BAD(e, NULL, "invalid_type", "request body must be a JSON object");
    }
    return OB_OK;
}

/* ---- chat messages -------------------------------------------------------- */

/* OpenAI content: a string, null, or an array of parts of which only
 * {"type": "text", "text": ...} is supported; text parts are joined with "\n". */
static ob_status message_content(json_t *c, size_t i, char **out, ob_api_error *e) {
    char param[48];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c || json_is_null(c)) {
        *out = ob_strdup("");
    } else if (json_is_string(c)) {
        *out = ob_strndup(json_string_value(c), json_string_length(c));
    } else if (json_is_array(c)) {
        ob_buf b = { 0 };
        size_t k;
        json_t *part;
        json_array_foreach(c, k, part) {
            json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") ||
                !json_is_string(text)) {
                ob_buf_free(&b);
                return BAD(e, param, "invalid_value", "%s[%zu]: only {\"type\": \"text\", \"text\": ...} parts "
                           "are supported", param, k);
            }
            if (k) ob_buf_append(&b, "\n", 1);
            ob_buf_append(&b, json_string_value(text), json_string_length(text));
        }
        *out = b.data ? b.data : ob_strdup("");
    } else {
        return BAD(e, param, "invalid_type", "'%s' must be a string or an array of text parts", param);
    }
    if (!*out) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return OB_OK;
}

static ob_status parse_messages(json_t *root, ob_gen_request *r, ob_api_error *e) {
    json_t *msgs = member(root, "messages");
    if (!msgs) return BAD(e, "messages", "missing_required_parameter", "'messages' is required");
    if (!json_is_array(msgs)) return BAD(e, "messages", "invalid_type", "'messages' must be an array");
    if (!json_array_size(msgs)) return BAD(e, "messages", "invalid_value", "'messages' must not be empty");
    r->msgs = ob_calloc(json_array_size(msgs), sizeof *r->msgs);
    if (!r->msgs) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return BAD(e, param, "invalid_type", "'%s' must be an object", param);
        json_t *role = json_object_get(m, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) return BAD(e, param, "invalid_type", "'%s' must be a string", param);
        const char *rs = json_string_value(role);
        /* "developer" is OpenAI's newer name for the system role. */
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return BAD(e, param, "invalid_value", "unsupported role '%s' (system, developer, user, assistant)",
                       json_string_value(role));
        char *content;
        ob_status st = message_content(json_object_get(m, "content"), i, &content, e);
        if (st) return st;
        r->msgs[r->n_msgs].content = content;
        r->msgs[r->n_msgs].role = ob_strdup(rs);
        r->n_msgs++;
        if (!r->msgs[r->n_msgs - 1].role) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return OB_OK;
}

/* ---- completion prompt ---------------------------------------------------- */

static ob_status ids_from_array(json_t *arr, ob_gen_request *r, ob_api_error *e) {
    size_t n = json_array_size(arr), i;
    r->prompt_ids = ob_malloc(n * sizeof *r->prompt_ids);
    if (!r->prompt_ids) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return BAD(e, "prompt", "invalid_type", "'prompt' token ids must be non-negative integers");
        r->prompt_ids[i] = (int32_t)json_integer_value(v);
    }
    r->n_prompt_ids = n;
    return OB_OK;
}

/* A string, [string], [ids] or [[ids]]: one prompt. Several prompts in one
 * request are not supported (use n for several choices of one prompt). */
static ob_status parse_prompt(json_t *root, ob_gen_request *r, ob_api_error *e) {
    json_t *p = member(root, "prompt");
    if (!p) return BAD(e, "prompt", "missing_required_parameter", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        r->prompt = ob_strndup(json_string_value(p), json_string_length(p));
        if (!r->prompt) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return OB_OK;
    }
    if (json_is_array(p)) {
        if (json_array_size(p) && !json_is_integer(json_array_get(p, 0)))
            return BAD(e, "prompt", "unsupported_value", "several prompts in one request are not supported");
        return ids_from_array(p, r, e);
    }
    return BAD(e, "prompt", "invalid_type", "'prompt' must be a string, an array of one string, or token ids");
}

/* ---- stop ----------------------------------------------------------------- */

static ob_status add_stop(ob_gen_request *r, json_t *s, ob_api_error *e) {
    if (!json_is_string(s)) return BAD(e, "stop", "invalid_type", "'stop' must be a string or an array of strings");
    size_t n = json_string_length(s);
    if (!n) return OB_OK; /* an empty stop string would match everywhere: ignore it */
    if (n > OB_REQ_MAX_STOP_LEN) return BAD(e, "stop", "invalid_value", "stop strings are limited to %d bytes",
                                            OB_REQ_MAX_STOP_LEN);
    if (r->n_stops == OB_REQ_MAX_STOPS)
        return BAD(e, "stop", "invalid_value", "at most %d stop strings", OB_REQ_MAX_STOPS);
    if (memchr(json_string_value(s), 0, n)) return OB_OK;
    r->stops[r->n_stops] = ob_strndup(json_string_value(s), n);
    if (!r->stops[r->n_stops]) return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->n_stops++;
    return OB_OK;
}

static ob_status parse_stop(json_t *root, ob_gen_request *r, ob_api_error *e) {
    json_t *s = member(root, "stop");
    if (!s) return OB_OK;
    if (!json_is_array(s)) return add_stop(r, s, e);
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v) {
        ob_status st = add_stop(r, v, e);
        if (st) return st;
    }
    return OB_OK;
}

/* ---- the whole body ------------------------------------------------------- */

static ob_status parse_settings(json_t *root, ob_gen_request *r, ob_api_error *e) {
    ob_status st;
    json_t *model = member(root, "model");
    if (model && !json_is_string(model)) return BAD(e, "model", "invalid_type", "'model' must be a string");
    if (model && json_string_length(model) && !(r->model = ob_strdup(json_string_value(model))))
        return ob_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");

    if ((st = get_bool(root, "stream", &r->stream, e))) return st;
    json_t *so = member(root, "stream_options");
    if (so && !json_is_object(so)) return BAD(e, "stream_options", "invalid_type", "'stream_options' must be an object");
    if (so && (st = get_bool(so, "include_usage", &r->include_usage, e))) return st;
    if (r->kind == OB_REQ_COMPLETION && (st = get_bool(root, "echo", &r->echo, e))) return st;
    if ((st = get_bool(root, "ignore_eos", &r->ignore_eos, e))) return st;

    long long v = r->n;
    if ((st = get_int(root, "n", 1, OB_REQ_MAX_N, &v, e))) return st;
    r->n = (int)v;

    /* max_completion_tokens is the newer name; when both are sent it wins. -1:
     * no limit (llama.cpp's n_predict convention). */
    v = -1;
    if ((st = get_int(root, "max_tokens", -1, INT_MAX, &v, e))) return st;
    if ((st = get_int(root, "max_completion_tokens", -1, INT_MAX, &v, e))) return st;
    if (v == 0) return BAD(e, "max_tokens", "invalid_value", "'max_tokens' must be at least 1 (or -1 for no limit)");
    r->max_tokens = (int)v;

    ob_sampler_params *sp = &r->sp;
    if ((st = get_num(root, "temperature", -1e9, 1e9, &sp->temperature, e))) return st;
    if ((st = get_num(root, "top_p", 0, 1, &sp->top_p, e))) return st;
    if ((st = get_num(root, "min_p", 0, 1, &sp->min_p, e))) return st;
    if ((st = get_num(root, "presence_penalty", -2, 2, &sp->presence_penalty, e))) return st;
    if ((st = get_num(root, "frequency_penalty", -2, 2, &sp->frequency_penalty, e))) return st;
    if ((st = get_num(root, "repeat_penalty", 1e-6, 1e6, &sp->repeat_penalty, e))) return st;
    v = sp->top_k;
    if ((st = get_int(root, "top_k", -1, INT_MAX, &v, e))) return st;
    sp->top_k = (int)v;
    v = sp->repeat_last_n;
    if ((st = get_int(root, "repeat_last_n", -1, INT_MAX, &v, e))) return st;
    sp->repeat_last_n = v < 0 ? INT_MAX : (int)v; /* -1: the whole history */
    v = -1;
    if ((st = get_int(root, "seed", LLONG_MIN, LLONG_MAX, &v, e))) return st;
    if (v != -1) {
        r->seed_given = true;
        sp->seed = (uint64_t)v;
    }
    return parse_stop(root, r, e);
}

ob_status ob_request_parse(const char *body, size_t len, ob_req_kind kind, const ob_sampler_params *defaults,
                           ob_gen_request *out, ob_api_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->n = 1;
    out->max_tokens = -1;
    out->sp = *defaults;
    json_t *root;
    ob_status st = load_object(body, len, &root, err);
    if (st) return st;
    st = kind == OB_REQ_CHAT ? parse_messages(root, out, err) : parse_prompt(root, out, err);
    if (!st) st = parse_settings(root, out, err);
    json_decref(root);
    if (st) ob_request_free(out);
    return st;
}

void ob_request_free(ob_gen_request *r) {
    for (size_t i = 0; i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    memset(r, 0, sizeof *r);
}

/* ---- /tokenize and /detokenize -------------------------------------------- */

ob_status ob_tokenize_request_parse(const char *body, size_t len, ob_tokenize_request *out, ob_api_error *err) {
    memset(out, 0, sizeof *out);
    json_t *root;
    ob_status st = load_object(body, len, &root, err);
    if (st) return st;
    json_t *c = member(root, "content");
    if (!c) st = BAD(err, "content", "missing_required_parameter", "'content' is required");
    else if (!json_is_string(c)) st = BAD(err, "content", "invalid_type", "'content' must be a string");
    if (!st && !(st = get_bool(root, "add_special", &out->add_special, err)) &&
        !(st = get_bool(root, "parse_special", &out->parse_special, err)) &&
        !(st = get_bool(root, "with_pieces", &out->with_pieces, err))) {
        out->content_len = json_string_length(c);
        out->content = ob_strndup(json_string_value(c), out->content_len);
        if (!out->content) st = ob_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    json_decref(root);
    return st;
}

ob_status ob_detokenize_request_parse(const char *body, size_t len, int n_vocab, int32_t **ids, size_t *n_ids,
                                      ob_api_error *err) {
    *ids = NULL;
    *n_ids = 0;
    json_t *root;
    ob_status st = load_object(body, len, &root, err);
    if (st) return st;
    json_t *t = member(root, "tokens");
    if (!t) st = BAD(err, "tokens", "missing_required_parameter", "'tokens' is required");
    else if (!json_is_array(t)) st = BAD(err, "tokens", "invalid_type", "'tokens' must be an array of token ids");
    else if (!(*ids = ob_malloc(json_array_size(t) * sizeof **ids)))
        st = ob_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *v;
    if (!st) json_array_foreach(t, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
            st = BAD(err, "tokens", "invalid_value", "'tokens[%zu]' is not a token id (0..%d)", i, n_vocab - 1);
            break;
        }
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    if (!st) *n_ids = json_array_size(t);
    else {
        free(*ids);
        *ids = NULL;
    }
    json_decref(root);
    return st;
}
