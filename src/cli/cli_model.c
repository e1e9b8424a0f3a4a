/* Model and backend options shared by run, chat, logits, ppl, bench, serve. */
#include "backend/backend.h"
#include "cli/cli.h"
#include "runtime/sampler.h"

#include <stddef.h>

#include <string.h>

const char ob_cli_model_help[] =
    "  -m MODEL             .h1b file, .gguf file or Hugging Face model directory\n"
    "  --synthetic SHAPE    random weights at a real shape instead of -m (2b4t, tiny, large, 3b, 8b)\n"
    "  --backend cpu|cuda   where to run (default cpu)\n"
    "  --threads N          CPU threads (default: all cores)\n"
    "  --ctx N              context positions for the KV cache (default: the model's)\n"
    "  --kv f32|f16         KV cache type (default f32)\n"
    "  --head keep|i8       lm_head as stored, or quantized to int8 rows (default keep)\n"
    "  --kernels NAME       CPU kernel set: auto, scalar (the reference), avx2, ... (default auto)\n";

static const char *value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        ob_cli_error(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int ob_cli_model_arg(const char *cmd, ob_cli_model_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v;
    long long n;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        o->model = v;
    } else if (!strcmp(a, "--synthetic")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        o->synthetic = v;
    } else if (!strcmp(a, "--backend")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        o->backend = v;
    } else if (!strcmp(a, "--kernels")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        o->kernels = v;
    } else if (!strcmp(a, "--head")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        if (strcmp(v, "keep") && strcmp(v, "i8")) return ob_cli_error(cmd, "--head must be keep or i8"), -1;
        o->head = v;
    } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        if (!ob_cli_int(v, 1, 1024, &n)) return ob_cli_error(cmd, "--threads must be 1..1024"), -1;
        o->threads = (int)n;
    } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        if (!ob_cli_int(v, 1, 1 << 20, &n)) return ob_cli_error(cmd, "--ctx must be 1..1048576"), -1;
        o->ctx = (int)n;
    } else if (!strcmp(a, "--kv")) {
        if (!(v = value(cmd, argc, argv, i))) return -1;
        if (strcmp(v, "f16") && strcmp(v, "f32")) return ob_cli_error(cmd, "--kv must be f32 or f16"), -1;
        o->kv_f16 = !strcmp(v, "f16");
    } else {
        return 0;
    }
    return 1;
}

int ob_cli_open(const char *cmd, const ob_cli_model_opts *o, int n_seq, ob_model **m, ob_backend **b) {
    *m = NULL;
    *b = NULL;
    ob_status st;
    if (o->synthetic) st = ob_model_synthetic(o->synthetic, o->head && !strcmp(o->head, "i8") ? OB_TYPE_I8 : OB_TYPE_F16,
                                              o->seed ? o->seed : 1, m);
    else if (o->model) st = ob_model_load(o->model, m);
    else return ob_cli_error(cmd, "no model: give -m MODEL (or --synthetic SHAPE)");
    if (st) return ob_cli_fail(cmd);
    if (o->head && !strcmp(o->head, "i8") && (st = ob_model_quantize_head(*m))) {
        ob_model_free(*m);
        *m = NULL;
        return ob_cli_fail(cmd);
    }
    ob_backend_params bp = {
        .n_threads = o->threads, .n_ctx = o->ctx, .n_seq = n_seq,
        .kv_type = o->kv_f16 ? OB_KV_F16 : OB_KV_F32, .kernels = o->kernels,
    };
    if ((st = ob_backend_create(o->backend ? o->backend : "cpu", *m, &bp, b))) {
        ob_model_free(*m);
        *m = NULL;
        return ob_cli_fail(cmd);
    }
    return 0;
}

/* Sampling options shared by run and chat: one table. */
int ob_cli_sampling_arg(const char *cmd, ob_sampler_params *sp, int argc, char **argv, int *i) {
    static const struct { const char *name; char kind; size_t off; double lo, hi; } opts[] = {
        { "--temp", 'f', offsetof(ob_sampler_params, temperature), 0, 100 },
        { "--top-k", 'i', offsetof(ob_sampler_params, top_k), 0, 1 << 24 },
        { "--top-p", 'f', offsetof(ob_sampler_params, top_p), 0, 1 },
        { "--min-p", 'f', offsetof(ob_sampler_params, min_p), 0, 1 },
        { "--repeat-penalty", 'f', offsetof(ob_sampler_params, repeat_penalty), 1e-3, 100 },
        { "--repeat-last-n", 'i', offsetof(ob_sampler_params, repeat_last_n), -1, 1 << 24 },
        { "--frequency-penalty", 'f', offsetof(ob_sampler_params, frequency_penalty), -100, 100 },
        { "--presence-penalty", 'f', offsetof(ob_sampler_params, presence_penalty), -100, 100 },
        { "--seed", 'u', offsetof(ob_sampler_params, seed), 0, 0 },
    };
    for (size_t k = 0; k < OB_ARRAY_LEN(opts); k++) {
        if (strcmp(argv[*i], opts[k].name)) continue;
        if (*i + 1 >= argc) return ob_cli_error(cmd, "option %s needs a value", argv[*i]), -1;
        const char *v = argv[++*i];
        char *base = (char *)sp + opts[k].off;
        double d;
        long long n;
        if (opts[k].kind == 'u') {
            if (!ob_cli_int(v, 0, INT64_MAX, &n)) return ob_cli_error(cmd, "%s: bad value '%s'", opts[k].name, v), -1;
            *(uint64_t *)base = (uint64_t)n;
        } else if (opts[k].kind == 'i') {
            if (!ob_cli_int(v, (long long)opts[k].lo, (long long)opts[k].hi, &n))
                return ob_cli_error(cmd, "%s: bad value '%s'", opts[k].name, v), -1;
            *(int *)base = (int)n;
        } else {
            if (!ob_cli_float(v, &d) || d < opts[k].lo || d > opts[k].hi)
                return ob_cli_error(cmd, "%s: bad value '%s'", opts[k].name, v), -1;
            *(float *)base = (float)d;
        }
        return 1;
    }
    return 0;
}
