/*
 * epoll_guest: a reactor (no main) whose exports the benches call repeatedly through the real
 * `spear` imports, so each measurement is what a guest sees: wasm -> Wasmtime -> the host's
 * hostcall binding -> TypeScript, and back.
 *   bench_epoll_create()                  -> epfd
 *   bench_epoll_add(epfd, first, count)   ADDs fds first..first+count-1 for SPEAR_EPOLLIN
 *   bench_epoll_wait(epfd, iters, max)    iters x spear_epoll_wait(timeout 0); total records
 *   bench_time_now(iters)                 iters x time_now_ms (the trivial hostcall)
 * Built as a reactor (bench/guests/reactor/) by guests/build.sh into guests/build/bench/.
 */
#include "spear.h"

#define MAX_EVENTS 2048

static sp_epoll_event_t events[MAX_EVENTS];

__attribute__((export_name("bench_epoll_create"))) int32_t bench_epoll_create(void) {
    return sp_epoll_create();
}

__attribute__((export_name("bench_epoll_add"))) int32_t bench_epoll_add(int32_t epfd, int32_t first,
                                                                        int32_t count) {
    for (int32_t i = 0; i < count; i++) {
        int32_t rc = sp_epoll_ctl(epfd, SPEAR_EPOLL_CTL_ADD, first + i, SPEAR_EPOLLIN);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

__attribute__((export_name("bench_epoll_wait"))) int32_t bench_epoll_wait(int32_t epfd, int32_t iters,
                                                                          int32_t max_events) {
    if (max_events <= 0 || max_events > MAX_EVENTS) {
        return -SPEAR_EINVAL;
    }
    int32_t total = 0;
    for (int32_t i = 0; i < iters; i++) {
        int32_t n = sp_ep_wait_events(epfd, events, (uint32_t)max_events, 0);
        if (n < 0) {
            return n;
        }
        total += n;
    }
    return total;
}

__attribute__((export_name("bench_time_now"))) int64_t bench_time_now(int32_t iters) {
    int64_t acc = 0;
    for (int32_t i = 0; i < iters; i++) {
        acc ^= sp_time_now_ms();
    }
    return acc;
}
