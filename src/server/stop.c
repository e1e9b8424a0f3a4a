/* Stop-string matcher: see stop.h. Sizes are small (a few stop strings of at
 * most a few hundred bytes, held text shorter than the longest one), so the
 * plain quadratic scans below cost nothing next to a decode step. */
#include "server/stop.h"

#include <string.h>

void ob_stop_init(ob_stop_matcher *m, const char *const *stops, size_t n_stops) {
    memset(m, 0, sizeof *m);
    m->stops = stops;
    m->n_stops = n_stops;
}

void ob_stop_free(ob_stop_matcher *m) { ob_buf_free(&m->held); }

/* Earliest position of a full occurrence of any stop string in s[0..n), or n. */
static size_t earliest_match(const ob_stop_matcher *m, const char *s, size_t n) {
    size_t best = n;
    for (size_t i = 0; i < m->n_stops; i++) {
        size_t k = strlen(m->stops[i]);
        if (!k || k > n) continue;
        for (size_t p = 0; p + k <= n && p < best; p++)
            if (!memcmp(s + p, m->stops[i], k)) { best = p; break; }
    }
    return best;
}

/* Smallest p < limit such that s[p..n) is a proper prefix of some stop
 * string (bytes that must stay held), or limit when none is. */
static size_t partial_start(const ob_stop_matcher *m, const char *s, size_t n, size_t limit) {
    for (size_t p = 0; p < limit; p++) {
        size_t tail = n - p;
        for (size_t i = 0; i < m->n_stops; i++) {
            size_t k = strlen(m->stops[i]);
            if (tail < k && !memcmp(s + p, m->stops[i], tail)) return p;
        }
    }
    return limit;
}

/* Releases held[0..k) and keeps the rest. */
static void release(ob_stop_matcher *m, size_t k, ob_buf *out) {
    ob_buf_append(out, m->held.data, k);
    memmove(m->held.data, m->held.data + k, m->held.len - k);
    m->held.len -= k;
}

/* The answer is "the text before the earliest occurrence of any stop string".
 * A full match at `at` is final only when no earlier position could still
 * become a (longer) match: with stops "abcd" and "c", text "abc" must wait
 * for the next byte. */
bool ob_stop_push(ob_stop_matcher *m, const char *text, size_t len, ob_buf *out) {
    if (m->matched) return true;
    if (!m->n_stops) {
        ob_buf_append(out, text, len);
        return false;
    }
    if (ob_buf_append(&m->held, text, len)) return false;
    size_t n = m->held.len;
    size_t at = earliest_match(m, m->held.data, n);
    size_t keep = partial_start(m, m->held.data, n, at);
    if (at < n && keep == at) {
        ob_buf_append(out, m->held.data, at);
        m->held.len = 0;
        m->matched = true;
        return true;
    }
    release(m, keep, out);
    return false;
}

bool ob_stop_flush(ob_stop_matcher *m, ob_buf *out) {
    if (m->matched || !m->held.len) return m->matched;
    size_t at = earliest_match(m, m->held.data, m->held.len);
    m->matched = at < m->held.len;
    release(m, at, out);
    m->held.len = 0;
    return m->matched;
}
