/*
 * udp_client: the asking half of a UDP request/response pair (udp_server answers).
 *
 *   udp_client SERVER COUNT        e.g. udp_client 127.0.0.1:9000 3
 *
 * Connects a UDP socket to SERVER (only its datagrams are received), sends "ping N" for N in
 * 1..COUNT and waits for each answer with a 1 s receive timeout, resending up to 3 times (UDP may
 * lose a datagram). Writes each answer as a line on stdout. Exit code 0 when all were answered.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        sp_infof("usage: udp_client SERVER COUNT");
        return 2;
    }
    int32_t fd = sp_sock_create(argv[1][0] == '[' ? SPEAR_AF_INET6 : SPEAR_AF_INET, SPEAR_SOCK_DGRAM);
    int32_t rc = fd < 0 ? fd : sp_sock_connect_str(fd, argv[1]);
    if (rc < 0) {
        sp_errorf("udp_client: connect %s: %d", argv[1], (int)rc);
        return 1;
    }
    sp_sock_setopt(fd, SPEAR_SO_RCVTIMEO_MS, 1000);
    int32_t count = atoi(argv[2]);
    char request[64];
    char reply[2048];
    for (int32_t i = 1; i <= count; i++) {
        int len = snprintf(request, sizeof request, "ping %d", (int)i);
        int32_t n = -SPEAR_EAGAIN;
        for (int attempt = 0; attempt < 3 && n == -SPEAR_EAGAIN; attempt++) {
            rc = sp_sock_send_buf(fd, request, (uint32_t)len);
            if (rc < 0) {
                sp_errorf("udp_client: send: %d", (int)rc);
                return 1;
            }
            n = sp_sock_recv_buf(fd, reply, sizeof reply - 1);
        }
        if (n < 0) {
            sp_errorf("udp_client: no answer to \"%s\": %d", request, (int)n);
            return 1;
        }
        reply[n] = 0;
        printf("%s\n", reply);
    }
    fflush(stdout);
    return 0;
}
