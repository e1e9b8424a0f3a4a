/* GGUF importer: the shared fixtures, every supported tensor type encoded here
 * from the format's spec text (fixtures/bitnet-tiny-gguf/README.md), and
 * corrupt files that must fail cleanly. */
#include "testutil.h"

#include "format/gguf.h"
#include "format/model_file.h"

#include <math.h>

/* ---- a small GGUF writer (independent of the importer) ------------------- */

typedef struct bytes {
    uint8_t *d;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put_u32(bytes *b, uint32_t v) {
    uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    put(b, x, 4);
}
static void put_u64(bytes *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(bytes *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_str(bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* Metadata is written as a list of pairs into `kv`, counted in n_kv. */
typedef struct kvs {
    bytes b;
    uint64_t n;
} kvs;
enum { V_U32 = 4, V_I32 = 5, V_F32 = 6, V_BOOL = 7, V_STR = 8, V_ARR = 9 };
static void kv_u32(kvs *k, const char *key, uint32_t v) {
    put_str(&k->b, key), put_u32(&k->b, V_U32), put_u32(&k->b, v), k->n++;
}
static void kv_f32(kvs *k, const char *key, float v) {
    put_str(&k->b, key), put_u32(&k->b, V_F32), put_f32(&k->b, v), k->n++;
}
static void kv_str(kvs *k, const char *key, const char *v) {
    put_str(&k->b, key), put_u32(&k->b, V_STR), put_str(&k->b, v), k->n++;
}

typedef struct tensor_spec {
    const char *name;
    int n_dims;
    uint64_t ne[4];
    uint32_t type;
    const uint8_t *data;
    size_t nbytes;
} tensor_spec;

/* Where the writer put things, for corrupting them later. */
typedef struct layout {
    size_t ne0_at[16], type_at[16], offset_at[16], data_at[16];
    size_t n_tensors_at, n_kv_at, first_key_len_at, data_start;
} layout;

/* header, metadata, tensor infos, data (each tensor at a multiple of align,
 * 32 unless general.alignment says otherwise; the last tensor ends the file,
 * so any truncation cuts real bytes). */
static bytes write_gguf_aligned(const kvs *k, const tensor_spec *t, int n, size_t align, layout *lay) {
    bytes b = { 0 };
    layout l = { 0 };
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    l.n_tensors_at = b.n;
    put_u64(&b, (uint64_t)n);
    l.n_kv_at = b.n;
    put_u64(&b, k->n);
    l.first_key_len_at = b.n;
    put(&b, k->b.d, k->b.n);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, (uint32_t)t[i].n_dims);
        l.ne0_at[i] = b.n;
        for (int d = 0; d < t[i].n_dims; d++) put_u64(&b, t[i].ne[d]);
        l.type_at[i] = b.n;
        put_u32(&b, t[i].type);
        l.offset_at[i] = b.n;
        put_u64(&b, off);
        off = (off + t[i].nbytes + align - 1) / align * align;
    }
    static const uint8_t zeros[1024];
    put(&b, zeros, (align - b.n % align) % align);
    l.data_start = b.n;
    for (int i = 0; i < n; i++) {
        l.data_at[i] = b.n;
        put(&b, t[i].data, t[i].nbytes);
        if (i + 1 < n) put(&b, zeros, (align - b.n % align) % align);
    }
    if (lay) *lay = l;
    return b;
}
static bytes write_gguf(const kvs *k, const tensor_spec *t, int n, layout *lay) {
    return write_gguf_aligned(k, t, n, 32, lay);
}

static void llama_meta(kvs *k, const char *arch) {
    char key[96];
    kv_str(k, "general.architecture", arch);
#define AK(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    kv_u32(k, AK("embedding_length"), 256);
    kv_u32(k, AK("block_count"), 1);
    kv_u32(k, AK("feed_forward_length"), 512);
    kv_u32(k, AK("attention.head_count"), 4);
    kv_u32(k, AK("vocab_size"), 32);
    kv_f32(k, AK("attention.layer_norm_rms_epsilon"), 1e-6f);
#undef AK
}

/* ---- independent encoders (from the README's layout text) -------------- */

static int rand_t(uint64_t *s) { return (int)(ob_test_rand(s) % 3) - 1; }

/* I2_S: the whole rows x in tensor row-major, 128-weight blocks of 32 bytes,
 * weight j of a block in byte j%32 at shift 6 - 2*(j/32); then a 32-byte tail
 * whose first 4 bytes are float32 beta. */
static uint8_t *encode_i2s(const int8_t *t, size_t n, float beta, size_t *nbytes) {
    *nbytes = n / 4 + 32;
    uint8_t *d = calloc(1, *nbytes);
    for (size_t k = 0; k < n; k++) {
        size_t blk = k / 128, j = k % 128;
        d[blk * 32 + j % 32] |= (uint8_t)((t[k] + 1) << (6 - 2 * (j / 32)));
    }
    memcpy(d + n / 4, &beta, 4);
    return d;
}

/* TQ2_0: per row, 66-byte blocks of 256: qs[64] then f16 d; element e in byte
 * 32*(e/128) + e%32 at bits 2*((e%128)/32). */
static uint8_t *encode_tq2(const int8_t *t, size_t rows, size_t in, const float *d_per_block, size_t *nbytes) {
    size_t blocks = rows * in / 256;
    *nbytes = blocks * 66;
    uint8_t *d = calloc(1, *nbytes);
    for (size_t b = 0; b < blocks; b++) {
        uint8_t *blk = d + b * 66;
        for (int e = 0; e < 256; e++)
            blk[32 * (e / 128) + e % 32] |= (uint8_t)((t[b * 256 + e] + 1) << (2 * ((e % 128) / 32)));
        uint16_t h = ob_f32_to_f16(d_per_block[b]);
        blk[64] = (uint8_t)h, blk[65] = (uint8_t)(h >> 8);
    }
    return d;
}

/* TQ1_0: 54-byte blocks: qs[48], qh[4], f16 d. qs[m<32]: elements m+32k;
 * qs[32+m<16]: 160+m+16k; qh[j<4]: 240+j+4k (4 digits, times 3). A byte packs
 * v = sum code_k 3^(4-k) (first most significant) as ceil(v*256/243). */
static uint8_t tq1_byte(const int8_t *t, int first, int stride, int digits) {
    int v = 0;
    for (int k = 0; k < digits; k++) v = v * 3 + (t[first + stride * k] + 1);
    if (digits == 4) v *= 3;
    return (uint8_t)((v * 256 + 242) / 243);
}
static uint8_t *encode_tq1(const int8_t *t, size_t rows, size_t in, const float *d_per_block, size_t *nbytes) {
    size_t blocks = rows * in / 256;
    *nbytes = blocks * 54;
    uint8_t *d = calloc(1, *nbytes);
    for (size_t b = 0; b < blocks; b++) {
        uint8_t *blk = d + b * 54;
        const int8_t *x = t + b * 256;
        for (int m = 0; m < 32; m++) blk[m] = tq1_byte(x, m, 32, 5);
        for (int m = 0; m < 16; m++) blk[32 + m] = tq1_byte(x, 160 + m, 16, 5);
        for (int j = 0; j < 4; j++) blk[48 + j] = tq1_byte(x, 240 + j, 4, 4);
        uint16_t h = ob_f32_to_f16(d_per_block[b]);
        blk[52] = (uint8_t)h, blk[53] = (uint8_t)(h >> 8);
    }
    return d;
}

static void expect_ternary(const ob_model_file *mf, const char *name, const char *scale_name, const int8_t *t,
                           int64_t rows, int64_t in, const float *beta, int64_t n_beta) {
    const ob_tensor *w = ob_model_file_find(mf, name);
    assert_non_null(w);
    assert_int_equal(w->type, OB_TYPE_T2);
    assert_int_equal(w->ne[0], in);
    assert_int_equal(ob_tensor_rows(w), rows);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < in; c++)
            if (ob_tensor_t2_get(w, r, c) != t[r * in + c])
                fail_msg("%s[%lld][%lld] = %d, expected %d", name, (long long)r, (long long)c, ob_tensor_t2_get(w, r, c),
                         t[r * in + c]);
    const ob_tensor *s = ob_model_file_find(mf, scale_name);
    assert_non_null(s);
    assert_int_equal(s->type, OB_TYPE_F32);
    assert_int_equal(s->n_dims, 1);
    assert_int_equal(s->ne[0], n_beta);
    for (int64_t i = 0; i < n_beta; i++) assert_true(((const float *)s->data)[i] == beta[i]);
}

/* ---- every supported type, encoded here ------------------------------- */

typedef struct synth {
    kvs k;
    tensor_spec t[12];
    int n;
    uint8_t *owned[12];
    int8_t *tern[12];
    int64_t rows[12], in[12];
    float beta_tensor;   /* I2_S and the per-tensor TQ1_0 */
    float beta_rows[4];  /* TQ2_0, per row */
} synth;

static int8_t *random_ternary(uint64_t *seed, size_t n) {
    int8_t *t = malloc(n);
    for (size_t i = 0; i < n; i++) t[i] = (int8_t)rand_t(seed);
    return t;
}

static void synth_build(synth *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    llama_meta(&s->k, "llama");
    kv_u32(&s->k, "general.file_type", 40);
    /* A string array and a float array (the tokenizer keys). */
    const char *tokens[] = { "<unk>", "<s>", "\xe2\x96\x81hello", "" };
    put_str(&s->k.b, "tokenizer.ggml.tokens"), put_u32(&s->k.b, V_ARR), put_u32(&s->k.b, V_STR), put_u64(&s->k.b, 4);
    for (int i = 0; i < 4; i++) put_str(&s->k.b, tokens[i]);
    s->k.n++;
    put_str(&s->k.b, "tokenizer.ggml.scores"), put_u32(&s->k.b, V_ARR), put_u32(&s->k.b, V_F32), put_u64(&s->k.b, 4);
    for (int i = 0; i < 4; i++) put_f32(&s->k.b, -1.5f * (float)i);
    s->k.n++;
    kv_str(&s->k, "tokenizer.ggml.model", "llama");
    put_str(&s->k.b, "tokenizer.ggml.add_bos_token"), put_u32(&s->k.b, V_BOOL), put(&s->k.b, "\1", 1), s->k.n++;

    uint64_t st = seed;
    /* F32, F16, BF16: random bit patterns of finite values. */
    const struct { const char *name; uint32_t type; size_t esize; } plain[] = {
        { "plain.f32.weight", 0, 4 }, { "plain.f16.weight", 1, 2 }, { "plain.bf16.weight", 30, 2 },
    };
    for (size_t i = 0; i < 3; i++) {
        size_t n = 7 * 5;
        uint8_t *d = malloc(n * plain[i].esize);
        for (size_t j = 0; j < n; j++) {
            float f = (float)((double)(ob_test_rand(&st) % 20001) / 1000.0 - 10.0);
            if (plain[i].esize == 4) memcpy(d + 4 * j, &f, 4);
            else {
                uint16_t h = plain[i].type == 1 ? ob_f32_to_f16(f) : ob_f32_to_bf16(f);
                memcpy(d + 2 * j, &h, 2);
            }
        }
        s->t[s->n] = (tensor_spec){ plain[i].name, 2, { 7, 5, 1, 1 }, plain[i].type, d, n * plain[i].esize };
        s->owned[s->n++] = d;
    }
    /* Q8_0: 2 rows of 64: blocks of f16 d + 32 int8. */
    {
        size_t nb = 4;
        uint8_t *d = malloc(nb * 34);
        for (size_t b = 0; b < nb; b++) {
            uint16_t h = ob_f32_to_f16((float)(b + 1) * 0.01f);
            memcpy(d + b * 34, &h, 2);
            for (int j = 0; j < 32; j++) d[b * 34 + 2 + j] = (uint8_t)(ob_test_rand(&st) & 0xff);
        }
        s->t[s->n] = (tensor_spec){ "plain.q8.weight", 2, { 64, 2, 1, 1 }, 8, d, nb * 34 };
        s->owned[s->n++] = d;
    }
    /* An F16 norm: becomes F32. */
    {
        uint16_t *d = malloc(256 * 2);
        for (int i = 0; i < 256; i++) d[i] = ob_f32_to_f16(1.0f + (float)i / 256.0f);
        s->t[s->n] = (tensor_spec){ "blk.0.attn_norm.weight", 1, { 256, 1, 1, 1 }, 1, (uint8_t *)d, 512 };
        s->owned[s->n++] = (uint8_t *)d;
    }
    /* I2_S, 3 rows of 256, one beta. */
    s->beta_tensor = 0.8125f;
    {
        int i = s->n;
        s->rows[i] = 3, s->in[i] = 256;
        s->tern[i] = random_ternary(&st, 3 * 256);
        size_t nb;
        s->owned[i] = encode_i2s(s->tern[i], 3 * 256, s->beta_tensor, &nb);
        s->t[s->n++] = (tensor_spec){ "blk.0.attn_q.weight", 2, { 256, 3, 1, 1 }, 36, s->owned[i], nb };
    }
    /* I2_S with rows of 64: blocks span two rows. */
    {
        int i = s->n;
        s->rows[i] = 6, s->in[i] = 64;
        s->tern[i] = random_ternary(&st, 6 * 64);
        size_t nb;
        s->owned[i] = encode_i2s(s->tern[i], 6 * 64, s->beta_tensor, &nb);
        s->t[s->n++] = (tensor_spec){ "blk.0.attn_k.weight", 2, { 64, 6, 1, 1 }, 36, s->owned[i], nb };
    }
    /* TQ2_0, 4 rows of 512, a beta per row; row 2's second block all zero with d = 0. */
    for (int r = 0; r < 4; r++) s->beta_rows[r] = 0.25f * (float)(r + 1);
    {
        int i = s->n;
        s->rows[i] = 4, s->in[i] = 512;
        s->tern[i] = random_ternary(&st, 4 * 512);
        memset(s->tern[i] + 2 * 512 + 256, 0, 256);
        float d[8];
        for (int b = 0; b < 8; b++) d[b] = s->beta_rows[b / 2];
        d[5] = 0;
        size_t nb;
        s->owned[i] = encode_tq2(s->tern[i], 4, 512, d, &nb);
        s->t[s->n++] = (tensor_spec){ "blk.0.ffn_up.weight", 2, { 512, 4, 1, 1 }, 35, s->owned[i], nb };
    }
    /* TQ1_0, 2 rows of 768, one beta. */
    {
        int i = s->n;
        s->rows[i] = 2, s->in[i] = 768;
        s->tern[i] = random_ternary(&st, 2 * 768);
        float d[6];
        for (int b = 0; b < 6; b++) d[b] = s->beta_tensor;
        size_t nb;
        s->owned[i] = encode_tq1(s->tern[i], 2, 768, d, &nb);
        s->t[s->n++] = (tensor_spec){ "blk.0.ffn_down.weight", 2, { 768, 2, 1, 1 }, 34, s->owned[i], nb };
    }
}

static void synth_free(synth *s) {
    for (int i = 0; i < s->n; i++) free(s->owned[i]), free(s->tern[i]);
    free(s->k.b.d);
}

static void test_every_type(void **state) {
    (void)state;
    synth s;
    synth_build(&s, ob_test_seed());
    bytes f = write_gguf(&s.k, s.t, s.n, NULL);
    ob_model_file mf;
    ob_status st = ob_gguf_import_mem(f.d, f.n, "synthetic.gguf", &mf);
    if (st) fail_msg("import: %s", ob_last_error());

    /* Float types and Q8_0 keep their bytes (1bit's layouts are GGUF's). */
    const ob_type want[] = { OB_TYPE_F32, OB_TYPE_F16, OB_TYPE_BF16, OB_TYPE_Q8_0 };
    for (int i = 0; i < 4; i++) {
        const ob_tensor *t = ob_model_file_find(&mf, s.t[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, want[i]);
        assert_int_equal(t->ne[0], (int64_t)s.t[i].ne[0]);
        assert_int_equal(t->ne[1], (int64_t)s.t[i].ne[1]);
        assert_int_equal(t->nbytes, s.t[i].nbytes);
        assert_memory_equal(t->data, s.t[i].data, s.t[i].nbytes);
    }
    const ob_tensor *norm = ob_model_file_find(&mf, "blk.0.attn_norm.weight");
    assert_non_null(norm);
    assert_int_equal(norm->type, OB_TYPE_F32);
    for (int i = 0; i < 256; i++) assert_true(((const float *)norm->data)[i] == 1.0f + (float)i / 256.0f);

    expect_ternary(&mf, "blk.0.attn_q.weight", "blk.0.attn_q.scale", s.tern[5], 3, 256, &s.beta_tensor, 1);
    expect_ternary(&mf, "blk.0.attn_k.weight", "blk.0.attn_k.scale", s.tern[6], 6, 64, &s.beta_tensor, 1);
    expect_ternary(&mf, "blk.0.ffn_up.weight", "blk.0.ffn_up.scale", s.tern[7], 4, 512, s.beta_rows, 4);
    expect_ternary(&mf, "blk.0.ffn_down.weight", "blk.0.ffn_down.scale", s.tern[8], 2, 768, &s.beta_tensor, 1);
    /* The padding of a 64-wide T2 row reads as zero weights. */
    const ob_tensor *k = ob_model_file_find(&mf, "blk.0.attn_k.weight");
    for (int c = 64; c < 128; c++) assert_int_equal(ob_tensor_t2_get(k, 5, c), 0);

    /* Metadata. */
    const ob_meta *m = &mf.meta;
    assert_string_equal(ob_meta_str(m, OB_KEY_ARCH, ""), "llama");
    assert_string_equal(ob_meta_str(m, OB_KEY_ROPE_TYPE, ""), "norm");
    assert_string_equal(ob_meta_str(m, OB_KEY_ACT, ""), "silu");
    assert_int_equal(ob_meta_int(m, OB_KEY_HEAD_DIM, 0), 64);
    assert_int_equal(ob_meta_int(m, OB_KEY_HEADS_KV, 0), 4);
    assert_true(ob_meta_float(m, OB_KEY_ROPE_BASE, 0) == 10000.0);
    assert_true(ob_meta_float(m, OB_KEY_NORM_EPS, 0) == (double)1e-6f);
    assert_true(ob_meta_bool(m, OB_KEY_TIED, false));
    assert_true(ob_meta_bool(m, OB_KEY_ADD_BOS, false));
    assert_string_equal(ob_meta_str(m, OB_KEY_TOK_MODEL, ""), "llama");
    const ob_meta_entry *tok = ob_meta_find(m, OB_KEY_TOK_TOKENS);
    assert_non_null(tok);
    assert_int_equal(tok->count, 4);
    assert_string_equal(tok->strs[2], "\xe2\x96\x81hello");
    assert_int_equal(tok->str_lens[3], 0);
    const ob_meta_entry *scores = ob_meta_find(m, OB_KEY_TOK_SCORES);
    assert_non_null(scores);
    assert_true(((const float *)scores->arr)[3] == -4.5f);
    assert_string_equal(ob_meta_str(m, OB_KEY_SOURCE, ""), "gguf:synthetic.gguf (I2_S)");
    ob_model_file_close(&mf);
    free(f.d);
    synth_free(&s);
}

/* Q4_0 and Q6_K embeddings become F16. Encoded here from ggml's layout:
 * Q4_0: f16 d + 16 bytes, byte j = q[j] | q[j+16] << 4, w = d*(q-8).
 * Q6_K: ql[128] qh[64] int8 sc[16] f16 d; element e = 128h + 32g + l keeps its
 * low nibble in ql[64h + l + 32(g%2)] (high nibble when g >= 2), its top two
 * bits in qh[32h + l] at bit 2g, scale sc[8h + 2g + l/16]; w = d*sc*(q-32). */
static void test_quantized_embeddings(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    enum { EMB_IN = 256, EMB_ROWS = 3, OUT_IN = 64, OUT_ROWS = 2 };
    static uint8_t q6[EMB_ROWS * 210], q4[OUT_ROWS * 2 * 18];
    static float want6[EMB_IN * EMB_ROWS], want4[OUT_IN * OUT_ROWS];
    memset(q6, 0, sizeof q6);
    for (int b = 0; b < EMB_ROWS; b++) {
        uint8_t *blk = q6 + b * 210;
        float d = 0.001f * (float)(b + 1);
        uint16_t h = ob_f32_to_f16(d);
        blk[208] = (uint8_t)h, blk[209] = (uint8_t)(h >> 8);
        d = ob_f16_to_f32(h);
        for (int i = 0; i < 16; i++) blk[192 + i] = (uint8_t)(int8_t)((int)(ob_test_rand(&seed) % 255) - 127);
        for (int e = 0; e < 256; e++) {
            int q = (int)(ob_test_rand(&seed) % 64), hh = e / 128, g = e % 128 / 32, l = e % 32;
            blk[64 * hh + l + 32 * (g % 2)] |= (uint8_t)((q & 15) << (g >= 2 ? 4 : 0));
            blk[128 + 32 * hh + l] |= (uint8_t)((q >> 4) << (2 * g));
            want6[b * 256 + e] = d * (float)(int8_t)blk[192 + 8 * hh + 2 * g + l / 16] * (float)(q - 32);
        }
    }
    for (int b = 0; b < OUT_ROWS * 2; b++) {
        uint8_t *blk = q4 + b * 18;
        uint16_t h = ob_f32_to_f16(0.05f * (float)(b + 1));
        blk[0] = (uint8_t)h, blk[1] = (uint8_t)(h >> 8);
        int q[32];
        for (int j = 0; j < 32; j++) q[j] = (int)(ob_test_rand(&seed) % 16);
        for (int j = 0; j < 16; j++) blk[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
        for (int j = 0; j < 32; j++) want4[b * 32 + j] = ob_f16_to_f32(h) * (float)(q[j] - 8);
    }
    kvs k = { 0 };
    llama_meta(&k, "llama");
    tensor_spec t[2] = { { "token_embd.weight", 2, { EMB_IN, EMB_ROWS, 1, 1 }, 14, q6, sizeof q6 },
                         { "output.weight", 2, { OUT_IN, OUT_ROWS, 1, 1 }, 2, q4, sizeof q4 } };
    bytes f = write_gguf(&k, t, 2, NULL);
    ob_model_file mf;
    if (ob_gguf_import_mem(f.d, f.n, "q.gguf", &mf)) fail_msg("%s", ob_last_error());
    const ob_tensor *e = ob_model_file_find(&mf, "token_embd.weight"), *o = ob_model_file_find(&mf, "output.weight");
    assert_int_equal(e->type, OB_TYPE_F16);
    assert_int_equal(o->type, OB_TYPE_F16);
    for (int i = 0; i < EMB_IN * EMB_ROWS; i++)
        if (((const uint16_t *)e->data)[i] != ob_f32_to_f16(want6[i])) fail_msg("token_embd[%d]", i);
    for (int i = 0; i < OUT_IN * OUT_ROWS; i++)
        if (((const uint16_t *)o->data)[i] != ob_f32_to_f16(want4[i])) fail_msg("output[%d]", i);
    ob_model_file_close(&mf);
    free(f.d);
    /* Elsewhere they stay unsupported, with the type's name. */
    t[1].name = "blk.0.attn_q.weight";
    f = write_gguf(&k, t, 2, NULL);
    assert_int_equal(ob_gguf_import_mem(f.d, f.n, "q.gguf", &mf), OB_ERR_UNSUPPORTED);
    assert_non_null(strstr(ob_last_error(), "Q4_0"));
    free(f.d);
    free(k.b.d);
}

/* ---- the shared fixtures -------------------------------------------------- */

static void test_fixtures_match_hf(void **state) {
    (void)state;
    char dir[4096];
    OB_REQUIRE_SHARED(dir, "fixtures/bitnet-tiny");
    ob_model_file hf;
    if (ob_hf_import(dir, &hf)) fail_msg("%s", ob_last_error());
    const char *files[] = { "bitnet-tiny-i2_s.gguf", "bitnet-tiny-tq2_0.gguf", "bitnet-tiny-tq1_0.gguf" };
    const char *kinds[] = { "I2_S", "TQ2_0", "TQ1_0" };
    for (int f = 0; f < 3; f++) {
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "fixtures/bitnet-tiny-gguf/%s", files[f]);
        OB_REQUIRE_SHARED(path, rel);
        ob_model_file g;
        if (ob_gguf_import(path, &g)) fail_msg("%s: %s", files[f], ob_last_error());
        assert_int_equal(g.n_tensors, hf.n_tensors);
        int ternary = 0;
        for (size_t i = 0; i < hf.n_tensors; i++) {
            const ob_tensor *a = &hf.tensors[i], *b = ob_model_file_find(&g, a->name);
            if (!b) fail_msg("%s: %s missing", files[f], a->name);
            assert_memory_equal(a->ne, b->ne, sizeof a->ne);
            if (strcmp(a->name, "token_embd.weight") == 0) {
                /* bf16 in HF, f16 here: equal up to f16 subnormal rounding (README: <= 3e-8). */
                assert_int_equal(b->type, OB_TYPE_F16);
                for (int64_t j = 0; j < a->ne[0] * a->ne[1]; j++) {
                    float x = ob_bf16_to_f32(((const uint16_t *)a->data)[j]);
                    float y = ob_f16_to_f32(((const uint16_t *)b->data)[j]);
                    if (fabsf(x - y) > 3e-8f) fail_msg("token_embd[%lld]: %g vs %g", (long long)j, x, y);
                }
                continue;
            }
            assert_int_equal(a->type, b->type);
            assert_int_equal(a->nbytes, b->nbytes);
            /* T2 codes, scales and f32 norms: bit for bit. */
            if (memcmp(a->data, b->data, a->nbytes) != 0) fail_msg("%s: %s differs from HF", files[f], a->name);
            ternary += a->type == OB_TYPE_T2;
        }
        assert_int_equal(ternary, 21);
        assert_string_equal(ob_meta_str(&g.meta, OB_KEY_ARCH, ""), "bitnet");
        assert_string_equal(ob_meta_str(&g.meta, OB_KEY_ROPE_TYPE, ""), "neox");
        assert_string_equal(ob_meta_str(&g.meta, OB_KEY_ACT, ""), "relu2");
        assert_true(ob_meta_bool(&g.meta, OB_KEY_SUBNORM, false));
        assert_true(ob_meta_bool(&g.meta, OB_KEY_TIED, false));
        assert_true(ob_meta_float(&g.meta, OB_KEY_ROPE_BASE, 0) == 500000.0);
        assert_int_equal(ob_meta_int(&g.meta, OB_KEY_BOS, -1), 1);
        assert_int_equal(ob_meta_int(&g.meta, OB_KEY_EOS, -1), 2);
        const char *keys[] = { OB_KEY_VOCAB, OB_KEY_EMBD, OB_KEY_LAYERS, OB_KEY_FF, OB_KEY_HEADS, OB_KEY_HEADS_KV,
                               OB_KEY_HEAD_DIM, OB_KEY_CTX };
        for (size_t k = 0; k < OB_ARRAY_LEN(keys); k++)
            assert_int_equal(ob_meta_int(&g.meta, keys[k], -1), ob_meta_int(&hf.meta, keys[k], -2));
        char src[128];
        snprintf(src, sizeof src, "gguf:%s (%s)", files[f], kinds[f]);
        assert_string_equal(ob_meta_str(&g.meta, OB_KEY_SOURCE, ""), src);
        ob_model_file_close(&g);
    }
    ob_model_file_close(&hf);
}

static void test_stories260k(void **state) {
    (void)state;
    char path[4096];
    OB_REQUIRE_SHARED(path, "data/stories260K/stories260K.gguf");
    ob_model_file mf;
    if (ob_model_file_open(path, &mf)) fail_msg("%s", ob_last_error());
    assert_int_equal(mf.n_tensors, 48);
    for (size_t i = 0; i < mf.n_tensors; i++) assert_int_equal(mf.tensors[i].type, OB_TYPE_F32);
    assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_ARCH, ""), "llama");
    assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_ROPE_TYPE, ""), "norm");
    assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_TOK_MODEL, ""), "llama");
    assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_VOCAB, 0), 512);
    assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_EMBD, 0), 64);
    assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_HEADS_KV, 0), 4);
    assert_false(ob_meta_bool(&mf.meta, OB_KEY_TIED, true));
    const ob_meta_entry *tok = ob_meta_find(&mf.meta, OB_KEY_TOK_TOKENS);
    assert_non_null(tok);
    assert_int_equal(tok->count, 512);
    assert_string_equal(tok->strs[1], "<s>");
    const ob_tensor *ffn_down = ob_model_file_find(&mf, "blk.4.ffn_down.weight");
    assert_non_null(ffn_down);
    assert_int_equal(ffn_down->ne[0], 172);
    assert_int_equal(ffn_down->ne[1], 64);
    ob_model_file_close(&mf);
}

/* ---- corrupt inputs --------------------------------------------------------- */

static void expect_fail(const uint8_t *d, size_t n, ob_status want, const char *what) {
    ob_model_file mf;
    ob_clear_error();
    ob_status st = ob_gguf_import_mem(d, n, "bad.gguf", &mf);
    if (st == OB_OK) fail_msg("%s: imported", what);
    if (want != OB_OK && st != want) fail_msg("%s: status %s (%s)", what, ob_status_name(st), ob_last_error());
    if (!*ob_last_error()) fail_msg("%s: no message", what);
    assert_int_equal(mf.n_tensors, 0); /* left empty */
}

static void test_truncation(void **state) {
    (void)state;
    synth s;
    synth_build(&s, ob_test_seed());
    bytes f = write_gguf(&s.k, s.t, s.n, NULL);
    for (size_t n = 0; n < f.n; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, f.d, n);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu", n, f.n);
        expect_fail(copy, n, OB_ERR_FORMAT, what);
        free(copy);
    }
    free(f.d);
    synth_free(&s);
}

static void patch_u64(bytes *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->d[at + i] = (uint8_t)(v >> (8 * i));
}
static void patch_u32(bytes *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->d[at + i] = (uint8_t)(v >> (8 * i));
}

static void test_corrupt(void **state) {
    (void)state;
    synth s;
    synth_build(&s, 7);
    layout l;
    bytes good = write_gguf(&s.k, s.t, s.n, &l);
    bytes b = { malloc(good.n), good.n, good.n };
#define RESET() memcpy(b.d, good.d, good.n)
#define CHECK(want, what) (expect_fail(b.d, b.n, want, what), RESET())
    RESET();
    b.d[0] = 'X';
    CHECK(OB_ERR_FORMAT, "bad magic");
    patch_u32(&b, 4, 1);
    CHECK(OB_ERR_UNSUPPORTED, "version 1");
    patch_u32(&b, 4, 4);
    CHECK(OB_ERR_FORMAT, "version 4");
    patch_u32(&b, 4, 0x03000000);
    CHECK(OB_ERR_UNSUPPORTED, "big-endian");
    patch_u64(&b, l.n_tensors_at, (uint64_t)1 << 60);
    CHECK(OB_ERR_FORMAT, "huge tensor count");
    patch_u64(&b, l.n_kv_at, UINT64_MAX);
    CHECK(OB_ERR_FORMAT, "huge key count");
    patch_u64(&b, l.n_tensors_at, 0);
    CHECK(OB_ERR_FORMAT, "no tensors");
    patch_u64(&b, l.first_key_len_at, (uint64_t)1 << 62);
    CHECK(OB_ERR_FORMAT, "huge key length");
    patch_u64(&b, l.ne0_at[0], (uint64_t)1 << 62);
    CHECK(OB_ERR_FORMAT, "huge dimension");
    patch_u64(&b, l.ne0_at[0], 0);
    CHECK(OB_ERR_FORMAT, "zero dimension");
    patch_u64(&b, l.ne0_at[1], (uint64_t)1 << 39); /* valid alone, far past the end */
    CHECK(OB_ERR_FORMAT, "tensor past the end");
    patch_u64(&b, l.offset_at[s.n - 1], (uint64_t)1 << 40);
    CHECK(OB_ERR_FORMAT, "offset past the end");
    patch_u64(&b, l.offset_at[2], 0);
    CHECK(OB_ERR_FORMAT, "overlapping tensors");
    patch_u64(&b, l.offset_at[2], 8);
    CHECK(OB_ERR_FORMAT, "misaligned offset");
    patch_u32(&b, l.type_at[0], 200);
    CHECK(OB_ERR_FORMAT, "unknown type id");
    patch_u32(&b, l.type_at[3], 2); /* Q4_0 */
    expect_fail(b.d, b.n, OB_ERR_UNSUPPORTED, "Q4_0");
    assert_non_null(strstr(ob_last_error(), "Q4_0"));
    RESET();

    /* NaN, infinite and negative scales. */
    size_t i2s_tail = l.data_at[5] + 3 * 256 / 4;
    patch_u32(&b, i2s_tail, 0x7fc00000);
    CHECK(OB_ERR_FORMAT, "NaN I2_S scale");
    patch_u32(&b, i2s_tail, 0x7f800000);
    CHECK(OB_ERR_FORMAT, "inf I2_S scale");
    patch_u32(&b, i2s_tail, 0xbf800000);
    CHECK(OB_ERR_FORMAT, "negative I2_S scale");
    b.d[l.data_at[7] + 64] = 0x00, b.d[l.data_at[7] + 65] = 0x7e; /* f16 NaN d */
    CHECK(OB_ERR_FORMAT, "NaN TQ2_0 scale");
    b.d[l.data_at[8] + 53] |= 0x80; /* negative TQ1_0 d */
    CHECK(OB_ERR_FORMAT, "negative TQ1_0 scale");
    /* Two different scales within one TQ2_0 row (row 0, block 1). */
    uint16_t other = ob_f32_to_f16(3.0f);
    b.d[l.data_at[7] + 66 + 64] = (uint8_t)other, b.d[l.data_at[7] + 66 + 65] = (uint8_t)(other >> 8);
    CHECK(OB_ERR_UNSUPPORTED, "scales vary within a row");
    b.d[l.data_at[5]] = 0xff; /* code 3 */
    CHECK(OB_ERR_FORMAT, "ternary code 3");
    free(b.d);
    free(good.d);
    synth_free(&s);

    /* Type 36 with nothing saying I2_S (llama, no file_type) and a gap that
     * could hold either I2_S (64 bytes) or IQ4_NL_4_4 (72 bytes): refused. */
    kvs k = { 0 };
    llama_meta(&k, "llama");
    kv_u32(&k, "general.alignment", 128);
    int8_t t[128] = { 0 };
    size_t nb;
    uint8_t *d = encode_i2s(t, 128, 1.0f, &nb);
    float ones[4] = { 1, 1, 1, 1 };
    tensor_spec two[2] = { { "blk.0.attn_q.weight", 2, { 128, 1, 1, 1 }, 36, d, nb },
                           { "blk.0.attn_norm.weight", 1, { 4, 1, 1, 1 }, 0, (const uint8_t *)ones, 16 } };
    bytes f = write_gguf_aligned(&k, two, 2, 128, NULL);
    expect_fail(f.d, f.n, OB_ERR_UNSUPPORTED, "ambiguous type 36");
    assert_non_null(strstr(ob_last_error(), "I2_S"));
    free(f.d);
    /* The same with bitnet.cpp's general.file_type 40 imports. */
    kv_u32(&k, "general.file_type", 40);
    f = write_gguf_aligned(&k, two, 2, 128, NULL);
    ob_model_file mf;
    if (ob_gguf_import_mem(f.d, f.n, "ok.gguf", &mf)) fail_msg("%s", ob_last_error());
    assert_int_equal(ob_model_file_find(&mf, "blk.0.attn_q.weight")->type, OB_TYPE_T2);
    ob_model_file_close(&mf);
    free(f.d);
    free(d);
    free(k.b.d);
#undef RESET
#undef CHECK
}

/* Random byte changes: each result is a clean import or a clean error. */
static void test_mutations(void **state) {
    (void)state;
    synth s;
    uint64_t seed = ob_test_seed();
    synth_build(&s, seed);
    layout l;
    bytes good = write_gguf(&s.k, s.t, s.n, &l);
    uint8_t *b = malloc(good.n);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(b, good.d, good.n);
        int changes = 1 + (int)(ob_test_rand(&seed) % 4);
        for (int c = 0; c < changes; c++) {
            size_t at = ob_test_rand(&seed) % l.data_start; /* mostly the header */
            if (ob_test_rand(&seed) % 4 == 0) at = ob_test_rand(&seed) % good.n;
            b[at] = (uint8_t)ob_test_rand(&seed);
        }
        ob_model_file mf;
        ob_clear_error();
        if (ob_gguf_import_mem(b, good.n, "mutant.gguf", &mf) == OB_OK) ob_model_file_close(&mf);
        else assert_true(*ob_last_error());
    }
    free(b);
    free(good.d);
    synth_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),   cmocka_unit_test(test_quantized_embeddings),
        cmocka_unit_test(test_fixtures_match_hf),
        cmocka_unit_test(test_stories260k),  cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_corrupt),      cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
