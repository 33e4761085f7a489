/* AUTO_TOOL_CALL: the model calls sum(a, b), a function of this guest, through the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static uint8_t tool_arena[128 * 1024];

/* Finds "key": <int> in a flat JSON object; 0 when absent. */
static long json_int(const char *json, const char *key) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) return 0;
    at = strchr(at + strlen(pattern), ':');
    return at ? strtol(at + 1, NULL, 10) : 0;
}

/* A tool: (args_ptr, args_len, out_ptr, out_len_ptr) -> 0 or -SPEAR_ENOSPC. */
static int32_t sum(int32_t args_ptr, int32_t args_len, int32_t out_ptr, int32_t out_len_ptr) {
    (void)args_len;
    const char *args = (const char *)(uintptr_t)args_ptr; /* NUL-terminated by the host */
    uint32_t *out_len = (uint32_t *)(uintptr_t)out_len_ptr;
    long a = json_int(args, "a"), b = json_int(args, "b");
    char result[64];
    int n = snprintf(result, sizeof result, "{\"sum\":%ld}", a + b);
    printf("sum invoked: a=%ld b=%ld sum=%ld cap=%u\n", a, b, a + b, *out_len);
    if ((uint32_t)n > *out_len) {
        *out_len = (uint32_t)n;
        return -SPEAR_ENOSPC;
    }
    memcpy((void *)(uintptr_t)out_ptr, result, (size_t)n);
    *out_len = (uint32_t)n;
    return 0;
}

int main(void) {
    int32_t fd = sp_cchat_create();
    sp_cchat_set_param_u32(fd, "tool_arena_ptr", (uint32_t)(uintptr_t)tool_arena);
    sp_cchat_set_param_u32(fd, "tool_arena_len", sizeof tool_arena);
    sp_cchat_set_param_u32(fd, "max_total_tool_calls", 4);
    sp_cchat_set_param_u32(fd, "max_iterations", 4);
    sp_cchat_set_param_string(fd, "model", "gpt-4o-mini");
    sp_cchat_write_msg_str(fd, "user", "Please call sum(a,b) for a=7 and b=35.");
    int32_t offset = (int32_t)(uintptr_t)&sum; /* a function pointer is its table index */
    printf("tool_fn_offset=%d\n", offset);
    int32_t rc = sp_cchat_write_fn_str(fd, offset,
        "{\"type\":\"function\",\"function\":{\"name\":\"sum\",\"description\":\"Add two integers\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
        "\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"]}}}");
    printf("cchat_write_fn_rc=%d\n", rc);
    int32_t resp = sp_cchat_send(fd, SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL);
    uint32_t len = 0;
    uint8_t *json = resp >= 0 ? sp_cchat_recv_alloc(resp, &len) : NULL;
    if (json != NULL) printf("chat response (%u bytes):\n%s\n", len, (const char *)json);
    free(json);
    sp_cchat_close(resp);
    sp_cchat_close(fd);
    return rc == 0 && json != NULL ? 0 : 1;
}
