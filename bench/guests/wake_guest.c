/*
 * wake_guest: the guest half of bench/wake_latency.ts. argv: FD ROUNDS. Watches FD (made by the
 * bench's setup hook) and ROUNDS times: blocks in spear_epoll_wait(timeout -1); as soon as it
 * returns, calls the bench's own import `bench.woke(fd)` (the cheapest hostcall there is: no
 * fd lookup, no reply), which stamps the wake time, clears the readiness and tells the main
 * thread. Exit code 0, or 1 with a log line on any error.
 * A command (has main): it runs through runtime/instance.ts runGuest like any guest.
 */
#include "spear.h"

__attribute__((import_module("bench"), import_name("woke"))) int32_t bench_woke(int32_t fd);

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("usage: wake_guest FD ROUNDS\n");
        return 1;
    }
    int32_t fd = atoi(argv[1]);
    int32_t rounds = atoi(argv[2]);
    int32_t epfd = sp_epoll_create();
    if (epfd < 0 || sp_epoll_ctl(epfd, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN) < 0) {
        printf("wake_guest: epoll setup failed\n");
        return 1;
    }
    sp_epoll_event_t ev[4];
    for (int32_t i = 0; i < rounds; i++) {
        int32_t n = sp_ep_wait_events(epfd, ev, 4, -1);
        int32_t rc = bench_woke(fd);
        if (n != 1 || ev[0].fd != fd || rc < 0) {
            printf("wake_guest: round %d: wait returned %d, woke %d\n", (int)i, (int)n, (int)rc);
            return 1;
        }
    }
    return 0;
}
