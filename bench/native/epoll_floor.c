/*
 * epoll_floor: the native floor for spear_epoll_wait. Measures Linux epoll_wait(timeout 0) over
 * 1, 64 and 1024 ready eventfds and over 10 000 idle eventfds plus 1 ready, and prints one line
 * per case: `native epoll_wait ready=R idle=I: N ns/call`.
 *
 * Built twice by bench/support/native.ts with gcc -O2: as a program (run by epoll_bench.ts,
 * which prints its output) and as a shared library whose floor_epoll_* functions the Deno
 * bench calls through FFI as the in-run baseline of each group.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SETS 16

static struct {
    int epfd;
    int *fds;
    int count;
} sets[MAX_SETS];

static struct epoll_event events[2048];

/* An epoll set watching `ready` readable eventfds and `idle` silent ones; returns the epfd or -1. */
int floor_epoll_setup(int ready, int idle) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    int slot = -1;
    for (int i = 0; i < MAX_SETS; i++) {
        if (sets[i].fds == NULL) {
            slot = i;
            break;
        }
    }
    if (slot < 0) return -1;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) return -1;
    int total = ready + idle;
    int *fds = calloc((size_t)total, sizeof(int));
    for (int i = 0; i < total; i++) {
        fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[i] < 0) return -1;
        if (i < ready) {
            uint64_t one = 1;
            if (write(fds[i], &one, sizeof one) != sizeof one) return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) return -1;
    }
    sets[slot].epfd = epfd;
    sets[slot].fds = fds;
    sets[slot].count = total;
    return epfd;
}

/* Calls epoll_wait(timeout 0) `iters` times; returns the total number of events (or -1). */
int floor_epoll_wait(int epfd, int iters, int max_events) {
    if (max_events > (int)(sizeof events / sizeof events[0])) return -1;
    int total = 0;
    for (int i = 0; i < iters; i++) {
        int n = epoll_wait(epfd, events, max_events, 0);
        if (n < 0) return -1;
        total += n;
    }
    return total;
}

void floor_epoll_teardown(int epfd) {
    for (int i = 0; i < MAX_SETS; i++) {
        if (sets[i].fds != NULL && sets[i].epfd == epfd) {
            for (int j = 0; j < sets[i].count; j++) close(sets[i].fds[j]);
            free(sets[i].fds);
            sets[i].fds = NULL;
            close(epfd);
        }
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void) {
    static const int cases[][2] = {{1, 0}, {64, 0}, {1024, 0}, {1, 10000}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int ready = cases[c][0], idle = cases[c][1];
        int epfd = floor_epoll_setup(ready, idle);
        if (epfd < 0) {
            perror("epoll_floor: setup");
            return 1;
        }
        int max = ready < 1024 ? 1024 : ready;
        floor_epoll_wait(epfd, 1000, max); /* warm up */
        double best = 1e30;
        for (int round = 0; round < 5; round++) { /* best of 5 rounds of 20 000 calls */
            int iters = 20000;
            double t0 = now_ns();
            int got = floor_epoll_wait(epfd, iters, max);
            double per = (now_ns() - t0) / iters;
            if (got != iters * ready) {
                fprintf(stderr, "epoll_floor: expected %d events per call, got %d in all\n", ready, got);
                return 1;
            }
            if (per < best) best = per;
        }
        printf("native epoll_wait ready=%d idle=%d: %.0f ns/call\n", ready, idle, best);
        floor_epoll_teardown(epfd);
    }
    return 0;
}
