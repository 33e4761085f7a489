/*
 * redis_client: talks RESP (the Redis protocol) to a real Redis server over a socket.
 *
 *   redis_client HOST:PORT KEY VALUE
 *
 * Sends PING, SET KEY VALUE, GET KEY, INCR KEY:counter twice, DEL KEY and writes each reply on
 * stdout as "COMMAND -> reply" (simple strings, errors, integers, bulk strings and nil).
 * Exit code 0 when every reply came and none was an error.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

/* A buffered reader over the socket. */
typedef struct {
    int32_t fd;
    char buf[8192];
    uint32_t start, end;
} reader_t;

static int fill(reader_t *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == sizeof r->buf) {
        return -SPEAR_ENOSPC;
    }
    int32_t n = sp_sock_recv_buf(r->fd, r->buf + r->end, (uint32_t)(sizeof r->buf - r->end));
    if (n == 0) {
        return -SPEAR_ECONNRESET; /* the server went away mid-reply */
    }
    if (n > 0) {
        r->end += (uint32_t)n;
    }
    return n;
}

/* Reads one CRLF-terminated line (without CRLF) into out. */
static int read_line(reader_t *r, char *out, size_t cap) {
    for (;;) {
        for (uint32_t i = r->start; i + 1 < r->end; i++) {
            if (r->buf[i] == '\r' && r->buf[i + 1] == '\n') {
                size_t len = i - r->start;
                if (len >= cap) {
                    return -SPEAR_ENOSPC;
                }
                memcpy(out, r->buf + r->start, len);
                out[len] = 0;
                r->start = i + 2;
                return (int)len;
            }
        }
        int rc = fill(r);
        if (rc < 0) {
            return rc;
        }
    }
}

/* Reads exactly n bytes plus the trailing CRLF into out. */
static int read_exact(reader_t *r, char *out, size_t n) {
    while (r->end - r->start < n + 2) {
        int rc = fill(r);
        if (rc < 0) {
            return rc;
        }
    }
    memcpy(out, r->buf + r->start, n);
    out[n] = 0;
    r->start += (uint32_t)n + 2;
    return 0;
}

/* Sends a command as a RESP array of bulk strings. */
static int send_command(int32_t fd, int argc, const char **argv) {
    char out[4096];
    int len = snprintf(out, sizeof out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        len += snprintf(out + len, sizeof out - (size_t)len, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
        if ((size_t)len >= sizeof out) {
            return -SPEAR_ENOSPC;
        }
    }
    return sp_sock_send_all(fd, out, (uint32_t)len);
}

/* Reads one reply and prints it; returns 0, 1 for a server error, or -errno. */
static int print_reply(reader_t *r, const char *what) {
    char line[1024];
    int rc = read_line(r, line, sizeof line);
    if (rc < 0) {
        return rc;
    }
    switch (line[0]) {
    case '+':
        printf("%s -> %s\n", what, line + 1);
        return 0;
    case '-':
        printf("%s -> error %s\n", what, line + 1);
        return 1;
    case ':':
        printf("%s -> (integer) %s\n", what, line + 1);
        return 0;
    case '$': {
        long n = strtol(line + 1, NULL, 10);
        if (n < 0) {
            printf("%s -> (nil)\n", what);
            return 0;
        }
        char *value = (char *)malloc((size_t)n + 1);
        if (value == NULL || (rc = read_exact(r, value, (size_t)n)) < 0) {
            free(value);
            return rc < 0 ? rc : -SPEAR_ENOMEM;
        }
        printf("%s -> \"%s\"\n", what, value);
        free(value);
        return 0;
    }
    default:
        printf("%s -> unexpected reply %s\n", what, line);
        return 1;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        sp_infof("usage: redis_client HOST:PORT KEY VALUE");
        return 2;
    }
    reader_t r = {0};
    r.fd = sp_sock_create(argv[1][0] == '[' ? SPEAR_AF_INET6 : SPEAR_AF_INET, SPEAR_SOCK_STREAM);
    int rc = r.fd < 0 ? r.fd : sp_sock_connect_str(r.fd, argv[1]);
    if (rc < 0) {
        sp_errorf("redis_client: connect %s: %d", argv[1], rc);
        return 1;
    }
    sp_sock_setopt(r.fd, SPEAR_SO_RCVTIMEO_MS, 5000);
    char counter[256];
    snprintf(counter, sizeof counter, "%s:counter", argv[2]);
    const char *commands[][4] = {
        {"PING"},
        {"SET", argv[2], argv[3]},
        {"GET", argv[2]},
        {"INCR", counter},
        {"INCR", counter},
        {"DEL", argv[2], counter},
        {"GET", argv[2]},
    };
    const int counts[] = {1, 3, 2, 2, 2, 3, 2};
    int failed = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        rc = send_command(r.fd, counts[i], commands[i]);
        if (rc >= 0) {
            rc = print_reply(&r, commands[i][0]);
        }
        if (rc < 0) {
            sp_errorf("redis_client: %s: %d", commands[i][0], rc);
            return 1;
        }
        failed |= rc;
    }
    fflush(stdout);
    sp_sock_close(r.fd);
    return failed;
}
