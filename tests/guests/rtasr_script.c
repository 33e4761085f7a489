/*
 * rtasr_script: drives one rtasr fd through the steps given as arguments, logging what each
 * returns, so the rtasr tests can script the fd from TypeScript. Steps:
 *   param KEY JSON        SET_PARAM {"key":KEY,"value":JSON}      logs "param rc=N"
 *   seg JSON              SET_AUTOFLUSH                           logs "seg rc=N"
 *   getseg                GET_AUTOFLUSH                           logs "autoflush JSON"
 *   connect               CONNECT                                 logs "connect rc=N"
 *   write N SEED          writes N bytes, byte i = (SEED + i) & 0xff, waiting for EPOLLOUT on
 *                         -EAGAIN (5 s)                           logs "write rc=N eagain=K"
 *   write1 N SEED         one rtasr_write, no retry               logs "write1 rc=N"
 *   flush | clear         FLUSH / CLEAR                           logs "flush rc=N"
 *   send JSON             SEND_EVENT                              logs "send rc=N"
 *   read TEXT MS          reads events until one contains TEXT (or MS pass, or HUP/ERR):
 *                         logs "event JSON" each, then "read end=found|timeout|hup|err"
 *   drain MS              reads everything for MS                 (same logs)
 *   small                 one read with a 4-byte buffer           logs "small rc=N need=N"
 *   mask                  epoll_wait(0) of the fd                 logs "mask 0xN"
 *   status                GET_STATUS                              logs "status JSON"
 *   metrics               spear_fd_ctl GET_METRICS                logs "metrics JSON"
 *   sleep MS
 *   close                 rtasr_close                             logs "close rc=N"
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t buf[1 << 20];
static uint8_t evbuf[1 << 20];

static void log_line(const char *prefix, const char *text, uint32_t len) {
    static char line[(1 << 20) + 64];
    size_t p = strlen(prefix);
    memcpy(line, prefix, p);
    if (len > sizeof(line) - p - 1) len = (uint32_t)(sizeof(line) - p - 1);
    memcpy(line + p, text, len);
    sp_log(SP_LOG_INFO, (int32_t)(uintptr_t)line, (int32_t)(p + len > 16384 ? 16384 : p + len));
}

static int32_t ctl_in(int32_t fd, int32_t cmd, const char *json) {
    uint32_t len = json ? (uint32_t)strlen(json) : 0;
    if (json) memcpy(buf, json, len);
    return sp_rtasr_ctl(fd, cmd, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
}

static void ctl_out(int32_t fd, int32_t cmd, const char *label) {
    uint32_t len = sizeof(buf);
    int32_t rc = sp_rtasr_ctl(fd, cmd, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s ", label);
    if (rc < 0) {
        printf("%s rc=%d\n", label, rc);
        return;
    }
    log_line(prefix, (const char *)buf, len);
}

static int32_t mask_of(int32_t ep, int32_t fd, int32_t timeout) {
    sp_epoll_event_t ev[4];
    int32_t n = sp_ep_wait_events(ep, ev, 4, timeout);
    for (int32_t i = 0; i < n; i++) {
        if (ev[i].fd == fd) return ev[i].events;
    }
    return 0;
}

static void fill(uint8_t *p, int n, int seed) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)((seed + i) & 0xff);
}

/* Reads events until one contains `until` (NULL: none), `ms` pass, or HUP/ERR. */
static void read_events(int32_t ep, int32_t fd, const char *until, int ms) {
    int64_t deadline = sp_time_now_ms() + ms;
    const char *end = "timeout";
    for (;;) {
        int64_t left = deadline - sp_time_now_ms();
        if (left <= 0) break;
        int32_t m = mask_of(ep, fd, (int32_t)left);
        if (m & SPEAR_EPOLLIN) {
            uint32_t len = sizeof(evbuf);
            int32_t rc = sp_rtasr_read(fd, (int32_t)(uintptr_t)evbuf, (int32_t)(uintptr_t)&len);
            if (rc >= 0) {
                log_line("event ", (const char *)evbuf, (uint32_t)rc);
                evbuf[rc] = 0;
                if (until && strstr((const char *)evbuf, until)) {
                    end = "found";
                    break;
                }
                continue;
            }
            printf("read rc=%d\n", rc);
        }
        if (m & SPEAR_EPOLLERR) {
            end = "err";
            break;
        }
        if (m & SPEAR_EPOLLHUP) {
            end = "hup";
            break;
        }
    }
    printf("read end=%s\n", end);
}

int main(int argc, char **argv) {
    int32_t fd = sp_rtasr_create();
    int32_t ep = sp_ep_create();
    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN | SPEAR_EPOLLOUT | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    printf("fd=%d\n", fd);
    for (int i = 1; i < argc; i++) {
        const char *op = argv[i];
        if (strcmp(op, "param") == 0 && i + 2 < argc) {
            char json[4096];
            snprintf(json, sizeof(json), "{\"key\":\"%s\",\"value\":%s}", argv[i + 1], argv[i + 2]);
            printf("param rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_SET_PARAM, json));
            i += 2;
        } else if (strcmp(op, "seg") == 0 && i + 1 < argc) {
            printf("seg rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_SET_AUTOFLUSH, argv[++i]));
        } else if (strcmp(op, "getseg") == 0) {
            ctl_out(fd, SPEAR_RTA_CTL_GET_AUTOFLUSH, "autoflush");
        } else if (strcmp(op, "connect") == 0) {
            printf("connect rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_CONNECT, NULL));
        } else if ((strcmp(op, "write") == 0 || strcmp(op, "write1") == 0) && i + 2 < argc) {
            int n = atoi(argv[i + 1]), seed = atoi(argv[i + 2]);
            i += 2;
            uint8_t *data = malloc((size_t)n + 1);
            fill(data, n, seed);
            int32_t rc = sp_rtasr_write(fd, (int32_t)(uintptr_t)data, n);
            int eagain = 0;
            if (op[5] != '1') {
                int64_t deadline = sp_time_now_ms() + 5000;
                while (rc == -SPEAR_EAGAIN && sp_time_now_ms() < deadline) {
                    eagain++;
                    int32_t m = mask_of(ep, fd, 1000);
                    if (m & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) break;
                    if (m & SPEAR_EPOLLOUT) rc = sp_rtasr_write(fd, (int32_t)(uintptr_t)data, n);
                    if (m & SPEAR_EPOLLIN) {
                        /* keep the receive side moving; events are logged */
                        uint32_t len = sizeof(evbuf);
                        int32_t r = sp_rtasr_read(fd, (int32_t)(uintptr_t)evbuf, (int32_t)(uintptr_t)&len);
                        if (r >= 0) log_line("event ", (const char *)evbuf, (uint32_t)r);
                    }
                }
                printf("write rc=%d eagain=%d\n", rc, eagain);
            } else {
                printf("write1 rc=%d\n", rc);
            }
            free(data);
        } else if (strcmp(op, "flush") == 0) {
            printf("flush rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_FLUSH, NULL));
        } else if (strcmp(op, "clear") == 0) {
            printf("clear rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_CLEAR, NULL));
        } else if (strcmp(op, "send") == 0 && i + 1 < argc) {
            printf("send rc=%d\n", ctl_in(fd, SPEAR_RTA_CTL_SEND_EVENT, argv[++i]));
        } else if (strcmp(op, "read") == 0 && i + 2 < argc) {
            read_events(ep, fd, argv[i + 1], atoi(argv[i + 2]));
            i += 2;
        } else if (strcmp(op, "drain") == 0 && i + 1 < argc) {
            read_events(ep, fd, NULL, atoi(argv[++i]));
        } else if (strcmp(op, "small") == 0) {
            uint32_t len = 4;
            int32_t rc = sp_rtasr_read(fd, (int32_t)(uintptr_t)evbuf, (int32_t)(uintptr_t)&len);
            printf("small rc=%d need=%u\n", rc, len);
        } else if (strcmp(op, "mask") == 0) {
            printf("mask 0x%x\n", (unsigned)mask_of(ep, fd, 0));
        } else if (strcmp(op, "status") == 0) {
            ctl_out(fd, SPEAR_RTA_CTL_GET_STATUS, "status");
        } else if (strcmp(op, "metrics") == 0) {
            uint32_t len = 0;
            uint8_t *json = sp_fd_ctl_get_alloc(fd, SPEAR_FD_CTL_GET_METRICS, &len);
            if (json) log_line("metrics ", (const char *)json, len);
            free(json);
        } else if (strcmp(op, "sleep") == 0 && i + 1 < argc) {
            sp_sleep_ms(atoi(argv[++i]));
        } else if (strcmp(op, "close") == 0) {
            printf("close rc=%d\n", sp_rtasr_close(fd));
        } else {
            printf("unknown step %s\n", op);
            return 2;
        }
    }
    return 0;
}
