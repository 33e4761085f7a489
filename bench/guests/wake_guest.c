/*
 * wake_guest: the guest half of bench/wake_latency.ts. argv: FD ROUNDS. Watches FD (made by the
 * bench's setup hook) and ROUNDS times: blocks in spear_epoll_wait(timeout -1); as soon as it
 * returns, calls spear_fd_ctl(FD, GET_METRICS), whose bench hook stamps the wake time, clears
 * the readiness and tells the main thread. Exit code 0, or 1 with a log line on any error.
 * A command (has main): it runs through runtime/instance.ts runGuest like any guest.
 */
#include "spear.h"

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
    char metrics[256];
    for (int32_t i = 0; i < rounds; i++) {
        int32_t n = sp_ep_wait_events(epfd, ev, 4, -1);
        uint32_t len = sizeof metrics;
        int32_t rc = sp_fd_ctl(fd, SPEAR_FD_CTL_GET_METRICS, SP__PTR(metrics), SP__PTR(&len));
        if (n != 1 || ev[0].fd != fd || rc < 0) {
            printf("wake_guest: round %d: wait returned %d, fd_ctl %d\n", (int)i, (int)n, (int)rc);
            return 1;
        }
    }
    return 0;
}
