/*
 * sock_probe: the socket behaviours the tests in tests/families/sock/ check, one mode per row.
 * Prints `name=value` lines on stdout (values are hostcall results: -errno on failure) and exits
 * 0 unless the mode could not even set up. Most modes are self-contained over loopback: a
 * listener and a client in the same guest (the host accepts into the backlog on its own, so a
 * blocking connect to one's own listener completes before sock_accept).
 *
 *   sock_probe MODE [ARGS...]     modes: see `modes` at the end
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

static void put(const char *name, long value) {
    printf("%s=%ld\n", name, value);
    fflush(stdout);
}

static void put_str(const char *name, const char *value) {
    printf("%s=%s\n", name, value);
    fflush(stdout);
}

static int32_t tcp(void) { return sp_sock_create(SPEAR_AF_INET, SPEAR_SOCK_STREAM); }
static int32_t udp(void) { return sp_sock_create(SPEAR_AF_INET, SPEAR_SOCK_DGRAM); }

static int32_t connect_str(int32_t fd, const char *addr) { return sp_sock_connect_str(fd, addr); }
static int32_t bind_str(int32_t fd, const char *addr) { return sp_sock_bind_str(fd, addr); }

/* A TCP listener on 127.0.0.1 (port 0 = ephemeral); its address goes into addr. */
static int32_t listener(char *addr, size_t cap) {
    int32_t fd = tcp();
    if (fd < 0 || bind_str(fd, "127.0.0.1:0") < 0 || sp_sock_listen(fd, 16) < 0) {
        put("setup_failed", fd);
        exit(1);
    }
    sp_sock_getaddr_str(fd, SPEAR_SOCK_ADDR_LOCAL, addr, (uint32_t)cap);
    return fd;
}

/* A connected pair over loopback: *client connected to *server (accepted from a new listener). */
static void tcp_pair(int32_t *client, int32_t *server) {
    char addr[64];
    int32_t l = listener(addr, sizeof addr);
    *client = tcp();
    int32_t rc = connect_str(*client, addr);
    *server = sp_sock_accept(l, 0, 0);
    if (rc < 0 || *server < 0) {
        put("pair_failed", rc < 0 ? rc : *server);
        exit(1);
    }
    sp_sock_close(l);
}

static int32_t recv_n(int32_t fd, void *buf, uint32_t cap) { return sp_sock_recv_buf(fd, buf, cap); }

/* Reads until end of stream; returns the byte count or -errno. */
static long drain(int32_t fd) {
    static uint8_t buf[65536];
    long total = 0;
    for (;;) {
        int32_t n = recv_n(fd, buf, sizeof buf);
        if (n <= 0) {
            return n < 0 ? n : total;
        }
        total += n;
    }
}

static int32_t wait_events(int32_t fd, int32_t interest, int32_t timeout_ms) {
    int32_t ep = sp_epoll_create();
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, interest);
    sp_epoll_event_t ev[4];
    int32_t n = sp_ep_wait_events(ep, ev, 4, timeout_ms);
    sp_epoll_close(ep);
    return n > 0 ? ev[0].events : n;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

/* ------------------------------------------------------------------ TCP rows */

/* p2_tcp_states: what each call does in each state. */
static int tcp_states(void) {
    char buf[64];
    uint32_t len = sizeof buf;
    int32_t s = tcp();
    put("unbound_getaddr_local", sp_sock_getaddr_str(s, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf));
    put_str("unbound_local", buf);
    put("unbound_getaddr_peer", sp_sock_getaddr(s, SPEAR_SOCK_ADDR_PEER, SP__PTR(buf), SP__PTR(&len)));
    put("unbound_recv", recv_n(s, buf, sizeof buf));
    put("unbound_send", sp_sock_send_buf(s, "x", 1));
    put("unbound_accept", sp_sock_accept(s, 0, 0));
    put("unbound_shutdown", sp_sock_shutdown(s, SPEAR_SHUT_RDWR));
    put("unbound_events", wait_events(s, SPEAR_EPOLLIN | SPEAR_EPOLLOUT, 0));

    put("bound_bind", bind_str(s, "127.0.0.1:0"));
    put("bound_bind_again", bind_str(s, "127.0.0.1:0"));
    put("bound_getaddr_peer", sp_sock_getaddr(s, SPEAR_SOCK_ADDR_PEER, SP__PTR(buf), SP__PTR(&len)));
    put("bound_accept", sp_sock_accept(s, 0, 0));
    put("bound_recv", recv_n(s, buf, sizeof buf));

    put("listening_listen", sp_sock_listen(s, 8));
    put("listening_listen_again", sp_sock_listen(s, 16));
    put("listening_bind", bind_str(s, "127.0.0.1:0"));
    put("listening_connect", connect_str(s, "127.0.0.1:9"));
    put("listening_send", sp_sock_send_buf(s, "x", 1));
    put("listening_shutdown", sp_sock_shutdown(s, SPEAR_SHUT_RDWR));
    sp_fd_set_nonblock(s, 1);
    put("listening_accept_empty", sp_sock_accept(s, 0, 0));
    sp_sock_close(s);

    int32_t c, v;
    tcp_pair(&c, &v);
    put("connected_connect", connect_str(c, "127.0.0.1:9"));
    put("connected_bind", bind_str(c, "127.0.0.1:0"));
    put("connected_listen", sp_sock_listen(c, 8));
    put("connected_accept", sp_sock_accept(c, 0, 0));
    put("connected_getaddr_peer", sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_PEER, buf, sizeof buf) > 0);
    put("connected_events", wait_events(c, SPEAR_EPOLLIN | SPEAR_EPOLLOUT, 0));
    put("connected_shutdown", sp_sock_shutdown(c, SPEAR_SHUT_RDWR));
    put("connected_shutdown_again", sp_sock_shutdown(c, SPEAR_SHUT_RDWR));
    return 0;
}

/* p2_tcp_bind. */
static int tcp_bind(const char *busy_port_addr) {
    char buf[64];
    int32_t s = tcp();
    put("ephemeral", bind_str(s, "127.0.0.1:0"));
    sp_sock_getaddr_str(s, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("ephemeral_same_ip", strncmp(buf, "127.0.0.1:", 10) == 0);
    put("ephemeral_port_nonzero", atoi(buf + 10) > 0);
    sp_sock_close(s);

    s = tcp();
    put("specific", bind_str(s, busy_port_addr));
    sp_sock_getaddr_str(s, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("specific_matches", strcmp(buf, busy_port_addr) == 0);
    int32_t again = tcp();
    put("in_use", bind_str(again, busy_port_addr));
    sp_sock_close(again);
    sp_sock_close(s);

    /* SO_REUSEADDR across TIME_WAIT: the server side closes first, then the port is bound again. */
    char addr[64];
    int32_t l = tcp();
    sp_sock_setopt(l, SPEAR_SO_REUSEADDR, 1);
    bind_str(l, "127.0.0.1:0");
    sp_sock_listen(l, 4);
    sp_sock_getaddr_str(l, SPEAR_SOCK_ADDR_LOCAL, addr, sizeof addr);
    int32_t c = tcp();
    connect_str(c, addr);
    int32_t v = sp_sock_accept(l, 0, 0);
    sp_sock_close(v); /* active close: the server's end goes to TIME_WAIT */
    drain(c);
    sp_sock_close(c);
    sp_sock_close(l);
    sp_sleep_ms(50);
    s = tcp();
    sp_sock_setopt(s, SPEAR_SO_REUSEADDR, 1);
    put("reuseaddr_time_wait", bind_str(s, addr));
    sp_sock_close(s);

    s = tcp();
    put("not_local", bind_str(s, "192.0.2.1:0"));
    put("wrong_family", bind_str(s, "[::1]:0"));
    put("broadcast", bind_str(s, "255.255.255.255:0"));
    put("multicast", bind_str(s, "224.0.0.1:0"));
    put("bad_text", bind_str(s, "127.0.0.1"));
    put("bad_port", bind_str(s, "127.0.0.1:65536"));
    sp_sock_close(s);
    int32_t s6 = sp_sock_create(SPEAR_AF_INET6, SPEAR_SOCK_STREAM);
    put("v4_on_v6", bind_str(s6, "127.0.0.1:0"));
    put("v4mapped_on_v6", bind_str(s6, "[::ffff:127.0.0.1]:0"));
    put("v6_loopback", bind_str(s6, "[::1]:0"));
    sp_sock_getaddr_str(s6, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("v6_local_bracketed", strncmp(buf, "[::1]:", 6) == 0);
    return 0;
}

/* p2_tcp_connect. */
static int tcp_connect(const char *closed_addr) {
    char addr[64];
    int32_t l = listener(addr, sizeof addr);
    (void)l; /* kept open: connections to addr succeed */
    int32_t s = tcp();
    put("unspecified", connect_str(s, "0.0.0.0:80"));
    put("port_zero", connect_str(s, "127.0.0.1:0"));
    put("wrong_family", connect_str(s, "[::1]:80"));
    put("multicast", connect_str(s, "224.0.0.1:80"));
    put("broadcast", connect_str(s, "255.255.255.255:80"));
    put("bad_text", connect_str(s, "127.0.0.1:http"));
    put("refused", connect_str(s, closed_addr));
    put("error_after_refused", sp_sock_getopt(s, SPEAR_SO_ERROR));
    put("connect_after_refused", connect_str(s, addr));
    sp_sock_close(s);
    int32_t s6 = sp_sock_create(SPEAR_AF_INET6, SPEAR_SOCK_STREAM);
    put("v6_unspecified", connect_str(s6, "[::]:80"));
    put("v6_dual_stack", connect_str(s6, "[::ffff:127.0.0.1]:80"));
    /* An explicit bind before connect works. */
    int32_t b = tcp();
    put("bind_then_connect_bind", bind_str(b, "127.0.0.1:0"));
    put("bind_then_connect", connect_str(b, addr));
    char buf[64];
    put("bind_then_connect_local", sp_sock_getaddr_str(b, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf) > 0);
    put("connect_connected", connect_str(b, addr));
    /* A name is resolved by the host (localhost is loopback without DNS). */
    int32_t n = tcp();
    put("name_without_port", connect_str(n, "localhost"));
    char byname[80];
    snprintf(byname, sizeof byname, "localhost:%s", strrchr(addr, ':') + 1);
    put("localhost", connect_str(n, byname));
    return 0;
}

/* p2_tcp_listen: listen without bind binds the wildcard to an ephemeral port first (net.listen decides). */
static int tcp_listen(void) {
    int32_t s = tcp();
    put("listen_unbound", sp_sock_listen(s, 4));
    char buf[64];
    sp_sock_getaddr_str(s, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("listen_unbound_wildcard", strncmp(buf, "0.0.0.0:", 8) == 0 && atoi(buf + 8) > 0);
    int32_t u = udp();
    put("listen_udp", sp_sock_listen(u, 4));
    return 0;
}

/* p2_tcp_streams. */
static int tcp_streams(void) {
    int32_t c, v;
    uint8_t buf[256];
    uint32_t zero = 0;

    /* The peer's shutdown(write): every byte, then 0 (also for a zero-length read), EPOLLIN stays. */
    tcp_pair(&c, &v);
    sp_sock_send_buf(v, "abc", 3);
    put("remote_shutdown", sp_sock_shutdown(v, SPEAR_SHUT_WR));
    put("remote_read_data", recv_n(c, buf, sizeof buf));
    put("remote_read_eof", recv_n(c, buf, sizeof buf));
    put("remote_read_zero_cap", sp_sock_recv(c, SP__PTR(buf), SP__PTR(&zero)));
    put("remote_eof_events", wait_events(c, SPEAR_EPOLLIN, 0));
    put("write_after_remote_shutdown", sp_sock_send_buf(c, "x", 1));
    put("local_shutdown_write", sp_sock_shutdown(c, SPEAR_SHUT_WR));
    put("both_finished_events", wait_events(c, SPEAR_EPOLLIN, 0));
    sp_sock_close(c);
    sp_sock_close(v);

    /* shutdown(read) with data queued: dropped, reads are 0. */
    tcp_pair(&c, &v);
    sp_sock_send_buf(v, "queued", 6);
    sp_sleep_ms(50);
    put("local_shutdown_read", sp_sock_shutdown(c, SPEAR_SHUT_RD));
    put("read_after_shutdown_read", recv_n(c, buf, sizeof buf));
    put("send_after_shutdown_read", sp_sock_send_buf(c, "y", 1));
    sp_sock_close(c);
    sp_sock_close(v);

    /* shutdown(write): sends are -EPIPE; the peer reads every byte queued before it, then 0. */
    tcp_pair(&c, &v);
    static uint8_t big[4 << 20];
    for (uint32_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 13);
    }
    sp_fd_set_nonblock(c, 1);
    uint32_t sent = 0;
    long received = 0;
    uint64_t want = fnv1a(0xcbf29ce484222325ull, big, sizeof big), got = 0xcbf29ce484222325ull;
    static uint8_t in[65536];
    while (sent < sizeof big) { /* interleave: the peer must read for the sender to go on */
        int32_t n = sp_sock_send(c, SP__PTR(big + sent), (int32_t)(sizeof big - sent));
        if (n > 0) {
            sent += (uint32_t)n;
        }
        int32_t r = recv_n(v, in, sizeof in);
        if (r > 0) {
            got = fnv1a(got, in, (uint32_t)r);
            received += r;
        }
    }
    put("shutdown_during_write", sp_sock_shutdown(c, SPEAR_SHUT_WR));
    put("send_after_shutdown_write", sp_sock_send_buf(c, "z", 1));
    for (;;) {
        int32_t r = recv_n(v, in, sizeof in);
        if (r <= 0) {
            put("peer_end", r);
            break;
        }
        got = fnv1a(got, in, (uint32_t)r);
        received += r;
    }
    put("peer_received_all", received == (long)sizeof big && got == want);
    return 0;
}

/* p2_tcp_sockopts. */
static int tcp_sockopts(void) {
    int32_t s = tcp();
    put("default_rcvbuf_positive", sp_sock_getopt(s, SPEAR_SO_RCVBUF) > 0);
    put("default_sndbuf_positive", sp_sock_getopt(s, SPEAR_SO_SNDBUF) > 0);
    put("default_nodelay", sp_sock_getopt(s, SPEAR_SO_NODELAY));
    put("default_rcvtimeo", sp_sock_getopt(s, SPEAR_SO_RCVTIMEO_MS));
    put("zero_rcvbuf", sp_sock_setopt(s, SPEAR_SO_RCVBUF, 0));
    put("zero_sndbuf", sp_sock_setopt(s, SPEAR_SO_SNDBUF, 0));
    put("negative_timeout", sp_sock_setopt(s, SPEAR_SO_RCVTIMEO_MS, -1));
    put("unknown_option", sp_sock_setopt(s, 99, 1));
    put("set_error_option", sp_sock_setopt(s, SPEAR_SO_ERROR, 1));
    put("huge_rcvbuf", sp_sock_setopt(s, SPEAR_SO_RCVBUF, 0x7fffffff));
    put("huge_rcvbuf_clamped", sp_sock_getopt(s, SPEAR_SO_RCVBUF));
    put("tiny_sndbuf", sp_sock_setopt(s, SPEAR_SO_SNDBUF, 1));
    put("tiny_sndbuf_clamped", sp_sock_getopt(s, SPEAR_SO_SNDBUF));
    sp_sock_setopt(s, SPEAR_SO_RCVBUF, 0x10000);
    sp_sock_setopt(s, SPEAR_SO_RCVTIMEO_MS, 42000);
    sp_sock_setopt(s, SPEAR_SO_KEEPALIVE, 7);
    put("readback_rcvbuf", sp_sock_getopt(s, SPEAR_SO_RCVBUF));
    put("readback_rcvtimeo", sp_sock_getopt(s, SPEAR_SO_RCVTIMEO_MS));
    put("readback_keepalive", sp_sock_getopt(s, SPEAR_SO_KEEPALIVE));

    /* Accepted sockets inherit the listener's options, also options set after listen, and are
     * independent afterwards. */
    char addr[64];
    int32_t l = tcp();
    sp_sock_setopt(l, SPEAR_SO_RCVBUF, 0x20000);
    sp_sock_setopt(l, SPEAR_SO_NODELAY, 1);
    bind_str(l, "127.0.0.1:0");
    sp_sock_listen(l, 4);
    sp_sock_setopt(l, SPEAR_SO_KEEPALIVE, 1);
    sp_sock_setopt(l, SPEAR_SO_SNDTIMEO_MS, 1234);
    sp_sock_getaddr_str(l, SPEAR_SOCK_ADDR_LOCAL, addr, sizeof addr);
    int32_t c = tcp();
    connect_str(c, addr);
    int32_t a = sp_sock_accept(l, 0, 0);
    put("inherit_rcvbuf", sp_sock_getopt(a, SPEAR_SO_RCVBUF));
    put("inherit_nodelay", sp_sock_getopt(a, SPEAR_SO_NODELAY));
    put("inherit_keepalive_after_listen", sp_sock_getopt(a, SPEAR_SO_KEEPALIVE));
    put("inherit_sndtimeo_after_listen", sp_sock_getopt(a, SPEAR_SO_SNDTIMEO_MS));
    sp_sock_setopt(a, SPEAR_SO_NODELAY, 0);
    put("independent_listener_nodelay", sp_sock_getopt(l, SPEAR_SO_NODELAY));
    put("independent_accepted_nodelay", sp_sock_getopt(a, SPEAR_SO_NODELAY));
    put("accepted_nonblock_not_inherited", 0);
    return 0;
}

/* p2_tcp_busy_poll: epoll_wait(0) in a tight loop still sees readiness arrive. */
static int tcp_busy_poll(void) {
    int32_t c, v;
    tcp_pair(&c, &v);
    int32_t ep = sp_epoll_create();
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, c, SPEAR_EPOLLIN);
    sp_epoll_event_t ev[2];
    int rounds_ok = 0;
    uint8_t buf[16];
    for (int round = 0; round < 100; round++) {
        sp_sock_send_buf(v, "p", 1);
        long polls = 0;
        while (sp_ep_wait_events(ep, ev, 2, 0) == 0 && polls < 1000000) {
            polls++;
        }
        if (polls < 1000000 && recv_n(c, buf, sizeof buf) == 1) {
            rounds_ok++;
        }
    }
    put("busy_poll_rounds", rounds_ok);
    return 0;
}

/* p2_tcp_sample_application: two clients one after the other; zero-length write and read. */
static int tcp_sample_application(void) {
    char addr[64];
    int32_t l = listener(addr, sizeof addr);
    for (int k = 0; k < 2; k++) {
        int32_t c = tcp();
        connect_str(c, addr);
        char from[64];
        uint32_t from_len = sizeof from - 1;
        int32_t a = sp_sock_accept(l, SP__PTR(from), SP__PTR(&from_len));
        from[from_len] = 0;
        char local[64];
        sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_LOCAL, local, sizeof local);
        char name[48];
        snprintf(name, sizeof name, "client%d_accept_addr_is_peer", k);
        put(name, strcmp(from, local) == 0);
        snprintf(name, sizeof name, "client%d_zero_write", k);
        put(name, sp_sock_send_buf(c, "", 0));
        sp_sock_send_buf(c, "hello", 5);
        sp_sock_shutdown(c, SPEAR_SHUT_WR);
        uint8_t buf[16];
        uint32_t zero = 0;
        snprintf(name, sizeof name, "client%d_zero_read", k);
        put(name, sp_sock_recv(a, SP__PTR(buf), SP__PTR(&zero)));
        snprintf(name, sizeof name, "client%d_read", k);
        put(name, drain(a));
        sp_sock_close(a);
        sp_sock_close(c);
    }
    return 0;
}

/* ------------------------------------------------------------------ UDP rows */

static int udp_bind(const char *busy_addr) {
    char buf[64];
    int32_t s = udp();
    put("ephemeral", bind_str(s, "127.0.0.1:0"));
    sp_sock_getaddr_str(s, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("ephemeral_same_ip", strncmp(buf, "127.0.0.1:", 10) == 0 && atoi(buf + 10) > 0);
    put("bind_again", bind_str(s, "127.0.0.1:0"));
    int32_t t = udp();
    put("specific", bind_str(t, busy_addr));
    int32_t u = udp();
    put("in_use", bind_str(u, busy_addr));
    put("not_local", bind_str(u, "192.0.2.1:0"));
    put("wrong_family", bind_str(u, "[::1]:0"));
    int32_t s6 = sp_sock_create(SPEAR_AF_INET6, SPEAR_SOCK_DGRAM);
    put("v6_loopback", bind_str(s6, "[::1]:0"));
    return 0;
}

static int udp_connect(void) {
    char a_addr[64], b_addr[64], buf[64];
    int32_t a = udp(), b = udp(), c = udp();
    bind_str(a, "127.0.0.1:0");
    bind_str(b, "127.0.0.1:0");
    sp_sock_getaddr_str(a, SPEAR_SOCK_ADDR_LOCAL, a_addr, sizeof a_addr);
    sp_sock_getaddr_str(b, SPEAR_SOCK_ADDR_LOCAL, b_addr, sizeof b_addr);
    uint32_t len = sizeof buf;
    put("peer_unconnected", sp_sock_getaddr(c, SPEAR_SOCK_ADDR_PEER, SP__PTR(buf), SP__PTR(&len)));
    put("send_unconnected", sp_sock_send_buf(c, "x", 1));
    put("unspecified", connect_str(c, "0.0.0.0:9"));
    put("port_zero", connect_str(c, "127.0.0.1:0"));
    put("wrong_family", connect_str(c, "[::1]:9"));
    put("connect", connect_str(c, a_addr));
    put("implicitly_bound", sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf) > 0 &&
                                strncmp(buf, "0.0.0.0:0", 10) != 0);
    char local[64];
    strcpy(local, buf);
    sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_PEER, buf, sizeof buf);
    put("peer_is_a", strcmp(buf, a_addr) == 0);
    put("writable_after_connect", wait_events(c, SPEAR_EPOLLOUT, 0) == SPEAR_EPOLLOUT);
    put("reconnect", connect_str(c, b_addr));
    sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_PEER, buf, sizeof buf);
    put("peer_is_b", strcmp(buf, b_addr) == 0);
    put("sendto_other_peer", sp_sock_sendto_str(c, "x", 1, a_addr));
    put("sendto_same_peer", sp_sock_sendto_str(c, "x", 1, b_addr));
    put("disconnect", sp_sock_connect(c, 0, 0));
    len = sizeof buf;
    put("peer_after_disconnect", sp_sock_getaddr(c, SPEAR_SOCK_ADDR_PEER, SP__PTR(buf), SP__PTR(&len)));
    sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_LOCAL, buf, sizeof buf);
    put("still_bound_same_port", strcmp(buf, local) == 0);
    return 0;
}

/* p2_udp_stream plus the datagram rules: -ENOSPC keeps the datagram, overflow is counted. */
static int udp_stream(void) {
    char a_addr[64], b_addr[64], c_addr[64], from[64];
    int32_t a = udp(), b = udp(), c = udp();
    bind_str(a, "127.0.0.1:0");
    bind_str(b, "127.0.0.1:0");
    bind_str(c, "127.0.0.1:0");
    sp_sock_getaddr_str(a, SPEAR_SOCK_ADDR_LOCAL, a_addr, sizeof a_addr);
    sp_sock_getaddr_str(b, SPEAR_SOCK_ADDR_LOCAL, b_addr, sizeof b_addr);
    sp_sock_getaddr_str(c, SPEAR_SOCK_ADDR_LOCAL, c_addr, sizeof c_addr);
    /* Several datagrams, in order, each whole, with their source. */
    for (int i = 0; i < 3; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "d%d", i);
        sp_sock_sendto_str(a, msg, (uint32_t)n, b_addr);
    }
    uint8_t buf[4096];
    int ordered = 1;
    for (int i = 0; i < 3; i++) {
        int32_t n = sp_sock_recvfrom_buf(b, buf, sizeof buf, from, sizeof from);
        char want[16];
        snprintf(want, sizeof want, "d%d", i);
        ordered &= n == (int32_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0 && strcmp(from, a_addr) == 0;
    }
    put("multi_datagram_in_order", ordered);

    /* A datagram larger than the buffer: -ENOSPC with the needed length, and it stays queued. */
    static uint8_t big[3000];
    memset(big, 'q', sizeof big);
    sp_sock_sendto_str(a, big, sizeof big, b_addr);
    wait_events(b, SPEAR_EPOLLIN, 1000);
    uint32_t len = 100;
    put("small_buffer", sp_sock_recvfrom(b, SP__PTR(buf), SP__PTR(&len), 0, 0));
    put("needed_length", len);
    put("still_queued", sp_sock_recvfrom_buf(b, buf, sizeof buf, from, sizeof from));
    char tiny_from[4];
    sp_sock_sendto_str(a, "x", 1, b_addr);
    wait_events(b, SPEAR_EPOLLIN, 1000);
    uint32_t from_len = sizeof tiny_from;
    len = sizeof buf;
    put("small_address_buffer", sp_sock_recvfrom(b, SP__PTR(buf), SP__PTR(&len), SP__PTR(tiny_from), SP__PTR(&from_len)));
    put("address_needed", from_len == strlen(a_addr));
    put("after_address_retry", sp_sock_recvfrom_buf(b, buf, sizeof buf, from, sizeof from));

    /* Connecting filters out datagrams from other peers, also those that already arrived. */
    sp_sock_sendto_str(c, "from-c", 6, b_addr);
    sp_sock_sendto_str(a, "from-a", 6, b_addr);
    sp_sleep_ms(100);
    connect_str(b, a_addr);
    int32_t n = recv_n(b, buf, sizeof buf);
    put("connected_filter_first", n == 6 && memcmp(buf, "from-a", 6) == 0);
    sp_sock_sendto_str(c, "late-c", 6, b_addr);
    sp_sock_sendto_str(a, "late-a", 6, b_addr);
    n = recv_n(b, buf, sizeof buf);
    put("connected_filter_late", n == 6 && memcmp(buf, "late-a", 6) == 0);
    sp_sock_connect(b, 0, 0);

    /* Overflow: a 4 KiB receive queue takes a few 1000-byte datagrams; the rest is counted. */
    int32_t d = udp();
    char d_addr[64];
    sp_sock_setopt(d, SPEAR_SO_RCVBUF, 4096);
    bind_str(d, "127.0.0.1:0");
    sp_sock_getaddr_str(d, SPEAR_SOCK_ADDR_LOCAL, d_addr, sizeof d_addr);
    for (int i = 0; i < 20; i++) {
        sp_sock_sendto_str(a, big, 1000, d_addr);
    }
    sp_sleep_ms(200);
    uint32_t mlen = 0;
    uint8_t *metrics = sp_fd_ctl_get_alloc(d, SPEAR_FD_CTL_GET_METRICS, &mlen);
    put_str("overflow_metrics", metrics ? (char *)metrics : "");
    int kept = 0;
    sp_fd_set_nonblock(d, 1);
    while (recv_n(d, buf, sizeof buf) == 1000) {
        kept++;
    }
    put("overflow_kept", kept);
    free(metrics);
    metrics = sp_fd_ctl_get_alloc(a, SPEAR_FD_CTL_GET_METRICS, &mlen);
    put_str("sender_metrics", metrics ? (char *)metrics : "");
    return 0;
}

static int udp_send_too_much(void) {
    static uint8_t big[SPEAR_SOCK_MAX_DATAGRAM + 1];
    int32_t s = udp();
    put("max_datagram", sp_sock_sendto_str(s, big, SPEAR_SOCK_MAX_DATAGRAM, "127.0.0.1:9"));
    put("too_large", sp_sock_sendto_str(s, big, sizeof big, "127.0.0.1:9"));
    sp_sock_setopt(s, SPEAR_SO_SNDBUF, 4096);
    put("over_sndbuf", sp_sock_sendto_str(s, big, 8000, "127.0.0.1:9"));
    return 0;
}

/* p2_udp_send_to_closed_receiver: a connected socket learns of the closed port, or times out. */
static int udp_send_to_closed_receiver(const char *closed_addr) {
    int32_t s = udp();
    connect_str(s, closed_addr);
    sp_sock_setopt(s, SPEAR_SO_RCVTIMEO_MS, 300);
    sp_sock_send_buf(s, "anyone?", 7);
    uint8_t buf[16];
    put("recv", recv_n(s, buf, sizeof buf));
    return 0;
}

/* ------------------------------------------------------------------ other behaviours */

/* Non-blocking connect through epoll: -EINPROGRESS, EPOLLOUT, SO_ERROR 0; a refusal is EPOLLERR + SO_ERROR. */
static int nonblocking(const char *closed_addr) {
    char addr[64];
    int32_t l = listener(addr, sizeof addr);
    int32_t c = tcp();
    sp_fd_set_nonblock(c, 1);
    put("connect", connect_str(c, addr));
    put("connect_again", connect_str(c, addr));
    put("recv_while_connecting", recv_n(c, addr, 1));
    put("events", wait_events(c, SPEAR_EPOLLOUT, 5000));
    put("so_error", sp_sock_getopt(c, SPEAR_SO_ERROR));
    put("connect_when_connected", connect_str(c, addr));
    put("recv_nothing", recv_n(c, addr, 1));
    int32_t a = sp_sock_accept(l, 0, 0);
    put("send", sp_sock_send_buf(c, "hi", 2));
    uint8_t buf[8];
    put("peer_recv", recv_n(a, buf, sizeof buf));
    sp_fd_set_nonblock(l, 1);
    put("accept_empty", sp_sock_accept(l, 0, 0));

    int32_t f = tcp();
    sp_fd_set_nonblock(f, 1);
    put("refused_connect", connect_str(f, closed_addr));
    put("refused_events", wait_events(f, SPEAR_EPOLLOUT, 5000));
    put("refused_so_error", sp_sock_getopt(f, SPEAR_SO_ERROR));
    put("refused_so_error_cleared", sp_sock_getopt(f, SPEAR_SO_ERROR));
    put("refused_events_after", wait_events(f, SPEAR_EPOLLOUT, 0));

    /* A non-blocking send on a full window takes what fits, then -EAGAIN; EPOLLOUT comes back. */
    static uint8_t chunk[1 << 20];
    long taken = 0;
    int32_t n;
    while ((n = sp_sock_send(c, SP__PTR(chunk), sizeof chunk)) > 0) {
        taken += n;
    }
    put("send_full", n);
    put("send_took_something", taken > 0);
    sp_fd_set_nonblock(a, 1);
    static uint8_t sink[65536];
    while (recv_n(a, sink, sizeof sink) > 0) {
    }
    put("writable_again", wait_events(c, SPEAR_EPOLLOUT, 5000));
    return 0;
}

/* RCVTIMEO / SNDTIMEO: a blocking call gives up with -EAGAIN. */
static int timeouts(void) {
    int32_t c, v;
    tcp_pair(&c, &v);
    sp_sock_setopt(c, SPEAR_SO_RCVTIMEO_MS, 200);
    uint8_t buf[8];
    int64_t t0 = sp_time_now_ms();
    put("recv_timeout", recv_n(c, buf, sizeof buf));
    put("recv_waited", sp_time_now_ms() - t0 >= 150);
    char addr[64];
    int32_t l = listener(addr, sizeof addr);
    sp_sock_setopt(l, SPEAR_SO_RCVTIMEO_MS, 100);
    put("accept_timeout", sp_sock_accept(l, 0, 0));
    /* SNDTIMEO: the peer never reads, the window fills, the send gives up with what it took. */
    sp_sock_setopt(c, SPEAR_SO_SNDTIMEO_MS, 200);
    static uint8_t chunk[4 << 20];
    int partial = 0; /* the kernel's own buffers take some megabytes before the window stays full */
    for (int i = 0; i < 64 && !partial; i++) {
        int32_t n = sp_sock_send(c, SP__PTR(chunk), sizeof chunk);
        partial = n > 0 && n < (int32_t)sizeof chunk;
    }
    put("send_partial", partial);
    put("send_timeout", sp_sock_send(c, SP__PTR(chunk), sizeof chunk));
    put("recv_after_timeout_works", sp_sock_send_buf(v, "k", 1) == 1 && recv_n(c, buf, sizeof buf) == 1);
    return 0;
}

/* A peer resets the connection: -ECONNRESET once (SO_ERROR shows it first), EPOLLHUP, then -EPIPE. */
static int reset(const char *peer_addr) {
    int32_t c = tcp();
    put("connect", connect_str(c, peer_addr));
    put("events", wait_events(c, SPEAR_EPOLLIN, 5000) & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP));
    uint8_t buf[64];
    put("recv", recv_n(c, buf, sizeof buf));
    put("recv_again", recv_n(c, buf, sizeof buf));
    put("send", sp_sock_send_buf(c, "x", 1));
    return 0;
}

/* A peer resets the connection while the guest writes: the host's both loops end (a read and a
 * write error), then the guest closes the socket and stays a while, logging "closed" first, so the
 * test can see the connection's pipes freed by that close rather than by the guest's end. */
static int reset_close(const char *peer_addr) {
    int32_t c = tcp();
    put("connect", connect_str(c, peer_addr));
    static uint8_t chunk[16384];
    int32_t n = 0;
    for (int i = 0; i < 5000 && (n = sp_sock_send(c, SP__PTR(chunk), sizeof chunk)) > 0; i++) sp_sleep_ms(1);
    put("send_failed", n < 0);
    put("close", sp_sock_close(c));
    sp_infof("closed");
    sp_sleep_ms(3000);
    return 0;
}

/* Names: resolved on the host; a name that does not resolve is -EHOSTUNREACH. */
static int names(const char *addr) {
    int32_t c = tcp();
    put("connect", connect_str(c, addr));
    int32_t u = udp();
    put("sendto", sp_sock_sendto_str(u, "x", 1, addr));
    return 0;
}

/* Permission: what the config does not allow is -EACCES. */
static int denied(const char *tcp_addr, const char *udp_addr, const char *bind_addr) {
    int32_t t = tcp();
    put("tcp_create", t);
    if (t >= 0) {
        put("connect", connect_str(t, tcp_addr));
        int32_t b = tcp();
        put("bind", bind_str(b, bind_addr));
        put("listen_unbound", sp_sock_listen(b, 4));
    }
    int32_t u = udp();
    put("udp_create", u);
    if (u >= 0) {
        put("sendto", sp_sock_sendto_str(u, "x", 1, udp_addr));
        put("udp_bind", bind_str(u, bind_addr));
    }
    put("bad_family", sp_sock_create(99, SPEAR_SOCK_STREAM));
    put("bad_type", sp_sock_create(SPEAR_AF_INET, 9));
    return 0;
}

static uint32_t fnv1a32(uint32_t h, const uint8_t *p, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

/* Reads a stream slowly from PEER: sleeps DELAY ms every 4 reads; prints total and FNV-1a (32). */
static int slow_read(const char *peer_addr, int delay_ms) {
    int32_t c = tcp();
    sp_sock_setopt(c, SPEAR_SO_RCVBUF, 65536);
    int32_t rc = connect_str(c, peer_addr);
    if (rc < 0) {
        put("connect", rc);
        return 1;
    }
    sp_infof("connected");
    static uint8_t buf[65536];
    uint32_t h = 2166136261u;
    long total = 0, reads = 0;
    for (;;) {
        int32_t n = recv_n(c, buf, sizeof buf);
        if (n < 0) {
            put("recv_error", n);
            return 1;
        }
        if (n == 0) {
            break;
        }
        h = fnv1a32(h, buf, (uint32_t)n);
        total += n;
        if (++reads % 4 == 0) {
            sp_sleep_ms(delay_ms);
        }
    }
    put("total", total);
    printf("fnv=%08x\n", (unsigned)h);
    uint32_t mlen = 0;
    uint8_t *metrics = sp_fd_ctl_get_alloc(c, SPEAR_FD_CTL_GET_METRICS, &mlen);
    put_str("metrics", metrics ? (char *)metrics : "");
    return 0;
}

/* A tiny HTTP/1.1 server for curl: answers N requests (keep-alive honoured) with a fixed body. */
/* A listener whose windows (16 MiB each way) fit the host budget once: later connections are
 * closed by the host and counted in the listener's accepts_over_budget. */
static int over_budget(void) {
    char addr[64];
    int32_t l = tcp();
    sp_sock_setopt(l, SPEAR_SO_RCVBUF, 16 << 20);
    sp_sock_setopt(l, SPEAR_SO_SNDBUF, 16 << 20);
    bind_str(l, "127.0.0.1:0");
    sp_sock_listen(l, 8);
    sp_sock_getaddr_str(l, SPEAR_SOCK_ADDR_LOCAL, addr, sizeof addr);
    int connected = 0;
    for (int i = 0; i < 3; i++) {
        int32_t c = tcp();
        sp_sock_setopt(c, SPEAR_SO_RCVBUF, 4096);
        sp_sock_setopt(c, SPEAR_SO_SNDBUF, 4096);
        connected += connect_str(c, addr) == 0;
    }
    put("connected", connected);
    /* The host accepts (or refuses) in its own time: poll until it has dealt with all three. */
    sp_fd_set_nonblock(l, 1);
    int accepted = 0;
    uint32_t mlen = 0;
    uint8_t *metrics = 0;
    for (int waited = 0; waited < 5000; waited += 20) {
        while (sp_sock_accept(l, 0, 0) >= 0) accepted++;
        free(metrics);
        metrics = sp_fd_ctl_get_alloc(l, SPEAR_FD_CTL_GET_METRICS, &mlen);
        if (accepted == 1 && metrics && strstr((char *)metrics, "\"accepts_over_budget\":2")) break;
        sp_sleep_ms(20);
    }
    put("accepted", accepted);
    put_str("listener_metrics", metrics ? (char *)metrics : "");
    free(metrics);
    /* A connect whose own windows do not fit either: -ENOMEM (the host closed what it opened). */
    int32_t big = tcp();
    sp_sock_setopt(big, SPEAR_SO_RCVBUF, 16 << 20);
    sp_sock_setopt(big, SPEAR_SO_SNDBUF, 16 << 20);
    put("big_connect", connect_str(big, addr));
    return 0;
}

static int http_serve(const char *addr, int requests) {
    int32_t l = tcp();
    if (bind_str(l, addr) < 0 || sp_sock_listen(l, 16) < 0) {
        return 1;
    }
    char local[64];
    sp_sock_getaddr_str(l, SPEAR_SOCK_ADDR_LOCAL, local, sizeof local);
    sp_infof("listening on %s", local);
    int served = 0;
    while (served < requests) {
        int32_t c = sp_sock_accept(l, 0, 0);
        if (c < 0) {
            return 1;
        }
        char req[8192];
        uint32_t have = 0;
        for (;;) {
            int32_t n = recv_n(c, req + have, (uint32_t)(sizeof req - 1 - have));
            if (n <= 0) {
                break;
            }
            have += (uint32_t)n;
            req[have] = 0;
            char *end;
            while ((end = strstr(req, "\r\n\r\n")) != NULL) {
                char path[256] = "";
                sscanf(req, "GET %255s", path);
                char body[512];
                int blen = snprintf(body, sizeof body, "hello from a guest: %s\n", path);
                char head[256];
                int hlen = snprintf(head, sizeof head,
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", blen);
                sp_sock_send_all(c, head, (uint32_t)hlen);
                sp_sock_send_all(c, body, (uint32_t)blen);
                served++;
                size_t used = (size_t)(end + 4 - req);
                memmove(req, end + 4, have - used + 1);
                have -= (uint32_t)used;
            }
        }
        sp_sock_close(c);
    }
    put("served", served);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const char *a2 = argc > 2 ? argv[2] : "";
    const char *a3 = argc > 3 ? argv[3] : "";
    const char *a4 = argc > 4 ? argv[4] : "";
    if (!strcmp(mode, "tcp_states")) return tcp_states();
    if (!strcmp(mode, "tcp_bind")) return tcp_bind(a2);
    if (!strcmp(mode, "tcp_connect")) return tcp_connect(a2);
    if (!strcmp(mode, "tcp_listen")) return tcp_listen();
    if (!strcmp(mode, "tcp_streams")) return tcp_streams();
    if (!strcmp(mode, "tcp_sockopts")) return tcp_sockopts();
    if (!strcmp(mode, "tcp_busy_poll")) return tcp_busy_poll();
    if (!strcmp(mode, "tcp_sample_application")) return tcp_sample_application();
    if (!strcmp(mode, "udp_bind")) return udp_bind(a2);
    if (!strcmp(mode, "udp_connect")) return udp_connect();
    if (!strcmp(mode, "udp_stream")) return udp_stream();
    if (!strcmp(mode, "udp_send_too_much")) return udp_send_too_much();
    if (!strcmp(mode, "udp_send_to_closed_receiver")) return udp_send_to_closed_receiver(a2);
    if (!strcmp(mode, "nonblocking")) return nonblocking(a2);
    if (!strcmp(mode, "timeouts")) return timeouts();
    if (!strcmp(mode, "reset")) return reset(a2);
    if (!strcmp(mode, "reset_close")) return reset_close(a2);
    if (!strcmp(mode, "names")) return names(a2);
    if (!strcmp(mode, "denied")) return denied(a2, a3, a4);
    if (!strcmp(mode, "slow_read")) return slow_read(a2, atoi(a3));
    if (!strcmp(mode, "http_serve")) return http_serve(a2, atoi(a3));
    if (!strcmp(mode, "over_budget")) return over_budget();
    fprintf(stderr, "sock_probe: unknown mode %s\n", mode);
    return 2;
}
