/* Stop strings for streamed text.
 *
 * Generated text arrives a token at a time, and a stop string may straddle
 * tokens ("\n\nUser:" can come as "\n", "\nUser", ":"). The matcher holds back
 * every byte that could still be the start of a stop string and releases it
 * only once it cannot be: a client never receives bytes that later turn out
 * to belong to a match. Text fed in must be complete UTF-8 (the detokenizer's
 * stream holds back partial characters); released text then is too, because a
 * stop string starts with a lead byte. Depends on core only. */
#ifndef OB_SERVER_STOP_H
#define OB_SERVER_STOP_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_stop_matcher {
    const char *const *stops; /* borrowed, n_stops NUL-terminated non-empty strings */
    size_t n_stops;
    ob_buf held;              /* received, not yet released: a prefix of some stop string */
    bool matched;
} ob_stop_matcher;

void ob_stop_init(ob_stop_matcher *m, const char *const *stops, size_t n_stops);
void ob_stop_free(ob_stop_matcher *m);

/* Feeds text[0..len). Appends to out the bytes that can no longer be part of a
 * stop string. On a full match, appends the text before it, drops the rest,
 * sets m->matched and returns true; later pushes are ignored. */
bool ob_stop_push(ob_stop_matcher *m, const char *text, size_t len, ob_buf *out);

/* End of generation: releases the held text up to the first stop string in
 * it (a match may be pending behind a longer partial one) or all of it.
 * Returns true when a stop string matched, now or before. */
bool ob_stop_flush(ob_stop_matcher *m, ob_buf *out);

#ifdef __cplusplus
}
#endif
#endif
