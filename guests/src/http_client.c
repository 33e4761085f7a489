/*
 * http_client: an HTTP/1.1 client on the socket imports (seed 003's "HTTP client built on the
 * socket API").
 *
 *   http_client HOST:PORT PATH        e.g. http_client 127.0.0.1:8000 /index.html
 *
 * Sends one GET with Host and Connection: close, reads the response to the end, decodes a
 * Content-Length, chunked or read-to-close body, writes the body to stdout and logs the status
 * line and body length. Exit code 0 for a 2xx status, 1 otherwise. The name in HOST is resolved
 * by the host and must be allowed by the config's net.allow.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

#define MAX_RESPONSE (64u << 20)

typedef struct {
    uint8_t *data;
    uint32_t len;
    uint32_t cap;
} buffer_t;

/* Reads the whole response (the server closes: Connection: close). */
static int read_all(int32_t fd, buffer_t *b) {
    for (;;) {
        if (b->cap - b->len < 65536) {
            uint32_t cap = b->cap ? b->cap * 2 : 131072;
            if (cap > MAX_RESPONSE) {
                return -SPEAR_ENOMEM;
            }
            uint8_t *bigger = (uint8_t *)realloc(b->data, cap);
            if (bigger == NULL) {
                return -SPEAR_ENOMEM;
            }
            b->data = bigger;
            b->cap = cap;
        }
        int32_t n = sp_sock_recv_buf(fd, b->data + b->len, b->cap - b->len);
        if (n < 0) {
            return n;
        }
        if (n == 0) {
            return 0;
        }
        b->len += (uint32_t)n;
    }
}

static const char *find(const uint8_t *hay, uint32_t len, const char *needle) {
    size_t n = strlen(needle);
    for (uint32_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return (const char *)hay + i;
        }
    }
    return NULL;
}

/* Case-insensitive header lookup inside the header block; returns the value start or NULL. */
static const char *header(const char *head, const char *end, const char *name) {
    size_t n = strlen(name);
    for (const char *line = head; line && line < end; line = strstr(line, "\r\n")) {
        line += (line[0] == '\r') ? 2 : 0;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') {
                v++;
            }
            return v;
        }
    }
    return NULL;
}

/* Decodes a chunked body in place; returns its length or -1 when malformed. */
static int64_t unchunk(uint8_t *body, uint32_t len) {
    uint32_t in = 0, out = 0;
    for (;;) {
        char *end;
        unsigned long size = strtoul((const char *)body + in, &end, 16);
        const char *crlf = find(body + in, len - in, "\r\n");
        if (crlf == NULL || end == (char *)body + in) {
            return -1;
        }
        in = (uint32_t)((const uint8_t *)crlf - body) + 2;
        if (size == 0) {
            return out;
        }
        if (in + size + 2 > len) {
            return -1;
        }
        memmove(body + out, body + in, size);
        out += (uint32_t)size;
        in += (uint32_t)size + 2;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        sp_infof("usage: http_client HOST:PORT PATH");
        return 2;
    }
    const char *addr = argv[1], *path = argv[2];
    int32_t fd = sp_sock_create(addr[0] == '[' ? SPEAR_AF_INET6 : SPEAR_AF_INET, SPEAR_SOCK_STREAM);
    int32_t rc = fd < 0 ? fd : sp_sock_connect_str(fd, addr);
    if (rc < 0) {
        sp_errorf("http_client: connect %s: %d", addr, (int)rc);
        return 1;
    }
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: spearhost-http-client\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     path, addr);
    if (n <= 0 || (size_t)n >= sizeof request || sp_sock_send_all(fd, request, (uint32_t)n) < 0) {
        sp_errorf("http_client: cannot send the request");
        return 1;
    }
    sp_sock_shutdown(fd, SPEAR_SHUT_WR);
    buffer_t response = {0};
    rc = read_all(fd, &response);
    sp_sock_close(fd);
    const char *head_end = rc == 0 ? find(response.data, response.len, "\r\n\r\n") : NULL;
    if (head_end == NULL) {
        sp_errorf("http_client: no complete response (%d)", (int)rc);
        return 1;
    }
    char *head = (char *)response.data;
    uint8_t *body = (uint8_t *)head_end + 4;
    uint32_t body_len = response.len - (uint32_t)(body - response.data);
    int status = 0;
    sscanf(head, "HTTP/%*d.%*d %d", &status);
    const char *te = header(head, head_end, "Transfer-Encoding");
    const char *cl = header(head, head_end, "Content-Length");
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        int64_t decoded = unchunk(body, body_len);
        if (decoded < 0) {
            sp_errorf("http_client: malformed chunked body");
            return 1;
        }
        body_len = (uint32_t)decoded;
    } else if (cl) {
        uint32_t want = (uint32_t)strtoul(cl, NULL, 10);
        if (want > body_len) {
            sp_errorf("http_client: body cut short: %u of %u bytes", body_len, want);
            return 1;
        }
        body_len = want;
    }
    fwrite(body, 1, body_len, stdout);
    fflush(stdout);
    sp_infof("status %d, %u body bytes", status, body_len);
    free(response.data);
    return status >= 200 && status < 300 ? 0 : 1;
}
