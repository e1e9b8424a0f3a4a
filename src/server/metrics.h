/* Server counters and gauges, rendered in the Prometheus text format
 * (GET /metrics). Every field is updated with relaxed atomics from the HTTP
 * worker threads and the scheduler thread; a scrape reads a consistent-enough
 * snapshot without stopping anyone. */
/* Internal to src/server; C only (C11 atomics). */
#ifndef OB_SERVER_METRICS_H
#define OB_SERVER_METRICS_H

#include "core/core.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* HTTP routes counted separately (index into ob_metrics.requests). */
typedef enum ob_route_id {
    OB_ROUTE_CHAT, OB_ROUTE_COMPLETIONS, OB_ROUTE_MODELS, OB_ROUTE_HEALTH, OB_ROUTE_TOKENIZE,
    OB_ROUTE_DETOKENIZE, OB_ROUTE_METRICS, OB_ROUTE_EMBEDDINGS, OB_ROUTE_OTHER, OB_ROUTE_COUNT
} ob_route_id;

typedef struct ob_metrics {
    atomic_ullong requests[OB_ROUTE_COUNT];  /* HTTP requests by route */
    atomic_ullong responses_4xx, responses_5xx;
    atomic_ullong rejected_busy;             /* 503: queue full */
    atomic_ullong disconnects;               /* clients gone mid-generation */
    atomic_ullong generations;               /* choices finished (any reason) */
    atomic_ullong prompt_tokens;             /* prompt tokens run through the model */
    atomic_ullong cached_tokens;             /* prompt tokens reused from a KV cache */
    atomic_ullong generated_tokens;
    atomic_ullong decode_steps, batch_tokens;/* batched decode calls and their tokens */
    atomic_ullong argmax_steps;              /* decode calls where the backend chose the ids */
    atomic_ullong prefill_ns, decode_ns;     /* step time split by token share */
    atomic_int queue_depth, slots_busy;
    atomic_llong kv_used;                    /* positions held in all KV slots */
    int slots_total;
    long long kv_capacity;                   /* slots x context */
} ob_metrics;

/* Appends the text exposition (version 0.0.4) to out. */
ob_status ob_metrics_render(ob_metrics *m, ob_buf *out);

#ifdef __cplusplus
}
#endif
#endif
