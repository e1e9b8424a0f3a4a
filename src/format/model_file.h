/* ob_model_file: a model as metadata plus named tensors in 1bit's own types.
 *
 * This is the meeting point of the format layer. Every source is read into one:
 *   .h1b           ob_h1b_open     tensors point into the mmap (no copy)
 *   .gguf          ob_gguf_import  tensors converted into heap buffers
 *   HF directory   ob_hf_import    tensors converted into heap buffers
 * ob_model_file_open picks by path. ob_h1b_write writes any of them out.
 *
 * Canonical tensor names (GGUF style), ne = {in, out} for linears:
 *   token_embd.weight            [n_embd, n_vocab]  f32|f16|bf16|q8_0|i8(+.scale)
 *   output.weight                [n_embd, n_vocab]  absent when tied
 *   output_norm.weight           [n_embd]           f32
 *   blk.N.attn_norm.weight       [n_embd]           f32
 *   blk.N.attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down.weight
 *                                t2 (+ "blk.N.X.scale" f32 [1] or [rows]) or f32|f16|bf16|q8_0
 *   blk.N.attn_sub_norm.weight   [n_embd]  (bitnet)
 *   blk.N.ffn_norm.weight        [n_embd]
 *   blk.N.ffn_sub_norm.weight    [n_ff]    (bitnet)
 * Norm weights are always converted to f32 by importers. */
#ifndef OB_MODEL_FILE_H
#define OB_MODEL_FILE_H

#include "format/meta.h"
#include "format/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_MAX_DIMS 4
#define OB_MAX_NAME 128

typedef struct ob_tensor {
    char name[OB_MAX_NAME];
    ob_type type;
    int n_dims;
    int64_t ne[OB_MAX_DIMS]; /* unused dims are 1 */
    const void *data;        /* aligned to OB_ALIGN; owned by the model file */
    uint64_t nbytes;         /* = ob_tensor_nbytes(type, ne) */
} ob_tensor;

typedef struct ob_model_file {
    ob_meta meta;
    ob_tensor *tensors;
    size_t n_tensors, cap_tensors;
    ob_mapped_file map;  /* backing mmap for .h1b */
    void **owned;        /* heap buffers freed on close */
    size_t n_owned, cap_owned;
    char *path;          /* what was opened */
} ob_model_file;

/* Rows x row_bytes for a type and shape; 0 when the shape is invalid for it. */
uint64_t ob_tensor_nbytes(ob_type type, const int64_t ne[OB_MAX_DIMS]);
static inline int64_t ob_tensor_rows(const ob_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

/* Opens .h1b, .gguf or an HF directory. Progress goes to stderr when it is a
 * terminal and the conversion is long. */
ob_status ob_model_file_open(const char *path, ob_model_file *out);
void ob_model_file_close(ob_model_file *mf);
const ob_tensor *ob_model_file_find(const ob_model_file *mf, const char *name);
/* Allocates an aligned zeroed buffer of nbytes owned by mf and adds a tensor
 * pointing at it; *data receives the buffer to fill. Checks the shape. */
ob_status ob_model_file_new_tensor(ob_model_file *mf, const char *name, ob_type type, int n_dims,
                                   const int64_t *ne, void **data);
/* Adds a tensor over memory that mf does not own (e.g. an mmap it holds). */
ob_status ob_model_file_add_view(ob_model_file *mf, const char *name, ob_type type, int n_dims,
                                 const int64_t *ne, const void *data, uint64_t nbytes);

/* The importers and the native format. */
ob_status ob_h1b_open(const char *path, ob_model_file *out);
/* verify_data: also check the data checksum (reads every byte). */
ob_status ob_h1b_verify(const ob_model_file *mf);
ob_status ob_h1b_write(const ob_model_file *mf, const char *path);
ob_status ob_gguf_import(const char *path, ob_model_file *out);
ob_status ob_hf_import(const char *dir, ob_model_file *out);

/* Dequantizes row `row` of t into out[ne[0]] floats: F32/F16/BF16/Q8_0 give
 * the values; I8 gives the raw integers and T2 the ternary values t (their
 * scales live in the companion ".scale" tensor). */
ob_status ob_tensor_row_f32(const ob_tensor *t, int64_t row, float *out);

/* Reads ids 0..count of a ternary tensor as t in {-1,0,1} (tests, converters). */
int ob_tensor_t2_get(const ob_tensor *t, int64_t row, int64_t col);

#ifdef __cplusplus
}
#endif
#endif
