/* GGUF (v2, v3) importer: llama.cpp's and bitnet.cpp's model files.
 *
 * ob_gguf_import (model_file.h) maps a file and calls ob_gguf_import_mem.
 * Tensors are converted into heap buffers owned by `out`, so the input memory
 * may go away after the call. Types: F32, F16, BF16 and Q8_0 are kept; the
 * ternary I2_S (bitnet.cpp, id 36), TQ1_0 (34) and TQ2_0 (35) become
 * OB_TYPE_T2 plus an F32 "<name>.scale" ([1], or [rows] when rows differ);
 * 1-D norm weights become F32; a Q4_0 or Q6_K token_embd/output becomes F16. Everything in the file is validated first. */
#ifndef OB_GGUF_H
#define OB_GGUF_H

#include "format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Imports a GGUF image data[0..size). name (the file name) is used in
 * messages and provenance. On failure `out` is left for ob_model_file_close. */
ob_status ob_gguf_import_mem(const uint8_t *data, size_t size, const char *name, ob_model_file *out);

#ifdef __cplusplus
}
#endif
#endif
