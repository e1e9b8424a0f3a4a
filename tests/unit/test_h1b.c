/* .h1b: round trips, layout and checksums checked against docs/FORMAT.md by
 * this test's own reading of the bytes, and corrupt files of every kind. */
#include "testutil.h"

#include "format/h1b.h"

#include <math.h>
#include <sys/stat.h>

/* ---- the spec, restated independently of h1b.c ------------------------- */
enum { HDR = 128, REC = 192 };
enum { F_VERSION = 8, F_FILE_SIZE = 16, F_ALIGN = 24, F_NT = 28, F_TABLE = 32, F_TABLE_SIZE = 40, F_META = 48,
       F_META_SIZE = 56, F_META_COUNT = 64, F_DATA = 72, F_DATA_SIZE = 80, F_DATA_SUM = 88, F_HEAD_SUM = 96 };
enum { R_TYPE = 128, R_NDIMS = 132, R_NE = 136, R_OFFSET = 168, R_NBYTES = 176, R_RESERVED = 184 };

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static uint64_t spec_head_sum(const uint8_t *f) {
    uint8_t h[HDR];
    memcpy(h, f, HDR);
    memset(h + F_HEAD_SUM, 0, 8);
    uint64_t data = rd64(f + F_DATA);
    return ob_hash64(f + HDR, (size_t)(data - HDR), ob_hash64(h, HDR, 0));
}

static uint64_t spec_data_sum(const uint8_t *p, uint64_t n) {
    uint64_t c = 0;
    for (uint64_t off = 0; off < n; off += 1u << 20) c = ob_hash64(p + off, (size_t)(n - off < (1u << 20) ? n - off : 1u << 20), c);
    return c;
}

/* Re-seals a deliberately damaged image so that the damage reaches the checks behind the checksum. */
static void reseal(uint8_t *f) { wr64(f + F_HEAD_SUM, spec_head_sum(f)); }

/* Record of the tensor called name, or NULL. */
static uint8_t *record(uint8_t *f, const char *name) {
    uint8_t *t = f + rd64(f + F_TABLE);
    for (uint32_t i = 0; i < rd32(f + F_NT); i++)
        if (!strcmp((char *)t + i * REC, name)) return t + i * REC;
    return NULL;
}

/* ---- files ------------------------------------------------------------------ */
static char tmpdir[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_h1b.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

/* Rotates over 8 buffers, so a few paths can be held at once. */
static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static uint8_t *slurp(const char *path, size_t *size) {
    char *d;
    assert_int_equal(ob_read_file(path, &d, size), OB_OK);
    return (uint8_t *)d;
}

/* ---- a model file with every implemented type and every metadata type ---- */
static void fill_random(void *p, size_t n, uint64_t *s) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)ob_test_rand(s);
}

static void add(ob_model_file *mf, const char *name, ob_type type, int n_dims, int64_t a, int64_t b, int64_t c,
                int64_t d, uint64_t *s, void **out) {
    int64_t ne[4] = { a, b, c, d };
    void *data;
    assert_int_equal(ob_model_file_new_tensor(mf, name, type, n_dims, ne, &data), OB_OK);
    fill_random(data, mf->tensors[mf->n_tensors - 1].nbytes, s);
    if (out) *out = data;
}

/* big: add a tensor over 1 MiB, so the data checksum spans several chunks. */
static void build_model(ob_model_file *mf, uint64_t seed, bool big) {
    memset(mf, 0, sizeof *mf);
    uint64_t s = seed;
    ob_meta *m = &mf->meta;
    assert_int_equal(ob_meta_set_str(m, OB_KEY_ARCH, "bitnet"), OB_OK);
    assert_int_equal(ob_meta_set_int(m, OB_KEY_EMBD, 512), OB_OK);
    assert_int_equal(ob_meta_set_int(m, "test.int_min", INT64_MIN), OB_OK);
    assert_int_equal(ob_meta_set_float(m, OB_KEY_ROPE_BASE, 500000.0), OB_OK);
    assert_int_equal(ob_meta_set_float(m, "test.float_tiny", 4.9e-324), OB_OK);
    assert_int_equal(ob_meta_set_float(m, "test.float_nan", NAN), OB_OK);
    assert_int_equal(ob_meta_set_bool(m, OB_KEY_TIED, true), OB_OK);
    assert_int_equal(ob_meta_set_bool(m, "test.false", false), OB_OK);
    assert_int_equal(ob_meta_set_strn(m, "test.str_nul", "a\0b\xff", 4), OB_OK);
    assert_int_equal(ob_meta_set_str(m, "test.str_empty", ""), OB_OK);
    const char *toks[] = { "<s>", "", "\xc4\xa0the", "x\0y", "</s>" };
    uint32_t lens[] = { 3, 0, 5, 3, 4 };
    assert_int_equal(ob_meta_set_str_arr(m, OB_KEY_TOK_TOKENS, toks, lens, 5), OB_OK);
    assert_int_equal(ob_meta_set_str_arr(m, "test.str_arr_empty", NULL, NULL, 0), OB_OK);
    int32_t types[] = { 3, 1, 1, INT32_MIN, INT32_MAX };
    assert_int_equal(ob_meta_set_i32_arr(m, OB_KEY_TOK_TYPES, types, 5), OB_OK);
    float scores[] = { 0.0f, -1.5f, 1e30f, -0.0f, INFINITY };
    assert_int_equal(ob_meta_set_f32_arr(m, OB_KEY_TOK_SCORES, scores, 5), OB_OK);
    assert_int_equal(ob_meta_set_f32_arr(m, "test.f32_empty", NULL, 0), OB_OK);

    void *p;
    add(mf, "f32.weight", OB_TYPE_F32, 2, 7, 3, 1, 1, &s, NULL);
    add(mf, "f16.weight", OB_TYPE_F16, 3, 5, 2, 3, 1, &s, NULL);
    add(mf, "bf16.weight", OB_TYPE_BF16, 1, 9, 1, 1, 1, &s, NULL);
    add(mf, "q8.weight", OB_TYPE_Q8_0, 2, 64, 3, 1, 1, &s, NULL);
    add(mf, "i8.weight", OB_TYPE_I8, 2, 10, 4, 1, 1, &s, NULL);
    add(mf, "i8.scale", OB_TYPE_F32, 1, 4, 1, 1, 1, &s, &p);
    for (int i = 0; i < 4; i++) ((float *)p)[i] = 0.25f * (float)i; /* 0 is allowed */
    /* t2: 200 columns pad to two blocks per row; real codes, padding code 1. */
    add(mf, "t2.weight", OB_TYPE_T2, 2, 200, 5, 1, 1, &s, &p);
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, 200);
    for (int r = 0; r < 5; r++) {
        ob_t2_zero_row((uint8_t *)p + r * rb, rb);
        for (int j = 0; j < 200; j++) ob_t2_set((uint8_t *)p + r * rb, j, (int)(ob_test_rand(&s) % 3) - 1);
    }
    add(mf, "t2.scale", OB_TYPE_F32, 1, 1, 1, 1, 1, &s, &p);
    ((float *)p)[0] = 0.0371f;
    add(mf, "i32.ids", OB_TYPE_I32, 4, 3, 2, 2, 2, &s, NULL);
    if (big) add(mf, "big.weight", OB_TYPE_F32, 2, 1024, 300, 1, 1, &s, NULL);
}

/* Compares two model files value by value (metadata in order, tensor bytes). */
static void assert_same(const ob_model_file *a, const ob_model_file *b) {
    assert_int_equal(a->meta.n, b->meta.n);
    for (size_t i = 0; i < a->meta.n; i++) {
        const ob_meta_entry *x = &a->meta.e[i], *y = &b->meta.e[i];
        assert_string_equal(x->key, y->key);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->count, y->count);
        switch (x->type) {
        case OB_META_INT:
        case OB_META_BOOL: assert_true(x->i == y->i); break;
        case OB_META_FLOAT: assert_memory_equal(&x->f, &y->f, sizeof x->f); break;
        case OB_META_STR:
            assert_int_equal(x->str_len, y->str_len);
            assert_memory_equal(x->str, y->str, x->str_len + 1);
            break;
        case OB_META_STR_ARR:
            for (uint64_t k = 0; k < x->count; k++) {
                assert_int_equal(x->str_lens[k], y->str_lens[k]);
                assert_memory_equal(x->strs[k], y->strs[k], x->str_lens[k] + 1);
            }
            break;
        case OB_META_I32_ARR:
        case OB_META_F32_ARR:
            if (x->count) assert_memory_equal(x->arr, y->arr, x->count * 4);
            break;
        }
    }
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (size_t i = 0; i < a->n_tensors; i++) {
        const ob_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->n_dims, y->n_dims);
        assert_memory_equal(x->ne, y->ne, sizeof x->ne);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
}

/* ---- round trip ----------------------------------------------------------- */
static void round_trip(uint32_t align) {
    ob_model_file src, back;
    build_model(&src, 42 + align, true);
    const char *path = tmp_path("rt.h1b");
    ob_h1b_write_opts opts = { .alignment = align };
    assert_int_equal(ob_h1b_write_ex(&src, path, &opts), OB_OK);
    assert_false(ob_file_exists(tmp_path("rt.h1b.tmp")));
    assert_int_equal(ob_h1b_open(path, &back), OB_OK);
    assert_same(&src, &back);
    assert_int_equal(ob_h1b_verify(&back), OB_OK);
    for (size_t i = 0; i < back.n_tensors; i++) {
        uintptr_t p = (uintptr_t)back.tensors[i].data;
        assert_true(p % align == 0);
        assert_true(p >= (uintptr_t)back.map.data && p + back.tensors[i].nbytes <= (uintptr_t)back.map.data + back.map.size);
    }
    assert_true(back.map.is_mmap); /* tensors point into the mapping */

    /* The bytes, read by this test per docs/FORMAT.md. */
    size_t size;
    uint8_t *f = slurp(path, &size);
    assert_memory_equal(f, "1bitH1B\0", 8);
    assert_int_equal(rd32(f + F_VERSION), 1);
    assert_int_equal(rd64(f + F_FILE_SIZE), size);
    assert_int_equal(rd32(f + F_ALIGN), align);
    assert_int_equal(rd32(f + F_NT), src.n_tensors);
    assert_int_equal(rd64(f + F_TABLE_SIZE), src.n_tensors * REC);
    assert_int_equal(rd64(f + F_META_COUNT), src.meta.n);
    uint64_t data = rd64(f + F_DATA), data_size = rd64(f + F_DATA_SIZE);
    assert_int_equal(data % align, 0);
    assert_int_equal(data + data_size, size);
    assert_true(rd64(f + F_HEAD_SUM) == spec_head_sum(f));
    assert_true(rd64(f + F_DATA_SUM) == spec_data_sum(f + data, data_size));
    for (size_t i = 0; i < src.n_tensors; i++) {
        const uint8_t *r = record(f, src.tensors[i].name);
        assert_non_null(r);
        assert_int_equal(rd32(r + R_TYPE), src.tensors[i].type);
        assert_int_equal(rd64(r + R_OFFSET) % align, 0);
        assert_memory_equal(f + data + rd64(r + R_OFFSET), src.tensors[i].data, src.tensors[i].nbytes);
    }
    /* ob_model_file_open finds it by extension, and by magic under another name. */
    ob_model_file again;
    assert_int_equal(ob_model_file_open(path, &again), OB_OK);
    assert_same(&src, &again);
    ob_model_file_close(&again);
    const char *other = tmp_path("rt.bin");
    assert_int_equal(rename(path, other), 0);
    assert_int_equal(ob_model_file_open(other, &again), OB_OK);
    assert_same(&src, &again);
    ob_model_file_close(&again);
    /* Writing the same model again gives the same bytes. */
    assert_int_equal(ob_h1b_write_ex(&back, path, &opts), OB_OK);
    size_t size2;
    uint8_t *f2 = slurp(path, &size2);
    assert_int_equal(size, size2);
    assert_memory_equal(f, f2, size);
    /* ... and from memory. */
    assert_int_equal(ob_h1b_open_mem(f, size, "mem", &again), OB_OK);
    assert_same(&src, &again);
    assert_int_equal(ob_h1b_verify(&again), OB_OK);
    ob_model_file_close(&again);
    free(f);
    free(f2);
    ob_model_file_close(&back);
    ob_model_file_close(&src);
}

static void test_round_trip_64(void **state) { (void)state; round_trip(64); }
static void test_round_trip_4096(void **state) { (void)state; round_trip(4096); }

static void test_empty_model(void **state) {
    (void)state;
    ob_model_file src = { 0 }, back;
    const char *path = tmp_path("empty.h1b");
    assert_int_equal(ob_h1b_write(&src, path), OB_OK);
    assert_int_equal(ob_h1b_open(path, &back), OB_OK);
    assert_int_equal(back.n_tensors, 0);
    assert_int_equal(back.meta.n, 0);
    assert_int_equal(ob_h1b_verify(&back), OB_OK);
    ob_model_file_close(&back);
}

/* ---- corruption ------------------------------------------------------------ */

/* The image of a small build_model (a few KiB, so each case is cheap). */
static uint8_t *good_image(size_t *size) {
    ob_model_file src;
    build_model(&src, 7, false);
    const char *path = tmp_path("good.h1b");
    assert_int_equal(ob_h1b_write(&src, path), OB_OK);
    ob_model_file_close(&src);
    return slurp(path, size);
}

/* Opening img must fail with a message that names the file and contains want. */
static void expect_fail(const uint8_t *img, size_t size, const char *want) {
    ob_model_file mf;
    ob_clear_error();
    ob_status st = ob_h1b_open_mem(img, size, "bad.h1b", &mf);
    if (st == OB_OK) fail_msg("opened a corrupt image (expected \"%s\")", want);
    const char *msg = ob_last_error();
    if (strncmp(msg, "bad.h1b: ", 9) != 0 || (want && !strstr(msg, want)))
        fail_msg("message \"%s\" (expected \"%s\")", msg, want ? want : "");
    assert_null(strchr(msg, '\n'));
    assert_null(mf.tensors);
    assert_null(mf.map.data);
}

static void test_data_checksum(void **state) {
    (void)state;
    size_t size;
    uint8_t *f = good_image(&size);
    uint64_t data = rd64(f + F_DATA);
    /* A flipped data byte (a tensor's, or padding's) opens, and verify catches it. */
    uint64_t where[] = { data, data + (size - data) / 2, size - 1, data + rd64(record(f, "f32.weight") + R_NBYTES) + 1 };
    for (size_t i = 0; i < OB_ARRAY_LEN(where); i++) {
        f[where[i]] ^= 0x10;
        ob_model_file mf;
        assert_int_equal(ob_h1b_open_mem(f, size, "flip.h1b", &mf), OB_OK);
        assert_int_equal(ob_h1b_verify(&mf), OB_ERR_FORMAT);
        assert_non_null(strstr(ob_last_error(), "data checksum"));
        ob_model_file_close(&mf);
        f[where[i]] ^= 0x10;
    }
    /* Verify refuses a model that was not read from .h1b. */
    ob_model_file plain;
    build_model(&plain, 1, false);
    assert_int_equal(ob_h1b_verify(&plain), OB_ERR_ARG);
    ob_model_file_close(&plain);
    free(f);
}

static void test_head_checksum(void **state) {
    (void)state;
    size_t size;
    uint8_t *f = good_image(&size);
    uint64_t data = rd64(f + F_DATA);
    /* Every byte of header, table, metadata and padding is covered. */
    for (uint64_t i = 0; i < data; i++) {
        f[i] ^= 0x01;
        expect_fail(f, size, NULL);
        f[i] ^= 0x01;
    }
    /* Fields the checksum cannot catch alone still fail with their own message. */
    f[F_HEAD_SUM] ^= 1;
    expect_fail(f, size, "checksum");
    free(f);
}

static void test_truncated(void **state) {
    (void)state;
    size_t size;
    uint8_t *f = good_image(&size);
    uint64_t data = rd64(f + F_DATA);
    for (uint64_t n = 0; n < data + 64; n += 7) expect_fail(f, (size_t)n, NULL);
    for (uint64_t n = data; n < size; n += 61) expect_fail(f, (size_t)n, "truncated");
    expect_fail(f, size - 1, "truncated");
    /* A file that ends early even though its header was rewritten to agree. */
    uint8_t *g = malloc(size);
    memcpy(g, f, size);
    uint64_t cut = size - 100;
    wr64(g + F_FILE_SIZE, cut);
    wr64(g + F_DATA_SIZE, cut - data);
    reseal(g);
    expect_fail(g, (size_t)cut, "run past the end");
    /* An appended byte is caught too. */
    uint8_t *h = malloc(size + 1);
    memcpy(h, f, size);
    h[size] = 0;
    expect_fail(h, size + 1, "header says");
    /* A real truncated file through ob_h1b_open. */
    const char *path = tmp_path("trunc.h1b");
    FILE *fp = fopen(path, "wb");
    assert_int_equal(fwrite(f, 1, 300, fp), 300);
    fclose(fp);
    ob_model_file mf;
    assert_int_not_equal(ob_h1b_open(path, &mf), OB_OK);
    assert_non_null(strstr(ob_last_error(), "trunc.h1b: "));
    assert_int_not_equal(ob_h1b_open(tmp_path("missing.h1b"), &mf), OB_OK);
    assert_non_null(strstr(ob_last_error(), "missing.h1b"));
    free(f);
    free(g);
    free(h);
}

/* Each case damages a copy of the image, re-seals the checksum, and expects the message. */
typedef void (*damage_fn)(uint8_t *f);
static void d_magic(uint8_t *f) { f[3] = 'X'; }
static void d_version(uint8_t *f) { wr32(f + F_VERSION, 2); }
static void d_align(uint8_t *f) { wr32(f + F_ALIGN, 96); }
static void d_reserved(uint8_t *f) { f[120] = 1; }
static void d_data_off(uint8_t *f) { wr64(f + F_DATA, rd64(f + F_DATA) + 64); }
static void d_table_past(uint8_t *f) { wr64(f + F_TABLE, UINT64_MAX - 100); }
static void d_meta_past(uint8_t *f) { wr64(f + F_META_SIZE, rd64(f + F_META_SIZE) + 1000000); }
static void d_overlap_regions(uint8_t *f) { wr64(f + F_META, rd64(f + F_TABLE) + 8); }
static void d_many_tensors(uint8_t *f) { wr32(f + F_NT, 0xffffffffu); }
static void d_table_size(uint8_t *f) { wr32(f + F_NT, rd32(f + F_NT) - 1); }
static void d_many_meta(uint8_t *f) { wr64(f + F_META_COUNT, UINT64_MAX); }
static void d_meta_count(uint8_t *f) { wr64(f + F_META_COUNT, rd64(f + F_META_COUNT) - 1); }
static void d_offset_past(uint8_t *f) { wr64(record(f, "f32.weight") + R_OFFSET, 1ull << 62); }
static void d_offset_wrap(uint8_t *f) { wr64(record(f, "f32.weight") + R_OFFSET, UINT64_MAX - 63); }
static void d_unaligned(uint8_t *f) { wr64(record(f, "f32.weight") + R_OFFSET, 8); }
static void d_overlap(uint8_t *f) { wr64(record(f, "bf16.weight") + R_OFFSET, rd64(record(f, "f16.weight") + R_OFFSET)); }
static void d_huge_dim(uint8_t *f) { wr64(record(f, "f32.weight") + R_NE + 8, 1ull << 41); }
static void d_neg_dim(uint8_t *f) { wr64(record(f, "f32.weight") + R_NE, (uint64_t)-7); }
static void d_big_shape(uint8_t *f) { /* 2^40 x 2^40 fits no file: nbytes cannot match */
    uint8_t *r = record(f, "i32.ids");
    wr64(r + R_NE, 1ull << 40);
    wr64(r + R_NE + 8, 1ull << 40);
}
static void d_unused_dim(uint8_t *f) { wr64(record(f, "bf16.weight") + R_NE + 24, 2); }
static void d_ndims(uint8_t *f) { wr32(record(f, "f32.weight") + R_NDIMS, 5); }
static void d_nbytes(uint8_t *f) { wr64(record(f, "f32.weight") + R_NBYTES, 4); }
static void d_q8_shape(uint8_t *f) { wr64(record(f, "q8.weight") + R_NE, 63); }
static void d_t3(uint8_t *f) { wr32(record(f, "t2.weight") + R_TYPE, OB_TYPE_T3); }
static void d_t34(uint8_t *f) { wr32(record(f, "t2.weight") + R_TYPE, OB_TYPE_T34); }
static void d_type(uint8_t *f) { wr32(record(f, "t2.weight") + R_TYPE, 99); }
static void d_rec_reserved(uint8_t *f) { f[(record(f, "t2.weight") - f) + R_RESERVED + 3] = 1; }
static void d_dup_name(uint8_t *f) { memcpy(record(f, "f16.weight"), "f32.weight", 11); }
static void d_empty_name(uint8_t *f) { record(f, "f16.weight")[0] = 0; }
static void d_long_name(uint8_t *f) { memset(record(f, "f16.weight"), 'a', 128); }
static void d_ctrl_name(uint8_t *f) { record(f, "f16.weight")[1] = '\n'; }
static void d_name_pad(uint8_t *f) { record(f, "f16.weight")[100] = 'z'; }
static void d_scale_nan(uint8_t *f) {
    float nan = NAN;
    memcpy(f + rd64(f + F_DATA) + rd64(record(f, "t2.scale") + R_OFFSET), &nan, 4);
    wr64(f + F_DATA_SUM, 0); /* the data checksum is not what catches it */
}
static void d_scale_neg(uint8_t *f) {
    float v = -1.0f;
    memcpy(f + rd64(f + F_DATA) + rd64(record(f, "i8.scale") + R_OFFSET) + 8, &v, 4);
}
static void d_scale_inf(uint8_t *f) {
    float v = INFINITY;
    memcpy(f + rd64(f + F_DATA) + rd64(record(f, "i8.scale") + R_OFFSET) + 12, &v, 4);
}
static void d_scale_type(uint8_t *f) { /* t2.scale [1] as i32 [1]: same bytes */
    wr32(record(f, "t2.scale") + R_TYPE, OB_TYPE_I32);
}
/* Metadata: the first entry is general.architecture = "bitnet" (key 20 bytes). */
static uint8_t *meta0(uint8_t *f) { return f + rd64(f + F_META); }
static void d_key_len(uint8_t *f) { wr32(meta0(f), 0xfffffff0u); }
static void d_key_zero(uint8_t *f) { wr32(meta0(f), 0); }
static void d_key_nul(uint8_t *f) { meta0(f)[4 + 20] = 'x'; }
static void d_key_ctrl(uint8_t *f) { meta0(f)[4 + 3] = 0x01; }
static void d_meta_type(uint8_t *f) { wr32(meta0(f) + 25, 77); }
static void d_str_len(uint8_t *f) { wr64(meta0(f) + 29, UINT64_MAX); }
static void d_str_nul(uint8_t *f) { meta0(f)[29 + 8 + 6] = 'x'; }
/* The value of the entry whose key is key (the key's u32 length, bytes, 0 and u32 type skipped). */
static uint8_t *meta_value(uint8_t *f, const char *key) {
    uint8_t *m = meta0(f), *end = m + rd64(f + F_META_SIZE);
    size_t klen = strlen(key);
    for (uint8_t *p = m + 4; p + klen < end; p++)
        if (rd32(p - 4) == klen && !memcmp(p, key, klen + 1)) return p + klen + 1 + 4;
    fail_msg("metadata %s not found", key);
    return NULL;
}
static void d_dup_key(uint8_t *f) { /* same length, so the block still parses */
    memcpy(meta_value(f, "test.str_nul") - 5 - 12, "test.int_min", 12);
}
static void d_arr_count(uint8_t *f) { wr64(meta_value(f, OB_KEY_TOK_TOKENS), 1ull << 60); }
static void d_f32_count(uint8_t *f) { wr64(meta_value(f, OB_KEY_TOK_SCORES), (1ull << 62) + 1); }
static void d_bool(uint8_t *f) { *meta_value(f, OB_KEY_TIED) = 2; }
static void d_arr_str(uint8_t *f) { /* string 2 of the tokens claims more bytes than are left */
    uint8_t *v = meta_value(f, OB_KEY_TOK_TOKENS);
    wr32(v + 8 + 4 + 3 + 1 + 4 + 0 + 1, 0x7fffffffu);
}

static void test_corrupt(void **state) {
    (void)state;
    static const struct { damage_fn fn; const char *want; } cases[] = {
        { d_magic, "bad magic" },          { d_version, "version 2 is not supported" },
        { d_align, "alignment" },          { d_reserved, "reserved header byte" },
        { d_data_off, "data" },            { d_table_past, "tensor table" },
        { d_meta_past, "metadata" },       { d_overlap_regions, "overlap" },
        { d_many_tensors, "tensors" },     { d_table_size, "tensor table" },
        { d_many_meta, "metadata entries" }, { d_meta_count, "stray bytes" },
        { d_offset_past, "run past the end" }, { d_offset_wrap, "run past the end" },
        { d_unaligned, "aligned" },        { d_overlap, "overlap" },
        { d_huge_dim, "bad size" },        { d_neg_dim, "bad size" },
        { d_big_shape, "invalid for type i32" },          { d_unused_dim, "bad size" },
        { d_ndims, "dimensions" },         { d_nbytes, "need" },
        { d_q8_shape, "invalid for type q8_0" },
        { d_t3, "tensor type t3 is not supported yet" }, { d_t34, "tensor type t34 is not supported yet" },
        { d_type, "unknown tensor type" }, { d_rec_reserved, "reserved" },
        { d_dup_name, "duplicate tensor f32.weight" }, { d_empty_name, "bad name" },
        { d_long_name, "bad name" },       { d_ctrl_name, "bad name" },
        { d_name_pad, "padding" },         { d_scale_nan, "t2.scale holds nan" },
        { d_scale_neg, "i8.scale holds -1" }, { d_scale_inf, "i8.scale holds inf" },
        { d_scale_type, "expected f32" },
        { d_key_len, "bad key" },          { d_key_zero, "bad key" },
        { d_key_nul, "bad key" },          { d_key_ctrl, "bad key" },
        { d_meta_type, "unknown value type 77" }, { d_str_len, "string runs past" },
        { d_str_nul, "string runs past" }, { d_dup_key, "duplicate metadata key test.int_min" },
        { d_arr_count, "cannot fit" },     { d_f32_count, "array runs past" },
        { d_bool, "bool value 2" },        { d_arr_str, "string 2 runs past" },
    };
    size_t size;
    uint8_t *f = good_image(&size);
    /* The first metadata entry is the one the d_key/d_str cases assume. */
    assert_int_equal(rd32(meta0(f)), 20);
    assert_memory_equal(meta0(f) + 4, "general.architecture", 21);
    assert_int_equal(rd32(meta0(f) + 25), 3);
    assert_int_equal(rd64(meta0(f) + 29), 6);
    uint8_t *g = malloc(size);
    for (size_t i = 0; i < OB_ARRAY_LEN(cases); i++) {
        memcpy(g, f, size);
        cases[i].fn(g);
        if (cases[i].fn != d_magic) reseal(g);
        expect_fail(g, size, cases[i].want);
    }
    free(g);
    free(f);
}

/* Random damage behind a valid checksum: either it opens or it fails with a
 * message; never a crash (this runs under ASan/UBSan in `make asan`). */
static void test_random_damage(void **state) {
    (void)state;
    uint64_t s = ob_test_seed();
    size_t size;
    uint8_t *f = good_image(&size);
    uint64_t data = rd64(f + F_DATA);
    uint8_t *g = malloc(size);
    int opened = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(g, f, size);
        int n = 1 + (int)(ob_test_rand(&s) % 4);
        for (int k = 0; k < n; k++) {
            uint64_t at = HDR + ob_test_rand(&s) % (data - HDR);
            uint64_t r = ob_test_rand(&s);
            if (r & 1) g[at] = (uint8_t)(r >> 8);
            else g[at] ^= (uint8_t)(1u << (r >> 8 & 7));
        }
        reseal(g);
        ob_model_file mf;
        ob_clear_error();
        if (ob_h1b_open_mem(g, size, "bad.h1b", &mf) == OB_OK) {
            opened++;
            ob_model_file_close(&mf);
        } else {
            assert_true(strncmp(ob_last_error(), "bad.h1b: ", 9) == 0);
        }
    }
    print_message("random damage: %d of 3000 still opened (damage inside string/array values)\n", opened);
    free(g);
    free(f);
}

/* ---- the writer refuses what the reader would ------------------------------ */
static void test_writer_refuses(void **state) {
    (void)state;
    const char *path = tmp_path("refused.h1b");
    ob_model_file mf;
    build_model(&mf, 3, false);
    /* NaN scale. */
    float *scale = (float *)ob_model_file_find(&mf, "t2.scale")->data;
    *scale = NAN;
    assert_int_equal(ob_h1b_write(&mf, path), OB_ERR_FORMAT);
    assert_non_null(strstr(ob_last_error(), "t2.scale"));
    assert_false(ob_file_exists(path));
    assert_false(ob_file_exists(tmp_path("refused.h1b.tmp")));
    *scale = 1.0f;
    /* Bad alignment. */
    ob_h1b_write_opts opts = { .alignment = 100 };
    assert_int_equal(ob_h1b_write_ex(&mf, path, &opts), OB_ERR_ARG);
    opts.alignment = 32;
    assert_int_equal(ob_h1b_write_ex(&mf, path, &opts), OB_ERR_ARG);
    /* A bad metadata key. */
    assert_int_equal(ob_meta_set_int(&mf.meta, "bad\tkey", 1), OB_OK);
    assert_int_equal(ob_h1b_write(&mf, path), OB_ERR_ARG);
    assert_non_null(strstr(ob_last_error(), "metadata key"));
    ob_model_file_close(&mf);
    /* A reserved type sneaked into the table. */
    build_model(&mf, 4, false);
    mf.tensors[0].type = OB_TYPE_T3;
    assert_int_equal(ob_h1b_write(&mf, path), OB_ERR_UNSUPPORTED);
    assert_non_null(strstr(ob_last_error(), "tensor type t3 is not supported yet"));
    mf.tensors[0].type = OB_TYPE_F32;
    /* A directory that does not exist: an IO error, nothing left behind. */
    assert_int_equal(ob_h1b_write(&mf, tmp_path("no/such/dir.h1b")), OB_ERR_IO);
    assert_false(ob_file_exists(path));
    ob_model_file_close(&mf);
}

/* ---- fixtures: every importer's output survives .h1b unchanged -------------- */
static void fixture_round_trip(const char *rel) {
    char src_path[4096];
    OB_REQUIRE_SHARED(src_path, rel);
    ob_model_file src, back;
    if (ob_model_file_open(src_path, &src) != OB_OK) fail_msg("%s: %s", rel, ob_last_error());
    const char *path = tmp_path("fixture.h1b");
    assert_int_equal(ob_h1b_write(&src, path), OB_OK);
    assert_int_equal(ob_h1b_open(path, &back), OB_OK);
    assert_int_equal(ob_h1b_verify(&back), OB_OK);
    assert_same(&src, &back);
    /* Ternary codes and scales, element by element through the T2 accessor. */
    int ternary = 0;
    for (size_t i = 0; i < src.n_tensors; i++) {
        const ob_tensor *a = &src.tensors[i], *b = ob_model_file_find(&back, a->name);
        assert_non_null(b);
        if (a->type != OB_TYPE_T2) continue;
        ternary++;
        for (int64_t r = 0; r < ob_tensor_rows(a); r += 7)
            for (int64_t c = 0; c < a->ne[0]; c++) assert_int_equal(ob_tensor_t2_get(a, r, c), ob_tensor_t2_get(b, r, c));
    }
    if (strstr(rel, "bitnet")) assert_true(ternary > 0);
    ob_model_file_close(&back);
    ob_model_file_close(&src);
}

static void test_fixture_hf(void **state) { (void)state; fixture_round_trip("fixtures/bitnet-tiny"); }
static void test_fixture_i2s(void **state) { (void)state; fixture_round_trip("fixtures/bitnet-tiny-gguf/bitnet-tiny-i2_s.gguf"); }
static void test_fixture_tq2(void **state) { (void)state; fixture_round_trip("fixtures/bitnet-tiny-gguf/bitnet-tiny-tq2_0.gguf"); }
static void test_fixture_tq1(void **state) { (void)state; fixture_round_trip("fixtures/bitnet-tiny-gguf/bitnet-tiny-tq1_0.gguf"); }
static void test_fixture_stories(void **state) { (void)state; fixture_round_trip("data/stories260K/stories260K.gguf"); }

/* The three GGUF encodings and the HF checkpoint, each through .h1b, hold the
 * same ternary codes and the same scales (fixtures/bitnet-tiny-gguf/README.md). */
static void test_fixture_same_weights(void **state) {
    (void)state;
    static const char *rel[] = { "fixtures/bitnet-tiny", "fixtures/bitnet-tiny-gguf/bitnet-tiny-i2_s.gguf",
                                 "fixtures/bitnet-tiny-gguf/bitnet-tiny-tq2_0.gguf",
                                 "fixtures/bitnet-tiny-gguf/bitnet-tiny-tq1_0.gguf" };
    ob_model_file h1b[4];
    for (int k = 0; k < 4; k++) {
        char src_path[4096];
        OB_REQUIRE_SHARED(src_path, rel[k]);
        ob_model_file src;
        if (ob_model_file_open(src_path, &src) != OB_OK) fail_msg("%s: %s", rel[k], ob_last_error());
        const char *path = tmp_path(k == 0 ? "w0.h1b" : k == 1 ? "w1.h1b" : k == 2 ? "w2.h1b" : "w3.h1b");
        assert_int_equal(ob_h1b_write(&src, path), OB_OK);
        ob_model_file_close(&src);
        assert_int_equal(ob_h1b_open(path, &h1b[k]), OB_OK);
    }
    int compared = 0;
    for (size_t i = 0; i < h1b[0].n_tensors; i++) {
        const ob_tensor *a = &h1b[0].tensors[i];
        if (a->type != OB_TYPE_T2 && !ob_str_ends_with(a->name, ".scale")) continue;
        for (int k = 1; k < 4; k++) {
            const ob_tensor *b = ob_model_file_find(&h1b[k], a->name);
            if (!b) fail_msg("%s: no %s", rel[k], a->name);
            assert_int_equal(a->type, b->type);
            assert_memory_equal(a->ne, b->ne, sizeof a->ne);
            assert_memory_equal(a->data, b->data, a->nbytes);
        }
        compared++;
    }
    assert_int_equal(compared, 3 * 7 * 2); /* 3 layers x 7 linears, weight + scale */
    for (int k = 0; k < 4; k++) ob_model_file_close(&h1b[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_64),   cmocka_unit_test(test_round_trip_4096),
        cmocka_unit_test(test_empty_model),     cmocka_unit_test(test_data_checksum),
        cmocka_unit_test(test_head_checksum),   cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),         cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_writer_refuses),  cmocka_unit_test(test_fixture_hf),
        cmocka_unit_test(test_fixture_i2s),     cmocka_unit_test(test_fixture_tq2),
        cmocka_unit_test(test_fixture_tq1),     cmocka_unit_test(test_fixture_stories),
        cmocka_unit_test(test_fixture_same_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
