/* Typed key/value metadata. */
#include "format/meta.h"

#include <stdlib.h>
#include <string.h>

static void entry_free(ob_meta_entry *e) {
    free(e->key);
    free(e->str);
    if (e->strs)
        for (uint64_t i = 0; i < e->count; i++) free(e->strs[i]);
    free(e->strs);
    free(e->str_lens);
    free(e->arr);
    memset(e, 0, sizeof *e);
}

void ob_meta_free(ob_meta *m) {
    for (size_t i = 0; i < m->n; i++) entry_free(&m->e[i]);
    free(m->e);
    memset(m, 0, sizeof *m);
}

const ob_meta_entry *ob_meta_find(const ob_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].key, key) == 0) return &m->e[i];
    return NULL;
}

bool ob_meta_remove(ob_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->e[i].key, key) != 0) continue;
        entry_free(&m->e[i]);
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
        m->n--;
        return true;
    }
    return false;
}

/* Returns a cleared entry for key (replacing an old value), or NULL on OOM. */
static ob_meta_entry *slot(ob_meta *m, const char *key, ob_meta_type type) {
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->e[i].key, key) == 0) {
            char *k = m->e[i].key;
            m->e[i].key = NULL;
            entry_free(&m->e[i]);
            m->e[i].key = k;
            m->e[i].type = type;
            m->e[i].count = 1;
            return &m->e[i];
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        ob_meta_entry *e = realloc(m->e, cap * sizeof *e);
        if (!e) return NULL;
        m->e = e;
        m->cap = cap;
    }
    ob_meta_entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = ob_strdup(key))) return NULL;
    e->type = type;
    e->count = 1;
    m->n++;
    return e;
}

#define OOM ob_fail(OB_ERR_NOMEM, "out of memory (metadata %s)", key)

ob_status ob_meta_set_int(ob_meta *m, const char *key, int64_t v) {
    ob_meta_entry *e = slot(m, key, OB_META_INT);
    if (!e) return OOM;
    e->i = v;
    return OB_OK;
}

ob_status ob_meta_set_float(ob_meta *m, const char *key, double v) {
    ob_meta_entry *e = slot(m, key, OB_META_FLOAT);
    if (!e) return OOM;
    e->f = v;
    return OB_OK;
}

ob_status ob_meta_set_bool(ob_meta *m, const char *key, bool v) {
    ob_meta_entry *e = slot(m, key, OB_META_BOOL);
    if (!e) return OOM;
    e->i = v;
    return OB_OK;
}

ob_status ob_meta_set_strn(ob_meta *m, const char *key, const char *s, size_t n) {
    ob_meta_entry *e = slot(m, key, OB_META_STR);
    if (!e || !(e->str = ob_strndup(s, n))) return OOM;
    e->str_len = n;
    return OB_OK;
}

ob_status ob_meta_set_str(ob_meta *m, const char *key, const char *s) {
    return ob_meta_set_strn(m, key, s, strlen(s));
}

ob_status ob_meta_set_str_arr(ob_meta *m, const char *key, const char *const *strs,
                              const uint32_t *lens, uint64_t count) {
    if (count > ((uint64_t)1 << 32)) return ob_fail(OB_ERR_NOMEM, "metadata %s: too many strings", key);
    char **copy = calloc(count ? count : 1, sizeof *copy);
    uint32_t *l = calloc(count ? count : 1, sizeof *l);
    if (!copy || !l) {
        free(copy);
        free(l);
        return OOM;
    }
    for (uint64_t i = 0; i < count; i++) {
        size_t n = lens ? lens[i] : strlen(strs[i]);
        l[i] = (uint32_t)n;
        if (!(copy[i] = ob_strndup(strs[i], n))) {
            for (uint64_t j = 0; j < i; j++) free(copy[j]);
            free(copy);
            free(l);
            return OOM;
        }
    }
    return ob_meta_take_str_arr(m, key, copy, l, count);
}

ob_status ob_meta_take_str_arr(ob_meta *m, const char *key, char **strs, uint32_t *lens, uint64_t count) {
    ob_meta_entry *e = slot(m, key, OB_META_STR_ARR);
    if (!e) {
        for (uint64_t i = 0; i < count; i++) free(strs[i]);
        free(strs);
        free(lens);
        return OOM;
    }
    e->strs = strs;
    e->str_lens = lens;
    e->count = count;
    return OB_OK;
}

static ob_status set_arr(ob_meta *m, const char *key, ob_meta_type t, const void *v, uint64_t count) {
    size_t bytes;
    if (!ob_mul_ok((size_t)count, 4, &bytes)) return OOM;
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return OOM;
    if (bytes) memcpy(copy, v, bytes);
    ob_meta_entry *e = slot(m, key, t);
    if (!e) {
        free(copy);
        return OOM;
    }
    e->arr = copy;
    e->count = count;
    return OB_OK;
}

ob_status ob_meta_set_i32_arr(ob_meta *m, const char *key, const int32_t *v, uint64_t count) {
    return set_arr(m, key, OB_META_I32_ARR, v, count);
}

ob_status ob_meta_set_f32_arr(ob_meta *m, const char *key, const float *v, uint64_t count) {
    return set_arr(m, key, OB_META_F32_ARR, v, count);
}

int64_t ob_meta_int(const ob_meta *m, const char *key, int64_t def) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    if (!e) return def;
    if (e->type == OB_META_INT || e->type == OB_META_BOOL) return e->i;
    if (e->type == OB_META_FLOAT) return (int64_t)e->f;
    return def;
}

double ob_meta_float(const ob_meta *m, const char *key, double def) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    if (!e) return def;
    if (e->type == OB_META_FLOAT) return e->f;
    if (e->type == OB_META_INT) return (double)e->i;
    return def;
}

bool ob_meta_bool(const ob_meta *m, const char *key, bool def) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    if (!e || (e->type != OB_META_BOOL && e->type != OB_META_INT)) return def;
    return e->i != 0;
}

const char *ob_meta_str(const ob_meta *m, const char *key, const char *def) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    return e && e->type == OB_META_STR ? e->str : def;
}
