/*
 * misbehave: one guest that fails in the way argv[1] names, for CLI and isolation tests.
 *
 *   unreachable   traps with wasm `unreachable` (__builtin_trap)
 *   divzero       traps with an integer divide by zero
 *   recurse       recurses until Wasmtime's stack limit traps ("call stack exhausted"); the
 *                 trapping frame has no known module offset
 *   spin          busy-loops forever in wasm (no hostcalls)
 *   block         blocks forever in spear_epoll_wait(ep, ..., -1) on an empty epoll set
 *   sleep         blocks forever in sleep_ms(-1)
 *   malloc        mallocs 1 MiB blocks (touching each) until malloc returns NULL, prints
 *                 "allocated N MiB" on stdout and exits 42
 *   malloc-trap   the same, but traps (__builtin_trap) instead of exiting when malloc fails
 *   ok            logs "misbehave ok" and exits 0
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

/* Every block is kept on a list in a global, so the compiler cannot elide the mallocs. */
static void *volatile keep;

static int hog(void) {
    int mib = 0;
    for (;;) {
        char *p = (char *)malloc(1 << 20);
        if (p == NULL) {
            return mib;
        }
        memset(p, 0xA5, 1 << 20);
        *(void **)p = keep;
        keep = p;
        mib++;
    }
}

/*
 * Not a tail call (the result is used) and not foldable (volatile), so the wasm stack grows;
 * the stack runs out long before n could wrap around to the exit.
 */
static volatile int depth;
__attribute__((noinline)) static int recurse(int n) {
    depth = n;
    if (n <= 0) {
        return 0;
    }
    return recurse(n + 1) * 3 + depth;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    if (strcmp(mode, "unreachable") == 0) {
        __builtin_trap();
    }
    if (strcmp(mode, "divzero") == 0) {
        volatile int zero = 0;
        volatile int num = argc;
        return num / zero;
    }
    if (strcmp(mode, "recurse") == 0) {
        return recurse(argc);
    }
    if (strcmp(mode, "spin") == 0) {
        volatile uint64_t n = 0;
        for (;;) {
            n++;
        }
    }
    if (strcmp(mode, "block") == 0) {
        int32_t ep = sp_epoll_create();
        sp_epoll_event_t ev[4];
        uint32_t len = sizeof ev;
        int32_t rc = sp_epoll_wait(ep, SP__PTR(ev), SP__PTR(&len), -1);
        printf("epoll_wait returned %d\n", (int)rc);
        return 3;
    }
    if (strcmp(mode, "sleep") == 0) {
        sp_sleep_ms(-1);
        return 3;
    }
    if (strcmp(mode, "malloc") == 0 || strcmp(mode, "malloc-trap") == 0) {
        int mib = hog();
        printf("allocated %d MiB\n", mib);
        fflush(stdout);
        if (strcmp(mode, "malloc-trap") == 0) {
            __builtin_trap();
        }
        return 42;
    }
    if (strcmp(mode, "ok") == 0) {
        sp_log_str(SP_LOG_INFO, "misbehave ok");
        return 0;
    }
    fprintf(stderr, "misbehave: unknown mode %s\n", mode);
    return 2;
}
