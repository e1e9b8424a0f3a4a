/* GGUF v2/v3 importer.
 *
 * A GGUF file, all little-endian (str = u64 length + bytes, no NUL):
 *   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *   n_kv      x { str key, u32 value_type, value }
 *   n_tensors x { str name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   zero padding to general.alignment (default 32), then the data section;
 *   each offset is relative to the data section and a multiple of the alignment.
 *
 * Import runs in two passes: parse() reads and checks every byte of the header
 * and every tensor's extent against the file; only then are the metadata and
 * the tensors converted. Nothing is read from the data section before its
 * bounds are known. */
#include "format/gguf.h"

#include "format/import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- value and tensor type tables ------------------------------------- */

enum {
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_N_VALUE_TYPES
};
/* Byte size of a scalar value type; 0 for STR and ARR. */
static const uint8_t value_size[GGUF_N_VALUE_TYPES] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8, GGML_Q6_K = 14, GGML_BF16 = 30,
    GGML_TQ1_0 = 34, GGML_TQ2_0 = 35, GGML_I2_S = 36, /* I2_S: bitnet.cpp's fork only */
};

/* ggml type ids as written by llama.cpp (and bitnet.cpp where they differ).
 * block_bytes 0: a type we name in messages but do not read. */
typedef struct ggml_type_info {
    const char *name;
    uint32_t block_elems, block_bytes;
} ggml_type_info;

static const ggml_type_info ggml_types[] = {
    [GGML_F32] = { "F32", 1, 4 },       [GGML_F16] = { "F16", 1, 2 },
    [GGML_Q4_0] = { "Q4_0", 32, 18 },   [3] = { "Q4_1", 0, 0 },
    [6] = { "Q5_0", 0, 0 },             [7] = { "Q5_1", 0, 0 },
    [GGML_Q8_0] = { "Q8_0", 32, 34 },   [9] = { "Q8_1", 0, 0 },
    [10] = { "Q2_K", 0, 0 },            [11] = { "Q3_K", 0, 0 },
    [12] = { "Q4_K", 0, 0 },            [13] = { "Q5_K", 0, 0 },
    [GGML_Q6_K] = { "Q6_K", 256, 210 }, [15] = { "Q8_K", 0, 0 },
    [16] = { "IQ2_XXS", 0, 0 },         [17] = { "IQ2_XS", 0, 0 },
    [18] = { "IQ3_XXS", 0, 0 },         [19] = { "IQ1_S", 0, 0 },
    [20] = { "IQ4_NL", 0, 0 },          [21] = { "IQ3_S", 0, 0 },
    [22] = { "IQ2_S", 0, 0 },           [23] = { "IQ4_XS", 0, 0 },
    [24] = { "I8", 0, 0 },              [25] = { "I16", 0, 0 },
    [26] = { "I32", 0, 0 },             [27] = { "I64", 0, 0 },
    [28] = { "F64", 0, 0 },             [29] = { "IQ1_M", 0, 0 },
    [GGML_BF16] = { "BF16", 1, 2 },     [31] = { "Q4_0_4_4", 0, 0 },
    [32] = { "Q4_0_4_8", 0, 0 },        [33] = { "Q4_0_8_8", 0, 0 },
    [GGML_TQ1_0] = { "TQ1_0", 256, 54 }, [GGML_TQ2_0] = { "TQ2_0", 256, 66 },
    [GGML_I2_S] = { "I2_S", 0, 0 },     /* n/4 + 32 bytes; decided in i2s_size() */
    [37] = { "I8_S (bitnet.cpp) / IQ4_NL_4_8 (ggml)", 0, 0 },
    [38] = { "TL1 (bitnet.cpp) / IQ4_NL_8_8 (ggml)", 0, 0 },
    [39] = { "TL2 (bitnet.cpp) / MXFP4 (ggml)", 0, 0 },
};

static const ggml_type_info *ggml_type(uint32_t id) {
    return id < OB_ARRAY_LEN(ggml_types) && ggml_types[id].name ? &ggml_types[id] : NULL;
}
static bool is_ternary(uint32_t id) { return id == GGML_TQ1_0 || id == GGML_TQ2_0 || id == GGML_I2_S; }

#define LLAMA_FTYPE_MOSTLY_I2_S 40 /* bitnet.cpp's general.file_type for I2_S files */
#define MAX_ELEMS ((uint64_t)1 << 48) /* per tensor: far above any real model */
#define MAX_DIM ((int64_t)1 << 40)

/* ---- the parsed header -------------------------------------------------- */

typedef struct gguf_str {
    const char *s; /* into the file; not NUL-terminated */
    uint64_t n;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;      /* GGUF_* */
    uint32_t elem_type; /* ARR: element type */
    uint64_t count;     /* ARR: element count; 1 otherwise */
    const uint8_t *val; /* scalar bytes; STR: its length prefix; ARR: first element */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    int n_dims;
    int64_t ne[OB_MAX_DIMS];
    uint32_t type;
    uint64_t offset;  /* into the data section */
    uint64_t nbytes;  /* the type's size for ne */
    uint64_t extent;  /* bytes up to the next tensor or the end of the file */
} gguf_tensor;

typedef struct gguf {
    const char *file; /* for messages */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    gguf_kv *kv;
    uint64_t n_kv;
    gguf_tensor *t;
    uint64_t n_tensors;
    uint64_t alignment;
    const uint8_t *data;
    uint64_t data_size;
    gguf_str arch; /* general.architecture as written */
    int64_t file_type;
} gguf;

typedef struct cursor {
    const uint8_t *p, *end;
} cursor;

static bool rd_bytes(cursor *c, uint64_t n, const uint8_t **out) {
    if (n > (uint64_t)(c->end - c->p)) return false;
    *out = c->p;
    c->p += n;
    return true;
}
static bool rd_u32(cursor *c, uint32_t *v) {
    const uint8_t *p;
    if (!rd_bytes(c, 4, &p)) return false;
    *v = ob_rd_u32(p);
    return true;
}
static bool rd_u64(cursor *c, uint64_t *v) {
    const uint8_t *p;
    if (!rd_bytes(c, 8, &p)) return false;
    *v = ob_rd_u64(p);
    return true;
}
static bool rd_str(cursor *c, gguf_str *s) {
    const uint8_t *p;
    if (!rd_u64(c, &s->n) || !rd_bytes(c, s->n, &p)) return false;
    s->s = (const char *)p;
    return true;
}

static bool str_eq(gguf_str a, const char *b) { return a.n == strlen(b) && memcmp(a.s, b, a.n) == 0; }

static int cmp_str(const void *pa, const void *pb) {
    const gguf_str *a = pa, *b = pb;
    int c = memcmp(a->s, b->s, OB_MIN(a->n, b->n));
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* The first name that occurs twice in items[0..n), or NULL. */
static const gguf_str *find_duplicate(const gguf_str *items, uint64_t n, gguf_str *scratch) {
    memcpy(scratch, items, n * sizeof *items);
    qsort(scratch, n, sizeof *scratch, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_str(&scratch[i - 1], &scratch[i]) == 0) return &scratch[i];
    return NULL;
}

static ob_status truncated(const gguf *g, const cursor *c, const char *what) {
    return ob_fail(OB_ERR_FORMAT, "%s: truncated or corrupt GGUF header at byte %zu (%s)", g->file,
                   (size_t)(c->p - g->base), what);
}

/* Steps over one value of `type`, recording where it is in kv. */
static ob_status skip_value(const gguf *g, cursor *c, uint32_t type, gguf_kv *kv) {
    if (type >= GGUF_N_VALUE_TYPES)
        return ob_fail(OB_ERR_FORMAT, "%s: key %.*s has unknown value type %u", g->file,
                       (int)OB_MIN(kv->key.n, 64), kv->key.s, type);
    kv->type = type;
    kv->count = 1;
    kv->val = c->p;
    const uint8_t *p;
    if (type == GGUF_STR) {
        gguf_str s;
        return rd_str(c, &s) ? OB_OK : truncated(g, c, "string value");
    }
    if (type != GGUF_ARR) return rd_bytes(c, value_size[type], &p) ? OB_OK : truncated(g, c, "value");
    uint32_t et;
    uint64_t count;
    if (!rd_u32(c, &et) || !rd_u64(c, &count)) return truncated(g, c, "array header");
    if (et == GGUF_ARR)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: key %.*s is an array of arrays", g->file,
                       (int)OB_MIN(kv->key.n, 64), kv->key.s);
    if (et >= GGUF_N_VALUE_TYPES)
        return ob_fail(OB_ERR_FORMAT, "%s: key %.*s: unknown array element type %u", g->file,
                       (int)OB_MIN(kv->key.n, 64), kv->key.s, et);
    kv->elem_type = et;
    kv->count = count;
    kv->val = c->p;
    uint64_t left = (uint64_t)(c->end - c->p);
    if (et == GGUF_STR) {
        if (count > left / 8) return truncated(g, c, "string array longer than the file");
        for (uint64_t i = 0; i < count; i++) {
            gguf_str s;
            if (!rd_str(c, &s)) return truncated(g, c, "string array element");
        }
        return OB_OK;
    }
    if (count > left / value_size[et]) return truncated(g, c, "array longer than the file");
    c->p += count * value_size[et];
    return OB_OK;
}

static const gguf_kv *find_kv(const gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

/* A scalar integer (or bool) value; false for other types or a u64 above INT64_MAX. */
static bool kv_int(const gguf_kv *kv, int64_t *v) {
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case GGUF_U8: case GGUF_BOOL: *v = p[0]; return true;
    case GGUF_I8: *v = (int8_t)p[0]; return true;
    case GGUF_U16: *v = ob_rd_u16(p); return true;
    case GGUF_I16: *v = (int16_t)ob_rd_u16(p); return true;
    case GGUF_U32: *v = ob_rd_u32(p); return true;
    case GGUF_I32: *v = (int32_t)ob_rd_u32(p); return true;
    case GGUF_I64: *v = (int64_t)ob_rd_u64(p); return true;
    case GGUF_U64:
        if (ob_rd_u64(p) > INT64_MAX) return false;
        *v = (int64_t)ob_rd_u64(p);
        return true;
    default: return false;
    }
}

static bool kv_float(const gguf_kv *kv, double *v) {
    int64_t i;
    if (kv->type == GGUF_F32) *v = ob_rd_f32(kv->val);
    else if (kv->type == GGUF_F64) *v = ob_rd_f64(kv->val);
    else if (kv_int(kv, &i)) *v = (double)i;
    else return false;
    return true;
}

/* Element i of a numeric array as a double (the array was bounds-checked). */
static double arr_num(const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->val + i * value_size[kv->elem_type];
    switch (kv->elem_type) {
    case GGUF_U8: case GGUF_BOOL: return p[0];
    case GGUF_I8: return (int8_t)p[0];
    case GGUF_U16: return ob_rd_u16(p);
    case GGUF_I16: return (int16_t)ob_rd_u16(p);
    case GGUF_U32: return ob_rd_u32(p);
    case GGUF_I32: return (int32_t)ob_rd_u32(p);
    case GGUF_F32: return ob_rd_f32(p);
    case GGUF_U64: return (double)ob_rd_u64(p);
    case GGUF_I64: return (double)(int64_t)ob_rd_u64(p);
    case GGUF_F64: return ob_rd_f64(p);
    default: return 0;
    }
}

/* Typed lookups: absent keys leave *v unchanged; a key of the wrong type fails. */
static ob_status get_int(const gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return OB_OK;
    int64_t x;
    if (!kv_int(kv, &x)) return ob_fail(OB_ERR_FORMAT, "%s: key %s is not an integer", g->file, key);
    if (x < lo || x > hi)
        return ob_fail(OB_ERR_FORMAT, "%s: key %s = %lld is out of range [%lld, %lld]", g->file, key,
                       (long long)x, (long long)lo, (long long)hi);
    *v = x;
    return OB_OK;
}

static ob_status get_float(const gguf *g, const char *key, double *v) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return OB_OK;
    double x;
    if (!kv_float(kv, &x)) return ob_fail(OB_ERR_FORMAT, "%s: key %s is not a number", g->file, key);
    if (!isfinite(x) || x <= 0)
        return ob_fail(OB_ERR_FORMAT, "%s: key %s = %g must be positive and finite", g->file, key, x);
    *v = x;
    return OB_OK;
}

static ob_status get_str(const gguf *g, const char *key, gguf_str *v) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv) return OB_OK;
    if (kv->type != GGUF_STR) return ob_fail(OB_ERR_FORMAT, "%s: key %s is not a string", g->file, key);
    v->n = ob_rd_u64(kv->val);
    v->s = (const char *)kv->val + 8;
    return OB_OK;
}

/* ---- pass 1: parse and validate ----------------------------------------- */

/* Byte size of tensor t when stored as I2_S, or 0 when the file does not show
 * that type id 36 means I2_S. Upstream ggml gave 36 to IQ4_NL_4_4 (since
 * removed), 18 bytes per 32 weights, so the id alone does not decide. I2_S is
 * n/4 packed bytes plus a 32-byte tail; believe it when that size fills the gap
 * to the next tensor (up to alignment padding) and either the file says so
 * (bitnet.cpp's file_type 40, a bitnet architecture) or IQ4_NL_4_4 data could
 * not fit the gap. */
static uint64_t i2s_size(const gguf *g, const gguf_tensor *t) {
    uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
    if (n % 128) return 0;
    uint64_t need = n / 4 + 32, padded = (need + g->alignment - 1) / g->alignment * g->alignment;
    bool fills_gap = t->extent >= need && t->extent <= padded;
    bool bitnet_arch = g->arch.n >= 6 && memcmp(g->arch.s, "bitnet", 6) == 0;
    bool says_i2s = g->file_type == LLAMA_FTYPE_MOSTLY_I2_S || bitnet_arch;
    bool distinct = n / 32 * 18 > t->extent;
    return fills_gap && (says_i2s || distinct) ? need : 0;
}

static int cmp_offset(const void *pa, const void *pb) {
    const gguf_tensor *a = *(const gguf_tensor *const *)pa, *b = *(const gguf_tensor *const *)pb;
    return (a->offset > b->offset) - (a->offset < b->offset);
}

static ob_status parse(gguf *g) {
    cursor c = { g->base, g->base + g->size };
    const uint8_t *p;
    if (!rd_bytes(&c, 4, &p) || memcmp(p, "GGUF", 4) != 0)
        return ob_fail(OB_ERR_FORMAT, "%s: not a GGUF file (bad magic)", g->file);
    if (!rd_u32(&c, &g->version)) return truncated(g, &c, "version");
    if (g->version == 1)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (re-convert to v3)", g->file);
    if (g->version == 0x02000000 || g->version == 0x03000000)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", g->file);
    if (g->version != 2 && g->version != 3)
        return ob_fail(OB_ERR_FORMAT, "%s: unknown GGUF version %u", g->file, g->version);
    if (!rd_u64(&c, &g->n_tensors) || !rd_u64(&c, &g->n_kv)) return truncated(g, &c, "counts");
    /* A key-value pair takes at least 13 bytes, a tensor info at least 33. */
    uint64_t left = (uint64_t)(c.end - c.p);
    if (g->n_kv > left / 13 || g->n_tensors > left / 33)
        return ob_fail(OB_ERR_FORMAT, "%s: %llu tensors and %llu metadata keys cannot fit in %zu bytes",
                       g->file, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv, g->size);
    if (g->n_tensors == 0) return ob_fail(OB_ERR_FORMAT, "%s: no tensors", g->file);
    g->kv = calloc(g->n_kv + 1, sizeof *g->kv);
    g->t = calloc(g->n_tensors, sizeof *g->t);
    gguf_str *scratch = malloc((OB_MAX(g->n_kv, g->n_tensors) + 1) * sizeof *scratch);
    gguf_str *names = malloc((g->n_tensors + 1) * sizeof *names);
    gguf_tensor **by_offset = malloc(g->n_tensors * sizeof *by_offset);
    ob_status st = OB_OK;
    if (!g->kv || !g->t || !scratch || !names || !by_offset) {
        st = ob_fail(OB_ERR_NOMEM, "%s: out of memory", g->file);
        goto done;
    }

    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        uint32_t type;
        if (!rd_str(&c, &kv->key)) { st = truncated(g, &c, "key"); goto done; }
        if (kv->key.n == 0) { st = ob_fail(OB_ERR_FORMAT, "%s: empty metadata key", g->file); goto done; }
        if (!rd_u32(&c, &type)) { st = truncated(g, &c, "value type"); goto done; }
        if ((st = skip_value(g, &c, type, kv))) goto done;
    }
    if (g->n_kv) {
        gguf_str *keys = malloc(g->n_kv * sizeof *keys);
        if (!keys) { st = ob_fail(OB_ERR_NOMEM, "%s: out of memory", g->file); goto done; }
        for (uint64_t i = 0; i < g->n_kv; i++) keys[i] = g->kv[i].key;
        const gguf_str *dup = find_duplicate(keys, g->n_kv, scratch);
        if (dup) st = ob_fail(OB_ERR_FORMAT, "%s: duplicate metadata key %.*s", g->file, (int)OB_MIN(dup->n, 64), dup->s);
        free(keys);
        if (st) goto done;
    }

    int64_t align = 32;
    if ((st = get_int(g, "general.alignment", 1, 1 << 24, &align))) goto done;
    if (align & (align - 1)) {
        st = ob_fail(OB_ERR_FORMAT, "%s: general.alignment %lld is not a power of two", g->file, (long long)align);
        goto done;
    }
    g->alignment = (uint64_t)align;
    g->file_type = -1;
    if ((st = get_int(g, "general.file_type", INT32_MIN, INT32_MAX, &g->file_type))) goto done;
    if ((st = get_str(g, "general.architecture", &g->arch))) goto done;

    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->t[i];
        uint32_t n_dims;
        if (!rd_str(&c, &t->name)) { st = truncated(g, &c, "tensor name"); goto done; }
        if (t->name.n == 0 || t->name.n >= OB_MAX_NAME || memchr(t->name.s, 0, t->name.n)) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %llu has an invalid name (%llu bytes)", g->file,
                         (unsigned long long)i, (unsigned long long)t->name.n);
            goto done;
        }
        const int nl = (int)t->name.n;
        if (!rd_u32(&c, &n_dims)) { st = truncated(g, &c, "tensor dims"); goto done; }
        if (n_dims < 1 || n_dims > OB_MAX_DIMS) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s has %u dimensions", g->file, nl, t->name.s, n_dims);
            goto done;
        }
        t->n_dims = (int)n_dims;
        uint64_t elems = 1;
        for (int d = 0; d < OB_MAX_DIMS; d++) {
            uint64_t ne = 1;
            if (d < t->n_dims && !rd_u64(&c, &ne)) { st = truncated(g, &c, "tensor shape"); goto done; }
            if (ne < 1 || ne > (uint64_t)MAX_DIM || ne > MAX_ELEMS / elems) {
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: dimension %d = %llu is invalid", g->file, nl,
                             t->name.s, d, (unsigned long long)ne);
                goto done;
            }
            elems *= ne;
            t->ne[d] = (int64_t)ne;
        }
        if (!rd_u32(&c, &t->type) || !rd_u64(&c, &t->offset)) { st = truncated(g, &c, "tensor info"); goto done; }
        names[i] = t->name;
        by_offset[i] = t;
    }
    const gguf_str *dup = find_duplicate(names, g->n_tensors, scratch);
    if (dup) {
        st = ob_fail(OB_ERR_FORMAT, "%s: duplicate tensor %.*s", g->file, (int)dup->n, dup->s);
        goto done;
    }

    uint64_t header_end = (uint64_t)(c.p - g->base);
    uint64_t data_start = (header_end + g->alignment - 1) / g->alignment * g->alignment;
    if (data_start > g->size) {
        st = ob_fail(OB_ERR_FORMAT, "%s: truncated: the data section would start at byte %llu of %zu", g->file,
                     (unsigned long long)data_start, g->size);
        goto done;
    }
    g->data = g->base + data_start;
    g->data_size = g->size - data_start;

    /* Extents: sorted by offset, each tensor may use the bytes up to the next. */
    qsort(by_offset, g->n_tensors, sizeof *by_offset, cmp_offset);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = by_offset[i];
        const int nl = (int)t->name.n;
        if (t->offset % g->alignment) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: offset %llu is not a multiple of the alignment %llu",
                         g->file, nl, t->name.s, (unsigned long long)t->offset, (unsigned long long)g->alignment);
            goto done;
        }
        if (t->offset >= g->data_size) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: offset %llu is past the end of the data (%llu bytes)",
                         g->file, nl, t->name.s, (unsigned long long)t->offset, (unsigned long long)g->data_size);
            goto done;
        }
        t->extent = (i + 1 < g->n_tensors ? by_offset[i + 1]->offset : g->data_size) - t->offset;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = by_offset[i];
        const int nl = (int)t->name.n;
        const ggml_type_info *ti = ggml_type(t->type);
        if (!ti) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: unknown tensor type id %u", g->file, nl, t->name.s, t->type);
            goto done;
        }
        if (t->type == GGML_I2_S) {
            t->nbytes = i2s_size(g, t);
            if (!t->nbytes) {
                st = ob_fail(OB_ERR_UNSUPPORTED,
                             "%s: tensor %.*s: type 36 is I2_S in bitnet.cpp but a removed IQ4_NL_4_4 in ggml, "
                             "and this file does not show which (file_type %lld, %llu bytes for %lld x %lld weights)",
                             g->file, nl, t->name.s, (long long)g->file_type, (unsigned long long)t->extent,
                             (long long)t->ne[0], (long long)(t->ne[1] * t->ne[2] * t->ne[3]));
                goto done;
            }
        } else if (!ti->block_bytes) {
            st = ob_fail(OB_ERR_UNSUPPORTED, "%s: tensor %.*s: unsupported tensor type %s", g->file, nl, t->name.s,
                         ti->name);
            goto done;
        } else {
            if (t->ne[0] % ti->block_elems) {
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: row length %lld is not a multiple of the %s block (%u)",
                             g->file, nl, t->name.s, (long long)t->ne[0], ti->name, ti->block_elems);
                goto done;
            }
            uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
            t->nbytes = (uint64_t)t->ne[0] / ti->block_elems * ti->block_bytes * rows; /* < 2^54 */
        }
        if (t->nbytes > t->extent) {
            if (t->nbytes > g->data_size - t->offset)
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s: %llu bytes at offset %llu run past the end of the file",
                             g->file, nl, t->name.s, (unsigned long long)t->nbytes, (unsigned long long)t->offset);
            else
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %.*s overlaps tensor %.*s", g->file, nl, t->name.s,
                             (int)by_offset[i + 1]->name.n, by_offset[i + 1]->name.s);
            goto done;
        }
    }

done:
    free(scratch);
    free(names);
    free(by_offset);
    return st;
}

/* ---- pass 2a: metadata ------------------------------------------------- */

static const gguf_tensor *find_tensor(const gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (str_eq(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

/* Copies a string array key (GGUF spelling unchanged). */
static ob_status copy_str_arr(const gguf *g, const gguf_kv *kv, ob_meta *m, const char *key) {
    if (kv->type != GGUF_ARR || kv->elem_type != GGUF_STR)
        return ob_fail(OB_ERR_FORMAT, "%s: %.*s is not an array of strings", g->file, (int)kv->key.n, kv->key.s);
    const char **strs = malloc((kv->count + 1) * sizeof *strs);
    uint32_t *lens = malloc((kv->count + 1) * sizeof *lens);
    ob_status st = OB_OK;
    if (!strs || !lens) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    const uint8_t *p = kv->val; /* walked once in skip_value: every length fits */
    for (uint64_t i = 0; !st && i < kv->count; i++) {
        uint64_t n = ob_rd_u64(p);
        if (n > UINT32_MAX) st = ob_fail(OB_ERR_FORMAT, "%s: %.*s: string %llu is too long", g->file,
                                         (int)kv->key.n, kv->key.s, (unsigned long long)i);
        strs[i] = (const char *)p + 8;
        lens[i] = (uint32_t)n;
        p += 8 + n;
    }
    if (!st) st = ob_meta_set_str_arr(m, key, strs, lens, kv->count);
    free(strs);
    free(lens);
    return st;
}

static ob_status copy_num_arr(const gguf *g, const gguf_kv *kv, ob_meta *m, const char *key, bool as_float) {
    if (kv->type != GGUF_ARR || kv->elem_type == GGUF_STR)
        return ob_fail(OB_ERR_FORMAT, "%s: %.*s is not a numeric array", g->file, (int)kv->key.n, kv->key.s);
    void *v = malloc((kv->count + 1) * 4);
    if (!v) return ob_fail(OB_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < kv->count; i++) {
        double x = arr_num(kv, i);
        if (as_float) ((float *)v)[i] = (float)x;
        else ((int32_t *)v)[i] = x >= INT32_MIN && x <= INT32_MAX ? (int32_t)x : 0;
    }
    ob_status st = as_float ? ob_meta_set_f32_arr(m, key, v, kv->count) : ob_meta_set_i32_arr(m, key, v, kv->count);
    free(v);
    return st;
}

/* The tokenizer keys: GGUF name -> canonical name, and how to copy. */
typedef enum { TK_STR, TK_STRS, TK_F32S, TK_I32S, TK_ID, TK_BOOL } tok_kind;
static const struct {
    const char *gguf, *key;
    tok_kind kind;
} tokenizer_keys[] = {
    { "tokenizer.ggml.model", OB_KEY_TOK_MODEL, TK_STR },
    { "tokenizer.ggml.pre", OB_KEY_TOK_PRE, TK_STR },
    { "tokenizer.ggml.tokens", OB_KEY_TOK_TOKENS, TK_STRS },
    { "tokenizer.ggml.scores", OB_KEY_TOK_SCORES, TK_F32S },
    { "tokenizer.ggml.token_type", OB_KEY_TOK_TYPES, TK_I32S },
    { "tokenizer.ggml.merges", OB_KEY_TOK_MERGES, TK_STRS },
    { "tokenizer.ggml.bos_token_id", OB_KEY_BOS, TK_ID },
    { "tokenizer.ggml.eos_token_id", OB_KEY_EOS, TK_ID },
    { "tokenizer.ggml.eot_token_id", OB_KEY_EOT, TK_ID },
    { "tokenizer.ggml.add_bos_token", OB_KEY_ADD_BOS, TK_BOOL },
    { "tokenizer.chat_template", OB_KEY_CHAT_TEMPLATE, TK_STR },
};

static ob_status import_tokenizer(const gguf *g, ob_meta *m) {
    ob_status st = OB_OK;
    for (size_t i = 0; !st && i < OB_ARRAY_LEN(tokenizer_keys); i++) {
        const gguf_kv *kv = find_kv(g, tokenizer_keys[i].gguf);
        const char *key = tokenizer_keys[i].key;
        if (!kv) continue;
        int64_t v;
        switch (tokenizer_keys[i].kind) {
        case TK_STR: {
            gguf_str s = { 0 };
            if (!(st = get_str(g, tokenizer_keys[i].gguf, &s))) st = ob_meta_set_strn(m, key, s.s, (size_t)s.n);
            break;
        }
        case TK_STRS: st = copy_str_arr(g, kv, m, key); break;
        case TK_F32S: st = copy_num_arr(g, kv, m, key, true); break;
        case TK_I32S: st = copy_num_arr(g, kv, m, key, false); break;
        case TK_ID: /* llama.cpp writes -1 (as u32 0xffffffff) for "none" */
            if (!kv_int(kv, &v)) st = ob_fail(OB_ERR_FORMAT, "%s: %s is not an integer", g->file, tokenizer_keys[i].gguf);
            else if (v >= 0 && v < INT32_MAX) st = ob_meta_set_int(m, key, v);
            break;
        case TK_BOOL:
            if (!kv_int(kv, &v)) st = ob_fail(OB_ERR_FORMAT, "%s: %s is not a bool", g->file, tokenizer_keys[i].gguf);
            else st = ob_meta_set_bool(m, key, v != 0);
            break;
        }
    }
    if (!st && !ob_meta_find(m, OB_KEY_TOK_MODEL)) st = ob_meta_set_str(m, OB_KEY_TOK_MODEL, "none");
    return st;
}

typedef enum { ARCH_BITNET, ARCH_LLAMA } arch_kind;

/* The GGUF architecture names we read, and what they are. */
static const struct {
    const char *gguf;
    arch_kind kind;
} architectures[] = {
    { "bitnet-b1.58", ARCH_BITNET }, { "bitnet-25", ARCH_BITNET }, { "bitnet", ARCH_BITNET },
    { "llama", ARCH_LLAMA },
};

static ob_status import_meta(const gguf *g, ob_model_file *out) {
    ob_meta *m = &out->meta;
    if (!g->arch.s) return ob_fail(OB_ERR_FORMAT, "%s: general.architecture is missing", g->file);
    const int al = (int)OB_MIN(g->arch.n, 64);
    size_t a = 0;
    while (a < OB_ARRAY_LEN(architectures) && !str_eq(g->arch, architectures[a].gguf)) a++;
    if (a == OB_ARRAY_LEN(architectures))
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (1bit reads bitnet and llama)",
                       g->file, al, g->arch.s);
    arch_kind kind = architectures[a].kind;

    /* "<arch>.<suffix>" keys. */
    char key[160];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%.*s.%s", al, g->arch.s, suffix), key)
    const int64_t big = INT32_MAX;
    int64_t vocab = -1, ctx = 2048, embd = -1, layers = -1, ff = -1, heads = -1, heads_kv = -1;
    int64_t head_dim = -1, rope_dim = -1;
    double rope_base = kind == ARCH_LLAMA ? 10000.0 : 500000.0, eps = 1e-5;
    ob_status st;
    if ((st = get_int(g, ARCH_KEY("vocab_size"), 1, big, &vocab)) ||
        (st = get_int(g, ARCH_KEY("context_length"), 1, big, &ctx)) ||
        (st = get_int(g, ARCH_KEY("embedding_length"), 1, big, &embd)) ||
        (st = get_int(g, ARCH_KEY("block_count"), 1, 65536, &layers)) ||
        (st = get_int(g, ARCH_KEY("feed_forward_length"), 1, big, &ff)) ||
        (st = get_int(g, ARCH_KEY("attention.head_count"), 1, 65536, &heads)) ||
        (st = get_int(g, ARCH_KEY("attention.head_count_kv"), 1, 65536, &heads_kv)) ||
        (st = get_int(g, ARCH_KEY("attention.key_length"), 1, 65536, &head_dim)) ||
        (st = get_int(g, ARCH_KEY("rope.dimension_count"), 1, 65536, &rope_dim)) ||
        (st = get_float(g, ARCH_KEY("rope.freq_base"), &rope_base)) ||
        (st = get_float(g, ARCH_KEY("attention.layer_norm_rms_epsilon"), &eps)))
        return st;
    const char *missing = embd < 0 ? "embedding_length" : layers < 0 ? "block_count"
                        : ff < 0 ? "feed_forward_length" : heads < 0 ? "attention.head_count" : NULL;
    if (missing) return ob_fail(OB_ERR_FORMAT, "%s: key %.*s.%s is missing", g->file, al, g->arch.s, missing);
    if (heads_kv < 0) heads_kv = heads;
    if (heads % heads_kv)
        return ob_fail(OB_ERR_FORMAT, "%s: %lld heads are not a multiple of %lld KV heads", g->file,
                       (long long)heads, (long long)heads_kv);
    if (head_dim < 0) {
        if (embd % heads)
            return ob_fail(OB_ERR_FORMAT, "%s: embedding length %lld is not a multiple of %lld heads", g->file,
                           (long long)embd, (long long)heads);
        head_dim = embd / heads;
    }
    if (rope_dim < 0) rope_dim = head_dim;
    if (rope_dim > head_dim || rope_dim % 2)
        return ob_fail(OB_ERR_FORMAT, "%s: rope dimension %lld does not fit head dimension %lld", g->file,
                       (long long)rope_dim, (long long)head_dim);
    if (vocab < 0) {
        const gguf_kv *tokens = find_kv(g, "tokenizer.ggml.tokens");
        const gguf_tensor *emb = find_tensor(g, "token_embd.weight");
        if (tokens && tokens->type == GGUF_ARR && tokens->count > 0 && tokens->count <= (uint64_t)big)
            vocab = (int64_t)tokens->count;
        else if (emb && emb->n_dims == 2) vocab = emb->ne[1];
        else return ob_fail(OB_ERR_FORMAT, "%s: the vocabulary size is not given", g->file);
    }
    const char *act = kind == ARCH_LLAMA ? "silu" : "relu2";
    gguf_str hidden_act = { 0 };
    if ((st = get_str(g, ARCH_KEY("hidden_act"), &hidden_act))) return st;
    if (hidden_act.s && (str_eq(hidden_act, "silu") || str_eq(hidden_act, "swish"))) act = "silu";
#undef ARCH_KEY

    gguf_str name = { 0 };
    if ((st = get_str(g, "general.name", &name))) return st;
    if (name.s && (st = ob_meta_set_strn(m, OB_KEY_NAME, name.s, (size_t)name.n))) return st;
    bool sub_norms = kind == ARCH_BITNET && find_tensor(g, "blk.0.attn_sub_norm.weight") != NULL;
    if ((st = ob_meta_set_str(m, OB_KEY_ARCH, kind == ARCH_LLAMA ? "llama" : "bitnet")) ||
        (st = ob_meta_set_int(m, OB_KEY_VOCAB, vocab)) || (st = ob_meta_set_int(m, OB_KEY_CTX, ctx)) ||
        (st = ob_meta_set_int(m, OB_KEY_EMBD, embd)) || (st = ob_meta_set_int(m, OB_KEY_LAYERS, layers)) ||
        (st = ob_meta_set_int(m, OB_KEY_FF, ff)) || (st = ob_meta_set_int(m, OB_KEY_HEADS, heads)) ||
        (st = ob_meta_set_int(m, OB_KEY_HEADS_KV, heads_kv)) || (st = ob_meta_set_int(m, OB_KEY_HEAD_DIM, head_dim)) ||
        (st = ob_meta_set_int(m, OB_KEY_ROPE_DIM, rope_dim)) || (st = ob_meta_set_float(m, OB_KEY_ROPE_BASE, rope_base)) ||
        /* llama.cpp's LLAMA rope rotates adjacent pairs (its converter un-permutes HF q/k);
         * the BitNet GGUFs keep HF order, which pairs i with i + d/2. */
        (st = ob_meta_set_str(m, OB_KEY_ROPE_TYPE, kind == ARCH_LLAMA ? "norm" : "neox")) ||
        (st = ob_meta_set_float(m, OB_KEY_NORM_EPS, eps)) || (st = ob_meta_set_str(m, OB_KEY_ACT, act)) ||
        (st = ob_meta_set_bool(m, OB_KEY_SUBNORM, sub_norms)) ||
        (st = ob_meta_set_bool(m, OB_KEY_TIED, find_tensor(g, "output.weight") == NULL)))
        return st;
    return import_tokenizer(g, m);
}

/* ---- pass 2b: tensors --------------------------------------------------- */

/* Ternary blocks of 256 (TQ1_0, TQ2_0) -> 256 codes (0, 1, 2 = t + 1). */
static void decode_tq2_0(const uint8_t *blk, uint8_t *codes) {
    /* qs[64]: element e is in byte 32*(e/128) + e%32 at bits 2*((e%128)/32), LSB first. */
    for (int e = 0; e < 256; e++) codes[e] = (blk[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static void decode_tq1_0(const uint8_t *blk, uint8_t *codes) {
    /* Five base-3 digits per byte, first element most significant, stored as
     * ceil(v * 256 / 243): multiplying by 3^k brings digit k to the top. */
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
#define TRIT(q, k) (uint8_t)(((uint8_t)((q) * pow3[k]) * 3) >> 8)
    const uint8_t *qs = blk, *qh = blk + 48;
    for (int m = 0; m < 32; m++)
        for (int k = 0; k < 5; k++) codes[m + 32 * k] = TRIT(qs[m], k);
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 5; k++) codes[160 + m + 16 * k] = TRIT(qs[32 + m], k);
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) codes[240 + j + 4 * k] = TRIT(qh[j], k);
#undef TRIT
}

/* I2_S, TQ1_0 or TQ2_0 -> OB_TYPE_T2 + "<name>.scale". extra_scale: a
 * separate "<name>.scale" F32 the GGUF carried (multiplied in), or 1. */
static ob_status convert_ternary(const gguf *g, const gguf_tensor *t, const char *name, float extra_scale,
                                 ob_model_file *out) {
    const uint8_t *src = g->data + t->offset;
    int64_t in = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    uint8_t *dst;
    ob_status st = ob_model_file_new_tensor(out, name, OB_TYPE_T2, t->n_dims, t->ne, (void **)&dst);
    if (st) return st;
    size_t row_bytes = ob_type_row_bytes(OB_TYPE_T2, in);
    uint8_t *codes = malloc((size_t)in + 256);
    float *beta = malloc((size_t)rows * sizeof *beta);
    if (!codes || !beta) {
        st = ob_fail(OB_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }

    bool per_tensor = true;
    if (t->type == GGML_I2_S) {
        /* One row-major run of 128-weight blocks (blocks may span rows), then
         * the float32 beta at the start of a 32-byte tail. */
        uint64_t n = (uint64_t)in * (uint64_t)rows;
        beta[0] = ob_rd_f32(src + n / 4);
        if ((st = ob_check_scale(beta[0], name))) goto done;
        if (in % 128 == 0) { /* rows of whole blocks: the bytes are already T2 */
            for (uint64_t i = 0; i < n / 4; i++)
                if (src[i] & (src[i] >> 1) & 0x55) {
                    st = ob_fail(OB_ERR_FORMAT, "%s: invalid ternary code 3 in row %lld", name,
                                 (long long)(i * 4 / (uint64_t)in));
                    goto done;
                }
            memcpy(dst, src, (size_t)(n / 4));
        }
        for (int64_t r = 0; in % 128 && r < rows; r++) {
            for (int64_t c = 0; c < in; c++) {
                uint64_t k = (uint64_t)r * (uint64_t)in + (uint64_t)c, j = k % 128;
                codes[c] = (src[k / 128 * 32 + j % 32] >> (6 - 2 * (j / 32))) & 3;
                if (codes[c] == 3) {
                    st = ob_fail(OB_ERR_FORMAT, "%s: invalid ternary code 3 at row %lld column %lld", name,
                                 (long long)r, (long long)c);
                    goto done;
                }
            }
            ob_t2_pack_row(codes, in, dst + (size_t)r * row_bytes);
        }
    } else {
        /* 256-weight blocks, each with its own f16 d. A row must use one d,
         * except that all-zero blocks (whose d may be anything, often 0) do not count. */
        const ggml_type_info *ti = ggml_type(t->type);
        int64_t blocks = in / 256;
        bool any = false;
        float common = 0;
        for (int64_t r = 0; r < rows; r++) {
            bool row_set = false;
            beta[r] = 0;
            for (int64_t b = 0; b < blocks; b++) {
                const uint8_t *blk = src + ((size_t)r * (size_t)blocks + (size_t)b) * ti->block_bytes;
                uint8_t *c = codes + b * 256;
                float d;
                if (t->type == GGML_TQ2_0) {
                    decode_tq2_0(blk, c);
                    d = ob_f16_to_f32(ob_rd_u16(blk + 64));
                } else {
                    decode_tq1_0(blk, c);
                    d = ob_f16_to_f32(ob_rd_u16(blk + 52));
                }
                if ((st = ob_check_scale(d, name))) goto done;
                bool nonzero = false;
                for (int e = 0; e < 256; e++) {
                    if (c[e] == 3) {
                        st = ob_fail(OB_ERR_FORMAT, "%s: invalid ternary code 3 in row %lld", name, (long long)r);
                        goto done;
                    }
                    nonzero |= c[e] != 1;
                }
                if (!nonzero) continue;
                if (row_set && d != beta[r]) {
                    st = ob_fail(OB_ERR_UNSUPPORTED,
                                 "%s: row %lld has blocks with different scales (%g and %g); 1bit supports one "
                                 "scale per row or per tensor", name, (long long)r, (double)beta[r], (double)d);
                    goto done;
                }
                beta[r] = d;
                row_set = true;
            }
            if (row_set) {
                if (!any) common = beta[r];
                else if (beta[r] != common) per_tensor = false;
                any = true;
            } else {
                beta[r] = NAN; /* all zero: takes any scale */
            }
            ob_t2_pack_row(codes, in, dst + (size_t)r * row_bytes);
        }
        for (int64_t r = 0; r < rows; r++)
            if (isnan(beta[r])) beta[r] = common;
    }
    int64_t n_scale = per_tensor ? 1 : rows;
    for (int64_t i = 0; i < n_scale; i++) beta[i] *= extra_scale;
    st = ob_add_scale(out, name, beta, n_scale);
done:
    free(codes);
    free(beta);
    return st;
}

/* Q4_0 and Q6_K are read only for the embedding and the LM head (llama.cpp
 * and bitnet.cpp offer them there), dequantized to F16:
 *   Q4_0  18-byte blocks of 32: f16 d, then 16 bytes; byte j holds element j in
 *         its low nibble and element j + 16 in its high nibble; w = d * (q - 8).
 *   Q6_K  210-byte blocks of 256: ql[128], qh[64], int8 scales[16], f16 d. Half
 *         h (128 elements) uses ql + 64h, qh + 32h, scales + 8h. Its element
 *         32g + l (g < 4, l < 32) has low 4 bits from ql[l + 32*(g & 1)] (low
 *         nibble for g < 2, high for g >= 2), high 2 bits from qh[l] bits 2g,
 *         and scale scales[2g + l/16]; w = d * scale * (q - 32). */
static bool f16_only_type(uint32_t type) { return type == GGML_Q4_0 || type == GGML_Q6_K; }

static void dequant_block(uint32_t type, const uint8_t *blk, float *y) {
    if (type == GGML_Q4_0) {
        float d = ob_f16_to_f32(ob_rd_u16(blk));
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((blk[2 + j] & 15) - 8);
            y[j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
        }
        return;
    }
    float d = ob_f16_to_f32(ob_rd_u16(blk + 208));
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)blk + 192 + 8 * h;
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                int lo = g < 2 ? ql[l + 32 * (g & 1)] & 15 : ql[l + 32 * (g & 1)] >> 4;
                int q = (lo | ((qh[l] >> (2 * g)) & 3) << 4) - 32;
                y[128 * h + 32 * g + l] = d * (float)sc[2 * g + l / 16] * (float)q;
            }
    }
}

/* F32, F16, BF16 or Q8_0 element i as float. */
static float float_at(uint32_t type, const uint8_t *src, uint64_t i) {
    switch (type) {
    case GGML_F32: return ob_rd_f32(src + 4 * i);
    case GGML_F16: return ob_f16_to_f32(ob_rd_u16(src + 2 * i));
    case GGML_BF16: return ob_bf16_to_f32(ob_rd_u16(src + 2 * i));
    default: { /* Q8_0 */
        const uint8_t *blk = src + i / 32 * 34;
        return ob_f16_to_f32(ob_rd_u16(blk)) * (float)(int8_t)blk[2 + i % 32];
    }
    }
}

static ob_status convert_tensor(const gguf *g, const gguf_tensor *t, ob_model_file *out) {
    char name[OB_MAX_NAME];
    memcpy(name, t->name.s, t->name.n);
    name[t->name.n] = 0;
    const uint8_t *src = g->data + t->offset;
    if (is_ternary(t->type)) {
        /* Older llama.cpp BitNet conversions carry a separate "<name>.scale". */
        char scale_name[OB_MAX_NAME];
        float extra = 1.0f;
        ob_status st = ob_scale_name(name, scale_name);
        if (st) return st;
        const gguf_tensor *s = find_tensor(g, scale_name);
        if (s) {
            if (s->type != GGML_F32 || s->ne[0] * s->ne[1] * s->ne[2] * s->ne[3] != 1)
                return ob_fail(OB_ERR_UNSUPPORTED, "%s: %s: only a single F32 value is supported", g->file, scale_name);
            extra = ob_rd_f32(g->data + s->offset);
            if ((st = ob_check_scale(extra, scale_name))) return st;
        }
        return convert_ternary(g, t, name, extra, out);
    }
    if (ob_str_ends_with(name, ".scale")) {
        /* Folded into its ternary weight above. */
        char weight[OB_MAX_NAME];
        snprintf(weight, sizeof weight, "%.*s.weight", (int)t->name.n - 6, name);
        const gguf_tensor *w = find_tensor(g, weight);
        if (w && is_ternary(w->type)) return OB_OK;
    }
    if (f16_only_type(t->type)) {
        const ggml_type_info *ti = ggml_type(t->type);
        if (strcmp(name, "token_embd.weight") != 0 && strcmp(name, "output.weight") != 0)
            return ob_fail(OB_ERR_UNSUPPORTED, "%s: %s: unsupported tensor type %s (read only for token_embd and output)",
                           g->file, name, ti->name);
        uint16_t *dst;
        ob_status st = ob_model_file_new_tensor(out, name, OB_TYPE_F16, t->n_dims, t->ne, (void **)&dst);
        if (st) return st;
        uint64_t blocks = t->nbytes / ti->block_bytes;
        float y[256];
        for (uint64_t b = 0; b < blocks; b++) {
            dequant_block(t->type, src + b * ti->block_bytes, y);
            for (uint32_t j = 0; j < ti->block_elems; j++) dst[b * ti->block_elems + j] = ob_f32_to_f16(y[j]);
        }
        return OB_OK;
    }
    bool to_f32 = t->n_dims == 1 && ob_str_ends_with(name, "_norm.weight");
    ob_type type = to_f32 ? OB_TYPE_F32
                 : t->type == GGML_F32 ? OB_TYPE_F32 : t->type == GGML_F16 ? OB_TYPE_F16
                 : t->type == GGML_BF16 ? OB_TYPE_BF16 : OB_TYPE_Q8_0;
    void *dst;
    ob_status st = ob_model_file_new_tensor(out, name, type, t->n_dims, t->ne, &dst);
    if (st) return st;
    if (to_f32 && t->type != GGML_F32) {
        float *f = dst;
        for (int64_t i = 0; i < t->ne[0]; i++) f[i] = float_at(t->type, src, (uint64_t)i);
    } else {
        memcpy(dst, src, (size_t)t->nbytes); /* same layout: GGUF and 1bit agree on these four */
    }
    return OB_OK;
}

/* ---- entry points -------------------------------------------------------- */

ob_status ob_gguf_import_mem(const uint8_t *data, size_t size, const char *name, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    gguf g = { .file = name ? name : "gguf", .base = data, .size = size };
    ob_status st = parse(&g);
    if (!st) st = import_meta(&g, out);

    /* Provenance: the ternary type if any, else the type of the first linear. */
    const char *kind = NULL;
    for (uint64_t i = 0; !st && i < g.n_tensors && !kind; i++)
        if (is_ternary(g.t[i].type)) kind = ggml_type(g.t[i].type)->name;
    if (!st && !kind) {
        const gguf_tensor *q = find_tensor(&g, "blk.0.attn_q.weight");
        kind = ggml_type((q ? q : &g.t[0])->type)->name;
    }
    if (!st) {
        const char *base = strrchr(g.file, '/');
        char src[512];
        snprintf(src, sizeof src, "gguf:%s (%s)", base ? base + 1 : g.file, kind);
        st = ob_meta_set_str(&out->meta, OB_KEY_SOURCE, src);
    }

    ob_progress progress;
    uint64_t total = 0;
    for (uint64_t i = 0; !st && i < g.n_tensors; i++) total += g.t[i].nbytes;
    ob_progress_begin(&progress, "converting", total);
    for (uint64_t i = 0; !st && i < g.n_tensors; i++) {
        st = convert_tensor(&g, &g.t[i], out);
        if (st && !strstr(ob_last_error(), g.file)) ob_fail_prefix(st, "%s: ", g.file);
        ob_progress_add(&progress, g.t[i].nbytes);
    }
    ob_progress_end(&progress);
    free(g.kv);
    free(g.t);
    if (st) ob_model_file_close(out);
    return st;
}

ob_status ob_gguf_import(const char *path, ob_model_file *out) {
    ob_mapped_file f;
    ob_status st = ob_map_file(path, &f);
    if (st) {
        memset(out, 0, sizeof *out);
        return st;
    }
    st = ob_gguf_import_mem(f.data, f.size, path, out);
    ob_unmap_file(&f);
    return st;
}
