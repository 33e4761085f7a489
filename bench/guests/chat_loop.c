/*
 * Chat bench guest: argv[1] = "seq" (K send+recv round trips one after another) or "par"
 * (K sends at once, answers collected with spear_epoll_wait and read); argv[2] = K; argv[3] =
 * earlier turns of the conversation (see `conversation`, default 0). Every answer is read and
 * must be a completion (exit 1 otherwise). It runs the whole workload once untimed (warm-up:
 * drivers started, code optimized), then once timed with the monotonic clock, and prints
 * `elapsed_us=N` — the guest's own view, free of worker start-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "spear.h"

#define MAX_PAR 1024

/* argv[3] > 0: one session holding that many earlier turns of 1 KiB and the question, sent
 * again for every request, as a tool loop resends its history (0: a session per request). */
static int32_t conversation = -1;

static int32_t ask(const char *text) {
    if (conversation >= 0) return sp_cchat_send(conversation, 0);
    int32_t fd = sp_cchat_create();
    sp_cchat_write_msg_str(fd, "user", text);
    int32_t resp = sp_cchat_send(fd, 0);
    sp_cchat_close(fd);
    return resp;
}

/* Reads a response as a guest does and checks it is a completion, not an error object: a
 * bench that times failures would look fast. */
static int take(int32_t resp) {
    static uint8_t buf[1 << 16];
    uint32_t len = sizeof buf;
    if (sp_cchat_recv(resp, SP__PTR(buf), SP__PTR(&len)) < 0) return 1;
    if (len < 2 || memcmp(buf, "{\"error\"", len < 8 ? len : 8) == 0) {
        printf("chat_loop: not a completion: %.*s\n", (int)(len < 200 ? len : 200), (const char *)buf);
        return 1;
    }
    return 0;
}

static int sequential(int k) {
    for (int i = 0; i < k; i++) {
        int32_t resp = ask("ping");
        if (take(resp) != 0) return 1;
        sp_cchat_close(resp);
    }
    return 0;
}

static int concurrent(int k) {
    int32_t ep = sp_ep_create();
    for (int i = 0; i < k; i++) sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, ask("ping"), SPEAR_EPOLLIN);
    for (int done = 0; done < k;) {
        sp_epoll_event_t ev[64];
        int32_t n = sp_ep_wait_events(ep, ev, 64, 10000);
        if (n <= 0) return 1;
        for (int i = 0; i < n; i++) {
            if (take(ev[i].fd) != 0) return 1;
            sp_ep_ctl(ep, SPEAR_EPOLL_CTL_DEL, ev[i].fd, 0);
            sp_cchat_close(ev[i].fd);
        }
        done += n;
    }
    sp_epoll_close(ep);
    return 0;
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv) {
    int parallel = argc > 1 && strcmp(argv[1], "par") == 0;
    int k = argc > 2 ? atoi(argv[2]) : 10;
    int history = argc > 3 ? atoi(argv[3]) : 0;
    if (history > 0) {
        static char filler[1024];
        memset(filler, 'x', sizeof filler - 1);
        conversation = sp_cchat_create();
        for (int i = 0; i < history; i++) sp_cchat_write_msg_str(conversation, i % 2 ? "assistant" : "user", filler);
        sp_cchat_write_msg_str(conversation, "user", "ping");
    }
    if (k < 0 || k > MAX_PAR) return 2;
    int (*run)(int) = parallel ? concurrent : sequential;
    if (run(k) != 0) return 1;
    int64_t started = now_us();
    if (run(k) != 0) return 1;
    printf("elapsed_us=%lld\n", (long long)(now_us() - started));
    return 0;
}
