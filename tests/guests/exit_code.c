/*
 * exit_code: exits with the code given as argv[1] (default 0), for exit-code passthrough tests.
 *
 *   exit_code.wasm            -> returns 0 from main
 *   exit_code.wasm N          -> returns N from main
 *   exit_code.wasm N exit     -> calls exit(N) from a nested function (WASI proc_exit)
 *
 * Writes "exit_code: N\n" to stdout first.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

static void leave(int code) { exit(code); }

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exit_code: %d\n", code);
    fflush(stdout);
    if (argc > 2 && strcmp(argv[2], "exit") == 0) {
        leave(code);
    }
    return code;
}
