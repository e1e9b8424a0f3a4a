/* 1bit info: what a model file holds, from its metadata and tensor table.
 * Works on any source (.h1b, .gguf, HF directory); --verify also checks an
 * .h1b file's data checksum, --tensors lists every tensor. */
#include "cli/cli.h"
#include "format/h1b.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp, "usage: 1bit info -m MODEL [--verify] [--tensors]\n\n"
                "  -m MODEL    .h1b file, .gguf file or Hugging Face model directory\n"
                "  --verify    read all tensor data and check the .h1b data checksum\n"
                "  --tensors   list every tensor: name, type, shape, bytes\n");
}

/* "key  value" rows, the key padded to one column. */
#define ROW(key, ...) (printf("%-15s", key), printf(__VA_ARGS__), putchar('\n'))

static void row_int(const ob_meta *m, const char *label, const char *key) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    if (e && (e->type == OB_META_INT || e->type == OB_META_FLOAT)) ROW(label, "%lld", (long long)ob_meta_int(m, key, 0));
}

static void row_str(const ob_meta *m, const char *label, const char *key) {
    const char *s = ob_meta_str(m, key, NULL);
    if (s) ROW(label, "%s", s);
}

static void row_bool(const ob_meta *m, const char *label, const char *key) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    if (e && (e->type == OB_META_BOOL || e->type == OB_META_INT)) ROW(label, "%s", e->i ? "yes" : "no");
}

static uint64_t array_len(const ob_meta *m, const char *key) {
    const ob_meta_entry *e = ob_meta_find(m, key);
    return e && (e->type == OB_META_STR_ARR || e->type == OB_META_I32_ARR || e->type == OB_META_F32_ARR) ? e->count : 0;
}

static void print_tokenizer(const ob_meta *m) {
    const char *model = ob_meta_str(m, OB_KEY_TOK_MODEL, NULL);
    uint64_t n_tokens = array_len(m, OB_KEY_TOK_TOKENS);
    if ((!model || !strcmp(model, "none")) && !n_tokens) {
        ROW("tokenizer", "none (token ids only)");
    } else {
        const char *pre = ob_meta_str(m, OB_KEY_TOK_PRE, NULL);
        printf("%-15s%s", "tokenizer", model ? model : "?");
        if (pre) printf(" (pre-tokenizer %s)", pre);
        printf(": %llu tokens", (unsigned long long)n_tokens);
        if (ob_meta_find(m, OB_KEY_TOK_MERGES)) printf(", %llu merges", (unsigned long long)array_len(m, OB_KEY_TOK_MERGES));
        if (ob_meta_find(m, OB_KEY_TOK_SCORES)) printf(", scores");
        if (ob_meta_find(m, OB_KEY_TOK_TYPES)) printf(", token types");
        putchar('\n');
    }
    static const struct { const char *label, *key; } special[] = {
        { "bos", OB_KEY_BOS }, { "eos", OB_KEY_EOS }, { "eot", OB_KEY_EOT },
    };
    const ob_meta_entry *tokens = ob_meta_find(m, OB_KEY_TOK_TOKENS);
    ob_buf line = { 0 };
    for (size_t i = 0; i < OB_ARRAY_LEN(special); i++) {
        if (!ob_meta_find(m, special[i].key)) continue;
        int64_t id = ob_meta_int(m, special[i].key, -1);
        ob_buf_printf(&line, "%s%s %lld", line.len ? ", " : "", special[i].label, (long long)id);
        if (tokens && tokens->type == OB_META_STR_ARR && id >= 0 && (uint64_t)id < tokens->count)
            ob_buf_printf(&line, " %.*s", (int)OB_MIN(tokens->str_lens[id], 40u), tokens->strs[id]);
    }
    if (ob_meta_find(m, OB_KEY_ADD_BOS))
        ob_buf_printf(&line, "%sadd_bos %s", line.len ? ", " : "", ob_meta_bool(m, OB_KEY_ADD_BOS, false) ? "yes" : "no");
    if (line.len) ROW("special", "%s", line.data);
    ob_buf_free(&line);
    const char *tmpl = ob_meta_str(m, OB_KEY_CHAT_TEMPLATE, NULL), *name = ob_chat_template_for(m);
    if (!tmpl) ROW("chat template", "%s (none in file: default for the architecture)", name);
    else if (ob_chat_template_known(tmpl)) ROW("chat template", "%s", tmpl);
    else ROW("chat template", "%s (recognised from the source's %zu-byte Jinja template)", name, strlen(tmpl));
}

static void print_model(const ob_meta *m) {
    row_str(m, "architecture", OB_KEY_ARCH);
    row_str(m, "name", OB_KEY_NAME);
    row_str(m, "source", OB_KEY_SOURCE);
    row_str(m, "converted by", "h1b.converted_by");
    row_int(m, "vocab", OB_KEY_VOCAB);
    row_int(m, "context", OB_KEY_CTX);
    row_int(m, "embedding", OB_KEY_EMBD);
    row_int(m, "layers", OB_KEY_LAYERS);
    row_int(m, "feed-forward", OB_KEY_FF);
    row_int(m, "heads", OB_KEY_HEADS);
    row_int(m, "kv heads", OB_KEY_HEADS_KV);
    row_int(m, "head dim", OB_KEY_HEAD_DIM);
    row_int(m, "rope dim", OB_KEY_ROPE_DIM);
    if (ob_meta_find(m, OB_KEY_ROPE_BASE))
        ROW("rope", "%s, base %g", ob_meta_str(m, OB_KEY_ROPE_TYPE, "?"), ob_meta_float(m, OB_KEY_ROPE_BASE, 0));
    if (ob_meta_find(m, OB_KEY_NORM_EPS)) ROW("rms norm eps", "%g", ob_meta_float(m, OB_KEY_NORM_EPS, 0));
    row_str(m, "activation", OB_KEY_ACT);
    row_bool(m, "sub-norms", OB_KEY_SUBNORM);
    row_bool(m, "tied embed", OB_KEY_TIED);
    print_tokenizer(m);
}

static int64_t elements(const ob_tensor *t) { return t->ne[0] * ob_tensor_rows(t); }

static void print_tensors(const ob_model_file *mf, bool list) {
    uint64_t count[OB_TYPE_COUNT] = { 0 }, bytes[OB_TYPE_COUNT] = { 0 }, total = 0, params = 0;
    uint64_t tern_weights = 0, tern_bytes = 0, tern_tensors = 0, scale_bytes = 0;
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const ob_tensor *t = &mf->tensors[i];
        if ((unsigned)t->type >= OB_TYPE_COUNT) continue;
        count[t->type]++;
        bytes[t->type] += t->nbytes;
        total += t->nbytes;
        params += (uint64_t)elements(t);
        if (ob_type_get(t->type)->is_ternary) {
            tern_tensors++;
            tern_weights += (uint64_t)elements(t);
            tern_bytes += t->nbytes;
        } else if (ob_str_ends_with(t->name, ".scale")) {
            scale_bytes += t->nbytes;
        }
    }
    ROW("tensors", "%zu", mf->n_tensors);
    for (int ty = 0; ty < OB_TYPE_COUNT; ty++)
        if (count[ty])
            printf("  %-13s%6llu tensors %14llu bytes\n", ob_type_name((ob_type)ty), (unsigned long long)count[ty],
                   (unsigned long long)bytes[ty]);
    if (tern_tensors)
        ROW("ternary", "%llu tensors, %llu weights in %llu bytes + %llu scale bytes (%.3f bits/weight)",
            (unsigned long long)tern_tensors, (unsigned long long)tern_weights, (unsigned long long)tern_bytes,
            (unsigned long long)scale_bytes, 8.0 * (double)(tern_bytes + scale_bytes) / (double)tern_weights);
    else
        ROW("ternary", "none");
    ROW("total", "%llu parameters, %llu bytes of tensor data", (unsigned long long)params, (unsigned long long)total);
    if (!list) return;
    printf("\n%-48s %-5s %-26s %12s\n", "name", "type", "shape", "bytes");
    for (size_t i = 0; i < mf->n_tensors; i++) {
        const ob_tensor *t = &mf->tensors[i];
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        if (n < (int)sizeof shape) snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("%-48s %-5s %-26s %12llu\n", t->name, ob_type_name(t->type), shape, (unsigned long long)t->nbytes);
    }
}

int ob_cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL;
    bool verify = false, list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return ob_cli_error(cmd, "option %s needs a value", a);
            path = argv[++i];
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else if (!strcmp(a, "--tensors")) {
            list = true;
        } else if (a[0] == '-' && a[1]) {
            return ob_cli_error(cmd, "unknown option '%s' (1bit info --help)", a);
        } else if (!path) {
            path = a; /* 1bit info MODEL works too */
        } else {
            return ob_cli_error(cmd, "more than one model ('%s' and '%s')", path, a);
        }
    }
    if (!path) return ob_cli_error(cmd, "need -m MODEL (1bit info --help)");

    ob_model_file mf;
    if (ob_model_file_open(path, &mf)) return ob_cli_fail(cmd);
    ob_h1b_header h;
    bool is_h1b = ob_h1b_header_of(&mf, &h) == OB_OK;
    if (verify && is_h1b && ob_h1b_verify(&mf)) {
        ob_model_file_close(&mf);
        return ob_cli_fail(cmd);
    }
    if (is_h1b)
        ROW("file", "%s (.h1b version %u, %u-byte aligned, %llu bytes)", path, h.version, h.alignment,
            (unsigned long long)h.file_size);
    else
        ROW("file", "%s (imported in memory)", path);
    if (verify)
        ROW("verify", "%s", is_h1b ? "ok: header and data checksums match"
                                   : "ok: every check of the importer passed (only .h1b files carry checksums)");
    print_model(&mf.meta);
    print_tensors(&mf, list);
    ob_model_file_close(&mf);
    return 0;
}
