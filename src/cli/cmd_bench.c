/* 1bit bench: placeholder until the command lands. */
#include "cli/cli.h"

int ob_cmd_bench(int argc, char **argv) {
    (void)argc;
    return ob_cli_error(argv[0], "not implemented yet");
}
