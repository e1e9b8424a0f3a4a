/* The backend interface: a small vtable that runs a batch of tokens through
 * the model and returns logits. The CPU backend (backend/cpu) is the
 * specification; the CUDA backend (backend/cuda) must match it within the
 * parity criterion.
 *
 * Sequences: a backend owns n_seq KV-cache slots of n_ctx positions each. A
 * batch mixes tokens of several sequences (continuous batching); each token
 * carries its sequence and position. Tokens of one sequence in a batch must
 * have consecutive positions, and every position before them must already be
 * in that sequence's cache. */
#ifndef OB_BACKEND_H
#define OB_BACKEND_H

#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_batch {
    int n;                 /* tokens in the batch */
    const int32_t *token;  /* [n] */
    const int32_t *pos;    /* [n] position within its sequence */
    const int32_t *seq;    /* [n] sequence slot, NULL = all 0 */
    const uint8_t *logits; /* [n] nonzero: return logits for this token; NULL = last token only */
} ob_batch;

typedef enum ob_kv_type { OB_KV_F32, OB_KV_F16 } ob_kv_type;

typedef struct ob_backend_params {
    int n_threads;        /* CPU threads (0: all) */
    int n_ctx;            /* positions per sequence (0: the model's trained context) */
    int n_seq;            /* sequence slots (0: 1) */
    ob_kv_type kv_type;
    const char *kernels;  /* CPU kernel set: NULL/"auto" or "scalar" (the reference) */
    int device;           /* GPU index */
} ob_backend_params;

typedef struct ob_backend ob_backend;

typedef struct ob_backend_ops {
    const char *name;
    ob_status (*create)(const ob_model *m, const ob_backend_params *p, ob_backend **out);
    void (*destroy)(ob_backend *b);
    /* Drops positions >= pos of sequence seq (pos 0 clears it). */
    ob_status (*seq_truncate)(ob_backend *b, int seq, int pos);
    /* Copies positions [0, n) of src into dst (prompt-prefix reuse). */
    ob_status (*seq_copy)(ob_backend *b, int src, int dst, int n);
    /* Runs the batch; logits receives one row of n_vocab floats per token that
     * asked for logits, in batch order. */
    ob_status (*decode)(ob_backend *b, const ob_batch *batch, float *logits);
    /* Optional (may be NULL): greedy decode of one token per listed sequence
     * returning only argmax ids (the GPU keeps logits on the device). */
    ob_status (*decode_argmax)(ob_backend *b, const ob_batch *batch, int32_t *ids);
} ob_backend_ops;

/* Common header of every backend object. */
struct ob_backend {
    const ob_backend_ops *ops;
    const ob_model *model;
    int n_ctx, n_seq;
};

/* Finds a backend by name ("cpu", "cuda"); NULL when not compiled in. */
const ob_backend_ops *ob_backend_find(const char *name);
ob_status ob_backend_create(const char *name, const ob_model *m, const ob_backend_params *p, ob_backend **out);
void ob_backend_destroy(ob_backend *b);

/* Checks a batch against a backend's caches (sequence in range, token in the
 * vocabulary, position inside the context and contiguous with what the
 * sequence holds) and, only if all of it is valid, advances seq_len[] to the
 * new lengths. Every backend calls it before touching its caches. */
ob_status ob_batch_advance(const ob_backend *b, int *seq_len, const ob_batch *batch);

extern const ob_backend_ops ob_backend_cpu;
#ifdef OB_HAVE_CUDA
extern const ob_backend_ops ob_backend_cuda;
#endif

#ifdef __cplusplus
}
#endif
#endif
