/*
 * entries: the guest of tests/entries_test.ts, one source built four ways (see the `//! wasm`
 * lines, read by guests/build.sh):
 *   entries_reactor            reactor (-mexec-model=reactor), exports its memory
 *   entries_reactor_imported   reactor importing its memory as env.memory
 *   entries_reactor_bigmem     as above, declaring a 32 MiB minimum (for the memory-limit cap)
 *   entries_command_imported   WASI command importing its memory (main below)
 *
 * Skill-style exports: alloc/dealloc (they log "alloc SIZE" / "dealloc SIZE" through spear.log,
 * so the test sees when they run and that hostcalls reach an imported memory), execute(input) returning
 * "init=N:" + the input upper-cased (N counts constructor runs: _initialize must run once),
 * typed exports for "values" outputs, and bad_output(mode) returning broken output pointers.
 */
//! wasm entries_reactor: -mexec-model=reactor
//! wasm entries_reactor_imported: -mexec-model=reactor -Wl,--import-memory
//! wasm entries_reactor_bigmem: -mexec-model=reactor -Wl,--import-memory -Wl,--initial-memory=33554432
//! wasm entries_command_imported: -Wl,--import-memory
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

#include <ctype.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* volatile: clang would otherwise run the constructor at compile time (init_count = 1 in the data
 * segment), and a second _initialize would go unseen. */
static volatile int32_t init_count;

__attribute__((constructor)) static void count_init(void) { init_count++; }

static void log_size(const char *what, int32_t size) {
    char line[32];
    snprintf(line, sizeof line, "%s %d", what, (int)size);
    sp_log_str(SP_LOG_INFO, line);
}

EXPORT("alloc") void *guest_alloc(int32_t size) {
    log_size("alloc", size);
    return malloc((size_t)size);
}

EXPORT("dealloc") void guest_dealloc(void *ptr, int32_t size) {
    log_size("dealloc", size);
    free(ptr);
}

EXPORT("execute") char *execute(const char *input) {
    size_t n = strlen(input);
    char *out = malloc(n + 32);
    if (!out) return NULL;
    int k = snprintf(out, 32, "init=%d:", (int)init_count);
    for (size_t i = 0; i < n; i++) out[k + i] = (char)toupper((unsigned char)input[i]);
    out[k + n] = 0;
    return out;
}

/* Every argument lands in a different part of the sum, so a mis-decoded one changes it. */
EXPORT("mix") double mix(int32_t a, int64_t b, float c, double d) {
    return (double)a + (double)b + (double)c + d;
}

EXPORT("i64_of") int64_t i64_of(int32_t x) { return (int64_t)x * 4294967296LL + 1; }

EXPORT("f32_half") float f32_half(float x) { return x / 2; }

EXPORT("bad_output") int32_t bad_output(int32_t mode) {
    uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536u;
    switch (mode) {
    case 0: /* a negative pointer */
        return -8;
    case 1: /* past the end of memory */
        return (int32_t)(end + 16);
    case 2: { /* no NUL before the end of memory */
        char *tail = (char *)(uintptr_t)(end - 64);
        memset(tail, 'x', 64);
        return (int32_t)(uintptr_t)tail;
    }
    default: { /* terminated, but longer than the host's 16 MiB bound */
        size_t n = (16u << 20) + 100;
        char *big = malloc(n + 1);
        if (!big) return 0;
        memset(big, 'a', n);
        big[n] = 0;
        return (int32_t)(uintptr_t)big;
    }
    }
}

/* Only the command build runs this. It cannot use WASI stdio: with an imported memory, Wasmtime's
 * WASI finds no exported "memory" to read from; spear.log is the host's and reads any memory. */
int main(void) {
    char *text = execute("command");
    sp_log_str(SP_LOG_INFO, text);
    return 7;
}
