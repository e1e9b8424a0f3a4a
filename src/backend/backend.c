/* The table of compiled backends, and what every backend shares. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

static const ob_backend_ops *const backends[] = {
    &ob_backend_cpu,
#ifdef OB_HAVE_CUDA
    &ob_backend_cuda,
#endif
};

const ob_backend_ops *ob_backend_find(const char *name) {
    for (size_t i = 0; i < OB_ARRAY_LEN(backends); i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

ob_status ob_backend_create(const char *name, const ob_model *m, const ob_backend_params *p, ob_backend **out) {
    *out = NULL;
    const ob_backend_ops *ops = ob_backend_find(name ? name : "cpu");
    if (!ops)
        return ob_fail(OB_ERR_UNSUPPORTED, "backend '%s' is not available in this build%s", name,
                       !strcmp(name, "cuda") ? " (built without nvcc)" : "");
    return ops->create(m, p, out);
}

void ob_backend_destroy(ob_backend *b) {
    if (b) b->ops->destroy(b);
}

ob_status ob_batch_advance(const ob_backend *b, int *seq_len, const ob_batch *batch) {
    const ob_hparams *hp = &b->model->hp;
    if (batch->n <= 0) return ob_fail(OB_ERR_ARG, "empty batch");
    int *next = malloc((size_t)b->n_seq * sizeof *next); /* next position per sequence, -1: not in batch */
    if (!next) return ob_fail(OB_ERR_NOMEM, "out of memory");
    for (int s = 0; s < b->n_seq; s++) next[s] = -1;
    ob_status st = OB_OK;
    for (int t = 0; t < batch->n && !st; t++) {
        int s = batch->seq ? batch->seq[t] : 0, p = batch->pos[t];
        if (s < 0 || s >= b->n_seq) st = ob_fail(OB_ERR_ARG, "sequence %d out of range (%d slots)", s, b->n_seq);
        else if (batch->token[t] < 0 || batch->token[t] >= hp->n_vocab)
            st = ob_fail(OB_ERR_RANGE, "token id %d out of range (vocabulary %d)", batch->token[t], hp->n_vocab);
        else if (p >= b->n_ctx)
            st = ob_fail(OB_ERR_RANGE, "context is full (%d positions)", b->n_ctx);
        else if (p < 0 || (next[s] < 0 ? p > seq_len[s] : p != next[s]))
            st = ob_fail(OB_ERR_ARG, "position %d of sequence %d is not contiguous with its cache", p, s);
        else
            next[s] = p + 1;
    }
    if (!st)
        for (int s = 0; s < b->n_seq; s++)
            if (next[s] >= 0) seq_len[s] = next[s];
    free(next);
    return st;
}
