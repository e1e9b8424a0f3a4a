/* Helpers shared by the GGUF and Hugging Face importers. */
#include "format/import.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void ob_t2_pack_row(const uint8_t *codes, int64_t n, uint8_t *row) {
    /* Block of 128 weights -> 32 bytes; byte b holds weights b, b+32, b+64,
     * b+96 in bits 7-6, 5-4, 3-2, 1-0 (see types.h). */
    for (int64_t base = 0; base < n; base += OB_T2_BLOCK, row += OB_T2_BLOCK_BYTES) {
        int64_t len = OB_MIN(n - base, (int64_t)OB_T2_BLOCK);
        const uint8_t *c = codes + base;
        if (len == OB_T2_BLOCK) {
            for (int b = 0; b < 32; b++)
                row[b] = (uint8_t)(c[b] << 6 | c[b + 32] << 4 | c[b + 64] << 2 | c[b + 96]);
        } else {
            uint8_t full[OB_T2_BLOCK];
            memset(full, 1, sizeof full);
            memcpy(full, c, (size_t)len);
            for (int b = 0; b < 32; b++)
                row[b] = (uint8_t)(full[b] << 6 | full[b + 32] << 4 | full[b + 64] << 2 | full[b + 96]);
        }
    }
}

ob_status ob_scale_name(const char *weight, char out[OB_MAX_NAME]) {
    size_t n = strlen(weight);
    if (n >= 7 && strcmp(weight + n - 7, ".weight") == 0) n -= 7;
    if (n + 6 >= OB_MAX_NAME) return ob_fail(OB_ERR_FORMAT, "tensor name too long: %.40s...", weight);
    memcpy(out, weight, n);
    memcpy(out + n, ".scale", 7);
    return OB_OK;
}

ob_status ob_check_scale(float beta, const char *what) {
    if (!isfinite(beta)) return ob_fail(OB_ERR_FORMAT, "%s: scale is %s", what, isnan(beta) ? "NaN" : "infinite");
    if (beta < 0) return ob_fail(OB_ERR_FORMAT, "%s: negative scale %g", what, (double)beta);
    return OB_OK;
}

ob_status ob_add_scale(ob_model_file *mf, const char *weight, const float *beta, int64_t n) {
    char name[OB_MAX_NAME];
    ob_status st = ob_scale_name(weight, name);
    if (st) return st;
    void *dst;
    int64_t ne[1] = { n };
    if ((st = ob_model_file_new_tensor(mf, name, OB_TYPE_F32, 1, ne, &dst))) return st;
    memcpy(dst, beta, (size_t)n * sizeof(float));
    return OB_OK;
}

void ob_progress_begin(ob_progress *p, const char *what, uint64_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total ? total : 1;
    p->t0 = p->last = ob_time_s();
    p->tty = isatty(STDERR_FILENO) != 0;
}

void ob_progress_add(ob_progress *p, uint64_t n) {
    p->done += n;
    if (!p->tty) return;
    double now = ob_time_s();
    if (now - p->t0 < 1.0 || now - p->last < 0.2) return;
    p->last = now;
    p->drawn = true;
    fprintf(stderr, "\r%s: %3d%%", p->what, (int)(100.0 * (double)OB_MIN(p->done, p->total) / (double)p->total));
    fflush(stderr);
}

void ob_progress_end(ob_progress *p) {
    if (p->drawn) fprintf(stderr, "\r%s: 100%% (%.1f s)\n", p->what, ob_time_s() - p->t0);
    p->drawn = false;
}
