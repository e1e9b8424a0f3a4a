/* Synthetic models: random weights at the exact shapes of real ones, built in
 * memory, so benchmarks and tests need no download. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct shape {
    const char *name;
    const char *arch;       /* "bitnet" | "llama" */
    int embd, layers, heads, kv_heads, ff, vocab, ctx;
    bool sub_norms, relu2, tied;
    float rope_base;
} shape;

/* One table of known shapes (bitnet-reference.md §1.1 and §7). */
static const shape shapes[] = {
    { "2b4t",  "bitnet", 2560, 30, 20, 5, 6912, 128256, 4096, true, true, true, 500000.0f },
    { "tiny",  "bitnet", 512, 3, 4, 1, 1536, 1000, 4096, true, true, true, 500000.0f },
    { "large", "bitnet", 1536, 24, 16, 16, 4096, 32002, 2048, true, false, true, 10000.0f },
    { "3b",    "bitnet", 3200, 26, 32, 32, 8640, 32002, 2048, true, false, true, 10000.0f },
    { "8b",    "llama",  4096, 32, 32, 8, 14336, 128256, 8192, false, false, false, 500000.0f },
};

typedef struct { uint64_t s; } rng;
static inline uint64_t next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float uniform(rng *r) { return (float)(next(r) >> 40) * 0x1.0p-24f; } /* [0, 1) */

static ob_status parse_shape(const char *spec, shape *out) {
    for (size_t i = 0; i < OB_ARRAY_LEN(shapes); i++)
        if (!strcmp(spec, shapes[i].name)) {
            *out = shapes[i];
            return OB_OK;
        }
    shape s = shapes[0];
    char arch[16];
    int n = sscanf(spec, "%15[a-z]:%d,%d,%d,%d,%d,%d", arch, &s.embd, &s.layers, &s.heads, &s.kv_heads, &s.ff, &s.vocab);
    if (n != 7 || (strcmp(arch, "bitnet") && strcmp(arch, "llama")))
        return ob_fail(OB_ERR_ARG, "unknown synthetic shape '%s' (2b4t, tiny, large, 3b, 8b, or "
                                   "bitnet:EMBD,LAYERS,HEADS,KV_HEADS,FF,VOCAB)", spec);
    if (s.embd < 1 || s.layers < 1 || s.heads < 1 || s.kv_heads < 1 || s.ff < 1 || s.vocab < 1 ||
        s.embd > 65536 || s.layers > 512 || s.ff > 262144 || s.vocab > (1 << 20) || s.embd % s.heads ||
        s.heads % s.kv_heads || (s.embd / s.heads) % 2)
        return ob_fail(OB_ERR_ARG, "synthetic shape '%s' is not a valid model", spec);
    s.name = "custom";
    s.arch = !strcmp(arch, "bitnet") ? "bitnet" : "llama";
    s.sub_norms = s.relu2 = !strcmp(arch, "bitnet");
    *out = s;
    return OB_OK;
}

static int64_t pad128(int64_t n) { return (n + 127) / 128 * 128; }

static ob_status ternary(ob_model_file *mf, rng *r, const char *prefix, int64_t in, int64_t out) {
    char name[OB_MAX_NAME];
    int64_t ne[2] = { in, out }, ne1[1] = { 1 };
    void *w, *sc;
    snprintf(name, sizeof name, "%s.weight", prefix);
    ob_status st = ob_model_file_new_tensor(mf, name, OB_TYPE_T2, 2, ne, &w);
    if (st) return st;
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, in);
    uint8_t *p = w;
    for (int64_t row = 0; row < out; row++) {
        uint8_t *rp = p + (size_t)row * rb;
        for (size_t i = 0; i < rb; i += 8) {
            uint64_t x = next(r);
            /* each 2-bit field: 0, 1, 2 as drawn, 3 -> 1 (zero) */
            uint64_t hi = x & 0xAAAAAAAAAAAAAAAAull, lo = x & 0x5555555555555555ull;
            x &= ~(((hi >> 1) & lo) << 1);
            memcpy(rp + i, &x, OB_MIN(8, rb - i));
        }
        for (int64_t c = in; c < pad128(in); c++) ob_t2_set(rp, c, 0); /* padding is zero */
    }
    snprintf(name, sizeof name, "%s.scale", prefix);
    if ((st = ob_model_file_new_tensor(mf, name, OB_TYPE_F32, 1, ne1, &sc))) return st;
    *(float *)sc = 0.5f + uniform(r);
    return OB_OK;
}


static ob_status norm(ob_model_file *mf, rng *r, const char *name, int64_t n) {
    void *p;
    ob_status st = ob_model_file_new_tensor(mf, name, OB_TYPE_F32, 1, &n, &p);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) ((float *)p)[i] = 0.8f + 0.4f * uniform(r);
    return OB_OK;
}

/* Fills an [E, V] matrix of type t with values of about +-0.05. */
static ob_status matrix(ob_model_file *mf, rng *r, const char *name, ob_type t, int64_t E, int64_t V) {
    int64_t ne[2] = { E, V };
    void *p;
    ob_status st = ob_model_file_new_tensor(mf, name, t, 2, ne, &p);
    if (st) return st;
    size_t n = (size_t)E * (size_t)V;
    if (t == OB_TYPE_F16 || t == OB_TYPE_BF16) {
        /* Random sign and mantissa with the exponent of 2^-5: values in +-[1/32, 1/16),
         * four per random draw (filling a 657 MB head by float conversion is slow). */
        uint16_t *h = p;
        uint16_t expo = t == OB_TYPE_F16 ? (uint16_t)(10 << 10) : (uint16_t)(122 << 7);
        uint16_t mant = t == OB_TYPE_F16 ? 0x83ff : 0x807f; /* sign + mantissa bits */
        for (size_t i = 0; i < n; i += 4) {
            uint64_t x = next(r);
            for (size_t j = 0; j < 4 && i + j < n; j++) h[i + j] = (uint16_t)(((x >> (16 * j)) & mant) | expo);
        }
    } else if (t == OB_TYPE_F32) {
        for (size_t i = 0; i < n; i++) ((float *)p)[i] = (uniform(r) - 0.5f) * 0.1f;
    } else if (t == OB_TYPE_I8) {
        int8_t *q = p;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t x = next(r);
            for (size_t j = 0; j < 8 && i + j < n; j++) q[i + j] = (int8_t)((int)((x >> (8 * j)) & 0xff) % 255 - 127);
        }
        char sname[OB_MAX_NAME];
        snprintf(sname, sizeof sname, "%.*s.scale", (int)(strlen(name) - 7), name); /* strip ".weight" */
        int64_t nv = V;
        void *s;
        if ((st = ob_model_file_new_tensor(mf, sname, OB_TYPE_F32, 1, &nv, &s))) return st;
        for (int64_t i = 0; i < V; i++) ((float *)s)[i] = 0.05f / 127.0f;
    } else {
        return ob_fail(OB_ERR_ARG, "synthetic head type %s is not supported (f16, bf16, f32, i8)", ob_type_name(t));
    }
    return OB_OK;
}

ob_status ob_model_synthetic(const char *spec, ob_type head_type, uint64_t seed, ob_model **out) {
    *out = NULL;
    shape s = { 0 };
    ob_status st = parse_shape(spec, &s);
    if (st) return st;
    ob_model_file mf = { 0 };
    ob_meta *m = &mf.meta;
    rng r = { seed };
    int head_dim = s.embd / s.heads;
    char src[96];
    snprintf(src, sizeof src, "synthetic:%s seed %llu", spec, (unsigned long long)seed);
    if ((st = ob_meta_set_str(m, OB_KEY_ARCH, s.arch)) || (st = ob_meta_set_str(m, OB_KEY_NAME, spec)) ||
        (st = ob_meta_set_str(m, OB_KEY_SOURCE, src)) || (st = ob_meta_set_int(m, OB_KEY_VOCAB, s.vocab)) ||
        (st = ob_meta_set_int(m, OB_KEY_CTX, s.ctx)) || (st = ob_meta_set_int(m, OB_KEY_EMBD, s.embd)) ||
        (st = ob_meta_set_int(m, OB_KEY_LAYERS, s.layers)) || (st = ob_meta_set_int(m, OB_KEY_FF, s.ff)) ||
        (st = ob_meta_set_int(m, OB_KEY_HEADS, s.heads)) || (st = ob_meta_set_int(m, OB_KEY_HEADS_KV, s.kv_heads)) ||
        (st = ob_meta_set_int(m, OB_KEY_HEAD_DIM, head_dim)) || (st = ob_meta_set_float(m, OB_KEY_ROPE_BASE, s.rope_base)) ||
        (st = ob_meta_set_str(m, OB_KEY_ROPE_TYPE, "neox")) || (st = ob_meta_set_float(m, OB_KEY_NORM_EPS, 1e-5)) ||
        (st = ob_meta_set_str(m, OB_KEY_ACT, s.relu2 ? "relu2" : "silu")) ||
        (st = ob_meta_set_bool(m, OB_KEY_SUBNORM, s.sub_norms)) || (st = ob_meta_set_bool(m, OB_KEY_TIED, s.tied)) ||
        (st = ob_meta_set_str(m, OB_KEY_TOK_MODEL, "none")))
        goto fail;
    int64_t E = s.embd, F = s.ff, Q = (int64_t)s.heads * head_dim, KV = (int64_t)s.kv_heads * head_dim;
    ob_type embd_type = s.tied ? head_type : OB_TYPE_F16;
    if ((st = matrix(&mf, &r, "token_embd.weight", embd_type, E, s.vocab))) goto fail;
    if (!s.tied && (st = matrix(&mf, &r, "output.weight", head_type, E, s.vocab))) goto fail;
    if ((st = norm(&mf, &r, "output_norm.weight", E))) goto fail;
    for (int l = 0; l < s.layers; l++) {
        char name[OB_MAX_NAME];
        struct { const char *nm; int64_t in, out; } lin[] = {
            { "attn_q", E, Q }, { "attn_k", E, KV }, { "attn_v", E, KV }, { "attn_output", Q, E },
            { "ffn_gate", E, F }, { "ffn_up", E, F }, { "ffn_down", F, E },
        };
        for (size_t i = 0; i < OB_ARRAY_LEN(lin); i++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, lin[i].nm);
            if ((st = ternary(&mf, &r, name, lin[i].in, lin[i].out))) goto fail;
        }
        struct { const char *nm; int64_t n; bool sub; } norms[] = {
            { "attn_norm", E, false }, { "ffn_norm", E, false }, { "attn_sub_norm", Q, true }, { "ffn_sub_norm", F, true },
        };
        for (size_t i = 0; i < OB_ARRAY_LEN(norms); i++) {
            if (norms[i].sub && !s.sub_norms) continue;
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[i].nm);
            if ((st = norm(&mf, &r, name, norms[i].n))) goto fail;
        }
    }
    return ob_model_from_file(&mf, out);
fail:
    ob_model_file_close(&mf);
    return st;
}
