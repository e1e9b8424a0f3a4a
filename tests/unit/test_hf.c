/* Hugging Face importer: the bitnet-tiny fixture decoded here by the test's
 * own safetensors reader, small checkpoints built here (packed, float BitNet,
 * plain llama), and corrupt inputs. */
#include "testutil.h"

#include "core/json.h"
#include "format/model_file.h"
#include "format/safetensors.h"

#include <math.h>

static float bf16(const uint8_t *p) {
    uint32_t u = (uint32_t)(p[0] | p[1] << 8) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *d = malloc(*n + 1);
    assert_int_equal(fread(d, 1, *n, f), *n);
    fclose(f);
    ((char *)d)[*n] = 0;
    return d;
}

/* ---- the fixture, read independently ---------------------------------- */

typedef struct raw_st {
    uint8_t *file;
    size_t size;
    ob_json_doc doc;
    const uint8_t *data;
} raw_st;

static const ob_json *raw_entry(const raw_st *r, const char *name, const char *dtype, int64_t *d0, int64_t *d1,
                                const uint8_t **data) {
    const ob_json *e = ob_json_get(r->doc.root, name);
    if (!e) fail_msg("fixture has no %s", name);
    assert_string_equal(ob_json_get_str(e, "dtype"), dtype);
    const ob_json *shape = ob_json_get(e, "shape");
    *d0 = (int64_t)ob_json_at(shape, 0)->number;
    *d1 = shape->count > 1 ? (int64_t)ob_json_at(shape, 1)->number : 1;
    *data = r->data + (size_t)ob_json_at(ob_json_get(e, "data_offsets"), 0)->number;
    return e;
}

static void test_fixture(void **state) {
    (void)state;
    char dir[4096], path[4200];
    OB_REQUIRE_SHARED(dir, "fixtures/bitnet-tiny");
    ob_model_file mf;
    if (ob_model_file_open(dir, &mf)) fail_msg("%s", ob_last_error());
    const ob_meta *m = &mf.meta;
    assert_string_equal(ob_meta_str(m, OB_KEY_ARCH, ""), "bitnet");
    assert_int_equal(ob_meta_int(m, OB_KEY_VOCAB, 0), 1000);
    assert_int_equal(ob_meta_int(m, OB_KEY_EMBD, 0), 512);
    assert_int_equal(ob_meta_int(m, OB_KEY_HEADS, 0), 4);
    assert_int_equal(ob_meta_int(m, OB_KEY_HEADS_KV, 0), 1);
    assert_int_equal(ob_meta_int(m, OB_KEY_HEAD_DIM, 0), 128);
    assert_int_equal(ob_meta_int(m, OB_KEY_FF, 0), 1536);
    assert_int_equal(ob_meta_int(m, OB_KEY_LAYERS, 0), 3);
    assert_int_equal(ob_meta_int(m, OB_KEY_CTX, 0), 4096);
    assert_true(ob_meta_float(m, OB_KEY_ROPE_BASE, 0) == 500000.0);
    assert_true(ob_meta_float(m, OB_KEY_NORM_EPS, 0) == 1e-5);
    assert_true(ob_meta_bool(m, OB_KEY_TIED, false));
    assert_true(ob_meta_bool(m, OB_KEY_SUBNORM, false));
    assert_string_equal(ob_meta_str(m, OB_KEY_ACT, ""), "relu2");
    assert_string_equal(ob_meta_str(m, OB_KEY_ROPE_TYPE, ""), "neox");
    assert_string_equal(ob_meta_str(m, OB_KEY_SOURCE, ""), "hf:bitnet-tiny");
    assert_int_equal(ob_meta_int(m, OB_KEY_BOS, -1), 1);
    assert_int_equal(ob_meta_int(m, OB_KEY_EOS, -1), 2);
    assert_null(ob_model_file_find(&mf, "output.weight"));
    assert_int_equal(mf.n_tensors, 2 + 3 * (11 + 7));

    raw_st r;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    r.file = slurp(path, &r.size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | r.file[i];
    assert_int_equal(ob_json_parse((const char *)r.file + 8, (size_t)hlen, &r.doc), OB_OK);
    r.data = r.file + 8 + hlen;

    static const char *const linears[][2] = {
        { "self_attn.q_proj", "attn_q" }, { "self_attn.k_proj", "attn_k" }, { "self_attn.v_proj", "attn_v" },
        { "self_attn.o_proj", "attn_output" }, { "mlp.gate_proj", "ffn_gate" }, { "mlp.up_proj", "ffn_up" },
        { "mlp.down_proj", "ffn_down" },
    };
    int64_t checked = 0;
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < OB_ARRAY_LEN(linears); i++) {
            char hf[128], name[128];
            int64_t R, in, one, dummy;
            const uint8_t *p, *s;
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", l, linears[i][0]);
            raw_entry(&r, hf, "U8", &R, &in, &p);
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight_scale", l, linears[i][0]);
            raw_entry(&r, hf, "BF16", &one, &dummy, &s);
            assert_int_equal(one, 1);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, linears[i][1]);
            const ob_tensor *w = ob_model_file_find(&mf, name);
            assert_non_null(w);
            assert_int_equal(w->type, OB_TYPE_T2);
            assert_int_equal(w->ne[0], in);
            assert_int_equal(w->ne[1], 4 * R);
            /* W[o][c] = ((P[o % R][c] >> 2*(o / R)) & 3) - 1 */
            for (int64_t o = 0; o < 4 * R; o++)
                for (int64_t c = 0; c < in; c++) {
                    int t = ((p[(o % R) * in + c] >> (2 * (o / R))) & 3) - 1;
                    if (ob_tensor_t2_get(w, o, c) != t) fail_msg("%s[%lld][%lld]", name, (long long)o, (long long)c);
                    checked++;
                }
            snprintf(name, sizeof name, "blk.%d.%s.scale", l, linears[i][1]);
            const ob_tensor *sc = ob_model_file_find(&mf, name);
            assert_non_null(sc);
            assert_int_equal(sc->ne[0], 1);
            assert_true(*(const float *)sc->data == bf16(s)); /* autobitlinear: beta = weight_scale */
        }
        /* Norms: bf16 -> f32 exactly. */
        static const char *const norms[][2] = {
            { "input_layernorm", "attn_norm" }, { "post_attention_layernorm", "ffn_norm" },
            { "self_attn.attn_sub_norm", "attn_sub_norm" }, { "mlp.ffn_sub_norm", "ffn_sub_norm" },
        };
        for (size_t i = 0; i < OB_ARRAY_LEN(norms); i++) {
            char hf[128], name[128];
            int64_t n, one;
            const uint8_t *p;
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", l, norms[i][0]);
            raw_entry(&r, hf, "BF16", &n, &one, &p);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[i][1]);
            const ob_tensor *t = ob_model_file_find(&mf, name);
            assert_non_null(t);
            assert_int_equal(t->type, OB_TYPE_F32);
            assert_int_equal(t->ne[0], n);
            for (int64_t j = 0; j < n; j++) assert_true(((const float *)t->data)[j] == bf16(p + 2 * j));
        }
    }
    assert_int_equal(checked, 9043968); /* every ternary weight of the checkpoint */
    int64_t vocab, embd;
    const uint8_t *p;
    raw_entry(&r, "model.embed_tokens.weight", "BF16", &vocab, &embd, &p);
    const ob_tensor *emb = ob_model_file_find(&mf, "token_embd.weight");
    assert_int_equal(emb->type, OB_TYPE_BF16);
    assert_int_equal(emb->ne[0], embd);
    assert_int_equal(emb->ne[1], vocab);
    assert_memory_equal(emb->data, p, (size_t)(vocab * embd * 2));
    ob_json_free(&r.doc);
    free(r.file);
    ob_model_file_close(&mf);
}

/* ---- small checkpoints built here ----------------------------------------- */

typedef struct st_builder {
    char header[16384];
    size_t hlen;
    uint8_t *data;
    size_t n;
} st_builder;

static void st_add(st_builder *b, const char *name, const char *dtype, int64_t d0, int64_t d1, const void *data,
                   size_t nbytes) {
    char shape[64];
    if (d1) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)d0, (long long)d1);
    else snprintf(shape, sizeof shape, "[%lld]", (long long)d0);
    b->hlen += (size_t)snprintf(b->header + b->hlen, sizeof b->header - b->hlen,
                                "%s\"%s\": {\"dtype\": \"%s\", \"shape\": %s, \"data_offsets\": [%zu, %zu]}",
                                b->hlen ? ", " : "{", name, dtype, shape, b->n, b->n + nbytes);
    b->data = realloc(b->data, b->n + nbytes + 1);
    memcpy(b->data + b->n, data, nbytes);
    b->n += nbytes;
}

/* The file: u64 header length, header, data. */
static uint8_t *st_finish(st_builder *b, size_t *size) {
    b->hlen += (size_t)snprintf(b->header + b->hlen, sizeof b->header - b->hlen, "}");
    *size = 8 + b->hlen + b->n;
    uint8_t *f = malloc(*size);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)b->hlen >> (8 * i));
    memcpy(f + 8, b->header, b->hlen);
    memcpy(f + 8 + b->hlen, b->data, b->n);
    free(b->data);
    b->data = NULL;
    return f;
}

enum { VOCAB = 16, HID = 128, HEADS = 2, KVH = 1, HD = 64, FF = 256 };

/* How the linears are stored in a built checkpoint. */
typedef enum { PACKED, FLOAT_TERNARY, FLOAT_F16 } linear_form;

typedef struct built {
    int8_t *t[7];   /* true ternary values [out][in] */
    float beta[7];  /* expected beta */
    uint16_t *f16[7];
    uint8_t *file;
    size_t size;
} built;

static const struct {
    const char *hf, *ob;
    int in, out;
} lin[7] = {
    { "self_attn.q_proj", "attn_q", HID, HEADS * HD }, { "self_attn.k_proj", "attn_k", HID, KVH * HD },
    { "self_attn.v_proj", "attn_v", HID, KVH * HD },   { "self_attn.o_proj", "attn_output", HEADS * HD, HID },
    { "mlp.gate_proj", "ffn_gate", HID, FF },          { "mlp.up_proj", "ffn_up", HID, FF },
    { "mlp.down_proj", "ffn_down", FF, HID },
};

static void build(built *b, linear_form form, float weight_scale, bool multiply, bool sub_norms, bool lm_head,
                  uint64_t seed) {
    memset(b, 0, sizeof *b);
    st_builder sb = { .hlen = 0 };
    float *emb = malloc(VOCAB * HID * 4), *ones = malloc(FF * 4);
    for (int i = 0; i < VOCAB * HID; i++) emb[i] = (float)(ob_test_rand(&seed) % 1000) / 1000.0f;
    for (int i = 0; i < FF; i++) ones[i] = 1.0f + (float)i / 1024.0f;
    st_add(&sb, "model.embed_tokens.weight", "F32", VOCAB, HID, emb, VOCAB * HID * 4);
    if (lm_head) st_add(&sb, "lm_head.weight", "F32", VOCAB, HID, emb, VOCAB * HID * 4);
    st_add(&sb, "model.norm.weight", "F32", HID, 0, ones, HID * 4);
    st_add(&sb, "model.layers.0.input_layernorm.weight", "F32", HID, 0, ones, HID * 4);
    st_add(&sb, "model.layers.0.post_attention_layernorm.weight", "F32", HID, 0, ones, HID * 4);
    if (sub_norms) {
        uint16_t h[FF];
        for (int i = 0; i < FF; i++) h[i] = ob_f32_to_bf16(ones[i]);
        st_add(&sb, "model.layers.0.self_attn.attn_sub_norm.weight", "BF16", HEADS * HD, 0, h, HEADS * HD * 2);
        st_add(&sb, "model.layers.0.mlp.ffn_sub_norm.weight", "BF16", FF, 0, h, FF * 2);
    }
    for (int i = 0; i < 7; i++) {
        int in = lin[i].in, out = lin[i].out;
        char name[128];
        snprintf(name, sizeof name, "model.layers.0.%s.weight", lin[i].hf);
        int8_t *t = b->t[i] = malloc((size_t)in * out);
        for (int j = 0; j < in * out; j++) t[j] = (int8_t)((int)(ob_test_rand(&seed) % 3) - 1);
        if (form == PACKED) {
            /* byte [r][c] bits 2k..2k+1 = code of W[k*R + r][c] */
            int R = out / 4;
            uint8_t *p = calloc((size_t)R * in, 1);
            for (int o = 0; o < out; o++)
                for (int c = 0; c < in; c++) p[(o % R) * in + c] |= (uint8_t)((t[o * in + c] + 1) << (2 * (o / R)));
            st_add(&sb, name, "U8", R, in, p, (size_t)R * in);
            free(p);
            float s = weight_scale * (float)(i + 1);
            snprintf(name, sizeof name, "model.layers.0.%s.weight_scale", lin[i].hf);
            st_add(&sb, name, "F32", 1, 0, &s, 4);
            b->beta[i] = multiply ? s : 1.0f / s;
        } else if (form == FLOAT_TERNARY) {
            /* |W| of a +-1 weight is in [0.8a, 1.2a], of a 0 weight below 0.2a:
             * far from the rounding boundaries 0.5 and 1.5 of W/mean|W|. */
            float a = 0.01f * (float)(i + 1), *w = malloc((size_t)in * out * 4);
            double sum = 0;
            for (int j = 0; j < in * out; j++) {
                float u = (float)(ob_test_rand(&seed) % 1000) / 1000.0f;
                w[j] = t[j] ? (float)t[j] * a * (0.8f + 0.4f * u) : a * 0.2f * (u - 0.5f);
                sum += fabs((double)w[j]);
            }
            b->beta[i] = (float)(sum / (in * out));
            st_add(&sb, name, "F32", out, in, w, (size_t)in * out * 4);
            free(w);
        } else {
            uint16_t *h = b->f16[i] = malloc((size_t)in * out * 2);
            for (int j = 0; j < in * out; j++) h[j] = ob_f32_to_f16((float)t[j] * 0.5f + (float)(j % 7) / 64.0f);
            st_add(&sb, name, "F16", out, in, h, (size_t)in * out * 2);
        }
    }
    b->file = st_finish(&sb, &b->size);
    free(emb);
    free(ones);
}

static void built_free(built *b) {
    for (int i = 0; i < 7; i++) free(b->t[i]), free(b->f16[i]);
    free(b->file);
}

static char *config(const char *model_type, const char *quant, const char *extra) {
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, "
             "\"rms_norm_eps\": 1e-6%s%s%s%s}",
             model_type, VOCAB, HID, FF, HEADS, KVH, quant ? ", \"quantization_config\": " : "", quant ? quant : "",
             extra ? ", " : "", extra ? extra : "");
    return buf;
}

static void expect_linears(const ob_model_file *mf, const built *b, float tol) {
    for (int i = 0; i < 7; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", lin[i].ob);
        const ob_tensor *w = ob_model_file_find(mf, name);
        assert_non_null(w);
        assert_int_equal(w->type, OB_TYPE_T2);
        assert_int_equal(w->ne[0], lin[i].in);
        assert_int_equal(w->ne[1], lin[i].out);
        for (int o = 0; o < lin[i].out; o++)
            for (int c = 0; c < lin[i].in; c++)
                if (ob_tensor_t2_get(w, o, c) != b->t[i][o * lin[i].in + c]) fail_msg("%s[%d][%d]", name, o, c);
        snprintf(name, sizeof name, "blk.0.%s.scale", lin[i].ob);
        const ob_tensor *s = ob_model_file_find(mf, name);
        assert_non_null(s);
        assert_int_equal(s->ne[0], 1);
        float got = *(const float *)s->data;
        if (fabsf(got - b->beta[i]) > tol * b->beta[i]) fail_msg("%s = %.9g, expected %.9g", name, got, b->beta[i]);
    }
}

static void test_packed_scale_direction(void **state) {
    (void)state;
    uint64_t seed = ob_test_seed();
    const char *quant[] = { "{\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\"}",
                            "{\"quant_method\": \"bitnet\", \"linear_class\": \"bitlinear\"}",
                            "{\"quant_method\": \"bitnet\"}" };
    for (int q = 0; q < 3; q++) {
        built b;
        build(&b, PACKED, 0.75f, q == 0, true, false, seed + (uint64_t)q);
        const char *cfg = config("bitnet", quant[q], "\"tie_word_embeddings\": true, \"rope_theta\": 500000.0, "
                                                      "\"bos_token_id\": 5, \"eos_token_id\": [6, 9]");
        ob_model_file mf;
        if (ob_hf_import_mem(cfg, strlen(cfg), b.file, b.size, "tiny", &mf)) fail_msg("%s", ob_last_error());
        expect_linears(&mf, &b, 0);
        assert_true(ob_meta_bool(&mf.meta, OB_KEY_SUBNORM, false));
        assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_ACT, ""), "relu2");
        assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_BOS, -1), 5);
        assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_EOS, -1), 6);
        assert_int_equal(ob_meta_int(&mf.meta, OB_KEY_EOT, -1), 9);
        assert_true(ob_meta_float(&mf.meta, OB_KEY_ROPE_BASE, 0) == 500000.0);
        assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_SOURCE, ""), "hf:tiny");
        assert_string_equal(ob_meta_str(&mf.meta, OB_KEY_TOK_MODEL, ""), "none");
        const ob_tensor *sub = ob_model_file_find(&mf, "blk.0.ffn_sub_norm.weight");
        assert_non_null(sub);
        assert_int_equal(sub->type, OB_TYPE_F32);
        uint16_t h3 = ob_f32_to_bf16(1.0f + 3.0f / 1024.0f); /* what build() stored */
        assert_true(((const float *)sub->data)[3] == bf16((const uint8_t *)&h3));
        ob_model_file_close(&mf);
        built_free(&b);
    }
}

static void test_float_bitnet_ternarized(void **state) {
    (void)state;
    built b;
    build(&b, FLOAT_TERNARY, 0, false, false, false, ob_test_seed());
    const char *cfg = config("bitnet", NULL, "\"rope_parameters\": {\"rope_theta\": 250000.0}");
    ob_model_file mf;
    if (ob_hf_import_mem(cfg, strlen(cfg), b.file, b.size, "tiny", &mf)) fail_msg("%s", ob_last_error());
    expect_linears(&mf, &b, 1e-6f);
    assert_false(ob_meta_bool(&mf.meta, OB_KEY_SUBNORM, true));
    assert_true(ob_meta_bool(&mf.meta, OB_KEY_TIED, false)); /* bitnet's default */
    assert_true(ob_meta_float(&mf.meta, OB_KEY_ROPE_BASE, 0) == 250000.0);
    ob_model_file_close(&mf);
    built_free(&b);
}

static void test_llama_float(void **state) {
    (void)state;
    built b;
    build(&b, FLOAT_F16, 0, false, false, true, ob_test_seed());
    const char *cfg = config("llama", NULL, "\"tie_word_embeddings\": false, \"max_position_embeddings\": 512");
    ob_model_file mf;
    if (ob_hf_import_mem(cfg, strlen(cfg), b.file, b.size, "tiny-llama", &mf)) fail_msg("%s", ob_last_error());
    for (int i = 0; i < 7; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", lin[i].ob);
        const ob_tensor *w = ob_model_file_find(&mf, name);
        assert_non_null(w);
        assert_int_equal(w->type, OB_TYPE_F16);
        assert_int_equal(w->ne[0], lin[i].in);
        assert_memory_equal(w->data, b.f16[i], (size_t)lin[i].in * lin[i].out * 2);
    }
    assert_non_null(ob_model_file_find(&mf, "output.weight"));
    assert_null(ob_model_file_find(&mf, "blk.0.attn_q.scale"));
    const ob_meta *m = &mf.meta;
    assert_string_equal(ob_meta_str(m, OB_KEY_ARCH, ""), "llama");
    assert_string_equal(ob_meta_str(m, OB_KEY_ACT, ""), "silu");
    assert_string_equal(ob_meta_str(m, OB_KEY_ROPE_TYPE, ""), "neox");
    assert_false(ob_meta_bool(m, OB_KEY_TIED, true));
    assert_int_equal(ob_meta_int(m, OB_KEY_CTX, 0), 512);
    assert_true(ob_meta_float(m, OB_KEY_ROPE_BASE, 0) == 10000.0);
    assert_true(ob_meta_float(m, OB_KEY_NORM_EPS, 0) == 1e-6);
    ob_model_file_close(&mf);
    built_free(&b);
}

/* A sharded directory (model.safetensors.index.json over two files) with
 * tokenizer.json and a chat template, against the same tensors imported from
 * one file. */
static void write_file(const char *dir, const char *name, const void *d, size_t n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void test_sharded_directory(void **state) {
    (void)state;
    char tok[4096];
    OB_REQUIRE_SHARED(tok, "data/llama3-tokenizer/tokenizer.json");
    built b;
    build(&b, PACKED, 0.5f, true, true, false, ob_test_seed());
    const char *cfg = config("bitnet", "{\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\"}",
                             "\"bos_token_id\": 128000, \"eos_token_id\": 128001");
    ob_model_file one;
    if (ob_hf_import_mem(cfg, strlen(cfg), b.file, b.size, "x", &one)) fail_msg("%s", ob_last_error());

    /* Split the tensors of b.file into two shards, re-read with the library's reader. */
    ob_safetensors st;
    assert_int_equal(ob_safetensors_parse(b.file, b.size, "x", &st), OB_OK);
    st_builder part[2] = { { .hlen = 0 }, { .hlen = 0 } };
    char index[16384];
    size_t il = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < st.n_tensors; i++) {
        const ob_st_tensor *t = &st.tensors[i];
        int p = (int)(i % 2);
        st_add(&part[p], t->name, ob_st_dtype_name(t->dtype), t->shape[0], t->n_dims > 1 ? t->shape[1] : 0, t->data,
               (size_t)t->nbytes);
        il += (size_t)snprintf(index + il, sizeof index - il, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                               i ? ", " : "", t->name, p + 1);
    }
    il += (size_t)snprintf(index + il, sizeof index - il, "}}");
    ob_safetensors_close(&st);

    char dir[] = "/tmp/ob_test_hf_XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int p = 0; p < 2; p++) {
        size_t n;
        uint8_t *f = st_finish(&part[p], &n);
        char name[64];
        snprintf(name, sizeof name, "model-0000%d-of-00002.safetensors", p + 1);
        write_file(dir, name, f, n);
        free(f);
    }
    write_file(dir, "model.safetensors.index.json", index, il);
    write_file(dir, "config.json", cfg, strlen(cfg));
    const char *tc = "{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}";
    write_file(dir, "tokenizer_config.json", tc, strlen(tc));
    char link[4200];
    snprintf(link, sizeof link, "%s/tokenizer.json", dir);
    char abs_tok[4096];
    assert_non_null(realpath(tok, abs_tok));
    assert_int_equal(symlink(abs_tok, link), 0);

    ob_model_file mf;
    ob_status rc = ob_hf_import(dir, &mf);
    const char *made[] = { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "model.safetensors.index.json", "config.json", "tokenizer_config.json", "tokenizer.json" };
    for (size_t i = 0; i < OB_ARRAY_LEN(made); i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        unlink(path);
    }
    rmdir(dir);
    if (rc) fail_msg("%s", ob_last_error());
    assert_int_equal(mf.n_tensors, one.n_tensors);
    for (size_t i = 0; i < one.n_tensors; i++) {
        const ob_tensor *x = &one.tensors[i], *y = ob_model_file_find(&mf, x->name);
        assert_non_null(y);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    const ob_meta *m = &mf.meta;
    assert_string_equal(ob_meta_str(m, OB_KEY_TOK_MODEL, ""), "gpt2");
    const ob_meta_entry *tokens = ob_meta_find(m, OB_KEY_TOK_TOKENS);
    assert_non_null(tokens);
    assert_true(tokens->count >= 128000);
    assert_string_equal(ob_meta_str(m, OB_KEY_CHAT_TEMPLATE, ""), "{% for m in messages %}{{ m.content }}{% endfor %}");
    assert_int_equal(ob_meta_int(m, OB_KEY_BOS, -1), 128000);
    assert_int_equal(ob_meta_int(m, OB_KEY_EOS, -1), 128001);
    assert_non_null(strstr(ob_meta_str(m, OB_KEY_SOURCE, ""), "hf:ob_test_hf_"));
    ob_model_file_close(&mf);
    ob_model_file_close(&one);
    built_free(&b);
}

/* ---- corrupt inputs --------------------------------------------------------- */

static void expect_fail(const char *cfg, const uint8_t *d, size_t n, ob_status want, const char *what) {
    ob_model_file mf;
    ob_clear_error();
    ob_status st = ob_hf_import_mem(cfg, strlen(cfg), d, n, "bad", &mf);
    if (st == OB_OK) fail_msg("%s: imported", what);
    if (want != OB_OK && st != want) fail_msg("%s: %s (%s)", what, ob_status_name(st), ob_last_error());
    if (!*ob_last_error()) fail_msg("%s: no message", what);
    assert_int_equal(mf.n_tensors, 0);
}

/* One tensor file from a header text and n data bytes. */
static uint8_t *one_file(const char *header, size_t data_bytes, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_bytes;
    uint8_t *f = calloc(1, *size);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(f + 8, header, h);
    return f;
}

static void test_safetensors_header_errors(void **state) {
    (void)state;
    static const struct {
        const char *header;
        size_t data;
        ob_status want;
    } cases[] = {
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 8, OB_ERR_FORMAT }, /* bad JSON */
        { "[1, 2]", 0, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 8]}}", 8, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 8]}}", 8,
          OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"Q9\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, OB_ERR_UNSUPPORTED },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
          "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
          "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16, OB_ERR_FORMAT },
        { "{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, OB_ERR_FORMAT },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(cases); i++) {
        size_t size;
        uint8_t *f = one_file(cases[i].header, cases[i].data, &size);
        ob_safetensors st;
        ob_clear_error();
        ob_status s = ob_safetensors_parse(f, size, "case", &st);
        if (s != cases[i].want) fail_msg("case %zu: %s (%s)", i, ob_status_name(s), ob_last_error());
        assert_true(*ob_last_error());
        free(f);
    }
    /* A header length beyond the file. */
    uint8_t tiny[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };
    ob_safetensors st;
    assert_int_equal(ob_safetensors_parse(tiny, sizeof tiny, "huge", &st), OB_ERR_FORMAT);
    assert_int_equal(ob_safetensors_parse(tiny, 5, "short", &st), OB_ERR_FORMAT);
}

static void test_import_errors(void **state) {
    (void)state;
    built b;
    build(&b, PACKED, 0.5f, true, true, false, 11);
    const char *quant = "{\"quant_method\": \"bitnet\", \"linear_class\": \"autobitlinear\"}";
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "%s", config("bitnet", quant, NULL));

    /* Truncation anywhere: the data no longer covers the offsets. */
    for (size_t n = 0; n < b.size; n += 1 + n / 16) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.file, n);
        expect_fail(cfg, copy, n, OB_ERR_FORMAT, "truncated");
        free(copy);
    }
    /* Config problems. */
    expect_fail("{\"model_type\": ", b.file, b.size, OB_ERR_FORMAT, "bad config JSON");
    expect_fail(config("gpt2", NULL, NULL), b.file, b.size, OB_ERR_UNSUPPORTED, "model_type gpt2");
    expect_fail(config("bitnet", "{\"quant_method\": \"gptq\"}", NULL), b.file, b.size, OB_ERR_UNSUPPORTED, "gptq");
    expect_fail("{\"model_type\": \"bitnet\", \"vocab_size\": 16}", b.file, b.size, OB_ERR_FORMAT, "missing dims");
    expect_fail(config("bitnet", quant, "\"num_attention_heads\": 3"), b.file, b.size, OB_ERR_FORMAT, "heads");
    expect_fail(config("bitnet", quant, "\"hidden_act\": \"gelu\""), b.file, b.size, OB_ERR_UNSUPPORTED, "gelu");
    /* Shapes that disagree with the config. */
    expect_fail(config("bitnet", quant, "\"intermediate_size\": 512"), b.file, b.size, OB_ERR_FORMAT, "ff size");
    expect_fail(config("bitnet", quant, "\"num_hidden_layers\": 2"), b.file, b.size, OB_ERR_FORMAT, "missing layer");

    /* Tensor values: locate bytes with the library's own (separately tested) reader. */
    ob_safetensors st;
    assert_int_equal(ob_safetensors_parse(b.file, b.size, "x", &st), OB_OK);
    const ob_st_tensor *q = ob_safetensors_find(&st, "model.layers.0.self_attn.q_proj.weight");
    const ob_st_tensor *qs = ob_safetensors_find(&st, "model.layers.0.self_attn.q_proj.weight_scale");
    assert_non_null(q);
    assert_non_null(qs);
    size_t q_at = (size_t)(q->data - b.file), qs_at = (size_t)(qs->data - b.file);
    ob_safetensors_close(&st);
    uint8_t *bad = malloc(b.size);
    const uint32_t scales[] = { 0x7fc00000u, 0x7f800000u, 0xbf000000u };
    for (int i = 0; i < 3; i++) {
        memcpy(bad, b.file, b.size);
        memcpy(bad + qs_at, &scales[i], 4);
        expect_fail(cfg, bad, b.size, OB_ERR_FORMAT, "NaN/inf/negative weight_scale");
    }
    memcpy(bad, b.file, b.size);
    memset(bad + qs_at, 0, 4); /* bitlinear divides by it */
    expect_fail(config("bitnet", "{\"quant_method\": \"bitnet\", \"linear_class\": \"bitlinear\"}", NULL), bad, b.size,
                OB_ERR_FORMAT, "zero weight_scale, divided");
    memcpy(bad, b.file, b.size);
    bad[q_at + 5] = 0xff;
    expect_fail(cfg, bad, b.size, OB_ERR_FORMAT, "code 3");
    free(bad);
    built_free(&b);
}

static void test_fixture_truncated(void **state) {
    (void)state;
    char dir[4096], path[4200];
    OB_REQUIRE_SHARED(dir, "fixtures/bitnet-tiny");
    size_t size, clen;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    uint8_t *file = slurp(path, &size);
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg = slurp(path, &clen);
    uint64_t seed = ob_test_seed();
    for (int i = 0; i < 40; i++) {
        size_t n = i < 20 ? (size_t)i * 397 : (size_t)(ob_test_rand(&seed) % size);
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, file, n);
        expect_fail(cfg, copy, n, OB_ERR_FORMAT, "fixture truncated");
        free(copy);
    }
    ob_model_file mf;
    if (ob_hf_import_mem(cfg, clen, file, size, "bitnet-tiny", &mf)) fail_msg("%s", ob_last_error());
    assert_int_equal(mf.n_tensors, 56);
    ob_model_file_close(&mf);
    free(file);
    free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_packed_scale_direction),
        cmocka_unit_test(test_float_bitnet_ternarized),
        cmocka_unit_test(test_llama_float),
        cmocka_unit_test(test_sharded_directory),
        cmocka_unit_test(test_safetensors_header_errors),
        cmocka_unit_test(test_import_errors),
        cmocka_unit_test(test_fixture_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
