/* Prometheus text rendering of ob_metrics. Names carry the onebit_ prefix
 * (a metric name may not start with a digit). */
#include "server/metrics.h"

static const char *const route_names[OB_ROUTE_COUNT] = {
    [OB_ROUTE_CHAT] = "chat_completions", [OB_ROUTE_COMPLETIONS] = "completions",
    [OB_ROUTE_MODELS] = "models",         [OB_ROUTE_HEALTH] = "health",
    [OB_ROUTE_TOKENIZE] = "tokenize",     [OB_ROUTE_DETOKENIZE] = "detokenize",
    [OB_ROUTE_METRICS] = "metrics",       [OB_ROUTE_EMBEDDINGS] = "embeddings",
    [OB_ROUTE_OTHER] = "other",
};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void metric(ob_buf *o, const char *name, const char *type, const char *help, double v) {
    ob_buf_printf(o, "# HELP onebit_%s %s\n# TYPE onebit_%s %s\nonebit_%s %.17g\n", name, help, name, type, name, v);
}

ob_status ob_metrics_render(ob_metrics *m, ob_buf *o) {
    ob_buf_printf(o, "# HELP onebit_http_requests_total HTTP requests received, by route.\n"
                     "# TYPE onebit_http_requests_total counter\n");
    for (int r = 0; r < OB_ROUTE_COUNT; r++)
        ob_buf_printf(o, "onebit_http_requests_total{route=\"%s\"} %llu\n", route_names[r], LOAD(m->requests[r]));
    ob_buf_printf(o, "# HELP onebit_http_responses_errors_total Error responses by class.\n"
                     "# TYPE onebit_http_responses_errors_total counter\n"
                     "onebit_http_responses_errors_total{class=\"4xx\"} %llu\n"
                     "onebit_http_responses_errors_total{class=\"5xx\"} %llu\n",
                  LOAD(m->responses_4xx), LOAD(m->responses_5xx));
    metric(o, "requests_rejected_busy_total", "counter", "Requests refused with 503 because the queue was full.",
           (double)LOAD(m->rejected_busy));
    metric(o, "client_disconnects_total", "counter", "Generations cancelled because the client went away.",
           (double)LOAD(m->disconnects));
    metric(o, "generations_total", "counter", "Finished generations (one per choice).", (double)LOAD(m->generations));
    unsigned long long pt = LOAD(m->prompt_tokens), gt = LOAD(m->generated_tokens);
    double ps = (double)LOAD(m->prefill_ns) * 1e-9, ds = (double)LOAD(m->decode_ns) * 1e-9;
    metric(o, "prompt_tokens_total", "counter", "Prompt tokens run through the model (prefill).", (double)pt);
    metric(o, "prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.",
           (double)LOAD(m->cached_tokens));
    metric(o, "generated_tokens_total", "counter", "Tokens generated.", (double)gt);
    metric(o, "prefill_seconds_total", "counter", "Decode-step time attributed to prompt tokens.", ps);
    metric(o, "decode_seconds_total", "counter", "Decode-step time attributed to generated tokens.", ds);
    metric(o, "prefill_tokens_per_second", "gauge", "Average prefill speed (prompt tokens / prefill seconds).",
           ps > 0 ? (double)pt / ps : 0);
    metric(o, "decode_tokens_per_second", "gauge", "Average aggregate decode speed over all sequences.",
           ds > 0 ? (double)gt / ds : 0);
    unsigned long long steps = LOAD(m->decode_steps);
    metric(o, "decode_steps_total", "counter", "Batched decode calls.", (double)steps);
    metric(o, "decode_argmax_steps_total", "counter", "Decode calls answered with argmax ids (greedy, on the backend).",
           (double)LOAD(m->argmax_steps));
    metric(o, "batch_tokens_total", "counter", "Tokens in all batched decode calls.", (double)LOAD(m->batch_tokens));
    metric(o, "queue_depth", "gauge", "Sequences waiting for a slot.", LOAD(m->queue_depth));
    metric(o, "slots_busy", "gauge", "Slots generating or prefilling.", LOAD(m->slots_busy));
    metric(o, "slots_total", "gauge", "Parallel sequence slots.", m->slots_total);
    long long used = LOAD(m->kv_used);
    metric(o, "kv_cache_tokens", "gauge", "KV-cache positions in use over all slots.", (double)used);
    metric(o, "kv_cache_capacity_tokens", "gauge", "KV-cache positions over all slots.", (double)m->kv_capacity);
    metric(o, "kv_cache_usage_ratio", "gauge", "Share of KV-cache positions in use.",
           m->kv_capacity ? (double)used / (double)m->kv_capacity : 0);
    return o->data ? OB_OK : ob_fail(OB_ERR_NOMEM, "out of memory");
}
