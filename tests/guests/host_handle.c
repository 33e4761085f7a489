/*
 * host_handle: reads a stream the host created for it (tests/system/host_test.ts). The
 * imports of module "spear_test" are test-only hostcalls (tests/support/host_hooks.ts, given
 * through runGuest's extraHostcalls hook):
 *   open(bytes, window) -> fd   a blocking request; the host's test driver creates a handle
 *                               (a credit stream of `window` bytes, announced by a notice the
 *                               worker adopts into an fd) and starts producing `bytes` bytes
 *   read(fd, ptr, len_ptr)      one item into the buffer (SPEAR's out-buffer rule: too small
 *                               is -ENOSPC with the needed length in *len_ptr, item kept);
 *                               0 at the end of the stream
 *   close(fd)
 *
 *   host_handle.wasm BYTES WINDOW   copies the stream to stdout, byte for byte
 *
 * Exit codes: 0 done; 2 open failed; 3 a read failed; 4 a read into no room was not -ENOSPC
 * with the item's length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_IMPORT(name) __attribute__((import_module("spear_test"), import_name(name)))

TEST_IMPORT("open") int32_t t_open(int32_t bytes, int32_t window);
TEST_IMPORT("read") int32_t t_read(int32_t fd, int32_t ptr, int32_t len_ptr);
TEST_IMPORT("close") int32_t t_close(int32_t fd);

#define PTR(p) ((int32_t)(uintptr_t)(p))

static uint8_t buf[1 << 16];

int main(int argc, char **argv) {
    int32_t bytes = argc > 1 ? atoi(argv[1]) : 0;
    int32_t window = argc > 2 ? atoi(argv[2]) : 0;
    int32_t fd = t_open(bytes, window);
    if (fd < 0) {
        fprintf(stderr, "open: %d\n", fd);
        return 2;
    }
    /* No room: the first item stays queued and its length comes back. */
    uint32_t len = 0;
    int32_t rc = t_read(fd, PTR(buf), PTR(&len));
    if (bytes > 0 && (rc != -28 || len == 0 || len > sizeof buf)) {
        fprintf(stderr, "read into no room: rc %d len %u\n", rc, len);
        return 4;
    }
    for (;;) {
        len = sizeof buf;
        rc = t_read(fd, PTR(buf), PTR(&len));
        if (rc == 0) break;
        if (rc < 0 || (uint32_t)rc != len) {
            fprintf(stderr, "read: %d (len %u)\n", rc, len);
            return 3;
        }
        fwrite(buf, 1, (size_t)rc, stdout);
    }
    fflush(stdout);
    t_close(fd);
    return 0;
}
