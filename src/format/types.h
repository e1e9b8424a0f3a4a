/* Tensor element types: the one table of them (types.c).
 *
 * These are 1bit's own in-memory and .h1b types. Importers translate every
 * source type (GGUF I2_S/TQ1_0/TQ2_0/Q8_0/..., HF packed uint8) into one of
 * these; docs/FORMAT.md specifies each byte layout.
 *
 * Shapes follow ggml order: ne[0] is the innermost (contiguous) dimension, so a
 * linear layer's weight has ne[0] = in (columns) and ne[1] = out (rows).
 * All row-oriented types store whole rows; a row's byte size comes from
 * ob_type_row_bytes. */
#ifndef OB_TYPES_H
#define OB_TYPES_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_type {
    OB_TYPE_F32 = 0,
    OB_TYPE_F16 = 1,
    OB_TYPE_BF16 = 2,
    OB_TYPE_Q8_0 = 3,  /* blocks of 32: f16 d, then 32 x int8 q; w = d*q (GGUF Q8_0 layout) */
    OB_TYPE_I8 = 4,    /* plain int8 rows; scale in the companion tensor "<name>.scale" */
    OB_TYPE_T2 = 5,    /* ternary, 2 bits, 128-weight blocks of 32 bytes (see below) */
    OB_TYPE_T3 = 6,    /* ternary, base-3, 5 weights per byte (1.6 bpw): reserved */
    OB_TYPE_T34 = 7,   /* ternary 3:4 sparse, 5 bits per 4 weights (1.25 bpw): reserved */
    OB_TYPE_I32 = 8,   /* int32 (ids, small tables) */
    OB_TYPE_COUNT
} ob_type;

/* OB_TYPE_T2, the native ternary packing (identical to bitnet.cpp's I2_S blocks,
 * without its tail): each row of `in` weights is padded with zeros to a multiple
 * of 128 and cut into blocks of 128 weights stored in 32 bytes. Weight j of a
 * block (j = 0..127) is byte j % 32, bits 6 - 2*(j / 32): byte b holds weights
 * b, b+32, b+64, b+96 in bits 7-6, 5-4, 3-2, 1-0. Code = t + 1 (0: -1, 1: 0,
 * 2: +1; 3 never occurs). One 32-byte load thus feeds 4 x 32 SIMD lanes that
 * line up with 4 consecutive 32-activation slices.
 * The scale beta (y = beta * sum t*x) is the companion F32 tensor
 * "<name>.scale" of shape [1] (per tensor) or [rows] (per row). */
#define OB_T2_BLOCK 128
#define OB_T2_BLOCK_BYTES 32
#define OB_Q8_0_BLOCK 32

typedef struct ob_type_info {
    const char *name;
    int block_elems;   /* elements per block along ne[0] (1 for plain types) */
    int block_bytes;   /* bytes per block */
    bool pads_rows;    /* rows are padded to whole blocks (else ne[0] % block == 0 required) */
    bool is_ternary;
    bool implemented;  /* false: reserved in the table, refused by loaders */
} ob_type_info;

const ob_type_info *ob_type_get(ob_type t); /* NULL for an unknown id */
const char *ob_type_name(ob_type t);
/* Bytes of one row of n elements; 0 when n is not a valid row length for t. */
size_t ob_type_row_bytes(ob_type t, int64_t n);

/* Ternary helpers for OB_TYPE_T2 (the spec; kernels must agree). */
static inline int ob_t2_get(const uint8_t *row, int64_t j) {
    const uint8_t *blk = row + (j / OB_T2_BLOCK) * OB_T2_BLOCK_BYTES;
    int k = (int)(j % OB_T2_BLOCK);
    return ((blk[k % 32] >> (6 - 2 * (k / 32))) & 3) - 1;
}
static inline void ob_t2_set(uint8_t *row, int64_t j, int t) {
    uint8_t *blk = row + (j / OB_T2_BLOCK) * OB_T2_BLOCK_BYTES;
    int k = (int)(j % OB_T2_BLOCK), sh = 6 - 2 * (k / 32);
    blk[k % 32] = (uint8_t)((blk[k % 32] & ~(3 << sh)) | ((t + 1) << sh));
}
/* Fills a T2 row buffer of row_bytes with code 1 (weight 0). */
void ob_t2_zero_row(uint8_t *row, size_t row_bytes);

#ifdef __cplusplus
}
#endif
#endif
