/* safetensors reader and the Hugging Face directory importer's memory entry.
 *
 * A .safetensors file: u64 N (little-endian), N bytes of JSON
 *   { "NAME": { "dtype": "BF16", "shape": [out, in], "data_offsets": [begin, end] }, ...,
 *     "__metadata__": { ... } }
 * then the data; offsets are relative to the byte after the header. The reader
 * checks every entry (known dtype, shape product * dtype size == end - begin,
 * end within the file, no two tensors overlapping) before anyone reads data. */
#ifndef OB_SAFETENSORS_H
#define OB_SAFETENSORS_H

#include "core/json.h"
#include "format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_st_dtype {
    OB_ST_BOOL, OB_ST_U8, OB_ST_I8, OB_ST_I16, OB_ST_U16, OB_ST_F16, OB_ST_BF16, OB_ST_I32, OB_ST_U32,
    OB_ST_F32, OB_ST_F64, OB_ST_I64, OB_ST_U64, OB_ST_F8_E4M3, OB_ST_F8_E5M2, OB_ST_N_DTYPES
} ob_st_dtype;

const char *ob_st_dtype_name(ob_st_dtype t);

#define OB_ST_MAX_DIMS 4

typedef struct ob_st_tensor {
    const char *name;     /* NUL-terminated, owned by the file's JSON tree */
    ob_st_dtype dtype;
    int n_dims;           /* 0 for a scalar */
    int64_t shape[OB_ST_MAX_DIMS]; /* HF order: shape[0] outermost ([out, in] for a linear) */
    uint64_t numel;
    const uint8_t *data;  /* into the file */
    uint64_t nbytes;
} ob_st_tensor;

typedef struct ob_safetensors {
    ob_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
    ob_json_doc header;
    ob_mapped_file map;    /* when opened from a path */
} ob_safetensors;

/* Parses data[0..size) (not copied: it must outlive st). name is for messages. */
ob_status ob_safetensors_parse(const uint8_t *data, size_t size, const char *name, ob_safetensors *st);
ob_status ob_safetensors_open(const char *path, ob_safetensors *st);
void ob_safetensors_close(ob_safetensors *st);
const ob_st_tensor *ob_safetensors_find(const ob_safetensors *st, const char *name);

/* The HF importer over memory: config.json text and one safetensors image
 * (no tokenizer). name gives the provenance "hf:NAME". On failure `out` is
 * left empty. */
ob_status ob_hf_import_mem(const char *config_json, size_t config_len, const uint8_t *safetensors,
                           size_t size, const char *name, ob_model_file *out);

#ifdef __cplusplus
}
#endif
#endif
