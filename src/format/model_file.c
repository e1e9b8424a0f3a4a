/* The model-file container and the open dispatcher. */
#include "format/model_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ob_tensor_nbytes(ob_type type, const int64_t ne[OB_MAX_DIMS]) {
    size_t row = ob_type_row_bytes(type, ne[0]);
    if (!row) return 0;
    uint64_t rows = 1;
    for (int d = 1; d < OB_MAX_DIMS; d++) {
        if (ne[d] <= 0 || ne[d] > ((int64_t)1 << 40)) return 0;
        if (rows > (UINT64_MAX / 2) / (uint64_t)ne[d]) return 0;
        rows *= (uint64_t)ne[d];
    }
    if (rows > (UINT64_MAX / 2) / row) return 0;
    return rows * row;
}

void ob_model_file_close(ob_model_file *mf) {
    ob_meta_free(&mf->meta);
    free(mf->tensors);
    for (size_t i = 0; i < mf->n_owned; i++) ob_aligned_free(mf->owned[i]);
    free(mf->owned);
    ob_unmap_file(&mf->map);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

const ob_tensor *ob_model_file_find(const ob_model_file *mf, const char *name) {
    for (size_t i = 0; i < mf->n_tensors; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) return &mf->tensors[i];
    return NULL;
}

static ob_status check_shape(const char *name, ob_type type, int n_dims, const int64_t *ne,
                             int64_t full[OB_MAX_DIMS], uint64_t *nbytes) {
    if (strlen(name) >= OB_MAX_NAME) return ob_fail(OB_ERR_FORMAT, "tensor name too long: %.40s...", name);
    const ob_type_info *ti = ob_type_get(type);
    if (!ti) return ob_fail(OB_ERR_FORMAT, "%s: unknown tensor type %d", name, (int)type);
    if (!ti->implemented) return ob_fail(OB_ERR_UNSUPPORTED, "%s: tensor type %s is not supported yet", name, ti->name);
    if (n_dims < 1 || n_dims > OB_MAX_DIMS) return ob_fail(OB_ERR_FORMAT, "%s: %d dimensions", name, n_dims);
    for (int d = 0; d < OB_MAX_DIMS; d++) {
        full[d] = d < n_dims ? ne[d] : 1;
        if (full[d] <= 0 || full[d] > ((int64_t)1 << 40))
            return ob_fail(OB_ERR_FORMAT, "%s: bad dimension %lld", name, (long long)full[d]);
    }
    *nbytes = ob_tensor_nbytes(type, full);
    if (!*nbytes)
        return ob_fail(OB_ERR_FORMAT, "%s: shape [%lld x %lld] is invalid for type %s", name,
                       (long long)full[0], (long long)full[1], ti->name);
    return OB_OK;
}

static ob_status push_tensor(ob_model_file *mf, const char *name, ob_type type, int n_dims,
                             const int64_t full[OB_MAX_DIMS], const void *data, uint64_t nbytes) {
    if (ob_model_file_find(mf, name)) return ob_fail(OB_ERR_FORMAT, "duplicate tensor %s", name);
    if (mf->n_tensors == mf->cap_tensors) {
        size_t cap = mf->cap_tensors ? mf->cap_tensors * 2 : 64;
        ob_tensor *t = realloc(mf->tensors, cap * sizeof *t);
        if (!t) return ob_fail(OB_ERR_NOMEM, "out of memory");
        mf->tensors = t;
        mf->cap_tensors = cap;
    }
    ob_tensor *t = &mf->tensors[mf->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, full, sizeof t->ne);
    t->data = data;
    t->nbytes = nbytes;
    return OB_OK;
}

ob_status ob_model_file_new_tensor(ob_model_file *mf, const char *name, ob_type type, int n_dims,
                                   const int64_t *ne, void **data) {
    int64_t full[OB_MAX_DIMS];
    uint64_t nbytes;
    ob_status st = check_shape(name, type, n_dims, ne, full, &nbytes);
    if (st) return st;
    if (nbytes > SIZE_MAX / 2) return ob_fail(OB_ERR_NOMEM, "%s: too large", name);
    if (mf->n_owned == mf->cap_owned) {
        size_t cap = mf->cap_owned ? mf->cap_owned * 2 : 64;
        void **o = realloc(mf->owned, cap * sizeof *o);
        if (!o) return ob_fail(OB_ERR_NOMEM, "out of memory");
        mf->owned = o;
        mf->cap_owned = cap;
    }
    void *buf = ob_aligned_alloc((size_t)nbytes);
    if (!buf) return ob_fail(OB_ERR_NOMEM, "%s: cannot allocate %llu bytes", name, (unsigned long long)nbytes);
    memset(buf, 0, (size_t)nbytes);
    st = push_tensor(mf, name, type, n_dims, full, buf, nbytes);
    if (st) {
        ob_aligned_free(buf);
        return st;
    }
    mf->owned[mf->n_owned++] = buf;
    *data = buf;
    return OB_OK;
}

ob_status ob_model_file_add_view(ob_model_file *mf, const char *name, ob_type type, int n_dims,
                                 const int64_t *ne, const void *data, uint64_t nbytes) {
    int64_t full[OB_MAX_DIMS];
    uint64_t want;
    ob_status st = check_shape(name, type, n_dims, ne, full, &want);
    if (st) return st;
    if (want != nbytes)
        return ob_fail(OB_ERR_FORMAT, "%s: %llu bytes, expected %llu for its shape", name,
                       (unsigned long long)nbytes, (unsigned long long)want);
    return push_tensor(mf, name, type, n_dims, full, data, nbytes);
}

int ob_tensor_t2_get(const ob_tensor *t, int64_t row, int64_t col) {
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, t->ne[0]);
    return ob_t2_get((const uint8_t *)t->data + (size_t)row * rb, col);
}

ob_status ob_tensor_row_f32(const ob_tensor *t, int64_t row, float *out) {
    int64_t n = t->ne[0];
    if (row < 0 || row >= ob_tensor_rows(t)) return ob_fail(OB_ERR_RANGE, "%s: row %lld out of range", t->name, (long long)row);
    size_t rb = ob_type_row_bytes(t->type, n);
    const uint8_t *p = (const uint8_t *)t->data + (size_t)row * rb;
    switch (t->type) {
    case OB_TYPE_F32: memcpy(out, p, (size_t)n * 4); break;
    case OB_TYPE_F16: for (int64_t i = 0; i < n; i++) out[i] = ob_f16_to_f32(ob_rd_u16(p + 2 * i)); break;
    case OB_TYPE_BF16: for (int64_t i = 0; i < n; i++) out[i] = ob_bf16_to_f32(ob_rd_u16(p + 2 * i)); break;
    case OB_TYPE_I8: for (int64_t i = 0; i < n; i++) out[i] = (float)(int8_t)p[i]; break;
    case OB_TYPE_Q8_0:
        for (int64_t b = 0; b < n / OB_Q8_0_BLOCK; b++) {
            const uint8_t *blk = p + b * 34;
            float d = ob_f16_to_f32(ob_rd_u16(blk));
            for (int j = 0; j < OB_Q8_0_BLOCK; j++) out[b * OB_Q8_0_BLOCK + j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    case OB_TYPE_T2: for (int64_t i = 0; i < n; i++) out[i] = (float)ob_t2_get(p, i); break;
    default: return ob_fail(OB_ERR_UNSUPPORTED, "%s: cannot read type %s as float", t->name, ob_type_name(t->type));
    }
    return OB_OK;
}

ob_status ob_model_file_open(const char *path, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    ob_status st;
    if (ob_is_dir(path)) st = ob_hf_import(path, out);
    else if (ob_str_ends_with(path, ".gguf")) st = ob_gguf_import(path, out);
    else if (ob_str_ends_with(path, ".h1b")) st = ob_h1b_open(path, out);
    else if (!ob_file_exists(path)) return ob_fail(OB_ERR_IO, "%s: no such file or directory", path);
    else {
        /* Decide by magic for files with other names. */
        ob_mapped_file f;
        st = ob_map_file(path, &f);
        if (st) return st;
        bool gguf = f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0;
        bool h1b = f.size >= 8 && memcmp(f.data, "1bitH1B", 7) == 0;
        ob_unmap_file(&f);
        if (gguf) st = ob_gguf_import(path, out);
        else if (h1b) st = ob_h1b_open(path, out);
        else return ob_fail(OB_ERR_FORMAT, "%s: not a .h1b, .gguf or Hugging Face model directory", path);
    }
    if (st) {
        ob_model_file_close(out);
        return st;
    }
    if (!out->path && !(out->path = ob_strdup(path))) {
        ob_model_file_close(out);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    return OB_OK;
}
