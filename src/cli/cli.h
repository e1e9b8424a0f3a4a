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
