/*
 * mic_dump: configures a mic fd with argv[1] (SET_PARAM JSON), reads up to argv[2] frames
 * through spear_epoll_wait and writes them raw to stdout (fwrite: not redirected to the log).
 * Options after that:
 *   sleep=MS     sleep this long after SET_PARAM before reading (overflow tests)
 *   wait=MS      epoll timeout per wait (default 5000)
 *   status_only  SET_PARAM, log the readiness and the status, exit (no reading)
 *   discard      read the frames but do not write them (benchmarks: stdout looks like a
 *                terminal, so it is line-buffered and raw audio would cost a write per newline)
 *   list         log LIST_DEVICES ("devices JSON") and exit
 * Logs (INFO): "set_param rc=N", "events=0xN" (after a failed SET_PARAM or status_only), "frames=N bytes=N end=REASON", "status JSON", "metrics JSON".
 * Exit: 0 when all frames were read or the source ended (HUP); 2 usage; 3 SET_PARAM failed;
 * 4 epoll timeout; 5 EPOLLERR; 6 LIST_DEVICES failed.
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t frame[256 * 1024];

static void log_json(int32_t fd, const char *what) {
    uint32_t len = 0;
    uint8_t *json = what[0] == 's' ? sp_mic_get_status_alloc(fd, &len)
                                   : sp_fd_ctl_get_alloc(fd, SPEAR_FD_CTL_GET_METRICS, &len);
    sp_logf(SP_LOG_INFO, "%s %s\n", what, json ? (const char *)json : "(failed)");
    free(json);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: mic_dump JSON FRAMES [sleep=MS] [wait=MS] [status_only] [discard] [list]\n");
        return 2;
    }
    const char *json = argv[1];
    int want = atoi(argv[2]);
    int sleep_ms = 0, wait_ms = 5000, status_only = 0, discard = 0, list = 0;
    for (int i = 3; i < argc; i++) {
        if (strncmp(argv[i], "sleep=", 6) == 0) sleep_ms = atoi(argv[i] + 6);
        else if (strncmp(argv[i], "wait=", 5) == 0) wait_ms = atoi(argv[i] + 5);
        else if (strcmp(argv[i], "status_only") == 0) status_only = 1;
        else if (strcmp(argv[i], "discard") == 0) discard = 1;
        else if (strcmp(argv[i], "list") == 0) list = 1;
    }

    int32_t fd = sp_mic_create();
    if (list) {
        uint32_t len = 0;
        uint8_t *devices = sp_mic_list_devices_alloc(fd, &len);
        sp_logf(SP_LOG_INFO, "devices %s\n", devices ? (const char *)devices : "(failed)");
        free(devices);
        return devices ? 0 : 6;
    }
    int32_t ep = sp_ep_create();
    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN);
    int32_t rc = sp_mic_set_param_json(fd, json, (uint32_t)strlen(json));
    printf("set_param rc=%d\n", rc);
    if (rc < 0 || status_only) {
        sp_epoll_event_t ev[1];
        int32_t n = sp_ep_wait_events(ep, ev, 1, 0);
        printf("events=0x%x\n", n == 1 ? (unsigned)ev[0].events : 0u);
        log_json(fd, "status");
        return rc < 0 ? 3 : 0;
    }
    if (sleep_ms > 0) sp_sleep_ms(sleep_ms);
    int frames = 0;
    long bytes = 0;
    const char *end = "count";
    int code = 0;
    while (frames < want) {
        sp_epoll_event_t ev[4];
        int32_t n = sp_ep_wait_events(ep, ev, 4, wait_ms);
        if (n <= 0) {
            end = "timeout";
            code = 4;
            break;
        }
        int32_t events = ev[0].events;
        if (events & SPEAR_EPOLLIN) {
            while (frames < want) {
                uint32_t len = sizeof frame;
                int32_t got = sp_mic_read(fd, (int32_t)(uintptr_t)frame, (int32_t)(uintptr_t)&len);
                if (got < 0) break; /* -EAGAIN: drained */
                if (!discard) fwrite(frame, 1, (size_t)got, stdout);
                frames++;
                bytes += got;
            }
            continue;
        }
        if (events & SPEAR_EPOLLERR) {
            end = "error";
            code = 5;
            break;
        }
        if (events & SPEAR_EPOLLHUP) {
            end = "hup";
            break;
        }
    }
    fflush(stdout);
    printf("frames=%d bytes=%ld end=%s\n", frames, bytes, end);
    log_json(fd, "status");
    log_json(fd, "metrics");
    sp_mic_close(fd);
    sp_ep_close(ep);
    return code;
}
