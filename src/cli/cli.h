/* The 1bit command line: one table of subcommands (main.c), one file each. */
#ifndef OB_CLI_H
#define OB_CLI_H

#include "core/core.h"

#include <stdio.h>

/* Every subcommand: argv[0] is the subcommand name. Returns the exit status
 * (0 ok, 1 bad usage or input, after one clear line on stderr). */
typedef int (*ob_cmd_fn)(int argc, char **argv);

int ob_cmd_convert(int argc, char **argv);
int ob_cmd_info(int argc, char **argv);
int ob_cmd_tokenize(int argc, char **argv);
int ob_cmd_detokenize(int argc, char **argv);
int ob_cmd_run(int argc, char **argv);
int ob_cmd_chat(int argc, char **argv);
int ob_cmd_logits(int argc, char **argv);
int ob_cmd_ppl(int argc, char **argv);
int ob_cmd_bench(int argc, char **argv);
int ob_cmd_serve(int argc, char **argv);

/* Prints "1bit <cmd>: <message>" on stderr; returns 1. */
int ob_cli_error(const char *cmd, const char *fmt, ...) OB_PRINTF(2, 3);
/* Prints "1bit <cmd>: " + ob_last_error(); returns 1. */
int ob_cli_fail(const char *cmd);

/* Parses "1,2,3" (commas or spaces) into a malloc'd id array. */
int ob_cli_parse_ids(const char *s, int32_t **ids, size_t *n);
/* Strict integer / float option values. */
bool ob_cli_int(const char *s, long long lo, long long hi, long long *out);
bool ob_cli_float(const char *s, double *out);

#endif

/* ---- options shared by every command that loads a model ------------------ */
typedef struct ob_cli_model_opts {
    const char *model;      /* -m PATH */
    const char *synthetic;  /* --synthetic SHAPE instead of -m */
    const char *backend;    /* --backend cpu|cuda */
    const char *kernels;    /* --kernels auto|scalar|avx2... (CPU) */
    const char *head;       /* --head keep|i8 : quantize the lm_head to int8 rows */
    int threads;            /* --threads N */
    int ctx;                /* --ctx N (KV positions; 0 = model's) */
    int kv_f16;             /* --kv f16|f32 */
    uint64_t seed;          /* --synthetic weights seed */
} ob_cli_model_opts;

/* The help text for these options. */
extern const char ob_cli_model_help[];
/* Tries argv[*i] as a model option: 1 consumed (advancing *i past its value),
 * 0 not a model option, -1 bad value (message printed). */
int ob_cli_model_arg(const char *cmd, ob_cli_model_opts *o, int argc, char **argv, int *i);
struct ob_model;
struct ob_backend;
struct ob_sampler_params;
/* Tries argv[*i] as a sampling option (--temp, --top-k, --top-p, --min-p,
 * penalties, --seed): 1 consumed, 0 not one, -1 bad value (message printed). */
int ob_cli_sampling_arg(const char *cmd, struct ob_sampler_params *sp, int argc, char **argv, int *i);
/* Loads the model (or builds the synthetic one) and creates the backend with
 * n_seq sequence slots. On failure prints the error and returns 1. */
int ob_cli_open(const char *cmd, const ob_cli_model_opts *o, int n_seq, struct ob_model **m, struct ob_backend **b);
