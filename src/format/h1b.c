/* The native .h1b format: writer, mmap reader, data verifier.
 *
 * docs/FORMAT.md is the specification; the constants below are its tables.
 * The reader trusts nothing: every offset, size, count, name and type is
 * checked before the bytes it describes are touched, and every failure is one
 * ob_fail message that starts with the file's name. */
#include "format/h1b.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error ".h1b tensors are mapped in place: 1bit needs a little-endian host"
#endif

static const uint8_t h1b_magic[8] = { '1', 'b', 'i', 't', 'H', '1', 'B', 0 };

/* Header field offsets (FORMAT.md, "Header"). */
enum {
    HO_MAGIC = 0, HO_VERSION = 8, HO_HEADER_SIZE = 12, HO_FILE_SIZE = 16, HO_ALIGN = 24,
    HO_N_TENSORS = 28, HO_TABLE_OFFSET = 32, HO_TABLE_SIZE = 40, HO_META_OFFSET = 48,
    HO_META_SIZE = 56, HO_META_COUNT = 64, HO_DATA_OFFSET = 72, HO_DATA_SIZE = 80,
    HO_DATA_CHECKSUM = 88, HO_HEAD_CHECKSUM = 96, HO_RESERVED = 104,
};

/* Tensor record: 192 bytes (FORMAT.md, "Tensor table"). */
enum {
    REC_SIZE = 192, RO_NAME = 0, RO_TYPE = 128, RO_N_DIMS = 132, RO_NE = 136, RO_OFFSET = 168,
    RO_NBYTES = 176, RO_RESERVED = 184,
};
_Static_assert(OB_MAX_NAME == 128, "the record's name field is OB_MAX_NAME bytes");

#define MAX_TENSORS 16384
#define MAX_META 4096
#define MAX_KEY 1024
#define MAX_DIM ((int64_t)1 << 40)
#define DATA_CHUNK ((size_t)1 << 20) /* data_checksum is chained over 1 MiB chunks */

/* Metadata value type codes in the file; they are the ob_meta_type values,
 * pinned here so that a change to the enum cannot change the format. */
static const struct { uint32_t code; ob_meta_type type; const char *name; } meta_types[] = {
    { 0, OB_META_INT, "int" },         { 1, OB_META_FLOAT, "float" },
    { 2, OB_META_BOOL, "bool" },       { 3, OB_META_STR, "str" },
    { 4, OB_META_STR_ARR, "str[]" },   { 5, OB_META_I32_ARR, "i32[]" },
    { 6, OB_META_F32_ARR, "f32[]" },
};

/* ---- shared by reader and writer -------------------------------------- */

static uint64_t data_checksum(const uint8_t *p, uint64_t n) {
    uint64_t c = 0;
    for (uint64_t off = 0; off < n; off += DATA_CHUNK) {
        size_t len = (size_t)OB_MIN((uint64_t)DATA_CHUNK, n - off);
        c = ob_hash64(p + off, len, c);
    }
    return c;
}

/* head: the bytes [0, data_offset). */
static uint64_t head_checksum(const uint8_t *head, uint64_t data_offset) {
    uint8_t hdr[OB_H1B_HEADER_SIZE];
    memcpy(hdr, head, sizeof hdr);
    memset(hdr + HO_HEAD_CHECKSUM, 0, 8);
    uint64_t seed = ob_hash64(hdr, sizeof hdr, 0);
    return ob_hash64(head + OB_H1B_HEADER_SIZE, (size_t)(data_offset - OB_H1B_HEADER_SIZE), seed);
}

bool ob_h1b_head_checksum(const uint8_t *file, size_t size, uint64_t *out) {
    if (size < OB_H1B_HEADER_SIZE) return false;
    uint64_t data_offset = ob_rd_u64(file + HO_DATA_OFFSET);
    if (data_offset < OB_H1B_HEADER_SIZE || data_offset > size) return false;
    *out = head_checksum(file, data_offset);
    return true;
}

/* Names and keys: non-empty, no NUL or control bytes (so messages print them). */
static bool clean_text(const uint8_t *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool is_scale_name(const char *name) { return ob_str_ends_with(name, ".scale"); }

/* A ".scale" tensor must be f32 with finite values >= 0 (FORMAT.md, "Scales"). */
static ob_status check_scale(const char *file, const char *name, ob_type type, const void *data,
                             uint64_t nbytes) {
    if (type != OB_TYPE_F32)
        return ob_fail(OB_ERR_FORMAT, "%s: scale tensor %s is %s, expected f32", file, name,
                       ob_type_name(type));
    const uint8_t *p = data;
    for (uint64_t i = 0; i < nbytes / 4; i++) {
        float s = ob_rd_f32(p + 4 * i);
        if (!isfinite(s) || s < 0)
            return ob_fail(OB_ERR_FORMAT, "%s: scale tensor %s holds %g at index %llu (scales must be finite and >= 0)",
                           file, name, (double)s, (unsigned long long)i);
    }
    return OB_OK;
}

/* ---- reader --------------------------------------------------------------- */

static ob_status read_header(const uint8_t *f, size_t size, const char *file, ob_h1b_header *h) {
    if (size < OB_H1B_HEADER_SIZE) {
        if (size >= 7 && memcmp(f, h1b_magic, 7) != 0)
            return ob_fail(OB_ERR_FORMAT, "%s: not an .h1b file (bad magic)", file);
        return ob_fail(OB_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the %d-byte .h1b header",
                       file, size, OB_H1B_HEADER_SIZE);
    }
    if (memcmp(f + HO_MAGIC, h1b_magic, 8) != 0)
        return ob_fail(OB_ERR_FORMAT, "%s: not an .h1b file (bad magic)", file);
    memset(h, 0, sizeof *h);
    h->version = ob_rd_u32(f + HO_VERSION);
    h->header_size = ob_rd_u32(f + HO_HEADER_SIZE);
    h->file_size = ob_rd_u64(f + HO_FILE_SIZE);
    h->alignment = ob_rd_u32(f + HO_ALIGN);
    h->n_tensors = ob_rd_u32(f + HO_N_TENSORS);
    h->table_offset = ob_rd_u64(f + HO_TABLE_OFFSET);
    h->table_size = ob_rd_u64(f + HO_TABLE_SIZE);
    h->meta_offset = ob_rd_u64(f + HO_META_OFFSET);
    h->meta_size = ob_rd_u64(f + HO_META_SIZE);
    h->meta_count = ob_rd_u64(f + HO_META_COUNT);
    h->data_offset = ob_rd_u64(f + HO_DATA_OFFSET);
    h->data_size = ob_rd_u64(f + HO_DATA_SIZE);
    h->data_checksum = ob_rd_u64(f + HO_DATA_CHECKSUM);
    h->head_checksum = ob_rd_u64(f + HO_HEAD_CHECKSUM);

    if (h->version != OB_H1B_VERSION)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: .h1b version %u is not supported (this build reads version %d)",
                       file, h->version, OB_H1B_VERSION);
    if (h->header_size != OB_H1B_HEADER_SIZE)
        return ob_fail(OB_ERR_FORMAT, "%s: header size %u, expected %d", file, h->header_size, OB_H1B_HEADER_SIZE);
    for (int i = HO_RESERVED; i < OB_H1B_HEADER_SIZE; i++)
        if (f[i]) return ob_fail(OB_ERR_FORMAT, "%s: reserved header byte %d is not zero", file, i);
    if (h->file_size != size)
        return ob_fail(OB_ERR_FORMAT, "%s: file is %zu bytes but its header says %llu (truncated or damaged)",
                       file, size, (unsigned long long)h->file_size);
    uint32_t a = h->alignment;
    if (a < OB_ALIGN || a > OB_H1B_MAX_ALIGN || (a & (a - 1)))
        return ob_fail(OB_ERR_FORMAT, "%s: bad data alignment %u", file, a);
    if (h->data_offset < OB_H1B_HEADER_SIZE || h->data_offset > size || h->data_offset % a)
        return ob_fail(OB_ERR_FORMAT, "%s: bad data offset %llu", file, (unsigned long long)h->data_offset);
    if (h->data_size != size - h->data_offset)
        return ob_fail(OB_ERR_FORMAT, "%s: data section of %llu bytes at %llu does not end the %zu-byte file",
                       file, (unsigned long long)h->data_size, (unsigned long long)h->data_offset, size);
    if (h->n_tensors > MAX_TENSORS)
        return ob_fail(OB_ERR_FORMAT, "%s: %u tensors (at most %d)", file, h->n_tensors, MAX_TENSORS);
    if (h->meta_count > MAX_META)
        return ob_fail(OB_ERR_FORMAT, "%s: %llu metadata entries (at most %d)", file,
                       (unsigned long long)h->meta_count, MAX_META);
    if (h->table_size != (uint64_t)h->n_tensors * REC_SIZE)
        return ob_fail(OB_ERR_FORMAT, "%s: tensor table of %llu bytes for %u tensors", file,
                       (unsigned long long)h->table_size, h->n_tensors);
    /* Both regions inside [header, data_offset), not overlapping. No sum can
     * wrap: each term was bounded by data_offset <= size first. */
    uint64_t lo = OB_H1B_HEADER_SIZE, hi = h->data_offset;
    if (h->table_offset < lo || h->table_offset > hi || h->table_size > hi - h->table_offset)
        return ob_fail(OB_ERR_FORMAT, "%s: tensor table (%llu bytes at %llu) lies outside the file's head",
                       file, (unsigned long long)h->table_size, (unsigned long long)h->table_offset);
    if (h->meta_offset < lo || h->meta_offset > hi || h->meta_size > hi - h->meta_offset)
        return ob_fail(OB_ERR_FORMAT, "%s: metadata (%llu bytes at %llu) lies outside the file's head",
                       file, (unsigned long long)h->meta_size, (unsigned long long)h->meta_offset);
    if (h->table_size && h->meta_size && h->table_offset < h->meta_offset + h->meta_size &&
        h->meta_offset < h->table_offset + h->table_size)
        return ob_fail(OB_ERR_FORMAT, "%s: tensor table and metadata overlap", file);
    if (head_checksum(f, h->data_offset) != h->head_checksum)
        return ob_fail(OB_ERR_FORMAT, "%s: header checksum mismatch (the header, tensor table or metadata is damaged)", file);
    return OB_OK;
}

/* A bounded reader over the metadata block. */
typedef struct cursor {
    const uint8_t *p;
    uint64_t left;
} cursor;

static const uint8_t *take(cursor *c, uint64_t n) {
    if (n > c->left) return NULL;
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

/* Reads a u32/u64 length-prefixed string and its 0 byte. */
static const uint8_t *take_str(cursor *c, uint64_t len) {
    const uint8_t *s = take(c, len);
    const uint8_t *nul = s ? take(c, 1) : NULL;
    return nul && *nul == 0 ? s : NULL;
}

static ob_status read_str_arr(cursor *c, ob_meta *m, const char *key, const char *file) {
    const uint8_t *p = take(c, 8);
    if (!p) return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: truncated", file, key);
    uint64_t count = ob_rd_u64(p);
    if (count > c->left / 5) /* each string takes at least 5 bytes */
        return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: %llu strings cannot fit in the metadata block", file,
                       key, (unsigned long long)count);
    char **strs = calloc(count ? count : 1, sizeof *strs);
    uint32_t *lens = calloc(count ? count : 1, sizeof *lens);
    if (!strs || !lens) {
        free(strs);
        free(lens);
        return ob_fail(OB_ERR_NOMEM, "%s: metadata %s: out of memory", file, key);
    }
    ob_status st = OB_OK;
    uint64_t i = 0;
    for (; i < count; i++) {
        const uint8_t *lp = take(c, 4), *s = lp ? take_str(c, ob_rd_u32(lp)) : NULL;
        if (!s) {
            st = ob_fail(OB_ERR_FORMAT, "%s: metadata %s: string %llu runs past the metadata block", file, key,
                         (unsigned long long)i);
            break;
        }
        lens[i] = ob_rd_u32(lp);
        if (!(strs[i] = ob_strndup((const char *)s, lens[i]))) {
            st = ob_fail(OB_ERR_NOMEM, "%s: metadata %s: out of memory", file, key);
            break;
        }
    }
    if (st) {
        for (uint64_t j = 0; j < i; j++) free(strs[j]);
        free(strs);
        free(lens);
        return st;
    }
    return ob_meta_take_str_arr(m, key, strs, lens, count); /* frees them on failure */
}

/* I32_ARR / F32_ARR: count 4-byte values. */
static ob_status read_arr32(cursor *c, ob_meta *m, const char *key, ob_meta_type type, const char *file) {
    const uint8_t *p = take(c, 8);
    uint64_t count = p ? ob_rd_u64(p) : 0;
    if (!p || count > c->left / 4)
        return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: array runs past the metadata block", file, key);
    const uint8_t *v = take(c, count * 4);
    /* Copy into aligned memory: the file gives no alignment for arrays. */
    void *tmp = malloc(count ? count * 4 : 1);
    if (!tmp) return ob_fail(OB_ERR_NOMEM, "%s: metadata %s: out of memory", file, key);
    memcpy(tmp, v, count * 4);
    ob_status st = type == OB_META_I32_ARR ? ob_meta_set_i32_arr(m, key, tmp, count)
                                           : ob_meta_set_f32_arr(m, key, tmp, count);
    free(tmp);
    return st;
}

static ob_status read_meta(const uint8_t *f, const ob_h1b_header *h, const char *file, ob_meta *m) {
    cursor c = { f + h->meta_offset, h->meta_size };
    char key[MAX_KEY + 1];
    for (uint64_t e = 0; e < h->meta_count; e++) {
        const uint8_t *p = take(&c, 4);
        if (!p) return ob_fail(OB_ERR_FORMAT, "%s: metadata entry %llu runs past the metadata block", file,
                               (unsigned long long)e);
        uint32_t key_len = ob_rd_u32(p);
        const uint8_t *k = key_len <= MAX_KEY ? take_str(&c, key_len) : NULL;
        if (!k || !clean_text(k, key_len))
            return ob_fail(OB_ERR_FORMAT, "%s: metadata entry %llu has a bad key", file, (unsigned long long)e);
        memcpy(key, k, key_len);
        key[key_len] = 0;
        if (ob_meta_find(m, key)) return ob_fail(OB_ERR_FORMAT, "%s: duplicate metadata key %s", file, key);
        if (!(p = take(&c, 4))) return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: truncated", file, key);
        uint32_t code = ob_rd_u32(p);
        if (code >= OB_ARRAY_LEN(meta_types))
            return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: unknown value type %u", file, key, code);
        ob_status st;
        const uint8_t *v;
        switch (meta_types[code].type) {
        case OB_META_INT:
            if (!(v = take(&c, 8))) goto truncated;
            st = ob_meta_set_int(m, key, (int64_t)ob_rd_u64(v));
            break;
        case OB_META_FLOAT:
            if (!(v = take(&c, 8))) goto truncated;
            st = ob_meta_set_float(m, key, ob_rd_f64(v));
            break;
        case OB_META_BOOL:
            if (!(v = take(&c, 1))) goto truncated;
            if (*v > 1) return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: bool value %u", file, key, *v);
            st = ob_meta_set_bool(m, key, *v);
            break;
        case OB_META_STR: {
            if (!(v = take(&c, 8))) goto truncated;
            uint64_t len = ob_rd_u64(v);
            const uint8_t *s = len < c.left ? take_str(&c, len) : NULL;
            if (!s) return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: string runs past the metadata block", file, key);
            st = ob_meta_set_strn(m, key, (const char *)s, (size_t)len);
            break;
        }
        case OB_META_STR_ARR: st = read_str_arr(&c, m, key, file); break;
        case OB_META_I32_ARR:
        case OB_META_F32_ARR: st = read_arr32(&c, m, key, meta_types[code].type, file); break;
        default: return ob_fail(OB_ERR_INTERNAL, "metadata type table");
        }
        if (st) return st;
        continue;
    truncated:
        return ob_fail(OB_ERR_FORMAT, "%s: metadata %s: value runs past the metadata block", file, key);
    }
    if (c.left)
        return ob_fail(OB_ERR_FORMAT, "%s: %llu stray bytes after the %llu metadata entries", file,
                       (unsigned long long)c.left, (unsigned long long)h->meta_count);
    return OB_OK;
}

typedef struct span {
    uint64_t offset, nbytes;
    uint32_t index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static ob_status read_tensors(const uint8_t *f, const ob_h1b_header *h, const char *file, ob_model_file *mf) {
    span *spans = malloc((h->n_tensors ? h->n_tensors : 1) * sizeof *spans);
    if (!spans) return ob_fail(OB_ERR_NOMEM, "%s: out of memory", file);
    ob_status st = OB_OK;
    for (uint32_t i = 0; i < h->n_tensors && !st; i++) {
        const uint8_t *r = f + h->table_offset + (uint64_t)i * REC_SIZE;
        size_t len = strnlen((const char *)r + RO_NAME, OB_MAX_NAME);
        char name[OB_MAX_NAME];
        if (len == OB_MAX_NAME || !clean_text(r + RO_NAME, len)) {
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %u has a bad name", file, i);
            break;
        }
        for (size_t j = len; j < OB_MAX_NAME; j++)
            if (r[RO_NAME + j]) {
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %u: name padding is not zero", file, i);
                break;
            }
        if (st) break;
        memcpy(name, r + RO_NAME, len + 1);

        uint32_t type = ob_rd_u32(r + RO_TYPE), n_dims = ob_rd_u32(r + RO_N_DIMS);
        const ob_type_info *ti = ob_type_get((ob_type)type);
        if (!ti) st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: unknown tensor type id %u", file, name, type);
        else if (!ti->implemented)
            st = ob_fail(OB_ERR_UNSUPPORTED, "%s: tensor %s: tensor type %s is not supported yet", file, name, ti->name);
        else if (n_dims < 1 || n_dims > OB_MAX_DIMS)
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: %u dimensions (1 to %d)", file, name, n_dims, OB_MAX_DIMS);
        if (st) break;
        int64_t ne[OB_MAX_DIMS];
        for (int d = 0; d < OB_MAX_DIMS && !st; d++) {
            ne[d] = (int64_t)ob_rd_u64(r + RO_NE + 8 * d);
            if ((uint32_t)d < n_dims ? (ne[d] < 1 || ne[d] > MAX_DIM) : ne[d] != 1)
                st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: bad size %lld in dimension %d", file, name,
                             (long long)ne[d], d);
        }
        if (st) break;
        uint64_t offset = ob_rd_u64(r + RO_OFFSET), nbytes = ob_rd_u64(r + RO_NBYTES);
        uint64_t want = ob_tensor_nbytes((ob_type)type, ne);
        if (!want)
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: shape [%lld, %lld, %lld, %lld] is invalid for type %s", file,
                         name, (long long)ne[0], (long long)ne[1], (long long)ne[2], (long long)ne[3], ti->name);
        else if (nbytes != want)
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: %llu bytes, but its shape and type need %llu", file, name,
                         (unsigned long long)nbytes, (unsigned long long)want);
        else if (offset % h->alignment)
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: offset %llu is not %u-byte aligned", file, name,
                         (unsigned long long)offset, h->alignment);
        else if (offset > h->data_size || nbytes > h->data_size - offset)
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: %llu bytes at data offset %llu run past the end of the file",
                         file, name, (unsigned long long)nbytes, (unsigned long long)offset);
        else if (ob_rd_u64(r + RO_RESERVED))
            st = ob_fail(OB_ERR_FORMAT, "%s: tensor %s: reserved bytes are not zero", file, name);
        if (st) break;
        const uint8_t *data = f + h->data_offset + offset;
        if (is_scale_name(name) && (st = check_scale(file, name, (ob_type)type, data, nbytes))) break;
        if ((st = ob_model_file_add_view(mf, name, (ob_type)type, (int)n_dims, ne, data, nbytes))) {
            st = ob_fail_prefix(st, "%s", file);
            break;
        }
        spans[i] = (span){ offset, nbytes, i };
    }
    if (!st && h->n_tensors > 1) {
        qsort(spans, h->n_tensors, sizeof *spans, span_cmp);
        for (uint32_t i = 1; i < h->n_tensors && !st; i++)
            if (spans[i].offset < spans[i - 1].offset + spans[i - 1].nbytes)
                st = ob_fail(OB_ERR_FORMAT, "%s: tensors %s and %s overlap", file, mf->tensors[spans[i - 1].index].name,
                             mf->tensors[spans[i].index].name);
    }
    free(spans);
    return st;
}

/* Parses the image already held in out->map. */
static ob_status parse(ob_model_file *out, const char *file) {
    const uint8_t *f = out->map.data;
    ob_h1b_header h;
    ob_status st = read_header(f, out->map.size, file, &h);
    if (!st) st = read_tensors(f, &h, file, out);
    if (!st) st = read_meta(f, &h, file, &out->meta);
    if (!st && !(out->path = ob_strdup(file))) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    if (st) ob_model_file_close(out);
    return st;
}

ob_status ob_h1b_open(const char *path, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    ob_status st = ob_map_file(path, &out->map);
    return st ? st : parse(out, path);
}

ob_status ob_h1b_open_mem(const void *data, size_t size, const char *name, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    void *copy = NULL;
    if (posix_memalign(&copy, 4096, size ? size : 1))
        return ob_fail(OB_ERR_NOMEM, "%s: out of memory (%zu bytes)", name, size);
    if (size) memcpy(copy, data, size);
    out->map = (ob_mapped_file){ copy, size, 0 }; /* ob_unmap_file frees it */
    return parse(out, name);
}

static bool from_h1b(const ob_model_file *mf) {
    return mf->map.data && mf->map.size >= OB_H1B_HEADER_SIZE && memcmp(mf->map.data, h1b_magic, 8) == 0;
}

ob_status ob_h1b_header_of(const ob_model_file *mf, ob_h1b_header *hdr) {
    const char *file = mf->path ? mf->path : "model";
    if (!from_h1b(mf)) return ob_fail(OB_ERR_ARG, "%s: not read from an .h1b file", file);
    return read_header(mf->map.data, mf->map.size, file, hdr);
}

ob_status ob_h1b_verify(const ob_model_file *mf) {
    ob_h1b_header h;
    ob_status st = ob_h1b_header_of(mf, &h);
    if (st) return st;
    if (data_checksum(mf->map.data + h.data_offset, h.data_size) != h.data_checksum)
        return ob_fail(OB_ERR_FORMAT, "%s: data checksum mismatch (tensor data is damaged)",
                       mf->path ? mf->path : "model");
    return OB_OK;
}

/* ---- writer --------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static ob_status buf_u32(ob_buf *b, uint32_t v) {
    uint8_t p[4];
    put_u32(p, v);
    return ob_buf_append(b, p, 4);
}
static ob_status buf_u64(ob_buf *b, uint64_t v) {
    uint8_t p[8];
    put_u64(p, v);
    return ob_buf_append(b, p, 8);
}
static ob_status buf_str(ob_buf *b, const char *s, uint64_t len, bool len32) {
    ob_status st = len32 ? buf_u32(b, (uint32_t)len) : buf_u64(b, len);
    if (!st && len) st = ob_buf_append(b, s, (size_t)len);
    if (!st) st = ob_buf_append(b, "", 1);
    return st;
}

/* Serialises the metadata block (FORMAT.md, "Metadata"), checking keys. */
static ob_status encode_meta(const ob_meta *m, const char *file, ob_buf *b) {
    if (m->n > MAX_META)
        return ob_fail(OB_ERR_ARG, "%s: %zu metadata entries (at most %d)", file, m->n, MAX_META);
    for (size_t i = 0; i < m->n; i++) {
        const ob_meta_entry *e = &m->e[i];
        size_t key_len = strlen(e->key);
        if (key_len > MAX_KEY || !clean_text((const uint8_t *)e->key, key_len))
            return ob_fail(OB_ERR_ARG, "%s: metadata key \"%.40s\" is empty, too long or has control bytes", file, e->key);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->e[j].key, e->key)) return ob_fail(OB_ERR_ARG, "%s: duplicate metadata key %s", file, e->key);
        uint32_t code = UINT32_MAX;
        for (size_t t = 0; t < OB_ARRAY_LEN(meta_types); t++)
            if (meta_types[t].type == e->type) code = meta_types[t].code;
        if (code == UINT32_MAX) return ob_fail(OB_ERR_ARG, "%s: metadata %s: unknown type %d", file, e->key, (int)e->type);
        ob_status st = buf_str(b, e->key, key_len, true);
        if (!st) st = buf_u32(b, code);
        if (st) return ob_fail(OB_ERR_NOMEM, "%s: out of memory", file);
        switch (e->type) {
        case OB_META_INT: st = buf_u64(b, (uint64_t)e->i); break;
        case OB_META_FLOAT: {
            union { double f; uint64_t u; } v = { .f = e->f };
            st = buf_u64(b, v.u);
            break;
        }
        case OB_META_BOOL: st = ob_buf_append(b, e->i ? "\1" : "\0", 1); break;
        case OB_META_STR: st = buf_str(b, e->str, e->str_len, false); break;
        case OB_META_STR_ARR:
            st = buf_u64(b, e->count);
            for (uint64_t k = 0; k < e->count && !st; k++) st = buf_str(b, e->strs[k], e->str_lens[k], true);
            break;
        case OB_META_I32_ARR:
        case OB_META_F32_ARR: {
            size_t bytes;
            if (!ob_mul_ok((size_t)e->count, 4, &bytes)) return ob_fail(OB_ERR_NOMEM, "%s: metadata %s: too large", file, e->key);
            st = buf_u64(b, e->count);
            if (!st && bytes) st = ob_buf_append(b, e->arr, bytes);
            break;
        }
        }
        if (st) return ob_fail(OB_ERR_NOMEM, "%s: out of memory", file);
    }
    return OB_OK;
}

/* Checks a tensor as the reader will, so that whatever is written opens. */
static ob_status check_tensor(const ob_model_file *mf, size_t i, const char *file) {
    const ob_tensor *t = &mf->tensors[i];
    size_t len = strnlen(t->name, OB_MAX_NAME);
    if (len == OB_MAX_NAME || !clean_text((const uint8_t *)t->name, len))
        return ob_fail(OB_ERR_ARG, "%s: tensor %zu has a bad name", file, i);
    const ob_type_info *ti = ob_type_get(t->type);
    if (!ti || !ti->implemented)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: tensor %s: tensor type %s is not supported yet", file, t->name,
                       ob_type_name(t->type));
    if (t->n_dims < 1 || t->n_dims > OB_MAX_DIMS)
        return ob_fail(OB_ERR_ARG, "%s: tensor %s: %d dimensions", file, t->name, t->n_dims);
    for (int d = 0; d < OB_MAX_DIMS; d++)
        if (d < t->n_dims ? (t->ne[d] < 1 || t->ne[d] > MAX_DIM) : t->ne[d] != 1)
            return ob_fail(OB_ERR_ARG, "%s: tensor %s: bad size %lld in dimension %d", file, t->name,
                           (long long)t->ne[d], d);
    if (!t->data || t->nbytes == 0 || t->nbytes != ob_tensor_nbytes(t->type, t->ne))
        return ob_fail(OB_ERR_ARG, "%s: tensor %s: %llu bytes do not match its shape", file, t->name,
                       (unsigned long long)t->nbytes);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(mf->tensors[j].name, t->name)) return ob_fail(OB_ERR_ARG, "%s: duplicate tensor %s", file, t->name);
    return is_scale_name(t->name) ? check_scale(file, t->name, t->type, t->data, t->nbytes) : OB_OK;
}

/* Streams the data section through a 1 MiB staging buffer, hashing each full
 * chunk (exactly the chunks data_checksum is defined over). */
typedef struct data_writer {
    FILE *fp;
    uint8_t *stage;
    size_t fill;
    uint64_t done, total, checksum;
    const ob_h1b_write_opts *opts;
} data_writer;

static bool flush_stage(data_writer *w) {
    if (!w->fill) return true;
    w->checksum = ob_hash64(w->stage, w->fill, w->checksum);
    if (fwrite(w->stage, 1, w->fill, w->fp) != w->fill) return false;
    w->done += w->fill;
    w->fill = 0;
    if (w->opts && w->opts->progress) w->opts->progress(w->opts->progress_ud, w->done, w->total);
    return true;
}

/* src NULL: n zero bytes. */
static bool put_data(data_writer *w, const void *src, uint64_t n) {
    const uint8_t *p = src;
    while (n) {
        size_t k = (size_t)OB_MIN((uint64_t)(DATA_CHUNK - w->fill), n);
        if (p) {
            memcpy(w->stage + w->fill, p, k);
            p += k;
        } else {
            memset(w->stage + w->fill, 0, k);
        }
        w->fill += k;
        n -= k;
        if (w->fill == DATA_CHUNK && !flush_stage(w)) return false;
    }
    return true;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

ob_status ob_h1b_write_ex(const ob_model_file *mf, const char *path, const ob_h1b_write_opts *opts) {
    uint32_t align = opts && opts->alignment ? opts->alignment : OB_H1B_DEFAULT_ALIGN;
    if (align < OB_ALIGN || align > OB_H1B_MAX_ALIGN || (align & (align - 1)))
        return ob_fail(OB_ERR_ARG, "%s: alignment %u is not a power of two in [%d, %u]", path, align, OB_ALIGN,
                       OB_H1B_MAX_ALIGN);
    if (mf->n_tensors > MAX_TENSORS)
        return ob_fail(OB_ERR_ARG, "%s: %zu tensors (at most %d)", path, mf->n_tensors, MAX_TENSORS);
    for (size_t i = 0; i < mf->n_tensors; i++) {
        ob_status st = check_tensor(mf, i, path);
        if (st) return st;
    }
    ob_buf meta = { 0 };
    ob_status st = encode_meta(&mf->meta, path, &meta);
    if (st) {
        ob_buf_free(&meta);
        return st;
    }

    /* Layout: header | table | metadata | pad | data (tensors in table order). */
    uint64_t table_offset = OB_H1B_HEADER_SIZE, table_size = (uint64_t)mf->n_tensors * REC_SIZE;
    uint64_t meta_offset = table_offset + table_size;
    uint64_t data_offset = align_up(meta_offset + meta.len, align);
    uint64_t data_size = 0;
    uint8_t *head = calloc(1, (size_t)data_offset);
    char *tmp = malloc(strlen(path) + 5);
    data_writer w = { .opts = opts, .stage = malloc(DATA_CHUNK) };
    if (!head || !tmp || !w.stage) {
        st = ob_fail(OB_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    sprintf(tmp, "%s.tmp", path);
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const ob_tensor *t = &mf->tensors[i];
        uint8_t *r = head + table_offset + i * REC_SIZE;
        uint64_t offset = align_up(data_size, align);
        memcpy(r + RO_NAME, t->name, strlen(t->name)); /* the rest stays zero */
        put_u32(r + RO_TYPE, (uint32_t)t->type);
        put_u32(r + RO_N_DIMS, (uint32_t)t->n_dims);
        for (int d = 0; d < OB_MAX_DIMS; d++) put_u64(r + RO_NE + 8 * d, (uint64_t)t->ne[d]);
        put_u64(r + RO_OFFSET, offset);
        put_u64(r + RO_NBYTES, t->nbytes);
        data_size = offset + t->nbytes;
    }
    if (meta.len) memcpy(head + meta_offset, meta.data, meta.len);
    memcpy(head + HO_MAGIC, h1b_magic, 8);
    put_u32(head + HO_VERSION, OB_H1B_VERSION);
    put_u32(head + HO_HEADER_SIZE, OB_H1B_HEADER_SIZE);
    put_u64(head + HO_FILE_SIZE, data_offset + data_size);
    put_u32(head + HO_ALIGN, align);
    put_u32(head + HO_N_TENSORS, (uint32_t)mf->n_tensors);
    put_u64(head + HO_TABLE_OFFSET, table_offset);
    put_u64(head + HO_TABLE_SIZE, table_size);
    put_u64(head + HO_META_OFFSET, meta_offset);
    put_u64(head + HO_META_SIZE, meta.len);
    put_u64(head + HO_META_COUNT, mf->meta.n);
    put_u64(head + HO_DATA_OFFSET, data_offset);
    put_u64(head + HO_DATA_SIZE, data_size);

    /* The head goes out first with zero checksums, the data streams after it,
     * and the header is rewritten once the data checksum is known. */
    if (!(w.fp = fopen(tmp, "wb"))) {
        st = ob_fail(OB_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    w.total = data_size;
    bool ok = fwrite(head, 1, (size_t)data_offset, w.fp) == data_offset;
    for (size_t i = 0; ok && i < mf->n_tensors; i++) {
        const ob_tensor *t = &mf->tensors[i];
        uint64_t offset = ob_rd_u64(head + table_offset + i * REC_SIZE + RO_OFFSET);
        ok = put_data(&w, NULL, offset - (w.done + w.fill)) && put_data(&w, t->data, t->nbytes);
    }
    ok = ok && flush_stage(&w);
    if (ok) {
        put_u64(head + HO_DATA_CHECKSUM, w.checksum);
        put_u64(head + HO_HEAD_CHECKSUM, head_checksum(head, data_offset));
        ok = fseek(w.fp, 0, SEEK_SET) == 0 && fwrite(head, 1, OB_H1B_HEADER_SIZE, w.fp) == OB_H1B_HEADER_SIZE &&
             fflush(w.fp) == 0 && fsync(fileno(w.fp)) == 0;
    }
    int err = ok ? 0 : errno;
    if (fclose(w.fp) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        st = ob_fail(OB_ERR_IO, "%s: write failed: %s", tmp, strerror(err ? err : EIO));
    } else if (rename(tmp, path) != 0) {
        st = ob_fail(OB_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    }
    if (st) unlink(tmp);
done:
    free(head);
    free(tmp);
    free(w.stage);
    ob_buf_free(&meta);
    return st;
}

ob_status ob_h1b_write(const ob_model_file *mf, const char *path) { return ob_h1b_write_ex(mf, path, NULL); }
