/*
 * local_llm test guest (tests/families/cchat/local_llm_test.ts): greedy sampling (temperature 0)
 * so the real model's answers repeat. Results go to stdout as "key=value" lines.
 *   llm_probe chat QUESTION MAX_TOKENS [QUESTION MAX_TOKENS …]   one request after another
 *   llm_probe tool                               sum(a, b) with AUTO_TOOL_CALL
 *   llm_probe mcp SERVER QUESTION                MCP with that server, AUTO_TOOL_CALL
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t arena[64 * 1024];

static long json_int(const char *json, const char *key) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) return 0;
    at = strchr(at + strlen(pattern), ':');
    return at ? strtol(at + 1, NULL, 10) : 0;
}

static int32_t sum(int32_t args_ptr, int32_t args_len, int32_t out_ptr, int32_t out_len_ptr) {
    (void)args_len;
    const char *args = (const char *)(uintptr_t)args_ptr;
    long a = json_int(args, "a"), b = json_int(args, "b");
    printf("tool=sum(%ld,%ld)\n", a, b);
    fflush(stdout);
    int n = snprintf((char *)(uintptr_t)out_ptr, *(uint32_t *)(uintptr_t)out_len_ptr, "{\"sum\":%ld}", a + b);
    *(uint32_t *)(uintptr_t)out_len_ptr = (uint32_t)n;
    return 0;
}

static void ask(const char *question, const char *max_tokens, int flags, int with_tool) {
    int32_t fd = sp_cchat_create();
    sp_cchat_write_msg_str(fd, "user", question);
    const char *greedy = "{\"key\":\"temperature\",\"value\":0}";
    sp_cchat_set_param_json(fd, greedy, (uint32_t)strlen(greedy));
    sp_cchat_set_param_u32(fd, "max_tokens", (uint32_t)atoi(max_tokens));
    sp_cchat_set_param_u32(fd, "timeout_ms", 240000);
    if (with_tool) {
        sp_cchat_set_param_u32(fd, "tool_arena_ptr", (uint32_t)(uintptr_t)arena);
        sp_cchat_set_param_u32(fd, "tool_arena_len", sizeof arena);
        sp_cchat_set_param_u32(fd, "max_iterations", 2);
        sp_cchat_write_fn_str(fd, (int32_t)(uintptr_t)&sum,
            "{\"type\":\"function\",\"function\":{\"name\":\"sum\",\"description\":\"Add two integers\","
            "\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
            "\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"]}}}");
    }
    int32_t resp = sp_cchat_send(fd, flags);
    printf("sent=%d\n", resp);
    fflush(stdout);
    uint32_t len = 0;
    uint8_t *json = sp_cchat_recv_alloc(resp, &len);
    printf("response=%s\n", json ? (const char *)json : "(null)");
    fflush(stdout);
    free(json);
    sp_cchat_close(resp);
    sp_cchat_close(fd);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "chat";
    if (strcmp(mode, "mcp") == 0 && argc > 3) {
        int32_t fd = sp_cchat_create();
        char ids[128];
        snprintf(ids, sizeof ids, "{\"key\":\"mcp.server_ids\",\"value\":[\"%s\"]}", argv[2]);
        const char *enable = "{\"key\":\"mcp.enabled\",\"value\":true}";
        printf("set_enabled=%d\n", sp_cchat_set_param_json(fd, enable, (uint32_t)strlen(enable)));
        printf("set_servers=%d\n", sp_cchat_set_param_json(fd, ids, (uint32_t)strlen(ids)));
        sp_cchat_write_msg_str(fd, "user", argv[3]);
        int32_t resp = sp_cchat_send(fd, SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL);
        uint32_t len = 0;
        uint8_t *json = sp_cchat_recv_alloc(resp, &len);
        printf("response=%s\n", json ? (const char *)json : "(null)");
        free(json);
        return 0;
    }
    if (strcmp(mode, "tool") == 0) {
        ask("Please call sum(a,b) for a=7 and b=35.", "64", SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL, 1);
        return 0;
    }
    for (int i = 2; i + 1 < argc; i += 2) ask(argv[i], argv[i + 1], SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS, 0);
    return 0;
}
