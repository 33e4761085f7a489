/*
 * echo_server: a TCP echo server handling many clients with one epoll loop.
 *
 *   echo_server ADDR [CLIENTS]      e.g. echo_server 127.0.0.1:7000 3
 *
 * Listens on ADDR (port 0 picks one; the address is logged as "listening on HOST:PORT"), echoes
 * every byte back to its client, and exits after CLIENTS clients have closed (0 or absent:
 * never). Everything is non-blocking: a client whose peer reads slowly keeps its unsent bytes
 * and is watched for EPOLLOUT (and not read meanwhile), so the server never blocks on one client
 * and never buffers more than one read per client.
 */
#include "spear.h"

#define MAX_CLIENTS 256
#define BUF_SIZE (256 * 1024)

typedef struct {
    int32_t fd;     /* 0 = free slot */
    uint8_t *buf;   /* bytes read and not yet echoed: buf[sent..len) */
    uint32_t len;
    uint32_t sent;
    int eof;        /* the client finished sending */
} client_t;

static client_t clients[MAX_CLIENTS];

static client_t *client_of(int32_t fd) {
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd == fd) {
            return &clients[i];
        }
    }
    return NULL;
}

static void drop(int32_t ep, client_t *c) {
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, c->fd, 0);
    sp_sock_close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* Sends what is pending; returns 1 when all is out, 0 when the peer's window is full, -1 on error. */
static int flush(client_t *c) {
    while (c->sent < c->len) {
        int32_t n = sp_sock_send(c->fd, SP__PTR(c->buf + c->sent), (int32_t)(c->len - c->sent));
        if (n == -SPEAR_EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return -1;
        }
        c->sent += (uint32_t)n;
    }
    c->len = c->sent = 0;
    return 1;
}

/* Handles readiness of one client; returns 1 when the client is finished. */
static int serve(int32_t ep, client_t *c, int32_t events) {
    if (c->len > c->sent) { /* still echoing: only EPOLLOUT matters */
        int rc = flush(c);
        if (rc < 0) {
            return 1;
        }
        if (rc == 0) {
            return 0;
        }
        sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, c->fd, SPEAR_EPOLLIN);
    }
    if (!(events & (SPEAR_EPOLLIN | SPEAR_EPOLLHUP | SPEAR_EPOLLERR)) && !c->eof) {
        return 0;
    }
    for (;;) {
        int32_t n = sp_sock_recv_buf(c->fd, c->buf, BUF_SIZE);
        if (n == -SPEAR_EAGAIN) {
            return 0;
        }
        if (n <= 0) {
            return 1; /* end of stream or error: everything read was echoed */
        }
        c->len = (uint32_t)n;
        c->sent = 0;
        int rc = flush(c);
        if (rc < 0) {
            return 1;
        }
        if (rc == 0) { /* wait for room before reading more */
            sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, c->fd, SPEAR_EPOLLOUT);
            return 0;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: echo_server ADDR [CLIENTS]\n");
        return 2;
    }
    int32_t max_served = argc > 2 ? atoi(argv[2]) : 0;
    int32_t domain = argv[1][0] == '[' ? SPEAR_AF_INET6 : SPEAR_AF_INET;
    int32_t lfd = sp_sock_create(domain, SPEAR_SOCK_STREAM);
    if (lfd < 0 || sp_sock_bind_str(lfd, argv[1]) < 0 || sp_sock_listen(lfd, 64) < 0) {
        printf("echo_server: cannot listen on %s (%d)\n", argv[1], (int)lfd);
        return 1;
    }
    char local[128];
    sp_sock_getaddr_str(lfd, SPEAR_SOCK_ADDR_LOCAL, local, sizeof local);
    printf("listening on %s\n", local);
    sp_fd_set_nonblock(lfd, 1);
    int32_t ep = sp_epoll_create();
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, lfd, SPEAR_EPOLLIN);

    int32_t served = 0;
    sp_epoll_event_t events[64];
    while (max_served == 0 || served < max_served) {
        int32_t n = sp_ep_wait_events(ep, events, 64, -1);
        for (int32_t i = 0; i < n; i++) {
            if (events[i].fd == lfd) {
                int32_t cfd;
                while ((cfd = sp_sock_accept(lfd, 0, 0)) >= 0) {
                    client_t *slot = client_of(0);
                    if (slot == NULL) { /* full: refuse by closing */
                        sp_sock_close(cfd);
                        continue;
                    }
                    slot->fd = cfd;
                    slot->buf = (uint8_t *)malloc(BUF_SIZE);
                    sp_fd_set_nonblock(cfd, 1);
                    sp_sock_setopt(cfd, SPEAR_SO_NODELAY, 1);
                    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, cfd, SPEAR_EPOLLIN);
                }
                continue;
            }
            client_t *c = client_of(events[i].fd);
            if (c != NULL && serve(ep, c, events[i].events)) {
                drop(ep, c);
                served++;
            }
        }
    }
    printf("served %d clients\n", (int)served);
    return 0;
}
