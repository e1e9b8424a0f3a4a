/* Writes a random-weight BitNet GGUF in bitnet.cpp's I2_S layout, so that the
 * same file can be run by 1bit and by bitnet.cpp (docs/PERFORMANCE.md, "Side by
 * side with bitnet.cpp").
 *
 *   build/bench/write_bitnet_gguf [--shape 2b4t|tiny|bitnet:E,L,H,KV,FF,V] [--seed N] OUT.gguf
 *
 * The weights are exactly those of `1bit ... --synthetic SHAPE` with the same
 * seed (default 1): the engine's synthetic model is built, then written out.
 * What goes into the file, as bitnet.cpp's converter + llama-quantize write it
 * for microsoft/bitnet-b1.58-2B-4T (bitnet-reference.md §2.2-2.3):
 *   - general.architecture "bitnet-b1.58", general.file_type 40 (MOSTLY_I2_S),
 *     the "bitnet-b1.58.*" hyperparameters;
 *   - token_embd.weight F16 [E, V], tied (no output.weight); norms F32;
 *   - the seven linears of each block as I2_S (ggml type 36): the weights in
 *     row-major 128-weight blocks of 32 bytes (byte j%32 of a block holds weight
 *     j at bits 6-2*(j/32), code t+1), then a 32-byte tail that starts with the
 *     per-tensor scale beta as float32. Rows of whole blocks make 1bit's T2 rows
 *     byte-identical to this, so the packed bytes are copied as they are;
 *   - a synthetic byte-level BPE vocabulary of V tokens (tokenizer.ggml.model
 *     "gpt2", pre "llama-bpe"): the 256 byte symbols, a few hundred merges of
 *     common letters, unreachable fillers, and LLaMA-3's special tokens in the
 *     last 256 ids (<|begin_of_text|> = BOS, <|end_of_text|> = EOS,
 *     <|eot_id|>). Both engines read it (checked: they tokenize and continue a
 *     prompt identically on the tiny shape).
 * Alignment is GGUF's default 32; every I2_S tensor's n/4 + 32 bytes is a
 * multiple of it, so no padding falls between tensors. */
#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ALIGNMENT 32
#define ARCH "bitnet-b1.58"
#define GGML_F32 0
#define GGML_F16 1
#define GGML_I2_S 36
#define FTYPE_MOSTLY_I2_S 40

enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STR = 8, GGUF_ARR = 9 };

/* ---- a checked little-endian writer ---------------------------------------- */

typedef struct out {
    FILE *fp;
    uint64_t pos;      /* bytes written so far */
    uint64_t n_kv; /* key-value pairs written */
    bool failed;
} out;

static void put(out *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) o->failed = true;
    o->pos += n;
}
static void put_u32(out *o, uint32_t v) {
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    put(o, b, 4);
}
static void put_u64(out *o, uint64_t v) {
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}
static void put_f32(out *o, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(o, v);
}
static void put_str(out *o, const char *s, size_t n) {
    put_u64(o, n);
    put(o, s, n);
}
/* A key and its value type: the start of every key-value pair. */
static void put_key(out *o, const char *key, uint32_t type) {
    put_str(o, key, strlen(key));
    put_u32(o, type);
    o->n_kv++;
}
static void put_zeros(out *o, uint64_t n) {
    static const uint8_t zero[64];
    while (n && !o->failed) {
        size_t k = n < sizeof zero ? (size_t)n : sizeof zero;
        put(o, zero, k);
        n -= k;
    }
}

/* Key-value pairs: key, type, value. */
static void kv_str(out *o, const char *key, const char *v) {
    put_key(o, key, GGUF_STR);
    put_str(o, v, strlen(v));
}
static void kv_u32(out *o, const char *key, uint32_t v) {
    put_key(o, key, GGUF_U32);
    put_u32(o, v);
}
static void kv_f32(out *o, const char *key, float v) {
    put_key(o, key, GGUF_F32);
    put_f32(o, v);
}
static void kv_bool(out *o, const char *key, bool v) {
    uint8_t b = v;
    put_key(o, key, GGUF_BOOL);
    put(o, &b, 1);
}

/* ---- the synthetic vocabulary ---------------------------------------------- */

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes for code points 256, 257, ... in byte order. Writes the UTF-8
 * of byte b's symbol into s (2 bytes at most) and returns its length. */
static int byte_symbol(int b, char *s) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = b;
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    s[0] = (char)(0xC0 | (cp >> 6));
    s[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

#define N_SPECIAL_MAX 256
#define TOKEN_MAX 48
static const char merge_letters[] = "etaoinshrdlucmfw"; /* 16: 256 letter pairs + 16 "Ġx" */

typedef struct vocab {
    int n, n_merges, n_special, first_special;
    char (*tok)[TOKEN_MAX];
    int32_t *type;           /* 1 normal, 3 control */
    char (*merge)[TOKEN_MAX];
} vocab;

static ob_status make_vocab(int n_vocab, vocab *v) {
    int n_letters = (int)strlen(merge_letters);
    int n_merges = n_letters * n_letters + n_letters;
    int n_special = n_vocab / 4 < N_SPECIAL_MAX ? n_vocab / 4 : N_SPECIAL_MAX;
    if (n_vocab < 256 + n_merges + n_special)
        return ob_fail(OB_ERR_ARG, "a vocabulary of %d is too small for the synthetic tokenizer (needs %d)", n_vocab,
                       256 + n_merges + n_special);
    v->n = n_vocab;
    v->n_merges = n_merges;
    v->n_special = n_special;
    v->first_special = n_vocab - n_special;
    v->tok = calloc((size_t)n_vocab, sizeof *v->tok);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    v->merge = calloc((size_t)n_merges, sizeof *v->merge);
    if (!v->tok || !v->type || !v->merge) return ob_fail(OB_ERR_NOMEM, "out of memory (vocabulary)");
    int id = 0, m = 0;
    for (; id < 256; id++) v->tok[id][byte_symbol(id, v->tok[id])] = 0;
    /* "Ġ" is the symbol of the space byte: "Ġe" is " e". */
    char space[3] = { 0 };
    byte_symbol(' ', space);
    for (int i = 0; i < n_letters; i++, m++, id++) {
        snprintf(v->merge[m], TOKEN_MAX, "%s %c", space, merge_letters[i]);
        snprintf(v->tok[id], TOKEN_MAX, "%s%c", space, merge_letters[i]);
    }
    for (int i = 0; i < n_letters; i++)
        for (int j = 0; j < n_letters; j++, m++, id++) {
            snprintf(v->merge[m], TOKEN_MAX, "%c %c", merge_letters[i], merge_letters[j]);
            snprintf(v->tok[id], TOKEN_MAX, "%c%c", merge_letters[i], merge_letters[j]);
        }
    for (; id < v->first_special; id++) snprintf(v->tok[id], TOKEN_MAX, "<filler_%d>", id);
    for (int k = 0; id < n_vocab; id++, k++) {
        /* LLaMA-3's names: 0 begin_of_text, 1 end_of_text, 6/7 start/end_header_id, 9 eot_id. */
        static const char *named[] = { [0] = "<|begin_of_text|>", [1] = "<|end_of_text|>",
                                       [6] = "<|start_header_id|>", [7] = "<|end_header_id|>",
                                       [9] = "<|eot_id|>" };
        if (k < (int)OB_ARRAY_LEN(named) && named[k]) snprintf(v->tok[id], TOKEN_MAX, "%s", named[k]);
        else snprintf(v->tok[id], TOKEN_MAX, "<|reserved_special_token_%d|>", k);
    }
    for (int i = 0; i < n_vocab; i++) v->type[i] = i >= v->first_special ? 3 : 1;
    return OB_OK;
}

static void free_vocab(vocab *v) {
    free(v->tok);
    free(v->type);
    free(v->merge);
}

/* ---- tensors ----------------------------------------------------------------- */

/* One tensor of the output: its GGUF type and byte size, and where its beta is. */
typedef struct out_tensor {
    const ob_tensor *t;
    uint32_t ggml_type;
    uint64_t nbytes, offset;
    float beta;  /* I2_S */
} out_tensor;

static ob_status plan_tensor(const ob_model_file *mf, const ob_tensor *t, out_tensor *ot) {
    ot->t = t;
    if (t->type == OB_TYPE_F32 || t->type == OB_TYPE_F16) {
        ot->ggml_type = t->type == OB_TYPE_F32 ? GGML_F32 : GGML_F16;
        ot->nbytes = t->nbytes;
        return OB_OK;
    }
    if (t->type != OB_TYPE_T2)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: type %s has no place in an I2_S file", t->name, ob_type_name(t->type));
    if (t->ne[0] % OB_T2_BLOCK)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: I2_S needs rows of whole 128-weight blocks (in = %lld)", t->name,
                       (long long)t->ne[0]);
    char scale_name[OB_MAX_NAME];
    snprintf(scale_name, sizeof scale_name, "%.*s.scale", (int)(strlen(t->name) - strlen(".weight")), t->name);
    const ob_tensor *s = ob_model_file_find(mf, scale_name);
    if (!s || s->type != OB_TYPE_F32 || s->ne[0] * s->ne[1] * s->ne[2] * s->ne[3] != 1)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: I2_S holds one scale per tensor; %s is not a single F32", t->name,
                       scale_name);
    ot->ggml_type = GGML_I2_S;
    ot->nbytes = t->nbytes + 32; /* = n/4 packed bytes + the tail */
    ot->beta = *(const float *)s->data;
    return OB_OK;
}

static bool is_scale(const ob_tensor *t) {
    size_t n = strlen(t->name);
    return n > 6 && !strcmp(t->name + n - 6, ".scale");
}

static ob_status write_gguf(const ob_model *m, const char *path) {
    const ob_hparams *hp = &m->hp;
    const ob_model_file *mf = &m->file;
    vocab v = { 0 };
    out_tensor *ts = calloc(mf->n_tensors, sizeof *ts);
    out o = { 0 };
    ob_status st = ts ? make_vocab(hp->n_vocab, &v) : ob_fail(OB_ERR_NOMEM, "out of memory");
    size_t n = 0;
    uint64_t data_size = 0;
    for (size_t i = 0; !st && i < mf->n_tensors; i++) {
        if (is_scale(&mf->tensors[i])) continue; /* in its I2_S tensor's tail */
        if ((st = plan_tensor(mf, &mf->tensors[i], &ts[n]))) break;
        ts[n].offset = data_size;
        data_size += (ts[n].nbytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        n++;
    }
    if (st) goto done;
    if (!(o.fp = fopen(path, "wb"))) {
        st = ob_fail(OB_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }

    /* Header (the key count is patched in at the end) and metadata. */
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, n);
    put_u64(&o, 0);
    kv_str(&o, "general.architecture", ARCH);
    kv_str(&o, "general.name", "bitnet2b synthetic");
    kv_u32(&o, "general.file_type", FTYPE_MOSTLY_I2_S);
    kv_u32(&o, "general.quantization_version", 2);
    kv_u32(&o, ARCH ".vocab_size", (uint32_t)hp->n_vocab);
    kv_u32(&o, ARCH ".context_length", (uint32_t)hp->n_ctx_train);
    kv_u32(&o, ARCH ".embedding_length", (uint32_t)hp->n_embd);
    kv_u32(&o, ARCH ".block_count", (uint32_t)hp->n_layer);
    kv_u32(&o, ARCH ".feed_forward_length", (uint32_t)hp->n_ff);
    kv_u32(&o, ARCH ".rope.dimension_count", (uint32_t)hp->rope_dim);
    kv_u32(&o, ARCH ".attention.head_count", (uint32_t)hp->n_head);
    kv_u32(&o, ARCH ".attention.head_count_kv", (uint32_t)hp->n_head_kv);
    kv_f32(&o, ARCH ".attention.layer_norm_rms_epsilon", hp->norm_eps);
    kv_f32(&o, ARCH ".rope.freq_base", hp->rope_base);
    kv_str(&o, "tokenizer.ggml.model", "gpt2");
    kv_str(&o, "tokenizer.ggml.pre", "llama-bpe");
    put_key(&o, "tokenizer.ggml.tokens", GGUF_ARR);
    put_u32(&o, GGUF_STR);
    put_u64(&o, (uint64_t)v.n);
    for (int i = 0; i < v.n; i++) put_str(&o, v.tok[i], strlen(v.tok[i]));
    put_key(&o, "tokenizer.ggml.token_type", GGUF_ARR);
    put_u32(&o, GGUF_I32);
    put_u64(&o, (uint64_t)v.n);
    for (int i = 0; i < v.n; i++) put_u32(&o, (uint32_t)v.type[i]);
    put_key(&o, "tokenizer.ggml.merges", GGUF_ARR);
    put_u32(&o, GGUF_STR);
    put_u64(&o, (uint64_t)v.n_merges);
    for (int i = 0; i < v.n_merges; i++) put_str(&o, v.merge[i], strlen(v.merge[i]));
    kv_u32(&o, "tokenizer.ggml.bos_token_id", (uint32_t)v.first_special);
    kv_u32(&o, "tokenizer.ggml.eos_token_id", (uint32_t)v.first_special + 1);
    kv_u32(&o, "tokenizer.ggml.eot_token_id", (uint32_t)v.first_special + 9);
    kv_bool(&o, "tokenizer.ggml.add_bos_token", true);
    kv_u32(&o, "general.alignment", ALIGNMENT);

    /* Tensor infos, then the data section at the next multiple of ALIGNMENT. */
    for (size_t i = 0; i < n; i++) {
        const ob_tensor *t = ts[i].t;
        put_str(&o, t->name, strlen(t->name));
        put_u32(&o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, ts[i].ggml_type);
        put_u64(&o, ts[i].offset);
    }
    put_zeros(&o, (ALIGNMENT - o.pos % ALIGNMENT) % ALIGNMENT);
    uint64_t data_start = o.pos;
    for (size_t i = 0; i < n && !o.failed; i++) {
        put_zeros(&o, data_start + ts[i].offset - o.pos);
        put(&o, ts[i].t->data, (size_t)ts[i].t->nbytes);
        if (ts[i].ggml_type == GGML_I2_S) {
            put_f32(&o, ts[i].beta);
            put_zeros(&o, 28);
        }
    }
    put_zeros(&o, data_start + data_size - o.pos);
    if (!o.failed && fseek(o.fp, 16, SEEK_SET) == 0) put_u64(&o, o.n_kv);
    else o.failed = true;
    if (fclose(o.fp) != 0) o.failed = true;
    if (o.failed) {
        st = ob_fail(OB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        struct stat sb; /* a half-written file goes; a device such as /dev/full stays */
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) remove(path);
    }
done:
    free_vocab(&v);
    free(ts);
    return st;
}

int main(int argc, char **argv) {
    const char *shape = "2b4t", *path = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || end == argv[i]) { /* not a number: usage */
                path = NULL;
                break;
            }
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            path = NULL; /* unknown option or a second path: usage */
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: write_bitnet_gguf [--shape 2b4t|tiny|bitnet:E,L,H,KV,FF,V] [--seed N] OUT.gguf\n");
        return 2;
    }
    ob_model *m;
    if (ob_model_synthetic(shape, OB_TYPE_F16, seed, &m)) {
        fprintf(stderr, "write_bitnet_gguf: %s\n", ob_last_error());
        return 1;
    }
    ob_status st = write_gguf(m, path);
    ob_model_free(m);
    if (st) {
        fprintf(stderr, "write_bitnet_gguf: %s\n", ob_last_error());
        return 1;
    }
    return 0;
}
