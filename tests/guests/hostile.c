/*
 * The fault campaign's hostile guest: argv[1] picks an attack on the host; results go to
 * stdout as "key=value" lines for tests/system/limits_test.ts.
 *   bigmsg N MIB     cchat_write_msg N times with the same MIB-MiB content; prints the first failing rc
 *   bigparam N MIB   cchat SET_PARAM N times, each a new key with an MIB-MiB string value
 *   logs N           N log() calls; prints how many returned 0
 *   logflood         logs forever (a slow stderr must not defeat --timeout-ms)
 *   fds N            N fds watched by an epoll, then closed (held by the epoll)
 *   bigqueue         mic SET_PARAM asking for a 256 MiB queue
 *   poll_tool        AUTO_TOOL_CALL, then polls with epoll_wait(0) and non-blocking cchat_recv only
 *   close_in_tool    the tool closes its own response fd
 *   mic_big          mic frames of ~1 MiB: read some, report captured/read/dropped
 *   spin             burns CPU, printing a tick per 50 ms of wall time
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t arena[64 * 1024];
static int32_t response_fd = -1;
static int tool_runs = 0;

static void outi(const char *key, long value) { printf("%s=%ld\n", key, value); fflush(stdout); }

static int32_t sum_tool(int32_t args_ptr, int32_t args_len, int32_t out_ptr, int32_t out_len_ptr) {
    (void)args_ptr; (void)args_len;
    uint32_t *cap = (uint32_t *)(uintptr_t)out_len_ptr;
    const char *result = "{\"sum\":42}";
    tool_runs++;
    memcpy((void *)(uintptr_t)out_ptr, result, strlen(result));
    *cap = (uint32_t)strlen(result);
    return 0;
}

static int32_t closing_tool(int32_t args_ptr, int32_t args_len, int32_t out_ptr, int32_t out_len_ptr) {
    tool_runs++;
    sp_cchat_close(response_fd);
    return sum_tool(args_ptr, args_len, out_ptr, out_len_ptr);
}

static int32_t tool_session(int32_t (*tool)(int32_t, int32_t, int32_t, int32_t)) {
    int32_t fd = sp_cchat_create();
    sp_cchat_set_param_u32(fd, "tool_arena_ptr", (uint32_t)(uintptr_t)arena);
    sp_cchat_set_param_u32(fd, "tool_arena_len", sizeof arena);
    sp_cchat_write_fn_str(fd, (int32_t)(uintptr_t)tool,
        "{\"type\":\"function\",\"function\":{\"name\":\"sum\",\"parameters\":{\"type\":\"object\"}}}");
    sp_cchat_write_msg_str(fd, "user", "add 7 and 35");
    return fd;
}

static int nonblock(int32_t fd) {
    const char *json = "{\"set\":[\"O_NONBLOCK\"]}";
    uint32_t len = (uint32_t)strlen(json);
    return sp_fd_ctl(fd, SPEAR_FD_CTL_SET_FLAGS, (int32_t)(uintptr_t)json, (int32_t)(uintptr_t)&len);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "bigmsg") == 0) {
        int n = atoi(argv[2]);
        size_t size = (size_t)atoi(argv[3]) << 20;
        char *content = malloc(size);
        memset(content, 'k', size);
        int32_t fd = sp_cchat_create();
        int i = 0, rc = 0;
        for (; i < n; i++) {
            rc = sp_cchat_write_msg(fd, SP__PTR("user"), 4, SP__PTR(content), (int32_t)size);
            if (rc != 0) break;
        }
        outi("accepted", i);
        outi("rc", rc);
        /* The guest goes on after the refusal: the host is still there. */
        outi("after_close", sp_cchat_close(fd));
        outi("after_create", sp_cchat_create() >= 1000);
    } else if (strcmp(mode, "bigparam") == 0) {
        int n = atoi(argv[2]);
        size_t size = (size_t)atoi(argv[3]) << 20;
        char *json = malloc(size + 64);
        int32_t fd = sp_cchat_create();
        int i = 0, rc = 0;
        for (; i < n; i++) {
            int head = snprintf(json, 64, "{\"key\":\"k%d\",\"value\":\"", i);
            memset(json + head, 'v', size);
            memcpy(json + head + size, "\"}", 2);
            rc = sp_cchat_set_param_json(fd, json, (uint32_t)(head + size + 2));
            if (rc != 0) break;
        }
        outi("accepted", i);
        outi("rc", rc);
        /* Replacing one key again and again costs nothing more. */
        int same = 0;
        for (int j = 0; j < 20; j++) {
            int head = snprintf(json, 64, "{\"key\":\"k0\",\"value\":\"");
            memset(json + head, 'w', 1 << 20);
            memcpy(json + head + (1 << 20), "\"}", 2);
            if (sp_cchat_set_param_json(fd, json, (uint32_t)(head + (1 << 20) + 2)) == 0) same++;
        }
        outi("same_key", same);
    } else if (strcmp(mode, "logs") == 0) {
        int n = atoi(argv[2]), ok = 0;
        char line[64];
        for (int i = 0; i < n; i++) {
            int len = snprintf(line, sizeof line, "line %d", i);
            if (sp_log(SP_LOG_INFO, SP__PTR(line), len) == 0) ok++;
        }
        outi("ok", ok);
    } else if (strcmp(mode, "logflood") == 0) {
        char line[512];
        memset(line, 'x', sizeof line);
        for (;;) sp_log(SP_LOG_INFO, SP__PTR(line), sizeof line);
    } else if (strcmp(mode, "fds") == 0) {
        int n = atoi(argv[2]), made = 0, rc = 0;
        int32_t ep = sp_ep_create();
        for (; made < n; made++) {
            int32_t fd = sp_cchat_create();
            if (fd < 0) { rc = fd; break; }
            sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN);
            sp_cchat_close(fd);
        }
        outi("made", made);
        outi("rc", rc);
        uint8_t records[64];
        uint32_t len = sizeof records;
        outi("wait", sp_ep_wait(ep, SP__PTR(records), SP__PTR(&len), 0));
    } else if (strcmp(mode, "bigqueue") == 0) {
        int32_t fd = sp_mic_create();
        const char *json = "{\"source\":\"stub\",\"max_queue_bytes\":268435456}";
        outi("rc", sp_mic_set_param_json(fd, json, (uint32_t)strlen(json)));
    } else if (strcmp(mode, "poll_tool") == 0) {
        int32_t fd = tool_session(sum_tool);
        response_fd = sp_cchat_send(fd, AUTO_TOOL_CALL);
        int32_t ep = sp_ep_create();
        sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, response_fd, SPEAR_EPOLLIN);
        nonblock(response_fd);
        uint8_t records[64];
        static char buf[65536];
        long polls = 0;
        int32_t got = -1;
        for (; polls < 2000000 && got < 0; polls++) {
            uint32_t len = sizeof records;
            if (polls % 2 == 0) sp_ep_wait(ep, SP__PTR(records), SP__PTR(&len), 0);
            uint32_t cap = sizeof buf;
            int32_t rc = sp_cchat_recv(response_fd, SP__PTR(buf), SP__PTR(&cap));
            if (rc > 0) got = rc;
        }
        outi("tool_runs", tool_runs);
        outi("got", got > 0);
        if (got > 0) printf("response=%.*s\n", got, buf);
    } else if (strcmp(mode, "close_in_tool") == 0) {
        int32_t fd = tool_session(closing_tool);
        response_fd = sp_cchat_send(fd, AUTO_TOOL_CALL);
        static char buf[65536];
        uint32_t cap = sizeof buf;
        outi("recv", sp_cchat_recv(response_fd, SP__PTR(buf), SP__PTR(&cap)));
        outi("tool_runs", tool_runs);
        sp_sleep_ms(300); /* time for a second request to reach the server, if one were sent */
    } else if (strcmp(mode, "mic_big") == 0) {
        int32_t fd = sp_mic_create();
        /* 48 kHz x 8 channels x 1000 ms = 768000 bytes a frame */
        const char *json = "{\"source\":\"stub\",\"sample_rate_hz\":48000,\"channels\":8,\"frame_ms\":1000,"
                           "\"max_queue_bytes\":4000000}";
        outi("set", sp_mic_set_param_json(fd, json, (uint32_t)strlen(json)));
        static uint8_t frame[800000];
        int reads = 0;
        for (int tries = 0; tries < 40 && reads < 2; tries++) {
            uint32_t cap = sizeof frame;
            if (sp_mic_read(fd, SP__PTR(frame), SP__PTR(&cap)) > 0) reads++;
            else sp_sleep_ms(100);
        }
        outi("reads", reads);
        uint32_t len = 0;
        uint8_t *status = sp_fd_ctl_get_alloc(fd, SPEAR_FD_CTL_GET_METRICS, &len);
        if (status) printf("metrics=%.*s\n", (int)len, status);
    } else if (strcmp(mode, "spin") == 0) {
        int64_t start = sp_time_now_ms(), last = start;
        for (volatile unsigned long i = 0;; i++) {
            if ((i & 0xffff) == 0) {
                int64_t now = sp_time_now_ms();
                if (now - last >= 50) {
                    printf("tick=%lld\n", (long long)(now - start));
                    fflush(stdout);
                    last = now;
                }
            }
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
