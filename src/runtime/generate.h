/* A generation session: model + backend + tokenizer + sampler for one
 * sequence, with the KV cache kept across calls (multi-turn chat reuses the
 * common prefix). The CLI's run/chat and the tests use it; the server drives
 * backends directly with its own scheduler. */
#ifndef OB_GENERATE_H
#define OB_GENERATE_H

#include "backend/backend.h"
#include "runtime/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_session ob_session;

typedef struct ob_stop_list {
    const char **strs;  /* stop strings (text), may be NULL */
    size_t n;
} ob_stop_list;

/* Called with each piece of complete UTF-8 text as it is generated (may be
 * NULL). Return nonzero to stop. */
typedef int (*ob_text_fn)(void *user, const char *text, size_t len, int32_t id);

typedef struct ob_gen_stats {
    int n_prompt, n_gen, n_cached; /* n_cached: prompt tokens reused from the cache */
    double prefill_s, decode_s;
    const char *finish;            /* "stop" | "length" */
} ob_gen_stats;

ob_status ob_session_create(const ob_model *m, ob_backend *b, ob_session **out);
void ob_session_free(ob_session *s);
/* The ids now in the KV cache (prompt + generated). */
const int32_t *ob_session_ids(const ob_session *s, size_t *n);
void ob_session_reset(ob_session *s);

/* Feeds prompt ids (reusing the longest common prefix already cached), then
 * samples up to n_predict tokens, stopping at end-of-generation ids or a stop
 * string. out_ids (optional) receives generated ids (malloc'd). */
ob_status ob_session_generate(ob_session *s, const int32_t *prompt, size_t n_prompt, int n_predict,
                              const ob_sampler_params *sp, const ob_stop_list *stops, ob_text_fn on_text,
                              void *user, int32_t **out_ids, size_t *n_out, ob_gen_stats *stats);

/* Logits for every position of ids, from an empty cache (tests, `1bit logits`).
 * logits: [n x n_vocab], caller-allocated. */
ob_status ob_session_logits(ob_session *s, const int32_t *ids, size_t n, float *logits);

#ifdef __cplusplus
}
#endif
#endif
