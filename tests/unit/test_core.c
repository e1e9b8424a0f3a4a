/* Core: JSON reader, half floats, hash, thread pool, metadata, type table. */
#include "testutil.h"

#include "core/json.h"
#include "core/threadpool.h"
#include "format/meta.h"
#include "format/types.h"

#include <math.h>
#include <stdatomic.h>

static void test_json_values(void **state) {
    (void)state;
    const char *txt = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83e\\udd99\\n\"], \"b\": {\"c\": \"d\"}, \"a2\": 0}";
    ob_json_doc doc;
    assert_int_equal(ob_json_parse(txt, strlen(txt), &doc), OB_OK);
    const ob_json *a = ob_json_get(doc.root, "a");
    assert_non_null(a);
    assert_int_equal(a->count, 5);
    assert_true(ob_json_at(a, 0)->number == 1.0);
    assert_true(ob_json_at(a, 1)->number == -2500.0);
    assert_true(ob_json_at(a, 2)->boolean);
    assert_int_equal(ob_json_at(a, 3)->type, OB_JSON_NULL);
    const ob_json *s = ob_json_at(a, 4);
    assert_int_equal(s->str_len, 8);
    assert_memory_equal(s->str, "x\xc3\xa9\xf0\x9f\xa6\x99\n", 8);
    assert_string_equal(ob_json_get_str(ob_json_get(doc.root, "b"), "c"), "d");
    assert_true(ob_json_get_num(doc.root, "a2", 5) == 0);
    assert_true(ob_json_get_num(doc.root, "zz", 5) == 5);
    ob_json_free(&doc);
}

static void test_json_rejects(void **state) {
    (void)state;
    const char *bad[] = { "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\ud800\"", "\"\x01\"", "tru",
                          "[1] x", "\"\xff\"", "\"\xc0\xaf\"", "{\"a\":1,}", "-", "1e", "\"abc" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ob_json_doc doc;
        assert_int_equal(ob_json_parse(bad[i], strlen(bad[i]), &doc), OB_ERR_FORMAT);
        assert_true(strstr(ob_last_error(), "JSON") != NULL);
    }
    /* Deep nesting is refused, not a stack overflow. */
    char deep[5001];
    memset(deep, '[', 5000);
    deep[5000] = 0;
    ob_json_doc doc;
    assert_int_equal(ob_json_parse(deep, 5000, &doc), OB_ERR_FORMAT);
}

static void test_half_floats(void **state) {
    (void)state;
    /* Every f16 bit pattern round-trips through f32 (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ob_f16_to_f32((uint16_t)h);
        if (isnan(f)) assert_true(isnan(ob_f16_to_f32(ob_f32_to_f16(f))));
        else assert_int_equal(ob_f32_to_f16(f), h);
    }
    assert_true(ob_f16_to_f32(0x3c00) == 1.0f);
    assert_true(ob_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_int_equal(ob_f32_to_f16(65520.0f), 0x7c00);     /* rounds to inf */
    assert_int_equal(ob_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(ob_f32_to_f16(ldexpf(1, -25)), 0);     /* tie to even: 0 */
    assert_int_equal(ob_f32_to_f16(ldexpf(3, -26)), 1);     /* 0.75 ulp: up */
    assert_int_equal(ob_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie to even */
    assert_int_equal(ob_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ob_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) assert_int_equal(ob_f32_to_bf16(f), h);
    }
    assert_int_equal(ob_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);  /* tie to even */
    assert_int_equal(ob_f32_to_bf16(1.0f + ldexpf(3, -8)), 0x3f82);
}

static void test_hash(void **state) {
    (void)state;
    uint8_t buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (uint8_t)(i * 7);
    uint64_t h = ob_hash64(buf, 300, 0);
    assert_true(h == ob_hash64(buf, 300, 0));
    buf[150] ^= 1;
    assert_true(h != ob_hash64(buf, 300, 0));
    for (size_t n = 0; n < 70; n++) assert_true(ob_hash64(buf, n, 1) != ob_hash64(buf, n, 2));
}

typedef struct { _Atomic int64_t sum; int64_t n; } pool_job;
static void pool_task(void *arg, int ith, int nth) {
    pool_job *j = arg;
    int64_t b, e, s = 0;
    ob_split_range(j->n, ith, nth, 16, &b, &e);
    for (int64_t i = b; i < e; i++) s += i;
    atomic_fetch_add(&j->sum, s);
}

static void test_threadpool(void **state) {
    (void)state;
    for (int nt = 1; nt <= 5; nt++) {
        ob_pool *pool;
        assert_int_equal(ob_pool_create(nt, &pool), OB_OK);
        for (int rep = 0; rep < 200; rep++) {
            pool_job j = { 0, 1000 + rep };
            ob_pool_run(pool, pool_task, &j);
            assert_int_equal(j.sum, j.n * (j.n - 1) / 2);
        }
        ob_pool_destroy(pool);
    }
    /* Split ranges tile [0, n) exactly, in aligned chunks. */
    for (int nth = 1; nth < 9; nth++) {
        int64_t prev = 0;
        for (int i = 0; i < nth; i++) {
            int64_t b, e;
            ob_split_range(1001, i, nth, 64, &b, &e);
            assert_int_equal(b, prev);
            assert_true(b % 64 == 0 || b == 1001);
            prev = e;
        }
        assert_int_equal(prev, 1001);
    }
}

static void test_meta(void **state) {
    (void)state;
    ob_meta m = { 0 };
    assert_int_equal(ob_meta_set_int(&m, "a", 5), OB_OK);
    assert_int_equal(ob_meta_set_str(&m, "s", "hello"), OB_OK);
    assert_int_equal(ob_meta_set_int(&m, "a", 7), OB_OK); /* replaces */
    const char *strs[] = { "x", "yz" };
    assert_int_equal(ob_meta_set_str_arr(&m, "arr", strs, NULL, 2), OB_OK);
    float f[3] = { 1, 2, 3 };
    assert_int_equal(ob_meta_set_f32_arr(&m, "f", f, 3), OB_OK);
    assert_int_equal(m.n, 4);
    assert_int_equal(ob_meta_int(&m, "a", 0), 7);
    assert_string_equal(ob_meta_str(&m, "s", NULL), "hello");
    assert_string_equal(ob_meta_find(&m, "arr")->strs[1], "yz");
    assert_true(((float *)ob_meta_find(&m, "f")->arr)[2] == 3.0f);
    assert_int_equal(ob_meta_int(&m, "missing", -1), -1);
    ob_meta_free(&m);
}

static void test_types(void **state) {
    (void)state;
    assert_int_equal(ob_type_row_bytes(OB_TYPE_T2, 2560), 640);
    assert_int_equal(ob_type_row_bytes(OB_TYPE_T2, 129), 64); /* padded to 256 */
    assert_int_equal(ob_type_row_bytes(OB_TYPE_Q8_0, 64), 68);
    assert_int_equal(ob_type_row_bytes(OB_TYPE_Q8_0, 65), 0);
    assert_int_equal(ob_type_row_bytes(OB_TYPE_F16, 7), 14);
    uint8_t row[64];
    ob_t2_zero_row(row, sizeof row);
    for (int j = 0; j < 256; j++) assert_int_equal(ob_t2_get(row, j), 0);
    for (int j = 0; j < 256; j++) ob_t2_set(row, j, (j % 3) - 1);
    for (int j = 0; j < 256; j++) assert_int_equal(ob_t2_get(row, j), (j % 3) - 1);
    /* The documented layout: weight j of a block is byte j%32, bits 6-2*(j/32). */
    assert_int_equal((row[5] >> 6) & 3, (5 % 3));
    assert_int_equal((row[5] >> 0) & 3, ((5 + 96) % 3));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values), cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_half_floats), cmocka_unit_test(test_hash),
        cmocka_unit_test(test_threadpool),  cmocka_unit_test(test_meta),
        cmocka_unit_test(test_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
