/*
 * hello: the SPEAR "hello" sample, plus an argv echo.
 *
 * spear.log (info): "hello spear wasm\n", then "time_now_ms: <ms>\n".
 * stdout:           the arguments after argv[0], separated by single spaces and ended by a
 *                   newline; nothing when there are none.
 * Exit code 0.
 *
 * printf goes to spear.log (spear.h redirects it on wasm), so the echo uses fputs/fputc,
 * which are not redirected and reach WASI stdout.
 */
#include "spear.h"

int main(int argc, char **argv) {
    printf("hello spear wasm\n");
    printf("time_now_ms: %lld\n", (long long)sp_time_now_ms());

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            if (i > 1) {
                fputc(' ', stdout);
            }
            fputs(argv[i], stdout);
        }
        fputc('\n', stdout);
        fflush(stdout);
    }
    return 0;
}
