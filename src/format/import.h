/* What the importers (gguf.c, hf.c) share: packing ternary rows into
 * OB_TYPE_T2, naming and checking scales, and a progress line for long
 * conversions. Not part of the public API. */
#ifndef OB_IMPORT_H
#define OB_IMPORT_H

#include "format/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Packs n ternary codes (0, 1, 2 = t + 1) into one T2 row of
 * ob_type_row_bytes(OB_TYPE_T2, n) bytes; the padding gets code 1 (weight 0). */
void ob_t2_pack_row(const uint8_t *codes, int64_t n, uint8_t *row);

/* The companion scale name of a ternary weight: "blk.0.attn_q.weight" gives
 * "blk.0.attn_q.scale"; a name without ".weight" gets ".scale" appended. */
ob_status ob_scale_name(const char *weight, char out[OB_MAX_NAME]);

/* A scale beta is usable when it is finite and not negative. what names the
 * tensor for the message. */
ob_status ob_check_scale(float beta, const char *what);

/* Adds "<weight minus .weight>.scale" as F32 [n] with the given values. */
ob_status ob_add_scale(ob_model_file *mf, const char *weight, const float *beta, int64_t n);

/* A progress line on stderr, drawn only when stderr is a terminal and the
 * work has already taken more than a second ("\rconverting: 41%"). */
typedef struct ob_progress {
    const char *what;
    uint64_t total, done;
    double t0, last;
    bool tty, drawn;
} ob_progress;
void ob_progress_begin(ob_progress *p, const char *what, uint64_t total);
void ob_progress_add(ob_progress *p, uint64_t n);
void ob_progress_end(ob_progress *p);

#ifdef __cplusplus
}
#endif
#endif
