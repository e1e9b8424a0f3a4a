/* The native .h1b format beyond model_file.h's three entry points: write
 * options, opening from memory (the fuzzer), and the header for `1bit info`.
 * docs/FORMAT.md is the specification. */
#ifndef OB_H1B_H
#define OB_H1B_H

#include "format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_H1B_VERSION 1
#define OB_H1B_HEADER_SIZE 128
#define OB_H1B_DEFAULT_ALIGN 64
#define OB_H1B_MAX_ALIGN (2u << 20)  /* 2 MiB: a huge page */

typedef struct ob_h1b_write_opts {
    uint32_t alignment;  /* data alignment, a power of two in [64, 2 MiB]; 0 = 64 */
    /* Called after each chunk of tensor data is written (done, total in bytes). */
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void *progress_ud;
} ob_h1b_write_opts;

/* ob_h1b_write with options (opts may be NULL). Writes path.tmp, then renames. */
ob_status ob_h1b_write_ex(const ob_model_file *mf, const char *path, const ob_h1b_write_opts *opts);

/* Opens an .h1b image held in memory. The bytes are copied into one aligned
 * buffer owned by out (out->map), so data may be freed afterwards; name is
 * used in error messages. Same checks as ob_h1b_open. */
ob_status ob_h1b_open_mem(const void *data, size_t size, const char *name, ob_model_file *out);

/* The header fields of an opened .h1b (mf->map); OB_ERR_ARG when mf was not
 * read from one. */
typedef struct ob_h1b_header {
    uint32_t version, header_size, alignment, n_tensors;
    uint64_t file_size, table_offset, table_size, meta_offset, meta_size, meta_count;
    uint64_t data_offset, data_size, data_checksum, head_checksum;
} ob_h1b_header;
ob_status ob_h1b_header_of(const ob_model_file *mf, ob_h1b_header *hdr);

/* head_checksum of an image (docs/FORMAT.md), computed from its data_offset
 * field: false when the image is too short for that. For the fuzzer, which
 * patches it in so that mutations reach the table and metadata parsers. */
bool ob_h1b_head_checksum(const uint8_t *file, size_t size, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
