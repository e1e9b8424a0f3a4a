/* safetensors reader: the JSON header is checked in full before use. */
#include "format/safetensors.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    uint8_t size;
} st_dtypes[OB_ST_N_DTYPES] = {
    [OB_ST_BOOL] = { "BOOL", 1 }, [OB_ST_U8] = { "U8", 1 },    [OB_ST_I8] = { "I8", 1 },
    [OB_ST_I16] = { "I16", 2 },   [OB_ST_U16] = { "U16", 2 },  [OB_ST_F16] = { "F16", 2 },
    [OB_ST_BF16] = { "BF16", 2 }, [OB_ST_I32] = { "I32", 4 },  [OB_ST_U32] = { "U32", 4 },
    [OB_ST_F32] = { "F32", 4 },   [OB_ST_F64] = { "F64", 8 },  [OB_ST_I64] = { "I64", 8 },
    [OB_ST_U64] = { "U64", 8 },   [OB_ST_F8_E4M3] = { "F8_E4M3", 1 }, [OB_ST_F8_E5M2] = { "F8_E5M2", 1 },
};

#define MAX_HEADER ((uint64_t)100 << 20) /* the real ones are well under 1 MB */
#define MAX_DIM ((int64_t)1 << 40)
#define MAX_NUMEL ((uint64_t)1 << 48)

const char *ob_st_dtype_name(ob_st_dtype t) { return (unsigned)t < OB_ST_N_DTYPES ? st_dtypes[t].name : "?"; }

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const ob_st_tensor *)a)->name, ((const ob_st_tensor *)b)->name);
}
static int cmp_data(const void *pa, const void *pb) {
    const ob_st_tensor *a = pa, *b = pb;
    return (a->data > b->data) - (a->data < b->data);
}

/* Reads one "NAME": {dtype, shape, data_offsets} member. */
static ob_status parse_entry(const ob_json *m, const uint8_t *data, uint64_t data_size, const char *file,
                             ob_st_tensor *t) {
    const char *name = m->key;
    if (m->key_len != strlen(m->key) || m->key_len == 0)
        return ob_fail(OB_ERR_FORMAT, "%s: a tensor name is empty or holds a NUL byte", file);
    if (m->type != OB_JSON_OBJECT) return ob_fail(OB_ERR_FORMAT, "%s: %s: entry is not an object", file, name);
    t->name = name;
    const char *dtype = ob_json_get_str(m, "dtype");
    if (!dtype) return ob_fail(OB_ERR_FORMAT, "%s: %s: dtype is missing", file, name);
    int d = 0;
    while (d < OB_ST_N_DTYPES && strcmp(st_dtypes[d].name, dtype) != 0) d++;
    if (d == OB_ST_N_DTYPES) return ob_fail(OB_ERR_UNSUPPORTED, "%s: %s: unknown dtype %.20s", file, name, dtype);
    t->dtype = (ob_st_dtype)d;

    const ob_json *shape = ob_json_get(m, "shape");
    if (!shape || shape->type != OB_JSON_ARRAY) return ob_fail(OB_ERR_FORMAT, "%s: %s: shape is missing", file, name);
    if (shape->count > OB_ST_MAX_DIMS)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: %s: %zu dimensions (at most %d)", file, name, shape->count, OB_ST_MAX_DIMS);
    t->n_dims = (int)shape->count;
    t->numel = 1;
    int i = 0;
    for (const ob_json *v = shape->child; v; v = v->next, i++) {
        if (!ob_json_is_int(v) || v->number < 0 || v->number > (double)MAX_DIM)
            return ob_fail(OB_ERR_FORMAT, "%s: %s: invalid dimension in shape", file, name);
        t->shape[i] = (int64_t)v->number;
        if (t->shape[i] && t->numel > MAX_NUMEL / (uint64_t)t->shape[i])
            return ob_fail(OB_ERR_FORMAT, "%s: %s: shape is too large", file, name);
        t->numel *= (uint64_t)t->shape[i];
    }

    const ob_json *off = ob_json_get(m, "data_offsets");
    const ob_json *b = off && off->type == OB_JSON_ARRAY && off->count == 2 ? off->child : NULL;
    if (!b || !ob_json_is_int(b) || !ob_json_is_int(b->next) || b->number < 0 || b->next->number < b->number ||
        b->next->number > (double)data_size)
        return ob_fail(OB_ERR_FORMAT, "%s: %s: data_offsets are missing or outside the %llu data bytes", file, name,
                       (unsigned long long)data_size);
    uint64_t begin = (uint64_t)b->number, end = (uint64_t)b->next->number;
    t->nbytes = t->numel * st_dtypes[d].size;
    if (end - begin != t->nbytes)
        return ob_fail(OB_ERR_FORMAT, "%s: %s: %llu data bytes for %llu elements of %s", file, name,
                       (unsigned long long)(end - begin), (unsigned long long)t->numel, dtype);
    t->data = data + begin;
    return OB_OK;
}

ob_status ob_safetensors_parse(const uint8_t *data, size_t size, const char *name, ob_safetensors *st) {
    memset(st, 0, sizeof *st);
    const char *file = name ? name : "safetensors";
    if (size < 8) return ob_fail(OB_ERR_FORMAT, "%s: too short for a safetensors file", file);
    uint64_t n = ob_rd_u64(data);
    if (n > size - 8 || n > MAX_HEADER)
        return ob_fail(OB_ERR_FORMAT, "%s: header length %llu does not fit the %zu-byte file", file,
                       (unsigned long long)n, size);
    ob_status s = ob_json_parse((const char *)data + 8, (size_t)n, &st->header);
    if (s) return ob_fail_prefix(s, "%s: safetensors header: ", file);
    const ob_json *root = st->header.root;
    if (root->type != OB_JSON_OBJECT) {
        s = ob_fail(OB_ERR_FORMAT, "%s: safetensors header is not a JSON object", file);
        goto fail;
    }
    const uint8_t *payload = data + 8 + n;
    uint64_t payload_size = size - 8 - n;
    st->tensors = calloc(root->count + 1, sizeof *st->tensors);
    if (!st->tensors) {
        s = ob_fail(OB_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (const ob_json *m = root->child; m; m = m->next) {
        if (strcmp(m->key, "__metadata__") == 0) continue;
        if ((s = parse_entry(m, payload, payload_size, file, &st->tensors[st->n_tensors]))) goto fail;
        st->n_tensors++;
    }
    /* No two tensors may share bytes (empty ones take none). */
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_data);
    const ob_st_tensor *prev = NULL;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const ob_st_tensor *t = &st->tensors[i];
        if (!t->nbytes) continue;
        if (prev && prev->data + prev->nbytes > t->data) {
            s = ob_fail(OB_ERR_FORMAT, "%s: tensors %s and %s overlap", file, prev->name, t->name);
            goto fail;
        }
        prev = t;
    }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            s = ob_fail(OB_ERR_FORMAT, "%s: duplicate tensor %s", file, st->tensors[i].name);
            goto fail;
        }
    return OB_OK;
fail:
    ob_safetensors_close(st);
    return s;
}

ob_status ob_safetensors_open(const char *path, ob_safetensors *st) {
    ob_mapped_file map;
    memset(st, 0, sizeof *st);
    ob_status s = ob_map_file(path, &map);
    if (s) return s;
    if ((s = ob_safetensors_parse(map.data, map.size, path, st))) {
        ob_unmap_file(&map);
        return s;
    }
    st->map = map;
    return OB_OK;
}

void ob_safetensors_close(ob_safetensors *st) {
    free(st->tensors);
    ob_json_free(&st->header);
    ob_unmap_file(&st->map);
    memset(st, 0, sizeof *st);
}

const ob_st_tensor *ob_safetensors_find(const ob_safetensors *st, const char *name) {
    ob_st_tensor key = { .name = name };
    return st->n_tensors ? bsearch(&key, st->tensors, st->n_tensors, sizeof key, cmp_name) : NULL;
}
