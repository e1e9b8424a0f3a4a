/* Stop-string matcher (src/server/stop.c): text split at random token
 * boundaries must come out exactly as the text before the first stop string,
 * and after every push the matcher may hold back only the longest suffix that
 * could still start a stop string. Expectations come from strstr on the whole
 * text and a direct suffix scan, not from the matcher. */
#include "testutil.h"

#include "server/stop.c"

/* Length of the longest suffix of s[0..n) that is a proper prefix of a stop. */
static size_t longest_partial_suffix(const char *s, size_t n, const char *const *stops, size_t n_stops) {
    for (size_t k = n; k > 0; k--)
        for (size_t i = 0; i < n_stops; i++)
            if (k < strlen(stops[i]) && !memcmp(s + n - k, stops[i], k)) return k;
    return 0;
}

/* Position of the earliest stop string in s, or strlen(s). */
static size_t first_stop(const char *s, const char *const *stops, size_t n_stops) {
    size_t best = strlen(s);
    for (size_t i = 0; i < n_stops; i++) {
        const char *p = strstr(s, stops[i]);
        if (p && (size_t)(p - s) < best) best = (size_t)(p - s);
    }
    return best;
}

/* Feeds text in the given pieces and checks every intermediate state. */
static void check_split(const char *text, const size_t *cuts, size_t n_cuts, const char *const *stops,
                        size_t n_stops) {
    ob_stop_matcher m;
    ob_stop_init(&m, stops, n_stops);
    ob_buf out = { 0 };
    size_t end = first_stop(text, stops, n_stops), at = 0;
    bool matched = false;
    for (size_t c = 0; c <= n_cuts && !matched; c++) {
        size_t next = c < n_cuts ? cuts[c] : strlen(text);
        matched = ob_stop_push(&m, text + at, next - at, &out);
        at = next;
        assert_true(out.len <= end); /* never a byte of (or after) the match */
        if (out.len) assert_memory_equal(out.data, text, out.len);
        if (!matched)
            assert_int_equal(out.len, at - longest_partial_suffix(text, at, stops, n_stops));
    }
    if (!matched) matched = ob_stop_flush(&m, &out);
    assert_int_equal(matched, end < strlen(text));
    assert_int_equal(out.len, end);
    if (end) assert_memory_equal(out.data, text, end);
    ob_buf_free(&out);
    ob_stop_free(&m);
}

static void test_examples(void **state) {
    (void)state;
    const char *stops[] = { "\n\nUser:", "END" };
    size_t cuts1[] = { 5, 6, 7, 11 }; /* "Hello\n" "\n" "User" ":..." */
    check_split("Hello\n\nUser: hi", cuts1, 4, stops, 2);
    size_t cuts2[] = { 2, 4 };
    check_split("a\n\nb END", cuts2, 2, stops, 2);        /* a partial that does not complete */
    size_t cuts3[] = { 1, 2, 3 };
    check_split("EN", cuts3, 1, stops, 2);                /* flushed at the end */
    check_split("no stops here", NULL, 0, stops, 0);
    const char *overlap[] = { "aab" };
    size_t cuts4[] = { 1, 2, 3, 4 };
    check_split("aaaab!", cuts4, 4, overlap, 1);          /* overlapping partial prefixes */
    const char *utf[] = { "\xc3\xa9t\xc3\xa9" };          /* "été" */
    size_t cuts5[] = { 2, 3 };
    const char *nested[] = { "abcd", "c" };             /* "c" matches, but "abcd" could start earlier */
    size_t cuts6[] = { 3 };
    check_split("abcd", cuts6, 1, nested, 2);
    check_split("abce", cuts6, 1, nested, 2);
    check_split("caf\xc3\xa9 \xc3\xa9t\xc3\xa9 x", cuts5, 2, utf, 1);
}

static void test_after_match_ignored(void **state) {
    (void)state;
    const char *stops[] = { "xy" };
    ob_stop_matcher m;
    ob_stop_init(&m, stops, 1);
    ob_buf out = { 0 };
    assert_false(ob_stop_push(&m, "abx", 3, &out));
    assert_int_equal(out.len, 2);
    assert_true(ob_stop_push(&m, "yzz", 3, &out));
    assert_true(ob_stop_push(&m, "more", 4, &out));
    ob_stop_flush(&m, &out);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "ab", 2);
    ob_buf_free(&out);
    ob_stop_free(&m);
}

/* Random texts over a small alphabet (so stops occur and partially occur
 * often), random stop sets, random splits. */
static void test_random(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    const char alphabet[] = "ab\n:";
    for (int iter = 0; iter < 3000; iter++) {
        char text[64], stop_buf[3][8];
        const char *stops[3];
        size_t n = 1 + ob_test_rand(&seed) % 40, n_stops = 1 + ob_test_rand(&seed) % 3;
        for (size_t i = 0; i < n; i++) text[i] = alphabet[ob_test_rand(&seed) % 4];
        text[n] = 0;
        for (size_t s = 0; s < n_stops; s++) {
            size_t k = 1 + ob_test_rand(&seed) % 6;
            for (size_t i = 0; i < k; i++) stop_buf[s][i] = alphabet[ob_test_rand(&seed) % 4];
            stop_buf[s][k] = 0;
            stops[s] = stop_buf[s];
        }
        size_t cuts[64], n_cuts = 0;
        for (size_t i = 1; i < n; i++)
            if (ob_test_rand(&seed) % 3 == 0) cuts[n_cuts++] = i;
        check_split(text, cuts, n_cuts, stops, n_stops);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_after_match_ignored),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
