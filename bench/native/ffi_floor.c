/*
 * ffi_floor: native halves of the hostcall floors, built by bench/support/native.ts with gcc
 * into a shared library that hostcall_bench.ts opens with Deno.dlopen.
 *   ffi_floor_loop      calls a Deno.UnsafeCallback `iters` times with the same C signature
 *                       as a Wasmtime unchecked host function (and, like Wasmtime, a non-null
 *                       caller): the bare FFI callback round trip.
 *   native_time_now_ms  a Wasmtime unchecked host function written in C: defined as the
 *                       guest's `spear.time_now_ms`, it measures wasm -> native with no JS.
 */
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef void *(*host_fn_t)(void *env, void *caller, void *args_and_results, size_t n);

static int32_t caller_stand_in;

int32_t ffi_floor_loop(host_fn_t fn, int32_t iters) {
    uint8_t raw[16] = {0};
    int32_t nulls = 0;
    for (int32_t i = 0; i < iters; i++) nulls += fn(NULL, &caller_stand_in, raw, 1) == NULL;
    return nulls;
}

void *native_time_now_ms(void *env, void *caller, void *args_and_results, size_t n) {
    (void)env;
    (void)caller;
    (void)n;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *(int64_t *)args_and_results = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return NULL;
}
