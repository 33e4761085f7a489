/*
 * MCP filesystem tools, as SPEAR's mcp_fs sample: enable MCP for the session with server "fs",
 * allow only its read_* and list_* tools, and ask the model to read Cargo.toml through them.
 * The host runs the tool loop (AUTO_TOOL_CALL) and the MCP calls; the guest logs the answer.
 *
 * It imports exactly what SPEAR's binary imports — cchat_create, cchat_ctl, cchat_write_msg,
 * cchat_send, cchat_recv, cchat_close, log and WASI proc_exit — so it formats its own text:
 * with this wasi-libc, any printf-family call would also link fd_write, fd_seek and fd_close.
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#ifndef SP_OPENAI_MODEL
#define SP_OPENAI_MODEL "gpt-4o-mini"
#endif

/* A small text buffer: appends, cut at its size (every text here is far smaller). */
typedef struct {
    char text[512];
    size_t len;
} Text;

static void add(Text *t, const char *s) {
    size_t n = strlen(s);
    if (n > sizeof t->text - 1 - t->len) n = sizeof t->text - 1 - t->len;
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = '\0';
}

static void add_int(Text *t, long v) {
    char digits[24];
    int i = (int)sizeof digits - 1;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) digits[--i] = '-';
    add(t, digits + i);
}

static void say(const char *a, const char *b) {
    sp_log_str(SP_LOG_INFO, a);
    if (b != NULL) sp_log_str(SP_LOG_INFO, b);
}

/* SET_PARAM {"key": key, "value": value_json}; value_json is literal JSON. */
static int32_t set_json(int32_t fd, const char *key, const char *value_json) {
    Text t = {.len = 0};
    add(&t, "{\"key\":\"");
    add(&t, key);
    add(&t, "\",\"value\":");
    add(&t, value_json);
    add(&t, "}");
    return sp_cchat_set_param_json(fd, t.text, (uint32_t)t.len);
}

static int fail(int32_t fd, const char *what, int32_t rc) {
    Text t = {.len = 0};
    add(&t, what);
    add(&t, " failed: ");
    add_int(&t, rc);
    say(t.text, NULL);
    if (fd >= 0) sp_cchat_close(fd);
    return 1;
}

int main(void) {
    int32_t fd = sp_cchat_create();
    if (fd < 0) return fail(-1, "cchat_create", fd);
    int32_t rc;
    if ((rc = set_json(fd, "model", "\"" SP_OPENAI_MODEL "\"")) != 0) return fail(fd, "set model", rc);
    if ((rc = set_json(fd, "timeout_ms", "30000")) != 0) return fail(fd, "set timeout_ms", rc);
    if ((rc = set_json(fd, "max_iterations", "6")) != 0) return fail(fd, "set max_iterations", rc);
    if ((rc = set_json(fd, "max_total_tool_calls", "6")) != 0) return fail(fd, "set max_total_tool_calls", rc);
    if ((rc = set_json(fd, "mcp.enabled", "true")) != 0) return fail(fd, "set mcp.enabled", rc);
    if ((rc = set_json(fd, "mcp.server_ids", "[\"fs\"]")) != 0) return fail(fd, "set mcp.server_ids", rc);
    if ((rc = set_json(fd, "mcp.tool_allowlist", "[\"read_*\",\"list_*\"]")) != 0) {
        return fail(fd, "set mcp.tool_allowlist", rc);
    }
    rc = sp_cchat_write_msg_str(fd, "user",
                                "Please use the MCP filesystem tools (server_id=fs). "
                                "Read the file path=\"Cargo.toml\" using the provided tool, "
                                "then reply with the first 5 lines of that file, and finally say: MCP_OK.");
    if (rc != 0) return fail(fd, "cchat_write_msg", rc);

    int32_t resp = sp_cchat_send(fd, AUTO_TOOL_CALL);
    if (resp < 0) return fail(fd, "cchat_send", resp);
    uint32_t len = 0;
    uint8_t *json = sp_cchat_recv_alloc(resp, &len);
    if (json == NULL) {
        sp_cchat_close(resp);
        return fail(fd, "cchat_recv", -1);
    }
    Text t = {.len = 0};
    add(&t, "response_bytes=");
    add_int(&t, (long)len);
    say(t.text, NULL);
    /* One record: the log import takes up to 16 KiB, so a long reply is cut there, not here. */
    size_t prefix = strlen("response_json=");
    char *line = malloc(prefix + len + 1);
    if (line != NULL) {
        memcpy(line, "response_json=", prefix);
        memcpy(line + prefix, json, len + 1);
        say(line, NULL);
        free(line);
    }
    free(json);
    sp_cchat_close(resp);
    sp_cchat_close(fd);
    return 0;
}
