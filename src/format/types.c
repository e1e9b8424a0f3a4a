/* The tensor type table. */
#include "format/types.h"

#include <string.h>

static const ob_type_info type_table[OB_TYPE_COUNT] = {
    /*                 name    blk  bytes  pads   tern   impl */
    [OB_TYPE_F32]  = { "f32",    1,   4, false, false, true },
    [OB_TYPE_F16]  = { "f16",    1,   2, false, false, true },
    [OB_TYPE_BF16] = { "bf16",   1,   2, false, false, true },
    [OB_TYPE_Q8_0] = { "q8_0",  32,  34, false, false, true },
    [OB_TYPE_I8]   = { "i8",     1,   1, false, false, true },
    [OB_TYPE_T2]   = { "t2",   128,  32, true,  true,  true },
    [OB_TYPE_T3]   = { "t3",   160,  32, true,  true,  false }, /* 5 trits/byte */
    [OB_TYPE_T34]  = { "t34",  128,  20, true,  true,  false }, /* 5 bits per 4 */
    [OB_TYPE_I32]  = { "i32",    1,   4, false, false, true },
};

const ob_type_info *ob_type_get(ob_type t) {
    return (unsigned)t < OB_TYPE_COUNT && type_table[t].name ? &type_table[t] : NULL;
}

const char *ob_type_name(ob_type t) {
    const ob_type_info *ti = ob_type_get(t);
    return ti ? ti->name : "?";
}

size_t ob_type_row_bytes(ob_type t, int64_t n) {
    const ob_type_info *ti = ob_type_get(t);
    if (!ti || n <= 0 || n > ((int64_t)1 << 40)) return 0;
    int64_t blocks;
    if (ti->pads_rows) blocks = (n + ti->block_elems - 1) / ti->block_elems;
    else if (n % ti->block_elems) return 0;
    else blocks = n / ti->block_elems;
    return (size_t)blocks * (size_t)ti->block_bytes;
}

void ob_t2_zero_row(uint8_t *row, size_t row_bytes) { memset(row, 0x55, row_bytes); }
