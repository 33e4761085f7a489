/*
 * Many chat requests in flight at once: send N questions, then wait for the answers with
 * spear_epoll_wait and print each as it completes (in completion order).
 */
#include <stdio.h>
#include <stdlib.h>
#include "spear.h"

#define MAX_QUESTIONS 64

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > MAX_QUESTIONS) n = 4;
    int32_t ep = sp_ep_create();
    int32_t sessions[MAX_QUESTIONS];
    for (int i = 0; i < n; i++) {
        char question[64];
        snprintf(question, sizeof question, "question %d", i);
        sessions[i] = sp_cchat_create();
        sp_cchat_write_msg_str(sessions[i], "user", question);
        int32_t resp = sp_cchat_send(sessions[i], 0);
        if (resp < 0) {
            printf("cchat_send failed: %d\n", resp);
            return 1;
        }
        sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, resp, SPEAR_EPOLLIN);
    }
    printf("sent %d requests\n", n);
    int done = 0;
    while (done < n) {
        sp_epoll_event_t events[16];
        int32_t ready = sp_ep_wait_events(ep, events, 16, 10000);
        if (ready <= 0) {
            printf("epoll_wait returned %d\n", ready);
            return 1;
        }
        for (int i = 0; i < ready; i++) {
            uint32_t len = 0;
            uint8_t *json = sp_cchat_recv_alloc(events[i].fd, &len);
            printf("fd %d ready (events 0x%x): %s\n", events[i].fd, events[i].events,
                   json ? (const char *)json : "(recv failed)");
            free(json);
            sp_ep_ctl(ep, SPEAR_EPOLL_CTL_DEL, events[i].fd, 0);
            sp_cchat_close(events[i].fd);
            done++;
        }
    }
    for (int i = 0; i < n; i++) sp_cchat_close(sessions[i]);
    sp_ep_close(ep);
    printf("all %d answers received\n", n);
    return 0;
}
