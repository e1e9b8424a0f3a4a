/* 1bit convert: any model source (HF directory, .gguf, .h1b) to a .h1b file.
 *
 * The source is read into an ob_model_file, written with ob_h1b_write_ex
 * (OUT.tmp, then renamed), and the written file is opened again, its data
 * checksum verified and every tensor compared byte for byte with the source:
 * a file that does not read back as what was meant is removed. */
#include "cli/cli.h"
#include "format/h1b.h"
#include "format/import.h" /* ob_progress */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *fp) {
    fprintf(fp, "usage: 1bit convert SRC -o OUT.h1b [--align N]\n\n"
                "SRC is a Hugging Face model directory, a .gguf file or a .h1b file.\n\n"
                "  -o OUT.h1b   the file to write (written as OUT.h1b.tmp, then renamed)\n"
                "  --align N    tensor data alignment in bytes: a power of two, 64 to 2097152\n"
                "               (default 64; 4096 gives page-aligned tensors)\n");
}

/* The importers' progress line (drawn only on a terminal, after a second). */
typedef struct write_progress {
    ob_progress bar;
    uint64_t seen;
    bool begun;
} write_progress;

static void on_progress(void *ud, uint64_t done, uint64_t total) {
    write_progress *w = ud;
    if (!w->begun) ob_progress_begin(&w->bar, "1bit convert: writing", total);
    w->begun = true;
    ob_progress_add(&w->bar, done - w->seen);
    w->seen = done;
}

/* The written file must hold exactly the source's tensors and metadata keys. */
static ob_status compare(const ob_model_file *src, const ob_model_file *out, const char *path) {
    if (src->n_tensors != out->n_tensors || src->meta.n != out->meta.n)
        return ob_fail(OB_ERR_INTERNAL, "%s: read back %zu tensors and %zu metadata keys, wrote %zu and %zu", path,
                       out->n_tensors, out->meta.n, src->n_tensors, src->meta.n);
    for (size_t i = 0; i < src->meta.n; i++)
        if (strcmp(src->meta.e[i].key, out->meta.e[i].key) || src->meta.e[i].type != out->meta.e[i].type ||
            src->meta.e[i].count != out->meta.e[i].count)
            return ob_fail(OB_ERR_INTERNAL, "%s: metadata %s did not read back as written", path, src->meta.e[i].key);
    for (size_t i = 0; i < src->n_tensors; i++) {
        const ob_tensor *a = &src->tensors[i], *b = &out->tensors[i];
        if (strcmp(a->name, b->name) || a->type != b->type || memcmp(a->ne, b->ne, sizeof a->ne) ||
            a->nbytes != b->nbytes || memcmp(a->data, b->data, (size_t)a->nbytes))
            return ob_fail(OB_ERR_INTERNAL, "%s: tensor %s did not read back as written", path, a->name);
    }
    return OB_OK;
}

int ob_cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *src_path = NULL, *out_path = NULL;
    long long align = OB_H1B_DEFAULT_ALIGN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) return ob_cli_error(cmd, "option %s needs a value", a);
            out_path = argv[++i];
        } else if (!strcmp(a, "--align")) {
            if (i + 1 >= argc || !ob_cli_int(argv[i + 1], OB_ALIGN, OB_H1B_MAX_ALIGN, &align) || (align & (align - 1)))
                return ob_cli_error(cmd, "--align needs a power of two from %d to %u", OB_ALIGN, OB_H1B_MAX_ALIGN);
            i++;
        } else if (a[0] == '-' && a[1]) {
            return ob_cli_error(cmd, "unknown option '%s' (1bit convert --help)", a);
        } else if (!src_path) {
            src_path = a;
        } else {
            return ob_cli_error(cmd, "more than one source ('%s' and '%s')", src_path, a);
        }
    }
    if (!src_path || !out_path) return ob_cli_error(cmd, "need SRC and -o OUT.h1b (1bit convert --help)");

    double t0 = ob_time_s();
    ob_model_file mf, back = { 0 };
    if (ob_model_file_open(src_path, &mf)) return ob_cli_fail(cmd);
    /* Provenance: keep where the weights came from; record who wrote this file. */
    ob_status st = OB_OK;
    if (!ob_meta_str(&mf.meta, OB_KEY_SOURCE, NULL)) st = ob_meta_set_str(&mf.meta, OB_KEY_SOURCE, src_path);
    if (!st) st = ob_meta_set_str(&mf.meta, "h1b.converted_by", "1bit " OB_VERSION_STRING);

    write_progress prog = { .begun = false };
    ob_h1b_write_opts opts = { .alignment = (uint32_t)align, .progress = on_progress, .progress_ud = &prog };
    if (!st) st = ob_h1b_write_ex(&mf, out_path, &opts);
    if (prog.begun) ob_progress_end(&prog.bar);
    if (!st) {
        st = ob_h1b_open(out_path, &back);
        if (!st) st = ob_h1b_verify(&back);
        if (!st) st = compare(&mf, &back, out_path);
        if (st) unlink(out_path); /* never leave a file that does not read back */
    }
    int rc = 0;
    if (st) {
        rc = ob_cli_fail(cmd);
    } else {
        uint64_t bytes = 0, ternary = 0;
        for (size_t i = 0; i < back.n_tensors; i++) {
            bytes += back.tensors[i].nbytes;
            const ob_type_info *ti = ob_type_get(back.tensors[i].type);
            if (ti && ti->is_ternary) ternary += back.tensors[i].nbytes;
        }
        fprintf(stderr, "1bit convert: wrote %s: %zu tensors, %llu bytes of tensor data (%llu ternary), "
                        "%zu bytes on disk, %.2f s\n",
                out_path, back.n_tensors, (unsigned long long)bytes, (unsigned long long)ternary, back.map.size,
                ob_time_s() - t0);
    }
    ob_model_file_close(&back);
    ob_model_file_close(&mf);
    return rc;
}
