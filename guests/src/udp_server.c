/*
 * udp_server: the responding half of a UDP request/response pair (udp_client is the other).
 *
 *   udp_server ADDR COUNT        e.g. udp_server 127.0.0.1:9000 3
 *
 * Binds ADDR (port 0 picks one; logged as "listening on HOST:PORT"), answers COUNT requests,
 * each datagram "X" with "pong X" sent back to its source, then exits.
 */
#include "spear.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("usage: udp_server ADDR COUNT\n");
        return 2;
    }
    int32_t fd = sp_sock_create(argv[1][0] == '[' ? SPEAR_AF_INET6 : SPEAR_AF_INET, SPEAR_SOCK_DGRAM);
    if (fd < 0 || sp_sock_bind_str(fd, argv[1]) < 0) {
        printf("udp_server: cannot bind %s (%d)\n", argv[1], (int)fd);
        return 1;
    }
    char local[128];
    sp_sock_getaddr_str(fd, SPEAR_SOCK_ADDR_LOCAL, local, sizeof local);
    printf("listening on %s\n", local);
    int32_t count = atoi(argv[2]);
    static uint8_t request[SPEAR_SOCK_MAX_DATAGRAM];
    static uint8_t reply[SPEAR_SOCK_MAX_DATAGRAM + 5];
    char from[128];
    for (int32_t i = 0; i < count; i++) {
        int32_t n = sp_sock_recvfrom_buf(fd, request, sizeof request, from, sizeof from);
        if (n < 0) {
            printf("udp_server: recvfrom: %d\n", (int)n);
            return 1;
        }
        memcpy(reply, "pong ", 5);
        uint32_t len = (uint32_t)n + 5 > SPEAR_SOCK_MAX_DATAGRAM ? SPEAR_SOCK_MAX_DATAGRAM - 5 : (uint32_t)n;
        memcpy(reply + 5, request, len);
        int32_t rc = sp_sock_sendto_str(fd, reply, len + 5, from);
        if (rc < 0) {
            printf("udp_server: sendto %s: %d\n", from, (int)rc);
            return 1;
        }
    }
    printf("answered %d requests\n", (int)count);
    return 0;
}
