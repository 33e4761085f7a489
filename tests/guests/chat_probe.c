/*
 * cchat test guest: argv[1] picks a scenario; results go to stdout as "key=value" lines
 * (fwrite, not the log) for tests/families/cchat/guest_test.ts to check.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t arena[64 * 1024];
static int tool_runs = 0;

static void out(const char *key, const char *value) { printf("%s=%s\n", key, value); }
static void outi(const char *key, long value) { printf("%s=%ld\n", key, value); }

static long json_int(const char *json, const char *key) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) return 0;
    at = strchr(at + strlen(pattern), ':');
    return at ? strtol(at + 1, NULL, 10) : 0;
}

/* sum(a, b) -> {"sum": a+b}; asks for more room once when the capacity is tiny. */
static int32_t sum(int32_t args_ptr, int32_t args_len, int32_t out_ptr, int32_t out_len_ptr) {
    (void)args_len;
    const char *args = (const char *)(uintptr_t)args_ptr;
    uint32_t *cap = (uint32_t *)(uintptr_t)out_len_ptr;
    char result[64];
    int n = snprintf(result, sizeof result, "{\"sum\":%ld}", json_int(args, "a") + json_int(args, "b"));
    tool_runs++;
    if ((uint32_t)n > *cap) {
        *cap = (uint32_t)n;
        return -SPEAR_ENOSPC;
    }
    memcpy((void *)(uintptr_t)out_ptr, result, (size_t)n);
    *cap = (uint32_t)n;
    return 0;
}

static int32_t failing_tool(int32_t a, int32_t b, int32_t c, int32_t d) {
    (void)a; (void)b; (void)c; (void)d;
    tool_runs++;
    return -7;
}

static int32_t set_json(int32_t fd, const char *json) {
    return sp_cchat_set_param_json(fd, json, (uint32_t)strlen(json));
}

static int32_t session(const char *question) {
    int32_t fd = sp_cchat_create();
    sp_cchat_write_msg_str(fd, "user", question);
    return fd;
}

static void print_response(int32_t resp) {
    uint32_t len = 0;
    uint8_t *json = sp_cchat_recv_alloc(resp, &len);
    out("response", json ? (const char *)json : "(null)");
    free(json);
}

static void add_tools(int32_t fd, int with_failing) {
    sp_cchat_set_param_u32(fd, "tool_arena_ptr", (uint32_t)(uintptr_t)arena);
    sp_cchat_set_param_u32(fd, "tool_arena_len", sizeof arena);
    sp_cchat_write_fn_str(fd, (int32_t)(uintptr_t)&sum,
        "{\"type\":\"function\",\"function\":{\"name\":\"sum\",\"parameters\":{\"type\":\"object\"}}}");
    if (with_failing)
        sp_cchat_write_fn_str(fd, (int32_t)(uintptr_t)&failing_tool,
            "{\"type\":\"function\",\"function\":{\"name\":\"broken\",\"parameters\":{\"type\":\"object\"}}}");
}

int main(int argc, char **argv) {
    const char *scenario = argc > 1 ? argv[1] : "basic";
    if (strcmp(scenario, "basic") == 0) {
        int32_t fd = session("Say hello");
        outi("set_model", sp_cchat_set_param_string(fd, "model", argc > 2 ? argv[2] : "gpt-test"));
        outi("set_temperature", set_json(fd, "{\"key\":\"temperature\",\"value\":0.25}"));
        outi("set_stream", set_json(fd, "{\"key\":\"stream\",\"value\":true}"));
        int32_t resp = sp_cchat_send(fd, SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS);
        outi("resp_fd", resp);
        print_response(resp);
        uint32_t len = 0;
        uint8_t *metrics = sp_cchat_get_metrics_alloc(resp, &len);
        out("metrics", metrics ? (const char *)metrics : "(null)");
        uint8_t *fdm = sp_fd_ctl_get_alloc(resp, SPEAR_FD_CTL_GET_METRICS, &len);
        out("fd_metrics", fdm ? (const char *)fdm : "(null)");
        /* recv is repeatable */
        print_response(resp);
    } else if (strcmp(scenario, "nonblock") == 0) {
        int32_t fd = session("slow please");
        int32_t resp = sp_cchat_send(fd, 0);
        outi("set_nonblock", sp_fd_set_nonblock(resp, 1));
        uint8_t buf[16];
        uint32_t len = sizeof buf;
        outi("recv_early", sp_cchat_recv(resp, SP__PTR(buf), SP__PTR(&len)));
        int32_t ep = sp_ep_create();
        outi("ep_add", sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, resp, SPEAR_EPOLLIN));
        sp_epoll_event_t ev[4];
        outi("wait_zero", sp_ep_wait_events(ep, ev, 4, 0));
        int32_t n = sp_ep_wait_events(ep, ev, 4, 5000);
        outi("wait_n", n);
        outi("wait_events", n > 0 ? ev[0].events : 0);
        len = 4;
        outi("recv_small", sp_cchat_recv(resp, SP__PTR(buf), SP__PTR(&len)));
        outi("needed", len);
        print_response(resp);
    } else if (strcmp(scenario, "tools") == 0 || strcmp(scenario, "tools_epoll") == 0) {
        int32_t fd = session("Please add 7 and 35");
        add_tools(fd, argc > 2 && strcmp(argv[2], "with_failing") == 0);
        if (argc > 3) sp_cchat_set_param_u32(fd, "max_iterations", (uint32_t)atoi(argv[3]));
        if (argc > 4) sp_cchat_set_param_u32(fd, "max_total_tool_calls", (uint32_t)atoi(argv[4]));
        int32_t resp = sp_cchat_send(fd, SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL | SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS);
        if (strcmp(scenario, "tools_epoll") == 0) {
            /* the tool must run while the guest is parked in spear_epoll_wait */
            int32_t ep = sp_ep_create();
            sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, resp, SPEAR_EPOLLIN);
            sp_epoll_event_t ev[4];
            outi("wait_n", sp_ep_wait_events(ep, ev, 4, 10000));
        }
        print_response(resp);
        outi("tool_runs", tool_runs);
        uint32_t len = 0;
        uint8_t *metrics = sp_cchat_get_metrics_alloc(resp, &len);
        out("metrics", metrics ? (const char *)metrics : "(null)");
        /* a second send continues the conversation, tool turns included */
        sp_cchat_write_msg_str(fd, "user", "thanks");
        int32_t resp2 = sp_cchat_send(fd, 0);
        print_response(resp2);
    } else if (strcmp(scenario, "cancel") == 0) {
        int32_t fd = session("never mind");
        int32_t resp = sp_cchat_send(fd, 0);
        sp_sleep_ms(100);
        outi("close", sp_cchat_close(resp));
        uint8_t buf[8];
        uint32_t len = sizeof buf;
        outi("recv_after_close", sp_cchat_recv(resp, SP__PTR(buf), SP__PTR(&len)));
        sp_sleep_ms(300);
    } else if (strcmp(scenario, "timeout") == 0) {
        int32_t fd = session("too slow");
        sp_cchat_set_param_u32(fd, "timeout_ms", 200);
        print_response(sp_cchat_send(fd, 0));
    } else if (strcmp(scenario, "bad") == 0) {
        int32_t fd = sp_cchat_create();
        uint8_t buf[64];
        uint32_t len;
        outi("malformed", set_json(fd, "{\"key\":"));
        outi("not_object", set_json(fd, "[1,2]"));
        outi("empty_key", set_json(fd, "{\"key\":\"\",\"value\":1}"));
        outi("mcp_task", set_json(fd, "{\"key\":\"mcp.task_policy\",\"value\":1}"));
        outi("bad_type", set_json(fd, "{\"key\":\"timeout_ms\",\"value\":\"soon\"}"));
        outi("unknown_key", set_json(fd, "{\"key\":\"frobnicate\",\"value\":{\"x\":1}}"));
        outi("bad_fn_json", sp_cchat_write_fn_str(fd, 1, "{not json"));
        outi("neg_offset", sp_cchat_write_fn_str(fd, -1, "{\"type\":\"function\"}"));
        outi("bad_role_ptr", sp_cchat_write_msg(fd, -1, 4, SP__PTR("hi"), 2));
        outi("bad_content_len", sp_cchat_write_msg(fd, SP__PTR("user"), 4, SP__PTR("hi"), 0x7fffffff));
        outi("write_msg_badfd", sp_cchat_write_msg_str(123, "user", "x"));
        len = sizeof buf;
        outi("recv_on_session", sp_cchat_recv(fd, SP__PTR(buf), SP__PTR(&len)));
        len = sizeof buf;
        outi("metrics_on_session", sp_cchat_ctl(fd, SPEAR_CCHAT_CTL_GET_METRICS, SP__PTR(buf), SP__PTR(&len)));
        len = sizeof buf;
        outi("unknown_cmd", sp_cchat_ctl(fd, 99, SP__PTR(buf), SP__PTR(&len)));
        outi("bad_len_ptr", sp_cchat_ctl(fd, SPEAR_CCHAT_CTL_SET_PARAM, SP__PTR(buf), -4));
        outi("send_badfd", sp_cchat_send(4242, 0));
        int32_t resp = sp_cchat_send(fd, 0);
        len = 1 << 20;
        outi("recv_bad_out", sp_cchat_recv(resp, -8, SP__PTR(&len)));
        print_response(resp); /* no messages: the backend's error, as JSON */
        outi("close", sp_cchat_close(fd));
        outi("close_again", sp_cchat_close(fd));
        outi("write_after_close", sp_cchat_write_msg_str(fd, "user", "x"));
    } else if (strcmp(scenario, "huge") == 0) {
        /* one user message of argv[2] bytes */
        size_t n = argc > 2 ? (size_t)atol(argv[2]) : 1000000;
        char *text = malloc(n + 1);
        if (text == NULL) return 3;
        memset(text, 'x', n);
        text[n] = 0;
        int32_t fd = sp_cchat_create();
        outi("write_huge", sp_cchat_write_msg(fd, SP__PTR("user"), 4, SP__PTR(text), (int32_t)n));
        free(text);
        int32_t resp = sp_cchat_send(fd, 0);
        uint32_t len = 0;
        uint8_t *json = sp_cchat_recv_alloc(resp, &len);
        outi("response_bytes", (long)len);
        /* the reply echoes the prompt: print only its head */
        if (json != NULL && len > 200) json[200] = 0;
        out("response_head", json ? (const char *)json : "(null)");
        free(json);
    } else if (strcmp(scenario, "many") == 0) {
        int n = argc > 2 ? atoi(argv[2]) : 16;
        int32_t ep = sp_ep_create(), done = 0;
        for (int i = 0; i < n; i++) {
            char q[32];
            snprintf(q, sizeof q, "q%d", i);
            sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, sp_cchat_send(session(q), 0), SPEAR_EPOLLIN);
        }
        while (done < n) {
            sp_epoll_event_t ev[8];
            int32_t r = sp_ep_wait_events(ep, ev, 8, 10000);
            if (r <= 0) break;
            for (int i = 0; i < r; i++) {
                sp_ep_ctl(ep, SPEAR_EPOLL_CTL_DEL, ev[i].fd, 0);
                done++;
            }
        }
        outi("done", done);
    }
    return 0;
}
