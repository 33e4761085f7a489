/*
 * abi_link: imports every one of the 32 "spear" host functions (one call each through spear.h)
 * and exits 0. It proves that a host defines all of them with the right wasm signatures.
 *
 * Every call is harmless and returns at once: resources are created and closed again, and the
 * calls that would need a live resource get fd -1 (expected result -SPEAR_EBADF) or an empty
 * buffer. Results are ignored; only linking matters. Nothing here blocks: sleep_ms(0), and
 * spear_epoll_wait polls (timeout 0).
 */
#include "spear.h"

int main(void) {
    int64_t acc = 0;
    uint8_t buf[16];
    uint32_t len = 0;
    const char *txt = "abi_link\n";
    const int32_t bad = -1;

    /* time / log / sleep / random (5) */
    acc += sp_time_now_ms();
    acc += sp_wall_time_s();
    acc += sp_random_i64();
    sp_sleep_ms(0);
    acc += sp_log(SP_LOG_DEBUG, (int32_t)(uintptr_t)txt, (int32_t)strlen(txt));

    /* cchat (7) */
    int32_t chat = sp_cchat_create();
    acc += sp_cchat_write_msg(bad, (int32_t)(uintptr_t)txt, 0, (int32_t)(uintptr_t)txt, 0);
    acc += sp_cchat_write_fn(bad, 0, (int32_t)(uintptr_t)txt, 0);
    len = 0;
    acc += sp_cchat_ctl(bad, SPEAR_CCHAT_CTL_GET_METRICS, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_cchat_send(bad, 0);
    len = sizeof buf;
    acc += sp_cchat_recv(bad, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_cchat_close(chat);

    /* rtasr (5) */
    int32_t asr = sp_rtasr_create();
    len = 0;
    acc += sp_rtasr_ctl(bad, SPEAR_RTA_CTL_GET_STATUS, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_rtasr_write(bad, (int32_t)(uintptr_t)buf, 0);
    len = sizeof buf;
    acc += sp_rtasr_read(bad, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_rtasr_close(asr);

    /* mic (4) */
    int32_t mic = sp_mic_create();
    len = 0;
    acc += sp_mic_ctl(bad, SPEAR_MIC_CTL_GET_STATUS, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    len = sizeof buf;
    acc += sp_mic_read(bad, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_mic_close(mic);

    /* user streams (6) */
    acc += sp_user_stream_open(1, SPEAR_USER_STREAM_DIR_BIDIRECTIONAL);
    len = sizeof buf;
    acc += sp_user_stream_read(bad, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_user_stream_write(bad, (int32_t)(uintptr_t)buf, 0);
    int32_t ctl = sp_user_stream_ctl_open(); /* -SPEAR_ENOTCONN without a user-stream session */
    len = sizeof buf;
    acc += sp_user_stream_ctl_read(bad, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_user_stream_close(ctl >= 0 ? ctl : bad);

    /* epoll (4) and fd ctl (1) */
    int32_t ep = sp_epoll_create();
    acc += sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, bad, SPEAR_EPOLLIN);
    len = sizeof buf;
    acc += sp_epoll_wait(ep, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len, 0);
    len = sizeof buf;
    acc += sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
    acc += sp_epoll_close(ep);

    (void)acc;
    return 0;
}
